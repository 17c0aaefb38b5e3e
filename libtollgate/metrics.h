/* metrics.h - counters a daemon exposes as Prometheus text on GET /metrics.
 *
 * A registry of counters, each with at most one label (e.g. model): the
 * daemon's threads add to them, a small HTTP server thread renders them.
 */
#ifndef TG_METRICS_H
#define TG_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct metrics;

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/* Declares a counter (name ends in _total by Prometheus' convention);
 * label is the name of its one label, or NULL. Returns its id, -1 on
 * ENOMEM. Declare every counter before serving. */
int metrics_counter(struct metrics *m, const char *name, const char *help, const char *label);

/* Adds n to counter id (for label_value, when it has a label). Safe from
 * any thread; an out-of-memory new label value is dropped. */
void metrics_add(struct metrics *m, int id, const char *label_value, uint64_t n);

/* The current value (0 for a label value never added to). */
uint64_t metrics_get(struct metrics *m, int id, const char *label_value);

/* Prometheus text exposition format 0.0.4; the caller frees. NULL on ENOMEM. */
char *metrics_render(struct metrics *m, size_t *len);

struct metrics_server;

/* Serves GET /metrics at addr on a thread of its own. NULL on error (err). */
struct metrics_server *metrics_serve(struct metrics *m, const struct listen_addr *addr,
                                     char *err, size_t errlen);
/* Stops the thread and closes the socket. */
void metrics_server_free(struct metrics_server *s);

#endif
