/* auth.c - proxyd's key checks.
 *
 * The master key is compared in constant time; a virtual key is hashed and
 * its row fetched through the keystore cache. Refusals use LiteLLM's
 * statuses: unknown or expired key 401, blocked key 403. Raw keys are never
 * logged; at most their hash is. general_settings.allowed_routes is checked
 * before the key is read and admin_only_routes once a virtual key is known
 * (route_access.h): admins are the master key and keys of proxy_admin users.
 * A check the keystore refuses as busy (too many unknown keys in flight) is
 * a 429 with Retry-After.
 */
#include "auth.h"

#include <event2/bufferevent.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "httpjson.h"
#include "keyhash.h"
#include "log.h"
#include "reload.h"
#include "route_access.h"

#define AUTH_BUSY_RETRY_S "1" /* Retry-After of a key check refused as busy */

struct pending_auth {
    struct proxy *px;
    struct evhttp_request *req;
    enum httpjson_shape shape;
    auth_cb cb;
    void *arg;
};

static int64_t now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

static const char *request_path(struct evhttp_request *req)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    return path != NULL ? path : "";
}

/* Ranks the request's connection for the loop (proxy.h): a connection that
 * showed a valid key keeps PRIO_NORMAL, one that showed none or a made-up
 * one waits behind the others. Before the answer: answering may free the
 * request and its connection. Setting it fails only while one of the
 * connection's events is queued to run: the connection's next request
 * ranks it then. */
static void rank(struct evhttp_request *req, bool trusted)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
    if (bev != NULL)
        (void)bufferevent_priority_set(bev, trusted ? PRIO_NORMAL : PRIO_LOW);
}

static void on_key(const struct keyinfo *key, const char *error, void *arg)
{
    struct pending_auth *pa = arg;
    const struct route_access *ra = &pa->px->gen->cfg->access;
    struct evhttp_request *req = pa->req;
    enum httpjson_shape shape = pa->shape;
    auth_cb cb = pa->cb;
    void *cb_arg = pa->arg;
    free(pa);
    rank(req, key != NULL && key->found);
    if (key == NULL && error == KEYSTORE_BUSY) {
        /* a flood of unknown keys: refused, never queued (keystore.c) */
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After",
                          AUTH_BUSY_RETRY_S);
        httpjson_error_as(req, shape, 429, "rate_limit_error", NULL,
                          "Too many checks of unknown keys in flight; retry after %s s",
                          AUTH_BUSY_RETRY_S);
        cb(NULL, 429, cb_arg);
    } else if (key == NULL) {
        log_error("key lookup failed: %s", error);
        httpjson_error_as(req, shape, 503, "service_unavailable", NULL,
                       "Key check unavailable: the database cannot be reached");
        cb(NULL, 503, cb_arg);
    } else if (!key->found) {
        httpjson_error_as(req, shape, 401, "auth_error", NULL,
                       "Authentication Error, Invalid proxy server token passed.");
        cb(NULL, 401, cb_arg);
    } else if (key->blocked) {
        httpjson_error_as(req, shape, 403, "permission_error", NULL,
                       "Authentication Error, Key is blocked. Key=%s", key->token);
        cb(NULL, 403, cb_arg);
    } else if (key->team_blocked) {
        httpjson_error_as(req, shape, 403, "permission_error", NULL,
                       "Team=%s is blocked. Update via `/team/unblock` if you're an admin.",
                       key->team_id);
        cb(NULL, 403, cb_arg);
    } else if (key->expires_us != 0 && key->expires_us <= now_us()) {
        httpjson_error_as(req, shape, 401, "auth_error", NULL,
                       "Authentication Error - Expired Key. Key Expiry time passed.");
        cb(NULL, 401, cb_arg);
    } else if (!key->proxy_admin && route_access_admin_only(ra, request_path(req))) {
        httpjson_error_as(req, shape, 403, "permission_error", NULL, ROUTE_ACCESS_ADMIN_ONLY_FMT,
                          request_path(req));
        cb(NULL, 403, cb_arg);
    } else {
        cb(key, 0, cb_arg);
    }
}

void auth_check(struct proxy *px, struct evhttp_request *req, enum httpjson_shape shape,
                auth_cb cb, void *arg)
{
    const char *raw = httpjson_request_key(req);
    char token[KEYHASH_HEX_LEN + 1];
    if (!route_access_allows(&px->gen->cfg->access, request_path(req))) {
        httpjson_error_as(req, shape, 403, "permission_error", NULL,
                          ROUTE_ACCESS_NOT_ALLOWED_FMT, request_path(req));
        cb(NULL, 403, arg);
        return;
    }
    if (raw == NULL) {
        rank(req, false);
        httpjson_error_as(req, shape, 401, "auth_error", NULL,
                       "Authentication Error, No api key passed in.");
        cb(NULL, 401, arg);
        return;
    }
    if (keyhash_sha256_hex(raw, strlen(raw), token) < 0) {
        httpjson_error_as(req, shape, 500, "internal_error", NULL, "cannot hash the key (libcrypto)");
        cb(NULL, 500, arg);
        return;
    }
    if (px->gen->cfg->master_token[0] != '\0' &&
        keyhash_token_equal(token, px->gen->cfg->master_token)) {
        rank(req, true);
        cb(NULL, 0, arg);
        return;
    }
    struct pending_auth *pa = malloc(sizeof(*pa));
    if (pa == NULL) {
        httpjson_error_as(req, shape, 500, "internal_error", NULL, "out of memory");
        cb(NULL, 500, arg);
        return;
    }
    *pa = (struct pending_auth){px, req, shape, cb, arg};
    keystore_lookup(px->keys, token, on_key, pa);
}

int auth_list_allows(const char *models_json, const char *group)
{
    if (models_json == NULL)
        return 1;
    json_t *models = json_loads(models_json, 0, NULL);
    size_t i;
    json_t *m;
    /* a list that is not one (bad JSON in the row) allows nothing, [] everything */
    int allowed = json_is_array(models) && json_array_size(models) == 0;
    json_array_foreach(models, i, m) {
        const char *s = json_string_value(m);
        if (s != NULL && (strcmp(s, group) == 0 || strcmp(s, "all-proxy-models") == 0))
            allowed = 1;
    }
    json_decref(models);
    return allowed;
}

int auth_model_allowed(const struct keyinfo *key, const char *group)
{
    /* the key's own list and its team's, as LiteLLM (a team member's key
     * cannot reach a model its team may not use, whatever the key says) */
    return key == NULL ||
           (auth_list_allows(key->models_json, group) &&
            auth_list_allows(key->team_models_json, group));
}
