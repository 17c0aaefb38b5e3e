/* fuzz_price.c - the price file (price.c: price_table_parse) and, for each
 * model of a file that loads, the cost of a few kinds of usage
 * (price_cost.c, price_image.c), as an operator's price_file reaches them. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "fuzz_common.h"
#include "price.h"

#define MODELS_MAX 16

/* Prices model at a few usages that take different rules. */
static void price_model(const struct price_table *t, const char *model)
{
    const struct usage uses[] = {
        {.prompt_tokens = 1000, .completion_tokens = 500, .total_tokens = 1500},
        {.prompt_tokens = 300000, .completion_tokens = 10, .cache_read_tokens = 1000,
         .cache_creation_tokens = 500, .cache_creation_1h_tokens = 100, .reasoning_tokens = 5,
         .prompt_audio_tokens = 7, .completion_audio_tokens = 3, .service_tier = "flex"},
        {.images = 2, .image_width = 1792, .image_height = 1024, .image_quality = "hd"},
        {.prompt_tokens = 10, .web_search_requested = true, .web_search_requests = 2,
         .search_context_size = "high", .duration_us = 2500000, .service_tier = "priority"},
    };
    struct price_custom custom = {.base_model = model, .has_input = true,
                                  .input_per_token = 3};
    char err[256];
    money_t cost;
    (void)price_known(t, model, NULL);
    (void)price_max_output(t, model, NULL);
    for (size_t i = 0; i < sizeof(uses) / sizeof(uses[0]); i++) {
        (void)price_cost(t, model, NULL, &uses[i], &cost, err, sizeof(err));
        (void)price_cost(t, "other", &custom, &uses[i], &cost, err, sizeof(err));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    struct price_table *t = price_table_parse((const char *)data, size, err, sizeof(err));
    if (t == NULL)
        return 0;
    (void)price_table_count(t);
    json_t *root = json_loadb((const char *)data, size, 0, NULL);
    const char *name;
    json_t *v;
    size_t n = 0;
    json_object_foreach(json_object_get(root, "models"), name, v) {
        if (n++ == MODELS_MAX)
            break;
        price_model(t, name);
        char prefixed[300];
        snprintf(prefixed, sizeof(prefixed), "openai/%.250s", name);
        price_model(t, prefixed);
    }
    json_decref(root);
    price_table_free(t);
    return 0;
}
