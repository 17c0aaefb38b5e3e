/* metrics.h - counters, gauges and histograms a daemon exposes as
 * Prometheus text on GET /metrics.
 *
 * A registry of metrics declared at start-up, each with up to
 * METRICS_MAX_LABELS labels (e.g. "route,model,status"). Any thread adds
 * to them; a scrape renders them (metrics_reply on the daemon's own HTTP
 * server, or metrics_serve's thread for a daemon without one).
 */
#ifndef TG_METRICS_H
#define TG_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct metrics;
struct evhttp_request;

#define METRICS_MAX_LABELS 4
/* Label sets one metric keeps; past it new sets are counted under the
 * value "other" in every label, so a client choosing label values (a
 * model name, a route) cannot grow a daemon's memory without end. */
#define METRICS_MAX_SERIES 2000

/* The label values of one observation, in the order the labels were declared. */
#define METRICS_LABELS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Latency buckets in seconds, 0.5 ms to 60 s: the default for durations. */
extern const double metrics_latency_buckets[];
extern const size_t metrics_latency_nbuckets;

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/* Declare a metric before serving; labels is NULL or comma-separated label
 * names. Each returns the metric's id, -1 on ENOMEM or a bad declaration.
 * Counters' names end in _total by Prometheus' convention. bounds are the
 * histogram's upper bucket bounds, ascending (+Inf is added). */
int metrics_counter(struct metrics *m, const char *name, const char *help, const char *labels);
int metrics_gauge(struct metrics *m, const char *name, const char *help, const char *labels);
int metrics_histogram(struct metrics *m, const char *name, const char *help, const char *labels,
                      const double *bounds, size_t n_bounds);

/* values: NULL for a metric without labels, else METRICS_LABELS(...) with
 * one value per label (NULL values read as ""). Safe from any thread; an
 * out-of-memory new label set is dropped. */
void metrics_add(struct metrics *m, int id, const char *const *values, uint64_t n);
void metrics_set(struct metrics *m, int id, const char *const *values, double v);
void metrics_observe(struct metrics *m, int id, const char *const *values, double v);

/* A counter's value, a gauge's value or a histogram's count (0 for a label
 * set never seen). */
double metrics_get(struct metrics *m, int id, const char *const *values);

/* Prometheus text exposition format 0.0.4; the caller frees. NULL on ENOMEM. */
char *metrics_render(struct metrics *m, size_t *len);

/* Answers req with the rendered metrics (200, text/plain; version=0.0.4). */
void metrics_reply(struct metrics *m, struct evhttp_request *req);

struct metrics_server;

/* Serves GET /metrics at addr on a thread of its own. NULL on error (err). */
struct metrics_server *metrics_serve(struct metrics *m, const struct listen_addr *addr,
                                     char *err, size_t errlen);
/* Stops the thread and closes the socket. */
void metrics_server_free(struct metrics_server *s);

#endif
