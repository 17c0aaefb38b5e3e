/* proxy.h - proxyd's context: what main.c builds and every module shares.
 *
 * proxyd is one libevent loop: HTTP front (http_front.c), key checks
 * (auth.c, with MariaDB queries on a worker thread: keystore.c), the
 * upstream transfer (relay.c, libcurl multi), the request lifecycle
 * (call.c, answer.c, stream.c), budgets (admission.c), deployment choice
 * (router.c) and event publishing to accountd over ZeroMQ (publish.c) with
 * its durable spool (spool.c) and stream journal (journal.c). Around them: SIGHUP reloads (reload.c),
 * SIGTERM drains (drain.c), and metrics and access logs (stats.c).
 */
#ifndef PROXYD_PROXY_H
#define PROXYD_PROXY_H

#include <event2/event.h>
#include <event2/http.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "price.h"

/* The loop's priorities (main.c): every event runs at PRIO_NORMAL (libevent's
 * default with PRIO_LEVELS levels), except Redis's (redis_link.c,
 * ratelimit_redis.c), at PRIO_FIRST, and the client connections that
 * showed no key, or one MariaDB does not know, which auth.c moves to
 * PRIO_LOW. When a flood of made-up keys keeps the loop busy, what real keys
 * need (their connections, upstream transfers, the spool) runs first, and at
 * most PRIO_LOW_BATCH flood callbacks run before that is looked at again. */
enum { PRIO_FIRST = 0, PRIO_NORMAL = 1, PRIO_LOW = 2, PRIO_LEVELS = 3 };
#define PRIO_LOW_BATCH 16

struct relay;
struct publisher;
struct keystore;
struct router;
struct admission;
struct owners;
struct spend_sub;
struct generation;
struct stats;
struct drain;
struct journal;
struct http_limits;
struct bill;
struct ratelimit;
struct ratelimit_redis;

struct proxy {
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound; /* the listening socket, closed by a drain */
    /* The start-up config: what needs a restart to change (listen address,
     * spool, accountd endpoints, database, limits) is read from here. */
    const struct config *cfg;
    /* What SIGHUP reloads: model list, router settings, prices, master key.
     * A request keeps the generation it started with (reload.h). */
    struct generation *gen;
    struct relay *relay;
    struct publisher *pub;
    struct journal *journal; /* open streams' progress, for a kill mid-stream (journal.h) */
    struct bill *bills;      /* background responses being billed (background.h) */
    struct keystore *keys;
    struct admission *admission;
    struct ratelimit *rate;   /* rpm, tpm and parallel limits (call_limits.c) */
    struct event *rate_sweep;
    struct ratelimit_redis *rate_redis; /* with a Redis: the limits shared through it */
    struct owners *owners;
    struct spend_sub *spend_sub;
    struct stats *stats;
    struct http_limits *limits; /* the HTTP server's (http_front.c, http_limits.h) */
    struct drain *drain;     /* non-NULL once SIGTERM started a drain */
    size_t in_flight;        /* requests taken and not yet answered and accounted */
    size_t authorized;       /* of them, those past their key check (global_max_parallel_requests) */
};

#endif
