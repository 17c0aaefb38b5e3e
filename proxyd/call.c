/* call.c - the life of one relayed request.
 *
 * call_start parses the body (model, user, metadata), auth.c checks the key,
 * router.c picks a deployment, relay.c sends the rewritten body upstream
 * (model replaced by the deployment's model, metadata removed), and
 * on_upstream answers the client with the upstream's status and body plus
 * the x-litellm-* headers, then hands one UsageEvent to publish.c.
 *
 * The cost in x-litellm-response-cost is computed here with the same price
 * library and the same inputs accountd uses, so header == ledger.
 */
#include "call.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "auth.h"
#include "events.pb-c.h"
#include "httpjson.h"
#include "ids.h"
#include "log.h"
#include "publish.h"
#include "relay.h"
#include "router.h"
#include "usage.h"

struct call {
    struct proxy *px;
    struct evhttp_request *req;
    enum call_kind kind;
    char request_id[IDS_UUID_LEN + 1];
    int64_t start_us;       /* wall clock, for the ledger */
    struct timespec t0;     /* monotonic, for durations */
    int64_t upstream_us;    /* time spent waiting on the upstream */
    json_t *body;
    const char *model_group; /* inside body */
    const struct deployment *dep;
    struct keyinfo key;     /* copy of the caller's key row (token "" for master) */
    char *end_user;
    json_t *tags;           /* array of strings */
    char *metadata_json;    /* metadata without tags */
};

static const char *const UPSTREAM_PATH[] = {
    [CALL_CHAT] = "chat/completions", [CALL_COMPLETION] = "completions",
    [CALL_EMBEDDING] = "embeddings", [CALL_IMAGE] = "images/generations"};
static const char *const CALL_TYPE[] = {
    [CALL_CHAT] = "chat_completion", [CALL_COMPLETION] = "text_completion",
    [CALL_EMBEDDING] = "embedding", [CALL_IMAGE] = "image_generation"};

static int64_t wall_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

static int64_t since_us(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)(now.tv_sec - t0->tv_sec) * 1000000 + (now.tv_nsec - t0->tv_nsec) / 1000;
}

static void call_free(struct call *c)
{
    json_decref(c->body);
    json_decref(c->tags);
    free(c->end_user);
    free(c->metadata_json);
    free(c->key.key_alias);
    free(c->key.user_id);
    free(c->key.team_id);
    free(c->key.max_budget);
    free(c->key.spend);
    free(c);
}

static int oom(struct call *c)
{
    httpjson_error(c->req, 500, "internal_error", NULL, "out of memory");
    return -1;
}

/* Reads `user` and `metadata` (tags and the rest). -1 when it answered an error. */
static int read_attribution(struct call *c)
{
    json_t *user = json_object_get(c->body, "user");
    json_t *meta = json_object_get(c->body, "metadata");
    if (user != NULL && !json_is_null(user)) {
        if (!json_is_string(user) || json_string_length(user) > 255) {
            httpjson_error(c->req, 400, "invalid_request_error", "user",
                           "user must be a string of at most 255 characters");
            return -1;
        }
        if ((c->end_user = strdup(json_string_value(user))) == NULL)
            return oom(c);
    }
    if (meta == NULL || json_is_null(meta))
        return 0;
    json_t *tags = json_object_get(meta, "tags");
    size_t i;
    json_t *t;
    if (!json_is_object(meta) || (tags != NULL && !json_is_array(tags))) {
        httpjson_error(c->req, 400, "invalid_request_error", "metadata",
                       "metadata must be an object and metadata.tags a list of strings");
        return -1;
    }
    json_array_foreach(tags, i, t) {
        if (!json_is_string(t)) {
            httpjson_error(c->req, 400, "invalid_request_error", "metadata.tags",
                           "metadata.tags must be a list of strings");
            return -1;
        }
    }
    c->tags = tags != NULL ? json_incref(tags) : NULL;
    json_t *rest = json_deep_copy(meta);
    if (rest == NULL)
        return oom(c);
    json_object_del(rest, "tags");
    c->metadata_json = json_dumps(rest, JSON_COMPACT);
    json_decref(rest);
    return c->metadata_json != NULL ? 0 : oom(c);
}

/* The deployment's URL for this route: OpenAI-style or Azure's. */
static int upstream_url(const struct call *c, char *url, size_t len)
{
    const struct deployment *d = c->dep;
    int n;
    if (d->kind == UPSTREAM_AZURE)
        n = snprintf(url, len, "%s/openai/deployments/%s/%s?api-version=%s", d->api_base,
                     d->upstream_model, UPSTREAM_PATH[c->kind], d->api_version);
    else
        n = snprintf(url, len, "%s/%s", d->api_base, UPSTREAM_PATH[c->kind]);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

static struct curl_slist *upstream_headers(const struct deployment *d)
{
    char auth[2048];
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    struct curl_slist *h2 = h;
    if (h != NULL && d->api_key != NULL) {
        if (d->kind == UPSTREAM_AZURE)
            snprintf(auth, sizeof(auth), "api-key: %s", d->api_key);
        else
            snprintf(auth, sizeof(auth), "Authorization: Bearer %s", d->api_key);
        h2 = curl_slist_append(h, auth);
    }
    if (h2 != NULL)
        h2 = curl_slist_append(h2, "Expect:"); /* no 100-continue round trip */
    if (h2 == NULL)
        curl_slist_free_all(h);
    return h2;
}

/* The body as the upstream sees it: its model name, no metadata. */
static char *upstream_body(struct call *c)
{
    json_t *b = json_copy(c->body);
    char *s = NULL;
    if (b != NULL && json_object_set_new(b, "model", json_string(c->dep->upstream_model)) == 0) {
        json_object_del(b, "metadata");
        s = json_dumps(b, JSON_COMPACT);
    }
    json_decref(b);
    return s;
}

static void fill_event(const struct call *c, Tollgate__UsageEvent *e, const struct usage *u,
                       int status, char in_price[MONEY_STR_MAX], char out_price[MONEY_STR_MAX])
{
    const struct deployment *d = c->dep;
    e->request_id = (char *)c->request_id;
    e->call_type = (char *)CALL_TYPE[c->kind];
    e->start_time_us = c->start_us;
    e->end_time_us = c->start_us + since_us(&c->t0);
    e->api_key = (char *)c->key.token;
    e->user_id = c->key.user_id;
    e->team_id = c->key.team_id;
    e->key_alias = c->key.key_alias;
    e->end_user = c->end_user;
    e->metadata_json = c->metadata_json;
    e->model_group = (char *)c->model_group;
    e->model = d->model;
    e->api_base = d->api_base;
    e->base_model = d->base_model;
    if (d->price.has_input) {
        money_format(d->price.input_per_token, in_price);
        e->input_cost_per_token = in_price;
    }
    if (d->price.has_output) {
        money_format(d->price.output_per_token, out_price);
        e->output_cost_per_token = out_price;
    }
    e->has_prompt_tokens = e->has_completion_tokens = e->has_total_tokens = 1;
    e->has_cache_read_tokens = e->has_cache_creation_tokens = 1;
    e->prompt_tokens = u->prompt_tokens;
    e->completion_tokens = u->completion_tokens;
    e->total_tokens = u->total_tokens;
    e->cache_read_tokens = u->cache_read_tokens;
    e->cache_creation_tokens = u->cache_creation_tokens;
    e->http_status = status;
}

/* Hands the usage event to the publisher (which keeps it until acked). */
static void publish_event(struct call *c, const struct usage *u, int status)
{
    Tollgate__UsageEvent e = TOLLGATE__USAGE_EVENT__INIT;
    char in_price[MONEY_STR_MAX], out_price[MONEY_STR_MAX];
    size_t ntags = json_array_size(c->tags);
    char *tags[ntags ? ntags : 1];
    for (size_t i = 0; i < ntags; i++)
        tags[i] = (char *)json_string_value(json_array_get(c->tags, i));
    fill_event(c, &e, u, status, in_price, out_price);
    e.n_tags = ntags;
    e.tags = tags;
    size_t len = tollgate__usage_event__get_packed_size(&e);
    uint8_t *buf = malloc(len);
    if (buf == NULL || (tollgate__usage_event__pack(&e, buf),
                        publisher_send(c->px->pub, c->request_id, buf, len)) < 0)
        log_error("request %s: out of memory queueing its usage event", c->request_id);
    free(buf);
}

static void add_header(struct evkeyvalq *h, const char *name, const char *value)
{
    if (value != NULL && evhttp_add_header(h, name, value) != 0)
        log_warn("cannot add header %s", name);
}

/* Usage and cost of a 2xx answer; usage all 0 when the body has none. */
static void price_answer(struct call *c, struct evbuffer *body, struct usage *u, char cost[MONEY_STR_MAX])
{
    money_t m = 0;
    char err[256];
    size_t len = evbuffer_get_length(body);
    json_t *doc = json_loadb((const char *)evbuffer_pullup(body, -1), len, 0, NULL);
    *u = (struct usage){0};
    if (doc == NULL || usage_from_json(json_object_get(doc, "usage"), u) < 0) {
        log_warn("request %s: upstream answer has no usable usage object", c->request_id);
        *u = (struct usage){0};
    }
    json_decref(doc);
    if (price_cost(c->px->prices, c->dep->model, &c->dep->price, u, &m, err, sizeof(err)) == PRICE_ERROR)
        log_warn("request %s: %s", c->request_id, err);
    money_format(m, cost);
}

static void on_upstream(struct relay_transfer *t, CURLcode result, void *arg)
{
    struct call *c = arg;
    struct usage u = {0};
    char cost[MONEY_STR_MAX] = "0", num[32];
    c->upstream_us = since_us(&c->t0) - c->upstream_us;
    if (result != CURLE_OK) {
        int status = result == CURLE_OPERATION_TIMEDOUT ? 504 : 502;
        log_warn("request %s: upstream %s failed: %s", c->request_id, c->dep->api_base,
                 t->errbuf[0] ? t->errbuf : curl_easy_strerror(result));
        httpjson_error(c->req, status, "upstream_error", NULL, "Upstream %s failed: %s",
                       c->dep->model_name, t->errbuf[0] ? t->errbuf : curl_easy_strerror(result));
        publish_event(c, &u, status);
        call_free(c);
        return;
    }
    int status = (int)t->status;
    if (status >= 200 && status < 300)
        price_answer(c, t->response, &u, cost);
    struct evkeyvalq *h = evhttp_request_get_output_headers(c->req);
    add_header(h, "Content-Type", t->content_type[0] ? t->content_type : "application/json");
    add_header(h, "x-litellm-call-id", c->request_id);
    if (status >= 200 && status < 300)
        add_header(h, "x-litellm-response-cost", cost);
    add_header(h, "x-litellm-model-api-base", c->dep->api_base);
    add_header(h, "x-litellm-model-group", c->model_group);
    add_header(h, "x-litellm-key-spend", c->key.spend);
    add_header(h, "x-litellm-key-max-budget", c->key.max_budget);
    int64_t total = since_us(&c->t0);
    snprintf(num, sizeof(num), "%.3f", (double)total / 1000.0);
    add_header(h, "x-litellm-response-duration-ms", num);
    snprintf(num, sizeof(num), "%.3f", (double)(total - c->upstream_us) / 1000.0);
    add_header(h, "x-litellm-overhead-duration-ms", num);
    /* The event is queued before the answer leaves, so it is never younger than the 2xx. */
    publish_event(c, &u, status);
    evhttp_send_reply(c->req, status, NULL, t->response);
    call_free(c);
}

static int keep_key(struct call *c, const struct keyinfo *key)
{
    if (key == NULL)
        return 0; /* master key: no owner, no budget */
    memcpy(c->key.token, key->token, sizeof(c->key.token));
    c->key.key_alias = key->key_alias ? strdup(key->key_alias) : NULL;
    c->key.user_id = key->user_id ? strdup(key->user_id) : NULL;
    c->key.team_id = key->team_id ? strdup(key->team_id) : NULL;
    c->key.max_budget = key->max_budget ? strdup(key->max_budget) : NULL;
    c->key.spend = key->spend ? strdup(key->spend) : NULL;
    return (key->key_alias && !c->key.key_alias) || (key->user_id && !c->key.user_id) ||
           (key->team_id && !c->key.team_id) || (key->max_budget && !c->key.max_budget) ||
           (key->spend && !c->key.spend) ? -1 : 0;
}

static void on_auth(const struct keyinfo *key, int refused, void *arg)
{
    struct call *c = arg;
    char url[4096];
    if (refused) {
        call_free(c);
        return;
    }
    if (keep_key(c, key) < 0) {
        httpjson_error(c->req, 500, "internal_error", NULL, "out of memory");
        call_free(c);
        return;
    }
    if (!auth_model_allowed(key, c->model_group)) {
        httpjson_error(c->req, 401, "auth_error", "model",
                       "Authentication Error, API Key not allowed to access model. This token "
                       "can only access models=%s. Tried to access %s",
                       key->models_json, c->model_group);
        call_free(c);
        return;
    }
    if ((c->dep = router_pick(c->px->router, c->model_group)) == NULL) {
        httpjson_error(c->req, 400, "invalid_request_error", "model",
                       "Invalid model name passed in model=%s. Call `/v1/models` to view "
                       "available models for your key. Available: %s",
                       c->model_group, router_group_names(c->px->router));
        call_free(c);
        return;
    }
    char *body = upstream_body(c);
    struct curl_slist *headers = upstream_headers(c->dep);
    c->upstream_us = since_us(&c->t0);
    struct relay_request rq = {.method = "POST", .url = url, .headers = headers, .body = body,
                               .body_len = body ? strlen(body) : 0,
                               .timeout_ms = c->px->cfg->proxyd.upstream_timeout_ms,
                               .done = on_upstream, .arg = c};
    if (body == NULL || headers == NULL || upstream_url(c, url, sizeof(url)) < 0 ||
        relay_start(c->px->relay, &rq, NULL) < 0) {
        free(body);
        curl_slist_free_all(headers);
        httpjson_error(c->req, 500, "internal_error", NULL, "cannot start the upstream request");
        call_free(c);
    }
}

void call_start(struct proxy *px, struct evhttp_request *req, enum call_kind kind,
                const char *path_model)
{
    struct call *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        httpjson_error(req, 500, "internal_error", NULL, "out of memory");
        return;
    }
    *c = (struct call){.px = px, .req = req, .kind = kind, .start_us = wall_us()};
    clock_gettime(CLOCK_MONOTONIC, &c->t0);
    if ((c->body = httpjson_body(req, px->cfg->proxyd.max_body_bytes)) == NULL) {
        free(c);
        return;
    }
    if (path_model != NULL &&
        json_object_set_new(c->body, "model", json_string(path_model)) != 0) {
        httpjson_error(req, 500, "internal_error", NULL, "out of memory");
        call_free(c);
        return;
    }
    json_t *model = json_object_get(c->body, "model");
    json_t *stream = json_object_get(c->body, "stream");
    if (!json_is_string(model) || json_string_length(model) == 0) {
        httpjson_error(req, 400, "invalid_request_error", "model", "model is required (a string)");
        call_free(c);
        return;
    }
    if (json_is_true(stream)) {
        httpjson_error(req, 400, "invalid_request_error", "stream",
                       "streaming is not supported by this Tollgate version yet");
        call_free(c);
        return;
    }
    c->model_group = json_string_value(model);
    if (ids_uuid4(c->request_id) < 0) {
        httpjson_error(req, 500, "internal_error", NULL, "no randomness for a request id");
        call_free(c);
        return;
    }
    if (read_attribution(c) < 0) {
        call_free(c);
        return;
    }
    auth_check(px, req, on_auth, c);
}
