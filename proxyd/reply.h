/* reply.h - a relayed call's answer headers, kept as ready lines, and the
 * whole answer written to the client's connection by copies (reply.c).
 */
#ifndef PROXYD_REPLY_H
#define PROXYD_REPLY_H

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdbool.h>
#include <stddef.h>

/* "name: value\r\n" lines, in the order added. Zeroed: empty. */
struct reply_head {
    char *buf;
    size_t len, cap;
};

/* Adds a header line. -1 (nothing added): a CR or LF in the name or value
 * (a client's text must not make headers of its own), a ':' in the name,
 * or out of memory. */
int reply_head_add(struct reply_head *h, const char *name, const char *value);

/* Hands the lines to evhttp (the request's output headers) and empties h:
 * for the answers evhttp writes itself (streams, errors). */
void reply_head_to_evhttp(struct reply_head *h, struct evhttp_request *req);

void reply_head_free(struct reply_head *h);

/* Answers req: status line, Date, Content-Length, Connection as the
 * request asks, the request's evhttp output headers, h's lines, then the
 * body (moved out of `body`; NULL: none). evhttp then finishes the request
 * as it does its own (keep-alive, the next request). A request whose
 * client has gone is only freed. h is emptied. */
void reply_send(struct evhttp_request *req, int status, struct reply_head *h,
                struct evbuffer *body);

#endif
