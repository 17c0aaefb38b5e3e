/* proxy.h - proxyd's context: what main.c builds and every module shares.
 *
 * proxyd is one libevent loop: HTTP front (http_front.c), key checks
 * (auth.c, with MariaDB queries on a worker thread: keystore.c), the
 * upstream transfer (relay.c, libcurl multi), the request lifecycle
 * (call.c, answer.c, stream.c), budgets (admission.c), deployment choice
 * (router.c) and event publishing to accountd over ZeroMQ (publish.c) with
 * its durable spool (spool.c).
 */
#ifndef PROXYD_PROXY_H
#define PROXYD_PROXY_H

#include <event2/event.h>
#include <event2/http.h>

#include "config.h"
#include "price.h"

struct relay;
struct publisher;
struct keystore;
struct router;
struct admission;
struct owners;
struct spend_sub;

struct proxy {
    struct event_base *base;
    struct evhttp *http;
    const struct config *cfg;
    struct price_table *prices;
    struct relay *relay;
    struct publisher *pub;
    struct keystore *keys;
    struct router *router;
    struct admission *admission;
    struct owners *owners;
    struct spend_sub *spend_sub;
};

#endif
