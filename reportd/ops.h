/* ops.h - reportd's operations side: config generations (generation.c),
 * SIGHUP reloads (reload.c), draining on SIGTERM (drain.c), and what each
 * request leaves behind in the access log and /metrics (observe.c).
 */
#ifndef REPORTD_OPS_H
#define REPORTD_OPS_H

#include <event2/http.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "config.h"
#include "price.h"

struct worker;
struct metrics;

/* A config generation: a loaded config and its price table, as one SIGHUP
 * (or the start) read them. Requests hold references; the last one frees it. */
struct generation {
    struct config *cfg;
    struct price_table *prices;
    atomic_int refs;
};

/* The generation new requests get, swapped by a reload. */
struct gen_holder {
    pthread_mutex_t lock;
    struct generation *cur;
};

/* A generation owning cfg and prices, with one reference (the caller's).
 * NULL on ENOMEM (then cfg and prices are still the caller's). */
struct generation *gen_new(struct config *cfg, struct price_table *prices);
/* The holder takes over first's reference. */
int gen_holder_init(struct gen_holder *h, struct generation *first);
void gen_holder_fini(struct gen_holder *h);
/* The current generation, with a reference the caller releases. */
struct generation *gen_acquire(struct gen_holder *h);
void gen_release(struct generation *g);
/* Makes next current (taking over the caller's reference to it). */
void gen_swap(struct gen_holder *h, struct generation *next);

/* The metric ids reportd declares (observe.c). */
struct observe {
    struct metrics *m;
    int requests, duration, db_errors, reloads;
};

/* Longest x-request-id kept from a client; a longer or odd one is replaced. */
#define OBSERVE_ID_MAX 128

/* replica: a read replica is configured (its error series starts at 0 too). */
int observe_init(struct observe *o, bool replica);
void observe_fini(struct observe *o);
/* The request's id: the client's x-request-id when it is 1 to 128
 * printable ASCII bytes, else a new UUID; also set on the answer. */
void observe_request_id(struct evhttp_request *req, char id[OBSERVE_ID_MAX + 1]);
/* After the handler: the access line (never the query string, a body or a
 * key) and the request's counts under its route pattern. */
void observe_request(struct observe *o, struct evhttp_request *req, const char *request_id,
                     const char *route, double seconds);
void observe_db_error(struct observe *o, bool replica);
void observe_reload(struct observe *o, bool applied);

/* Stop-the-world for the process-wide settings a reload changes (the time
 * zone's TZ, the log level and format): every worker waits in a callback of
 * its loop, between requests, while the main thread changes them. */
struct park {
    pthread_mutex_t lock;
    pthread_cond_t cond;
};

/* The daemon's context, built in main.c and shared by the workers. */
struct reportd {
    const char *config_path;
    /* The generation read at start; main keeps a reference to it for the
     * process's life, as its listen address, workers and database settings
     * stay in force until a restart whatever a reload reads. */
    struct generation *boot;
    struct gen_holder gens;
    struct observe obs;
    struct park park;
    struct worker *workers;
    int n_workers;
    /* Set by main before it asks the workers to drain (drain_start). */
    struct timespec drain_deadline;
};

/* Per worker: the connections whose answer is being handled or written. */
struct drain {
    struct evhttp_connection **busy;
    size_t n_busy, cap;
    bool draining;
    struct event *tick;
};

/* Called by api_dispatch before the handler: the answer counts as in
 * flight until it is written or its connection closes; while draining it
 * also says Connection: close. */
void drain_track(struct worker *w, struct evhttp_request *req);
/* From the main thread: asks each worker to stop accepting, finish its
 * answers in flight (until d->drain_deadline) and leave its loop. */
int drain_start(struct reportd *d);
void drain_fini(struct worker *w);

int park_init(struct park *p);
void park_fini(struct park *p);

/* SIGHUP: re-reads the config and price file; 0 applied, -1 refused (one
 * error line says why; the old config stays in force). */
int reload_config(struct reportd *d);

#endif
