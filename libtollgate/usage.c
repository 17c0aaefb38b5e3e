/* usage.c - normalising what an upstream reported, and what the request
 * asked for, into struct usage (see price.h for the buckets).
 *
 * Upstreams name the same buckets differently: cache reads are OpenAI's
 * prompt_tokens_details.cached_tokens, Anthropic's cache_read_input_tokens
 * or DeepSeek's prompt_cache_hit_tokens; cache writes Anthropic's
 * cache_creation_input_tokens (its cache_creation object splits them into
 * 5-minute and 1-hour writes) or prompt_tokens_details.cache_creation_tokens
 * (cache_write_tokens); web searches server_tool_use.web_search_requests
 * (Perplexity: num_search_queries). prompt_tokens includes
 * the cache reads and writes in every shape proxyd relays.
 */
#include "usage.h"

#include <stdio.h>
#include <string.h>

/* Reads a non-negative integer count; absent or null leaves *out alone. */
static int count(const json_t *obj, const char *name, int64_t *out)
{
    const json_t *v = json_is_object(obj) ? json_object_get(obj, name) : NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = json_integer_value(v);
    return 0;
}

/* The first of two places a count may be reported (0 when neither). */
static int either(const json_t *a, const char *an, const json_t *b, const char *bn,
                  int64_t *out)
{
    int64_t first = 0, second = 0;
    if (count(a, an, &first) < 0 || count(b, bn, &second) < 0)
        return -1;
    *out = first > 0 ? first : second;
    return 0;
}

static int cache_writes(const json_t *usage, const json_t *pd, struct usage *u)
{
    const json_t *split = json_object_get(usage, "cache_creation");
    const json_t *split2 = json_object_get(pd, "cache_creation_token_details");
    int64_t m5 = 0, h1 = 0;
    if (!json_is_object(split))
        split = split2;
    if (either(usage, "cache_creation_input_tokens", pd, "cache_creation_tokens",
               &u->cache_creation_tokens) < 0 ||
        (u->cache_creation_tokens == 0 &&
         count(pd, "cache_write_tokens", &u->cache_creation_tokens) < 0) ||
        count(split, "ephemeral_5m_input_tokens", &m5) < 0 ||
        count(split, "ephemeral_1h_input_tokens", &h1) < 0)
        return -1;
    u->cache_creation_1h_tokens = h1;
    /* Only the split was reported: the writes are its two parts. */
    if (u->cache_creation_tokens == 0)
        u->cache_creation_tokens = m5 + h1;
    return 0;
}

int usage_from_json(const json_t *usage, struct usage *u)
{
    *u = (struct usage){0};
    if (!json_is_object(usage))
        return -1;
    const json_t *pd = json_object_get(usage, "prompt_tokens_details");
    const json_t *cd = json_object_get(usage, "completion_tokens_details");
    const json_t *tools = json_object_get(usage, "server_tool_use");
    if (count(usage, "prompt_tokens", &u->prompt_tokens) < 0 ||
        count(usage, "completion_tokens", &u->completion_tokens) < 0 ||
        count(usage, "total_tokens", &u->total_tokens) < 0 ||
        either(usage, "cache_read_input_tokens", pd, "cached_tokens", &u->cache_read_tokens) < 0 ||
        (u->cache_read_tokens == 0 &&
         count(usage, "prompt_cache_hit_tokens", &u->cache_read_tokens) < 0) ||
        cache_writes(usage, pd, u) < 0 ||
        count(pd, "audio_tokens", &u->prompt_audio_tokens) < 0 ||
        count(pd, "image_tokens", &u->prompt_image_tokens) < 0 ||
        count(cd, "reasoning_tokens", &u->reasoning_tokens) < 0 ||
        count(cd, "audio_tokens", &u->completion_audio_tokens) < 0 ||
        count(cd, "image_tokens", &u->completion_image_tokens) < 0 ||
        either(tools, "web_search_requests", pd, "web_search_requests",
               &u->web_search_requests) < 0 ||
        (u->web_search_requests == 0 &&
         count(usage, "num_search_queries", &u->web_search_requests) < 0))
        return -1;
    if (u->total_tokens == 0)
        u->total_tokens = u->prompt_tokens + u->completion_tokens;
    return 0;
}

/* Anthropic's input_tokens leaves out the cache reads and writes, which
 * prompt_tokens includes (as LiteLLM counts them). */
int usage_from_anthropic(const json_t *usage, struct usage *u)
{
    int64_t in = 0, out = 0;
    if (usage_from_json(usage, u) < 0 || count(usage, "input_tokens", &in) < 0 ||
        count(usage, "output_tokens", &out) < 0)
        return -1;
    u->prompt_tokens = in + u->cache_read_tokens + u->cache_creation_tokens;
    u->completion_tokens = out;
    u->total_tokens = u->prompt_tokens + out;
    return 0;
}

/* The Responses API counts cached tokens inside input_tokens, like chat. */
int usage_from_responses(const json_t *usage, struct usage *u)
{
    const json_t *id = json_object_get(usage, "input_tokens_details");
    const json_t *od = json_object_get(usage, "output_tokens_details");
    if (usage_from_json(usage, u) < 0 || count(usage, "input_tokens", &u->prompt_tokens) < 0 ||
        count(usage, "output_tokens", &u->completion_tokens) < 0 ||
        count(id, "cached_tokens", &u->cache_read_tokens) < 0 ||
        count(od, "reasoning_tokens", &u->reasoning_tokens) < 0)
        return -1;
    u->total_tokens = u->prompt_tokens + u->completion_tokens;
    return 0;
}

/* Copies a short string field (a quality, a tier name) into out, or "". */
static void word(const json_t *obj, const char *name, char out[PRICE_WORD_MAX])
{
    const char *s = json_string_value(json_is_object(obj) ? json_object_get(obj, name) : NULL);
    out[0] = '\0';
    if (s != NULL && strlen(s) < PRICE_WORD_MAX)
        snprintf(out, PRICE_WORD_MAX, "%s", s);
}

/* Like word, but leaves out alone when obj does not name one. */
static void word_if_set(const json_t *obj, const char *name, char out[PRICE_WORD_MAX])
{
    char w[PRICE_WORD_MAX];
    word(obj, name, w);
    if (w[0] != '\0')
        memcpy(out, w, PRICE_WORD_MAX);
}

/* "1024x1024" -> 1024, 1024; 0 when absent, -1 when malformed. */
static int image_size(const json_t *body, int64_t *w, int64_t *h)
{
    const json_t *v = json_object_get(body, "size");
    long long a, b;
    char tail;
    *w = *h = 0;
    if (v == NULL || json_is_null(v) ||
        (json_is_string(v) && strcmp(json_string_value(v), "auto") == 0))
        return 0;
    if (!json_is_string(v) ||
        sscanf(json_string_value(v), "%lldx%lld%c", &a, &b, &tail) != 2 || a <= 0 || b <= 0 ||
        a > 100000 || b > 100000)
        return -1;
    *w = a;
    *h = b;
    return 0;
}

int usage_note_request(const json_t *body, bool image_call, struct usage *u)
{
    const json_t *search = json_object_get(body, "web_search_options");
    word_if_set(body, "service_tier", u->service_tier);
    if (json_is_object(search)) {
        u->web_search_requested = true;
        word(search, "search_context_size", u->search_context_size);
    }
    if (!image_call)
        return 0;
    int64_t n = 1;
    if (count(body, "n", &n) < 0 || image_size(body, &u->image_width, &u->image_height) < 0)
        return -1;
    u->images = n > 0 ? n : 1;
    word(body, "quality", u->image_quality);
    if (strcmp(u->image_quality, "auto") == 0)
        u->image_quality[0] = '\0';
    return 0;
}

void usage_note_answer(const json_t *answer, struct usage *u)
{
    word_if_set(answer, "service_tier", u->service_tier);
}
