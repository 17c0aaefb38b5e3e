/* http_limits.h - what keeps an evhttp server's memory bounded and its
 * service fair under hostile clients (proxyd, reportd's workers, the
 * metrics servers): header size and count, a cap on open connections,
 * and deadlines for a request's headers and for idle keep-alive.
 *
 * One http_limits per evhttp, used from the thread of its event loop.
 * Requests in flight (dispatched to the server's callback, or being
 * answered, however long a stream lasts) are never cut by it.
 */
#ifndef TG_HTTP_LIMITS_H
#define TG_HTTP_LIMITS_H

#include <event2/event.h>
#include <event2/http.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct metrics;
struct http_limits;

/* The defaults of every server (tollgate.proxyd.* / tollgate.reportd.*). */
#define HTTP_LIMITS_HEADER_BYTES (32 * 1024) /* request line and headers, line ends included */
#define HTTP_LIMITS_HEADERS 100
#define HTTP_LIMITS_HEADER_TIMEOUT_MS 10000
#define HTTP_LIMITS_IDLE_TIMEOUT_MS 60000
#define HTTP_LIMITS_BODY_TIMEOUT_MS 60000 /* a 10 MB body at 170 kB/s */

/* The metrics the servers of one daemon share (http_limits_declare). */
struct http_limits_metrics {
    struct metrics *m; /* NULL: none */
    int closed;        /* tollgate_http_connections_closed_total{server,reason} */
    int open;          /* tollgate_http_connections_open{server} */
};

/* Declares the metrics once per daemon, before serving. -1 on error. */
int http_limits_declare(struct metrics *m, struct http_limits_metrics *out);

/* Takes charge of http's connections (evhttp_set_bevcb) and sets evhttp's
 * own header limit as a backstop above cfg's; call before serving. name
 * labels the log lines and metrics (copied); metrics may be NULL. NULL on
 * error (err). */
struct http_limits *http_limits_new(struct evhttp *http, struct event_base *base,
                                    const struct config_http_limits *cfg, const char *name,
                                    const struct http_limits_metrics *metrics, char *err,
                                    size_t errlen);

/* First thing in the server's request callback: notes that the request
 * arrived whole (its connection is busy until answered). false when its
 * headers are over the limits: it was answered 431 and its connection closes. */
bool http_limits_admit_or_reply(struct http_limits *hl, struct evhttp_request *req);

/* Frees hl after its evhttp (whose connections it no longer looks at). */
void http_limits_free(struct http_limits *hl);

#endif
