/* response_ops.c - the Responses API's calls on a stored response: GET
 * /v1/responses/{id}, DELETE /v1/responses/{id}, POST
 * /v1/responses/{id}/cancel and GET /v1/responses/{id}/input_items (also
 * without /v1).
 *
 * The id names the deployment that created the response (response_id.h),
 * so the call goes there whichever proxyd created it and whatever restarted
 * since. The caller needs a key that may use that deployment's model group
 * and, unless general_settings.disable_responses_id_security, of the user
 * (else the team) whose key created it (LiteLLM's 403; the master key may
 * use any); the call itself is not priced. An answer showing a background response
 * ended bills its usage to the request that created it (background.c).
 */
#include "response_ops.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "background.h"
#include "call.h"
#include "httpjson.h"
#include "ids.h"
#include "log.h"
#include "protocol.h"
#include "relay.h"
#include "response_id.h"
#include "reload.h"
#include "stats.h"

#define OPS_TIMEOUT_MS 60000
#define ID_MAX 512

struct response_op {
    struct proxy *px;
    struct evhttp_request *req;
    struct generation *gen;         /* holds the deployment while the call runs */
    const struct deployment *d;
    const char *method, *route;
    char id[ID_MAX];                /* the client's id */
    struct response_ref ref;        /* what it says */
    char call_id[IDS_UUID_LEN + 1]; /* x-litellm-call-id of this call */
    char tail[ID_MAX + 32];         /* "/{upstream id}[/cancel|/input_items]" */
    struct timespec t0;
};

static void op_done(struct response_op *op, int status)
{
    op->px->in_flight--;
    stats_request_done(op->px->stats, &(struct stats_request){
                                          .route = op->route, .status = status,
                                          .total_us = call_since_us(&op->t0),
                                          .upstream_us = -1, .ttfb_us = -1});
    generation_unref(op->gen);
    free(op);
}

/* A 2xx answer: a background response that ended is billed, and the
 * response object gets the client's id back. */
static void read_answer(struct response_op *op, struct evbuffer *body)
{
    if (strstr(op->tail, "/input_items") != NULL)
        return; /* a list of input items: no response object */
    json_t *doc = httpjson_buffer_parse(body);
    if (json_is_object(doc))
        background_bill(op->px, op->gen, op->d, op->ref.creator, doc);
    if (json_is_string(json_object_get(doc, "id")) &&
        (json_object_set_new(doc, "id", json_string(op->id)) != 0 ||
         httpjson_buffer_set(body, doc, JSON_COMPACT) < 0))
        log_warn("out of memory rewriting a response's id");
    json_decref(doc);
}

static void on_answer(struct relay_transfer *t, CURLcode result, void *arg)
{
    struct response_op *op = arg;
    if (result != CURLE_OK) {
        log_warn("responses %s on %s failed: %s", op->method, op->d->model_name,
                 t->errbuf[0] ? t->errbuf : curl_easy_strerror(result));
        httpjson_error(op->req, result == CURLE_OPERATION_TIMEDOUT ? 504 : 502, "upstream_error",
                       NULL, "Upstream %s failed", op->d->model_name);
        op_done(op, result == CURLE_OPERATION_TIMEDOUT ? 504 : 502);
        return;
    }
    if (t->status >= 200 && t->status < 300)
        read_answer(op, t->response);
    struct evkeyvalq *h = evhttp_request_get_output_headers(op->req);
    if (evhttp_add_header(h, "Content-Type",
                          t->content_type[0] ? t->content_type : "application/json") != 0 ||
        evhttp_add_header(h, "x-litellm-call-id", op->call_id) != 0)
        log_warn("cannot set the answer's headers");
    evhttp_send_reply(op->req, (int)t->status, NULL, t->response);
    op_done(op, (int)t->status);
}

/* A response of another user's (or team's) key is refused, as LiteLLM does. */
static bool owner_allowed(struct response_op *op, const struct keyinfo *key)
{
    char mine[RESPONSE_OWNER_LEN + 1];
    response_id_owner(key->user_id, key->team_id, mine);
    if (op->gen->cfg->responses_id_security_off || response_id_owned(&op->ref, mine))
        return true;
    httpjson_error(op->req, 403, "permission_error", NULL,
                   "Forbidden. The response id is not associated with the %s, who this key "
                   "belongs to. To disable this security feature, set "
                   "general_settings::disable_responses_id_security to True in the config.yaml "
                   "file.", op->ref.owner[0] == 'u' ? "user" : "team");
    op_done(op, 403);
    return false;
}

static void on_auth(const struct keyinfo *key, int refused, void *arg)
{
    struct response_op *op = arg;
    char url[4096];
    if (refused) {
        op_done(op, refused);
        return;
    }
    if (key != NULL && !owner_allowed(op, key))
        return;
    if (!auth_model_allowed(key, op->d->model_name)) {
        httpjson_error(op->req, 401, "auth_error", "model",
                       "Authentication Error, API Key not allowed to access model. This token "
                       "can only access models=%s. Tried to access %s", key->models_json,
                       op->d->model_name);
        op_done(op, 401);
        return;
    }
    struct upstream_req ur = {.api = API_RESPONSES, .d = op->d, .client = op->req};
    struct curl_slist *headers = protocol_headers(&ur);
    struct relay_request rq = {.method = op->method, .url = url, .headers = headers,
                               .timeout_ms = OPS_TIMEOUT_MS, .done = on_answer, .arg = op,
                               .tls_unchecked = !op->gen->cfg->ssl_verify,
                               .ca_file = op->gen->cfg->ssl_ca_file};
    if (headers == NULL || responses_url(op->d, op->tail, url, sizeof(url)) < 0 ||
        relay_start(op->px->relay, &rq, NULL) < 0) {
        curl_slist_free_all(headers);
        httpjson_error(op->req, 500, "internal_error", NULL, "cannot start the upstream request");
        op_done(op, 500);
    }
}

/* "{id}", "{id}/cancel" or "{id}/input_items" after the prefix; the method
 * each allows. */
static bool parse_rest(const char *rest, enum evhttp_cmd_type cmd, struct response_op *op)
{
    const char *slash = strchr(rest, '/');
    size_t idlen = slash != NULL ? (size_t)(slash - rest) : strlen(rest);
    const char *op_name = slash != NULL ? slash : "";
    if (idlen == 0 || idlen >= ID_MAX)
        return false;
    if (strcmp(op_name, "") == 0 && (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_DELETE)) {
        op->method = cmd == EVHTTP_REQ_GET ? "GET" : "DELETE";
        op->route = "/v1/responses/{id}";
    } else if (strcmp(op_name, "/cancel") == 0 && cmd == EVHTTP_REQ_POST) {
        op->method = "POST";
        op->route = "/v1/responses/{id}/cancel";
    } else if (strcmp(op_name, "/input_items") == 0 && cmd == EVHTTP_REQ_GET) {
        op->method = "GET";
        op->route = "/v1/responses/{id}/input_items";
    } else {
        return false;
    }
    memcpy(op->id, rest, idlen);
    op->id[idlen] = '\0';
    return strpbrk(op->id, "?#%") == NULL;
}

bool response_ops_start(struct proxy *px, struct evhttp_request *req, const char *path)
{
    static const char *const PREFIXES[] = {"/v1/responses/", "/responses/"};
    const char *rest = NULL;
    for (size_t i = 0; i < 2 && rest == NULL; i++)
        if (strncmp(path, PREFIXES[i], strlen(PREFIXES[i])) == 0)
            rest = path + strlen(PREFIXES[i]);
    if (rest == NULL)
        return false;
    struct response_op *op = calloc(1, sizeof(*op));
    if (op == NULL) {
        httpjson_error(req, 500, "internal_error", NULL, "out of memory");
        return true;
    }
    if (!parse_rest(rest, evhttp_request_get_command(req), op)) {
        free(op);
        return false; /* the route table answers 404 / 405 */
    }
    op->px = px;
    op->req = req;
    op->gen = generation_ref(px->gen);
    clock_gettime(CLOCK_MONOTONIC, &op->t0);
    px->in_flight++;
    if (ids_uuid7(op->call_id) < 0)
        snprintf(op->call_id, sizeof(op->call_id), "unknown");
    if (!response_id_parse(op->gen->cfg, op->id, &op->ref)) {
        httpjson_error(req, 404, "invalid_request_error", "response_id",
                       "Response with id '%s' not found.", op->id);
        op_done(op, 404);
        return true;
    }
    op->d = op->ref.d;
    snprintf(op->tail, sizeof(op->tail), "/%s%s", op->ref.upstream_id, rest + strlen(op->id));
    auth_check(px, req, HTTPJSON_OPENAI, on_auth, op);
    return true;
}
