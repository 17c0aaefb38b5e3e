/* ratelimit_redis.c - rate limits shared through Redis (see
 * ratelimit_redis.h; the script and its keys: ratelimit_lua.h).
 *
 * Batches: takes and finishes are queued and sent together as one script
 * call, so concurrent requests share Redis's per-call and per-owner work
 * (a call, not a request, is what costs Redis its time). The queue goes at
 * the end of the loop's turn (an event queued behind the turn's other
 * callbacks) unless a call with takes is still unanswered: then it goes
 * when that answer comes, so a busy loop's batches grow to what arrives in
 * one round trip, and a quiet one's takes go at once. A queue of more than
 * BATCH_MAX goes as several calls, pipelined. An owner met by several of a
 * call's requests is named, and its limits sent, once; an answered batch
 * is kept for the next, so a busy loop allocates none.
 *
 * The script runs by EVALSHA once SCRIPT LOAD answered (after every
 * connect), by EVAL before that or after a NOSCRIPT (Redis restarted
 * without its script cache); a batch keeps its arguments until answered
 * for that second send. A call that gets no answer within
 * ANSWER_TIMEOUT_MS drops the link: every take in flight is then answered
 * -1 and falls back. Finishes are best effort: lost with the link.
 *
 * Parallel slots are counted per proxyd ID in Redis. Each connect takes a
 * new ID and keeps its heartbeat key ("tg:rl2:hb:ID") alive, renewed every
 * third of slot_ttl_ms; what was taken under an older ID is not given
 * back (its finishes may have been lost with the link) but left to expire
 * with that ID's heartbeat, as a killed proxyd's slots do.
 */
#include "ratelimit_redis.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ids.h"
#include "log.h"
#include "proxy.h"
#include "ratelimit_lua.h"
#include "redis_args.h"
#include "redis_link.h"
#include "stats.h"

#define TICK_MS 100
#define ANSWER_TIMEOUT_MS 1000
#define BATCH_MAX 64 /* takes and finishes in one script call */
#define OWNERS_MAX (BATCH_MAX * RATELIMIT_MAX_ASKS)

/* A take queued or sent, not yet answered. */
struct take {
    ratelimit_redis_cb cb;
    void *arg;
    size_t n;                                   /* its asks */
    int64_t limit[RATELIMIT_MAX_ASKS][RL_KINDS]; /* theirs: the answer has the use */
};

/* One script call: built during a turn, sent at its end, freed (or kept
 * as the spare, buffers and all) once answered. */
struct batch {
    struct ratelimit_redis *rr;
    struct batch *next;          /* the queue of batches not yet sent */
    struct redis_args keys;      /* three per owner */
    struct redis_args finishes;  /* ARGV's finishes, then */
    struct redis_args takes;     /* its takes */
    size_t ntakes, nfinishes;
    int64_t sent_us;
    bool evaled;                 /* already sent as EVAL */
    /* last, not zeroed (26 KB), filled as owners and takes come: */
    int64_t limit[OWNERS_MAX][RL_KINDS]; /* per owner, sent once */
    struct take take[BATCH_MAX];
};

struct ratelimit_redis {
    struct redis_link *link;
    const struct redis_config *rc;
    int64_t slot_ttl_ms;
    struct stats *stats;
    struct event *tick, *flush;
    struct batch *queue, *last; /* built this turn, not yet sent */
    struct batch *spare;        /* an answered batch, for the next one */
    struct redis_args head, counts; /* a call's own arguments, rewritten per call */
    char sha[41];               /* "" until SCRIPT LOAD answered on this connection */
    char id[IDS_UUID_LEN + 1];  /* this connection's proxyd ID (the script's "me") */
    unsigned gen;               /* connections so far: a hold's is its ID's */
    int64_t beat_ms;            /* the heartbeat last sent */
    bool was_down;              /* an outage was logged: its end is too */
    size_t in_flight;           /* calls sent, not yet answered */
    size_t takes_in_flight;     /* of those, calls with takes */
    int64_t progress_ms; /* the last answer (or the first send) while calls are in flight */
};

static void on_loaded(redisAsyncContext *c, void *r, void *arg)
{
    const redisReply *reply = r;
    char *sha = arg;
    (void)c;
    if (reply != NULL && reply->type == REDIS_REPLY_STRING && reply->len == 40)
        memcpy(sha, reply->str, 41);
}

/* Forgets the script's SHA and, on a live link, loads it again. */
static void load_script(struct ratelimit_redis *rr, redisAsyncContext *ac)
{
    rr->sha[0] = '\0';
    if (ac != NULL &&
        redisAsyncCommand(ac, on_loaded, rr->sha, "SCRIPT LOAD %s", RATELIMIT_LUA) != REDIS_OK)
        log_warn("redis: cannot queue SCRIPT LOAD");
}

/* This proxyd's heartbeat key, alive for slot_ttl_ms: while it is, the
 * slots counted under its ID stand. */
static void heartbeat(struct ratelimit_redis *rr, redisAsyncContext *ac)
{
    rr->beat_ms = clock_ms();
    if (redisAsyncCommand(ac, NULL, NULL, "SET " RATELIMIT_REDIS_HEARTBEAT "%s 1 PX %lld", rr->id,
                          (long long)rr->slot_ttl_ms) != REDIS_OK)
        log_warn("redis: cannot queue the rate limits' heartbeat");
}

static void on_link(void *arg, bool up, const char *why)
{
    struct ratelimit_redis *rr = arg;
    /* rr->link is NULL when the first attempt fails inside redis_link_new */
    redisAsyncContext *ac = up && rr->link != NULL ? redis_link_ctx(rr->link) : NULL;
    stats_ratelimit_redis_up(rr->stats, up);
    load_script(rr, ac);
    if (ac != NULL && ids_uuid4(rr->id) != 0) {
        redis_link_fail(rr->link, ac, "no random bytes for the proxyd ID");
        return;
    }
    if (ac != NULL) {
        rr->gen++;
        heartbeat(rr, ac); /* before any take of this connection */
    }
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
    redisAsyncContext *ac = redis_link_ctx(rr->link);
    if (ac != NULL && clock_ms() - rr->beat_ms >= rr->slot_ttl_ms / 3)
        heartbeat(rr, ac);
    if (rr->in_flight > 0 && clock_ms() - rr->progress_ms > ANSWER_TIMEOUT_MS) {
        stats_ratelimit_redis_error(rr->stats);
        redis_link_drop(rr->link, "no answer to a rate-limit check within 1 s");
    }
}

static void batch_free(struct batch *b)
{
    redis_args_clear(&b->keys);
    redis_args_clear(&b->finishes);
    redis_args_clear(&b->takes);
    free(b);
}

/* An answered batch: kept as the spare while there is none (a busy loop
 * sends one call at a time), else freed. */
static void batch_done(struct batch *b)
{
    struct ratelimit_redis *rr = b->rr;
    const struct redis_args_mark empty = {0, 0};
    if (rr->spare != NULL) {
        batch_free(b);
        return;
    }
    redis_args_reset(&b->keys, empty);
    redis_args_reset(&b->finishes, empty);
    redis_args_reset(&b->takes, empty);
    rr->spare = b;
}

/* Every take of the batch falls back, and the batch goes. */
static void batch_fail(struct batch *b)
{
    for (size_t i = 0; i < b->ntakes; i++)
        b->take[i].cb(b->take[i].arg, -1, NULL, NULL, 0);
    batch_done(b);
}

static void on_answer(redisAsyncContext *c, void *r, void *arg);

/* EVALSHA once the script is loaded, else EVAL; then the keys and ARGV. */
static int send_batch(struct batch *b)
{
    struct ratelimit_redis *rr = b->rr;
    redisAsyncContext *ac = redis_link_ctx(rr->link);
    struct redis_args *head = &rr->head, *counts = &rr->counts;
    const struct redis_args *const parts[] = {head, &b->keys, counts, &b->finishes, &b->takes};
    const struct redis_args_mark empty = {0, 0};
    bool sha = rr->sha[0] != '\0' && !b->evaled;
    bool ok;
    int rc = -1;
    redis_args_reset(head, empty);
    redis_args_reset(counts, empty);
    /* EVALSHA sha numkeys KEYS... window ttl id finishes takes LIMITS... FINISHES... TAKES... */
    ok = ac != NULL && redis_args_str(head, sha ? "EVALSHA" : "EVAL") == 0 &&
         redis_args_str(head, sha ? rr->sha : RATELIMIT_LUA) == 0 &&
         redis_args_num(head, (int64_t)b->keys.n) == 0 &&
         redis_args_num(counts, RATELIMIT_WINDOW_MS) == 0 &&
         redis_args_num(counts, rr->slot_ttl_ms) == 0 && redis_args_str(counts, rr->id) == 0 &&
         redis_args_num(counts, (int64_t)b->nfinishes) == 0 &&
         redis_args_num(counts, (int64_t)b->ntakes) == 0;
    for (size_t o = 0; ok && o < b->keys.n / 2; o++)
        for (int k = 0; ok && k < RL_KINDS; k++)
            ok = redis_args_num(counts, b->limit[o][k]) == 0;
    if (ok)
        rc = redis_args_send(parts, sizeof(parts) / sizeof(parts[0]), ac, on_answer, b);
    if (rc == 0) {
        b->sent_us = clock_us();
        rr->takes_in_flight += b->ntakes > 0;
        if (rr->in_flight++ == 0)
            rr->progress_ms = clock_ms();
    }
    return rc;
}

/* Every queued batch goes, unless takes are unanswered (see the top). */
static void flush(struct ratelimit_redis *rr)
{
    struct batch *b;
    if (rr->takes_in_flight > 0)
        return;
    while ((b = rr->queue) != NULL) {
        rr->queue = b->next;
        if (rr->queue == NULL)
            rr->last = NULL;
        if (send_batch(b) != 0) {
            if (redis_link_ctx(rr->link) != NULL)
                stats_ratelimit_redis_error(rr->stats); /* up, yet not sent: out of memory */
            batch_fail(b);
        }
    }
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    flush(arg);
}

/* The batch this turn adds to: the last one while it has room, else a new one. */
static struct batch *current(struct ratelimit_redis *rr)
{
    struct batch *b = rr->last;
    if (b != NULL && b->ntakes + b->nfinishes < BATCH_MAX)
        return b;
    if ((b = rr->spare) != NULL) {
        rr->spare = NULL;
        b->next = NULL;
        b->ntakes = b->nfinishes = 0;
        b->evaled = false;
    } else if ((b = malloc(sizeof(*b))) != NULL) {
        memset(b, 0, offsetof(struct batch, limit));
    } else {
        return NULL;
    }
    b->rr = rr;
    if (rr->last != NULL)
        rr->last->next = b;
    else
        rr->queue = b;
    rr->last = b;
    event_active(rr->flush, 0, 0);
    return b;
}

static int64_t num(const redisReply *r, size_t i)
{
    return r->element[i]->integer;
}

static struct ratelimit_status status(int64_t limit, int64_t used, int64_t reset_ms)
{
    if (limit < 0)
        return (struct ratelimit_status){RATELIMIT_NONE, 0, 0};
    return (struct ratelimit_status){limit, limit > used ? limit - used : 0, reset_ms};
}

/* Where each take's part of the flat answer starts (at[i]): 0 when the
 * answer is all integers laid out as the script writes them for these
 * takes, else -1 (not our script's answer). */
static int answer_shape(const struct batch *b, const redisReply *r, size_t *at)
{
    size_t i = 1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1)
        return -1;
    for (size_t e = 0; e < r->elements; e++)
        if (r->element[e]->type != REDIS_REPLY_INTEGER)
            return -1;
    for (size_t t = 0; t < b->ntakes; t++) {
        if (i >= r->elements || (num(r, i) != 0 && num(r, i) != 1))
            return -1;
        at[t] = i;
        i += num(r, i) == 0 ? 6 : 1 + b->take[t].n * 3;
    }
    return i == r->elements ? 0 : -1;
}

/* One take's part of the answer, from r->element[at]. */
static void answer_take(struct ratelimit_redis *rr, const struct take *t, const redisReply *r,
                        size_t at)
{
    struct ratelimit_status st[RATELIMIT_MAX_ASKS][RL_KINDS];
    struct ratelimit_refusal why;
    if (num(r, at) == 0) {
        if (num(r, at + 1) < 0 || (size_t)num(r, at + 1) >= t->n || num(r, at + 2) < 0 ||
            num(r, at + 2) >= RL_KINDS) {
            stats_ratelimit_redis_error(rr->stats); /* not our script's answer: decide here */
            t->cb(t->arg, -1, NULL, NULL, 0);
            return;
        }
        why = (struct ratelimit_refusal){.ask = (size_t)num(r, at + 1),
                                         .kind = (enum ratelimit_kind)num(r, at + 2),
                                         .limit = num(r, at + 3), .used = num(r, at + 4),
                                         .retry_ms = num(r, at + 5)};
        t->cb(t->arg, 1, NULL, &why, 0);
        return;
    }
    for (size_t i = 0; i < t->n; i++) {
        size_t a = at + 1 + i * 3;
        for (int k = RL_REQUESTS; k <= RL_TOKENS; k++)
            st[i][k] = status(t->limit[i][k], num(r, a + (size_t)k), num(r, a + 2));
        /* not in the answer: no header shows it */
        st[i][RL_PARALLEL] = (struct ratelimit_status){t->limit[i][RL_PARALLEL], 0, 0};
    }
    t->cb(t->arg, 0, st, NULL, num(r, 0));
}

static void on_answer(redisAsyncContext *c, void *r, void *arg)
{
    struct batch *b = arg;
    struct ratelimit_redis *rr = b->rr;
    const redisReply *reply = r;
    size_t at[BATCH_MAX];
    rr->in_flight--;
    rr->takes_in_flight -= b->ntakes > 0;
    rr->progress_ms = clock_ms();
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0 && !b->evaled) {
        load_script(rr, c); /* Redis forgot the script (SCRIPT FLUSH, a restart) */
        b->evaled = true;   /* this batch once more, whole */
        if (send_batch(b) == 0)
            return;
    }
    if (reply == NULL || answer_shape(b, reply, at) != 0) {
        if (reply != NULL) {
            stats_ratelimit_redis_error(rr->stats);
            redis_link_fail(rr->link, c, reply->type == REDIS_REPLY_ERROR
                                             ? reply->str : "unexpected answer to a take");
        }
        batch_fail(b);
    } else {
        stats_ratelimit_redis_rtt(rr->stats, (double)(clock_us() - b->sent_us) / 1e6);
        for (size_t i = 0; i < b->ntakes; i++)
            answer_take(rr, &b->take[i], reply, at[i]);
        batch_done(b);
    }
    if (reply != NULL)
        flush(rr); /* what queued meanwhile */
    else if (rr->queue != NULL)
        event_active(rr->flush, 0, 0); /* the link is being let go: after that */
}

struct ratelimit_redis *ratelimit_redis_new(struct event_base *base,
                                            const struct redis_config *rc, int64_t slot_ttl_ms,
                                            struct stats *stats)
{
    static const struct timeval every = {0, TICK_MS * 1000};
    struct ratelimit_redis *rr = calloc(1, sizeof(*rr));
    if (rr == NULL)
        return NULL;
    rr->rc = rc;
    rr->slot_ttl_ms = slot_ttl_ms;
    rr->stats = stats;
    stats_ratelimit_redis_up(stats, false);
    if ((rr->flush = event_new(base, -1, 0, on_flush, rr)) == NULL ||
        (rr->link = redis_link_new(base, rc, on_link, rr)) == NULL ||
        (rr->tick = event_new(base, -1, EV_PERSIST, on_tick, rr)) == NULL ||
        event_add(rr->tick, &every) != 0) {
        ratelimit_redis_free(rr);
        return NULL;
    }
    /* fails only on a base without priorities (tests' own loops): default then */
    (void)event_priority_set(rr->flush, PRIO_NORMAL);
    return rr;
}

void ratelimit_redis_free(struct ratelimit_redis *rr)
{
    struct batch *b;
    if (rr == NULL)
        return;
    while ((b = rr->queue) != NULL) { /* never sent: their takes fall back */
        rr->queue = b->next;
        batch_fail(b);
    }
    rr->last = NULL;
    if (rr->tick != NULL)
        event_free(rr->tick);
    redis_link_free(rr->link); /* calls in flight are answered NULL: their takes fall back */
    if (rr->spare != NULL) /* after those answers, which may keep one */
        batch_free(rr->spare);
    redis_args_clear(&rr->head);
    redis_args_clear(&rr->counts);
    if (rr->flush != NULL)
        event_free(rr->flush);
    free(rr);
}

bool ratelimit_redis_up(struct ratelimit_redis *rr)
{
    return redis_link_ctx(rr->link) != NULL;
}

void ratelimit_redis_hold_clear(struct ratelimit_redis_hold *h)
{
    for (size_t i = 0; i < h->n; i++)
        free(h->names[i]);
    memset(h, 0, sizeof(*h));
}

/* The owner's place in the batch's KEYS (1-based), its two keys added
 * when new. 0 on ENOMEM. */
static int64_t owner(struct batch *b, const char *name)
{
    char key[RATELIMIT_REDIS_NAME_MAX + 2];
    size_t len = strlen(name);
    for (size_t i = 0; i < b->keys.n; i += 2)
        if (redis_args_len(&b->keys, i) == len + 2 &&
            memcmp(redis_args_at(&b->keys, i), name, len) == 0)
            return (int64_t)(i / 2 + 1);
    memcpy(key, name, len);
    key[len] = ':';
    key[len + 2] = '\0';
    for (const char *s = "wz"; *s != '\0'; s++) {
        key[len + 1] = *s;
        if (redis_args_put(&b->keys, key, len + 2) != 0)
            return 0;
    }
    for (int k = 0; k < RL_KINDS; k++) /* a finish's owner: none, unless a take sets them */
        b->limit[b->keys.n / 2 - 1][k] = RATELIMIT_NONE;
    return (int64_t)(b->keys.n / 2);
}

/* "tg:rl2:DESCRIPTOR:VALUE", allocated; NULL on ENOMEM or over
 * RATELIMIT_REDIS_NAME_MAX. */
static char *name_of(const struct ratelimit_ask *a)
{
    size_t p = sizeof(RATELIMIT_REDIS_PREFIX) - 1;
    size_t d = strlen(a->descriptor), v = strlen(a->value);
    char *s;
    if (p + d + 1 + v >= RATELIMIT_REDIS_NAME_MAX || (s = malloc(p + d + 1 + v + 1)) == NULL)
        return NULL;
    memcpy(s, RATELIMIT_REDIS_PREFIX, p);
    memcpy(s + p, a->descriptor, d);
    s[p + d] = ':';
    memcpy(s + p + d + 1, a->value, v + 1);
    return s;
}

int ratelimit_redis_take(struct ratelimit_redis *rr, const struct ratelimit_ask *asks, size_t n,
                         int64_t tokens, struct ratelimit_redis_hold *h, ratelimit_redis_cb cb,
                         void *arg)
{
    struct batch *b = n <= RATELIMIT_MAX_ASKS ? current(rr) : NULL;
    struct redis_args_mark mark;
    bool ok = b != NULL;
    memset(h, 0, sizeof(*h));
    if (ok) {
        mark = redis_args_mark(&b->takes);
        ok = redis_args_num(&b->takes, tokens) == 0 &&
             redis_args_num(&b->takes, (int64_t)n) == 0;
    }
    for (size_t i = 0; ok && i < n; i++) {
        if ((h->names[i] = name_of(&asks[i])) == NULL) {
            ok = false;
            break;
        }
        h->n = i + 1;
        h->tokens[i] = asks[i].limit[RL_TOKENS] >= 0;
        h->parallel[i] = asks[i].limit[RL_PARALLEL] >= 0;
        int64_t o = owner(b, h->names[i]);
        ok = o > 0 && redis_args_num(&b->takes, o) == 0;
        for (int k = 0; ok && k < RL_KINDS; k++) {
            b->limit[o - 1][k] = asks[i].limit[k];
            b->take[b->ntakes].limit[i][k] = asks[i].limit[k];
        }
    }
    h->estimate = tokens;
    h->gen = rr->gen;
    if (!ok) {
        if (b != NULL)
            redis_args_reset(&b->takes, mark);
        ratelimit_redis_hold_clear(h);
        return -1;
    }
    b->take[b->ntakes].cb = cb;
    b->take[b->ntakes].arg = arg;
    b->take[b->ntakes++].n = n;
    return 0;
}

void ratelimit_redis_finish(struct ratelimit_redis *rr, struct ratelimit_redis_hold *h,
                            int64_t tokens)
{
    struct batch *b = NULL;
    struct redis_args_mark mark;
    bool any = false, ok = false;
    for (size_t i = 0; i < h->n; i++)
        any |= h->tokens[i] || h->parallel[i];
    /* taken under an older connection's ID: left to expire with it */
    any &= h->gen == rr->gen;
    if (any && ratelimit_redis_up(rr) && (b = current(rr)) != NULL) {
        mark = redis_args_mark(&b->finishes);
        ok = redis_args_num(&b->finishes, h->t_ms) == 0 &&
             redis_args_num(&b->finishes, (tokens > 0 ? tokens : 0) - h->estimate) == 0 &&
             redis_args_num(&b->finishes, (int64_t)h->n) == 0;
        for (size_t i = 0; ok && i < h->n; i++) {
            int64_t o = owner(b, h->names[i]);
            ok = o > 0 && redis_args_num(&b->finishes, o * 4 + h->tokens[i] * 2 +
                                                           h->parallel[i]) == 0;
        }
        if (ok)
            b->nfinishes++;
        else
            redis_args_reset(&b->finishes, mark);
    }
    if (any && (b == NULL || !ok) && ratelimit_redis_up(rr))
        stats_ratelimit_redis_error(rr->stats); /* out of memory: the slot expires */
    ratelimit_redis_hold_clear(h);
}
