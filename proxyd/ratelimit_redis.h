/* ratelimit_redis.h - the rate limits of ratelimit.h shared by every proxyd
 * through Redis (router_settings.redis_*), exactly: one Lua script checks
 * and takes all of a request's limits atomically on Redis's clock, at most
 * one round trip per admission; the requests that end settle their tokens
 * and give back their parallel slots in the same script, unanswered. The
 * takes and ends of one turn of the loop share one script call.
 * call_limits.c falls back to ratelimit.c while Redis cannot be reached.
 *
 * Per owner ("tg:rl2:DESCRIPTOR:VALUE"): a hash of the requests and tokens
 * admitted per 10 ms bucket (and their sums) with a sorted set of those
 * buckets (":w", ":z"; at most 6,000 of them, whatever the rate), and in
 * the hash the parallel slots in use, counted per proxyd: a proxyd killed
 * with -9 stops renewing its heartbeat key, and its slots are dropped once
 * that has expired (slot_ttl_ms).
 */
#ifndef PROXYD_RATELIMIT_REDIS_H
#define PROXYD_RATELIMIT_REDIS_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "ratelimit.h"

/* Every key of the rate limits in Redis starts so; a proxyd's heartbeat key
 * is RATELIMIT_REDIS_HEARTBEAT + its ID. */
#define RATELIMIT_REDIS_PREFIX "tg:rl2:"
#define RATELIMIT_REDIS_HEARTBEAT RATELIMIT_REDIS_PREFIX "hb:"
#define RATELIMIT_REDIS_NAME_MAX 700 /* "tg:rl2:DESCRIPTOR:VALUE" */

struct stats;
struct ratelimit_redis;

/* What a request took in Redis, to settle and give back at its end. */
struct ratelimit_redis_hold {
    size_t n;
    char *names[RATELIMIT_MAX_ASKS]; /* "tg:rl2:DESCRIPTOR:VALUE" */
    bool tokens[RATELIMIT_MAX_ASKS], parallel[RATELIMIT_MAX_ASKS];
    int64_t t_ms;     /* its admission, on Redis's clock */
    int64_t estimate; /* tokens taken then */
    unsigned gen;     /* the connection it was taken on */
};

/* The answer of a take: rc 0 admitted (status filled; t_ms the admission
 * on Redis's clock, for the hold), 1 refused (why filled), -1 Redis failed
 * or went away (nothing known: the caller falls back). */
typedef void (*ratelimit_redis_cb)(void *arg, int rc,
                                   struct ratelimit_status (*status)[RL_KINDS],
                                   const struct ratelimit_refusal *why, int64_t t_ms);

/* slot_ttl_ms: how long the parallel slots of a proxyd that never gave
 * them back (killed) stay counted: its heartbeat's life. */
struct ratelimit_redis *ratelimit_redis_new(struct event_base *base,
                                            const struct redis_config *rc, int64_t slot_ttl_ms,
                                            struct stats *stats);
/* Pending takes are answered -1 first. */
void ratelimit_redis_free(struct ratelimit_redis *rr);

/* Is the link up (else the caller falls back at once)? */
bool ratelimit_redis_up(struct ratelimit_redis *rr);

/* Queues the take for this turn's script call; cb follows (never before
 * return). h is filled for the caller to keep. -1: nothing queued (out of
 * memory, or a name over RATELIMIT_REDIS_NAME_MAX). */
int ratelimit_redis_take(struct ratelimit_redis *rr, const struct ratelimit_ask *asks, size_t n,
                         int64_t tokens, struct ratelimit_redis_hold *h, ratelimit_redis_cb cb,
                         void *arg);

/* The request ended having used `tokens` (-1: no usage event, 0): settles
 * and gives back what h holds (best effort: lost while Redis is down, when
 * the estimate stays counted and the slot expires), then clears h. */
void ratelimit_redis_finish(struct ratelimit_redis *rr, struct ratelimit_redis_hold *h,
                            int64_t tokens);

/* Frees h's names (a take refused or failed). */
void ratelimit_redis_hold_clear(struct ratelimit_redis_hold *h);

#endif
