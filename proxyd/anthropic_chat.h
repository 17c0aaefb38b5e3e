/* anthropic_chat.h - OpenAI chat/completions <-> Anthropic Messages, the way
 * LiteLLM translates (litellm/llms/anthropic/chat/transformation.py, the
 * prompt factory's anthropic_messages_pt and the streaming handler's
 * ModelResponseIterator are the reference).
 *
 * Pure functions over jansson values: no I/O, no event loop. Arguments are
 * borrowed; every json_t * returned is a new reference the caller owns.
 * The request direction is anthropic_chat_request.c (entry, parameters),
 * anthropic_chat_messages.c (turns, system) and anthropic_chat_tools.c
 * (tools, tool_choice, response_format); anthropic_chat_answer.c owns the
 * answers, errors and streams.
 */
#ifndef PROXYD_ANTHROPIC_CHAT_H
#define PROXYD_ANTHROPIC_CHAT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* LiteLLM's DEFAULT_ANTHROPIC_CHAT_MAX_TOKENS: Anthropic requires max_tokens. */
#define ANTHROPIC_CHAT_DEFAULT_MAX_TOKENS 4096
/* The forced tool LiteLLM turns response_format into (RESPONSE_FORMAT_TOOL_NAME);
 * an answer that calls it is JSON-mode content, not a tool call. */
#define ANTHROPIC_CHAT_JSON_TOOL "json_tool_call"

/* An OpenAI chat body -> an Anthropic Messages body for upstream_model.
 * Keeps "stream": true. system/developer messages become the top-level
 * "system" (a string for one plain text, else LiteLLM's list of text
 * blocks); consecutive same-role turns merge (role "tool" -> user
 * tool_result blocks); tools, tool_choice, parallel_tool_calls, stop, user,
 * response_format (a forced json_tool_call tool), reasoning_effort
 * (thinking), web_search_options and max_tokens (default above) are mapped;
 * Anthropic-native keys (top_k, thinking, ...) pass through as LiteLLM
 * passes unknown keys. OpenAI parameters Anthropic lacks (logprobs, seed,
 * n > 1, ...) -> NULL with err "anthropic does not support parameters:
 * ['logprobs', 'seed'], for model=..." unless drop_params (or the body's own
 * "drop_params": true), then they are dropped. Ignored: metadata,
 * stream_options, model. Malformed input -> NULL with err. */
json_t *anthropic_chat_request(const json_t *chat, const char *upstream_model, bool drop_params,
                               char *err, size_t errlen);

/* Anthropic usage -> OpenAI usage: prompt_tokens = input + cache reads +
 * cache writes (as LiteLLM), completion_tokens = output, total_tokens,
 * prompt_tokens_details {cached_tokens, cache_creation_tokens[,
 * cache_creation_token_details]}, cache_creation_input_tokens and
 * cache_read_input_tokens at the top level, cache_creation and
 * server_tool_use carried over. A missing usage (NULL) counts as zeros. */
json_t *anthropic_chat_usage(const json_t *anthropic_usage);

/* A whole Anthropic message -> a chat.completion for the model the client
 * named: id "chatcmpl-" + the message id, created now, one choice with the
 * text blocks joined, tool_use blocks as tool_calls (arguments compact
 * JSON), thinking blocks as reasoning_content + thinking_blocks, the mapped
 * finish_reason and usage. A json_tool_call answer becomes the content
 * (LiteLLM's JSON mode). NULL on a malformed message. */
json_t *anthropic_chat_answer(const json_t *message, const char *model);

/* An Anthropic error body {"type":"error","error":{"type","message"}} ->
 * {"error":{"message","type","param":null,"code":null}}; anything else -> a
 * generic one whose type follows the status. */
json_t *anthropic_chat_error(const json_t *anthropic_body, int status);

/* Lays a stream event's usage over the usage known so far: message_delta's
 * counts are cumulative and replace message_start's, and a null count (the
 * API may send one for what it does not repeat) keeps the earlier one. -1
 * when out of memory. */
int anthropic_chat_usage_merge(json_t *usage, const json_t *delta);

/* Streams: one translator per stream. Every chunk carries the same id
 * ("chatcmpl-" + message_start's message id; id_hint, or "chatcmpl-stream",
 * when that has none) and created. id_hint may be NULL. */
struct anthropic_chat_stream;
struct anthropic_chat_stream *anthropic_chat_stream_new(const char *model, const char *id_hint);
void anthropic_chat_stream_free(struct anthropic_chat_stream *s);

/* Feeds one Anthropic stream event (the parsed data object) and appends to
 * chunks (a JSON array) the chat.completion.chunk objects the client gets
 * now: the role chunk at message_start, content / tool_calls / reasoning
 * deltas, the finish_reason chunk at message_delta, one usage chunk
 * (choices []) at message_stop. ping -> nothing; an "error" event -> an
 * {"error":{...}} chunk. 0, or -1 on a malformed event (chunks unchanged). */
int anthropic_chat_stream_event(struct anthropic_chat_stream *s, const json_t *event,
                                json_t *chunks);

/* The Anthropic usage seen so far (message_start's, overridden by
 * message_delta's cumulative counts), as Anthropic names it; NULL before
 * message_start. Borrowed: valid until the next event or the free. */
const json_t *anthropic_chat_stream_usage(const struct anthropic_chat_stream *s);

#endif
