/* runtime.h - process-wide set-up and tear-down shared by the daemons. */
#ifndef TG_RUNTIME_H
#define TG_RUNTIME_H

/* Before any thread starts: ignore SIGPIPE, make libevent thread-aware,
 * initialise libcurl and Connector/C. -1 (logged) on failure. */
int runtime_init(void);
/* At exit, after everything is freed: so leak checkers see a clean process. */
void runtime_end(void);

#endif
