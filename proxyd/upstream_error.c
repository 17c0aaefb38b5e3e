/* upstream_error.c - sorting an upstream's error answer (upstream_error.h).
 *
 * The phrases are LiteLLM's: OpenAI's context_length_exceeded ("This
 * model's maximum context length is ..."), Anthropic's "prompt is too long",
 * and the other providers' wordings ExceptionCheckers knows; OpenAI's
 * content_policy_violation code, Azure's content filter messages and
 * Anthropic's "content filtering policy". Only 4xx answers other than 429 are
 * read: a refusal of the request itself, never an outage.
 */
#include "upstream_error.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define READ_MAX 65536 /* an error body longer than this is read as far as this */

static const char *const CONTEXT_WINDOW[] = {
    "context_length_exceeded",
    "exceed context limit",
    "this model's maximum context length is",
    "string too long. expected a string with maximum length",
    "model's maximum context limit",
    "is longer than the model's context length",
    "input tokens exceed the configured limit",
    "`inputs` tokens + `max_new_tokens` must be",
    "exceeds the available context size",
    "exceeds the maximum number of tokens allowed",
    "prompt is too long",
    NULL,
};

static const char *const CONTENT_POLICY[] = {
    "content_policy_violation",
    "responsibleaipolicyviolation",
    "the response was filtered due to the prompt triggering azure openai's content management",
    "your task failed as a result of our safety system",
    "the model produced invalid content",
    "content_filter_policy",
    "your request was rejected as a result of our safety system",
    "content filtering policy",
    NULL,
};

static bool any_of(const char *text, const char *const *phrases)
{
    for (size_t i = 0; phrases[i] != NULL; i++) {
        if (strstr(text, phrases[i]) != NULL)
            return true;
    }
    return false;
}

/* A parameter check OpenAI words like a context error ("user" too long). */
static bool parameter_error(const char *text)
{
    return strstr(text, "string_above_max_length") != NULL ||
           (strstr(text, "invalid 'user'") != NULL && strstr(text, "string too long") != NULL);
}

enum route_fallback upstream_error_kind(long status, struct evbuffer *body)
{
    enum route_fallback kind = ROUTE_FALLBACK_ANY;
    size_t len = body != NULL ? evbuffer_get_length(body) : 0;
    if (status < 400 || status > 499 || status == 429 || len == 0)
        return kind;
    len = len < READ_MAX ? len : READ_MAX;
    char *text = malloc(len + 1);
    if (text == NULL || evbuffer_copyout(body, text, len) < 0) {
        free(text);
        return kind; /* unread: an ordinary failure */
    }
    text[len] = '\0';
    for (size_t i = 0; i < len; i++)
        text[i] = (char)tolower((unsigned char)text[i]);
    if (any_of(text, CONTEXT_WINDOW) && !parameter_error(text))
        kind = ROUTE_FALLBACK_CONTEXT_WINDOW;
    else if (any_of(text, CONTENT_POLICY))
        kind = ROUTE_FALLBACK_CONTENT_POLICY;
    free(text);
    return kind;
}
