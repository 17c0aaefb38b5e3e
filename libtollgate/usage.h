/* usage.h - reading an upstream's usage object (OpenAI, Anthropic and
 * DeepSeek names) and the request fields a price depends on. */
#ifndef TG_USAGE_H
#define TG_USAGE_H

#include <jansson.h>
#include <stdbool.h>

#include "price.h"

/* Fills u from a "usage" JSON object (zeroing the rest of u). Missing
 * counts are 0; -1 when a count is present but not a non-negative integer. */
int usage_from_json(const json_t *usage, struct usage *u);

/* The same from Anthropic's Messages usage (input_tokens, output_tokens,
 * cache_read_input_tokens, cache_creation_input_tokens and its 5m/1h split,
 * server_tool_use) and from the Responses API's (input_tokens with
 * input_tokens_details.cached_tokens, output_tokens with
 * output_tokens_details.reasoning_tokens). prompt_tokens includes cache
 * reads and writes either way. */
int usage_from_anthropic(const json_t *usage, struct usage *u);
int usage_from_responses(const json_t *usage, struct usage *u);

/* Notes what the request body asked for: web_search_options, service_tier
 * and, for an image generation, n, size and quality. -1 on a malformed n or
 * size. */
int usage_note_request(const json_t *body, bool image_call, struct usage *u);

/* Notes the answer's service_tier (the rates it was billed at), which wins
 * over the request's; call after usage_note_request. */
void usage_note_answer(const json_t *answer, struct usage *u);

#endif
