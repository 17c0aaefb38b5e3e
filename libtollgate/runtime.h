/* runtime.h - process-wide set-up and tear-down shared by the daemons. */
#ifndef TG_RUNTIME_H
#define TG_RUNTIME_H

#include <pthread.h>

/* Before any thread starts: ignore SIGPIPE, make libevent thread-aware,
 * initialise libcurl and Connector/C. -1 (logged) on failure. */
int runtime_init(void);
/* At exit, after everything is freed: so leak checkers see a clean process. */
void runtime_end(void);

/* pthread_create with every signal blocked in the new thread, so that
 * SIGTERM and SIGINT reach the main thread and interrupt its wait. 0 or an
 * errno value. */
int runtime_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

#endif
