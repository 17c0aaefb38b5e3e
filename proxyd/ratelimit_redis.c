/* ratelimit_redis.c - rate limits shared through Redis (see
 * ratelimit_redis.h).
 *
 * The scripts run by EVALSHA once SCRIPT LOAD answered (after every
 * connect), by EVAL before that or after a NOSCRIPT (Redis restarted
 * without its script cache). A take keeps its arguments until answered for
 * that second send. A take that gets no answer within ANSWER_TIMEOUT_MS
 * drops the link (every pending take is then answered -1 and falls back).
 */
#include "ratelimit_redis.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "redis_link.h"
#include "stats.h"

#define TICK_MS 100
#define ANSWER_TIMEOUT_MS 1000
#define KEYS_PER_ASK 3
#define ARGS_MAX (3 + KEYS_PER_ASK * RATELIMIT_MAX_ASKS + 4 + 3 * RATELIMIT_MAX_ASKS)

/* KEYS: per ask its window hash ("r:MS" and "t:MS" requests and tokens
 * admitted in millisecond MS, "r" and "t" their sums), the zset of those
 * milliseconds, and the zset of its parallel slots (scored by expiry).
 * ARGV: window ms, request id, tokens, slot ttl ms, then per ask rpm, tpm,
 * parallel (-1: none). Returns {0, ask, kind, limit, used, retry_ms} refused,
 * or {1, now, per ask: limit, remaining, reset for requests, for tokens, and
 * limit, remaining for parallel}. Both windows are written at the same
 * milliseconds, so one zset orders them. */
static const char TAKE_LUA[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local W, id, tok, ttl = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "local n = #KEYS / 3\n"
    "local function expire(h, z)\n"
    "  while true do\n"
    "    local old = redis.call('ZRANGEBYSCORE', z, '-inf', now - W, 'LIMIT', 0, 250)\n"
    "    if #old == 0 then return end\n"
    "    local f = {}\n"
    "    for _, ms in ipairs(old) do f[#f + 1] = 'r:' .. ms; f[#f + 1] = 't:' .. ms end\n"
    "    local v = redis.call('HMGET', h, unpack(f))\n"
    "    local r, s = 0, 0\n"
    "    for i = 1, #v, 2 do r = r + (tonumber(v[i]) or 0); s = s + (tonumber(v[i + 1]) or 0) end\n"
    "    redis.call('HINCRBY', h, 'r', -r)\n"
    "    redis.call('HINCRBY', h, 't', -s)\n"
    "    redis.call('HDEL', h, unpack(f))\n"
    "    redis.call('ZREM', z, unpack(old))\n"
    "  end\n"
    "end\n"
    "local function retry(h, z, which, u, need, limit)\n"
    "  if need > limit then return -1 end\n"
    "  local off = 0\n"
    "  while true do\n"
    "    local e = redis.call('ZRANGE', z, off, off + 99)\n"
    "    if #e == 0 then return 0 end\n"
    "    local f = {}\n"
    "    for i, ms in ipairs(e) do f[i] = which .. ':' .. ms end\n"
    "    local v = redis.call('HMGET', h, unpack(f))\n"
    "    for i, ms in ipairs(e) do\n"
    "      u = u - (tonumber(v[i]) or 0)\n"
    "      if u + need <= limit then return tonumber(ms) + W - now end\n"
    "    end\n"
    "    off = off + 100\n"
    "  end\n"
    "end\n"
    "local function lim(i, k) return tonumber(ARGV[5 + i * 3 + k]) end\n"
    "local used = {}\n"
    "for i = 0, n - 1 do\n"
    "  local h, z, p = KEYS[i * 3 + 1], KEYS[i * 3 + 2], KEYS[i * 3 + 3]\n"
    "  local rpm, tpm, par = lim(i, 0), lim(i, 1), lim(i, 2)\n"
    "  expire(h, z)\n"
    "  local v = redis.call('HMGET', h, 'r', 't')\n"
    "  local r, s, c = tonumber(v[1]) or 0, tonumber(v[2]) or 0, 0\n"
    "  if rpm >= 0 and r + 1 > rpm then return {0, i, 0, rpm, r, retry(h, z, 'r', r, 1, rpm)} end\n"
    "  if tpm >= 0 and s + tok > tpm then return {0, i, 1, tpm, s, retry(h, z, 't', s, tok, tpm)} end\n"
    "  if par >= 0 then\n"
    "    redis.call('ZREMRANGEBYSCORE', p, '-inf', now)\n"
    "    c = redis.call('ZCARD', p)\n"
    "    if c >= par then return {0, i, 2, par, c, -1} end\n"
    "  end\n"
    "  used[i] = {r, s, c}\n"
    "end\n"
    "local out = {1, now}\n"
    "for i = 0, n - 1 do\n"
    "  local h, z, p = KEYS[i * 3 + 1], KEYS[i * 3 + 2], KEYS[i * 3 + 3]\n"
    "  local rpm, tpm, par = lim(i, 0), lim(i, 1), lim(i, 2)\n"
    "  local r, s, c = used[i][1] + 1, used[i][2] + tok, used[i][3] + 1\n"
    "  redis.call('HINCRBY', h, 'r:' .. now, 1)\n"
    "  if tpm >= 0 then redis.call('HINCRBY', h, 't:' .. now, tok) else s = s - tok end\n"
    "  redis.call('HMSET', h, 'r', r, 't', s)\n"
    "  redis.call('ZADD', z, now, now)\n"
    "  redis.call('PEXPIRE', h, W + 1000)\n"
    "  redis.call('PEXPIRE', z, W + 1000)\n"
    "  if par >= 0 then\n"
    "    redis.call('ZADD', p, now + ttl, id)\n"
    "    redis.call('PEXPIRE', p, ttl + 1000)\n"
    "  end\n"
    "  local reset = tonumber(redis.call('ZRANGE', z, 0, 0)[1]) + W - now\n"
    "  local function rem(limit, u) if limit < 0 then return 0 end return math.max(0, limit - u) end\n"
    "  for _, x in ipairs({rpm, rem(rpm, r), rpm >= 0 and reset or 0, tpm, rem(tpm, s),\n"
    "                      tpm >= 0 and reset or 0, par, rem(par, c)}) do out[#out + 1] = x end\n"
    "end\n"
    "return out\n";

/* KEYS: per ask its window hash and zset and slots zset. ARGV: window ms,
 * request id, admission ms, tokens delta, then per ask tokens held, slot
 * held (0/1). */
static const char FINISH_LUA[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local W, id, at, delta = tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4])\n"
    "for i = 0, #KEYS / 3 - 1 do\n"
    "  local h, z, p = KEYS[i * 3 + 1], KEYS[i * 3 + 2], KEYS[i * 3 + 3]\n"
    "  if ARGV[5 + i * 2] == '1' and delta ~= 0 and tonumber(at) > now - W\n"
    "     and redis.call('ZSCORE', z, at) then\n"
    "    redis.call('HINCRBY', h, 't:' .. at, delta)\n"
    "    redis.call('HINCRBY', h, 't', delta)\n"
    "  end\n"
    "  if ARGV[6 + i * 2] == '1' then redis.call('ZREM', p, id) end\n"
    "end\n"
    "return 1\n";

enum { SCRIPT_TAKE, SCRIPT_FINISH, SCRIPTS };
static const char *const SCRIPT_TEXT[SCRIPTS] = {TAKE_LUA, FINISH_LUA};

/* A take sent and not yet answered. */
struct pending {
    struct ratelimit_redis *rr;
    ratelimit_redis_cb cb;
    void *arg;
    size_t n;
    int argc;
    char *argv[ARGS_MAX]; /* argv[0] is EVALSHA or EVAL, argv[1] the sha or script */
    size_t argvlen[ARGS_MAX];
    int64_t sent_us;
    bool evaled; /* already sent as EVAL */
};

struct ratelimit_redis {
    struct redis_link *link;
    const struct redis_config *rc;
    struct stats *stats;
    struct event *tick;
    char sha[SCRIPTS][41]; /* "" until SCRIPT LOAD answered on this connection */
    bool was_down;       /* an outage was logged: its end is too */
    size_t pending;
    int64_t progress_ms; /* the last answer (or the first send) while takes are pending */
};

static void on_link(void *arg, bool up, const char *why);

static void on_loaded(redisAsyncContext *c, void *r, void *arg)
{
    const redisReply *reply = r;
    char *sha = arg;
    (void)c;
    if (reply != NULL && reply->type == REDIS_REPLY_STRING && reply->len == 40)
        memcpy(sha, reply->str, 41);
}

/* Forgets the scripts' SHAs and, on a live link, loads them again. */
static void load_scripts(struct ratelimit_redis *rr, redisAsyncContext *ac)
{
    for (int i = 0; i < SCRIPTS; i++) {
        rr->sha[i][0] = '\0';
        if (ac != NULL &&
            redisAsyncCommand(ac, on_loaded, rr->sha[i], "SCRIPT LOAD %s", SCRIPT_TEXT[i]) !=
                REDIS_OK)
            log_warn("redis: cannot queue SCRIPT LOAD");
    }
}

static void on_link(void *arg, bool up, const char *why)
{
    struct ratelimit_redis *rr = arg;
    stats_ratelimit_redis_up(rr->stats, up);
    /* rr->link is NULL when the first attempt fails inside redis_link_new */
    load_scripts(rr, up && rr->link != NULL ? redis_link_ctx(rr->link) : NULL);
    if (up && rr->was_down)
        log_info("redis %s:%d answers: rate limits are shared through it again", rr->rc->host,
                 rr->rc->port);
    else if (!up)
        log_warn("redis %s:%d: %s; rate limits fall back (ratelimit_fallback) while it is away",
                 rr->rc->host, rr->rc->port, why);
    rr->was_down = !up;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct ratelimit_redis *rr = arg;
    (void)fd;
    (void)what;
    redis_link_tick(rr->link);
    if (rr->pending > 0 && clock_ms() - rr->progress_ms > ANSWER_TIMEOUT_MS) {
        stats_ratelimit_redis_error(rr->stats);
        redis_link_drop(rr->link, "no answer to a rate-limit check within 1 s");
    }
}

struct ratelimit_redis *ratelimit_redis_new(struct event_base *base,
                                            const struct redis_config *rc, struct stats *stats)
{
    static const struct timeval every = {0, TICK_MS * 1000};
    struct ratelimit_redis *rr = calloc(1, sizeof(*rr));
    if (rr == NULL)
        return NULL;
    rr->rc = rc;
    rr->stats = stats;
    stats_ratelimit_redis_up(stats, false);
    if ((rr->link = redis_link_new(base, rc, on_link, rr)) == NULL ||
        (rr->tick = event_new(base, -1, EV_PERSIST, on_tick, rr)) == NULL ||
        event_add(rr->tick, &every) != 0) {
        ratelimit_redis_free(rr);
        return NULL;
    }
    return rr;
}

void ratelimit_redis_free(struct ratelimit_redis *rr)
{
    if (rr == NULL)
        return;
    if (rr->tick != NULL)
        event_free(rr->tick);
    redis_link_free(rr->link); /* pending takes are answered NULL: -1 */
    free(rr);
}

bool ratelimit_redis_up(struct ratelimit_redis *rr)
{
    return redis_link_ctx(rr->link) != NULL;
}

static void pending_free(struct pending *p)
{
    for (int i = 2; i < p->argc; i++)
        free(p->argv[i]);
    free(p);
}

static int set_arg(struct pending *p, const char *s)
{
    size_t len = strlen(s);
    if ((p->argv[p->argc] = malloc(len + 1)) == NULL)
        return -1;
    memcpy(p->argv[p->argc], s, len + 1);
    p->argvlen[p->argc++] = len;
    return 0;
}

static int set_num(struct pending *p, int64_t v)
{
    char s[24];
    snprintf(s, sizeof(s), "%" PRId64, v);
    return set_arg(p, s);
}

static int64_t num(const redisReply *r, size_t i)
{
    return i < r->elements && r->element[i]->type == REDIS_REPLY_INTEGER ? r->element[i]->integer
                                                                           : 0;
}

static void on_take(redisAsyncContext *c, void *r, void *arg);

/* EVALSHA once the script is loaded, else EVAL. */
static int send_take(struct pending *p)
{
    struct ratelimit_redis *rr = p->rr;
    redisAsyncContext *ac = redis_link_ctx(rr->link);
    bool sha = rr->sha[SCRIPT_TAKE][0] != '\0' && !p->evaled;
    p->argv[0] = sha ? (char *)"EVALSHA" : (char *)"EVAL";
    p->argv[1] = sha ? rr->sha[SCRIPT_TAKE] : (char *)TAKE_LUA;
    p->argvlen[0] = strlen(p->argv[0]);
    p->argvlen[1] = strlen(p->argv[1]);
    if (ac == NULL || redisAsyncCommandArgv(ac, on_take, p, p->argc, (const char **)p->argv,
                                            p->argvlen) != REDIS_OK)
        return -1;
    if (rr->pending++ == 0)
        rr->progress_ms = clock_ms();
    return 0;
}

static void on_take(redisAsyncContext *c, void *r, void *arg)
{
    struct pending *p = arg;
    struct ratelimit_redis *rr = p->rr;
    const redisReply *reply = r;
    struct ratelimit_status st[RATELIMIT_MAX_ASKS][RL_KINDS];
    struct ratelimit_refusal why = {0};
    rr->pending--;
    rr->progress_ms = clock_ms();
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0 && !p->evaled) {
        load_scripts(rr, c); /* Redis forgot the scripts (SCRIPT FLUSH, a restart) */
        p->evaled = true;     /* this one once more, whole */
        if (send_take(p) == 0)
            return;
    }
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2) {
        if (reply != NULL) {
            stats_ratelimit_redis_error(rr->stats);
            redis_link_fail(rr->link, c, reply->type == REDIS_REPLY_ERROR
                                             ? reply->str : "unexpected answer to a take");
        }
        p->cb(p->arg, -1, NULL, NULL, 0);
        pending_free(p);
        return;
    }
    stats_ratelimit_redis_rtt(rr->stats, (double)(clock_us() - p->sent_us) / 1e6);
    if (num(reply, 0) == 0 && (num(reply, 1) < 0 || (size_t)num(reply, 1) >= p->n ||
                               num(reply, 2) < 0 || num(reply, 2) >= RL_KINDS)) {
        stats_ratelimit_redis_error(rr->stats); /* not our script's answer: decide here */
        p->cb(p->arg, -1, NULL, NULL, 0);
    } else if (num(reply, 0) == 0) {
        why = (struct ratelimit_refusal){.ask = (size_t)num(reply, 1),
                                         .kind = (enum ratelimit_kind)num(reply, 2),
                                         .limit = num(reply, 3), .used = num(reply, 4),
                                         .retry_ms = num(reply, 5)};
        p->cb(p->arg, 1, NULL, &why, 0);
    } else {
        for (size_t i = 0; i < p->n; i++) {
            size_t b = 2 + i * 8;
            st[i][RL_REQUESTS] = (struct ratelimit_status){num(reply, b), num(reply, b + 1),
                                                           num(reply, b + 2)};
            st[i][RL_TOKENS] = (struct ratelimit_status){num(reply, b + 3), num(reply, b + 4),
                                                         num(reply, b + 5)};
            st[i][RL_PARALLEL] = (struct ratelimit_status){num(reply, b + 6), num(reply, b + 7),
                                                           0};
        }
        p->cb(p->arg, 0, st, NULL, num(reply, 1));
    }
    pending_free(p);
}

/* A finish's answer: only a forgotten script matters (the next finish loads it). */
static void on_finish(redisAsyncContext *c, void *r, void *arg)
{
    struct ratelimit_redis *rr = arg;
    const redisReply *reply = r;
    if (reply == NULL || reply->type != REDIS_REPLY_ERROR)
        return;
    stats_ratelimit_redis_error(rr->stats);
    if (strncmp(reply->str, "NOSCRIPT", 8) == 0 && c == redis_link_ctx(rr->link))
        load_scripts(rr, c);
}

void ratelimit_redis_hold_clear(struct ratelimit_redis_hold *h)
{
    for (size_t i = 0; i < h->n; i++)
        free(h->names[i]);
    memset(h, 0, sizeof(*h));
}

/* "tg:rl:DESCRIPTOR:VALUE" + suffix as one more argument. */
static int set_key(struct pending *p, const char *name, const char *suffix)
{
    char buf[700];
    if (snprintf(buf, sizeof(buf), "%s:%s", name, suffix) >= (int)sizeof(buf))
        return -1;
    return set_arg(p, buf);
}

int ratelimit_redis_take(struct ratelimit_redis *rr, const struct ratelimit_ask *asks, size_t n,
                         int64_t tokens, const char *request_id, int64_t slot_ttl_ms,
                         struct ratelimit_redis_hold *h, ratelimit_redis_cb cb, void *arg)
{
    struct pending *p = calloc(1, sizeof(*p));
    bool ok = p != NULL && n <= RATELIMIT_MAX_ASKS;
    memset(h, 0, sizeof(*h));
    if (ok) {
        *p = (struct pending){.rr = rr, .cb = cb, .arg = arg, .n = n, .argc = 2,
                              .sent_us = clock_us()};
        ok = set_num(p, (int64_t)(n * KEYS_PER_ASK)) == 0;
    }
    for (size_t i = 0; ok && i < n; i++) {
        size_t len = strlen(asks[i].descriptor) + strlen(asks[i].value) + 8;
        if ((h->names[i] = malloc(len)) == NULL) {
            ok = false;
            break;
        }
        h->n = i + 1;
        snprintf(h->names[i], len, "tg:rl:%s:%s", asks[i].descriptor, asks[i].value);
        h->tokens[i] = asks[i].limit[RL_TOKENS] >= 0;
        h->parallel[i] = asks[i].limit[RL_PARALLEL] >= 0;
        ok = set_key(p, h->names[i], "w") == 0 && set_key(p, h->names[i], "z") == 0 &&
             set_key(p, h->names[i], "p") == 0;
    }
    ok = ok && set_num(p, RATELIMIT_WINDOW_MS) == 0 && set_arg(p, request_id) == 0 &&
         set_num(p, tokens) == 0 && set_num(p, slot_ttl_ms) == 0;
    for (size_t i = 0; ok && i < n; i++)
        for (int k = 0; ok && k < RL_KINDS; k++)
            ok = set_num(p, asks[i].limit[k]) == 0;
    h->estimate = tokens;
    if (!ok || send_take(p) < 0) {
        if (p != NULL)
            pending_free(p);
        ratelimit_redis_hold_clear(h);
        return -1;
    }
    return 0;
}

void ratelimit_redis_finish(struct ratelimit_redis *rr, struct ratelimit_redis_hold *h,
                            const char *request_id, int64_t tokens)
{
    redisAsyncContext *ac = redis_link_ctx(rr->link);
    struct pending p = {.argc = 2};
    bool any = false, ok = true;
    char nkeys[24];
    for (size_t i = 0; i < h->n; i++)
        any |= h->tokens[i] || h->parallel[i];
    if (ac != NULL && any) {
        snprintf(nkeys, sizeof(nkeys), "%zu", h->n * 3);
        ok = set_arg(&p, nkeys) == 0;
        for (size_t i = 0; ok && i < h->n; i++)
            ok = set_key(&p, h->names[i], "w") == 0 && set_key(&p, h->names[i], "z") == 0 &&
                 set_key(&p, h->names[i], "p") == 0;
        ok = ok && set_num(&p, RATELIMIT_WINDOW_MS) == 0 && set_arg(&p, request_id) == 0 &&
             set_num(&p, h->t_ms) == 0 && set_num(&p, (tokens > 0 ? tokens : 0) - h->estimate) == 0;
        for (size_t i = 0; ok && i < h->n; i++)
            ok = set_arg(&p, h->tokens[i] ? "1" : "0") == 0 &&
                 set_arg(&p, h->parallel[i] ? "1" : "0") == 0;
        bool sha = rr->sha[SCRIPT_FINISH][0] != '\0'; /* else EVAL: just connected */
        p.argv[0] = sha ? (char *)"EVALSHA" : (char *)"EVAL";
        p.argv[1] = sha ? rr->sha[SCRIPT_FINISH] : (char *)FINISH_LUA;
        p.argvlen[0] = strlen(p.argv[0]);
        p.argvlen[1] = strlen(p.argv[1]);
        if (ok && redisAsyncCommandArgv(ac, on_finish, rr, p.argc, (const char **)p.argv,
                                        p.argvlen) != REDIS_OK)
            ok = false;
        for (int i = 2; i < p.argc; i++)
            free(p.argv[i]);
        if (!ok)
            stats_ratelimit_redis_error(rr->stats);
    }
    ratelimit_redis_hold_clear(h);
}
