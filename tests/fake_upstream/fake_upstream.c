/*
 * fake_upstream.c - a mock OpenAI-compatible upstream for Tollgate.
 *
 * Used by the end-to-end tests and by the offline quickstart: answers chat
 * completions (plain and SSE-streamed), embeddings, /models and /health with
 * canned data; can demand an API key; honours per-request "mock_usage" and
 * "mock_status" body fields; logs every POST as one JSON line (--log) so a
 * test can check what the gateway forwarded.
 *
 * Usage: fake-upstream --listen HOST:PORT [--api-key KEY] [--prompt-tokens N]
 *                      [--completion-tokens M] [--log FILE]
 * PORT 0 picks a free port; the real one is printed as "fake-upstream
 * listening on HOST:PORT".  SIGINT/SIGTERM stop it cleanly (exit code 0).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getopt_long, strndup, strncasecmp */
#endif
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
#include <jansson.h>

#define MAX_BODY_SIZE (16L * 1024 * 1024)
#define MAX_TOKENS ((json_int_t)INT_MAX)
#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(9))

/* The canned answer "This is a fake answer.", one stream chunk per word. */
static const char *const answer_words[] = {"This ", "is ", "a ", "fake ", "answer."};
#define N_WORDS (sizeof answer_words / sizeof answer_words[0])

struct options {
    char *host; /* malloc'd */
    int port;
    const char *api_key;
    json_int_t prompt_tokens;
    json_int_t completion_tokens;
    const char *log_path;
};

struct app {
    struct options opt;
    struct event_base *base;
    struct evhttp *http;
    struct event *sigint_ev;
    struct event *sigterm_ev;
    FILE *log;
    unsigned long counter;
};

/* Token usage reported for one request. */
struct usage {
    json_int_t prompt;
    json_int_t completion;
    json_int_t cached;
    int has_cached;
};

/* ---------------------------------------------------------------- replies */

/* Send `body` (reference stolen) as a JSON response with `status`. */
static void send_json(struct evhttp_request *req, int status, json_t *body)
{
    char *text = body ? json_dumps(body, DUMP_FLAGS) : NULL;
    struct evbuffer *buf = evbuffer_new();
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);

    json_decref(body);
    if (!text || !buf
        || evhttp_add_header(out, "Content-Type", "application/json") != 0
        || evbuffer_add(buf, text, strlen(text)) != 0) {
        fprintf(stderr, "fake-upstream: failed to build a response\n");
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
    } else {
        evhttp_send_reply(req, status, NULL, buf);
    }
    if (buf)
        evbuffer_free(buf);
    free(text);
}

/* Send an OpenAI-shaped error; `code` may be NULL (sent as null). */
static void send_error(struct evhttp_request *req, int status, const char *message,
                       const char *type, const char *code)
{
    send_json(req, status,
              json_pack("{s:{s:s, s:s, s:n, s:s?}}", "error", "message", message,
                        "type", type, "param", "code", code));
}

static void send_bad_request(struct evhttp_request *req, const char *message)
{
    send_error(req, HTTP_BADREQUEST, message, "invalid_request_error", NULL);
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

/* --------------------------------------------------------- request parsing */

/* Copy the request path into `dst`, with non-printable bytes as '?'. */
static void request_path(struct evhttp_request *req, char *dst, size_t size)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    size_t i;

    if (!path || !*path)
        path = "/";
    for (i = 0; i + 1 < size && path[i]; i++) {
        unsigned char c = (unsigned char)path[i];
        dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    dst[i] = '\0';
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

/* Checks shared by chat and embeddings; returns 0 if a reply was sent. */
static int common_checks(const struct app *app, struct evhttp_request *req,
                         const json_t *body, struct usage *u)
{
    const char *err = read_usage(app, body, u);
    int status;
    char code[16];

    if (err) {
        send_bad_request(req, err);
        return 0;
    }
    status = read_mock_status(body);
    if (status < 0) {
        send_bad_request(req, "mock_status must be an integer between 400 and 599");
        return 0;
    }
    if (status > 0) {
        snprintf(code, sizeof code, "%d", status);
        send_error(req, status, "mock error", "server_error", code);
        return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- handlers */

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

/* One chat.completion.chunk; `choices` and `usage` (may be NULL) are stolen. */
static json_t *stream_chunk(const char *id, json_int_t created, const char *model,
                            json_t *choices, json_t *usage)
{
    return json_pack("{s:s, s:s, s:I, s:s, s:o, s:o*}", "id", id, "object",
                     "chat.completion.chunk", "created", created, "model", model, "choices",
                     choices, "usage", usage);
}

static json_t *stream_choice(json_t *delta, const char *finish_reason)
{
    return json_pack("[{s:i, s:o, s:s?}]", "index", 0, "delta", delta, "finish_reason",
                     finish_reason);
}

static void reply_chat_stream(struct evhttp_request *req, const char *id,
                              json_int_t created, const char *model, const struct usage *u,
                              int include_usage)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    size_t i;

    if (evhttp_add_header(out, "Content-Type", "text/event-stream") != 0
        || evhttp_add_header(out, "Cache-Control", "no-cache") != 0) {
        send_error(req, HTTP_INTERNAL, "cannot set headers", "server_error", NULL);
        return;
    }
    evhttp_send_reply_start(req, HTTP_OK, NULL);
    for (i = 0; i < N_WORDS; i++) {
        json_t *delta = i == 0
            ? json_pack("{s:s, s:s}", "role", "assistant", "content", answer_words[i])
            : json_pack("{s:s}", "content", answer_words[i]);
        send_sse_json(req, stream_chunk(id, created, model, stream_choice(delta, NULL), NULL));
    }
    send_sse_json(req, stream_chunk(id, created, model, stream_choice(json_object(), "stop"),
                                    NULL));
    if (include_usage)
        send_sse_json(req, stream_chunk(id, created, model, json_array(), usage_json(u, 1)));
    send_sse(req, "[DONE]");
    evhttp_send_reply_end(req);
}

/* Returns what is wrong with a chat or embeddings body, or NULL. */
static const char *body_error(const json_t *body, const char *list_key)
{
    const json_t *list = json_object_get(body, list_key);

    if (!json_is_object(body))
        return "The request body must be a JSON object.";
    if (!json_is_string(json_object_get(body, "model")))
        return "you must provide a model parameter (a string)";
    if (strcmp(list_key, "messages") == 0 && !json_is_array(list))
        return "'messages' is a required property and must be an array";
    if (strcmp(list_key, "input") == 0 && !json_is_string(list) && !json_is_array(list))
        return "'input' is a required property (a string or an array)";
    return NULL;
}

static void handle_chat(struct app *app, struct evhttp_request *req, const json_t *body)
{
    const char *err = body_error(body, "messages");
    const char *model = json_string_value(json_object_get(body, "model"));
    const json_t *opts = json_object_get(body, "stream_options");
    json_int_t created = (json_int_t)time(NULL);
    struct usage u;
    char id[64];

    if (err) {
        send_bad_request(req, err);
        return;
    }
    if (!common_checks(app, req, body, &u))
        return;
    snprintf(id, sizeof id, "chatcmpl-fake-%lu", ++app->counter);
    if (json_is_true(json_object_get(body, "stream"))) {
        reply_chat_stream(req, id, created, model, &u,
                          json_is_true(json_object_get(opts, "include_usage")));
        return;
    }
    send_json(req, HTTP_OK,
              json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:{s:s, s:s}, s:s}], s:o}", "id", id,
                        "object", "chat.completion", "created", created, "model", model,
                        "choices", "index", 0, "message", "role", "assistant", "content",
                        "This is a fake answer.", "finish_reason", "stop", "usage",
                        usage_json(&u, 1)));
}

static void handle_embeddings(struct app *app, struct evhttp_request *req,
                              const json_t *body)
{
    const char *err = body_error(body, "input");
    const char *model = json_string_value(json_object_get(body, "model"));
    struct usage u;

    if (err) {
        send_bad_request(req, err);
        return;
    }
    if (!common_checks(app, req, body, &u))
        return;
    send_json(req, HTTP_OK,
              json_pack("{s:s, s:[{s:s, s:i, s:[f, f, f]}], s:s, s:o}", "object", "list",
                        "data", "object", "embedding", "index", 0, "embedding", 0.1, 0.2,
                        0.3, "model", model, "usage", usage_json(&u, 0)));
}

static void handle_models(struct evhttp_request *req)
{
    send_json(req, HTTP_OK,
              json_pack("{s:s, s:[{s:s, s:s, s:i, s:s}]}", "object", "list", "data", "id",
                        "fake-model", "object", "model", "created", 0, "owned_by",
                        "tollgate-tests"));
}

/* True if `path` is `name` or "/v1" followed by `name`. */
static int is_path(const char *path, const char *name)
{
    return strcmp(path, name) == 0
        || (strncmp(path, "/v1", 3) == 0 && strcmp(path + 3, name) == 0);
}

static void route(struct app *app, struct evhttp_request *req, enum evhttp_cmd_type method,
                  const char *path, const json_t *body, const json_error_t *jerr)
{
    char message[256];
    int post = method == EVHTTP_REQ_POST;

    if (post && !body && (is_path(path, "/chat/completions") || is_path(path, "/embeddings"))) {
        snprintf(message, sizeof message,
                 "We could not parse the JSON body of your request: %s", jerr->text);
        send_bad_request(req, message);
    } else if (post && is_path(path, "/chat/completions")) {
        handle_chat(app, req, body);
    } else if (post && is_path(path, "/embeddings")) {
        handle_embeddings(app, req, body);
    } else if (method == EVHTTP_REQ_GET && is_path(path, "/models")) {
        handle_models(req);
    } else if (method == EVHTTP_REQ_GET && strcmp(path, "/health") == 0) {
        send_json(req, HTTP_OK, json_pack("{s:s}", "status", "ok"));
    } else {
        snprintf(message, sizeof message, "Invalid URL (%.200s)", path);
        send_error(req, HTTP_NOTFOUND, message, "not_found_error", NULL);
    }
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct app *app = arg;
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    char path[1024];
    json_t *body = NULL;
    json_error_t jerr;

    memset(&jerr, 0, sizeof jerr);
    request_path(req, path, sizeof path);
    if (method == EVHTTP_REQ_POST) {
        body = parse_body(req, &jerr);
        log_request(app, req, path, body);
    }
    if (!authorized(app, req))
        send_error(req, 401, "Incorrect API key provided", "invalid_request_error",
                   "invalid_api_key");
    else
        route(app, req, method, path, body, &jerr);
    json_decref(body);
}

/* ------------------------------------------------------------ setup, main */

static void usage_exit(const char *prog, int status)
{
    fprintf(status ? stderr : stdout,
            "usage: %s --listen HOST:PORT [--api-key KEY] [--prompt-tokens N]\n"
            "       [--completion-tokens M] [--log FILE]\n", prog);
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
