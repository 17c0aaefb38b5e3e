/* drain.c - stopping a worker gracefully (SIGTERM, SIGINT).
 *
 * Each worker keeps its busy connections: those whose request reached
 * api_dispatch and whose answer evhttp has not finished writing. One joins
 * when api_dispatch takes its request and leaves when the answer is written
 * (the request's on-complete callback) or the connection closes (a client
 * gone mid-answer). A connection holds one request at a time (evhttp reads
 * the next only after the answer), so this is at most one entry per
 * connection.
 *
 * Draining runs on the worker's own thread (posted by drain_start): close
 * the worker's listening socket (once every worker's and main's copy are
 * closed, the kernel refuses new connections), answer what still arrives on
 * open connections with Connection: close, and every DRAIN_TICK_MS look at
 * the busy list. When it is empty, or the grace deadline has passed, free
 * the evhttp (which closes idle keep-alive connections and half-received
 * requests) and leave the loop. So an idle connection never holds the stop,
 * and a big answer still being written to a slow client is delivered whole
 * as long as it fits in tollgate.reportd.shutdown_grace_ms.
 */
#include <event2/event.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>

#include "grow.h"
#include "log.h"
#include "reportd.h"

/* How often a draining worker looks whether its answers are all written. */
#define DRAIN_TICK_MS 10

static void busy_remove(struct drain *dr, struct evhttp_connection *c)
{
    for (size_t i = 0; i < dr->n_busy;) {
        if (dr->busy[i] == c)
            dr->busy[i] = dr->busy[--dr->n_busy];
        else
            i++;
    }
}

static void on_written(struct evhttp_request *req, void *arg)
{
    struct worker *w = arg;
    busy_remove(&w->drain, evhttp_request_get_connection(req));
}

static void on_closed(struct evhttp_connection *c, void *arg)
{
    struct worker *w = arg;
    busy_remove(&w->drain, c);
}

void drain_track(struct worker *w, struct evhttp_request *req)
{
    struct drain *dr = &w->drain;
    struct evhttp_connection *c = evhttp_request_get_connection(req);
    if (dr->draining &&
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close") != 0)
        log_error("cannot add Connection: close while draining");
    if (c == NULL)
        return;
    struct evhttp_connection **busy = grow_array(dr->busy, &dr->cap, dr->n_busy + 1,
                                                 sizeof(*busy), 16);
    if (busy == NULL) { /* untracked: a drain may close it before its answer is written */
        log_error("out of memory tracking an answer in flight");
        return;
    }
    dr->busy = busy;
    dr->busy[dr->n_busy++] = c;
    evhttp_request_set_on_complete_cb(req, on_written, w);
    evhttp_connection_set_closecb(c, on_closed, w);
}

static bool past_deadline(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > deadline->tv_sec ||
           (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

/* Stops the worker once its answers are written or the grace is over. */
static void drain_tick(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    (void)fd;
    (void)what;
    if (w->drain.n_busy > 0 && !past_deadline(&w->d->drain_deadline))
        return;
    if (w->drain.n_busy > 0)
        log_warn("%zu answers still being written when the shutdown grace ended: closing"
                 " their connections", w->drain.n_busy);
    event_del(w->drain.tick);
    evhttp_free(w->http); /* closes every connection left (their closecb empty busy) */
    w->http = NULL;
    w->drain.n_busy = 0;
    if (event_base_loopexit(w->base, NULL) != 0)
        log_error("cannot leave a worker's event loop");
}

static void drain_begin(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct timeval every = {0, DRAIN_TICK_MS * 1000};
    (void)fd;
    (void)what;
    w->drain.draining = true;
    if (w->bound != NULL) { /* closes this worker's copy of the listening socket */
        evhttp_del_accept_socket(w->http, w->bound);
        w->bound = NULL;
    }
    if ((w->drain.tick = event_new(w->base, -1, EV_PERSIST, drain_tick, w)) == NULL ||
        event_add(w->drain.tick, &every) != 0) {
        log_error("cannot wait for the answers in flight: stopping at once");
        event_base_loopexit(w->base, NULL);
        return;
    }
    drain_tick(-1, 0, w);
}

int drain_start(struct reportd *d)
{
    struct timeval now = {0, 0};
    int rc = 0;
    for (int i = 0; i < d->n_workers; i++) {
        if (event_base_once(d->workers[i].base, -1, EV_TIMEOUT, drain_begin, &d->workers[i],
                            &now) != 0) {
            log_error("cannot ask worker %d to drain: stopping it at once", i);
            event_base_loopbreak(d->workers[i].base);
            rc = -1;
        }
    }
    return rc;
}

void drain_fini(struct worker *w)
{
    if (w->drain.tick != NULL)
        event_free(w->drain.tick);
    w->drain.tick = NULL;
    free(w->drain.busy);
    w->drain.busy = NULL;
    w->drain.n_busy = w->drain.cap = 0;
}
