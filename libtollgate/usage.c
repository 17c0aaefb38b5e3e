/* usage.c - normalising an upstream usage object into struct usage.
 *
 * Cache reads come as prompt_tokens_details.cached_tokens (OpenAI) or
 * cache_read_input_tokens (Anthropic through LiteLLM); cache writes as
 * cache_creation_input_tokens. prompt_tokens includes both.
 */
#include "usage.h"

static int count(const json_t *obj, const char *name, int64_t *out)
{
    const json_t *v = json_object_get(obj, name);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = json_integer_value(v);
    return 0;
}

int usage_from_json(const json_t *usage, struct usage *u)
{
    *u = (struct usage){0};
    if (!json_is_object(usage))
        return -1;
    const json_t *details = json_object_get(usage, "prompt_tokens_details");
    if (count(usage, "prompt_tokens", &u->prompt_tokens) < 0 ||
        count(usage, "completion_tokens", &u->completion_tokens) < 0 ||
        count(usage, "total_tokens", &u->total_tokens) < 0 ||
        count(usage, "cache_read_input_tokens", &u->cache_read_tokens) < 0 ||
        count(usage, "cache_creation_input_tokens", &u->cache_creation_tokens) < 0)
        return -1;
    if (u->cache_read_tokens == 0 && json_is_object(details) &&
        count(details, "cached_tokens", &u->cache_read_tokens) < 0)
        return -1;
    if (u->total_tokens == 0)
        u->total_tokens = u->prompt_tokens + u->completion_tokens;
    return 0;
}
