/* price.h - the price map and the cost of one request.
 *
 * One implementation serves proxyd (the x-litellm-response-cost header) and
 * accountd (the ledger), so the two always agree to the last digit.
 */
#ifndef TG_PRICE_H
#define TG_PRICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "money.h"

struct price_table;

/* Token counts of one request, as the upstream reported them. prompt_tokens
 * INCLUDES cache reads and cache writes (OpenAI's convention). */
struct usage {
    int64_t prompt_tokens;
    int64_t completion_tokens;
    int64_t total_tokens;
    int64_t cache_read_tokens;
    int64_t cache_creation_tokens;
};

/* Per-deployment pricing from the config (litellm_params / model_info). */
struct price_custom {
    const char *base_model; /* price as this model instead; may be NULL */
    bool has_input, has_output;
    money_t input_per_token, output_per_token;
};

enum price_status { PRICE_OK = 0, PRICE_UNPRICED = 1, PRICE_ERROR = -1 };

/* Loads a price file written by data/gen_prices.py. NULL on error (err). */
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

#endif
