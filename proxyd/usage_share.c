/* usage_share.c - usage-based routing's per-deployment counts of the minute,
 * shared among proxyd through Redis (see usage_share.h).
 *
 * DESIGN. One Redis connection (redis_link.h) per config generation, and one
 * timer (TICK_MS) that does all the periodic work: the link's own (connect,
 * retry), give up a refresh that is not answered (ANSWER_TIMEOUT_MS), else
 * send the refresh: one MGET of every deployment's rpm and tpm keys of the
 * current minute.
 *
 * An attempt's start sends INCRBY {model_id}:rpm:{HH-MM} 1, a success
 * INCRBY {model_id}:tpm:{HH-MM} tokens, each with EXPIRE ttl, as LiteLLM's
 * pre-call check and success callback; no reply is waited for. A pick reads
 * the last refresh's values plus this proxyd's increments since that
 * refresh was sent (Redis runs one connection's commands in order, so the
 * ones sent before the MGET are in its answer: `sent` is subtracted from
 * `since` when the answer comes).
 *
 * Redis down, unreachable, refusing AUTH or silent: the first failure is
 * logged once, the counts are not offered (usage_share_counts is false
 * once the last refresh is older than FRESH_MS), so router_pick.c falls back
 * to this proxyd's own counts, and the link connects again by itself.
 */
#include "usage_share.h"

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "redis_link.h"

#define TICK_MS 200             /* refresh period (and connect / timeout checks) */
#define FRESH_MS 1000           /* Redis's counts older than this are not used */
#define ANSWER_TIMEOUT_MS 2000  /* a refresh unanswered this long: the link is dropped */
#define KEY_EXTRA 16            /* ":rpm:HH-MM" and a NUL */

/* One deployment's minute. */
struct count {
    int64_t requests, tokens;             /* Redis's, at the last refresh */
    int64_t minute;                       /* of since_* */
    int64_t since_requests, since_tokens; /* added here since the last refresh was sent */
    int64_t sent_requests, sent_tokens;   /* of since_*, those sent before the refresh in flight */
};

struct usage_share {
    struct event_base *base;
    const struct config *cfg;
    const struct redis_config *rc;
    int ttl_s;
    struct redis_link *link;
    bool refreshing;       /* an MGET is in flight */
    int64_t refresh_sent_ms, refresh_minute;
    int64_t refreshed_ms, refreshed_minute; /* the last answered refresh */
    bool down_logged;      /* the outage was logged (once until Redis answers again) */
    struct event *tick;
    struct count *counts;  /* per deployment (index in cfg->deployments) */
    size_t n;
    const char **argv;     /* the MGET: 1 + 2n arguments */
    size_t *argvlen;
    char *keys;            /* their text, KEY_EXTRA + strlen(model_id) bytes each */
};

static int64_t utc_minute(void)
{
    return (int64_t)time(NULL) / 60;
}

/* "{model_id}:{kind}:{HH-MM}" (LiteLLM's key) into buf; its length. */
static size_t key_of(const struct usage_share *s, size_t i, const char *kind, int64_t minute,
                     char *buf, size_t size)
{
    int day_minute = (int)(minute % 1440);
    int n = snprintf(buf, size, "%s:%s:%02d-%02d", s->cfg->deployments[i].model_id, kind,
                     day_minute / 60, day_minute % 60);
    return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

/* The link's changes: logged once per outage, and when Redis is back. */
static void on_link(void *arg, bool up, const char *why)
{
    struct usage_share *s = arg;
    s->refreshing = false;
    if (!up && !s->down_logged)
        log_warn("redis %s:%d: %s; usage-based routing counts this proxyd's own requests "
                 "and tokens until Redis answers", s->rc->host, s->rc->port, why);
    else if (up && s->down_logged)
        log_info("redis %s:%d answers; usage-based routing shares its counts again",
                 s->rc->host, s->rc->port);
    s->down_logged = !up;
}

/* Redis's number in an MGET answer (nil: 0; LiteLLM may write floats). */
static int64_t value_of(const redisReply *r)
{
    if (r == NULL)
        return 0;
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    return r->type == REDIS_REPLY_STRING ? (int64_t)strtod(r->str, NULL) : 0;
}

static void on_refresh(redisAsyncContext *c, void *r, void *arg)
{
    struct usage_share *s = arg;
    const redisReply *reply = r;
    if (c != redis_link_ctx(s->link))
        return;
    s->refreshing = false;
    if (reply == NULL)
        return;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 * s->n) {
        redis_link_fail(s->link, c, reply->type == REDIS_REPLY_ERROR ? reply->str
                                                                     : "MGET: unexpected answer");
        return;
    }
    for (size_t i = 0; i < s->n; i++) {
        struct count *k = &s->counts[i];
        k->requests = value_of(reply->element[2 * i]);
        k->tokens = value_of(reply->element[2 * i + 1]);
        if (k->minute == s->refresh_minute) {
            k->since_requests -= k->sent_requests;
            k->since_tokens -= k->sent_tokens;
        }
        k->sent_requests = k->sent_tokens = 0;
    }
    s->refreshed_minute = s->refresh_minute;
    s->refreshed_ms = clock_ms();
}

/* Sends the MGET of every deployment's keys of this minute. */
static void share_refresh(struct usage_share *s)
{
    int64_t minute = utc_minute();
    char *at = s->keys;
    s->argv[0] = "MGET";
    s->argvlen[0] = 4;
    for (size_t i = 0; i < s->n; i++) {
        struct count *k = &s->counts[i];
        size_t size = strlen(s->cfg->deployments[i].model_id) + KEY_EXTRA;
        for (int kind = 0; kind < 2; kind++) {
            size_t a = 1 + 2 * i + (size_t)kind;
            s->argvlen[a] = key_of(s, i, kind == 0 ? "rpm" : "tpm", minute, at, size);
            s->argv[a] = at;
            at += size;
        }
        k->sent_requests = k->minute == minute ? k->since_requests : 0;
        k->sent_tokens = k->minute == minute ? k->since_tokens : 0;
    }
    if (redisAsyncCommandArgv(redis_link_ctx(s->link), on_refresh, s, (int)(1 + 2 * s->n),
                              s->argv, s->argvlen) != REDIS_OK)
        return;
    s->refreshing = true;
    s->refresh_sent_ms = clock_ms();
    s->refresh_minute = minute;
}

/* The periodic work (TICK_MS): the link's, time out, refresh. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct usage_share *s = arg;
    (void)fd;
    (void)what;
    redis_link_tick(s->link);
    if (redis_link_ctx(s->link) == NULL)
        return;
    if (!s->refreshing) {
        share_refresh(s);
    } else if (clock_ms() - s->refresh_sent_ms > ANSWER_TIMEOUT_MS) {
        s->refreshing = false;
        redis_link_drop(s->link, "no answer within 2 s");
    }
}

/* The MGET's argument arrays and key text, sized for cfg's deployments. */
static int alloc_keys(struct usage_share *s)
{
    size_t text = 0;
    for (size_t i = 0; i < s->n; i++)
        text += 2 * (strlen(s->cfg->deployments[i].model_id) + KEY_EXTRA);
    return (s->counts = calloc(s->n ? s->n : 1, sizeof(*s->counts))) == NULL ||
                   (s->argv = calloc(1 + 2 * s->n, sizeof(*s->argv))) == NULL ||
                   (s->argvlen = calloc(1 + 2 * s->n, sizeof(*s->argvlen))) == NULL ||
                   (s->keys = malloc(text ? text : 1)) == NULL
               ? -1 : 0;
}

struct usage_share *usage_share_new(struct event_base *base, const struct config *cfg,
                                    int ttl_s)
{
    static const struct timeval every = {0, TICK_MS * 1000};
    struct usage_share *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->base = base;
    s->cfg = cfg;
    s->rc = &cfg->router.redis;
    s->n = cfg->n_deployments;
    s->ttl_s = ttl_s > 0 ? ttl_s : 1;
    if (alloc_keys(s) < 0 || (s->link = redis_link_new(base, s->rc, on_link, s)) == NULL ||
        (s->tick = event_new(base, -1, EV_PERSIST, on_tick, s)) == NULL ||
        event_add(s->tick, &every) != 0) {
        usage_share_free(s);
        return NULL;
    }
    return s;
}

void usage_share_free(struct usage_share *s)
{
    if (s == NULL)
        return;
    if (s->tick != NULL)
        event_free(s->tick);
    redis_link_free(s->link);
    free(s->counts);
    free(s->argv);
    free(s->argvlen);
    free(s->keys);
    free(s);
}

bool usage_share_counts(struct usage_share *s, size_t i, int64_t *requests, int64_t *tokens)
{
    int64_t minute = utc_minute();
    const struct count *k = &s->counts[i];
    if (redis_link_ctx(s->link) == NULL || clock_ms() - s->refreshed_ms > FRESH_MS)
        return false;
    *requests = (s->refreshed_minute == minute ? k->requests : 0) +
                (k->minute == minute ? k->since_requests : 0);
    *tokens = (s->refreshed_minute == minute ? k->tokens : 0) +
              (k->minute == minute ? k->since_tokens : 0);
    return true;
}

/* INCRBY key by, then EXPIRE: sent, not waited for. */
static void send_incr(struct usage_share *s, size_t i, const char *kind, int64_t minute,
                      int64_t by)
{
    char key[512];
    size_t len = key_of(s, i, kind, minute, key, sizeof(key));
    redisAsyncContext *ac = redis_link_ctx(s->link);
    if (redisAsyncCommand(ac, NULL, NULL, "INCRBY %b %lld", key, len, (long long)by) == REDIS_OK)
        redisAsyncCommand(ac, NULL, NULL, "EXPIRE %b %d", key, len, s->ttl_s);
}

void usage_share_add(struct usage_share *s, size_t i, int64_t requests, int64_t tokens)
{
    int64_t minute = utc_minute();
    struct count *k = &s->counts[i];
    if (k->minute != minute) {
        k->minute = minute;
        k->since_requests = k->since_tokens = k->sent_requests = k->sent_tokens = 0;
    }
    k->since_requests += requests;
    k->since_tokens += tokens;
    if (redis_link_ctx(s->link) == NULL)
        return;
    if (requests > 0)
        send_incr(s, i, "rpm", minute, requests);
    if (tokens > 0)
        send_incr(s, i, "tpm", minute, tokens);
}
