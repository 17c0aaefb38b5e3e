/* reply.c - a relayed call's answer written by copies (see reply.h).
 *
 * evhttp keeps a response's headers as a list of three allocations each and
 * writes each with a printf when the head goes out. A relayed answer
 * carries ten to twenty of them (x-litellm-*, and ten x-ratelimit-* for a
 * limited key), which made them about a tenth of a request's instructions:
 * a rate-limited key cost 11 % more than an unlimited one, all of it there.
 * So a call collects its headers as ready lines, and its answer (status
 * line, Date, Content-Length, the lines, the body) goes into the
 * connection's output buffer as evhttp_send_reply would put it there. The
 * request is then finished by evhttp_send_reply_end, which without a
 * chunked start waits for the output to drain and completes the request as
 * evhttp completes its own: keep-alive, the next request on the
 * connection, closing when the request (or a drain's Connection: close
 * among the output headers) asks it.
 */
#include "reply.h"

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "grow.h"
#include "log.h"
#include "numtext.h"

#define DATE_LINE_MAX 64


int reply_head_add(struct reply_head *h, const char *name, const char *value)
{
    size_t n = strlen(name), v = strlen(value);
    char *buf;
    if (strpbrk(name, ":\r\n") != NULL || strpbrk(value, "\r\n") != NULL ||
        (buf = grow_array(h->buf, &h->cap, h->len + n + v + 4, 1, 512)) == NULL)
        return -1;
    h->buf = buf;
    char *p = h->buf + h->len;
    memcpy(p, name, n);
    memcpy(p + n, ": ", 2);
    memcpy(p + n + 2, value, v);
    memcpy(p + n + 2 + v, "\r\n", 2);
    h->len += n + v + 4;
    return 0;
}

void reply_head_to_evhttp(struct reply_head *h, struct evhttp_request *req)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    char *p = h->buf, *end = h->buf + h->len;
    while (p < end) { /* the buffer holds whole lines, and no name a ':' nor value a '\r' */
        char *colon = memchr(p, ':', (size_t)(end - p));
        char *eol = colon != NULL ? memchr(colon, '\r', (size_t)(end - colon)) : NULL;
        if (eol == NULL)
            break;
        *colon = '\0';
        *eol = '\0';
        if (evhttp_add_header(out, p, colon + 2) != 0)
            log_warn("cannot add header %s", p);
        p = eol + 2;
    }
    h->len = 0;
}

void reply_head_free(struct reply_head *h)
{
    free(h->buf);
    *h = (struct reply_head){0};
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

/* "Date: ...\r\n" as evhttp writes it, formatted once a second (the loop's
 * thread only). */
static size_t date_line(const char **line)
{
    static char buf[DATE_LINE_MAX] = "Date: ";
    static size_t len;
    static time_t at = -1;
    time_t now = time(NULL);
    struct tm tm;
    if (now != at && gmtime_r(&now, &tm) != NULL) {
        int n = evutil_date_rfc1123(buf + 6, sizeof(buf) - 8, &tm);
        if (n > 0 && (size_t)n < sizeof(buf) - 8) {
            memcpy(buf + 6 + n, "\r\n", 2);
            len = 6 + (size_t)n + 2;
            at = now;
        }
    }
    *line = buf;
    return at == now ? len : 0;
}

static int put(struct evbuffer *out, const char *s, size_t n)
{
    return evbuffer_add(out, s, n);
}

/* The status line, Date, Content-Length and Connection. */
static int put_start(struct evbuffer *out, struct evhttp_request *req, int status, size_t length)
{
    char line[64], num[NUMTEXT_MAX];
    const char *date, *conn = evhttp_find_header(evhttp_request_get_input_headers(req),
                                                 "Connection");
    size_t n = 9, d = date_line(&date);
    memcpy(line, "HTTP/1.1 ", 9);
    n += numtext_i64(line + n, status);
    line[n++] = ' ';
    const char *why = reason(status);
    memcpy(line + n, why, strlen(why));
    n += strlen(why);
    memcpy(line + n, "\r\n", 2);
    n += 2;
    size_t l = numtext_i64(num, (int64_t)length);
    int rc = put(out, line, n) | put(out, date, d) | put(out, "Content-Length: ", 16) |
             put(out, num, l) | put(out, "\r\n", 2);
    if (evhttp_find_header(evhttp_request_get_output_headers(req), "Connection") != NULL)
        return rc; /* set by proxyd itself (draining): written with the others */
    if (conn != NULL && strcasecmp(conn, "close") == 0)
        rc |= put(out, "Connection: close\r\n", 19);
    else if (conn != NULL && strncasecmp(conn, "keep-alive", 10) == 0)
        rc |= put(out, "Connection: keep-alive\r\n", 24); /* an HTTP/1.0 client's wish */
    return rc;
}

/* The output headers others gave evhttp (Connection: close while draining,
 * Retry-After, ...), each as a line. */
static int put_evhttp_headers(struct evbuffer *out, struct evhttp_request *req)
{
    const struct evkeyval *kv;
    int rc = 0;
    for (kv = evhttp_request_get_output_headers(req)->tqh_first; kv != NULL;
         kv = kv->next.tqe_next)
        rc |= put(out, kv->key, strlen(kv->key)) | put(out, ": ", 2) |
              put(out, kv->value, strlen(kv->value)) | put(out, "\r\n", 2);
    return rc;
}

void reply_send(struct evhttp_request *req, int status, struct reply_head *h,
                struct evbuffer *body)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    struct bufferevent *bev = conn != NULL ? evhttp_connection_get_bufferevent(conn) : NULL;
    size_t length = body != NULL ? evbuffer_get_length(body) : 0;
    if (bev == NULL) { /* the client has gone: evhttp only frees the request */
        h->len = 0;
        evhttp_send_reply_end(req);
        return;
    }
    if (status < 200 || status == 204 || status == 304) { /* no body: evhttp's rules */
        reply_head_to_evhttp(h, req);
        evhttp_send_reply(req, status, NULL, body);
        return;
    }
    struct evbuffer *out = bufferevent_get_output(bev);
    bufferevent_data_cb read_cb, write_cb;
    bufferevent_event_cb event_cb;
    void *arg;
    if (put_start(out, req, status, length) != 0 || put_evhttp_headers(out, req) != 0 ||
        (h->len > 0 && put(out, h->buf, h->len) != 0) || put(out, "\r\n", 2) != 0 ||
        (body != NULL && evbuffer_add_buffer(out, body) != 0))
        log_warn("out of memory writing an answer: the client gets it cut short");
    h->len = 0;
    /* as evhttp does once a reply is in the output: no reading but for a
     * close, writing on; evhttp's write callback then completes the request */
    bufferevent_getcb(bev, &read_cb, &write_cb, &event_cb, &arg);
    bufferevent_setcb(bev, NULL, write_cb, event_cb, arg);
    if (bufferevent_enable(bev, EV_READ | EV_WRITE) != 0)
        log_warn("cannot start writing an answer");
    evhttp_send_reply_end(req);
}
