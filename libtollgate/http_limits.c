/* http_limits.c - bounded memory and fair service for an evhttp server
 * (see http_limits.h).
 *
 * DESIGN. libevent 2.1 has no connection cap, no header count limit and
 * only an inactivity timeout (which a client sending a byte now and then
 * never meets), and it answers a header block over its size limit with
 * its own HTML page. So the limits watch each connection themselves:
 *
 * - evhttp asks new_bev (evhttp_set_bevcb) for every accepted
 *   connection's bufferevent. We make it as evhttp would (no
 *   CLOSE_ON_FREE: evhttp closes the socket when it frees the connection)
 *   and hold a reference until on_accepted, which runs in the same loop
 *   pass, once evhttp has set it up: then the connection (the
 *   bufferevent's callback argument) and its socket are known. Past
 *   max_connections it is answered a short 503 and closed there.
 * - Connections are kept by socket number with the socket's inode:
 *   evhttp closes the socket when it frees a connection, so a socket
 *   number closed, or holding another inode, is a connection gone. The
 *   tick and a full table notice it; a new connection on the same number
 *   replaces it at once.
 * - A callback on the connection's input buffer sees every byte as it
 *   arrives, before evhttp parses it, and follows the header block to its
 *   empty line: past max_header_bytes or max_headers it drops what came
 *   and answers 431 in OpenAI's error shape (so evhttp's own limit, set
 *   above, is only a backstop) and closes; behind an answer still in
 *   flight on that connection (pipelined), what comes is dropped until the
 *   answer ends, and the tick refuses it then. Freeing a connection under
 *   a request the server holds would leave that request dangling.
 * - The tick (one timer, a quarter of the shorter timeout) closes a
 *   connection whose headers take longer than header_timeout_ms from
 *   their first byte (from the accept for a new connection), one whose
 *   body is not whole body_timeout_ms after its headers (a body dripped
 *   in keeps evhttp's inactivity timeout from ever firing), and one
 *   waiting for its next request longer than idle_timeout_ms. Whether
 *   evhttp is waiting for a request is read from the bufferevent: reading
 *   enabled with evhttp's read callback. While a request is dispatched or
 *   answered (a stream of any length) that is not so, and nothing is cut.
 *   A client that stops reading its answer is left to evhttp's own
 *   timeout (evhttp_set_timeout).
 */
#include "http_limits.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "clock.h"
#include "grow.h"
#include "httpjson.h"
#include "log.h"
#include "metrics.h"

#define TICK_MIN_MS 50
#define TICK_MAX_MS 1000
#define BURST_QUIET_MS 10000 /* a refusal after this long without one starts a new burst */
#define UNREAD_MAX 65536     /* what a refused connection's request may leave unread */

enum phase {
    PH_HEADERS,    /* the request line and headers are arriving: deadline running */
    PH_BODY,       /* its empty line came: the body is evhttp's, within its deadline */
    PH_DISPATCHED, /* the server has it; bytes after this start the next request */
};

struct conn {
    struct http_limits *hl;
    struct evhttp_connection *evcon;
    struct bufferevent *bev;
    dev_t dev;
    ino_t ino;
    enum phase phase;
    int64_t since_ms; /* PH_HEADERS, PH_BODY: when its deadline started */
    int64_t idle_ms;  /* PH_DISPATCHED: when first seen waiting for a request; 0: not yet */
    size_t bytes;     /* of the header block so far */
    int lines;
    int eol;          /* 0 in a line, 1 after its LF, 2 after LF CR (an empty line may follow) */
    bool over;        /* over a header limit: answered and closed by on_over */
};

struct http_limits {
    struct evhttp *http;
    struct event_base *base;
    struct config_http_limits cfg;
    char name[32];
    struct http_limits_metrics metrics;
    struct conn **by_fd; /* indexed by socket number */
    size_t n_fd;
    int open;
    struct bufferevent **accepted; /* made by new_bev, not yet seen by on_accepted */
    size_t n_accepted, cap_accepted;
    struct conn **over; /* over a header limit, for on_over */
    size_t n_over, cap_over;
    struct event *accepted_ev, *over_ev, *tick;
    int64_t burst_ms; /* last refusal at the cap */
    uint64_t burst_refused;
};

static void count_closed(struct http_limits *hl, const char *reason)
{
    if (hl->metrics.m != NULL)
        metrics_add(hl->metrics.m, hl->metrics.closed, METRICS_LABELS(hl->name, reason), 1);
}

static bool same_socket(int fd, const struct conn *c)
{
    struct stat st;
    return fstat(fd, &st) == 0 && st.st_ino == c->ino && st.st_dev == c->dev;
}

/* Forgets the connection on fd (gone, or closed here). */
static void forget(struct http_limits *hl, int fd)
{
    struct conn *c = hl->by_fd[fd];
    for (size_t i = 0; i < hl->n_over; i++)
        if (hl->over[i] == c)
            hl->over[i] = NULL;
    free(c);
    hl->by_fd[fd] = NULL;
    hl->open--;
}

static void close_conn(struct http_limits *hl, int fd, const char *reason)
{
    evhttp_connection_free(hl->by_fd[fd]->evcon); /* closes fd */
    forget(hl, fd);
    count_closed(hl, reason);
}

/* Sends a whole HTTP answer straight on the socket of a connection about
 * to be closed; what the client sent so far is read first, so that the
 * close is a FIN after the answer rather than a reset. Best effort. */
static void answer_raw(int fd, int status, const char *reason, const char *type,
                       const char *message)
{
    char body[512], head[256], sink[4096];
    int blen = snprintf(body, sizeof(body),
                        "{\"error\":{\"message\":\"%s\",\"type\":\"%s\",\"param\":null,"
                        "\"code\":\"%d\"}}",
                        message, type, status);
    int hlen = snprintf(head, sizeof(head),
                        "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                        "Content-Length: %d\r\nConnection: close\r\n%s\r\n",
                        status, reason, blen, status == 503 ? "Retry-After: 1\r\n" : "");
    for (size_t got = 0; got < UNREAD_MAX;) {
        ssize_t n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    struct iovec v[2] = {{head, (size_t)hlen}, {body, (size_t)blen}};
    struct msghdr msg = {.msg_iov = v, .msg_iovlen = 2};
    if (sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno != EPIPE &&
        errno != ECONNRESET)
        log_debug("cannot answer %d on a connection being closed: %s", status, strerror(errno));
}

/* Marks c over a header limit: what came is dropped (evhttp never parses
 * it) and on_over answers and closes, out of this buffer's callback. */
static void mark_over(struct conn *c, struct evbuffer *buf)
{
    struct http_limits *hl = c->hl;
    struct conn **over = grow_array(hl->over, &hl->cap_over, hl->n_over + 1, sizeof(*over), 8);
    if (over == NULL) /* evhttp's own limit, above ours, still stops it */
        return;
    hl->over = over;
    hl->over[hl->n_over++] = c;
    c->over = true; /* from now on_input drops what comes */
    if (evbuffer_drain(buf, evbuffer_get_length(buf)) != 0)
        log_debug("%s: cannot drop a request over the header limits", hl->name);
    event_active(hl->over_ev, EV_TIMEOUT, 0);
}

/* Follows n bytes of the header block to its empty line; false past a limit. */
static bool scan(struct conn *c, const unsigned char *p, size_t n)
{
    const struct config_http_limits *cfg = &c->hl->cfg;
    for (const unsigned char *end = p + n; p < end && c->phase == PH_HEADERS; p++) {
        if (*p == '\n' && c->eol != 0) {
            c->phase = PH_BODY;
            c->since_ms = clock_ms(); /* the body's deadline starts */
        } else if (*p == '\n') {
            c->lines++;
            c->eol = 1;
        } else {
            c->eol = *p == '\r' && c->eol == 1 ? 2 : 0;
        }
        if (++c->bytes > cfg->max_header_bytes || c->lines > cfg->max_headers + 1)
            return false;
    }
    return true;
}

/* The connection's input as it arrives, before evhttp parses it. */
static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct conn *c = arg;
    size_t len = evbuffer_get_length(buf);
    if (info->n_added == 0 || info->n_added > len || c->phase == PH_BODY)
        return;
    if (c->over) { /* waits for its answer in flight to end: what comes is dropped */
        if (evbuffer_drain(buf, len) != 0)
            log_debug("%s: cannot drop input over the header limits", c->hl->name);
        return;
    }
    if (c->phase == PH_DISPATCHED) { /* the next request's first bytes */
        c->phase = PH_HEADERS;
        c->since_ms = clock_ms();
        c->bytes = 0;
        c->lines = c->eol = 0;
    }
    struct evbuffer_ptr at;
    struct evbuffer_iovec v[16];
    if (evbuffer_ptr_set(buf, &at, len - info->n_added, EVBUFFER_PTR_SET) != 0)
        return;
    int n = evbuffer_peek(buf, (ev_ssize_t)info->n_added, &at, v, 16);
    size_t left = info->n_added;
    for (int i = 0; i < n && i < 16 && left > 0 && c->phase == PH_HEADERS; i++) {
        size_t take = v[i].iov_len < left ? v[i].iov_len : left;
        left -= take;
        if (!scan(c, v[i].iov_base, take)) {
            mark_over(c, buf);
            return;
        }
    }
}

static bool waiting_for_request(struct conn *c);

/* Answers 431 to a connection over a header limit and closes it, unless an
 * answer is in flight on it (a pipelined request behind a stream): that is
 * never cut, so the tick comes back once it has ended. */
static void refuse_headers(struct http_limits *hl, int fd)
{
    char msg[160];
    if (!waiting_for_request(hl->by_fd[fd]))
        return;
    snprintf(msg, sizeof(msg),
             "Request headers too large: at most %zu bytes and %d headers are accepted",
             hl->cfg.max_header_bytes, hl->cfg.max_headers);
    answer_raw(fd, 431, "Request Header Fields Too Large", "invalid_request_error", msg);
    close_conn(hl, fd, "headers_too_large");
}

/* The connections marked over a header limit in this loop pass. */
static void on_over(evutil_socket_t unused, short what, void *arg)
{
    struct http_limits *hl = arg;
    (void)unused;
    (void)what;
    for (size_t i = 0; i < hl->n_over; i++)
        if (hl->over[i] != NULL)
            refuse_headers(hl, bufferevent_getfd(hl->over[i]->bev));
    hl->n_over = 0;
}

/* evhttp's bufferevent for a connection it accepted (evhttp_set_bevcb). */
static struct bufferevent *new_bev(struct event_base *base, void *arg)
{
    struct http_limits *hl = arg;
    struct bufferevent *bev = bufferevent_socket_new(base, -1, 0);
    struct bufferevent **acc = bev == NULL ? NULL
                                           : grow_array(hl->accepted, &hl->cap_accepted,
                                                        hl->n_accepted + 1, sizeof(*acc), 16);
    if (acc == NULL) {
        log_error("%s: out of memory: a connection goes unwatched", hl->name);
        return bev;
    }
    hl->accepted = acc;
    bufferevent_incref(bev); /* until on_accepted looks at it */
    hl->accepted[hl->n_accepted++] = bev;
    event_active(hl->accepted_ev, EV_TIMEOUT, 0);
    return bev;
}

/* Forgets the connections whose socket closed since last looked at. */
static void reap(struct http_limits *hl)
{
    for (size_t fd = 0; fd < hl->n_fd; fd++)
        if (hl->by_fd[fd] != NULL && !same_socket((int)fd, hl->by_fd[fd]))
            forget(hl, (int)fd);
}

static void refuse(struct http_limits *hl, struct evhttp_connection *evcon, int fd)
{
    char msg[160];
    int64_t now = clock_ms();
    if (hl->burst_refused == 0 || now - hl->burst_ms > BURST_QUIET_MS)
        log_warn("%s: %d connections open, its max_connections: refusing new ones with 503",
                 hl->name, hl->open);
    hl->burst_ms = now;
    hl->burst_refused++;
    snprintf(msg, sizeof(msg), "Too many connections: this server holds at most %d; retry shortly",
             hl->cfg.max_connections);
    answer_raw(fd, 503, "Service Unavailable", "service_unavailable", msg);
    evhttp_connection_free(evcon);
    count_closed(hl, "connection_cap");
}

/* Takes a connection evhttp set up: refused past the cap, else watched. */
static void watch(struct http_limits *hl, struct bufferevent *bev, struct evhttp_connection *evcon,
                  int fd)
{
    struct stat st;
    if (hl->open >= hl->cfg.max_connections)
        reap(hl);
    if (hl->open >= hl->cfg.max_connections) {
        refuse(hl, evcon, fd);
        return;
    }
    if ((size_t)fd >= hl->n_fd) {
        size_t n = hl->n_fd;
        struct conn **t = grow_array(hl->by_fd, &n, (size_t)fd + 1, sizeof(*t), 256);
        if (t == NULL)
            goto unwatched;
        memset(t + hl->n_fd, 0, (n - hl->n_fd) * sizeof(*t));
        hl->by_fd = t;
        hl->n_fd = n;
    }
    if (hl->by_fd[fd] != NULL) /* its socket closed: the number came back */
        forget(hl, fd);
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL || fstat(fd, &st) != 0 ||
        evbuffer_add_cb(bufferevent_get_input(bev), on_input, c) == NULL) {
        free(c);
        goto unwatched;
    }
    *c = (struct conn){.hl = hl, .evcon = evcon, .bev = bev, .dev = st.st_dev, .ino = st.st_ino,
                       .phase = PH_HEADERS, .since_ms = clock_ms()};
    hl->by_fd[fd] = c;
    hl->open++;
    return;
unwatched:
    log_error("%s: out of memory: a connection goes unwatched", hl->name);
}

/* The connections accepted in this loop pass, now that evhttp set them up
 * (a freed one has no callback argument left). */
static void on_accepted(evutil_socket_t unused, short what, void *arg)
{
    struct http_limits *hl = arg;
    (void)unused;
    (void)what;
    for (size_t i = 0; i < hl->n_accepted; i++) {
        struct bufferevent *bev = hl->accepted[i];
        void *evcon = NULL;
        bufferevent_getcb(bev, NULL, NULL, NULL, &evcon);
        int fd = bufferevent_getfd(bev);
        if (evcon != NULL && fd >= 0)
            watch(hl, bev, evcon, fd);
        bufferevent_decref(bev);
    }
    hl->n_accepted = 0;
}

/* evhttp waits for (the rest of) a request: reading, with its read callback
 * (while it answers, the callback is unset; while the server has the
 * request, reading is off). */
static bool waiting_for_request(struct conn *c)
{
    bufferevent_data_cb readcb = NULL;
    bufferevent_getcb(c->bev, &readcb, NULL, NULL, NULL);
    return readcb != NULL && (bufferevent_get_enabled(c->bev) & EV_READ);
}

/* Deadlines of one connection: the header block, the body, and idle keep-alive. */
static void check_deadlines(struct http_limits *hl, int fd, int64_t now)
{
    struct conn *c = hl->by_fd[fd];
    if (c->over) {
        refuse_headers(hl, fd);
        return;
    }
    if (!waiting_for_request(c)) {
        c->idle_ms = 0;
        if (c->phase == PH_HEADERS) /* the next request's bytes came early: its time starts later */
            c->since_ms = now;
        return;
    }
    if (c->phase == PH_HEADERS && now - c->since_ms >= hl->cfg.header_timeout_ms) {
        close_conn(hl, fd, "header_timeout");
    } else if (c->phase == PH_BODY && now - c->since_ms >= hl->cfg.body_timeout_ms) {
        close_conn(hl, fd, "body_timeout"); /* a body dripped in: slowloris after the headers */
    } else if (c->phase == PH_DISPATCHED) {
        if (c->idle_ms == 0)
            c->idle_ms = now;
        else if (now - c->idle_ms >= hl->cfg.idle_timeout_ms)
            close_conn(hl, fd, "idle_timeout");
    }
}

static void on_tick(evutil_socket_t unused, short what, void *arg)
{
    struct http_limits *hl = arg;
    int64_t now = clock_ms();
    (void)unused;
    (void)what;
    for (size_t fd = 0; fd < hl->n_fd; fd++) {
        if (hl->by_fd[fd] == NULL)
            continue;
        if (!same_socket((int)fd, hl->by_fd[fd]))
            forget(hl, (int)fd);
        else
            check_deadlines(hl, (int)fd, now);
    }
    if (hl->burst_refused > 0 && now - hl->burst_ms > BURST_QUIET_MS) {
        log_info("%s: no refusal for %d s: %" PRIu64 " connections were refused at the cap",
                 hl->name, BURST_QUIET_MS / 1000, hl->burst_refused);
        hl->burst_refused = 0;
    }
    if (hl->metrics.m != NULL)
        metrics_set(hl->metrics.m, hl->metrics.open, METRICS_LABELS(hl->name), hl->open);
}

bool http_limits_admit_or_reply(struct http_limits *hl, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
    int fd = bev != NULL ? bufferevent_getfd(bev) : -1;
    struct conn *c = fd >= 0 && (size_t)fd < hl->n_fd ? hl->by_fd[fd] : NULL;
    if (c != NULL && c->evcon == evcon) {
        c->phase = PH_DISPATCHED;
        c->idle_ms = 0;
    }
    /* a request the byte watch missed (pipelined behind another) */
    size_t bytes = 0;
    int n = 0;
    struct evkeyval *h;
    for (h = evhttp_request_get_input_headers(req)->tqh_first; h != NULL; h = h->next.tqe_next) {
        n++;
        bytes += strlen(h->key) + strlen(h->value) + 4;
    }
    if (n <= hl->cfg.max_headers && bytes <= hl->cfg.max_header_bytes)
        return true;
    if (evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close") != 0)
        log_warn("%s: cannot add Connection: close", hl->name);
    httpjson_error(req, 431, "invalid_request_error", NULL,
                   "Request headers too large: at most %zu bytes and %d headers are accepted",
                   hl->cfg.max_header_bytes, hl->cfg.max_headers);
    count_closed(hl, "headers_too_large");
    return false;
}

int http_limits_declare(struct metrics *m, struct http_limits_metrics *out)
{
    out->m = m;
    out->closed = metrics_counter(m, "tollgate_http_connections_closed_total",
                                  "Client connections the server refused or closed to protect "
                                  "itself (connection_cap, headers_too_large, header_timeout, "
                                  "idle_timeout)",
                                  "server,reason");
    out->open = metrics_gauge(m, "tollgate_http_connections_open",
                              "Client connections open (at the last tick)", "server");
    return out->closed < 0 || out->open < 0 ? -1 : 0;
}

struct http_limits *http_limits_new(struct evhttp *http, struct event_base *base,
                                    const struct config_http_limits *cfg, const char *name,
                                    const struct http_limits_metrics *metrics, char *err,
                                    size_t errlen)
{
    struct http_limits *hl = calloc(1, sizeof(*hl));
    int shorter = cfg->header_timeout_ms < cfg->idle_timeout_ms ? cfg->header_timeout_ms
                                                                : cfg->idle_timeout_ms;
    if (cfg->body_timeout_ms < shorter)
        shorter = cfg->body_timeout_ms;
    int every = shorter / 4 < TICK_MIN_MS ? TICK_MIN_MS : shorter / 4 > TICK_MAX_MS ? TICK_MAX_MS
                                                                                    : shorter / 4;
    struct timeval tv = {every / 1000, (every % 1000) * 1000};
    if (hl == NULL || (hl->accepted_ev = event_new(base, -1, 0, on_accepted, hl)) == NULL ||
        (hl->over_ev = event_new(base, -1, 0, on_over, hl)) == NULL ||
        (hl->tick = event_new(base, -1, EV_PERSIST, on_tick, hl)) == NULL ||
        event_add(hl->tick, &tv) != 0) {
        snprintf(err, errlen, "%s: out of memory setting up its connection limits", name);
        http_limits_free(hl);
        return NULL;
    }
    hl->http = http;
    hl->base = base;
    hl->cfg = *cfg;
    snprintf(hl->name, sizeof(hl->name), "%s", name);
    if (metrics != NULL)
        hl->metrics = *metrics;
    /* evhttp's own limit (an HTML 400) only for what the byte watch misses */
    evhttp_set_max_headers_size(http, (ev_ssize_t)(2 * cfg->max_header_bytes));
    evhttp_set_bevcb(http, new_bev, hl);
    return hl;
}

void http_limits_free(struct http_limits *hl)
{
    if (hl == NULL)
        return;
    for (size_t i = 0; i < hl->n_accepted; i++)
        bufferevent_decref(hl->accepted[i]);
    for (size_t fd = 0; fd < hl->n_fd; fd++)
        free(hl->by_fd[fd]);
    if (hl->accepted_ev != NULL)
        event_free(hl->accepted_ev);
    if (hl->over_ev != NULL)
        event_free(hl->over_ev);
    if (hl->tick != NULL)
        event_free(hl->tick);
    free(hl->by_fd);
    free(hl->accepted);
    free(hl->over);
    free(hl);
}
