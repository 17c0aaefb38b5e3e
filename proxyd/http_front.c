/* http_front.c - proxyd's evhttp server and its route table.
 *
 * Clients keep HTTP/1.1 connections alive; an idle or too slow client is
 * closed after CLIENT_TIMEOUT_S. Bodies above max_body_bytes are refused
 * before they are read in full.
 */
#include "http_front.h"

#include <stdio.h>
#include <string.h>

#include "call.h"
#include "httpjson.h"

#define CLIENT_TIMEOUT_S 120 /* idle keep-alive and slow-client limit */

struct route {
    struct httpjson_route key; /* first: httpjson_find_route reads it */
    void (*handler)(struct proxy *px, struct evhttp_request *req);
};

static void chat(struct proxy *px, struct evhttp_request *req)
{
    call_start(px, req, CALL_CHAT);
}

static void liveliness(struct proxy *px, struct evhttp_request *req)
{
    (void)px;
    httpjson_reply(req, 200, json_string("I'm alive!"));
}

static const struct route ROUTES[] = {
    {{EVHTTP_REQ_POST, "/chat/completions"}, chat},
    {{EVHTTP_REQ_POST, "/v1/chat/completions"}, chat},
    {{EVHTTP_REQ_GET, "/health/liveliness"}, liveliness},
};

static void dispatch(struct evhttp_request *req, void *arg)
{
    const struct route *r = httpjson_find_route(req, ROUTES, sizeof(ROUTES) / sizeof(ROUTES[0]),
                                                sizeof(ROUTES[0]));
    if (r != NULL)
        r->handler(arg, req);
}

int http_front_start(struct proxy *px, char *err, size_t errlen)
{
    const struct listen_addr *l = &px->cfg->proxyd.listen;
    if ((px->http = evhttp_new(px->base)) == NULL) {
        snprintf(err, errlen, "evhttp_new failed");
        return -1;
    }
    evhttp_set_max_body_size(px->http, (ev_ssize_t)px->cfg->proxyd.max_body_bytes);
    evhttp_set_timeout(px->http, CLIENT_TIMEOUT_S);
    evhttp_set_allowed_methods(px->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                             EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD);
    evhttp_set_gencb(px->http, dispatch, px);
    if (evhttp_bind_socket(px->http, l->host, (ev_uint16_t)l->port) != 0) {
        snprintf(err, errlen, "cannot listen on %s:%d", l->host, l->port);
        return -1;
    }
    return 0;
}
