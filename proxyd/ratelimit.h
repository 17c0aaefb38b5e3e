/* ratelimit.h - rpm, tpm and parallel-request limits kept in this proxyd's
 * memory, exactly (issue 19; call_limits.c applies them to requests).
 *
 * Requests and tokens are counted over a sliding window of RATELIMIT_WINDOW_MS:
 * a request is admitted only if, counting it, no more than the limit were
 * admitted in the window that ends now, so no 60 s span ever holds more than
 * the limit (fixed minute buckets would admit twice the limit across a
 * boundary). Tokens are taken at admission as an estimate and settled to
 * the real usage when the answer ends, at the admission's time. Parallel
 * requests are taken at admission and given back when the request ends.
 *
 * One owner (a key, a user, ...) is one bucket, named by LiteLLM's
 * descriptor: "api_key:<hash>", "user:<id>", ...
 */
#ifndef TG_RATELIMIT_H
#define TG_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RATELIMIT_WINDOW_MS 60000
#define RATELIMIT_NONE (-1) /* a limit not set */
#define RATELIMIT_MAX_ASKS 8

enum ratelimit_kind { RL_REQUESTS, RL_TOKENS, RL_PARALLEL, RL_KINDS };

/* One owner's limits, as a request meets them. */
struct ratelimit_ask {
    const char *descriptor; /* LiteLLM's descriptor key: "api_key", "user", ... */
    const char *value;      /* its value: the key hash, the user id, ... */
    int64_t limit[RL_KINDS]; /* RATELIMIT_NONE or >= 0 */
};

/* What a request took from one bucket, to settle and give back. */
struct ratelimit_hold {
    struct rl_bucket *bucket; /* NULL: nothing held */
    int64_t t_ms;             /* its tokens' place in the window */
    int64_t tokens;           /* taken there (the estimate until settled) */
    bool tokens_held, settled, parallel_held;
};

/* After a take, for headers: per ask and kind (limit RATELIMIT_NONE: not
 * limited). remaining counts this request; reset_ms is how long until the
 * oldest entry of the window leaves it (0: empty). */
struct ratelimit_status {
    int64_t limit, remaining, reset_ms;
};

struct ratelimit_refusal {
    size_t ask;               /* which ask refused */
    enum ratelimit_kind kind;
    int64_t limit, used;      /* used: in the window (or in flight) before this request */
    int64_t retry_ms;         /* until this request would fit (-1: it never can) */
};

struct ratelimit;

struct ratelimit *ratelimit_new(void);
/* Frees every bucket; holds still out must not be used afterwards. */
void ratelimit_free(struct ratelimit *rl);

/* Takes one request and `tokens` (estimated) from every ask's buckets at
 * monotonic time now_ms, all or nothing. 0 and holds[i] filled (n holds),
 * status[i][kind] too when status is not NULL; 1 refused (why filled,
 * nothing taken); -1 out of memory (nothing taken). */
int ratelimit_take(struct ratelimit *rl, const struct ratelimit_ask *asks, size_t n,
                   int64_t tokens, int64_t now_ms, struct ratelimit_hold *holds,
                   struct ratelimit_status (*status)[RL_KINDS], struct ratelimit_refusal *why);

/* The request's real tokens: its estimate in the window is replaced by
 * them (if the window still holds it). Once per hold. */
void ratelimit_settle(struct ratelimit *rl, struct ratelimit_hold *h, int64_t tokens);

/* The request ended: its parallel slot goes back, an estimate never settled
 * is settled to 0 (no usage event: nothing was billed, nothing counts) and
 * the hold is dropped. */
void ratelimit_release(struct ratelimit *rl, struct ratelimit_hold *h);

/* Frees buckets whose windows are empty and that nobody holds. */
void ratelimit_sweep(struct ratelimit *rl, int64_t now_ms);

size_t ratelimit_buckets(const struct ratelimit *rl);

#endif
