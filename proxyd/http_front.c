/* http_front.c - proxyd's evhttp server and its route table.
 *
 * Data-plane routes are relayed (call.c); control-plane paths go to reportd
 * (forward.c); /models, the health checks and /metrics are answered here.
 * Clients keep HTTP/1.1 connections alive. The connection cap, header
 * limits and the header and idle deadlines are http_limits.c's
 * (tollgate.proxyd.max_connections, ...); a body that stalls, a client
 * that stops reading its answer, or a stream whose upstream sends nothing
 * is closed after CLIENT_TIMEOUT_S without progress (evhttp's timeout,
 * which a stream's every piece renews). While draining every answer closes
 * its connection. Bodies above max_body_bytes are refused with a JSON 413
 * (httpjson_body). Every answer is counted under its route pattern
 * (stats.c): relayed calls and /models by themselves, the rest here.
 */
#include "http_front.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "call.h"
#include "forward.h"
#include "http_limits.h"
#include "httpjson.h"
#include "keystore.h"
#include "log.h"
#include "publish.h"
#include "reload.h"
#include "response_ops.h"
#include "router.h"
#include "stats.h"

#define CLIENT_TIMEOUT_S 120 /* a body or an answer making no progress */
#define AZURE_PREFIX "/openai/deployments/"

struct route {
    struct httpjson_route key; /* first: httpjson_find_route reads it */
    void (*handler)(struct proxy *px, struct evhttp_request *req);
    bool counts_itself;        /* answers later (calls, /models): counts its own answer */
};

/* The relayed routes: each call is counted under the route it came by. */
#define CALL_ROUTE(name, kind, path)                                   \
    static void name(struct proxy *px, struct evhttp_request *req)     \
    {                                                                  \
        call_start(px, req, kind, path, NULL);                         \
    }
CALL_ROUTE(chat, API_CHAT, "/chat/completions")
CALL_ROUTE(chat_v1, API_CHAT, "/v1/chat/completions")
CALL_ROUTE(completion, API_COMPLETION, "/completions")
CALL_ROUTE(completion_v1, API_COMPLETION, "/v1/completions")
CALL_ROUTE(embedding, API_EMBEDDING, "/embeddings")
CALL_ROUTE(embedding_v1, API_EMBEDDING, "/v1/embeddings")
CALL_ROUTE(image, API_IMAGE, "/images/generations")
CALL_ROUTE(image_v1, API_IMAGE, "/v1/images/generations")
CALL_ROUTE(responses, API_RESPONSES, "/responses")
CALL_ROUTE(responses_v1, API_RESPONSES, "/v1/responses")
CALL_ROUTE(messages, API_MESSAGES, "/messages")
CALL_ROUTE(messages_v1, API_MESSAGES, "/v1/messages")
CALL_ROUTE(count_tokens, API_COUNT_TOKENS, "/messages/count_tokens")
CALL_ROUTE(count_tokens_v1, API_COUNT_TOKENS, "/v1/messages/count_tokens")

static void metrics(struct proxy *px, struct evhttp_request *req)
{
    stats_reply(px, req);
}

static void liveliness(struct proxy *px, struct evhttp_request *req)
{
    (void)px;
    httpjson_reply(req, 200, json_string("I'm alive!"));
}

/* Ready while accountd and MariaDB have not been gone longer than the grace
 * and the spool has room. The spool's figures show how far accountd is behind. */
static void readiness(struct proxy *px, struct evhttp_request *req)
{
    int64_t acc = publisher_down_ms(px->pub), db = keystore_db_down_ms(px->keys);
    int64_t grace = px->cfg->proxyd.readiness_grace_ms;
    bool ready = acc <= grace && db <= grace && !publisher_full(px->pub) && px->drain == NULL;
    httpjson_reply(req, ready ? 200 : 503,
                   json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "status",
                             ready ? "healthy" : px->drain != NULL ? "draining" : "unhealthy",
                             "accountd", acc == 0 ? "connected" : acc <= grace ? "reconnecting"
                                                                             : "unreachable",
                             "db", db == 0 ? "connected" : db <= grace ? "reconnecting"
                                                                      : "unreachable",
                             "unacked_events", (json_int_t)publisher_pending(px->pub),
                             "spool_bytes", (json_int_t)publisher_spool_bytes(px->pub),
                             "spool_max_bytes", (json_int_t)px->cfg->proxyd.spool_max_bytes));
}

struct models_call {
    struct proxy *px;
    struct evhttp_request *req;
    const char *route;
    struct timespec t0;
};

static void models_answer(const struct keyinfo *key, int refused, void *arg)
{
    struct models_call *mc = arg;
    const struct router *router = mc->px->gen->router;
    json_t *data = json_array();
    const struct group_config *gc = &mc->px->gen->cfg->groups;
    size_t n = router_group_count(router);
    /* the groups, then the aliases not hidden (LiteLLM's get_model_names) */
    for (size_t i = 0; !refused && data != NULL && i < n + gc->n_aliases; i++) {
        const char *name = i < n ? router_group_name(router, i) : gc->aliases[i - n].alias;
        if ((i < n || !gc->aliases[i - n].hidden) && auth_model_allowed(key, name))
            json_array_append_new(data, json_pack("{s:s, s:s, s:i, s:s}", "id", name, "object",
                                                  "model", "created", 0, "owned_by", "tollgate"));
    }
    if (!refused)
        httpjson_reply(mc->req, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
    else
        json_decref(data);
    stats_request_done(mc->px->stats,
                       &(struct stats_request){.route = mc->route, .status = refused ? refused : 200,
                                               .total_us = call_since_us(&mc->t0),
                                               .upstream_us = -1, .ttfb_us = -1});
    free(mc);
}

static void models_at(struct proxy *px, struct evhttp_request *req, const char *route)
{
    struct models_call *mc = malloc(sizeof(*mc));
    if (mc == NULL) {
        httpjson_error(req, 500, "internal_error", NULL, "out of memory");
        return;
    }
    *mc = (struct models_call){px, req, route, {0, 0}};
    clock_gettime(CLOCK_MONOTONIC, &mc->t0);
    auth_check(px, req, HTTPJSON_OPENAI, models_answer, mc);
}

static void models(struct proxy *px, struct evhttp_request *req)
{
    models_at(px, req, "/models");
}

static void models_v1(struct proxy *px, struct evhttp_request *req)
{
    models_at(px, req, "/v1/models");
}

static const struct route ROUTES[] = {
    {{EVHTTP_REQ_POST, "/chat/completions"}, chat, true},
    {{EVHTTP_REQ_POST, "/v1/chat/completions"}, chat_v1, true},
    {{EVHTTP_REQ_POST, "/completions"}, completion, true},
    {{EVHTTP_REQ_POST, "/v1/completions"}, completion_v1, true},
    {{EVHTTP_REQ_POST, "/embeddings"}, embedding, true},
    {{EVHTTP_REQ_POST, "/v1/embeddings"}, embedding_v1, true},
    {{EVHTTP_REQ_POST, "/images/generations"}, image, true},
    {{EVHTTP_REQ_POST, "/v1/images/generations"}, image_v1, true},
    {{EVHTTP_REQ_POST, "/responses"}, responses, true},
    {{EVHTTP_REQ_POST, "/v1/responses"}, responses_v1, true},
    {{EVHTTP_REQ_POST, "/messages"}, messages, true},
    {{EVHTTP_REQ_POST, "/v1/messages"}, messages_v1, true},
    {{EVHTTP_REQ_POST, "/messages/count_tokens"}, count_tokens, true},
    {{EVHTTP_REQ_POST, "/v1/messages/count_tokens"}, count_tokens_v1, true},
    {{EVHTTP_REQ_GET, "/models"}, models, true},
    {{EVHTTP_REQ_GET, "/v1/models"}, models_v1, true},
    {{EVHTTP_REQ_GET, "/health/liveliness"}, liveliness, false},
    {{EVHTTP_REQ_GET, "/health/readiness"}, readiness, false},
    {{EVHTTP_REQ_GET, "/metrics"}, metrics, false},
};

/* /openai/deployments/{model}/{chat/completions|completions|embeddings|images/generations} */
static bool azure_style(struct proxy *px, struct evhttp_request *req, const char *path)
{
    static const struct { const char *suffix, *route; enum api kind; } KINDS[] = {
        {"/chat/completions", AZURE_PREFIX "{model}/chat/completions", API_CHAT},
        {"/completions", AZURE_PREFIX "{model}/completions", API_COMPLETION},
        {"/embeddings", AZURE_PREFIX "{model}/embeddings", API_EMBEDDING},
        {"/images/generations", AZURE_PREFIX "{model}/images/generations", API_IMAGE}};
    if (strncmp(path, AZURE_PREFIX, strlen(AZURE_PREFIX)) != 0)
        return false;
    const char *model = path + strlen(AZURE_PREFIX), *slash = strchr(model, '/');
    if (slash == NULL || slash == model || slash - model > 255 ||
        evhttp_request_get_command(req) != EVHTTP_REQ_POST)
        return false;
    for (size_t i = 0; i < sizeof(KINDS) / sizeof(KINDS[0]); i++) {
        if (strcmp(slash, KINDS[i].suffix) == 0) {
            char name[256];
            snprintf(name, sizeof(name), "%.*s", (int)(slash - model), model);
            char *decoded = evhttp_uridecode(name, 0, NULL);
            call_start(px, req, KINDS[i].kind, KINDS[i].route, decoded != NULL ? decoded : name);
            free(decoded);
            return true;
        }
    }
    return false;
}

static void dispatch(struct evhttp_request *req, void *arg)
{
    struct proxy *px = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!http_limits_admit_or_reply(px->limits, req)) {
        stats_request_done(px->stats, &(struct stats_request){
                                          .route = "other", .status = 431, .total_us = 0,
                                          .upstream_us = -1, .ttfb_us = -1});
        return;
    }
    /* draining: this connection's answer is its last (evhttp closes after it) */
    if (px->drain != NULL &&
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close") != 0)
        log_warn("cannot add Connection: close while draining");
    if (path != NULL && forward_wanted(path)) {
        forward_to_reportd(px, req);
        return;
    }
    if (path != NULL && (azure_style(px, req, path) || response_ops_start(px, req, path)))
        return;
    const struct route *r = httpjson_find_route(req, ROUTES, sizeof(ROUTES) / sizeof(ROUTES[0]),
                                                sizeof(ROUTES[0]));
    if (r != NULL)
        r->handler(px, req);
    if (r != NULL && r->counts_itself)
        return;
    /* answered synchronously, in this callback: req is still ours to read */
    stats_request_done(px->stats, &(struct stats_request){
                                      .route = r != NULL ? r->key.path : "other",
                                      .status = evhttp_request_get_response_code(req),
                                      .total_us = call_since_us(&t0), .upstream_us = -1,
                                      .ttfb_us = -1});
}

int http_front_start(struct proxy *px, char *err, size_t errlen)
{
    const struct listen_addr *l = &px->cfg->proxyd.listen;
    if ((px->http = evhttp_new(px->base)) == NULL) {
        snprintf(err, errlen, "evhttp_new failed");
        return -1;
    }
    /* libevent answers bodies over its limit with an HTML page: give it room
     * above ours, so that what clients see past max_body_bytes is our JSON 413. */
    evhttp_set_max_body_size(px->http, (ev_ssize_t)(2 * px->cfg->proxyd.max_body_bytes + (1 << 20)));
    evhttp_set_timeout(px->http, CLIENT_TIMEOUT_S);
    struct http_limits_metrics hm;
    if (http_limits_declare(stats_metrics(px->stats), &hm) < 0) {
        snprintf(err, errlen, "out of memory declaring the connection metrics");
        return -1;
    }
    if ((px->limits = http_limits_new(px->http, px->base, &px->cfg->proxyd.http, "proxyd", &hm,
                                      err, errlen)) == NULL)
        return -1;
    evhttp_set_allowed_methods(px->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                             EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD);
    evhttp_set_gencb(px->http, dispatch, px);
    struct evhttp_bound_socket *bound = px->bound =
        evhttp_bind_socket_with_handle(px->http, l->host, (ev_uint16_t)l->port);
    if (bound == NULL) {
        snprintf(err, errlen, "cannot listen on %s:%d", l->host, l->port);
        return -1;
    }
    /* Accepted sockets inherit TCP_NODELAY (Linux): a stream's events and an
     * answer written in pieces must not wait for the client's delayed ACK. */
    int one = 1;
    if (setsockopt(evhttp_bound_socket_get_fd(bound), IPPROTO_TCP, TCP_NODELAY, &one,
                   sizeof(one)) != 0) {
        snprintf(err, errlen, "cannot set TCP_NODELAY on %s:%d: %s", l->host, l->port,
                 strerror(errno));
        return -1;
    }
    return 0;
}
