/*
 * fake_upstream.c - a mock LLM upstream for Tollgate: OpenAI's API, and
 * (fake_anthropic.c, fake_responses.c) Anthropic's Messages API and
 * OpenAI's Responses API.
 *
 * Used by the end-to-end tests and by the offline quickstart: answers chat
 * completions and legacy text completions (plain and SSE-streamed),
 * embeddings, image generations, /models, /health and /stats with canned
 * data, on the OpenAI paths (with or without "/v1") and on the Azure ones
 * (/openai/deployments/NAME/...?api-version=V); Anthropic's POST
 * /v1/messages and /v1/messages/count_tokens; the Responses API's
 * /v1/responses[/ID[/cancel|/input_items]] and, on Azure,
 * /openai/responses[...]?api-version=V.  Can demand an API key
 * ("Authorization: Bearer KEY" or "api-key: KEY"; "x-api-key: KEY" on
 * Anthropic's paths, which answer errors the Anthropic way).  Logs every
 * request but GET /health and /stats as one JSON line (--log: path, method,
 * the headers authorization, api-key, content-type, anthropic-version,
 * anthropic-beta, openai-organization and every x-*, body) so a test can
 * check what the gateway sent.
 *
 * Per-request body fields (the gateway forwards them untouched):
 *   mock_usage {prompt_tokens, completion_tokens, cached_tokens}
 *                                   (Anthropic's and the Responses API's
 *                                   own names on their paths: see there)
 *   mock_status 400..599            answer that error instead
 *   mock_first_byte_delay_ms N      wait N ms before the response starts
 *   mock_content "text"             the answer; streamed one word a chunk
 *   mock_chunks N                   the answer repeated N times
 *   mock_chunk_delay_ms N           wait N ms between two stream events
 *   mock_stall_after_chunks K       after K content chunks send nothing more
 *                                   until the client goes away
 *   mock_stream_usage "never"       no usage chunk, even if include_usage
 *                                   ("always": one even without it)
 *   mock_usage_raw {...}            the answer's "usage", verbatim (also in a
 *                                   stream's usage chunk, and in an images
 *                                   answer, which has none otherwise); not
 *                                   with mock_usage
 *   mock_answer_fields {...}        members set at the top level of the
 *                                   answer and of every stream chunk, e.g.
 *                                   {"service_tier": "priority"}; not id,
 *                                   object, choices, usage, model, created
 *                                   or data
 * Delays run on timers: the loop serves other clients meanwhile.  A client
 * that leaves early is reported on stderr ("fake-upstream: client went away
 * after N chunks"); GET /stats (no key needed) counts POSTs and streams,
 * and the delayed replies and streams under way (calls_in_progress) and the
 * most at once (calls_max; GET /stats/reset starts that count again).
 *
 * Usage: fake-upstream --listen HOST:PORT [--api-key KEY] [--prompt-tokens N]
 *                      [--completion-tokens M] [--log FILE] [--fail-first N]
 * PORT 0 picks a free port; the real one is printed as "fake-upstream
 * listening on HOST:PORT".  --fail-first N answers the first N POSTs with a
 * 500.  SIGINT/SIGTERM stop it cleanly (exit code 0), streams or not.
 *
 * This file routes and answers the OpenAI completion routes; fake_reply.c
 * sends replies (delayed or streamed), fake_common.c reads the common
 * mock_* fields.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getopt_long, strndup, strncasecmp */
#endif
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "fake_anthropic.h"
#include "fake_answer_extras.h"
#include "fake_common.h"
#include "fake_reply.h"
#include "fake_responses.h"

#define MAX_BODY_SIZE (16L * 1024 * 1024)
#define MAX_FIRST_BYTE_DELAY_MS 600000L
#define MAX_IMAGES 10L
#define AZURE_PREFIX "/openai/deployments/"

/* Token usage reported for one request. */
struct usage {
    json_int_t prompt;
    json_int_t completion;
    json_int_t cached;
    int has_cached;
};

enum api { API_CHAT, API_TEXT }; /* chat.completion or text_completion */
enum stage { ST_CONTENT, ST_FINISH, ST_USAGE, ST_DONE };

/* A completion's SSE stream: what to send and how far it got. */
struct chat_stream {
    struct stream base; /* first: paced by fake_reply.c */
    enum api api;
    char id[64];
    json_int_t created;
    char *model; /* malloc'd */
    struct words words;
    struct usage usage;
    int send_usage;
    long stall_after;
    enum stage stage;
    struct answer_extras extras;
};

/* --------------------------------------------------------- request parsing */

/* Copy the request path (and "?query" if `with_query`) into `dst`, with
 * non-printable bytes as '?'. */
static void request_path(struct evhttp_request *req, int with_query, char *dst, size_t size)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    const char *query = uri && with_query ? evhttp_uri_get_query(uri) : NULL;
    size_t i;

    if (!path || !*path)
        path = "/";
    snprintf(dst, size, "%s%s%s", path, query ? "?" : "", query ? query : "");
    for (i = 0; dst[i]; i++) {
        unsigned char c = (unsigned char)dst[i];
        if (c < 0x20 || c >= 0x7f)
            dst[i] = '?';
    }
}

static int is_azure(const char *path)
{
    return strncmp(path, AZURE_PREFIX, strlen(AZURE_PREFIX)) == 0;
}

/* Parse the request body as JSON; NULL (with `err` filled) on failure. */
static json_t *parse_body(struct evhttp_request *req, json_error_t *err)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = in ? evbuffer_get_length(in) : 0;
    const char *data = len ? (const char *)evbuffer_pullup(in, -1) : "";

    if (!data) {
        snprintf(err->text, sizeof err->text, "out of memory");
        return NULL;
    }
    return json_loadb(data, len, JSON_DECODE_ANY, err);
}


/* Append {"path","headers","body","method"} as one line to the log file. */
static void log_request(struct app *app, struct evhttp_request *req, const char *method,
                        const char *path, json_t *body)
{
    static const char *const names[] = {"authorization",     "api-key",
                                        "x-api-key",         "content-type",
                                        "anthropic-version", "anthropic-beta"};
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    struct evkeyval *kv;
    json_t *headers, *entry;
    char *line;
    size_t i;

    if (!app->log)
        return;
    headers = json_object();
    for (i = 0; headers && i < sizeof names / sizeof names[0]; i++) {
        const char *value = evhttp_find_header(in, names[i]);
        if (value && json_object_set_new(headers, names[i], json_string(value)) != 0)
            fprintf(stderr, "fake-upstream: cannot log header %s\n", names[i]);
    }
    /* and what a deployment's config adds: x-* extra_headers, its organization */
    for (kv = in->tqh_first; kv != NULL; kv = kv->next.tqe_next) {
        char lower[128];
        size_t n = strlen(kv->key);
        if (!headers || n >= sizeof lower || (strncasecmp(kv->key, "x-", 2) != 0 &&
                                              strcasecmp(kv->key, "openai-organization") != 0))
            continue;
        for (size_t k = 0; k <= n; k++)
            lower[k] = (char)tolower((unsigned char)kv->key[k]);
        if (json_object_set_new(headers, lower, json_string(kv->value)) != 0)
            fprintf(stderr, "fake-upstream: cannot log header %s\n", kv->key);
    }
    entry = json_pack("{s:s, s:o, s:O, s:s}", "path", path, "headers", headers, "body",
                      body ? body : json_null(), "method", method);
    line = entry ? json_dumps(entry, DUMP_FLAGS) : NULL;
    if (!line || fprintf(app->log, "%s\n", line) < 0 || fflush(app->log) != 0)
        fprintf(stderr, "fake-upstream: failed to write the request log\n");
    free(line);
    json_decref(entry);
}

static const char *method_name(enum evhttp_cmd_type method)
{
    switch (method) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_HEAD: return "HEAD";
    default: return "OTHER";
    }
}

/* Anthropic's paths answer errors in Anthropic's shape. */
static enum dialect dialect_of(const char *path)
{
    if (strncmp(path, "/v1/", 4) == 0)
        path += 3;
    return strcmp(path, "/messages") == 0 || strncmp(path, "/messages/", 10) == 0
               ? DIALECT_ANTHROPIC
               : DIALECT_OPENAI;
}

static int authorized(const struct app *app, struct evhttp_request *req, enum dialect d)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *key = app->opt.api_key;
    const char *value;

    if (!key)
        return 1;
    if (d == DIALECT_ANTHROPIC) {
        value = evhttp_find_header(in, "x-api-key");
        return value && strcmp(value, key) == 0;
    }
    value = evhttp_find_header(in, "Authorization");
    if (value && strncasecmp(value, "Bearer ", 7) == 0 && strcmp(value + 7, key) == 0)
        return 1;
    value = evhttp_find_header(in, "api-key");
    return value && strcmp(value, key) == 0;
}

/* True if the request's query string has a non-empty "api-version". */
static int has_api_version(struct evhttp_request *req)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    struct evkeyvalq params;
    const char *value;
    int found;

    if (!query)
        return 0;
    /* evhttp_parse_query_str initialises `params`, and empties it on error */
    if (evhttp_parse_query_str(query, &params) != 0) {
        evhttp_clear_headers(&params);
        return 0;
    }
    value = evhttp_find_header(&params, "api-version");
    found = value && *value;
    evhttp_clear_headers(&params);
    return found;
}


/* Fill `u` from the defaults and the optional "mock_usage" object. */
static const char *read_usage(const struct app *app, const json_t *body, struct usage *u)
{
    const json_t *mock = json_object_get(body, "mock_usage");
    const char *err;

    u->prompt = app->opt.prompt_tokens;
    u->completion = app->opt.completion_tokens;
    u->cached = 0;
    u->has_cached = 0;
    if (!mock)
        return NULL;
    if (!json_is_object(mock))
        return "mock_usage must be an object";
    if ((err = mock_read_count(mock, "prompt_tokens", &u->prompt, NULL)) != NULL
        || (err = mock_read_count(mock, "completion_tokens", &u->completion, NULL)) != NULL)
        return err;
    return mock_read_count(mock, "cached_tokens", &u->cached, &u->has_cached);
}

/* Checks shared by the OpenAI completion routes; returns 0 if a reply was
 * sent. */
static int common_checks(struct exchange *ex, struct usage *u)
{
    const char *err = read_usage(ex->app, ex->body, u);

    if (err) {
        reply_bad_request(ex, err);
        return 0;
    }
    return !reply_if_mocked_error(ex);
}

/* ---------------------------------------------------------------- streams */

static json_t *usage_json(const struct usage *u, int with_completion)
{
    json_t *details = u->has_cached ? json_pack("{s:I}", "cached_tokens", u->cached) : NULL;

    if (with_completion)
        return json_pack("{s:I, s:I, s:I, s:o*}", "prompt_tokens", u->prompt,
                         "completion_tokens", u->completion, "total_tokens",
                         u->prompt + u->completion, "prompt_tokens_details", details);
    return json_pack("{s:I, s:I, s:o*}", "prompt_tokens", u->prompt, "total_tokens",
                     u->prompt, "prompt_tokens_details", details);
}

static void chat_stream_free(struct stream *base)
{
    struct chat_stream *s = (struct chat_stream *)base;

    free(s->model);
    words_clear(&s->words);
    answer_extras_clear(&s->extras);
    free(s);
}

/* One chunk of `s` with its mock_answer_fields; `choices` and `usage` (may
 * be NULL) are stolen. */
static json_t *stream_chunk(const struct chat_stream *s, json_t *choices, json_t *usage)
{
    json_t *chunk = json_pack("{s:s, s:s, s:I, s:s, s:o, s:o*}", "id", s->id, "object",
                              s->api == API_CHAT ? "chat.completion.chunk" : "text_completion",
                              "created", s->created, "model", s->model, "choices", choices,
                              "usage", usage);

    return answer_extras_add_fields(&s->extras, chunk);
}

/* The choices of a chunk carrying `text` (`len` bytes) and `finish_reason`. */
static json_t *stream_choices(const struct chat_stream *s, const char *text, size_t len,
                              const char *finish_reason)
{
    json_t *delta;

    if (s->api == API_TEXT)
        return json_pack("[{s:s%, s:i, s:n, s:s?}]", "text", text, len, "index", 0,
                         "logprobs", "finish_reason", finish_reason);
    if (finish_reason)
        delta = json_object();
    else if (s->base.sent == 0)
        delta = json_pack("{s:s, s:s%}", "role", "assistant", "content", text, len);
    else
        delta = json_pack("{s:s%}", "content", text, len);
    return json_pack("[{s:i, s:o, s:s?}]", "index", 0, "delta", delta, "finish_reason",
                     finish_reason);
}

/* Send the next event of the stream and move on. */
static enum stream_step chat_stream_next(struct stream *base, struct evhttp_request *req)
{
    struct chat_stream *s = (struct chat_stream *)base;
    const char *word;
    size_t len;

    if (s->stall_after >= 0 && base->sent == (size_t)s->stall_after)
        return STREAM_STALLED;
    switch (s->stage) {
    case ST_CONTENT:
        word = words_at(&s->words, base->sent, &len);
        stream_send(req, NULL, stream_chunk(s, stream_choices(s, word, len, NULL), NULL));
        if (++base->sent == s->words.total)
            s->stage = ST_FINISH;
        break;
    case ST_FINISH:
        stream_send(req, NULL, stream_chunk(s, stream_choices(s, "", 0, "stop"), NULL));
        s->stage = s->send_usage ? ST_USAGE : ST_DONE;
        break;
    case ST_USAGE:
        stream_send(req, NULL,
                    stream_chunk(s, json_array(),
                                 answer_extras_usage(&s->extras, usage_json(&s->usage, 1))));
        s->stage = ST_DONE;
        break;
    case ST_DONE:
        stream_send_text(req, "[DONE]");
        return STREAM_OVER;
    }
    return STREAM_SENT;
}

/* A stream of `a` as `api`; NULL if out of memory. */
static struct stream *chat_stream_new(enum api api, const char *id, json_int_t created,
                                      const char *model, const struct usage *u,
                                      const struct answer *a, int send_usage,
                                      const struct answer_extras *extras)
{
    struct chat_stream *s = calloc(1, sizeof *s);

    if (!s)
        return NULL;
    s->base.next = chat_stream_next;
    s->base.release = chat_stream_free;
    s->base.chunk_delay_ms = a->chunk_delay_ms;
    s->api = api;
    snprintf(s->id, sizeof s->id, "%s", id);
    s->created = created;
    s->model = strdup(model);
    if (!s->model || words_init(&s->words, a) != 0) {
        chat_stream_free(&s->base);
        return NULL;
    }
    s->usage = *u;
    s->send_usage = send_usage;
    s->stall_after = a->stall_after;
    s->stage = ST_CONTENT;
    answer_extras_copy(&s->extras, extras);
    return &s->base;
}

/* ---------------------------------------------------------------- handlers */

enum shape { ARRAY, STRING, STRING_OR_ARRAY };

/* The model to answer with: the body's, else the Azure deployment; NULL if
 * there is none or it is not a string. */
static const char *answer_model(const struct exchange *ex)
{
    const json_t *model = json_object_get(ex->body, "model");

    if (json_is_string(model))
        return json_string_value(model);
    return model ? NULL : ex->deployment;
}

/* Checks the body has a model and `key` of `shape`; -1 (with `msg`) if not. */
static int body_error(const struct exchange *ex, const char *key, enum shape shape,
                      char *msg, size_t size)
{
    const json_t *value = json_object_get(ex->body, key);

    if (!json_is_object(ex->body))
        snprintf(msg, size, "The request body must be a JSON object.");
    else if (!answer_model(ex))
        snprintf(msg, size, "you must provide a model parameter (a string)");
    else if (shape == ARRAY && !json_is_array(value))
        snprintf(msg, size, "'%s' is a required property and must be an array", key);
    else if (shape == STRING && !json_is_string(value))
        snprintf(msg, size, "'%s' is a required property (a string)", key);
    else if (shape == STRING_OR_ARRAY && !json_is_string(value) && !json_is_array(value))
        snprintf(msg, size, "'%s' is a required property (a string or an array)", key);
    else
        return 0;
    return -1;
}

/* The usage chunk is sent if the client asked for it, unless mocked. */
static int wants_usage(const json_t *body, const struct answer *a)
{
    const json_t *opts = json_object_get(body, "stream_options");

    if (a->usage_mode != USAGE_AUTO)
        return a->usage_mode == USAGE_ALWAYS;
    return json_is_true(json_object_get(opts, "include_usage"));
}

/* Chat completions (API_CHAT) and legacy text completions (API_TEXT). */
static void handle_completion(struct exchange *ex, enum api api)
{
    const char *model = answer_model(ex);
    json_int_t created = (json_int_t)time(NULL);
    struct answer a;
    struct usage u;
    char id[64], msg[160];
    char *text;
    json_t *answer;
    size_t len = 0;

    if (body_error(ex, api == API_CHAT ? "messages" : "prompt",
                   api == API_CHAT ? ARRAY : STRING_OR_ARRAY, msg, sizeof msg) != 0
        || mock_read_answer(ex->body, &a, msg, sizeof msg) != 0) {
        reply_bad_request(ex, msg);
        return;
    }
    if (!common_checks(ex, &u))
        return;
    snprintf(id, sizeof id, "%s-fake-%lu", api == API_CHAT ? "chatcmpl" : "cmpl",
             ++ex->app->counter);
    if (json_is_true(json_object_get(ex->body, "stream"))) {
        reply_stream(ex, chat_stream_new(api, id, created, model, &u, &a,
                                         wants_usage(ex->body, &a), &ex->extras));
        return;
    }
    text = mock_answer_text(&a, &len);
    if (!text) {
        reply_json(ex, HTTP_INTERNAL, NULL);
        return;
    }
    if (api == API_CHAT)
        answer = json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:{s:s, s:s%}, s:s}], s:o}", "id",
                           id, "object", "chat.completion", "created", created, "model",
                           model, "choices", "index", 0, "message", "role", "assistant",
                           "content", text, len, "finish_reason", "stop", "usage",
                           usage_json(&u, 1));
    else
        answer = json_pack("{s:s, s:s, s:I, s:s, s:[{s:s%, s:i, s:n, s:s}], s:o}", "id", id,
                           "object", "text_completion", "created", created, "model", model,
                           "choices", "text", text, len, "index", 0, "logprobs",
                           "finish_reason", "stop", "usage", usage_json(&u, 1));
    free(text);
    reply_json(ex, HTTP_OK, answer_extras_dress(&ex->extras, answer));
}

static void handle_chat(struct exchange *ex)
{
    handle_completion(ex, API_CHAT);
}

static void handle_text(struct exchange *ex)
{
    handle_completion(ex, API_TEXT);
}

static void handle_embeddings(struct exchange *ex)
{
    struct usage u;
    char msg[160];

    if (body_error(ex, "input", STRING_OR_ARRAY, msg, sizeof msg) != 0) {
        reply_bad_request(ex, msg);
        return;
    }
    if (!common_checks(ex, &u))
        return;
    /* The OpenAI SDKs ask for base64 (little-endian float32) by default. */
    const char *fmt = json_string_value(json_object_get(ex->body, "encoding_format"));
    json_t *vec = fmt != NULL && strcmp(fmt, "base64") == 0
                      ? json_string("zczMPc3MTD6amZk+") /* 0.1, 0.2, 0.3 */
                      : json_pack("[f, f, f]", 0.1, 0.2, 0.3);
    json_t *answer = json_pack("{s:s, s:[{s:s, s:i, s:o}], s:s, s:o}", "object", "list",
                               "data", "object", "embedding", "index", 0, "embedding", vec,
                               "model", answer_model(ex), "usage", usage_json(&u, 0));
    reply_json(ex, HTTP_OK, answer_extras_dress(&ex->extras, answer));
}

/* True if `size` is "auto" or "WIDTHxHEIGHT" (positive decimal numbers). */
static int valid_image_size(const char *size)
{
    const char *p = size;
    int part;

    if (strcmp(size, "auto") == 0)
        return 1;
    for (part = 0; part < 2; part++) {
        const char *digits = p;
        while (isdigit((unsigned char)*p))
            p++;
        if (p == digits || p - digits > 5 || *digits == '0')
            return 0;
        if (part == 0 && *p++ != 'x')
            return 0;
    }
    return *p == '\0';
}

static void handle_images(struct exchange *ex)
{
    const json_t *size = json_object_get(ex->body, "size");
    const char *prompt = json_string_value(json_object_get(ex->body, "prompt"));
    json_t *data, *answer;
    struct usage u;
    char msg[160], url[96];
    long n = 1, k;

    if (body_error(ex, "prompt", STRING, msg, sizeof msg) != 0
        || mock_read_long(ex->body, "n", 1, MAX_IMAGES, &n, msg, sizeof msg) != 0) {
        reply_bad_request(ex, msg);
        return;
    }
    if (size && !(json_is_string(size) && valid_image_size(json_string_value(size)))) {
        reply_bad_request(ex, "size must be a string like \"1024x1024\"");
        return;
    }
    if (!common_checks(ex, &u))
        return;
    data = json_array();
    for (k = 1; data && k <= n; k++) {
        snprintf(url, sizeof url, "https://example.invalid/fake-image-%ld.png", k);
        if (json_array_append_new(data, json_pack("{s:s, s:s}", "url", url, "revised_prompt",
                                                  prompt))
            != 0) {
            json_decref(data);
            data = NULL;
        }
    }
    answer = data ? json_pack("{s:I, s:o}", "created", (json_int_t)time(NULL), "data", data)
                  : NULL;
    reply_json(ex, data ? HTTP_OK : HTTP_INTERNAL, answer_extras_dress(&ex->extras, answer));
}

static void handle_models(struct exchange *ex)
{
    reply_json(ex, HTTP_OK,
              json_pack("{s:s, s:[{s:s, s:s, s:i, s:s}]}", "object", "list", "data", "id",
                        "fake-model", "object", "model", "created", 0, "owned_by",
                        "tollgate-tests"));
}

/* GET /stats, and GET /stats/reset (the most calls at once starts again from now). */
static void handle_stats(struct exchange *ex, int reset)
{
    struct app *app = ex->app;

    if (reset)
        app->calls_max = app->calls_now;
    reply_json(ex, HTTP_OK,
              json_pack("{s:I, s:I, s:I, s:I, s:I}", "requests", (json_int_t)app->requests,
                        "active_streams", (json_int_t)app->active_streams,
                        "cancelled_streams", (json_int_t)app->cancelled_streams,
                        "calls_in_progress", (json_int_t)app->calls_now,
                        "calls_max", (json_int_t)app->calls_max));
}

/* ----------------------------------------------------------------- routing */

typedef void (*handler_fn)(struct exchange *ex);

/* What a request path starts with: nothing or "/v1" (OpenAI, Anthropic), an
 * Azure deployment, or Azure's "/openai" alone (the Responses API). */
enum prefix { PREFIX_OPENAI = 1, PREFIX_DEPLOYMENT = 2, PREFIX_AZURE = 4 };

/* The POST handler for the API path `path` after a `prefix`, or NULL. */
static handler_fn post_handler(const char *path, enum prefix prefix)
{
    static const struct {
        const char *name;
        handler_fn fn;
        int prefixes;
    } routes[] = {
        {"/chat/completions", handle_chat, PREFIX_OPENAI | PREFIX_DEPLOYMENT},
        {"/completions", handle_text, PREFIX_OPENAI | PREFIX_DEPLOYMENT},
        {"/embeddings", handle_embeddings, PREFIX_OPENAI | PREFIX_DEPLOYMENT},
        {"/images/generations", handle_images, PREFIX_OPENAI | PREFIX_DEPLOYMENT},
        {"/messages", anthropic_handle_messages, PREFIX_OPENAI},
        {"/messages/count_tokens", anthropic_handle_count_tokens, PREFIX_OPENAI},
        {"/responses", responses_handle_create, PREFIX_OPENAI | PREFIX_AZURE},
    };
    size_t i;

    for (i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if ((routes[i].prefixes & (int)prefix) && strcmp(path, routes[i].name) == 0)
            return routes[i].fn;
    return NULL;
}

/* Split an Azure path into the deployment (copied to `dep`) and the rest. */
static const char *azure_split(const char *path, char *dep, size_t size)
{
    const char *name = path + strlen(AZURE_PREFIX);
    const char *slash = strchr(name, '/');

    if (!slash || slash == name || (size_t)(slash - name) >= size)
        return NULL;
    memcpy(dep, name, (size_t)(slash - name));
    dep[slash - name] = '\0';
    return slash;
}

/* The API path of `path` (its prefix in *prefix, an Azure deployment copied
 * to `dep`); NULL if a deployment path has no deployment. */
static const char *api_path(const char *path, enum prefix *prefix, char *dep, size_t size)
{
    if (is_azure(path)) {
        *prefix = PREFIX_DEPLOYMENT;
        return azure_split(path, dep, size);
    }
    if (strncmp(path, "/openai/", 8) == 0) {
        *prefix = PREFIX_AZURE;
        return path + 7;
    }
    *prefix = PREFIX_OPENAI;
    return strncmp(path, "/v1/", 4) == 0 ? path + 3 : path;
}

static void route(struct exchange *ex, enum evhttp_cmd_type method, const char *path,
                  const json_error_t *jerr)
{
    char message[256], deployment[256];
    enum prefix prefix;
    const char *rest = api_path(path, &prefix, deployment, sizeof deployment);
    handler_fn handler = rest && method == EVHTTP_REQ_POST ? post_handler(rest, prefix) : NULL;
    int item = rest && prefix != PREFIX_DEPLOYMENT && strncmp(rest, "/responses/", 11) == 0;

    if ((handler || item) && prefix != PREFIX_OPENAI && !has_api_version(ex->req)) {
        reply_bad_request(ex, "Missing required query parameter: api-version");
    } else if (handler && !ex->body) {
        snprintf(message, sizeof message,
                 "We could not parse the JSON body of your request: %s", jerr->text);
        reply_bad_request(ex, message);
    } else if (handler) {
        ex->deployment = prefix == PREFIX_DEPLOYMENT ? deployment : NULL;
        handler(ex);
    } else if (item) {
        responses_handle_item(ex, method, rest + 11);
    } else if (method == EVHTTP_REQ_GET && prefix == PREFIX_OPENAI
               && strcmp(rest, "/models") == 0) {
        handle_models(ex);
    } else if (method == EVHTTP_REQ_GET && strcmp(path, "/health") == 0) {
        reply_json(ex, HTTP_OK, json_pack("{s:s}", "status", "ok"));
    } else {
        snprintf(message, sizeof message, "Invalid URL (%.200s)", path);
        reply_error(ex, HTTP_NOTFOUND, message, "not_found_error", NULL);
    }
}

/* --fail-first: answer this POST with a 500. */
static void fail_forced(struct exchange *ex)
{
    struct app *app = ex->app;
    char message[128];

    snprintf(message, sizeof message, "fake-upstream: forced failure %lu of %ld (--fail-first)",
             ++app->failed, app->opt.fail_first);
    reply_error(ex, HTTP_INTERNAL, message, "server_error", NULL);
}

/* GET /health and /stats watch the mock; they are not logged. */
static int is_monitoring(enum evhttp_cmd_type method, const char *path)
{
    return method == EVHTTP_REQ_GET
        && (strcmp(path, "/health") == 0 || strcmp(path, "/stats") == 0
            || strcmp(path, "/stats/reset") == 0);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct app *app = arg;
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    struct exchange ex;
    char path[1024], logged[2048], message[160];
    json_t *body = NULL;
    json_error_t jerr;

    memset(&jerr, 0, sizeof jerr);
    memset(&ex, 0, sizeof ex);
    ex.app = app;
    ex.req = req;
    request_path(req, 0, path, sizeof path);
    ex.dialect = dialect_of(path);
    if (method == EVHTTP_REQ_POST) {
        body = parse_body(req, &jerr);
        app->requests++;
    }
    if (!is_monitoring(method, path)) {
        request_path(req, strncmp(path, "/openai/", 8) == 0, logged, sizeof logged);
        log_request(app, req, method_name(method), logged, body);
    }
    ex.body = body;
    if (method == EVHTTP_REQ_GET && strcmp(path, "/stats") == 0)
        handle_stats(&ex, 0);
    else if (method == EVHTTP_REQ_GET && strcmp(path, "/stats/reset") == 0)
        handle_stats(&ex, 1);
    else if (mock_read_long(body, "mock_first_byte_delay_ms", 0, MAX_FIRST_BYTE_DELAY_MS,
                            &ex.delay_ms, message, sizeof message) != 0)
        reply_bad_request(&ex, message);
    else if (method == EVHTTP_REQ_POST && app->failed < (unsigned long)app->opt.fail_first)
        fail_forced(&ex);
    else if (!authorized(app, req, ex.dialect))
        reply_error(&ex, 401,
                    ex.dialect == DIALECT_ANTHROPIC ? "invalid x-api-key"
                                                    : "Incorrect API key provided",
                    "invalid_request_error", "invalid_api_key");
    else
        route(&ex, method, path, &jerr);
    answer_extras_clear(&ex.extras);
    json_decref(body);
}

/* ------------------------------------------------------------ setup, main */

static void usage_exit(const char *prog, int status)
{
    fprintf(status ? stderr : stdout,
            "usage: %s --listen HOST:PORT [--api-key KEY] [--prompt-tokens N]\n"
            "       [--completion-tokens M] [--log FILE] [--fail-first N]\n", prog);
    exit(status);
}

static int parse_int(const char *text, long max, long *out)
{
    char *end;
    long value;

    errno = 0;
    value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < 0 || value > max)
        return -1;
    *out = value;
    return 0;
}

/* Split "host:port" into opt->host / opt->port. */
static int parse_listen(const char *arg, struct options *opt)
{
    const char *colon = strrchr(arg, ':');
    long port;

    if (!colon || colon == arg || parse_int(colon + 1, 65535, &port) != 0)
        return -1;
    free(opt->host);
    opt->host = strndup(arg, (size_t)(colon - arg));
    opt->port = (int)port;
    return opt->host ? 0 : -1;
}

static void parse_args(int argc, char **argv, struct options *opt)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"api-key", required_argument, NULL, 'k'},
        {"prompt-tokens", required_argument, NULL, 'p'},
        {"completion-tokens", required_argument, NULL, 'c'},
        {"log", required_argument, NULL, 'o'},
        {"fail-first", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    long n = 0;
    int c, idx = 0;

    opt->prompt_tokens = 10;
    opt->completion_tokens = 20;
    while ((c = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
        int bad = 0;
        switch (c) {
        case 'l': bad = parse_listen(optarg, opt) != 0; break;
        case 'k': opt->api_key = optarg; break;
        case 'p': bad = parse_int(optarg, INT_MAX, &n) != 0; opt->prompt_tokens = n; break;
        case 'c': bad = parse_int(optarg, INT_MAX, &n) != 0; opt->completion_tokens = n; break;
        case 'o': opt->log_path = optarg; break;
        case 'f': bad = parse_int(optarg, INT_MAX, &opt->fail_first) != 0; break;
        case 'h': free(opt->host); usage_exit(argv[0], 0); break;
        default: bad = 1; break;
        }
        if (bad) {
            if (c != '?')
                fprintf(stderr, "%s: invalid value for --%s: '%s'\n", argv[0],
                        longopts[idx].name, optarg);
            free(opt->host);
            usage_exit(argv[0], 1);
        }
    }
    if (optind < argc || !opt->host) {
        fprintf(stderr, "%s: %s\n", argv[0],
                optind < argc ? "unexpected argument" : "--listen HOST:PORT is required");
        free(opt->host);
        usage_exit(argv[0], 1);
    }
}

static void on_signal(evutil_socket_t sig, short events, void *arg)
{
    struct app *app = arg;

    (void)events;
    fprintf(stderr, "fake-upstream: caught signal %d, shutting down\n", (int)sig);
    if (event_base_loopbreak(app->base) != 0)
        fprintf(stderr, "fake-upstream: event_base_loopbreak failed\n");
}

/* Bind the listener and report the (possibly kernel-chosen) port. */
static int start_listening(struct app *app)
{
    struct evhttp_bound_socket *bound;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof ss;
    int port = app->opt.port;

    errno = 0;
    bound = evhttp_bind_socket_with_handle(app->http, app->opt.host, (ev_uint16_t)port);
    if (!bound) {
        fprintf(stderr, "fake-upstream: cannot listen on %s:%d: %s\n", app->opt.host, port,
                errno ? strerror(errno) : "invalid address");
        return -1;
    }
    if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&ss, &sslen) == 0)
        port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    if (printf("fake-upstream listening on %s:%d\n", app->opt.host, port) < 0
        || fflush(stdout) != 0)
        fprintf(stderr, "fake-upstream: cannot write to stdout\n");
    return 0;
}

static int add_signal(struct app *app, int sig, struct event **out)
{
    *out = evsignal_new(app->base, sig, on_signal, app);
    return (*out && event_add(*out, NULL) == 0) ? 0 : -1;
}

static int setup(struct app *app)
{
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        perror("fake-upstream: signal(SIGPIPE)");
        return -1;
    }
    if (app->opt.log_path && !(app->log = fopen(app->opt.log_path, "a"))) {
        fprintf(stderr, "fake-upstream: cannot open log %s: %s\n", app->opt.log_path,
                strerror(errno));
        return -1;
    }
    if (!(app->base = event_base_new()) || !(app->http = evhttp_new(app->base))) {
        fprintf(stderr, "fake-upstream: cannot create the event loop\n");
        return -1;
    }
    evhttp_set_max_body_size(app->http, MAX_BODY_SIZE);
    evhttp_set_gencb(app->http, on_request, app);
    if (add_signal(app, SIGINT, &app->sigint_ev) != 0
        || add_signal(app, SIGTERM, &app->sigterm_ev) != 0) {
        fprintf(stderr, "fake-upstream: cannot install signal handlers\n");
        return -1;
    }
    return start_listening(app);
}

static void cleanup(struct app *app)
{
    /* pending calls first: evhttp_free then frees their requests */
    reply_forget_calls(app);
    responses_store_free(app->responses);
    if (app->sigint_ev)
        event_free(app->sigint_ev);
    if (app->sigterm_ev)
        event_free(app->sigterm_ev);
    if (app->http)
        evhttp_free(app->http);
    if (app->base)
        event_base_free(app->base);
    if (app->log && fclose(app->log) != 0)
        perror("fake-upstream: closing the log");
    free(app->opt.host);
    libevent_global_shutdown();
}

int main(int argc, char **argv)
{
    struct app app;
    int rc = 1;

    memset(&app, 0, sizeof app);
    parse_args(argc, argv, &app.opt);
    if (setup(&app) == 0) {
        if (event_base_dispatch(app.base) < 0)
            fprintf(stderr, "fake-upstream: event loop failed\n");
        else
            rc = 0;
    }
    cleanup(&app);
    return rc;
}
