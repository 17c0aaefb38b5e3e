/* call.h - one relayed request, from the client's body to the usage event. */
#ifndef PROXYD_CALL_H
#define PROXYD_CALL_H

#include <event2/http.h>

#include "proxy.h"

/* The OpenAI routes proxyd relays; the value names the upstream path. */
enum call_kind { CALL_CHAT };

/* Takes over req: authenticates, routes, relays and answers it. */
void call_start(struct proxy *px, struct evhttp_request *req, enum call_kind kind);

#endif
