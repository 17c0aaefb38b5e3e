/* usage_share.c - usage-based routing's per-deployment counts of the minute,
 * shared among proxyd through Redis (see usage_share.h).
 *
 * DESIGN. One hiredis asynchronous connection on proxyd's libevent loop per
 * config generation, and one timer (TICK_MS) that does all the periodic work:
 * connect when the link is down and its backoff has passed, give up a
 * connection that does not come up (CONNECT_TIMEOUT_MS) or a refresh that
 * is not answered (ANSWER_TIMEOUT_MS), else send the refresh: one MGET of
 * every deployment's rpm and tpm keys of the current minute.
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
 * to this proxyd's own counts, and the connection is tried again with a
 * doubling backoff (BACKOFF_MIN_MS to BACKOFF_MAX_MS). The host name is
 * resolved with evdns, so a slow DNS never blocks the loop.
 */
#include "usage_share.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"

#define TICK_MS 200             /* refresh period (and connect / timeout checks) */
#define FRESH_MS 1000           /* Redis's counts older than this are not used */
#define CONNECT_TIMEOUT_MS 2000
#define ANSWER_TIMEOUT_MS 2000  /* a refresh unanswered this long: the link is dropped */
#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 10000
#define KEY_EXTRA 16            /* ":rpm:HH-MM" and a NUL */

/* One deployment's minute. */
struct count {
    int64_t requests, tokens;             /* Redis's, at the last refresh */
    int64_t minute;                       /* of since_* */
    int64_t since_requests, since_tokens; /* added here since the last refresh was sent */
    int64_t sent_requests, sent_tokens;   /* of since_*, those sent before the refresh in flight */
};

enum link { LINK_DOWN, LINK_RESOLVING, LINK_CONNECTING, LINK_UP };

struct usage_share {
    struct event_base *base;
    struct evdns_base *dns;
    struct evdns_getaddrinfo_request *resolving;
    const struct config *cfg;
    const struct redis_config *rc;
    int ttl_s;
    redisAsyncContext *ac;
    enum link link;
    int64_t deadline_ms;   /* connecting: give up then */
    int64_t retry_at_ms, backoff_ms;
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

/* The link is down (already detached from s->ac): logged once, retried later. */
static void share_down(struct usage_share *s, const char *why)
{
    if (!s->down_logged)
        log_warn("redis %s:%d: %s; usage-based routing counts this proxyd's own requests "
                 "and tokens until Redis answers", s->rc->host, s->rc->port, why);
    s->down_logged = true;
    s->link = LINK_DOWN;
    s->refreshing = false;
    s->backoff_ms = s->backoff_ms == 0 ? BACKOFF_MIN_MS
                    : s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
    s->retry_at_ms = clock_ms() + s->backoff_ms;
}

/* Ends the lookup or connection in progress (not from a hiredis callback). */
static void share_detach(struct usage_share *s)
{
    struct evdns_getaddrinfo_request *req = s->resolving;
    redisAsyncContext *ac = s->ac;
    s->resolving = NULL;
    s->ac = NULL; /* the callbacks hiredis runs while freeing see it is gone */
    if (req != NULL)
        evdns_getaddrinfo_cancel(req);
    if (ac != NULL)
        redisAsyncFree(ac);
}

static void on_connect(const redisAsyncContext *c, int status)
{
    struct usage_share *s = c->data;
    if (s == NULL || c != s->ac)
        return;
    if (status != REDIS_OK) {
        s->ac = NULL; /* hiredis frees it */
        share_down(s, c->errstr[0] != '\0' ? c->errstr : "cannot connect");
        return;
    }
    s->link = LINK_UP;
}

static void on_disconnect(const redisAsyncContext *c, int status)
{
    struct usage_share *s = c->data;
    if (s == NULL || c != s->ac)
        return;
    s->ac = NULL; /* hiredis frees it */
    share_down(s, status == REDIS_OK ? "disconnected" : c->errstr);
}

/* An error answer: logged (once), and the connection closed to start again. */
static void reply_failed(struct usage_share *s, redisAsyncContext *c, const char *what,
                         const redisReply *reply)
{
    if (!s->down_logged)
        log_warn("redis %s:%d: %s: %s", s->rc->host, s->rc->port, what,
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected answer");
    s->down_logged = true;
    redisAsyncDisconnect(c); /* on_disconnect follows, after this callback */
}

/* AUTH's and SELECT's answers. */
static void on_setup(redisAsyncContext *c, void *r, void *arg)
{
    struct usage_share *s = arg;
    const redisReply *reply = r;
    if (c != s->ac || reply == NULL || reply->type != REDIS_REPLY_ERROR)
        return;
    reply_failed(s, c, "AUTH or SELECT", reply);
}

/* Starts the connection to the resolved address ip. */
static void share_open(struct usage_share *s, const char *ip)
{
    const struct redis_config *rc = s->rc;
    redisAsyncContext *ac = redisAsyncConnect(ip, rc->port);
    if (ac == NULL || ac->err) {
        share_down(s, ac != NULL ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        return;
    }
    ac->data = s;
    if (redisLibeventAttach(ac, s->base) != REDIS_OK ||
        redisAsyncSetConnectCallback(ac, on_connect) != REDIS_OK ||
        redisAsyncSetDisconnectCallback(ac, on_disconnect) != REDIS_OK) {
        ac->data = NULL;
        redisAsyncFree(ac);
        share_down(s, "cannot watch the connection");
        return;
    }
    s->ac = ac;
    s->link = LINK_CONNECTING;
    /* queued: hiredis sends them once connected, before any other command */
    if (rc->password[0] != '\0' && rc->user[0] != '\0')
        redisAsyncCommand(ac, on_setup, s, "AUTH %s %s", rc->user, rc->password);
    else if (rc->password[0] != '\0')
        redisAsyncCommand(ac, on_setup, s, "AUTH %s", rc->password);
    if (rc->db != 0)
        redisAsyncCommand(ac, on_setup, s, "SELECT %d", rc->db);
}

static void on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
    struct usage_share *s = arg;
    char ip[INET6_ADDRSTRLEN] = "";
    if (result == EVUTIL_EAI_CANCEL)
        return; /* share_detach: s is being torn down or reset */
    s->resolving = NULL;
    if (result == 0 && res != NULL) {
        const void *addr = res->ai_family == AF_INET6
                               ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
                               : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
        if (evutil_inet_ntop(res->ai_family, addr, ip, sizeof(ip)) == NULL)
            ip[0] = '\0';
    }
    if (res != NULL)
        evutil_freeaddrinfo(res);
    if (ip[0] == '\0') {
        share_down(s, result != 0 ? evutil_gai_strerror(result) : "no address");
        return;
    }
    share_open(s, ip);
}

/* Looks the host up (evdns: the loop never waits), then connects. */
static void share_connect(struct usage_share *s)
{
    struct evutil_addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    s->link = LINK_RESOLVING;
    s->deadline_ms = clock_ms() + CONNECT_TIMEOUT_MS;
    struct evdns_getaddrinfo_request *req =
        evdns_getaddrinfo(s->dns, s->rc->host, NULL, &hints, on_resolved, s);
    if (s->link == LINK_RESOLVING) /* else answered already (an address, /etc/hosts) */
        s->resolving = req;
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
    if (c != s->ac)
        return;
    s->refreshing = false;
    if (reply == NULL)
        return;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 * s->n) {
        reply_failed(s, c, "MGET", reply);
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
    s->backoff_ms = 0;
    if (s->down_logged)
        log_info("redis %s:%d answers; usage-based routing shares its counts again",
                 s->rc->host, s->rc->port);
    s->down_logged = false;
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
    if (redisAsyncCommandArgv(s->ac, on_refresh, s, (int)(1 + 2 * s->n), s->argv, s->argvlen) !=
        REDIS_OK)
        return;
    s->refreshing = true;
    s->refresh_sent_ms = clock_ms();
    s->refresh_minute = minute;
}

/* The periodic work (TICK_MS): connect, time out, refresh. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct usage_share *s = arg;
    int64_t now = clock_ms();
    (void)fd;
    (void)what;
    switch (s->link) {
    case LINK_DOWN:
        if (now >= s->retry_at_ms)
            share_connect(s);
        break;
    case LINK_RESOLVING:
    case LINK_CONNECTING:
        if (now >= s->deadline_ms) {
            share_detach(s);
            share_down(s, "no connection within 2 s");
        }
        break;
    case LINK_UP:
        if (!s->refreshing) {
            share_refresh(s);
        } else if (now - s->refresh_sent_ms > ANSWER_TIMEOUT_MS) {
            share_detach(s);
            share_down(s, "no answer within 2 s");
        }
        break;
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
    /* resolv.conf is read once here (at start or reload); without one,
     * only addresses and /etc/hosts resolve */
    if ((s->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS)) == NULL)
        s->dns = evdns_base_new(base, 0);
    if (s->dns == NULL || alloc_keys(s) < 0 ||
        (s->tick = event_new(base, -1, EV_PERSIST, on_tick, s)) == NULL ||
        event_add(s->tick, &every) != 0) {
        usage_share_free(s);
        return NULL;
    }
    share_connect(s);
    return s;
}

void usage_share_free(struct usage_share *s)
{
    if (s == NULL)
        return;
    if (s->tick != NULL)
        event_free(s->tick);
    share_detach(s);
    if (s->dns != NULL)
        evdns_base_free(s->dns, 0);
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
    if (s->link != LINK_UP || clock_ms() - s->refreshed_ms > FRESH_MS)
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
    if (redisAsyncCommand(s->ac, NULL, NULL, "INCRBY %b %lld", key, len, (long long)by) ==
        REDIS_OK)
        redisAsyncCommand(s->ac, NULL, NULL, "EXPIRE %b %d", key, len, s->ttl_s);
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
    if (s->link != LINK_UP)
        return;
    if (requests > 0)
        send_incr(s, i, "rpm", minute, requests);
    if (tokens > 0)
        send_incr(s, i, "tpm", minute, tokens);
}
