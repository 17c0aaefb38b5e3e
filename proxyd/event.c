/* event.c - the parts of a usage event (proto/events.proto) every sender in
 * proxyd fills the same way: the usage buckets and the deployment. */
#include "event.h"

#include <stdlib.h>

static void set_count(protobuf_c_boolean *has, int64_t *field, int64_t v)
{
    *has = v != 0;
    *field = v;
}

static char *word_or_null(const char *s)
{
    return s[0] != '\0' ? (char *)s : NULL;
}

void event_fill_usage(Tollgate__UsageEvent *e, const struct usage *u)
{
    e->has_prompt_tokens = e->has_completion_tokens = e->has_total_tokens = 1;
    e->has_cache_read_tokens = e->has_cache_creation_tokens = 1;
    e->prompt_tokens = u->prompt_tokens;
    e->completion_tokens = u->completion_tokens;
    e->total_tokens = u->total_tokens;
    e->cache_read_tokens = u->cache_read_tokens;
    e->cache_creation_tokens = u->cache_creation_tokens;
    set_count(&e->has_cache_creation_1h_tokens, &e->cache_creation_1h_tokens,
              u->cache_creation_1h_tokens);
    set_count(&e->has_prompt_audio_tokens, &e->prompt_audio_tokens, u->prompt_audio_tokens);
    set_count(&e->has_prompt_image_tokens, &e->prompt_image_tokens, u->prompt_image_tokens);
    set_count(&e->has_reasoning_tokens, &e->reasoning_tokens, u->reasoning_tokens);
    set_count(&e->has_completion_audio_tokens, &e->completion_audio_tokens,
              u->completion_audio_tokens);
    set_count(&e->has_completion_image_tokens, &e->completion_image_tokens,
              u->completion_image_tokens);
    set_count(&e->has_web_search_requests, &e->web_search_requests, u->web_search_requests);
    set_count(&e->has_images, &e->images, u->images);
    set_count(&e->has_image_width, &e->image_width, u->image_width);
    set_count(&e->has_image_height, &e->image_height, u->image_height);
    e->has_web_search_requested = u->web_search_requested;
    e->web_search_requested = u->web_search_requested;
    e->search_context_size = word_or_null(u->search_context_size);
    e->service_tier = word_or_null(u->service_tier);
    e->image_quality = word_or_null(u->image_quality);
}

void event_fill_deployment(Tollgate__UsageEvent *e, const struct deployment *d,
                           char in_price[MONEY_STR_MAX], char out_price[MONEY_STR_MAX])
{
    e->model_id = d->model_id; /* accountd counts the config budgets by it (and the provider) */
    e->model = d->model;
    e->api_base = d->api_base;
    e->base_model = d->base_model;
    if (d->price.has_input) {
        money_format(d->price.input_per_token, in_price);
        e->input_cost_per_token = in_price;
    }
    if (d->price.has_output) {
        money_format(d->price.output_per_token, out_price);
        e->output_cost_per_token = out_price;
    }
}
