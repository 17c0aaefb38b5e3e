/* call.h - one relayed request, from the client's body to the usage event. */
#ifndef PROXYD_CALL_H
#define PROXYD_CALL_H

#include <event2/http.h>
#include <stdint.h>
#include <time.h>

#include "proxy.h"

/* The OpenAI routes proxyd relays. */
enum call_kind { CALL_CHAT, CALL_COMPLETION, CALL_EMBEDDING, CALL_IMAGE };

/* Takes over req: authenticates, routes, relays and answers it. route is
 * the matched route pattern (a static string); path_model is the model
 * group named in an Azure-style path (/openai/deployments/{model}/...),
 * used when the body has no model. */
void call_start(struct proxy *px, struct evhttp_request *req, enum call_kind kind,
                const char *route, const char *path_model);

/* Microseconds since t0 (CLOCK_MONOTONIC). */
int64_t call_since_us(const struct timespec *t0);

#endif
