/* price_fields.c - what each field of the price map means to the library.
 *
 * A field is a per-token rate (maybe for a service tier, "_priority" or
 * "_flex", or above a prompt size, "_above_<N>k_tokens"), a price per other
 * unit (pixel, image, second, request, web search), or one of the families
 * the library deliberately does not price, each listed with its reason.
 * Anything else refuses the whole price file: a refreshed map that brings a
 * new kind of price cannot drop money unseen.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "price.h"
#include "price_model.h"

const char *const price_unpriced_families[] = {
    "input_cost_per_token_batches\tthe Batch API, which Tollgate does not route",
    "output_cost_per_token_batches\tthe Batch API, which Tollgate does not route",
    "input_cost_per_token_batch_requests\tthe Batch API, which Tollgate does not route",
    "input_cost_per_character\tVertex AI's character billing through its native API; "
    "OpenAI-compatible endpoints report tokens",
    "output_cost_per_character\tVertex AI's character billing through its native API; "
    "OpenAI-compatible endpoints report tokens",
    "input_cost_per_character_above_<N>k_tokens\tVertex AI's character billing (native API)",
    "output_cost_per_character_above_<N>k_tokens\tVertex AI's character billing (native API)",
    "input_cost_per_audio_per_second\tGemini/Vertex audio seconds, reported only in their "
    "native usage metadata",
    "input_cost_per_audio_per_second_above_<N>k_tokens\tGemini/Vertex audio seconds (native "
    "usage metadata)",
    "input_cost_per_video_per_second\tGemini/Vertex video seconds, reported only in their "
    "native usage metadata",
    "input_cost_per_video_per_second_above_<N>k_tokens\tGemini/Vertex video seconds (native "
    "usage metadata)",
    "input_cost_per_video_per_second_above_<N>s_interval\tVertex multimodal embeddings of "
    "video (native API)",
    "input_cost_per_image_above_<N>k_tokens\tGemini/Vertex per-image input prices (native "
    "usage metadata); their OpenAI-compatible endpoints count images as tokens",
    "cache_creation_input_audio_token_cost\tcached audio of the Realtime API, which Tollgate "
    "does not route",
    "cache_read_input_audio_token_cost\tcached audio of the Realtime API, which Tollgate does "
    "not route",
    "cache_read_input_image_token_cost\tcached input images of the Images edit API, which "
    "Tollgate does not route",
    "code_interpreter_cost_per_session\ta Responses API tool (issue 17)",
    "citation_cost_per_token\tPerplexity's citation tokens (sonar-deep-research), reported "
    "outside OpenAI's usage fields",
    "input_dbu_cost_per_token\tDatabricks DBUs, informational: the dollar rates are "
    "input_cost_per_token / output_cost_per_token",
    "output_dbu_cost_per_token\tDatabricks DBUs, informational: the dollar rates are "
    "input_cost_per_token / output_cost_per_token",
    "output_db_cost_per_token\tDatabricks DBUs, informational: the dollar rates are "
    "input_cost_per_token / output_cost_per_token",
    "output_cost_per_image_above_<N>_and_<N>_pixels\tBedrock image models, through "
    "Bedrock's native API only",
    "output_cost_per_image_above_<N>_and_<N>_pixels_and_premium_image\tBedrock image models, "
    "through Bedrock's native API only",
    "output_cost_per_image_premium_image\tBedrock image models, through Bedrock's native API "
    "only",
    NULL,
};

static const struct {
    const char *name;
    enum price_rate rate;
} TOKEN_RATES[] = {
    {"input_cost_per_token", RATE_INPUT},
    {"output_cost_per_token", RATE_OUTPUT},
    {"cache_read_input_token_cost", RATE_CACHE_READ},
    {"cache_creation_input_token_cost", RATE_CACHE_WRITE},
    {"cache_creation_input_token_cost_above_1hr", RATE_CACHE_WRITE_1H},
    {"input_cost_per_audio_token", RATE_AUDIO_IN},
    {"output_cost_per_audio_token", RATE_AUDIO_OUT},
    {"input_cost_per_image_token", RATE_IMAGE_IN},
    {"output_cost_per_image_token", RATE_IMAGE_OUT},
    {"output_cost_per_reasoning_token", RATE_REASONING},
    {"input_cost_per_token_cache_hit", RATE_CACHE_HIT},
};

static const struct {
    const char *name;
    enum price_unit unit;
} UNIT_PRICES[] = {
    {"input_cost_per_pixel", UNIT_PIXEL_IN},
    {"output_cost_per_pixel", UNIT_PIXEL_OUT},
    {"input_cost_per_image", UNIT_IMAGE_IN},
    {"output_cost_per_image", UNIT_IMAGE_OUT},
    {"input_cost_per_second", UNIT_SECOND_IN},
    {"output_cost_per_second", UNIT_SECOND_OUT},
    {"input_cost_per_request", UNIT_REQUEST},
    {"search_context_cost_per_query.search_context_size_low", UNIT_SEARCH_LOW},
    {"search_context_cost_per_query.search_context_size_medium", UNIT_SEARCH_MEDIUM},
    {"search_context_cost_per_query.search_context_size_high", UNIT_SEARCH_HIGH},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Does s match pattern, where "<N>" stands for one or more digits? */
static bool matches(const char *pattern, const char *s)
{
    while (*pattern != '\0') {
        if (strncmp(pattern, "<N>", 3) == 0) {
            if (*s < '0' || *s > '9')
                return false;
            while (*s >= '0' && *s <= '9')
                s++;
            pattern += 3;
        } else if (*pattern++ != *s++) {
            return false;
        }
    }
    return *s == '\0';
}

static bool deliberately_unpriced(const char *field)
{
    for (size_t i = 0; price_unpriced_families[i] != NULL; i++) {
        const char *entry = price_unpriced_families[i];
        char pattern[128];
        size_t len = strcspn(entry, "\t");
        if (len >= sizeof(pattern))
            continue;
        memcpy(pattern, entry, len);
        pattern[len] = '\0';
        if (matches(pattern, field))
            return true;
    }
    return false;
}

/* Cuts a trailing "_priority" / "_flex" off base; the tier index or -1. */
static int cut_service(char *base)
{
    static const char *const suffixes[SVC_COUNT] = {"_priority", "_flex"};
    size_t len = strlen(base);
    for (int i = 0; i < SVC_COUNT; i++) {
        size_t sl = strlen(suffixes[i]);
        if (len > sl && strcmp(base + len - sl, suffixes[i]) == 0) {
            base[len - sl] = '\0';
            return i;
        }
    }
    return -1;
}

/* Cuts a trailing "_above_<N>k_tokens" / "_above_<N>_tokens" off base; the
 * threshold in tokens, or 0 when there is none. */
static int64_t cut_threshold(char *base)
{
    char *at = NULL;
    for (char *p = strstr(base, "_above_"); p != NULL; p = strstr(p + 1, "_above_"))
        at = p;
    if (at == NULL)
        return 0;
    const char *p = at + strlen("_above_");
    int64_t n = 0;
    if (*p < '0' || *p > '9')
        return 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (n > INT64_MAX / 10 - 10)
            return 0;
        n = n * 10 + (*p - '0');
    }
    if (*p == 'k') {
        if (n > INT64_MAX / 1000)
            return 0; /* as a number too long: no threshold */
        n *= 1000;
        p++;
    }
    if (strcmp(p, "_tokens") != 0 || n <= 0)
        return 0;
    *at = '\0';
    return n;
}

static struct price_rates *tier_rates(struct price_model *pm, int64_t threshold)
{
    for (size_t i = 0; i < pm->ntiers; i++)
        if (pm->tiers[i].threshold == threshold)
            return &pm->tiers[i].r;
    struct price_tier *grown = realloc(pm->tiers, (pm->ntiers + 1) * sizeof(*grown));
    if (grown == NULL)
        return NULL;
    pm->tiers = grown;
    pm->tiers[pm->ntiers] = (struct price_tier){.threshold = threshold};
    return &pm->tiers[pm->ntiers++].r;
}

static int set_rate(struct price_rates *r, enum price_rate k, money_t value)
{
    r->v[k] = value;
    r->has |= 1u << k;
    return 0;
}

/* Only these token rates come in tiers (LiteLLM's _get_token_base_cost;
 * reasoning from Dashscope's tiered_pricing tables). */
static bool tiered_rate(enum price_rate k)
{
    return k == RATE_INPUT || k == RATE_OUTPUT || k == RATE_CACHE_READ ||
           k == RATE_CACHE_WRITE || k == RATE_CACHE_WRITE_1H || k == RATE_REASONING;
}

int price_field_apply(struct price_model *pm, const char *field, money_t value,
                      char *err, size_t errlen)
{
    if (deliberately_unpriced(field))
        return 1;
    char base[128];
    if (strlen(field) >= sizeof(base))
        goto unknown;
    strcpy(base, field);
    int service = cut_service(base);
    int64_t threshold = cut_threshold(base);
    for (size_t i = 0; i < COUNT(TOKEN_RATES); i++) {
        if (strcmp(base, TOKEN_RATES[i].name) != 0)
            continue;
        enum price_rate k = TOKEN_RATES[i].rate;
        if (threshold > 0 && service < 0 && tiered_rate(k)) {
            struct price_rates *r = tier_rates(pm, threshold);
            if (r == NULL) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            return set_rate(r, k, value);
        }
        if (threshold == 0)
            return set_rate(service >= 0 ? &pm->service[service] : &pm->base, k, value);
        goto unknown;
    }
    for (size_t i = 0; service < 0 && threshold == 0 && i < COUNT(UNIT_PRICES); i++) {
        if (strcmp(base, UNIT_PRICES[i].name) == 0) {
            pm->unit[UNIT_PRICES[i].unit] = value;
            pm->has_unit |= 1u << UNIT_PRICES[i].unit;
            return 0;
        }
    }
unknown:
    snprintf(err, errlen, "price field %s is neither priced nor a known unpriced family "
             "(see libtollgate/price_fields.c)", field);
    return -1;
}

static int by_threshold_desc(const void *a, const void *b)
{
    int64_t x = ((const struct price_tier *)a)->threshold;
    int64_t y = ((const struct price_tier *)b)->threshold;
    return (x < y) - (x > y);
}

void price_model_finish(struct price_model *pm)
{
    if (pm->ntiers > 1)
        qsort(pm->tiers, pm->ntiers, sizeof(pm->tiers[0]), by_threshold_desc);
}

void price_model_free(void *p)
{
    struct price_model *pm = p;
    if (pm == NULL)
        return;
    free(pm->tiers);
    free(pm);
}
