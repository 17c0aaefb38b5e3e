/*
 * fake_upstream.c - a mock OpenAI-compatible upstream for Tollgate.
 *
 * Used by the end-to-end tests and by the offline quickstart: answers chat
 * completions and legacy text completions (plain and SSE-streamed),
 * embeddings, image generations, /models, /health and /stats with canned
 * data, on the OpenAI paths (with or without "/v1") and on the Azure ones
 * (/openai/deployments/NAME/...?api-version=V); can demand an API key
 * ("Authorization: Bearer KEY" or "api-key: KEY"); logs every POST as one
 * JSON line (--log) so a test can check what the gateway forwarded.
 *
 * Per-request body fields (the gateway forwards them untouched):
 *   mock_usage {prompt_tokens, completion_tokens, cached_tokens}
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
 * after N chunks"); GET /stats (no key needed) counts POSTs and streams.
 *
 * Usage: fake-upstream --listen HOST:PORT [--api-key KEY] [--prompt-tokens N]
 *                      [--completion-tokens M] [--log FILE] [--fail-first N]
 * PORT 0 picks a free port; the real one is printed as "fake-upstream
 * listening on HOST:PORT".  --fail-first N answers the first N POSTs with a
 * 500.  SIGINT/SIGTERM stop it cleanly (exit code 0), streams or not.
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
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "fake_answer_extras.h"

#define MAX_BODY_SIZE (16L * 1024 * 1024)
#define MAX_TOKENS ((json_int_t)INT_MAX)
#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(9))

#define DEFAULT_CONTENT "This is a fake answer."
#define MAX_ANSWER_BYTES ((size_t)64 * 1024 * 1024) /* mock_content x mock_chunks */
#define MAX_REPS 100000L                            /* mock_chunks */
#define MAX_CHUNK_DELAY_MS 10000L
#define MAX_FIRST_BYTE_DELAY_MS 600000L
#define MAX_IMAGES 10L
#define STREAM_BATCH 64 /* stream events sent per loop turn without a delay */
#define AZURE_PREFIX "/openai/deployments/"

struct options {
    char *host; /* malloc'd */
    int port;
    const char *api_key;
    json_int_t prompt_tokens;
    json_int_t completion_tokens;
    const char *log_path;
    long fail_first;
};

struct call;

struct app {
    struct options opt;
    struct event_base *base;
    struct evhttp *http;
    struct event *sigint_ev;
    struct event *sigterm_ev;
    FILE *log;
    unsigned long counter;
    struct call *calls;              /* delayed replies and streams under way */
    unsigned long requests;          /* POSTs received */
    unsigned long failed;            /* POSTs failed by --fail-first */
    unsigned long active_streams;
    unsigned long cancelled_streams; /* streams the client left */
};

/* Token usage reported for one request. */
struct usage {
    json_int_t prompt;
    json_int_t completion;
    json_int_t cached;
    int has_cached;
};

enum usage_mode { USAGE_AUTO, USAGE_NEVER, USAGE_ALWAYS };

/* A completion's answer, from the mock_* body fields. */
struct answer {
    const char *content; /* borrowed from the body */
    size_t length;
    long reps;
    long chunk_delay_ms;
    long stall_after; /* -1: never */
    enum usage_mode usage_mode;
};

enum api { API_CHAT, API_TEXT }; /* chat.completion or text_completion */
enum stage { ST_CONTENT, ST_FINISH, ST_USAGE, ST_DONE, ST_END };

/* An SSE stream: what to send and how far it got. */
struct stream {
    enum api api;
    char id[64];
    json_int_t created;
    char *model;   /* malloc'd */
    char *content; /* malloc'd, `length` bytes */
    size_t length;
    size_t *cuts; /* word i is content[cuts[i] .. cuts[i + 1]) */
    size_t n_words;
    size_t total; /* content chunks: n_words x reps */
    size_t sent;  /* content chunks sent */
    struct usage usage;
    int send_usage;
    long chunk_delay_ms;
    long stall_after;
    enum stage stage;
    int started; /* headers sent */
    struct answer_extras extras;
};

/* A request answered later: a delayed reply (text) or a stream. */
struct call {
    struct app *app;
    struct call *prev, *next; /* app->calls */
    struct evhttp_request *req;
    struct evhttp_connection *conn;
    struct event *timer;
    struct event *watch; /* EOF watch until the first byte is sent */
    int status;
    char *text;            /* the delayed reply, or NULL */
    struct stream *stream; /* or the stream, or NULL */
};

/* The request being answered. */
struct exchange {
    struct app *app;
    struct evhttp_request *req;
    const json_t *body;     /* NULL unless a POST with a JSON body */
    const char *deployment; /* the Azure deployment, or NULL */
    long delay_ms;          /* mock_first_byte_delay_ms */
    struct answer_extras extras; /* filled by common_checks */
};

/* ---------------------------------------------------------------- replies */

/* Send the JSON text `text` with `status` now; NULL text sends a 500. */
static void reply_now(struct evhttp_request *req, int status, const char *text)
{
    struct evbuffer *buf = text ? evbuffer_new() : NULL;
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);

    if (!buf || evhttp_add_header(out, "Content-Type", "application/json") != 0
        || evbuffer_add(buf, text, strlen(text)) != 0) {
        fprintf(stderr, "fake-upstream: failed to build a response\n");
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
    } else {
        evhttp_send_reply(req, status, NULL, buf);
    }
    if (buf)
        evbuffer_free(buf);
}

/* Send one SSE event "data: <text>\n\n". */
static void send_sse(struct evhttp_request *req, const char *text)
{
    struct evbuffer *buf = evbuffer_new();

    if (!text || !buf || evbuffer_add_printf(buf, "data: %s\n\n", text) < 0)
        fprintf(stderr, "fake-upstream: failed to build a stream chunk\n");
    else
        evhttp_send_reply_chunk(req, buf);
    if (buf)
        evbuffer_free(buf);
}

/* Send `obj` (stolen, may be NULL) as one SSE event. */
static void send_sse_json(struct evhttp_request *req, json_t *obj)
{
    char *text = obj ? json_dumps(obj, DUMP_FLAGS) : NULL;

    json_decref(obj);
    send_sse(req, text);
    free(text);
}

/* ------------------------------------------------------------------ calls */

static void stream_step(struct call *c);

static void stream_free(struct stream *s)
{
    if (!s)
        return;
    free(s->model);
    free(s->content);
    free(s->cuts);
    answer_extras_clear(&s->extras);
    free(s);
}

/* Forget `c` (the request itself stays with the caller or libevent). */
static void call_free(struct call *c)
{
    if (c->conn)
        evhttp_connection_set_closecb(c->conn, NULL, NULL);
    event_free(c->timer);
    if (c->watch)
        event_free(c->watch);
    if (c->prev)
        c->prev->next = c->next;
    else
        c->app->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c->text);
    stream_free(c->stream);
    free(c);
}

/* The client closed the connection before the call ended. */
static void on_call_closed(struct evhttp_connection *conn, void *arg)
{
    struct call *c = arg;
    struct evhttp_request *req = c->req;

    (void)conn;
    if (c->stream) {
        c->app->active_streams--;
        c->app->cancelled_streams++;
        fprintf(stderr, "fake-upstream: client went away after %zu chunks\n",
                c->stream->sent);
    } else {
        fprintf(stderr, "fake-upstream: client went away before the reply\n");
    }
    c->conn = NULL; /* being freed */
    call_free(c);
    /* libevent leaves an unfinished request to its owner */
    if (!evhttp_request_get_connection(req))
        evhttp_request_free(req);
}

static void on_call_timer(evutil_socket_t fd, short events, void *arg)
{
    struct call *c = arg;
    struct evhttp_request *req = c->req;
    int status = c->status;
    char *text = c->text;

    (void)fd;
    (void)events;
    if (c->stream) {
        stream_step(c);
        return;
    }
    c->text = NULL;
    call_free(c);
    reply_now(req, status, text);
    free(text);
}

/* Until a reply starts libevent does not read the socket, so a client that
 * leaves would go unnoticed: on its EOF, drop the connection (which runs
 * on_call_closed). */
static void on_peer_readable(evutil_socket_t fd, short events, void *arg)
{
    struct call *c = arg;
    char byte;
    ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);

    (void)events;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        if (event_add(c->watch, NULL) != 0)
            fprintf(stderr, "fake-upstream: cannot watch a connection\n");
        return;
    }
    if (n > 0)
        return; /* the client sent more: libevent reads it after the reply */
    evhttp_connection_free(c->conn);
}

static int call_schedule(struct call *c, long ms)
{
    struct timeval tv;

    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    if (evtimer_add(c->timer, &tv) == 0)
        return 0;
    fprintf(stderr, "fake-upstream: cannot arm a timer\n");
    return -1;
}

/* Track `ex`'s request until it is answered or its client leaves. */
static struct call *call_new(const struct exchange *ex)
{
    struct call *c = calloc(1, sizeof *c);
    struct bufferevent *bev;

    if (!c)
        goto fail;
    c->app = ex->app;
    c->req = ex->req;
    c->conn = evhttp_request_get_connection(ex->req);
    c->timer = evtimer_new(ex->app->base, on_call_timer, c);
    bev = c->conn ? evhttp_connection_get_bufferevent(c->conn) : NULL;
    if (bev && bufferevent_getfd(bev) >= 0)
        c->watch = event_new(ex->app->base, bufferevent_getfd(bev), EV_READ,
                             on_peer_readable, c);
    if (!c->timer || !c->watch || event_add(c->watch, NULL) != 0) {
        if (c->timer)
            event_free(c->timer);
        if (c->watch)
            event_free(c->watch);
        free(c);
        goto fail;
    }
    c->next = ex->app->calls;
    if (c->next)
        c->next->prev = c;
    ex->app->calls = c;
    evhttp_connection_set_closecb(c->conn, on_call_closed, c);
    return c;
fail:
    fprintf(stderr, "fake-upstream: cannot keep a request for later\n");
    return NULL;
}

/* Send `body` (reference stolen) as a JSON response with `status`, after
 * the request's first-byte delay if it has one. */
static void send_json(struct exchange *ex, int status, json_t *body)
{
    char *text = body ? json_dumps(body, DUMP_FLAGS) : NULL;
    struct call *c;

    json_decref(body);
    if (text && ex->delay_ms > 0 && (c = call_new(ex)) != NULL) {
        c->status = status;
        c->text = text;
        if (call_schedule(c, ex->delay_ms) == 0)
            return;
        c->text = NULL;
        call_free(c);
    }
    reply_now(ex->req, status, text);
    free(text);
}

/* Send an OpenAI-shaped error; `code` may be NULL (sent as null). */
static void send_error(struct exchange *ex, int status, const char *message,
                       const char *type, const char *code)
{
    send_json(ex, status,
              json_pack("{s:{s:s, s:s, s:n, s:s?}}", "error", "message", message,
                        "type", type, "param", "code", code));
}

static void send_bad_request(struct exchange *ex, const char *message)
{
    send_error(ex, HTTP_BADREQUEST, message, "invalid_request_error", NULL);
}

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

/* Append {"path","headers","body"} as one line to the log file. */
static void log_request(struct app *app, struct evhttp_request *req, const char *path,
                        json_t *body)
{
    static const char *const names[] = {"authorization", "api-key", "content-type"};
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
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
    entry = json_pack("{s:s, s:o, s:O}", "path", path, "headers", headers, "body",
                      body ? body : json_null());
    line = entry ? json_dumps(entry, DUMP_FLAGS) : NULL;
    if (!line || fprintf(app->log, "%s\n", line) < 0 || fflush(app->log) != 0)
        fprintf(stderr, "fake-upstream: failed to write the request log\n");
    free(line);
    json_decref(entry);
}

static int authorized(const struct app *app, struct evhttp_request *req)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *key = app->opt.api_key;
    const char *value;

    if (!key)
        return 1;
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

/* Read the integer `obj`.<name>, if present, into *out; on a value outside
 * [min, max] writes a message into `msg` and returns -1. */
static int read_long(const json_t *obj, const char *name, long min, long max, long *out,
                     char *msg, size_t size)
{
    const json_t *value = json_object_get(obj, name);

    if (!value)
        return 0;
    if (!json_is_integer(value) || json_integer_value(value) < min
        || json_integer_value(value) > max) {
        snprintf(msg, size, "%s must be an integer between %ld and %ld", name, min, max);
        return -1;
    }
    *out = (long)json_integer_value(value);
    return 0;
}

/* Read mock_usage.<name> into *out if present; returns an error or NULL. */
static const char *read_count(const json_t *mock, const char *name, json_int_t *out,
                              int *present)
{
    const json_t *value = json_object_get(mock, name);

    if (!value)
        return NULL;
    if (!json_is_integer(value) || json_integer_value(value) < 0
        || json_integer_value(value) > MAX_TOKENS)
        return "mock_usage fields must be non-negative integers";
    *out = json_integer_value(value);
    if (present)
        *present = 1;
    return NULL;
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
    if ((err = read_count(mock, "prompt_tokens", &u->prompt, NULL)) != NULL
        || (err = read_count(mock, "completion_tokens", &u->completion, NULL)) != NULL)
        return err;
    return read_count(mock, "cached_tokens", &u->cached, &u->has_cached);
}

/* Returns 0 if "mock_status" is absent, the status if valid, -1 if not. */
static int read_mock_status(const json_t *body)
{
    const json_t *value = json_object_get(body, "mock_status");
    json_int_t status;

    if (!value)
        return 0;
    if (!json_is_integer(value))
        return -1;
    status = json_integer_value(value);
    return (status >= 400 && status <= 599) ? (int)status : -1;
}

/* Checks shared by every POST route; returns 0 if a reply was sent. */
static int common_checks(struct exchange *ex, struct usage *u)
{
    const char *err = read_usage(ex->app, ex->body, u);
    int status;
    char code[16], msg[160];

    if (err) {
        send_bad_request(ex, err);
        return 0;
    }
    if (answer_extras_read(ex->body, &ex->extras, msg, sizeof msg) != 0) {
        send_bad_request(ex, msg);
        return 0;
    }
    status = read_mock_status(ex->body);
    if (status < 0) {
        send_bad_request(ex, "mock_status must be an integer between 400 and 599");
        return 0;
    }
    if (status > 0) {
        snprintf(code, sizeof code, "%d", status);
        send_error(ex, status, "mock error", "server_error", code);
        return 0;
    }
    return 1;
}

/* Fill `a` from the defaults and the mock_* answer fields; -1 (with `msg`)
 * on a bad value. */
static int read_answer(const json_t *body, struct answer *a, char *msg, size_t size)
{
    const json_t *content = json_object_get(body, "mock_content");
    const json_t *mode = json_object_get(body, "mock_stream_usage");
    const char *m = json_string_value(mode);

    a->content = DEFAULT_CONTENT;
    a->length = strlen(DEFAULT_CONTENT);
    a->reps = 1;
    a->chunk_delay_ms = 0;
    a->stall_after = -1;
    a->usage_mode = USAGE_AUTO;
    if (content && !json_is_string(content)) {
        snprintf(msg, size, "mock_content must be a string");
        return -1;
    }
    if (content) {
        a->content = json_string_value(content);
        a->length = json_string_length(content);
    }
    if (read_long(body, "mock_chunks", 1, MAX_REPS, &a->reps, msg, size) != 0
        || read_long(body, "mock_chunk_delay_ms", 0, MAX_CHUNK_DELAY_MS, &a->chunk_delay_ms,
                     msg, size) != 0
        || read_long(body, "mock_stall_after_chunks", 0, INT_MAX, &a->stall_after, msg,
                     size) != 0)
        return -1;
    if (a->length > 0 && (size_t)a->reps > MAX_ANSWER_BYTES / a->length) {
        snprintf(msg, size, "mock_content times mock_chunks exceeds %zu bytes",
                 MAX_ANSWER_BYTES);
        return -1;
    }
    if (mode && m && strcmp(m, "never") == 0) {
        a->usage_mode = USAGE_NEVER;
    } else if (mode && m && strcmp(m, "always") == 0) {
        a->usage_mode = USAGE_ALWAYS;
    } else if (mode && !(m && strcmp(m, "auto") == 0)) {
        snprintf(msg, size, "mock_stream_usage must be \"auto\", \"never\" or \"always\"");
        return -1;
    }
    return 0;
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

/* The end of the word starting at `i`: its letters, then its spaces. */
static size_t word_end(const char *text, size_t len, size_t i)
{
    while (i < len && text[i] != ' ')
        i++;
    while (i < len && text[i] == ' ')
        i++;
    return i;
}

/* Cut `text` into words that keep their trailing spaces (at least one, maybe
 * empty): word i is text[cuts[i] .. cuts[i + 1]).  NULL if out of memory. */
static size_t *split_words(const char *text, size_t len, size_t *n_words)
{
    size_t n = 0, i, *cuts;

    for (i = 0; i < len; i = word_end(text, len, i))
        n++;
    if (n == 0)
        n = 1;
    cuts = malloc((n + 1) * sizeof *cuts);
    if (!cuts)
        return NULL;
    cuts[0] = 0;
    for (i = 1; i <= n; i++)
        cuts[i] = word_end(text, len, cuts[i - 1]);
    *n_words = n;
    return cuts;
}

/* `a`'s content repeated a->reps times (malloc'd, *len bytes), or NULL. */
static char *repeat_content(const struct answer *a, size_t *len)
{
    char *text = malloc(a->length * (size_t)a->reps + 1);
    long i;

    if (!text)
        return NULL;
    for (i = 0; i < a->reps; i++)
        memcpy(text + (size_t)i * a->length, a->content, a->length);
    *len = a->length * (size_t)a->reps;
    text[*len] = '\0';
    return text;
}

/* A stream of `a` as `api`; NULL if out of memory. */
static struct stream *stream_new(enum api api, const char *id, json_int_t created,
                                 const char *model, const struct usage *u,
                                 const struct answer *a, int send_usage,
                                 const struct answer_extras *extras)
{
    struct stream *s = calloc(1, sizeof *s);

    if (!s)
        return NULL;
    s->api = api;
    snprintf(s->id, sizeof s->id, "%s", id);
    s->created = created;
    s->model = strdup(model);
    s->content = malloc(a->length + 1);
    s->cuts = split_words(a->content, a->length, &s->n_words);
    if (!s->model || !s->content || !s->cuts) {
        stream_free(s);
        return NULL;
    }
    memcpy(s->content, a->content, a->length);
    s->content[a->length] = '\0';
    s->length = a->length;
    s->total = s->n_words * (size_t)a->reps;
    s->usage = *u;
    s->send_usage = send_usage;
    s->chunk_delay_ms = a->chunk_delay_ms;
    s->stall_after = a->stall_after;
    s->stage = ST_CONTENT;
    answer_extras_copy(&s->extras, extras);
    return s;
}

/* One chunk of `s` with its mock_answer_fields; `choices` and `usage` (may
 * be NULL) are stolen. */
static json_t *stream_chunk(const struct stream *s, json_t *choices, json_t *usage)
{
    json_t *chunk = json_pack("{s:s, s:s, s:I, s:s, s:o, s:o*}", "id", s->id, "object",
                              s->api == API_CHAT ? "chat.completion.chunk" : "text_completion",
                              "created", s->created, "model", s->model, "choices", choices,
                              "usage", usage);

    return answer_extras_add_fields(&s->extras, chunk);
}

/* The choices of a chunk carrying `text` (`len` bytes) and `finish_reason`. */
static json_t *stream_choices(const struct stream *s, const char *text, size_t len,
                              const char *finish_reason)
{
    json_t *delta;

    if (s->api == API_TEXT)
        return json_pack("[{s:s%, s:i, s:n, s:s?}]", "text", text, len, "index", 0,
                         "logprobs", "finish_reason", finish_reason);
    if (finish_reason)
        delta = json_object();
    else if (s->sent == 0)
        delta = json_pack("{s:s, s:s%}", "role", "assistant", "content", text, len);
    else
        delta = json_pack("{s:s%}", "content", text, len);
    return json_pack("[{s:i, s:o, s:s?}]", "index", 0, "delta", delta, "finish_reason",
                     finish_reason);
}

/* Send the next event of the stream and move on. */
static void stream_send_next(struct call *c)
{
    struct stream *s = c->stream;
    size_t w = s->sent % s->n_words;

    switch (s->stage) {
    case ST_CONTENT:
        send_sse_json(c->req, stream_chunk(s, stream_choices(s, s->content + s->cuts[w],
                                                             s->cuts[w + 1] - s->cuts[w],
                                                             NULL),
                                           NULL));
        if (++s->sent == s->total)
            s->stage = ST_FINISH;
        break;
    case ST_FINISH:
        send_sse_json(c->req, stream_chunk(s, stream_choices(s, "", 0, "stop"), NULL));
        s->stage = s->send_usage ? ST_USAGE : ST_DONE;
        break;
    case ST_USAGE:
        send_sse_json(c->req, stream_chunk(s, json_array(),
                                           answer_extras_usage(&s->extras,
                                                               usage_json(&s->usage, 1))));
        s->stage = ST_DONE;
        break;
    case ST_DONE:
    case ST_END:
        send_sse(c->req, "[DONE]");
        s->stage = ST_END;
        break;
    }
}

/* Finish the stream: end the chunked reply and forget the call. */
static void stream_end(struct call *c)
{
    struct evhttp_request *req = c->req;

    c->app->active_streams--;
    call_free(c);
    evhttp_send_reply_end(req);
}

/* Send the stream's headers; on failure answers a 500 and frees `c`. */
static int stream_begin(struct call *c)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(c->req);
    struct evhttp_request *req = c->req;

    if (evhttp_add_header(out, "Content-Type", "text/event-stream") != 0
        || evhttp_add_header(out, "Cache-Control", "no-cache") != 0) {
        c->app->active_streams--;
        call_free(c);
        reply_now(req, HTTP_INTERNAL, NULL);
        return -1;
    }
    event_free(c->watch); /* from now on libevent notices a close itself */
    c->watch = NULL;
    evhttp_send_reply_start(req, HTTP_OK, NULL);
    c->stream->started = 1;
    return 0;
}

/* Send what is due: one event (with a chunk delay) or a batch, then arm the
 * timer for the rest; a stalled stream waits for its client to leave. */
static void stream_step(struct call *c)
{
    struct stream *s = c->stream;
    int budget = s->chunk_delay_ms > 0 ? 1 : STREAM_BATCH;

    if (!s->started && stream_begin(c) != 0)
        return;
    while (budget-- > 0) {
        if (s->stall_after >= 0 && s->sent == (size_t)s->stall_after)
            return;
        stream_send_next(c);
        if (s->stage == ST_END) {
            stream_end(c);
            return;
        }
    }
    if (call_schedule(c, s->chunk_delay_ms) != 0)
        stream_end(c);
}

/* Answer `ex` with the stream `s` (stolen; NULL: out of memory). */
static void start_stream(struct exchange *ex, struct stream *s)
{
    struct call *c = s ? call_new(ex) : NULL;

    if (!c) {
        stream_free(s);
        ex->delay_ms = 0;
        send_error(ex, HTTP_INTERNAL, "cannot start the stream", "server_error", NULL);
        return;
    }
    c->stream = s;
    ex->app->active_streams++;
    if (ex->delay_ms > 0 && call_schedule(c, ex->delay_ms) == 0)
        return;
    stream_step(c);
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
        || read_answer(ex->body, &a, msg, sizeof msg) != 0) {
        send_bad_request(ex, msg);
        return;
    }
    if (!common_checks(ex, &u))
        return;
    snprintf(id, sizeof id, "%s-fake-%lu", api == API_CHAT ? "chatcmpl" : "cmpl",
             ++ex->app->counter);
    if (json_is_true(json_object_get(ex->body, "stream"))) {
        start_stream(ex, stream_new(api, id, created, model, &u, &a,
                                    wants_usage(ex->body, &a), &ex->extras));
        return;
    }
    text = repeat_content(&a, &len);
    if (!text) {
        send_json(ex, HTTP_INTERNAL, NULL);
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
    send_json(ex, HTTP_OK, answer_extras_dress(&ex->extras, answer));
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
        send_bad_request(ex, msg);
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
    send_json(ex, HTTP_OK, answer_extras_dress(&ex->extras, answer));
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
        || read_long(ex->body, "n", 1, MAX_IMAGES, &n, msg, sizeof msg) != 0) {
        send_bad_request(ex, msg);
        return;
    }
    if (size && !(json_is_string(size) && valid_image_size(json_string_value(size)))) {
        send_bad_request(ex, "size must be a string like \"1024x1024\"");
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
    send_json(ex, data ? HTTP_OK : HTTP_INTERNAL, answer_extras_dress(&ex->extras, answer));
}

static void handle_models(struct exchange *ex)
{
    send_json(ex, HTTP_OK,
              json_pack("{s:s, s:[{s:s, s:s, s:i, s:s}]}", "object", "list", "data", "id",
                        "fake-model", "object", "model", "created", 0, "owned_by",
                        "tollgate-tests"));
}

static void handle_stats(struct exchange *ex)
{
    const struct app *app = ex->app;

    send_json(ex, HTTP_OK,
              json_pack("{s:I, s:I, s:I}", "requests", (json_int_t)app->requests,
                        "active_streams", (json_int_t)app->active_streams,
                        "cancelled_streams", (json_int_t)app->cancelled_streams));
}

/* ----------------------------------------------------------------- routing */

typedef void (*handler_fn)(struct exchange *ex);

/* The POST handler for `path` (an OpenAI path, "/v1" allowed if `v1`). */
static handler_fn post_handler(const char *path, int v1)
{
    static const struct {
        const char *name;
        handler_fn fn;
    } routes[] = {
        {"/chat/completions", handle_chat},
        {"/completions", handle_text},
        {"/embeddings", handle_embeddings},
        {"/images/generations", handle_images},
    };
    size_t i;

    if (v1 && strncmp(path, "/v1/", 4) == 0)
        path += 3;
    for (i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (strcmp(path, routes[i].name) == 0)
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

/* True if `path` is `name` or "/v1" followed by `name`. */
static int is_path(const char *path, const char *name)
{
    return strcmp(path, name) == 0
        || (strncmp(path, "/v1", 3) == 0 && strcmp(path + 3, name) == 0);
}

static void route(struct exchange *ex, enum evhttp_cmd_type method, const char *path,
                  const json_error_t *jerr)
{
    char message[256], deployment[256];
    const char *rest = is_azure(path) ? azure_split(path, deployment, sizeof deployment)
                                      : NULL;
    handler_fn handler = rest ? post_handler(rest, 0)
                              : is_azure(path) ? NULL : post_handler(path, 1);

    if (method == EVHTTP_REQ_POST && handler && rest && !has_api_version(ex->req)) {
        send_bad_request(ex, "Missing required query parameter: api-version");
    } else if (method == EVHTTP_REQ_POST && handler && !ex->body) {
        snprintf(message, sizeof message,
                 "We could not parse the JSON body of your request: %s", jerr->text);
        send_bad_request(ex, message);
    } else if (method == EVHTTP_REQ_POST && handler) {
        ex->deployment = rest ? deployment : NULL;
        handler(ex);
    } else if (method == EVHTTP_REQ_GET && is_path(path, "/models")) {
        handle_models(ex);
    } else if (method == EVHTTP_REQ_GET && strcmp(path, "/health") == 0) {
        send_json(ex, HTTP_OK, json_pack("{s:s}", "status", "ok"));
    } else {
        snprintf(message, sizeof message, "Invalid URL (%.200s)", path);
        send_error(ex, HTTP_NOTFOUND, message, "not_found_error", NULL);
    }
}

/* --fail-first: answer this POST with a 500. */
static void fail_forced(struct exchange *ex)
{
    struct app *app = ex->app;
    char message[128];

    snprintf(message, sizeof message, "fake-upstream: forced failure %lu of %ld (--fail-first)",
             ++app->failed, app->opt.fail_first);
    send_error(ex, HTTP_INTERNAL, message, "server_error", NULL);
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
    if (method == EVHTTP_REQ_POST) {
        body = parse_body(req, &jerr);
        request_path(req, is_azure(path), logged, sizeof logged);
        log_request(app, req, logged, body);
        app->requests++;
    }
    ex.body = body;
    if (method == EVHTTP_REQ_GET && strcmp(path, "/stats") == 0)
        handle_stats(&ex);
    else if (read_long(body, "mock_first_byte_delay_ms", 0, MAX_FIRST_BYTE_DELAY_MS,
                       &ex.delay_ms, message, sizeof message) != 0)
        send_bad_request(&ex, message);
    else if (method == EVHTTP_REQ_POST && app->failed < (unsigned long)app->opt.fail_first)
        fail_forced(&ex);
    else if (!authorized(app, req))
        send_error(&ex, 401, "Incorrect API key provided", "invalid_request_error",
                   "invalid_api_key");
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
    while (app->calls)
        call_free(app->calls);
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
