/*
 * fake_reply.c - answering fake-upstream's requests now, later, or as a
 * paced SSE stream (see fake_reply.h).
 *
 * A request answered later is a `call` on app->calls: a delayed reply (its
 * text) or a stream.  Delays run on the call's timer, so the loop serves
 * other clients meanwhile.  Until a reply starts libevent does not read the
 * socket, so a watch event notices a client that leaves early; once started
 * libevent's close callback does.  Either way the call is forgotten and the
 * departure reported on stderr ("fake-upstream: client went away ...").
 */
#include "fake_reply.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/keyvalq_struct.h>

#define STREAM_BATCH 64 /* stream events sent per loop turn without a delay */

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

void reply_now(struct evhttp_request *req, int status, const char *text)
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

/* Send "event: <event>\n" (if `event`) and "data: <text>\n\n". */
static void send_sse(struct evhttp_request *req, const char *event, const char *text)
{
    struct evbuffer *buf = evbuffer_new();

    if (!text || !buf || (event && evbuffer_add_printf(buf, "event: %s\n", event) < 0)
        || evbuffer_add_printf(buf, "data: %s\n\n", text) < 0)
        fprintf(stderr, "fake-upstream: failed to build a stream chunk\n");
    else
        evhttp_send_reply_chunk(req, buf);
    if (buf)
        evbuffer_free(buf);
}

void stream_send_text(struct evhttp_request *req, const char *text)
{
    send_sse(req, NULL, text);
}

void stream_send(struct evhttp_request *req, const char *event, json_t *data)
{
    char *text = data ? json_dumps(data, DUMP_FLAGS) : NULL;

    send_sse(req, event, text); /* `event` may belong to `data` */
    free(text);
    json_decref(data);
}

void stream_send_event(struct evhttp_request *req, json_t *data)
{
    stream_send(req, json_string_value(json_object_get(data, "type")), data);
}

/* ------------------------------------------------------------------ calls */

static void stream_step(struct call *c);

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
    c->app->calls_now--;
    free(c->text);
    if (c->stream)
        c->stream->release(c->stream);
    free(c);
}

void reply_forget_calls(struct app *app)
{
    while (app->calls)
        call_free(app->calls);
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

/* On the EOF of a client whose reply has not started, drop the connection
 * (which runs on_call_closed). */
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
    if (++ex->app->calls_now > ex->app->calls_max)
        ex->app->calls_max = ex->app->calls_now;
    evhttp_connection_set_closecb(c->conn, on_call_closed, c);
    return c;
fail:
    fprintf(stderr, "fake-upstream: cannot keep a request for later\n");
    return NULL;
}

/* ---------------------------------------------------------------- replies */

void reply_json(struct exchange *ex, int status, json_t *body)
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

/* Anthropic's error type for an HTTP status. */
static const char *anthropic_error_type(int status)
{
    switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 402: return "billing_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 504: return "timeout_error";
    case 529: return "overloaded_error";
    default: return status < 500 ? "invalid_request_error" : "api_error";
    }
}

void reply_error(struct exchange *ex, int status, const char *message, const char *type,
                 const char *code)
{
    if (ex->dialect == DIALECT_ANTHROPIC)
        reply_json(ex, status,
                   json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error", "type",
                             anthropic_error_type(status), "message", message));
    else
        reply_json(ex, status,
                   json_pack("{s:{s:s, s:s, s:n, s:s?}}", "error", "message", message,
                             "type", type, "param", "code", code));
}

void reply_bad_request(struct exchange *ex, const char *message)
{
    reply_error(ex, HTTP_BADREQUEST, message, "invalid_request_error", NULL);
}

int reply_if_mocked_error(struct exchange *ex)
{
    int status;
    char code[16], msg[160];

    if (answer_extras_read(ex->body, &ex->extras, msg, sizeof msg) != 0) {
        reply_bad_request(ex, msg);
        return 1;
    }
    status = mock_read_status(ex->body);
    if (status < 0) {
        reply_bad_request(ex, "mock_status must be an integer between 400 and 599");
        return 1;
    }
    if (status == 0)
        return 0;
    snprintf(code, sizeof code, "%d", status);
    reply_error(ex, status, "mock error", "server_error", code);
    return 1;
}

/* ---------------------------------------------------------------- streams */

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
        switch (s->next(s, c->req)) {
        case STREAM_SENT: break;
        case STREAM_STALLED: return;
        case STREAM_OVER: stream_end(c); return;
        }
    }
    if (call_schedule(c, s->chunk_delay_ms) != 0)
        stream_end(c);
}

void reply_stream(struct exchange *ex, struct stream *s)
{
    struct call *c = s ? call_new(ex) : NULL;

    if (!c) {
        if (s)
            s->release(s);
        ex->delay_ms = 0;
        reply_error(ex, HTTP_INTERNAL, "cannot start the stream", "server_error", NULL);
        return;
    }
    c->stream = s;
    ex->app->active_streams++;
    if (ex->delay_ms > 0 && call_schedule(c, ex->delay_ms) == 0)
        return;
    stream_step(c);
}
