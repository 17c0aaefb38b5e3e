/* call_limits.c - a request's rate limits (ratelimit.h): taken once its
 * budgets admit it, refused past them with LiteLLM's 429, shown in
 * x-ratelimit-* headers, settled to the real tokens when the answer ends
 * and given back when the request ends, however it ends.
 *
 * Limits in force, named by LiteLLM's descriptors: the key's rpm_limit,
 * tpm_limit and max_parallel_requests ("api_key": the key's hash); its
 * internal user's and team's rpm / tpm ("user", "team"); its membership
 * budget's ("team_member": team:user); the end user's budget's ("end_user");
 * the key's and the team's metadata model_rpm_limit / model_tpm_limit for
 * the model asked ("model_per_key": hash:model, "model_per_team":
 * team:model). The master key has none. Headers: LiteLLM's per descriptor
 * (x-ratelimit-api_key-remaining-requests, ...-limit-tokens, ...) and
 * OpenAI's (x-ratelimit-limit-requests, -remaining-, -reset-; tokens
 * alike) for the tightest of the request's limits.
 *
 * Where the counts live: this proxyd's memory (ratelimit.c), or with a
 * Redis configured every proxyd's Redis (ratelimit_redis.c), asked once per
 * admission; while Redis cannot be reached, memory again at each limit /
 * ratelimit_instances, or nothing at all with ratelimit_fallback: open. A
 * request gives back what it took where it took it.
 */
#include <event2/event.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "call_priv.h"
#include "clock.h"
#include "httpjson.h"
#include "log.h"
#include "numtext.h"
#include "ratelimit.h"
#include "ratelimit_redis.h"
#include "reload.h"
#include "stats.h"

#define SWEEP_S 10 /* how often buckets with nothing in their window are freed */

static const char *const kind_names[RL_KINDS] = {"requests", "tokens", "max_parallel_requests"};

#define VALUE_MAX 600 /* "team:user" or "hash:model": two ids of at most 255 bytes */

/* The asks' values that are made up of two parts. */
struct ask_values {
    char member[VALUE_MAX], model_key[VALUE_MAX], model_team[VALUE_MAX];
};

/* A limited request's limits, from its admission to its end. */
struct limits_state {
    struct ratelimit_ask asks[RATELIMIT_MAX_ASKS];
    size_t n;
    struct ask_values values; /* what some asks' values point into */
    int64_t tokens;           /* the estimate taken */
    int64_t used;             /* the answer's real tokens; -1: no usage event (yet) */
    enum { HELD_NONE, HELD_HERE, HELD_REDIS } held;
    struct ratelimit_hold here[RATELIMIT_MAX_ASKS];
    struct ratelimit_redis_hold redis;
    void (*next)(struct call *c); /* once admitted */
};

static void add(struct ratelimit_ask *asks, size_t *n, const char *descriptor, const char *value,
                int64_t rpm, int64_t tpm, int64_t parallel)
{
    if (value != NULL && (rpm >= 0 || tpm >= 0 || parallel >= 0))
        asks[(*n)++] = (struct ratelimit_ask){descriptor, value, {rpm, tpm, parallel}};
}

/* A model's limit in the metadata's {GROUP: N} object `which` (-1: none). */
static int64_t model_limit(json_t *rates, const char *which, const char *group)
{
    json_t *v = json_object_get(json_object_get(rates, which), group);
    return json_is_integer(v) && json_integer_value(v) >= 0 ? (int64_t)json_integer_value(v) : -1;
}

static const char *joined(char *buf, const char *a, const char *b)
{
    return a != NULL && b != NULL && snprintf(buf, VALUE_MAX, "%s:%s", a, b) < VALUE_MAX ? buf
                                                                                     : NULL;
}

/* The request's limits: 0 asks when none applies. */
static size_t asks_of(const struct call *c, struct ratelimit_ask *asks, struct ask_values *v)
{
    const struct keyinfo *k = &c->key;
    size_t n = 0;
    if (k->token[0] == '\0')
        return 0; /* the master key */
    add(asks, &n, "api_key", k->token, k->key_rate.rpm, k->key_rate.tpm, k->max_parallel);
    add(asks, &n, "user", k->user_id, k->user_rate.rpm, k->user_rate.tpm, -1);
    add(asks, &n, "team", k->team_id, k->team_rate.rpm, k->team_rate.tpm, -1);
    add(asks, &n, "team_member", joined(v->member, k->team_id, k->user_id), k->member_rate.rpm,
        k->member_rate.tpm, -1);
    if (c->end_user != NULL && c->n_owner_rows > 0)
        add(asks, &n, "end_user", c->end_user, c->owner_rows[0].rate.rpm,
            c->owner_rows[0].rate.tpm, -1);
    json_t *rates = k->model_rate_json != NULL ? json_loads(k->model_rate_json, 0, NULL) : NULL;
    const char *group = c->model_group;
    add(asks, &n, "model_per_key", joined(v->model_key, k->token, group),
        model_limit(rates, "key_rpm", group), model_limit(rates, "key_tpm", group), -1);
    add(asks, &n, "model_per_team", joined(v->model_team, k->team_id, group),
        model_limit(rates, "team_rpm", group), model_limit(rates, "team_tpm", group), -1);
    json_decref(rates);
    return n;
}

static void header(struct call *c, const char *name, const char *value)
{
    if (reply_head_add(&c->head, name, value) != 0)
        log_request(LOG_WARN, c->request_id, "cannot add header %s", name);
}

static void header_i64(struct call *c, const char *name, int64_t v)
{
    char s[NUMTEXT_MAX];
    numtext_i64(s, v);
    header(c, name, s);
}

static char *put(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

/* "x-ratelimit-A-B" or "x-ratelimit-A-B-C" in out (RL_NAME_LEN bytes: the parts
 * are our own descriptors and words); built by hand, as the headers of
 * every answer of a limited key are (snprintf cost more than the rest). */
#define RL_NAME_LEN 96
static const char *rl_name(char *out, const char *a, const char *b, const char *c)
{
    char *p = put(out, "x-ratelimit-");
    p = put(p, a);
    *p++ = '-';
    p = put(p, b);
    if (c != NULL) {
        *p++ = '-';
        p = put(p, c);
    }
    *p = '\0';
    return out;
}

/* A duration as OpenAI writes x-ratelimit-reset-*: "250ms", "1.5s", "1m0s"
 * (out: 48 bytes). */
static void duration(int64_t ms, char *out)
{
    size_t n;
    if (ms < 1000) {
        n = numtext_i64(out, ms < 0 ? 0 : ms);
        memcpy(out + n, "ms", 3);
    } else if (ms < 60000) {
        int64_t frac = ms % 1000;
        n = numtext_i64(out, ms / 1000);
        if (frac != 0) {
            out[n++] = '.';
            out[n++] = (char)('0' + frac / 100);
            out[n++] = (char)('0' + frac / 10 % 10);
            out[n++] = (char)('0' + frac % 10);
            while (out[n - 1] == '0')
                n--;
        }
        memcpy(out + n, "s", 2);
    } else {
        n = numtext_i64(out, ms / 60000);
        out[n++] = 'm';
        n += numtext_i64(out + n, ms % 60000 / 1000);
        memcpy(out + n, "s", 2);
    }
}

static void headers_ok(struct call *c, const struct ratelimit_ask *asks, size_t n,
                       struct ratelimit_status (*st)[RL_KINDS])
{
    char name[RL_NAME_LEN], reset[48];
    for (int k = RL_REQUESTS; k <= RL_TOKENS; k++) {
        const struct ratelimit_status *tight = NULL;
        for (size_t i = 0; i < n; i++) {
            if (st[i][k].limit == RATELIMIT_NONE)
                continue;
            header_i64(c, rl_name(name, asks[i].descriptor, "remaining", kind_names[k]),
                       st[i][k].remaining);
            header_i64(c, rl_name(name, asks[i].descriptor, "limit", kind_names[k]),
                       st[i][k].limit);
            if (tight == NULL || st[i][k].remaining < tight->remaining)
                tight = &st[i][k];
        }
        if (tight == NULL)
            continue;
        header_i64(c, rl_name(name, "limit", kind_names[k], NULL), tight->limit);
        header_i64(c, rl_name(name, "remaining", kind_names[k], NULL), tight->remaining);
        duration(tight->reset_ms, reset);
        header(c, rl_name(name, "reset", kind_names[k], NULL), reset);
    }
}

/* LiteLLM's 429: "Rate limit exceeded for api_key: <hash>. Limit type: ...". */
static void refuse(struct call *c, const struct ratelimit_ask *a,
                   const struct ratelimit_refusal *why, int64_t tokens)
{
    char name[RL_NAME_LEN], reset[48], at[32] = "";
    int64_t retry = why->retry_ms, left = why->limit > why->used ? why->limit - why->used : 0;
    struct timeval now;
    struct tm tm;
    time_t when;
    gettimeofday(&now, NULL);
    when = now.tv_sec + (time_t)((retry > 0 ? retry : RATELIMIT_WINDOW_MS) + 999) / 1000;
    if (gmtime_r(&when, &tm) != NULL)
        strftime(at, sizeof(at), "%Y-%m-%d %H:%M:%S UTC", &tm);
    if (why->kind != RL_PARALLEL) {
        header_i64(c, rl_name(name, "limit", kind_names[why->kind], NULL), why->limit);
        header_i64(c, rl_name(name, "remaining", kind_names[why->kind], NULL), left);
        if (retry >= 0) {
            duration(retry, reset);
            header(c, rl_name(name, "reset", kind_names[why->kind], NULL), reset);
        }
    }
    if (retry != -1 || why->kind == RL_PARALLEL) /* a slot frees when a request ends */
        header_i64(c, "retry-after", retry > 0 ? (retry + 999) / 1000 : 1);
    header(c, "rate_limit_type", kind_names[why->kind]);
    stats_ratelimit_refusal(c->px->stats, a->descriptor, kind_names[why->kind]);
    if (why->kind == RL_TOKENS && retry == -1)
        call_error(c, 429, "rate_limit_error", NULL,
                   "Rate limit exceeded for %s: %s. Limit type: tokens. Current limit: %" PRId64
                   ", Remaining: %" PRId64 ". This request alone is estimated at %" PRId64
                   " tokens (its prompt and max_tokens), more than the limit: ask for fewer"
                   " max_tokens.", a->descriptor, a->value, why->limit, left, tokens);
    else
        call_error(c, 429, "rate_limit_error", NULL,
                   "Rate limit exceeded for %s: %s. Limit type: %s. Current limit: %" PRId64
                   ", Remaining: %" PRId64 ". Limit resets at: %s", a->descriptor, a->value,
                   kind_names[why->kind], why->limit, left, at);
}

/* Admitted: headers, then on. */
static void admitted(struct call *c, struct ratelimit_status (*st)[RL_KINDS])
{
    struct limits_state *ls = c->limits;
    if (st != NULL)
        headers_ok(c, ls->asks, ls->n, st);
    ls->next(c);
}

static void refused(struct call *c, const struct ratelimit_refusal *why)
{
    refuse(c, &c->limits->asks[why->ask], why, c->limits->tokens);
    call_free(c);
}

/* Here, in memory: the limits as they are, or (Redis unreachable) each
 * divided among ratelimit_instances proxyd, or none (fail open). */
static void take_here(struct call *c, bool fallback)
{
    struct limits_state *ls = c->limits;
    const struct config *cfg = c->px->cfg;
    struct ratelimit_status st[RATELIMIT_MAX_ASKS][RL_KINDS];
    struct ratelimit_ask asks[RATELIMIT_MAX_ASKS];
    struct ratelimit_refusal why;
    if (fallback && cfg->ratelimit.fail_open) {
        ls->next(c);
        return;
    }
    for (size_t i = 0; i < ls->n; i++) {
        asks[i] = ls->asks[i];
        for (int k = 0; fallback && k < RL_KINDS; k++) {
            int64_t l = asks[i].limit[k];
            if (l > 0)
                asks[i].limit[k] = l / cfg->ratelimit.instances > 0 ? l / cfg->ratelimit.instances
                                                                     : 1;
        }
    }
    int rc = ratelimit_take(c->px->rate, asks, ls->n, ls->tokens, clock_ms(), ls->here, st, &why);
    if (rc < 0) {
        call_error(c, 500, "internal_error", NULL, "out of memory");
        call_free(c);
    } else if (rc > 0) {
        refused(c, &why);
    } else {
        ls->held = HELD_HERE;
        admitted(c, st);
    }
}

static void on_redis(void *arg, int rc, struct ratelimit_status (*st)[RL_KINDS],
                     const struct ratelimit_refusal *why, int64_t t_ms)
{
    struct call *c = arg;
    struct limits_state *ls = c->limits;
    if (rc == 0) {
        ls->held = HELD_REDIS;
        ls->redis.t_ms = t_ms;
        admitted(c, st);
        return;
    }
    ratelimit_redis_hold_clear(&ls->redis);
    if (rc > 0)
        refused(c, why);
    else
        take_here(c, true); /* Redis failed or went away meanwhile */
}

/* A heap copy of the state built on the stack, its asks' values moved
 * along (those that point into its own buffers). NULL on ENOMEM. */
static struct limits_state *keep(const struct limits_state *local)
{
    struct limits_state *ls = malloc(sizeof(*ls));
    const char *from = (const char *)&local->values;
    if (ls == NULL)
        return NULL;
    *ls = *local;
    for (size_t i = 0; i < ls->n; i++) {
        /* as integers: the other values point into other objects (the key, the body) */
        uintptr_t at = (uintptr_t)ls->asks[i].value - (uintptr_t)from;
        if (at < sizeof(local->values))
            ls->asks[i].value = (const char *)&ls->values + at;
    }
    return ls;
}

void call_limits_take(struct call *c, void (*next)(struct call *c))
{
    struct limits_state local = {.next = next, .used = -1}, *ls;
    struct ratelimit_redis *rr = c->px->rate_redis;
    if ((local.n = asks_of(c, local.asks, &local.values)) == 0) {
        next(c); /* most requests: nothing to take, nothing allocated */
        return;
    }
    if ((ls = keep(&local)) == NULL) {
        call_error(c, 500, "internal_error", NULL, "out of memory");
        call_free(c);
        return;
    }
    c->limits = ls;
    bool tpm = false;
    for (size_t i = 0; i < ls->n; i++)
        tpm |= ls->asks[i].limit[RL_TOKENS] != RATELIMIT_NONE;
    const struct config *cfg = c->gen->cfg; /* reloadable; the Redis settings are start-up's */
    ls->tokens = tpm ? reserve_tokens(c, cfg->ratelimit.count, cfg->ratelimit.output_tokens) : 0;
    if (rr == NULL)
        take_here(c, false);
    else if (!ratelimit_redis_up(rr) ||
             ratelimit_redis_take(rr, ls->asks, ls->n, ls->tokens, &ls->redis, on_redis, c) < 0)
        take_here(c, true);
}

static int64_t counted(const struct config *cfg, const struct usage *u)
{
    int64_t t;
    switch (cfg->ratelimit.count) {
    case TOKENS_INPUT: t = u->prompt_tokens; break;
    case TOKENS_OUTPUT: t = u->completion_tokens; break;
    default:
        t = u->total_tokens > 0 ? u->total_tokens : u->prompt_tokens + u->completion_tokens;
    }
    return t > 0 ? t : 0;
}

void call_limits_settle(struct call *c, const struct usage *u)
{
    struct limits_state *ls = c->limits;
    if (ls == NULL)
        return;
    ls->used = counted(c->gen->cfg, u);
    for (size_t i = 0; ls->held == HELD_HERE && i < ls->n; i++)
        ratelimit_settle(c->px->rate, &ls->here[i], ls->used);
}

void call_limits_end(struct call *c)
{
    struct limits_state *ls = c->limits;
    if (ls == NULL)
        return;
    for (size_t i = 0; ls->held == HELD_HERE && i < ls->n; i++)
        ratelimit_release(c->px->rate, &ls->here[i]);
    if (ls->held == HELD_REDIS && c->px->rate_redis != NULL)
        ratelimit_redis_finish(c->px->rate_redis, &ls->redis, ls->used);
    else if (ls->held == HELD_REDIS) /* teardown: Redis let go first; the slot expires */
        ratelimit_redis_hold_clear(&ls->redis);
    free(ls);
    c->limits = NULL;
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ratelimit_sweep(arg, clock_ms());
}

int call_limits_start(struct proxy *px)
{
    struct timeval every = {SWEEP_S, 0};
    const struct redis_config *rc = &px->cfg->router.redis;
    if ((px->rate = ratelimit_new()) == NULL ||
        (px->rate_sweep = event_new(px->base, -1, EV_PERSIST, on_sweep, px->rate)) == NULL ||
        event_add(px->rate_sweep, &every) != 0 ||
        (rc->host[0] != '\0' &&
         (px->rate_redis = ratelimit_redis_new(px->base, rc, px->cfg->ratelimit.slot_ttl_ms,
                                               px->stats)) == NULL))
        return -1;
    if (rc->host[0] != '\0')
        log_info("rate limits are shared through redis %s:%d", rc->host, rc->port);
    return 0;
}

void call_limits_unshare(struct proxy *px)
{
    ratelimit_redis_free(px->rate_redis); /* takes waiting on it fall back here */
    px->rate_redis = NULL;
}

void call_limits_stop(struct proxy *px)
{
    call_limits_unshare(px);
    if (px->rate_sweep != NULL)
        event_free(px->rate_sweep);
    ratelimit_free(px->rate);
    px->rate_sweep = NULL;
    px->rate = NULL;
}
