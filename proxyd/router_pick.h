/* router_pick.h - LiteLLM's routing strategies: which of a group's
 * candidate deployments an attempt goes to, from what this proxyd measured
 * of each (requests in flight, this minute's requests and tokens, recent
 * latencies) and the deployments' limits (max_parallel_requests, rpm, tpm).
 * router.c says which deployments are candidates (not tried yet, not cooling
 * down) and reports each attempt's start, end and measures here. */
#ifndef PROXYD_ROUTER_PICK_H
#define PROXYD_ROUTER_PICK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct event_base;
struct price_table;

/* What a strategy weighs about the request; zeros when unknown. */
struct route_request {
    const struct price_table *prices; /* cost-based: the generation's price map */
    int64_t prompt_tokens;            /* estimated, before any upstream saw it */
    int64_t max_output;               /* the request's max tokens (0: it does not say) */
    bool stream;                      /* latency-based weighs time to first token */
};

/* What a successful attempt measured. */
struct route_sample {
    int64_t latency_us;        /* attempt start to its end */
    int64_t ttft_us;           /* streams: to the first byte (-1: not a stream) */
    int64_t completion_tokens, total_tokens;
};

struct pick;

struct pick *pick_new(const struct config *cfg);
void pick_free(struct pick *p);

/* Usage-based routing with router_settings.redis_*: from now on its counts
 * are every proxyd's, shared through Redis on base's loop (usage_share.h).
 * Without Redis, or another strategy: nothing. -1: out of memory. */
int pick_share_usage(struct pick *p, struct event_base *base);

/* The deployment the configured strategy chooses among cands[0..n), each a
 * deployment of cfg. NULL when every one is at a limit (in flight at its
 * max_parallel_requests, or over its rpm / tpm this minute). */
const struct deployment *pick_choose(struct pick *p, const struct deployment *const *cands,
                                     size_t n, const struct route_request *rq, unsigned *seed);

/* Does the strategy weigh route_request.prompt_tokens? (Counting costs time.) */
bool pick_counts_prompt(const struct pick *p);

/* An attempt on d starts: in flight, and one more request this minute. */
void pick_attempt_start(struct pick *p, const struct deployment *d);
/* It ended, however: no longer in flight; a timeout counts as LiteLLM's
 * 1000 s latency. */
void pick_attempt_end(struct pick *p, const struct deployment *d, bool timed_out);
/* A successful answer's measures: its tokens this minute, its latency. */
void pick_attempt_sample(struct pick *p, const struct deployment *d,
                         const struct route_sample *s);

#endif
