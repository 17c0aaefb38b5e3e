/* stats.h - proxyd's Prometheus metrics (GET /metrics on its own port) and
 * its access log: one line per request, with the request id. */
#ifndef PROXYD_STATS_H
#define PROXYD_STATS_H

#include <event2/http.h>
#include <stdbool.h>
#include <stdint.h>

#include "proxy.h"

struct stats;

/* One finished request, as the metrics and the access line see it. */
struct stats_request {
    const char *route;      /* the route pattern, never the raw path */
    const char *model;      /* a configured model group, "unknown", or NULL */
    const char *request_id; /* NULL for requests that got none */
    const char *deployment; /* the last attempt's litellm_params.model, or NULL */
    const char *key_alias;  /* never the key itself */
    int status;             /* 499: the client left */
    bool stream;
    int64_t total_us;
    int64_t upstream_us;    /* < 0: not relayed (no overhead figure) */
    int64_t ttfb_us;        /* streams: until the first byte left; < 0: none */
};

struct stats *stats_new(void);
void stats_free(struct stats *s);
/* The registry, for what declares metrics of its own (http_limits.c). */
struct metrics *stats_metrics(struct stats *s);

void stats_request_done(struct stats *s, const struct stats_request *r);
/* An attempt failed (reason: "timeout", "connect", "http_429", "http_5xx", ...). */
void stats_upstream_error(struct stats *s, const char *model, const char *reason);
void stats_retry(struct stats *s, const char *model);
/* kind: key, user, team, team_member, end_user, tag. */
void stats_budget_refusal(struct stats *s, const char *kind);
void stats_ratelimit_refusal(struct stats *s, const char *descriptor, const char *limit);
void stats_ratelimit_redis_rtt(struct stats *s, double seconds);
void stats_ratelimit_redis_error(struct stats *s);
void stats_ratelimit_redis_up(struct stats *s, bool up);
void stats_reload(struct stats *s, bool ok);

/* GET /metrics: the gauges read now (in flight, spool, accountd), then the text. */
void stats_reply(struct proxy *px, struct evhttp_request *req);

#endif
