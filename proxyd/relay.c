/* relay.c - libcurl multi on libevent (the "hiperfifo" design).
 *
 * curl tells us which sockets it wants watched (socket_cb) and when its
 * next timeout is (timer_cb); libevent tells curl when a socket is ready
 * (on_socket) or the timer fired (on_timeout). Finished transfers are
 * collected in check_done. Connections to upstreams are kept alive in the
 * multi handle's connection pool and reused across requests.
 */
#include "relay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

#define MAX_UPSTREAM_CONNECTIONS 1024 /* pool size across all upstreams */
/* curl's receive buffer for streamed answers (its default is 16 KiB a
 * transfer). SSE events are a few hundred bytes, and a thousand streams
 * held open is what proxyd's memory is made of. */
#define STREAM_BUFFER_BYTES 4096L

struct relay {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    int running;
    struct relay_transfer *active; /* list of transfers in flight */
};

/* Per-socket watch, assigned to curl's socket with curl_multi_assign. */
struct sockwatch {
    struct event *ev;
};

/* Detaches t from curl and the list, reports result, frees t. */
static void transfer_finish(struct relay *r, struct relay_transfer *t, CURLcode result)
{
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
    curl_multi_remove_handle(r->multi, t->easy);
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        r->active = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    t->done(t, result, t->arg);
    curl_easy_cleanup(t->easy);
    curl_slist_free_all(t->headers);
    evbuffer_free(t->response);
    free(t->body);
    free(t);
}

static void check_done(struct relay *r)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(r->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct relay_transfer *t = NULL;
        CURLcode result = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        transfer_finish(r, t, result);
    }
}

static void on_socket(evutil_socket_t fd, short what, void *arg)
{
    struct relay *r = arg;
    int action = ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    curl_multi_socket_action(r->multi, fd, action, &r->running);
    check_done(r); /* may start new transfers (retries): curl's timer is theirs now */
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct relay *r = arg;
    (void)fd;
    (void)what;
    curl_multi_socket_action(r->multi, CURL_SOCKET_TIMEOUT, 0, &r->running);
    check_done(r);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *arg)
{
    struct relay *r = arg;
    (void)multi;
    if (timeout_ms < 0)
        return evtimer_del(r->timer) == 0 ? 0 : -1;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    return evtimer_add(r->timer, &tv) == 0 ? 0 : -1;
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *arg, void *sockp)
{
    struct relay *r = arg;
    struct sockwatch *w = sockp;
    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (w != NULL) {
            event_free(w->ev);
            free(w);
            curl_multi_assign(r->multi, s, NULL);
        }
        return 0;
    }
    short kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) |
                         ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
    if (w == NULL) {
        if ((w = calloc(1, sizeof(*w))) == NULL)
            return -1;
        curl_multi_assign(r->multi, s, w);
    } else {
        event_free(w->ev);
    }
    w->ev = event_new(r->base, s, kind, on_socket, r);
    if (w->ev == NULL || event_add(w->ev, NULL) != 0)
        return -1;
    return 0;
}

struct relay *relay_new(struct event_base *base, char *err, size_t errlen)
{
    struct relay *r = calloc(1, sizeof(*r));
    if (r == NULL || (r->multi = curl_multi_init()) == NULL ||
        (r->timer = evtimer_new(base, on_timeout, r)) == NULL) {
        snprintf(err, errlen, "cannot set up libcurl multi");
        relay_free(r);
        return NULL;
    }
    r->base = base;
    if (curl_multi_setopt(r->multi, CURLMOPT_SOCKETFUNCTION, socket_cb) != CURLM_OK ||
        curl_multi_setopt(r->multi, CURLMOPT_SOCKETDATA, r) != CURLM_OK ||
        curl_multi_setopt(r->multi, CURLMOPT_TIMERFUNCTION, timer_cb) != CURLM_OK ||
        curl_multi_setopt(r->multi, CURLMOPT_TIMERDATA, r) != CURLM_OK ||
        curl_multi_setopt(r->multi, CURLMOPT_MAXCONNECTS, (long)MAX_UPSTREAM_CONNECTIONS) != CURLM_OK) {
        snprintf(err, errlen, "cannot configure libcurl multi");
        relay_free(r);
        return NULL;
    }
    return r;
}

void relay_free(struct relay *r)
{
    if (r == NULL)
        return;
    relay_cancel_all(r);
    if (r->multi != NULL)
        curl_multi_cleanup(r->multi);
    if (r->timer != NULL)
        event_free(r->timer);
    free(r);
}

void relay_cancel_all(struct relay *r)
{
    while (r->active != NULL)
        transfer_finish(r, r->active, CURLE_ABORTED_BY_CALLBACK);
}

void relay_cancel(struct relay_transfer *t)
{
    transfer_finish(t->relay, t, CURLE_ABORTED_BY_CALLBACK);
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct relay_transfer *t = arg;
    size_t len = size * n;
    if (t->on_data == NULL)
        return evbuffer_add(t->response, data, len) == 0 ? len : 0;
    if (t->status == 0)
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
    return t->on_data(t, data, len, t->arg) == 0 ? len : 0;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    struct relay_transfer *t = arg;
    size_t len = size * n;
    static const char ct[] = "content-type:";
    if (len > sizeof(ct) && strncasecmp(data, ct, sizeof(ct) - 1) == 0) {
        const char *v = data + sizeof(ct) - 1;
        size_t vlen = len - (sizeof(ct) - 1);
        while (vlen > 0 && (*v == ' ' || *v == '\t'))
            v++, vlen--;
        while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
            vlen--;
        snprintf(t->content_type, sizeof(t->content_type), "%.*s", (int)vlen, v);
    }
    return len;
}

static int set_method(CURL *e, const struct relay_request *rq)
{
    if (strcmp(rq->method, "GET") == 0)
        return curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) == CURLE_OK ? 0 : -1;
    if (curl_easy_setopt(e, CURLOPT_POSTFIELDS, rq->body != NULL ? rq->body : "") != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len) != CURLE_OK)
        return -1;
    if (strcmp(rq->method, "POST") != 0 &&
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, rq->method) != CURLE_OK)
        return -1;
    return 0;
}

static int configure(struct relay_transfer *t, const struct relay_request *rq)
{
    CURL *e = t->easy;
    if (curl_easy_setopt(e, CURLOPT_URL, rq->url) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, rq->headers) != CURLE_OK ||
        set_method(e, rq) < 0 ||
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEDATA, t) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_HEADERDATA, t) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_PRIVATE, t) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, rq->timeout_ms) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, rq->idle_timeout_s > 0 ? 1L : 0L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, rq->idle_timeout_s) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
        (rq->ca_file != NULL && curl_easy_setopt(e, CURLOPT_CAINFO, rq->ca_file) != CURLE_OK) ||
        (rq->tls_unchecked && (curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L) != CURLE_OK ||
                               curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L) != CURLE_OK)) ||
        (rq->on_data != NULL &&
         curl_easy_setopt(e, CURLOPT_BUFFERSIZE, STREAM_BUFFER_BYTES) != CURLE_OK))
        return -1;
    return 0;
}

int relay_start(struct relay *r, struct relay_request *rq, struct relay_transfer **out)
{
    struct relay_transfer *t = calloc(1, sizeof(*t));
    if (t == NULL || (t->response = evbuffer_new()) == NULL || (t->easy = curl_easy_init()) == NULL)
        goto fail;
    t->relay = r;
    t->on_data = rq->on_data;
    t->done = rq->done;
    t->arg = rq->arg;
    if (configure(t, rq) < 0 || curl_multi_add_handle(r->multi, t->easy) != CURLM_OK)
        goto fail;
    t->headers = rq->headers;
    t->body = rq->body;
    t->next = r->active;
    if (r->active != NULL)
        r->active->prev = t;
    r->active = t;
    if (out != NULL)
        *out = t;
    return 0;
fail:
    if (t != NULL) {
        if (t->easy != NULL)
            curl_easy_cleanup(t->easy);
        if (t->response != NULL)
            evbuffer_free(t->response);
        free(t);
    }
    return -1;
}
