/* forward.c - relaying the control-plane paths to reportd.
 *
 * The request goes to tollgate.proxyd.reportd_url with its method, path,
 * query, body and the headers that matter (the key and the content type);
 * the answer comes back with its status, content type, body and the headers
 * a browser acts on (the Usage page's Content-Security-Policy, caching,
 * a download's file name). reportd does all the checking: proxyd only
 * carries bytes.
 */
#include "forward.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "httpjson.h"
#include "log.h"
#include "relay.h"
#include "stats.h"

#define FORWARD_TIMEOUT_MS 60000

static const char *const PREFIXES[] = {"/key/", "/team/", "/user/", "/customer/", "/end_user/",
                                       "/budget/", "/global/", "/spend/", "/ui/", NULL};
static const char *const EXACT[] = {"/get_budget", "/set_budget", "/ui", NULL};
/* The route label of each prefix (the path itself would let clients make series). */
static const char *const PREFIX_ROUTES[] = {"/key/*", "/team/*", "/user/*", "/customer/*",
                                            "/end_user/*", "/budget/*", "/global/*", "/spend/*",
                                            "/ui/*"};

/* One forwarded request, for its metrics once reportd answered. */
struct forward {
    struct proxy *px;
    struct evhttp_request *req;
    const char *route;
    struct timespec t0;
};

static const char *route_of(const char *path)
{
    for (size_t i = 0; PREFIXES[i] != NULL; i++)
        if (strncmp(path, PREFIXES[i], strlen(PREFIXES[i])) == 0)
            return PREFIX_ROUTES[i];
    for (size_t i = 0; EXACT[i] != NULL; i++)
        if (strcmp(path, EXACT[i]) == 0)
            return EXACT[i];
    return "other";
}
static const char *const PASSED_HEADERS[] = {"Authorization", "x-litellm-api-key", "api-key",
                                             "Content-Type", NULL};
/* reportd's answer headers that go back to the client (besides Content-Type). */
static const char *const ANSWER_HEADERS[] = {"Content-Security-Policy", "X-Content-Type-Options",
                                             "Referrer-Policy", "Cache-Control",
                                             "Content-Disposition", NULL};

bool forward_wanted(const char *path)
{
    return strcmp(route_of(path), "other") != 0;
}

/* Counts the answer (status) and lets go of the forward. */
static void forward_done(struct forward *f, int status)
{
    f->px->in_flight--;
    stats_request_done(f->px->stats, &(struct stats_request){
                                         .route = f->route, .status = status,
                                         .total_us = call_since_us(&f->t0), .upstream_us = -1,
                                         .ttfb_us = -1});
    free(f);
}

static const char *method_name(enum evhttp_cmd_type cmd)
{
    switch (cmd) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    default: return NULL;
    }
}

static void on_answer(struct relay_transfer *t, CURLcode result, void *arg)
{
    struct forward *f = arg;
    struct evhttp_request *req = f->req;
    if (result != CURLE_OK) {
        log_warn("forward to reportd failed: %s", t->errbuf[0] ? t->errbuf : curl_easy_strerror(result));
        httpjson_error(req, 502, "upstream_error", NULL, "reportd cannot be reached");
        forward_done(f, 502);
        return;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    if (evhttp_add_header(h, "Content-Type", t->content_type[0] ? t->content_type
                                                                 : "application/json") != 0)
        log_warn("cannot set Content-Type");
    for (size_t i = 0; ANSWER_HEADERS[i] != NULL; i++) {
        struct curl_header *v = NULL;
        if (curl_easy_header(t->easy, ANSWER_HEADERS[i], 0, CURLH_HEADER, -1, &v) == CURLHE_OK &&
            evhttp_add_header(h, ANSWER_HEADERS[i], v->value) != 0)
            log_warn("cannot pass reportd's %s header on", ANSWER_HEADERS[i]);
    }
    evhttp_send_reply(req, (int)t->status, NULL, t->response);
    forward_done(f, (int)t->status);
}

static struct curl_slist *copy_headers(struct evhttp_request *req)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    struct curl_slist *list = curl_slist_append(NULL, "Expect:");
    char line[8192];
    for (size_t i = 0; list != NULL && PASSED_HEADERS[i] != NULL; i++) {
        const char *v = evhttp_find_header(in, PASSED_HEADERS[i]);
        if (v == NULL)
            continue;
        snprintf(line, sizeof(line), "%s: %s", PASSED_HEADERS[i], v);
        struct curl_slist *more = curl_slist_append(list, line);
        if (more == NULL) {
            curl_slist_free_all(list);
            return NULL;
        }
        list = more;
    }
    return list;
}

void forward_to_reportd(struct proxy *px, struct evhttp_request *req)
{
    const char *method = method_name(evhttp_request_get_command(req));
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    size_t ulen = strlen(px->cfg->proxyd.reportd_url) + strlen(evhttp_request_get_uri(req)) + 1;
    char *url = malloc(ulen), *body = len > 0 ? malloc(len) : NULL;
    struct curl_slist *headers = copy_headers(req);
    struct forward *f = malloc(sizeof(*f));
    if (f != NULL) {
        const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
        *f = (struct forward){px, req, route_of(path != NULL ? path : ""), {0, 0}};
        clock_gettime(CLOCK_MONOTONIC, &f->t0);
        px->in_flight++;
    }
    if (method == NULL) {
        httpjson_error(req, 405, "invalid_request_error", NULL, "Method not allowed");
        goto fail;
    }
    if (f == NULL || url == NULL || headers == NULL || (len > 0 && body == NULL) ||
        (len > 0 && evbuffer_copyout(in, body, len) != (ev_ssize_t)len)) {
        httpjson_error(req, 500, "internal_error", NULL, "out of memory");
        goto fail;
    }
    snprintf(url, ulen, "%s%s", px->cfg->proxyd.reportd_url, evhttp_request_get_uri(req));
    struct relay_request rq = {.method = method, .url = url, .headers = headers, .body = body,
                               .body_len = len, .timeout_ms = FORWARD_TIMEOUT_MS,
                               .done = on_answer, .arg = f};
    if (relay_start(px->relay, &rq, NULL) < 0) {
        httpjson_error(req, 500, "internal_error", NULL, "cannot start the forward to reportd");
        goto fail;
    }
    free(url); /* libcurl copied it */
    return;
fail:
    if (f != NULL) /* answered here, in the request's own callback: its status is readable */
        forward_done(f, evhttp_request_get_response_code(req));
    free(url);
    free(body);
    curl_slist_free_all(headers);
}
