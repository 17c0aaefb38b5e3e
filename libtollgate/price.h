/* price.h - the price map and the cost of one request.
 *
 * One implementation serves proxyd (the x-litellm-response-cost header),
 * accountd (the ledger), reportd (/spend/calculate) and the BudgetManager,
 * so they always agree to the last digit. The rules follow LiteLLM's cost
 * calculator; README.md "Prices" lists every field family and how it is
 * priced (or why not).
 */
#ifndef TG_PRICE_H
#define TG_PRICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "money.h"

struct price_table;

#define PRICE_WORD_MAX 16 /* image quality, search context size, service tier */

/* Everything a request's price depends on. Token counts are what the upstream
 * reported. prompt_tokens INCLUDES every input bucket below (cache reads and
 * writes, audio, image tokens) and completion_tokens every output bucket
 * (reasoning, audio, image tokens): OpenAI's convention. */
struct usage {
    int64_t prompt_tokens;
    int64_t completion_tokens;
    int64_t total_tokens;
    int64_t cache_read_tokens;
    int64_t cache_creation_tokens;    /* all cache writes, 5-minute and 1-hour */
    int64_t cache_creation_1h_tokens; /* the 1-hour part of cache_creation_tokens */
    int64_t prompt_audio_tokens;
    int64_t prompt_image_tokens;
    int64_t reasoning_tokens;
    int64_t completion_audio_tokens;
    int64_t completion_image_tokens;
    int64_t web_search_requests;      /* searches the answer reports */
    bool web_search_requested;        /* the request carried web_search_options */
    char search_context_size[PRICE_WORD_MAX]; /* its search_context_size; "" = medium */
    char service_tier[PRICE_WORD_MAX];        /* the answer's service_tier; "" = standard */
    /* Image generation (images > 0 makes it an image call): n, size, quality. */
    int64_t images;
    int64_t image_width, image_height;        /* 0 = OpenAI's default 1024x1024 */
    char image_quality[PRICE_WORD_MAX];       /* "" = not given */
    int64_t duration_us;              /* request time, for per-second prices */
};

/* Per-deployment pricing from the config (litellm_params / model_info). */
struct price_custom {
    const char *base_model; /* price as this model instead; may be NULL */
    bool has_input, has_output;
    money_t input_per_token, output_per_token;
};

enum price_status { PRICE_OK = 0, PRICE_UNPRICED = 1, PRICE_ERROR = -1 };

/* Loads a price file written by data/gen_prices.py. NULL on error (err),
 * including a price field the library neither prices nor knows to skip. */
struct price_table *price_table_load(const char *path, char *err, size_t errlen);
/* Same, from the file's text. */
struct price_table *price_table_parse(const char *text, size_t len, char *err, size_t errlen);
/* The price file at path, or the built-in map when path is NULL. */
struct price_table *price_table_open(const char *path, char *err, size_t errlen);
void price_table_free(struct price_table *t);
size_t price_table_count(const struct price_table *t);

/* Is there a price for this deployment model (after name resolution)? */
bool price_known(const struct price_table *t, const char *model,
                 const struct price_custom *custom);

/* The model's largest answer in tokens (0 when the map does not say). */
int64_t price_max_output(const struct price_table *t, const char *model,
                         const struct price_custom *custom);

/* Cost of a request. PRICE_UNPRICED leaves *cost = 0 (the caller flags the
 * row, never silently charging $0); PRICE_ERROR on impossible usage. */
enum price_status price_cost(const struct price_table *t, const char *model,
                             const struct price_custom *custom,
                             const struct usage *u, money_t *cost,
                             char *err, size_t errlen);

/* The price-field families the library deliberately does not price, as
 * "pattern\treason" lines (NULL-terminated); a test compares them with
 * tests/data/price_fields.tsv. */
extern const char *const price_unpriced_families[];

#endif
