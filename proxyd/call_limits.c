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
 */
#include <event2/event.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "call_priv.h"
#include "clock.h"
#include "httpjson.h"
#include "log.h"
#include "ratelimit.h"
#include "reload.h"
#include "stats.h"

#define SWEEP_S 10 /* how often buckets with nothing in their window are freed */

static const char *const kind_names[RL_KINDS] = {"requests", "tokens", "max_parallel_requests"};

#define VALUE_MAX 600 /* "team:user" or "hash:model": two ids of at most 255 bytes */

/* The asks' values that are made up of two parts. */
struct ask_values {
    char member[VALUE_MAX], model_key[VALUE_MAX], model_team[VALUE_MAX];
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
    if (evhttp_add_header(evhttp_request_get_output_headers(c->req), name, value) != 0)
        log_request(LOG_WARN, c->request_id, "cannot add header %s", name);
}

static void header_i64(struct call *c, const char *name, int64_t v)
{
    char s[24];
    snprintf(s, sizeof(s), "%" PRId64, v);
    header(c, name, s);
}

/* A duration as OpenAI writes x-ratelimit-reset-*: "250ms", "1.5s", "1m0s". */
static void duration(int64_t ms, char *out, size_t len)
{
    if (ms < 1000) {
        snprintf(out, len, "%" PRId64 "ms", ms < 0 ? 0 : ms);
    } else if (ms < 60000) {
        int n = snprintf(out, len, "%" PRId64 ".%03" PRId64, ms / 1000, ms % 1000);
        while (n > 0 && out[n - 1] == '0')
            out[--n] = '\0';
        if (n > 0 && out[n - 1] == '.')
            out[--n] = '\0';
        snprintf(out + n, len - (size_t)n, "s");
    } else {
        snprintf(out, len, "%" PRId64 "m%" PRId64 "s", ms / 60000, ms % 60000 / 1000);
    }
}

static void headers_ok(struct call *c, const struct ratelimit_ask *asks, size_t n,
                       struct ratelimit_status (*st)[RL_KINDS])
{
    char name[96], reset[32];
    for (int k = RL_REQUESTS; k <= RL_TOKENS; k++) {
        const struct ratelimit_status *tight = NULL;
        for (size_t i = 0; i < n; i++) {
            if (st[i][k].limit == RATELIMIT_NONE)
                continue;
            snprintf(name, sizeof(name), "x-ratelimit-%s-remaining-%s", asks[i].descriptor,
                     kind_names[k]);
            header_i64(c, name, st[i][k].remaining);
            snprintf(name, sizeof(name), "x-ratelimit-%s-limit-%s", asks[i].descriptor,
                     kind_names[k]);
            header_i64(c, name, st[i][k].limit);
            if (tight == NULL || st[i][k].remaining < tight->remaining)
                tight = &st[i][k];
        }
        if (tight == NULL)
            continue;
        snprintf(name, sizeof(name), "x-ratelimit-limit-%s", kind_names[k]);
        header_i64(c, name, tight->limit);
        snprintf(name, sizeof(name), "x-ratelimit-remaining-%s", kind_names[k]);
        header_i64(c, name, tight->remaining);
        snprintf(name, sizeof(name), "x-ratelimit-reset-%s", kind_names[k]);
        duration(tight->reset_ms, reset, sizeof(reset));
        header(c, name, reset);
    }
}

/* LiteLLM's 429: "Rate limit exceeded for api_key: <hash>. Limit type: ...". */
static void refuse(struct call *c, const struct ratelimit_ask *a,
                   const struct ratelimit_refusal *why, int64_t tokens)
{
    char name[64], reset[32], at[32] = "";
    int64_t retry = why->retry_ms;
    struct timeval now;
    struct tm tm;
    time_t when;
    gettimeofday(&now, NULL);
    when = now.tv_sec + (time_t)((retry > 0 ? retry : RATELIMIT_WINDOW_MS) + 999) / 1000;
    if (gmtime_r(&when, &tm) != NULL)
        strftime(at, sizeof(at), "%Y-%m-%d %H:%M:%S UTC", &tm);
    if (why->kind != RL_PARALLEL) {
        snprintf(name, sizeof(name), "x-ratelimit-limit-%s", kind_names[why->kind]);
        header_i64(c, name, why->limit);
        snprintf(name, sizeof(name), "x-ratelimit-remaining-%s", kind_names[why->kind]);
        header_i64(c, name, why->limit > why->used ? why->limit - why->used : 0);
        if (retry >= 0) {
            snprintf(name, sizeof(name), "x-ratelimit-reset-%s", kind_names[why->kind]);
            duration(retry, reset, sizeof(reset));
            header(c, name, reset);
        }
    }
    if (retry != -1 || why->kind == RL_PARALLEL) /* a slot frees when a request ends */
        header_i64(c, "retry-after", retry > 0 ? (retry + 999) / 1000 : 1);
    header(c, "rate_limit_type", kind_names[why->kind]);
    stats_ratelimit_refusal(c->px->stats, a->descriptor, kind_names[why->kind]);
    int64_t left = why->limit > why->used ? why->limit - why->used : 0;
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

int call_limits_take(struct call *c)
{
    struct ratelimit_ask asks[RATELIMIT_MAX_ASKS];
    struct ratelimit_status st[RATELIMIT_MAX_ASKS][RL_KINDS];
    struct ratelimit_refusal why;
    struct ask_values values;
    size_t n = asks_of(c, asks, &values);
    if (n == 0)
        return 0;
    bool tpm = false;
    for (size_t i = 0; i < n; i++)
        tpm |= asks[i].limit[RL_TOKENS] != RATELIMIT_NONE;
    const struct config *cfg = c->gen->cfg;
    int64_t tokens = tpm ? reserve_tokens(c, cfg->ratelimit.count, cfg->ratelimit.output_tokens)
                         : 0;
    int rc = ratelimit_take(c->px->rate, asks, n, tokens, clock_ms(), c->limit_holds, st, &why);
    if (rc < 0) {
        call_error(c, 500, "internal_error", NULL, "out of memory");
        return -1;
    }
    if (rc > 0) {
        refuse(c, &asks[why.ask], &why, tokens);
        return -1;
    }
    c->n_limit_holds = n;
    headers_ok(c, asks, n, st);
    return 0;
}

void call_limits_settle(struct call *c, const struct usage *u)
{
    int64_t t;
    switch (c->gen->cfg->ratelimit.count) {
    case TOKENS_INPUT: t = u->prompt_tokens; break;
    case TOKENS_OUTPUT: t = u->completion_tokens; break;
    default:
        t = u->total_tokens > 0 ? u->total_tokens : u->prompt_tokens + u->completion_tokens;
    }
    for (size_t i = 0; i < c->n_limit_holds; i++)
        ratelimit_settle(c->px->rate, &c->limit_holds[i], t > 0 ? t : 0);
}

void call_limits_end(struct call *c)
{
    for (size_t i = 0; i < c->n_limit_holds; i++)
        ratelimit_release(c->px->rate, &c->limit_holds[i]);
    c->n_limit_holds = 0;
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
    if ((px->rate = ratelimit_new()) == NULL ||
        (px->rate_sweep = event_new(px->base, -1, EV_PERSIST, on_sweep, px->rate)) == NULL ||
        event_add(px->rate_sweep, &every) != 0)
        return -1;
    return 0;
}

void call_limits_stop(struct proxy *px)
{
    if (px->rate_sweep != NULL)
        event_free(px->rate_sweep);
    ratelimit_free(px->rate);
    px->rate_sweep = NULL;
    px->rate = NULL;
}
