/* call.h - one relayed request, from the client's body to the usage event. */
#ifndef PROXYD_CALL_H
#define PROXYD_CALL_H

#include <event2/http.h>
#include <stdint.h>
#include <time.h>

#include "proxy.h"

#include "protocol.h"

/* Takes over req: authenticates, routes, relays and answers it. route is
 * the matched route pattern (a static string); path_model is the model
 * group named in an Azure-style path (/openai/deployments/{model}/...),
 * used when the body has no model. */
void call_start(struct proxy *px, struct evhttp_request *req, enum api api,
                const char *route, const char *path_model);

/* The rate limits' state (call_limits.c): made before the HTTP server
 * starts, freed after every request has ended. -1 on ENOMEM. */
int call_limits_start(struct proxy *px);
void call_limits_stop(struct proxy *px);
/* Stops asking Redis (teardown, before the transfers end): takes waiting on
 * it are decided here. */
void call_limits_unshare(struct proxy *px);

/* Microseconds since t0 (CLOCK_MONOTONIC). */
static inline int64_t call_since_us(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)(now.tv_sec - t0->tv_sec) * 1000000 + (now.tv_nsec - t0->tv_nsec) / 1000;
}

#endif
