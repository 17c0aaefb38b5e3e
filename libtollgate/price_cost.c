/* price_cost.c - the cost of one request, exactly, by LiteLLM's rules.
 *
 * Tokens are split into disjoint buckets (uncached text, cache read, 5-minute
 * and 1-hour cache writes, input audio and image tokens; output text,
 * reasoning, audio and image tokens), each priced once at its rate. The
 * rates are the model's, or those of its service tier ("priority", "flex"),
 * or, when the prompt is above a size the map prices differently, that
 * tier's for the whole request. Where the map has no rate for a bucket the
 * upstream reported, the next broader rate applies (a cache read falls back
 * to the input rate, reasoning to the output rate, ...): LiteLLM charges $0
 * there, Tollgate never does. Web searches, per-request fees, per-second
 * models and image generation are priced per their unit. README.md "Prices"
 * has the rules with examples.
 */
#include <stdio.h>
#include <string.h>

#include "price.h"
#include "price_image.h"
#include "price_model.h"

#define PER_SECOND_US 1000000
/* Beyond any real request (a quadrillion tokens, 30 years): an upstream's
 * count above it is refused, so bucket arithmetic cannot overflow. */
#define COUNT_MAX 1000000000000000LL

/* Adds count * price to *sum; -1 on overflow. */
static int add_bucket(money_t *sum, int64_t count, money_t price)
{
    money_t part;
    if (count == 0)
        return 0;
    if (money_mul_int(price, count, &part) < 0)
        return -1;
    return money_add(*sum, part, sum);
}

static int service_index(const char *tier)
{
    if (strcmp(tier, "priority") == 0 || strcmp(tier, "fast") == 0)
        return SVC_PRIORITY;
    if (strcmp(tier, "flex") == 0)
        return SVC_FLEX;
    return -1;
}

/* The first tier (largest threshold first) the prompt is above. */
static const struct price_rates *pick_tier(const struct price_model *pm, int64_t prompt)
{
    for (size_t i = 0; i < pm->ntiers; i++) {
        const struct price_tier *t = &pm->tiers[i];
        if (rate_has(&t->r, RATE_INPUT) &&
            (prompt > t->threshold || (pm->xai && prompt == t->threshold)))
            return &t->r;
    }
    return NULL;
}

static void take(struct price_rates *into, const struct price_rates *from, enum price_rate k)
{
    if (rate_has(from, k)) {
        into->v[k] = from->v[k];
        into->has |= 1u << k;
    }
}

static void fall_back(struct price_rates *r, enum price_rate k, enum price_rate to)
{
    if (!rate_has(r, k)) {
        r->v[k] = r->v[to];
        r->has |= 1u << k;
    }
}

/* The rates that apply to this request, every bucket filled. */
static void effective_rates(const struct price_model *pm, const struct price_custom *custom,
                            const struct usage *u, struct price_rates *r)
{
    int svc = service_index(u->service_tier);
    *r = pm->base;
    if (svc >= 0)
        for (int k = 0; k < RATE_COUNT; k++)
            take(r, &pm->service[svc], (enum price_rate)k);
    bool custom_price = custom != NULL && (custom->has_input || custom->has_output);
    if (custom != NULL && custom->has_input) {
        r->v[RATE_INPUT] = custom->input_per_token;
        r->has |= 1u << RATE_INPUT;
    }
    if (custom != NULL && custom->has_output) {
        r->v[RATE_OUTPUT] = custom->output_per_token;
        r->has |= 1u << RATE_OUTPUT;
    }
    const struct price_rates *tier = custom_price ? NULL : pick_tier(pm, u->prompt_tokens);
    if (tier != NULL) {
        static const enum price_rate tiered[] = {RATE_INPUT, RATE_OUTPUT, RATE_CACHE_READ,
                                                 RATE_CACHE_WRITE, RATE_CACHE_WRITE_1H};
        for (size_t i = 0; i < sizeof(tiered) / sizeof(tiered[0]); i++)
            take(r, tier, tiered[i]);
    }
    /* An image model priced per output image token only (gpt-image-1-mini):
     * its output is image tokens (LiteLLM _get_token_base_cost). */
    if ((!rate_has(r, RATE_OUTPUT) || r->v[RATE_OUTPUT] == 0) && rate_has(r, RATE_IMAGE_OUT)) {
        r->v[RATE_OUTPUT] = r->v[RATE_IMAGE_OUT];
        r->has |= 1u << RATE_OUTPUT;
    }
    if (!rate_has(r, RATE_OUTPUT))
        r->v[RATE_OUTPUT] = 0; /* embeddings */
    /* Reasoning (LiteLLM _resolve_billed_reasoning_rate): the prompt-size
     * tier's reasoning rate; else the service tier's; else, when the service
     * tier has its own output rate, that; else the model's reasoning rate;
     * else the output rate. */
    if (tier != NULL && rate_has(tier, RATE_REASONING)) {
        r->v[RATE_REASONING] = tier->v[RATE_REASONING];
    } else if (!(svc >= 0 && rate_has(&pm->service[svc], RATE_REASONING))) {
        bool svc_output = svc >= 0 && rate_has(&pm->service[svc], RATE_OUTPUT);
        r->v[RATE_REASONING] = !svc_output && rate_has(&pm->base, RATE_REASONING)
                                   ? pm->base.v[RATE_REASONING] : r->v[RATE_OUTPUT];
        r->has |= 1u << RATE_REASONING;
    }
    if (!rate_has(r, RATE_CACHE_READ) && rate_has(r, RATE_CACHE_HIT) && tier == NULL)
        fall_back(r, RATE_CACHE_READ, RATE_CACHE_HIT);
    fall_back(r, RATE_CACHE_READ, RATE_INPUT);
    fall_back(r, RATE_CACHE_WRITE, RATE_INPUT);
    fall_back(r, RATE_CACHE_WRITE_1H, RATE_CACHE_WRITE);
    fall_back(r, RATE_AUDIO_IN, RATE_INPUT);
    fall_back(r, RATE_IMAGE_IN, RATE_INPUT);
    fall_back(r, RATE_AUDIO_OUT, RATE_OUTPUT);
    fall_back(r, RATE_IMAGE_OUT, RATE_OUTPUT);
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int token_cost(const struct price_model *pm, const struct price_custom *custom,
                      const struct usage *u, money_t *sum)
{
    struct price_rates r;
    effective_rates(pm, custom, u, &r);
    int64_t uncached = u->prompt_tokens - u->cache_read_tokens - u->cache_creation_tokens;
    int64_t audio_in = min64(u->prompt_audio_tokens, uncached);
    int64_t image_in = min64(u->prompt_image_tokens, uncached - audio_in);
    int64_t text_in = uncached - audio_in - image_in;
    int64_t write_1h = u->cache_creation_1h_tokens;
    int64_t reasoning = u->reasoning_tokens, audio_out = u->completion_audio_tokens;
    int64_t image_out = u->completion_image_tokens;
    int64_t text_out = u->completion_tokens - reasoning - audio_out - image_out;
    /* xAI reports reasoning beside completion_tokens (total = prompt +
     * completion + reasoning); LiteLLM bills both as output. */
    if (pm->xai && reasoning > 0 &&
        u->total_tokens == u->prompt_tokens + u->completion_tokens + reasoning) {
        text_out = u->completion_tokens + reasoning;
        reasoning = audio_out = image_out = 0;
    }
    if (text_out < 0)
        text_out = 0;
    const struct {
        int64_t count;
        enum price_rate rate;
    } buckets[] = {
        {text_in, RATE_INPUT}, {u->cache_read_tokens, RATE_CACHE_READ},
        {u->cache_creation_tokens - write_1h, RATE_CACHE_WRITE}, {write_1h, RATE_CACHE_WRITE_1H},
        {audio_in, RATE_AUDIO_IN}, {image_in, RATE_IMAGE_IN}, {text_out, RATE_OUTPUT},
        {reasoning, RATE_REASONING}, {audio_out, RATE_AUDIO_OUT}, {image_out, RATE_IMAGE_OUT},
    };
    for (size_t i = 0; i < sizeof(buckets) / sizeof(buckets[0]); i++)
        if (add_bucket(sum, buckets[i].count, r.v[buckets[i].rate]) < 0)
            return -1;
    return 0;
}

/* Searches * the price for the request's search_context_size (default
 * medium). OpenAI's search models bill each request that asked to search. */
static int search_cost(const struct price_model *pm, const struct usage *u, money_t *sum)
{
    bool priced = unit_has(pm, UNIT_SEARCH_LOW) || unit_has(pm, UNIT_SEARCH_MEDIUM) ||
                  unit_has(pm, UNIT_SEARCH_HIGH);
    int64_t searches = u->web_search_requests;
    if (searches == 0 && u->web_search_requested && priced)
        searches = 1;
    if (searches == 0)
        return 0;
    enum price_unit k = strcmp(u->search_context_size, "low") == 0    ? UNIT_SEARCH_LOW
                        : strcmp(u->search_context_size, "high") == 0 ? UNIT_SEARCH_HIGH
                                                                      : UNIT_SEARCH_MEDIUM;
    if (!unit_has(pm, k))
        k = UNIT_SEARCH_MEDIUM;
    return unit_has(pm, k) ? add_bucket(sum, searches, pm->unit[k]) : 0;
}

/* (input + output price per second) * duration, rounded half away from
 * zero at the 20th decimal (LiteLLM: response_time_ms / 1000). */
static int seconds_cost(const struct price_model *pm, const struct usage *u, money_t *sum)
{
    money_t rate = 0, scaled;
    if (unit_has(pm, UNIT_SECOND_IN))
        rate += pm->unit[UNIT_SECOND_IN];
    if (unit_has(pm, UNIT_SECOND_OUT))
        rate += pm->unit[UNIT_SECOND_OUT];
    if (money_mul_int(rate, u->duration_us, &scaled) < 0)
        return -1;
    money_t q = scaled / PER_SECOND_US, rem = scaled % PER_SECOND_US;
    if (rem * 2 >= PER_SECOND_US)
        q++;
    return money_add(*sum, q, sum);
}

static bool per_second(const struct price_model *pm)
{
    return unit_has(pm, UNIT_SECOND_IN) || unit_has(pm, UNIT_SECOND_OUT);
}

static int check_usage(const struct usage *u, char *err, size_t errlen)
{
    const int64_t counts[] = {u->prompt_tokens, u->completion_tokens, u->cache_read_tokens,
                              u->cache_creation_tokens, u->cache_creation_1h_tokens,
                              u->prompt_audio_tokens, u->prompt_image_tokens,
                              u->reasoning_tokens, u->completion_audio_tokens,
                              u->completion_image_tokens, u->web_search_requests, u->images,
                              u->image_width, u->image_height, u->duration_us};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        if (counts[i] < 0) {
            snprintf(err, errlen, "negative token count");
            return -1;
        }
        if (counts[i] > COUNT_MAX) {
            snprintf(err, errlen, "count %lld out of range", (long long)counts[i]);
            return -1;
        }
    }
    if (u->cache_read_tokens > u->prompt_tokens ||
        u->cache_creation_tokens > u->prompt_tokens - u->cache_read_tokens) {
        snprintf(err, errlen, "cached tokens exceed prompt tokens");
        return -1;
    }
    if (u->cache_creation_1h_tokens > u->cache_creation_tokens) {
        snprintf(err, errlen, "1-hour cache writes exceed cache writes");
        return -1;
    }
    return 0;
}

bool price_known(const struct price_table *t, const char *model,
                 const struct price_custom *custom)
{
    if (custom != NULL && custom->has_input && custom->has_output)
        return true;
    const struct price_model *pm = price_lookup(t, model, custom);
    if (pm != NULL && (rate_has(&pm->base, RATE_INPUT) || per_second(pm) ||
                       price_image_priced(pm)))
        return true;
    /* An image model is priced by its "<quality>/<size>/<name>" entries. */
    return price_image_known(t, model, custom);
}

enum price_status price_cost(const struct price_table *t, const char *model,
                             const struct price_custom *custom,
                             const struct usage *u, money_t *cost,
                             char *err, size_t errlen)
{
    *cost = 0;
    if (check_usage(u, err, errlen) < 0)
        return PRICE_ERROR;
    money_t sum = 0;
    if (u->images > 0) {
        const struct price_model *im = price_image_entry(t, model, custom, u);
        if (im != NULL && price_image_priced(im)) {
            if (price_image_cost(im, u, &sum) < 0)
                goto overflow;
            *cost = sum;
            return PRICE_OK;
        }
    }
    const struct price_model *pm = price_lookup(t, model, custom);
    static const struct price_model none;
    bool custom_price = custom != NULL && custom->has_input;
    if (custom_price && !custom->has_output && pm != NULL && rate_has(&pm->base, RATE_OUTPUT)) {
        struct price_custom both = *custom; /* the map's output price, with the deployment's input */
        both.output_per_token = pm->base.v[RATE_OUTPUT];
        both.has_output = true;
        return price_cost(t, model, &both, u, cost, err, errlen);
    }
    if (pm == NULL && !custom_price) {
        snprintf(err, errlen, "no price for model %s", model);
        return PRICE_UNPRICED;
    }
    /* A deployment's own per-token prices replace the map's entry whole, as
     * in LiteLLM: every input token at its input price, every output token
     * at its output price. */
    if (pm == NULL || custom_price)
        pm = &none;
    if (per_second(pm) && !custom_price) {
        if (seconds_cost(pm, u, &sum) < 0)
            goto overflow;
    } else if (!rate_has(&pm->base, RATE_INPUT) && !custom_price) {
        snprintf(err, errlen, "no price for model %s", model);
        return PRICE_UNPRICED;
    } else if (token_cost(pm, custom, u, &sum) < 0 || search_cost(pm, u, &sum) < 0 ||
               (unit_has(pm, UNIT_REQUEST) && add_bucket(&sum, 1, pm->unit[UNIT_REQUEST]) < 0)) {
        goto overflow;
    }
    *cost = sum;
    return PRICE_OK;
overflow:
    snprintf(err, errlen, "cost overflow");
    return PRICE_ERROR;
}
