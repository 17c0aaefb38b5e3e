/* anthropic_chat_answer.c - Anthropic answers -> OpenAI chat/completions:
 * usage objects, whole messages, error bodies and streams, as LiteLLM's
 * AnthropicConfig.transform_parsed_response / calculate_usage and the
 * streaming ModelResponseIterator map them.
 *
 * Stream design: Anthropic sends one content block at a time (start,
 * deltas, stop), so the translator keeps only the open block's kind. Tool
 * blocks get consecutive OpenAI tool_calls indexes; a json_tool_call block
 * (the tool response_format became) streams as content instead. The usage
 * is Anthropic's from message_start with message_delta's cumulative counts
 * laid over it, kept in Anthropic's names so a cut stream can be priced.
 */
#include "anthropic_chat.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "httpjson.h"

static bool is(const json_t *v, const char *s)
{
    return json_is_string(v) && strcmp(json_string_value(v), s) == 0;
}

/* LiteLLM's map_finish_reason for Anthropic's stop reasons; anything else
 * (pause_turn, none yet) is "stop". */
static const char *finish_reason(const json_t *stop_reason)
{
    static const char *const map[][2] = {{"end_turn", "stop"},
                                         {"stop_sequence", "stop"},
                                         {"max_tokens", "length"},
                                         {"tool_use", "tool_calls"},
                                         {"refusal", "content_filter"},
                                         {"compaction", "length"},
                                         {"content_filtered", "content_filter"}};
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (is(stop_reason, map[i][0]))
            return map[i][1];
    return "stop";
}

/* ---- usage ---- */

/* A count as Anthropic reports it; absent, null or not a count is 0. */
static json_int_t count(const json_t *usage, const char *name)
{
    const json_t *v = json_object_get(usage, name);
    return json_is_integer(v) && json_integer_value(v) > 0 ? json_integer_value(v) : 0;
}

static int copy_key(json_t *to, const char *to_name, const json_t *from, const char *name)
{
    const json_t *v = json_object_get(from, name);
    if (v == NULL || json_is_null(v))
        return 0;
    return json_object_set_new(to, to_name, json_deep_copy(v));
}

json_t *anthropic_chat_usage(const json_t *au)
{
    json_int_t in = count(au, "input_tokens"), out = count(au, "output_tokens");
    json_int_t read = count(au, "cache_read_input_tokens");
    json_int_t write = count(au, "cache_creation_input_tokens");
    const json_t *split = json_object_get(au, "cache_creation");
    json_int_t prompt = in + read + write;
    json_t *u =
        json_pack("{s:I, s:I, s:I, s:{s:I, s:I}, s:I, s:I}", "prompt_tokens", prompt,
                  "completion_tokens", out, "total_tokens", prompt + out, "prompt_tokens_details",
                  "cached_tokens", read, "cache_creation_tokens", write,
                  "cache_creation_input_tokens", write, "cache_read_input_tokens", read);
    if (u == NULL)
        return NULL;
    if (json_is_object(split)) {
        json_t *details = json_object();
        json_t *pd = json_object_get(u, "prompt_tokens_details");
        if (details == NULL ||
            json_object_set_new(pd, "cache_creation_token_details", details) < 0 ||
            copy_key(details, "ephemeral_5m_input_tokens", split, "ephemeral_5m_input_tokens") <
                0 ||
            copy_key(details, "ephemeral_1h_input_tokens", split, "ephemeral_1h_input_tokens") <
                0 ||
            copy_key(u, "cache_creation", au, "cache_creation") < 0)
            goto oom;
    }
    if (json_is_object(json_object_get(au, "server_tool_use")) &&
        copy_key(u, "server_tool_use", au, "server_tool_use") < 0)
        goto oom;
    return u;
oom:
    json_decref(u);
    return NULL;
}

/* ---- whole messages ---- */

/* A tool_use input as OpenAI's arguments text. */
static json_t *arguments(const json_t *input)
{
    char *text = input ? json_dumps(input, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("{}");
    json_t *s = text ? json_string(text) : NULL;
    free(text);
    return s;
}

/* LiteLLM's _convert_tool_response_to_message: the JSON-mode tool's input
 * is the answer ("values" unwrapped, which models sometimes add). */
static json_t *json_mode_content(const json_t *input)
{
    const json_t *values = json_object_get(input, "values");
    return arguments(values != NULL && !json_is_null(values) ? values : input);
}

struct answer_parts {
    json_t *text;      /* the text blocks joined */
    json_t *reasoning; /* the thinking texts joined, or NULL */
    json_t *thinking;  /* thinking / redacted_thinking blocks */
    json_t *calls;     /* the client's tool calls */
    json_t *json_out;  /* the JSON-mode answer, or NULL */
};

static int append_text(json_t **to, const json_t *more)
{
    const char *a = *to ? json_string_value(*to) : "", *b = json_string_value(more);
    size_t la = strlen(a), lb = json_string_length(more);
    char *joined = malloc(la + lb + 1);
    if (joined == NULL)
        return -1;
    memcpy(joined, a, la);
    memcpy(joined + la, b, lb);
    json_t *s = json_stringn(joined, la + lb);
    free(joined);
    if (s == NULL)
        return -1;
    json_decref(*to);
    *to = s;
    return 0;
}

/* One content block into parts; -1 on a malformed block. Server-side tool
 * blocks (server_tool_use, *_tool_result) are Anthropic's business and
 * left out: a client would try to run them. */
static int answer_block(const json_t *b, struct answer_parts *p)
{
    const json_t *type = json_object_get(b, "type");
    if (!json_is_string(type))
        return -1;
    if (is(type, "text")) {
        const json_t *text = json_object_get(b, "text");
        return json_is_string(text) ? append_text(&p->text, text) : -1;
    }
    if (is(type, "thinking") || is(type, "redacted_thinking")) {
        const json_t *t = json_object_get(b, "thinking");
        if (json_is_string(t) && append_text(&p->reasoning, t) < 0)
            return -1;
        return json_array_append_new(p->thinking, json_deep_copy(b));
    }
    if (!is(type, "tool_use"))
        return 0;
    const char *id = json_string_value(json_object_get(b, "id"));
    const char *name = json_string_value(json_object_get(b, "name"));
    const json_t *input = json_object_get(b, "input");
    if (id == NULL || name == NULL)
        return -1;
    if (strcmp(name, ANTHROPIC_CHAT_JSON_TOOL) == 0) {
        if (p->json_out == NULL && (p->json_out = json_mode_content(input)) == NULL)
            return -1;
        return 0;
    }
    return json_array_append_new(p->calls, json_pack("{s:s, s:s, s:{s:s, s:o}}", "id", id, "type",
                                                     "function", "function", "name", name,
                                                     "arguments", arguments(input)));
}

/* The choice's message. In JSON mode (LiteLLM's _resolve_json_mode_non_
 * streaming) the tool's input is the content, or is added to the text when
 * the model also called the client's tools. */
static json_t *answer_message(struct answer_parts *p, bool *json_only)
{
    *json_only = p->json_out != NULL && json_array_size(p->calls) == 0;
    if (*json_only) {
        json_decref(p->text);
        p->text = json_incref(p->json_out);
    } else if (p->json_out != NULL && append_text(&p->text, p->json_out) < 0) {
        return NULL;
    }
    json_t *m = json_pack("{s:s, s:O?}", "role", "assistant", "content",
                          p->text && json_string_length(p->text) ? p->text : NULL);
    if (m == NULL ||
        (json_array_size(p->calls) && json_object_set(m, "tool_calls", p->calls) < 0) ||
        (p->reasoning && json_object_set(m, "reasoning_content", p->reasoning) < 0) ||
        (json_array_size(p->thinking) && json_object_set(m, "thinking_blocks", p->thinking) < 0)) {
        json_decref(m);
        return NULL;
    }
    return m;
}

static json_t *chat_id(const json_t *anthropic_id, const char *fallback)
{
    if (!json_is_string(anthropic_id))
        return json_string(fallback);
    char id[256];
    snprintf(id, sizeof(id), "chatcmpl-%s", json_string_value(anthropic_id));
    return json_string(id);
}

json_t *anthropic_chat_answer(const json_t *message, const char *model)
{
    const json_t *content = json_object_get(message, "content");
    struct answer_parts p = {.thinking = json_array(), .calls = json_array()};
    json_t *result = NULL, *msg = NULL;
    size_t i;
    const json_t *b;
    bool json_only;
    if (!json_is_object(message) || !json_is_array(content) || p.thinking == NULL ||
        p.calls == NULL)
        goto done;
    json_array_foreach(content, i, b) {
        if (answer_block(b, &p) < 0)
            goto done;
    }
    if ((msg = answer_message(&p, &json_only)) == NULL)
        goto done;
    if (model == NULL)
        model = json_string_value(json_object_get(message, "model"));
    result = json_pack("{s:o, s:s, s:I, s:s, s:[{s:i, s:O, s:s}], s:o}", "id",
                       chat_id(json_object_get(message, "id"), "chatcmpl-anthropic"), "object",
                       "chat.completion", "created", (json_int_t)time(NULL), "model",
                       model ? model : "", "choices", "index", 0, "message", msg, "finish_reason",
                       json_only ? "stop" : finish_reason(json_object_get(message, "stop_reason")),
                       "usage", anthropic_chat_usage(json_object_get(message, "usage")));
done:
    json_decref(msg);
    json_decref(p.text);
    json_decref(p.reasoning);
    json_decref(p.thinking);
    json_decref(p.calls);
    json_decref(p.json_out);
    return result;
}

/* ---- errors ---- */

json_t *anthropic_chat_error(const json_t *body, int status)
{
    const json_t *e = json_object_get(body, "error");
    const char *message = json_string_value(json_object_get(e, "message"));
    const char *type = json_string_value(json_object_get(e, "type"));
    char generic[96];
    if (message == NULL) {
        snprintf(generic, sizeof(generic), "anthropic answered HTTP %d without an error message",
                 status);
        message = generic;
        type = NULL;
    }
    return json_pack("{s:{s:s, s:s, s:n, s:n}}", "error", "message", message, "type",
                     type ? type : httpjson_anthropic_type(status), "param", "code");
}

/* ---- streams ---- */

enum block_kind { BLOCK_NONE, BLOCK_TEXT, BLOCK_TOOL, BLOCK_JSON, BLOCK_THINKING, BLOCK_OTHER };

struct anthropic_chat_stream {
    char *model; /* the client's name; NULL: message_start's */
    char *id_hint;
    json_t *id; /* the chunks' id, set at message_start */
    json_int_t created;
    json_t *usage;        /* Anthropic's names; NULL before message_start */
    int tool_index;       /* OpenAI index of the last client tool call, -1 none */
    enum block_kind kind; /* the open content block */
    bool args_seen;       /* the open tool block had argument text */
    bool json_tool;       /* a json_tool_call block was seen */
    bool client_tool;     /* a client tool call was seen */
};

struct anthropic_chat_stream *anthropic_chat_stream_new(const char *model, const char *id_hint)
{
    struct anthropic_chat_stream *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->model = model ? strdup(model) : NULL;
    s->id_hint = id_hint ? strdup(id_hint) : NULL;
    s->tool_index = -1;
    s->created = (json_int_t)time(NULL);
    if ((model && !s->model) || (id_hint && !s->id_hint)) {
        anthropic_chat_stream_free(s);
        return NULL;
    }
    return s;
}

void anthropic_chat_stream_free(struct anthropic_chat_stream *s)
{
    if (s == NULL)
        return;
    free(s->model);
    free(s->id_hint);
    json_decref(s->id);
    json_decref(s->usage);
    free(s);
}

const json_t *anthropic_chat_stream_usage(const struct anthropic_chat_stream *s)
{
    return s->usage;
}

/* Appends a chunk with one choice carrying delta (taken). */
static int emit(struct anthropic_chat_stream *s, json_t *chunks, json_t *delta, const char *finish)
{
    json_t *c =
        json_pack("{s:O, s:s, s:I, s:s, s:[{s:i, s:o, s:s?}]}", "id", s->id, "object",
                  "chat.completion.chunk", "created", s->created, "model", s->model ? s->model : "",
                  "choices", "index", 0, "delta", delta, "finish_reason", finish);
    return c == NULL ? -1 : json_array_append_new(chunks, c);
}

static int stream_start(struct anthropic_chat_stream *s, const json_t *event, json_t *chunks)
{
    const json_t *msg = json_object_get(event, "message");
    const json_t *usage = json_object_get(msg, "usage");
    const char *model = json_string_value(json_object_get(msg, "model"));
    if (!json_is_object(msg) || s->usage != NULL)
        return -1;
    if (s->model == NULL && (s->model = strdup(model ? model : "")) == NULL)
        return -1;
    s->id = chat_id(json_object_get(msg, "id"), s->id_hint ? s->id_hint : "chatcmpl-stream");
    s->usage = json_is_object(usage) ? json_deep_copy(usage) : json_object();
    if (s->id == NULL || s->usage == NULL)
        return -1;
    return emit(s, chunks, json_pack("{s:s, s:s}", "role", "assistant", "content", ""), NULL);
}

static json_t *tool_delta(int index, json_t *fields /* taken */)
{
    json_t *call = json_pack("{s:i}", "index", index);
    if (call == NULL || json_object_update(call, fields) < 0) {
        json_decref(call);
        call = NULL;
    }
    json_decref(fields);
    return call ? json_pack("{s:[o]}", "tool_calls", call) : NULL;
}

static json_t *reasoning_delta(const char *text)
{
    return json_pack("{s:s, s:[{s:s, s:s}]}", "reasoning_content", text, "thinking_blocks", "type",
                     "thinking", "thinking", text);
}

static int block_start(struct anthropic_chat_stream *s, const json_t *event, json_t *chunks)
{
    const json_t *cb = json_object_get(event, "content_block");
    const json_t *type = json_object_get(cb, "type");
    const char *text = json_string_value(json_object_get(cb, "text"));
    const char *think = json_string_value(json_object_get(cb, "thinking"));
    if (!json_is_string(type))
        return -1;
    s->kind = BLOCK_OTHER;
    if (is(type, "text")) {
        s->kind = BLOCK_TEXT;
        return text && *text ? emit(s, chunks, json_pack("{s:s}", "content", text), NULL) : 0;
    }
    if (is(type, "thinking")) {
        s->kind = BLOCK_THINKING;
        return think && *think ? emit(s, chunks, reasoning_delta(think), NULL) : 0;
    }
    if (is(type, "redacted_thinking"))
        return emit(s, chunks, json_pack("{s:[O]}", "thinking_blocks", cb), NULL);
    if (!is(type, "tool_use"))
        return 0; /* server tools run at Anthropic */
    const char *id = json_string_value(json_object_get(cb, "id"));
    const char *name = json_string_value(json_object_get(cb, "name"));
    if (id == NULL || name == NULL)
        return -1;
    if (strcmp(name, ANTHROPIC_CHAT_JSON_TOOL) == 0) {
        s->kind = BLOCK_JSON;
        s->json_tool = true;
        return 0;
    }
    s->kind = BLOCK_TOOL;
    s->args_seen = false;
    s->client_tool = true;
    return emit(s, chunks,
                tool_delta(++s->tool_index,
                           json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", id, "type", "function",
                                     "function", "name", name, "arguments", "")),
                NULL);
}

static int block_delta(struct anthropic_chat_stream *s, const json_t *event, json_t *chunks)
{
    const json_t *d = json_object_get(event, "delta");
    const json_t *type = json_object_get(d, "type");
    const char *text = json_string_value(json_object_get(d, "text"));
    const char *partial = json_string_value(json_object_get(d, "partial_json"));
    const char *think = json_string_value(json_object_get(d, "thinking"));
    const char *sig = json_string_value(json_object_get(d, "signature"));
    if (!json_is_string(type))
        return -1;
    if (is(type, "text_delta"))
        return text ? emit(s, chunks, json_pack("{s:s}", "content", text), NULL) : -1;
    if (is(type, "thinking_delta"))
        return think ? emit(s, chunks, reasoning_delta(think), NULL) : -1;
    if (is(type, "signature_delta"))
        return sig ? emit(s, chunks,
                          json_pack("{s:[{s:s, s:s, s:s}]}", "thinking_blocks", "type", "thinking",
                                    "thinking", "", "signature", sig),
                          NULL)
                   : -1;
    if (!is(type, "input_json_delta"))
        return 0; /* citations and newer delta types: nothing for chat */
    if (partial == NULL)
        return -1;
    if (s->kind == BLOCK_JSON)
        return *partial ? emit(s, chunks, json_pack("{s:s}", "content", partial), NULL) : 0;
    if (s->kind != BLOCK_TOOL)
        return 0;
    s->args_seen |= *partial != '\0';
    return emit(s, chunks,
                tool_delta(s->tool_index, json_pack("{s:{s:s}}", "function", "arguments", partial)),
                NULL);
}

/* A tool that took no input streams no argument text; LiteLLM sends "{}"
 * so the client's arguments parse. */
static int block_stop(struct anthropic_chat_stream *s, json_t *chunks)
{
    bool empty_tool = s->kind == BLOCK_TOOL && !s->args_seen;
    s->kind = BLOCK_NONE;
    if (!empty_tool)
        return 0;
    return emit(s, chunks,
                tool_delta(s->tool_index, json_pack("{s:{s:s}}", "function", "arguments", "{}")),
                NULL);
}

int anthropic_chat_usage_merge(json_t *usage, const json_t *delta)
{
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)delta, k, v) {
        if (!json_is_null(v) && json_object_set_new(usage, k, json_deep_copy(v)) < 0)
            return -1;
    }
    return 0;
}

/* message_delta's usage is cumulative: its counts replace message_start's. */
static int message_delta(struct anthropic_chat_stream *s, const json_t *event, json_t *chunks)
{
    const json_t *delta = json_object_get(event, "delta");
    const json_t *usage = json_object_get(event, "usage");
    if ((delta != NULL && !json_is_null(delta) && !json_is_object(delta)) ||
        (usage != NULL && !json_is_null(usage) && !json_is_object(usage)) ||
        anthropic_chat_usage_merge(s->usage, usage) < 0)
        return -1;
    const char *finish = finish_reason(json_object_get(delta, "stop_reason"));
    if (s->json_tool && !s->client_tool && strcmp(finish, "tool_calls") == 0)
        finish = "stop"; /* the JSON-mode tool was the answer */
    return emit(s, chunks, json_object(), finish);
}

static int message_stop(struct anthropic_chat_stream *s, json_t *chunks)
{
    json_t *c = json_pack("{s:O, s:s, s:I, s:s, s:[], s:o}", "id", s->id, "object",
                          "chat.completion.chunk", "created", s->created, "model", s->model,
                          "choices", "usage", anthropic_chat_usage(s->usage));
    return c == NULL ? -1 : json_array_append_new(chunks, c);
}

int anthropic_chat_stream_event(struct anthropic_chat_stream *s, const json_t *event,
                                json_t *chunks)
{
    const json_t *type = json_object_get(event, "type");
    if (s == NULL || !json_is_string(type) || !json_is_array(chunks))
        return -1;
    if (is(type, "ping"))
        return 0;
    if (is(type, "error")) {
        json_t *e = anthropic_chat_error(event, 500);
        return e == NULL ? -1 : json_array_append_new(chunks, e);
    }
    if (is(type, "message_start"))
        return stream_start(s, event, chunks);
    if (s->usage == NULL)
        return -1; /* nothing but ping and error may come first */
    if (is(type, "content_block_start"))
        return block_start(s, event, chunks);
    if (is(type, "content_block_delta"))
        return block_delta(s, event, chunks);
    if (is(type, "content_block_stop"))
        return block_stop(s, chunks);
    if (is(type, "message_delta"))
        return message_delta(s, event, chunks);
    if (is(type, "message_stop"))
        return message_stop(s, chunks);
    return 0; /* event types Anthropic may add later */
}
