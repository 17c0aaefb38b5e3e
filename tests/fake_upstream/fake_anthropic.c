/*
 * fake_anthropic.c - fake-upstream's Anthropic Messages API, in Anthropic's
 * wire format: POST /v1/messages (plain or "stream": true) and POST
 * /v1/messages/count_tokens, also without "/v1".
 *
 * A request needs the header anthropic-version and, with --api-key, the
 * header x-api-key (checked by the router); the messages body needs model
 * (a string), max_tokens (a positive integer) and messages (a non-empty
 * array).  Errors are Anthropic's {"type": "error", "error": {type,
 * message}}, the type following the status (fake_reply.c).
 *
 * Besides the common mock_* fields (fake_upstream.c: mock_content,
 * mock_chunks, mock_status, the delays and the stall, mock_usage_raw, and
 * mock_answer_fields on a plain answer), a body may hold:
 *   mock_usage {input_tokens, output_tokens, cache_read_input_tokens,
 *               cache_creation_input_tokens,
 *               cache_creation {ephemeral_5m_input_tokens,
 *                               ephemeral_1h_input_tokens},
 *               server_tool_use {web_search_requests}}
 *       input/output default to --prompt-tokens/--completion-tokens, the
 *       cache counts to 0 (cache_creation_input_tokens to the sum of
 *       cache_creation's); cache_creation and server_tool_use are reported
 *       only when given
 *   mock_tool_use {"id"?, "name", "input"?}   the answer is the text block
 *       (only if mock_content is given) and this tool_use block; its
 *       stop_reason "tool_use"
 *   mock_stream_error "overloaded_error"   a stream sends this error event
 *       after its text deltas and ends there
 *
 * A stream sends message_start (usage with output_tokens 1), then for each
 * block content_block_start (a ping after the first), its deltas (text one
 * word each; a tool's input JSON in at least two pieces) and
 * content_block_stop; then message_delta (stop_reason and the cumulative
 * usage) and message_stop.  mock_stall_after_chunks counts the deltas.
 * mock_usage_raw is the usage of the answer, of message_start and of
 * message_delta; mock_delta_usage_raw, when given, message_delta's alone
 * (Anthropic may send null for the counts message_start gave).
 */
#include "fake_anthropic.h"

#include <stdlib.h>
#include <string.h>

#include <event2/keyvalq_struct.h>

#include "fake_reply.h"

#define PIECE_MAX 16 /* bytes of a tool input's JSON per input_json_delta */

/* The usage of one message. */
struct usage {
    json_int_t input, output, cache_read, cache_write;
    json_int_t write_5m, write_1h, web_searches;
    int has_cache_write, has_cache_creation, has_server_tool_use;
};

/* The message to answer, from the body. */
struct message {
    char id[64];
    const char *model; /* borrowed from the body */
    struct answer text;
    int has_text;
    json_t *tool;             /* the tool_use block (owned), or NULL */
    const char *stream_error; /* borrowed from the body, or NULL */
    struct usage usage;
};

enum stage {
    AS_MESSAGE_START,
    AS_TEXT_START,
    AS_TEXT,
    AS_ERROR,
    AS_TEXT_STOP,
    AS_TOOL_START,
    AS_TOOL,
    AS_TOOL_STOP,
    AS_MESSAGE_DELTA,
    AS_MESSAGE_STOP,
};

/* A message's SSE stream: what to send and how far it got. */
struct anthropic_stream {
    struct stream base; /* first: paced by fake_reply.c */
    char id[64];
    char *model; /* malloc'd */
    struct words words;
    int has_text;
    json_t *tool;    /* the tool_use block (owned), or NULL */
    char *tool_json; /* its input as JSON text, malloc'd */
    size_t tool_len, piece_size, pieces, pieces_sent;
    char *error; /* mock_stream_error, malloc'd, or NULL */
    struct usage usage;
    json_t *usage_raw; /* mock_usage_raw (owned), or NULL */
    json_t *delta_usage_raw; /* mock_delta_usage_raw (owned), or NULL */
    long stall_after;
    enum stage stage;
    int pinged;
    size_t text_sent; /* text deltas sent */
};

/* ------------------------------------------------------------------ body */

/* Check the header and body every route needs; -1 (with `msg`) if bad. */
static int check_request(const struct exchange *ex, int needs_max_tokens, char *msg,
                         size_t size)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(ex->req);
    const char *version = evhttp_find_header(in, "anthropic-version");
    const json_t *max = json_object_get(ex->body, "max_tokens");
    const json_t *messages = json_object_get(ex->body, "messages");

    if (!version || !*version)
        snprintf(msg, size, "anthropic-version: header is required");
    else if (!json_is_object(ex->body))
        snprintf(msg, size, "The request body must be a JSON object.");
    else if (!json_is_string(json_object_get(ex->body, "model")))
        snprintf(msg, size, "model: Field required (a string)");
    else if (needs_max_tokens && !(json_is_integer(max) && json_integer_value(max) > 0))
        snprintf(msg, size, "max_tokens: Field required (an integer of at least 1)");
    else if (!json_is_array(messages))
        snprintf(msg, size, "messages: Field required (an array)");
    else if (json_array_size(messages) == 0)
        snprintf(msg, size, "messages: at least one message is required");
    else
        return 0;
    return -1;
}

/* Read the object mock_usage.<name> of counts `k1` and `k2` (may be NULL). */
static const char *read_nested(const json_t *mock, const char *name, const char *k1,
                               json_int_t *v1, const char *k2, json_int_t *v2, int *present)
{
    const json_t *obj = json_object_get(mock, name);
    const char *err;

    if (!obj)
        return NULL;
    if (!json_is_object(obj))
        return "mock_usage.cache_creation and .server_tool_use must be objects";
    *present = 1;
    if ((err = mock_read_count(obj, k1, v1, NULL)) != NULL)
        return err;
    return k2 ? mock_read_count(obj, k2, v2, NULL) : NULL;
}

/* Fill `u` from the defaults and mock_usage; an error message or NULL. */
static const char *read_usage(const struct app *app, const json_t *body, struct usage *u)
{
    const json_t *mock = json_object_get(body, "mock_usage");
    const struct {
        const char *name;
        json_int_t *out;
        int *present;
    } counts[] = {
        {"input_tokens", &u->input, NULL},
        {"output_tokens", &u->output, NULL},
        {"cache_read_input_tokens", &u->cache_read, NULL},
        {"cache_creation_input_tokens", &u->cache_write, &u->has_cache_write},
    };
    const char *err;
    size_t i;

    memset(u, 0, sizeof *u);
    u->input = app->opt.prompt_tokens;
    u->output = app->opt.completion_tokens;
    if (!mock)
        return NULL;
    if (!json_is_object(mock))
        return "mock_usage must be an object";
    for (i = 0; i < sizeof counts / sizeof counts[0]; i++)
        if ((err = mock_read_count(mock, counts[i].name, counts[i].out, counts[i].present)))
            return err;
    if ((err = read_nested(mock, "cache_creation", "ephemeral_5m_input_tokens", &u->write_5m,
                           "ephemeral_1h_input_tokens", &u->write_1h, &u->has_cache_creation))
        || (err = read_nested(mock, "server_tool_use", "web_search_requests", &u->web_searches,
                              NULL, NULL, &u->has_server_tool_use)))
        return err;
    if (u->has_cache_creation && !u->has_cache_write)
        u->cache_write = u->write_5m + u->write_1h;
    return NULL;
}

/* mock_tool_use as a tool_use block in m->tool; -1 (with `msg`) if bad. */
static int read_tool(struct exchange *ex, struct message *m, char *msg, size_t size)
{
    const json_t *tool = json_object_get(ex->body, "mock_tool_use");
    const json_t *id = json_object_get(tool, "id");
    const json_t *input = json_object_get(tool, "input");
    char made[64];

    if (!tool)
        return 0;
    if (!json_is_object(tool) || !json_is_string(json_object_get(tool, "name"))
        || (id && !json_is_string(id)) || (input && !json_is_object(input))) {
        snprintf(msg, size, "mock_tool_use must be an object with a name (a string), "
                            "an optional id (a string) and an optional input (an object)");
        return -1;
    }
    mock_new_id(ex->app, "toolu_", made, sizeof made);
    m->tool = json_pack("{s:s, s:s, s:O, s:o}", "type", "tool_use", "id",
                        id ? json_string_value(id) : made, "name",
                        json_object_get(tool, "name"), "input",
                        input ? json_deep_copy(input) : json_object());
    if (m->tool)
        return 0;
    snprintf(msg, size, "out of memory");
    return -1;
}

/* Fill `m` from the request; -1 (with `msg`) if the request is bad. */
static int read_message(struct exchange *ex, struct message *m, char *msg, size_t size)
{
    const json_t *error = json_object_get(ex->body, "mock_stream_error");
    const char *err;

    memset(m, 0, sizeof *m);
    if (check_request(ex, 1, msg, size) != 0
        || mock_read_answer(ex->body, &m->text, msg, size) != 0)
        return -1;
    if ((err = read_usage(ex->app, ex->body, &m->usage)) != NULL) {
        snprintf(msg, size, "%s", err);
        return -1;
    }
    if (error && !json_is_string(error)) {
        snprintf(msg, size, "mock_stream_error must be a string (an error type, "
                            "e.g. \"overloaded_error\")");
        return -1;
    }
    if (read_tool(ex, m, msg, size) != 0)
        return -1;
    m->model = json_string_value(json_object_get(ex->body, "model"));
    m->has_text = !m->tool || json_object_get(ex->body, "mock_content");
    m->stream_error = json_string_value(error);
    mock_new_id(ex->app, "msg_", m->id, sizeof m->id);
    return 0;
}

/* ---------------------------------------------------------------- answers */

static json_t *usage_json(const struct usage *u, json_int_t output)
{
    json_t *creation = u->has_cache_creation
                           ? json_pack("{s:I, s:I}", "ephemeral_5m_input_tokens", u->write_5m,
                                       "ephemeral_1h_input_tokens", u->write_1h)
                           : NULL;
    json_t *tools = u->has_server_tool_use
                        ? json_pack("{s:I}", "web_search_requests", u->web_searches)
                        : NULL;

    return json_pack("{s:I, s:I, s:I, s:I, s:o*, s:o*}", "input_tokens", u->input,
                     "output_tokens", output, "cache_creation_input_tokens", u->cache_write,
                     "cache_read_input_tokens", u->cache_read, "cache_creation", creation,
                     "server_tool_use", tools);
}

/* The content blocks of a plain answer. */
static json_t *content_json(const struct message *m)
{
    json_t *content = json_array();
    size_t len = 0;
    char *text = m->has_text ? mock_answer_text(&m->text, &len) : NULL;

    if (!content || (m->has_text && !text)
        || (text && json_array_append_new(content, json_pack("{s:s, s:s%}", "type", "text",
                                                             "text", text, len))
                        != 0)
        || (m->tool && json_array_append(content, m->tool) != 0)) {
        json_decref(content);
        content = NULL;
    }
    free(text);
    return content;
}

static void reply_message(struct exchange *ex, const struct message *m)
{
    json_t *usage = answer_extras_usage(&ex->extras, usage_json(&m->usage, m->usage.output));
    json_t *content = content_json(m);
    json_t *answer = json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:n, s:o}", "id", m->id,
                               "type", "message", "role", "assistant", "model", m->model,
                               "content", content, "stop_reason",
                               m->tool ? "tool_use" : "end_turn", "stop_sequence", "usage",
                               usage);

    reply_json(ex, answer ? HTTP_OK : HTTP_INTERNAL,
               answer_extras_add_fields(&ex->extras, answer));
}

/* ---------------------------------------------------------------- streams */

static void stream_free(struct stream *base)
{
    struct anthropic_stream *s = (struct anthropic_stream *)base;

    free(s->model);
    words_clear(&s->words);
    json_decref(s->tool);
    free(s->tool_json);
    free(s->error);
    json_decref(s->usage_raw);
    json_decref(s->delta_usage_raw);
    free(s);
}

/* The usage of message_start and message_delta. */
static json_t *stream_usage(const struct anthropic_stream *s, json_int_t output)
{
    return s->usage_raw ? json_incref(s->usage_raw) : usage_json(&s->usage, output);
}

static json_t *message_start(const struct anthropic_stream *s)
{
    return json_pack("{s:s, s:{s:s, s:s, s:s, s:s, s:[], s:n, s:n, s:o}}", "type",
                     "message_start", "message", "id", s->id, "type", "message", "role",
                     "assistant", "model", s->model, "content", "stop_reason",
                     "stop_sequence", "usage", stream_usage(s, 1));
}

static json_t *block_event(const char *type, size_t index, json_t *block)
{
    return json_pack("{s:s, s:I, s:o*}", "type", type, "index", (json_int_t)index,
                     "content_block", block);
}

static json_t *delta_event(size_t index, const char *type, const char *key,
                           const char *text, size_t len)
{
    return json_pack("{s:s, s:I, s:{s:s, s:s%}}", "type", "content_block_delta", "index",
                     (json_int_t)index, "delta", "type", type, key, text, len);
}

static size_t tool_index(const struct anthropic_stream *s)
{
    return s->has_text ? 1 : 0;
}

/* Send the next text delta; 1 when it was the last. */
static int send_text_delta(struct anthropic_stream *s, struct evhttp_request *req)
{
    size_t len;
    const char *word = words_at(&s->words, s->text_sent, &len);

    stream_send_event(req, delta_event(0, "text_delta", "text", word, len));
    s->base.sent++;
    return ++s->text_sent >= s->words.total;
}

/* Send the next piece of the tool's input; 1 when it was the last. */
static int send_json_delta(struct anthropic_stream *s, struct evhttp_request *req)
{
    size_t start = s->pieces_sent * s->piece_size;
    size_t len = s->tool_len - start < s->piece_size ? s->tool_len - start : s->piece_size;

    stream_send_event(req, delta_event(tool_index(s), "input_json_delta", "partial_json",
                                       s->tool_json + start, len));
    s->base.sent++;
    return ++s->pieces_sent >= s->pieces;
}

static json_t *error_event(const char *type)
{
    return json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error", "type", type,
                     "message",
                     strcmp(type, "overloaded_error") == 0 ? "Overloaded" : "mock stream error");
}

/* Send the event of the current stage; 1 when the stage is done. */
static int send_stage(struct anthropic_stream *s, struct evhttp_request *req)
{
    switch (s->stage) {
    case AS_MESSAGE_START: stream_send_event(req, message_start(s)); break;
    case AS_TEXT_START:
        stream_send_event(req, block_event("content_block_start", 0,
                                           json_pack("{s:s, s:s}", "type", "text", "text", "")));
        break;
    case AS_TEXT: return send_text_delta(s, req);
    case AS_ERROR: stream_send_event(req, error_event(s->error)); break;
    case AS_TEXT_STOP: stream_send_event(req, block_event("content_block_stop", 0, NULL)); break;
    case AS_TOOL_START:
        stream_send_event(req, block_event("content_block_start", tool_index(s),
                                           json_pack("{s:s, s:O, s:O, s:{}}", "type", "tool_use",
                                                     "id", json_object_get(s->tool, "id"),
                                                     "name", json_object_get(s->tool, "name"),
                                                     "input")));
        break;
    case AS_TOOL: return send_json_delta(s, req);
    case AS_TOOL_STOP:
        stream_send_event(req, block_event("content_block_stop", tool_index(s), NULL));
        break;
    case AS_MESSAGE_DELTA:
        stream_send_event(req, json_pack("{s:s, s:{s:s, s:n}, s:o}", "type", "message_delta",
                                         "delta", "stop_reason",
                                         s->tool ? "tool_use" : "end_turn", "stop_sequence",
                                         "usage", s->delta_usage_raw != NULL
                                                      ? json_incref(s->delta_usage_raw)
                                                      : stream_usage(s, s->usage.output)));
        break;
    case AS_MESSAGE_STOP:
        stream_send_event(req, json_pack("{s:s}", "type", "message_stop"));
        break;
    }
    return 1;
}

/* True if the stream has no `stage` (no text, no tool, no error). */
static int skipped(const struct anthropic_stream *s, enum stage stage)
{
    switch (stage) {
    case AS_TEXT_START:
    case AS_TEXT:
    case AS_TEXT_STOP: return !s->has_text;
    case AS_ERROR: return !s->error;
    case AS_TOOL_START:
    case AS_TOOL:
    case AS_TOOL_STOP: return !s->tool;
    default: return 0;
    }
}

static enum stream_step stream_next(struct stream *base, struct evhttp_request *req)
{
    struct anthropic_stream *s = (struct anthropic_stream *)base;
    int stage = (int)s->stage;

    if ((s->stage == AS_TEXT || s->stage == AS_TOOL) && !s->pinged) {
        s->pinged = 1;
        stream_send_event(req, json_pack("{s:s}", "type", "ping"));
        return STREAM_SENT;
    }
    /* a stall comes after the first block started (and the ping) */
    if (s->pinged && s->stall_after >= 0 && base->sent == (size_t)s->stall_after)
        return STREAM_STALLED;
    if (!send_stage(s, req))
        return STREAM_SENT;
    if (s->stage == AS_ERROR || s->stage == AS_MESSAGE_STOP)
        return STREAM_OVER;
    do
        stage++;
    while (skipped(s, (enum stage)stage));
    s->stage = (enum stage)stage;
    return STREAM_SENT;
}

/* Cut the tool's input JSON into at least two pieces; -1 if out of memory. */
static int cut_tool_input(struct anthropic_stream *s)
{
    s->tool_json = json_dumps(json_object_get(s->tool, "input"),
                              JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(9));
    if (!s->tool_json)
        return -1;
    s->tool_len = strlen(s->tool_json); /* at least "{}" */
    s->piece_size = (s->tool_len + 1) / 2 < PIECE_MAX ? (s->tool_len + 1) / 2 : PIECE_MAX;
    s->pieces = (s->tool_len + s->piece_size - 1) / s->piece_size;
    return 0;
}

/* The stream of `m`; NULL if out of memory. */
static struct stream *stream_new(const struct exchange *ex, const struct message *m)
{
    struct anthropic_stream *s = calloc(1, sizeof *s);

    if (!s)
        return NULL;
    s->base.next = stream_next;
    s->base.release = stream_free;
    s->base.chunk_delay_ms = m->text.chunk_delay_ms;
    snprintf(s->id, sizeof s->id, "%s", m->id);
    s->model = strdup(m->model);
    s->has_text = m->has_text;
    s->tool = json_incref(m->tool);
    s->error = m->stream_error ? strdup(m->stream_error) : NULL;
    s->usage = m->usage;
    s->usage_raw = json_incref(ex->extras.usage_raw);
    if (json_is_object(json_object_get(ex->body, "mock_delta_usage_raw")))
        s->delta_usage_raw = json_incref(json_object_get(ex->body, "mock_delta_usage_raw"));
    s->stall_after = m->text.stall_after;
    s->stage = AS_MESSAGE_START;
    if (!s->model || (m->stream_error && !s->error) || words_init(&s->words, &m->text) != 0
        || (s->tool && cut_tool_input(s) != 0)) {
        stream_free(&s->base);
        return NULL;
    }
    return &s->base;
}

/* ---------------------------------------------------------------- handlers */

void anthropic_handle_messages(struct exchange *ex)
{
    struct message m;
    char msg[256];

    if (read_message(ex, &m, msg, sizeof msg) != 0)
        reply_bad_request(ex, msg);
    else if (reply_if_mocked_error(ex))
        ; /* answered */
    else if (json_is_true(json_object_get(ex->body, "stream")))
        reply_stream(ex, stream_new(ex, &m));
    else
        reply_message(ex, &m);
    json_decref(m.tool);
}

void anthropic_handle_count_tokens(struct exchange *ex)
{
    struct usage u;
    char msg[256];
    const char *err;

    if (check_request(ex, 0, msg, sizeof msg) != 0) {
        reply_bad_request(ex, msg);
        return;
    }
    if ((err = read_usage(ex->app, ex->body, &u)) != NULL) {
        reply_bad_request(ex, err);
        return;
    }
    if (!reply_if_mocked_error(ex))
        reply_json(ex, HTTP_OK, json_pack("{s:I}", "input_tokens", u.input));
}
