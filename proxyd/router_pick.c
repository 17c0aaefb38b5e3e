/* router_pick.c - LiteLLM's routing strategies (router_settings.
 * routing_strategy) and the deployments' limits, per proxyd.
 *
 * Every strategy first leaves out a deployment at its limit: requests in
 * flight at its cap (litellm_params.max_parallel_requests, else as LiteLLM's
 * calculate_max_parallel_requests: rpm, else tpm / 1000 * 6 (at least 1),
 * else router_settings.default_max_parallel_requests), and for usage-,
 * latency- and cost-based routing one over its rpm or tpm this minute
 * (requests + 1 > rpm, tokens + the prompt's > tpm). LiteLLM makes a call wait
 * for a free slot; here the attempt goes to another deployment, and when none
 * is left the request is refused (router.c, call.c). Then:
 *
 *   simple-shuffle   random, in proportion to weight (else rpm, else tpm)
 *   least-busy       fewest requests in flight (least_busy.py); equals: random
 *   usage-based-routing(-v2)  fewest tokens this minute (lowest_tpm_rpm_v2.py
 *                    _common_checks_available_deployment); equals: random
 *   latency-based-routing  lowest average latency of the last
 *                    max_latency_list_size successes within ttl, in seconds
 *                    per completion token as LiteLLM logs it; streams weigh
 *                    time to first token when measured; a timeout counts as
 *                    1000 s; an unmeasured deployment counts 0, so it is
 *                    tried first; random among those within
 *                    (1 + lowest_latency_buffer) x the lowest (lowest_latency.py)
 *   cost-based-routing  cheapest for the request's prompt tokens plus its max
 *                    tokens (else DEFAULT_OUTPUT) by Tollgate's price map,
 *                    custom prices first; unpriced ones last, as LiteLLM's
 *                    $5 a token for a model it has no price for (lowest_cost.py)
 *
 * The counts are this proxyd's own, kept per config generation: several
 * proxyd behind a balancer each count their share. Usage-based routing with
 * router_settings.redis_host (or redis_url) weighs every proxyd's requests
 * and tokens of the minute instead, shared through Redis as LiteLLM's
 * lowest_tpm_rpm_v2.py does (usage_share.c); while Redis does not answer it
 * falls back to this proxyd's own counts, which are always kept. In-flight
 * caps, latencies and the other strategies stay per proxyd. The minute is
 * the UTC wall-clock minute, as LiteLLM's keys; usage-based's ttl (60 s)
 * forgets a minute's counts that long after their last change (in Redis:
 * the keys' EXPIRE).
 */
#include "router_pick.h"

#include <stdlib.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "price.h"
#include "usage_share.h"

#define TIMEOUT_LATENCY_S 1000.0 /* lowest_latency.py: a timeout's latency */
#define DEFAULT_OUTPUT 1024      /* answer tokens a cost assumes when the request does not say */
#define TPM_TO_PARALLEL 0.006    /* calculate_max_parallel_requests: tpm / 1000 * 6 */

/* One success of a deployment: seconds (per completion token when known). */
struct sample {
    int64_t at_ms;
    double latency, ttft; /* ttft < 0: not a stream */
};

/* What this proxyd knows of one deployment (index: position in cfg->deployments). */
struct load {
    int in_flight;
    int cap;             /* most requests in flight (0: no cap) */
    int64_t minute;      /* the UTC minute that requests and tokens count */
    int64_t touched_ms;  /* when they last changed (ttl) */
    int64_t requests, tokens;
    struct sample *samples; /* ring of cfg->router.latency_list_size (latency-based) */
    size_t n_samples, next;
};

struct pick {
    const struct config *cfg;
    struct load *load;
    /* scratch for one choice, n_deployments long: open candidates, their
     * scores, the ones that tie */
    const struct deployment **open, **equals;
    double *scores;
    struct sample *sample_mem;
    struct usage_share *share; /* usage-based with Redis: every proxyd's counts (NULL: none) */
};

/* LiteLLM's calculate_max_parallel_requests. */
static int cap_of(const struct deployment *d, int default_cap)
{
    if (d->max_parallel > 0)
        return d->max_parallel;
    if (d->rpm >= 1)
        return d->rpm > 1e9 ? 1000000000 : (int)d->rpm;
    if (d->tpm > 0) {
        double c = d->tpm * TPM_TO_PARALLEL;
        return c < 1 ? 1 : c > 1e9 ? 1000000000 : (int)c;
    }
    return default_cap;
}

struct pick *pick_new(const struct config *cfg)
{
    struct pick *p = calloc(1, sizeof(*p));
    size_t n = cfg->n_deployments, list = (size_t)cfg->router.latency_list_size;
    bool latency = cfg->router.strategy == ROUTE_LATENCY_BASED && list > 0;
    if (p == NULL || (p->load = calloc(n, sizeof(*p->load))) == NULL ||
        (p->open = calloc(n, sizeof(*p->open))) == NULL ||
        (p->equals = calloc(n, sizeof(*p->equals))) == NULL ||
        (p->scores = calloc(n, sizeof(*p->scores))) == NULL ||
        (latency && (p->sample_mem = calloc(n * list, sizeof(*p->sample_mem))) == NULL)) {
        pick_free(p);
        return NULL;
    }
    p->cfg = cfg;
    for (size_t i = 0; i < n; i++) {
        p->load[i].cap = cap_of(&cfg->deployments[i], cfg->router.default_max_parallel);
        p->load[i].samples = latency ? p->sample_mem + i * list : NULL;
    }
    return p;
}

void pick_free(struct pick *p)
{
    if (p == NULL)
        return;
    usage_share_free(p->share);
    free(p->sample_mem);
    free(p->open);
    free(p->equals);
    free(p->scores);
    free(p->load);
    free(p);
}

static struct load *load_of(struct pick *p, const struct deployment *d)
{
    return &p->load[d - p->cfg->deployments];
}

/* d's counts, started afresh in a new minute or once ttl passed. */
static struct load *counted(struct pick *p, const struct deployment *d)
{
    struct load *l = load_of(p, d);
    int64_t minute = (int64_t)time(NULL) / 60;
    int ttl = p->cfg->router.strategy_ttl_ms;
    if (l->minute != minute ||
        (ttl > 0 && p->cfg->router.strategy == ROUTE_USAGE_BASED &&
         clock_ms() - l->touched_ms > ttl)) {
        l->minute = minute;
        l->requests = l->tokens = 0;
    }
    return l;
}

int pick_share_usage(struct pick *p, struct event_base *base)
{
    const struct router_config *rc = &p->cfg->router;
    if (rc->redis.host[0] == '\0' || p->share != NULL || p->cfg->n_deployments == 0)
        return 0;
    if (rc->strategy != ROUTE_USAGE_BASED) {
        log_info("router_settings.redis_*: only usage-based routing shares its counts "
                 "through Redis; this strategy counts per proxyd");
        return 0;
    }
    if ((p->share = usage_share_new(base, p->cfg, rc->strategy_ttl_ms / 1000)) == NULL)
        return -1;
    log_info("usage-based routing shares its counts through redis %s:%d", rc->redis.host,
             rc->redis.port);
    return 0;
}

/* d's requests and tokens this minute: every proxyd's (Redis) when it
 * answers, else this proxyd's own. */
static void usage_of(struct pick *p, const struct deployment *d, int64_t *requests,
                     int64_t *tokens)
{
    const struct load *l = counted(p, d);
    if (p->share != NULL &&
        usage_share_counts(p->share, (size_t)(d - p->cfg->deployments), requests, tokens))
        return;
    *requests = l->requests;
    *tokens = l->tokens;
}

bool pick_counts_prompt(const struct pick *p)
{
    enum route_strategy s = p->cfg->router.strategy;
    return s == ROUTE_USAGE_BASED || s == ROUTE_LATENCY_BASED || s == ROUTE_COST_BASED;
}

/* At a limit: at its cap, or (strategies that weigh usage) over rpm / tpm. */
static bool at_limit(struct pick *p, const struct deployment *d, const struct route_request *rq)
{
    struct load *l = counted(p, d);
    int64_t requests, tokens;
    if (l->cap > 0 && l->in_flight >= l->cap)
        return true;
    if (!pick_counts_prompt(p))
        return false;
    usage_of(p, d, &requests, &tokens);
    return (d->rpm > 0 && (double)(requests + 1) > d->rpm) ||
           (d->tpm > 0 && (double)(tokens + rq->prompt_tokens) > d->tpm);
}

/* Weighted draw (simple-shuffle). */
static const struct deployment *shuffle(const struct deployment *const *c, size_t n,
                                        unsigned *seed)
{
    double total = 0;
    for (size_t i = 0; i < n; i++)
        total += c[i]->weight;
    double x = (double)rand_r(seed) / ((double)RAND_MAX + 1.0) * total;
    for (size_t i = 0; i < n; i++) {
        if ((x -= c[i]->weight) < 0)
            return c[i];
    }
    return c[n - 1];
}

/* Average latency of d's samples within ttl (0: none, so it is tried first). */
static double latency_of(struct pick *p, const struct deployment *d, bool stream)
{
    struct load *l = load_of(p, d);
    int64_t oldest = clock_ms() - p->cfg->router.strategy_ttl_ms;
    double sum = 0, ttft_sum = 0;
    size_t n = 0, n_ttft = 0;
    for (size_t i = 0; i < l->n_samples; i++) {
        const struct sample *s = &l->samples[i];
        if (s->at_ms < oldest)
            continue;
        sum += s->latency;
        n++;
        if (s->ttft >= 0) {
            ttft_sum += s->ttft;
            n_ttft++;
        }
    }
    if (stream && n_ttft > 0)
        return ttft_sum / (double)n_ttft;
    return n > 0 ? sum / (double)n : 0;
}

/* What the request would cost on d; unpriced: after every priced one. */
static double cost_of(const struct deployment *d, const struct route_request *rq)
{
    int64_t out = rq->max_output > 0 ? rq->max_output : DEFAULT_OUTPUT;
    struct usage u = {.prompt_tokens = rq->prompt_tokens, .completion_tokens = out,
                      .total_tokens = rq->prompt_tokens + out};
    money_t cost = 0;
    char err[128];
    if (rq->prices == NULL ||
        price_cost(rq->prices, d->model, &d->price, &u, &cost, err, sizeof(err)) != PRICE_OK)
        return 1e300;
    return (double)cost;
}

/* The strategy's measure of d: lower is better. */
static double score(struct pick *p, const struct deployment *d, const struct route_request *rq)
{
    int64_t requests, tokens;
    switch (p->cfg->router.strategy) {
    case ROUTE_LEAST_BUSY:
        return load_of(p, d)->in_flight;
    case ROUTE_USAGE_BASED:
        usage_of(p, d, &requests, &tokens);
        return (double)tokens;
    case ROUTE_LATENCY_BASED:
        return latency_of(p, d, rq->stream);
    case ROUTE_COST_BASED:
        return cost_of(d, rq);
    case ROUTE_SIMPLE_SHUFFLE:
        break;
    }
    return 0;
}

/* Random among the n open candidates scoring at most (1 + slack) x the lowest. */
static const struct deployment *lowest(struct pick *p, size_t n, double slack, unsigned *seed)
{
    double best = p->scores[0];
    size_t k = 0;
    for (size_t i = 1; i < n; i++)
        best = p->scores[i] < best ? p->scores[i] : best;
    for (size_t i = 0; i < n; i++) {
        if (p->scores[i] <= best + slack * best)
            p->equals[k++] = p->open[i];
    }
    return p->equals[(size_t)rand_r(seed) % k];
}

const struct deployment *pick_choose(struct pick *p, const struct deployment *const *cands,
                                     size_t n, const struct route_request *rq, unsigned *seed)
{
    static const struct route_request none = {0};
    const struct router_config *rc = &p->cfg->router;
    size_t k = 0;
    if (rq == NULL)
        rq = &none;
    for (size_t i = 0; i < n && k < p->cfg->n_deployments; i++) {
        if (!at_limit(p, cands[i], rq))
            p->open[k++] = cands[i];
    }
    if (k == 0)
        return NULL;
    if (rc->strategy == ROUTE_SIMPLE_SHUFFLE)
        return shuffle(p->open, k, seed);
    for (size_t i = 0; i < k; i++)
        p->scores[i] = score(p, p->open[i], rq);
    return lowest(p, k, rc->strategy == ROUTE_LATENCY_BASED ? rc->latency_buffer : 0, seed);
}

void pick_attempt_start(struct pick *p, const struct deployment *d)
{
    struct load *l = counted(p, d);
    l->in_flight++;
    l->requests++;
    l->touched_ms = clock_ms();
    if (p->share != NULL)
        usage_share_add(p->share, (size_t)(d - p->cfg->deployments), 1, 0);
}

/* Keeps the last latency_list_size samples (LiteLLM keeps a list that long). */
static void add_sample(struct pick *p, const struct deployment *d, double latency, double ttft)
{
    struct load *l = load_of(p, d);
    size_t size = (size_t)p->cfg->router.latency_list_size;
    if (l->samples == NULL || size == 0)
        return;
    l->samples[l->next] = (struct sample){clock_ms(), latency, ttft};
    l->next = (l->next + 1) % size;
    if (l->n_samples < size)
        l->n_samples++;
}

void pick_attempt_end(struct pick *p, const struct deployment *d, bool timed_out)
{
    struct load *l = load_of(p, d);
    if (l->in_flight > 0)
        l->in_flight--;
    if (timed_out)
        add_sample(p, d, TIMEOUT_LATENCY_S, -1);
}

void pick_attempt_sample(struct pick *p, const struct deployment *d,
                         const struct route_sample *s)
{
    struct load *l = counted(p, d);
    double per = s->completion_tokens > 0 ? (double)s->completion_tokens : 1;
    if (s->total_tokens > 0) {
        l->tokens += s->total_tokens;
        l->touched_ms = clock_ms();
        if (p->share != NULL)
            usage_share_add(p->share, (size_t)(d - p->cfg->deployments), 0, s->total_tokens);
    }
    add_sample(p, d, (double)s->latency_us / 1e6 / per,
               s->ttft_us >= 0 ? (double)s->ttft_us / 1e6 / per : -1);
}
