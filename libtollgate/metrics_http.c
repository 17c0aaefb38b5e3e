/* metrics_http.c - GET /metrics over HTTP: the reply a daemon's own server
 * gives (proxyd, reportd) and a small server thread for one that has none
 * (accountd), with the same limits against hostile clients as the daemons'
 * servers (http_limits.h) and a small connection cap: scrapers are few. */
#include "metrics.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_limits.h"
#include "httpjson.h"
#include "runtime.h"

void metrics_reply(struct metrics *m, struct evhttp_request *req)
{
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        httpjson_error(req, 405, "invalid_request_error", NULL, "/metrics answers GET only");
        return;
    }
    size_t len = 0;
    char *text = metrics_render(m, &len);
    struct evbuffer *out = text != NULL ? evbuffer_new() : NULL;
    if (out == NULL || evbuffer_add(out, text, len) != 0 ||
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "text/plain; version=0.0.4; charset=utf-8") != 0)
        httpjson_error(req, 500, "internal_error", NULL, "out of memory rendering the metrics");
    else
        evhttp_send_reply(req, 200, "OK", out);
    if (out != NULL)
        evbuffer_free(out);
    free(text);
}

#define SCRAPERS_MAX 64 /* connections the metrics server holds at once */
#define SCRAPE_TIMEOUT_S 60 /* a body or an answer making no progress */

struct metrics_server {
    struct metrics *m;
    struct event_base *base;
    struct evhttp *http;
    struct http_limits *limits;
    pthread_t thread;
    bool started;
};

static void on_request(struct evhttp_request *req, void *arg)
{
    struct metrics_server *s = arg;
    if (!http_limits_admit_or_reply(s->limits, req))
        return;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (path == NULL || strcmp(path, "/metrics") != 0)
        httpjson_error(req, 404, "not_found_error", NULL, "Not found: only GET /metrics is served here");
    else
        metrics_reply(s->m, req);
}

static void *serve(void *arg)
{
    struct metrics_server *s = arg;
    event_base_dispatch(s->base);
    return NULL;
}

struct metrics_server *metrics_serve(struct metrics *m, const struct listen_addr *addr,
                                     char *err, size_t errlen)
{
    struct metrics_server *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->base = event_base_new()) == NULL ||
        (s->http = evhttp_new(s->base)) == NULL) {
        snprintf(err, errlen, "metrics: out of memory");
        metrics_server_free(s);
        return NULL;
    }
    s->m = m;
    static const struct config_http_limits lim = {
        HTTP_LIMITS_HEADER_BYTES, HTTP_LIMITS_HEADERS, SCRAPERS_MAX,
        HTTP_LIMITS_HEADER_TIMEOUT_MS, HTTP_LIMITS_IDLE_TIMEOUT_MS, HTTP_LIMITS_BODY_TIMEOUT_MS};
    struct http_limits_metrics hm;
    if (http_limits_declare(m, &hm) < 0) {
        snprintf(err, errlen, "metrics: out of memory declaring its connection metrics");
        metrics_server_free(s);
        return NULL;
    }
    s->limits = http_limits_new(s->http, s->base, &lim, "metrics", &hm, err, errlen);
    if (s->limits == NULL) {
        metrics_server_free(s);
        return NULL;
    }
    evhttp_set_timeout(s->http, SCRAPE_TIMEOUT_S);
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
    evhttp_set_gencb(s->http, on_request, s);
    if (evhttp_bind_socket(s->http, addr->host, (ev_uint16_t)addr->port) != 0) {
        snprintf(err, errlen, "metrics: cannot listen on %s:%d", addr->host, addr->port);
        metrics_server_free(s);
        return NULL;
    }
    if (runtime_thread_start(&s->thread, serve, s) != 0) {
        snprintf(err, errlen, "metrics: cannot start its thread");
        metrics_server_free(s);
        return NULL;
    }
    s->started = true;
    return s;
}

void metrics_server_free(struct metrics_server *s)
{
    if (s == NULL)
        return;
    if (s->started) {
        event_base_loopexit(s->base, NULL);
        pthread_join(s->thread, NULL);
    }
    if (s->http != NULL)
        evhttp_free(s->http);
    http_limits_free(s->limits); /* after its evhttp */
    if (s->base != NULL)
        event_base_free(s->base);
    free(s);
}
