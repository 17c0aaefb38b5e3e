/* price_model.h - one model's prices as the price library holds them
 * (internal to price.c, price_fields.c and price_cost.c). */
#ifndef TG_PRICE_MODEL_H
#define TG_PRICE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "money.h"

/* Per-token rates: the buckets a request's tokens fall into. */
enum price_rate {
    RATE_INPUT, RATE_OUTPUT, RATE_CACHE_READ, RATE_CACHE_WRITE, RATE_CACHE_WRITE_1H,
    RATE_AUDIO_IN, RATE_AUDIO_OUT, RATE_IMAGE_IN, RATE_IMAGE_OUT, RATE_REASONING,
    RATE_CACHE_HIT, /* DeepSeek's input_cost_per_token_cache_hit: cache reads when
                     * cache_read_input_token_cost is absent */
    RATE_COUNT
};

struct price_rates {
    money_t v[RATE_COUNT];
    unsigned has; /* bit r: v[r] is set */
};

/* Rates above a prompt size: every *_above_<N>k_tokens field of one N. */
struct price_tier {
    int64_t threshold;
    struct price_rates r;
};

/* Prices per unit other than a token. */
enum price_unit {
    UNIT_PIXEL_IN, UNIT_PIXEL_OUT, UNIT_IMAGE_IN, UNIT_IMAGE_OUT,
    UNIT_SECOND_IN, UNIT_SECOND_OUT, UNIT_REQUEST,
    UNIT_SEARCH_LOW, UNIT_SEARCH_MEDIUM, UNIT_SEARCH_HIGH,
    UNIT_COUNT
};

enum price_service { SVC_PRIORITY, SVC_FLEX, SVC_COUNT };

struct price_model {
    struct price_rates base;
    struct price_rates service[SVC_COUNT]; /* *_priority, *_flex */
    struct price_tier *tiers;              /* largest threshold first */
    size_t ntiers;
    money_t unit[UNIT_COUNT];
    unsigned has_unit;                     /* bit u: unit[u] is set */
    bool xai;                              /* xAI: a tier applies AT its threshold, and
                                            * reasoning may be reported beside the output */
    int64_t max_output_tokens;
};

static inline bool rate_has(const struct price_rates *r, enum price_rate k)
{
    return (r->has >> k) & 1u;
}

static inline bool unit_has(const struct price_model *pm, enum price_unit k)
{
    return (pm->has_unit >> k) & 1u;
}

/* Applies one field of the price file to pm: 0 when priced, 1 when it is a
 * family deliberately left unpriced, -1 (err) for a field the library does
 * not know. */
int price_field_apply(struct price_model *pm, const char *field, money_t value,
                      char *err, size_t errlen);

/* Orders pm's tiers, largest threshold first (after all fields are applied). */
void price_model_finish(struct price_model *pm);

void price_model_free(void *pm);

struct price_table;
struct price_custom;

/* The entry of exactly this name, or NULL. */
const struct price_model *price_exact(const struct price_table *t, const char *name);
/* The entry for a name: as written, then without its provider prefix. */
const struct price_model *price_resolve(const struct price_table *t, const char *model);
/* The entry a deployment is priced by (its base_model when it has one). */
const struct price_model *price_lookup(const struct price_table *t, const char *model,
                                       const struct price_custom *custom);

#endif
