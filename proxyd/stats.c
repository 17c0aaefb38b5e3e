/* stats.c - proxyd's metrics and access log lines (see stats.h).
 *
 * Everything is updated on the event loop thread; the registry's lock
 * (libtollgate/metrics.c) is uncontended there. Label values are route
 * patterns, configured model groups and status codes, so the series stay
 * few whatever clients send.
 */
#include "stats.h"

#include <stdio.h>
#include <stdlib.h>

#include "keystore.h"
#include "log.h"
#include "metrics.h"
#include "owners.h"
#include "publish.h"
#include "reload.h"

struct stats {
    struct metrics *m;
    int requests, duration, overhead, ttfb, upstream_errors, retries, refusals, reloads;
    int in_flight, unacked, spool_bytes, accountd_up, draining, generation;
    int damaged_ranges, damaged_bytes;
    int cache_entries, cache_evictions, negative_hits, lookups_refused, lookups_unseen;
    int ratelimit_refusals, redis_rtt, redis_errors, redis_up;
};

#define COUNTER(id, name, help, labels) bad |= (s->id = metrics_counter(s->m, name, help, labels)) < 0
#define GAUGE(id, name, help) bad |= (s->id = metrics_gauge(s->m, name, help, NULL)) < 0
#define LATENCY(id, name, help, label)                                                      \
    bad |= (s->id = metrics_histogram(s->m, name, help, label, metrics_latency_buckets,    \
                                      metrics_latency_nbuckets)) < 0

static int declare(struct stats *s)
{
    bool bad = false;
    COUNTER(requests, "tollgate_proxyd_requests_total",
            "Requests answered, by route, model group and status.", "route,model,status");
    LATENCY(duration, "tollgate_proxyd_request_duration_seconds",
            "Whole request time, first byte in to last byte out.", "route");
    LATENCY(overhead, "tollgate_proxyd_overhead_seconds",
            "Time proxyd added: the request's time less its time waiting on upstreams.", "route");
    LATENCY(ttfb, "tollgate_proxyd_stream_ttfb_seconds",
            "Streams: time until the first byte reached the client.", "model");
    COUNTER(upstream_errors, "tollgate_proxyd_upstream_errors_total",
            "Failed upstream attempts, by model group and reason.", "model,reason");
    COUNTER(retries, "tollgate_proxyd_upstream_retries_total",
            "Requests sent to another deployment after a failure.", "model");
    COUNTER(refusals, "tollgate_proxyd_budget_refusals_total",
            "Requests refused for a spent budget, by whose budget.", "kind");
    COUNTER(reloads, "tollgate_proxyd_reloads_total", "SIGHUP reloads, by result.", "result");
    GAUGE(in_flight, "tollgate_proxyd_requests_in_flight", "Requests taken and not yet finished.");
    GAUGE(unacked, "tollgate_proxyd_unacked_events", "Usage events not yet committed by accountd.");
    GAUGE(spool_bytes, "tollgate_proxyd_spool_bytes", "Size of the durable event spool on disk.");
    GAUGE(accountd_up, "tollgate_proxyd_accountd_connected", "1 while an accountd is connected.");
    GAUGE(draining, "tollgate_proxyd_draining", "1 once SIGTERM started a drain.");
    GAUGE(generation, "tollgate_proxyd_config_generation", "1 at start, +1 per accepted reload.");
    COUNTER(damaged_ranges, "tollgate_proxyd_spool_damaged_ranges_total",
            "Byte ranges of the spool holding no valid record, set aside at start.", NULL);
    COUNTER(damaged_bytes, "tollgate_proxyd_spool_damaged_bytes_total",
            "Bytes of those ranges (kept in spool_dir/damaged).", NULL);
    bad |= (s->cache_entries = metrics_gauge(s->m, "tollgate_proxyd_cache_entries",
                                             "Entries of the key, unknown-key and owner caches.",
                                             "cache")) < 0;
    COUNTER(cache_evictions, "tollgate_proxyd_cache_evictions_total",
            "Cache entries forgotten to make room (least recently used), by cache.", "cache");
    COUNTER(negative_hits, "tollgate_proxyd_key_negative_hits_total",
            "Unknown keys refused from the negative cache, without a lookup.", NULL);
    COUNTER(lookups_refused, "tollgate_proxyd_key_lookups_refused_total",
            "Lookups of never-seen keys, end users or tags refused past key_lookups_max.", NULL);
    GAUGE(lookups_unseen, "tollgate_proxyd_key_lookups_unseen",
          "Lookups of never-seen keys, end users or tags queued or running.");
    COUNTER(ratelimit_refusals, "tollgate_proxyd_ratelimit_refusals_total",
            "Requests refused 429 past a rate limit, by whose (api_key, ...) and which limit"
            " (requests, tokens, max_parallel_requests).", "descriptor,limit");
    static const double rtt[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                 0.1, 1};
    bad |= (s->redis_rtt = metrics_histogram(s->m, "tollgate_proxyd_ratelimit_redis_seconds",
                                             "Rate-limit checks through Redis: send to answer.",
                                             NULL, rtt, sizeof(rtt) / sizeof(rtt[0]))) < 0;
    COUNTER(redis_errors, "tollgate_proxyd_ratelimit_redis_errors_total",
            "Rate-limit commands Redis refused or never answered.", NULL);
    GAUGE(redis_up, "tollgate_proxyd_ratelimit_redis_up",
          "1 while rate limits are shared through Redis, 0 while they fall back.");
    return bad ? -1 : 0;
}

struct stats *stats_new(void)
{
    struct stats *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->m = metrics_new()) == NULL || declare(s) < 0) {
        stats_free(s);
        return NULL;
    }
    return s;
}

struct metrics *stats_metrics(struct stats *s)
{
    return s->m;
}

void stats_free(struct stats *s)
{
    if (s == NULL)
        return;
    metrics_free(s->m);
    free(s);
}

static void access_line(const struct stats_request *r)
{
    char status[16], ms[32], up[32], over[32], ttfb[32];
    snprintf(status, sizeof(status), "%d", r->status);
    snprintf(ms, sizeof(ms), "%.3f", (double)r->total_us / 1000.0);
    snprintf(up, sizeof(up), "%.3f", (double)r->upstream_us / 1000.0);
    snprintf(over, sizeof(over), "%.3f", (double)(r->total_us - r->upstream_us) / 1000.0);
    snprintf(ttfb, sizeof(ttfb), "%.3f", (double)r->ttfb_us / 1000.0);
    bool relayed = r->upstream_us >= 0;
    log_fields(r->status >= 500 ? LOG_WARN : LOG_INFO,
               (const char *[]){"request_id", r->request_id, "route", r->route, "model", r->model,
                                "deployment", r->deployment, "key_alias", r->key_alias,
                                "status", status, "stream", r->stream ? "true" : NULL,
                                "ms", ms, "upstream_ms", relayed ? up : NULL,
                                "overhead_ms", relayed ? over : NULL,
                                "ttfb_ms", r->ttfb_us >= 0 ? ttfb : NULL, NULL},
               "request");
}

void stats_request_done(struct stats *s, const struct stats_request *r)
{
    char status[16];
    snprintf(status, sizeof(status), "%d", r->status);
    metrics_add(s->m, s->requests, METRICS_LABELS(r->route, r->model, status), 1);
    metrics_observe(s->m, s->duration, METRICS_LABELS(r->route), (double)r->total_us / 1e6);
    if (r->upstream_us >= 0)
        metrics_observe(s->m, s->overhead, METRICS_LABELS(r->route),
                        (double)(r->total_us - r->upstream_us) / 1e6);
    if (r->ttfb_us >= 0)
        metrics_observe(s->m, s->ttfb, METRICS_LABELS(r->model), (double)r->ttfb_us / 1e6);
    access_line(r);
}

void stats_upstream_error(struct stats *s, const char *model, const char *reason)
{
    metrics_add(s->m, s->upstream_errors, METRICS_LABELS(model, reason), 1);
}

void stats_retry(struct stats *s, const char *model)
{
    metrics_add(s->m, s->retries, METRICS_LABELS(model), 1);
}

void stats_budget_refusal(struct stats *s, const char *kind)
{
    metrics_add(s->m, s->refusals, METRICS_LABELS(kind), 1);
}

void stats_ratelimit_refusal(struct stats *s, const char *descriptor, const char *limit)
{
    metrics_add(s->m, s->ratelimit_refusals, METRICS_LABELS(descriptor, limit), 1);
}

void stats_ratelimit_redis_rtt(struct stats *s, double seconds)
{
    metrics_observe(s->m, s->redis_rtt, NULL, seconds);
}

void stats_ratelimit_redis_error(struct stats *s)
{
    metrics_add(s->m, s->redis_errors, NULL, 1);
}

void stats_ratelimit_redis_up(struct stats *s, bool up)
{
    metrics_set(s->m, s->redis_up, NULL, up ? 1 : 0);
}

void stats_reload(struct stats *s, bool ok)
{
    metrics_add(s->m, s->reloads, METRICS_LABELS(ok ? "ok" : "refused"), 1);
}

/* A counter the spool keeps itself: the registry catches up with it. */
static void counter_to(struct stats *s, int id, uint64_t v)
{
    uint64_t now = (uint64_t)metrics_get(s->m, id, NULL);
    if (v > now)
        metrics_add(s->m, id, NULL, v - now);
}

/* The key and owner caches' sizes and counts (keystore.c, owners.c). */
static void cache_metrics(struct proxy *px)
{
    struct stats *s = px->stats;
    struct keystore_stats k;
    size_t owner_rows;
    uint64_t owner_evictions, now;
    keystore_stats(px->keys, &k);
    owners_stats(px->owners, &owner_rows, &owner_evictions);
    metrics_set(s->m, s->cache_entries, METRICS_LABELS("key"), (double)k.keys);
    metrics_set(s->m, s->cache_entries, METRICS_LABELS("unknown_key"), (double)k.unknown_keys);
    metrics_set(s->m, s->cache_entries, METRICS_LABELS("owner"), (double)owner_rows);
    const struct { const char *cache; uint64_t v; } ev[] = {
        {"key", k.evictions}, {"unknown_key", k.unknown_evictions}, {"owner", owner_evictions}};
    for (size_t i = 0; i < sizeof(ev) / sizeof(ev[0]); i++) {
        now = (uint64_t)metrics_get(s->m, s->cache_evictions, METRICS_LABELS(ev[i].cache));
        if (ev[i].v > now)
            metrics_add(s->m, s->cache_evictions, METRICS_LABELS(ev[i].cache), ev[i].v - now);
    }
    counter_to(s, s->negative_hits, k.negative_hits);
    counter_to(s, s->lookups_refused, k.refused);
    metrics_set(s->m, s->lookups_unseen, NULL, (double)k.unseen_in_flight);
}

void stats_reply(struct proxy *px, struct evhttp_request *req)
{
    cache_metrics(px);
    struct stats *s = px->stats;
    uint64_t ranges, bytes;
    publisher_spool_damage(px->pub, &ranges, &bytes);
    counter_to(s, s->damaged_ranges, ranges);
    counter_to(s, s->damaged_bytes, bytes);
    metrics_set(s->m, s->in_flight, NULL, (double)px->in_flight);
    metrics_set(s->m, s->unacked, NULL, (double)publisher_pending(px->pub));
    metrics_set(s->m, s->spool_bytes, NULL, (double)publisher_spool_bytes(px->pub));
    metrics_set(s->m, s->accountd_up, NULL, publisher_down_ms(px->pub) == 0 ? 1 : 0);
    metrics_set(s->m, s->draining, NULL, px->drain != NULL ? 1 : 0);
    metrics_set(s->m, s->generation, NULL, (double)px->gen->number);
    metrics_reply(s->m, req);
}
