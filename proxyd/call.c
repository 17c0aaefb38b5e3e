/* call.c - the start of one relayed request.
 *
 * call_start parses the body (model, stream, end user, metadata), auth.c
 * checks the key, admission.c the budgets, router.c picks a deployment, and
 * relay.c sends the body upstream as the attempt's protocol writes it
 * (protocol.h). The answer is then handled by answer.c (whole answers) or
 * stream.c (streams). Nothing here depends on which API the call carries.
 */
#include "call_priv.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "auth.h"
#include "config_budget.h"
#include "httpjson.h"
#include "log.h"
#include "publish.h"
#include "reload.h"
#include "route_filter.h"
#include "router.h"
#include "sse.h"
#include "stats.h"
#include "upstream_error.h"

#define ADMIT_WAIT_MS 20         /* an unsure budget check looks again after this */
#define ADMIT_WAITS_MAX 25       /* and gives up (refuses) after this many looks */

static int64_t wall_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

/* The access line and metrics of a request that ends. */
static void account_request(struct call *c)
{
    const char *model = c->model_group == NULL ? NULL
                        : c->gen != NULL && router_has_group(c->gen->router, c->model_group)
                            ? c->model_group
                            : "unknown"; /* a client's made-up name is no label */
    int64_t total = call_since_us(&c->t0);
    struct stats_request r = {
        .route = c->route_name, .model = model,
        .request_id = c->request_id[0] != '\0' ? c->request_id : NULL,
        .deployment = c->dep != NULL ? c->dep->model : NULL, .key_alias = c->key.key_alias,
        .status = c->client_gone ? 499 : c->status, .stream = c->stream, .total_us = total,
        .upstream_us = c->dep != NULL ? c->upstream_us : -1, .ttfb_us = c->ttfb_us};
    stats_request_done(c->px->stats, &r);
}

void call_free(struct call *c)
{
    account_request(c);
    c->px->in_flight--;
    if (c->authorized)
        c->px->authorized--;
    generation_unref(c->gen);
    if (c->wait_ev != NULL)
        event_free(c->wait_ev);
    if (c->note_ev != NULL)
        event_free(c->note_ev);
    admission_release(c->px->admission, &c->reservation); /* if no event settled it */
    call_limits_end(c);
    config_budget_release(c);
    sse_filter_free(c->sse);
    reply_head_free(&c->head);
    if (c->error_body != NULL)
        evbuffer_free(c->error_body);
    json_decref(c->body);
    json_decref(c->tags);
    free(c->owner_rows);
    free(c->end_user);
    free(c->metadata_json);
    free(c->key.key_alias);
    free(c->key.user_id);
    free(c->key.team_id);
    free(c->key.models_json);
    free(c->key.team_models_json);
    free(c->key.model_rate_json);
    free(c);
}

static int oom(struct call *c)
{
    call_error(c, 500, "internal_error", NULL, "out of memory");
    return -1;
}

/* Reads the end user (OpenAI's `user`, Anthropic's metadata.user_id) and
 * `metadata` (tags and the rest). -1 when it answered an error. */
static int read_attribution(struct call *c)
{
    const json_t *user = c->front->end_user(c->body);
    json_t *meta = json_object_get(c->body, "metadata");
    if (user != NULL && !json_is_null(user)) {
        if (!json_is_string(user) || json_string_length(user) > 255) {
            call_error(c, 400, "invalid_request_error", "user",
                       "%s must be a string of at most 255 characters",
                       c->front->errors == HTTPJSON_ANTHROPIC ? "metadata.user_id" : "user");
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
        call_error(c, 400, "invalid_request_error", "metadata",
                       "metadata must be an object and metadata.tags a list of strings");
        return -1;
    }
    if (json_array_size(tags) > OWNERS_MAX_TAGS) {
        call_error(c, 400, "invalid_request_error", "metadata.tags",
                       "metadata.tags has more than %d tags", OWNERS_MAX_TAGS);
        return -1;
    }
    json_array_foreach(tags, i, t) {
        if (!json_is_string(t) || json_string_length(t) == 0 || json_string_length(t) > 255) {
            call_error(c, 400, "invalid_request_error", "metadata.tags",
                           "metadata.tags must be a list of strings of 1 to 255 characters");
            return -1;
        }
    }
    /* our own array: the key's tags may be appended to it */
    if (tags != NULL && (c->tags = json_copy(tags)) == NULL)
        return oom(c);
    json_t *rest = json_deep_copy(meta);
    if (rest == NULL)
        return oom(c);
    json_object_del(rest, "tags");
    c->metadata_json = json_dumps(rest, JSON_COMPACT);
    json_decref(rest);
    if (c->metadata_json == NULL)
        return oom(c);
    /* stored whole in the spend log row, so bounded, never truncated */
    size_t len = strlen(c->metadata_json), max = c->px->cfg->proxyd.max_metadata_bytes;
    if (len > max) {
        call_error(c, 400, "invalid_request_error", "metadata",
                   "metadata is %zu bytes as compact JSON (tags aside); at most %zu are accepted",
                   len, max);
        return -1;
    }
    return 0;
}

struct upstream_req call_upstream_req(const struct call *c)
{
    const struct deployment *d = c->dep;
    return (struct upstream_req){
        .api = c->api, .request_id = c->request_id, .owner = c->owner, .cfg = c->gen->cfg,
        .d = d, .body = c->body, .client = c->req, .model_group = c->model_group,
        .stream = c->stream,
        /* LiteLLM drops when litellm_settings or the deployment says so (utils.py
         * _check_valid_arg): a deployment's false does not undo the global true */
        .drop_params = d->drop_params == 1 || c->gen->cfg->drop_params};
}

/* Worth another deployment: no answer at all, 429, or a 5xx. */
static bool retryable(const struct relay_transfer *t, CURLcode result)
{
    if (result == CURLE_ABORTED_BY_CALLBACK || result == CURLE_WRITE_ERROR)
        return false; /* we stopped it: shutdown or the client left */
    return result != CURLE_OK || t->status == 429 || t->status >= 500;
}

static void on_upstream(struct relay_transfer *t, CURLcode result, void *arg);

/* The first deployment from dep on (dep itself, then router_next's) whose
 * protocol serves the call's API; NULL when none is left (*why: dep's reason). */
static const struct deployment *serving(struct call *c, const struct deployment *dep,
                                        const char **why)
{
    const char *first = NULL;
    c->crossed[0] = '\0';
    for (; dep != NULL; dep = router_next(c->gen->router, &c->route)) {
        if ((c->proto = protocol_for(c->api, dep, why)) == NULL) {
            if (first == NULL)
                first = *why;
            continue;
        }
        if (config_budget_admit(c, dep, c->crossed, sizeof(c->crossed)))
            return dep;
        log_request(LOG_INFO, c->request_id, "%s passed over: %s", dep->model, c->crossed);
        router_pass_over(&c->route);
    }
    *why = first;
    return NULL;
}

/* Every deployment left was passed over for a spent budget: LiteLLM's 429. */
static bool refuse_crossed(struct call *c)
{
    if (c->crossed[0] == '\0')
        return false;
    stats_budget_refusal(c->px->stats, "deployment");
    call_error(c, 429, "rate_limit_error", NULL, "No deployments available - crossed budget: %s",
               c->crossed);
    return true;
}

/* Sends the request to c->dep. -1 with err "" (out of memory, no URL) or a
 * message for the client (the body cannot go to this deployment). */
static int start_attempt(struct call *c, char *err, size_t errlen)
{
    char url[4096];
    const struct deployment *d = c->dep;
    struct upstream_req ur = call_upstream_req(c);
    char *body = c->proto->body(&ur, err, errlen);
    struct curl_slist *headers = protocol_headers(&ur);
    int timeout = d->timeout_ms > 0 ? d->timeout_ms : c->gen->cfg->router.timeout_ms;
    int idle = d->stream_timeout_ms > 0 ? d->stream_timeout_ms : timeout;
    c->attempt_start_us = call_since_us(&c->t0);
    struct relay_request rq = {.method = "POST", .url = url, .headers = headers, .body = body,
                               .body_len = body ? strlen(body) : 0,
                               /* a stream may run long; what must not last is silence */
                               .timeout_ms = c->stream ? 0 : timeout,
                               .idle_timeout_s = c->stream ? (idle + 999) / 1000 : 0,
                               .on_data = c->stream ? stream_on_data : NULL,
                               .done = on_upstream, .arg = c,
                               .tls_unchecked = !c->gen->cfg->ssl_verify,
                               .ca_file = c->gen->cfg->ssl_ca_file};
    if (body == NULL || headers == NULL || c->proto->url(&ur, url, sizeof(url)) < 0 ||
        relay_start(c->px->relay, &rq, &c->xfer) < 0) {
        if (body != NULL)
            err[0] = '\0';
        free(body);
        curl_slist_free_all(headers);
        return -1;
    }
    router_attempt_start(c->gen->router, d); /* on_upstream ends it */
    if (c->stream)
        stream_watch(c);
    return 0;
}

/* Where a failed attempt goes: after a context-window or content-policy
 * error, that kind's fallbacks (LiteLLM's; none: the error stands); after
 * another retryable failure, the group's next deployment or its fallbacks. */
static const struct deployment *after_failure(struct call *c, struct relay_transfer *t,
                                              CURLcode result)
{
    enum route_fallback kind =
        result == CURLE_OK ? upstream_error_kind(t->status, c->stream ? c->error_body
                                                                      : t->response)
                           : ROUTE_FALLBACK_ANY;
    if (kind != ROUTE_FALLBACK_ANY)
        return router_switch(c->gen->router, &c->route, kind);
    return retryable(t, result) ? router_next(c->gen->router, &c->route) : NULL;
}

/* After a failure, before the client saw anything: next deployment. */
static bool retry(struct call *c, struct relay_transfer *t, CURLcode result)
{
    const struct deployment *next, *failed = c->dep;
    const struct protocol *failed_proto = c->proto; /* serving() sets the next one's */
    const char *why;
    char err[512];
    if (c->pinned || c->started || c->client_gone ||
        (next = serving(c, after_failure(c, t, result), &why)) == NULL) {
        c->proto = failed_proto;
        return false;
    }
    log_request(LOG_WARN, c->request_id, "%s failed (%s), trying %s", c->dep->model,
                result != CURLE_OK ? curl_easy_strerror(result) : "HTTP error", next->model);
    stats_retry(c->px->stats, c->model_group);
    if (c->error_body != NULL)
        evbuffer_drain(c->error_body, evbuffer_get_length(c->error_body));
    c->dep = next;
    if (start_attempt(c, err, sizeof(err)) == 0)
        return true;
    c->dep = failed; /* the failure the client is told of is the last one that ran */
    c->proto = failed_proto;
    return false;
}

/* Why an attempt failed, as the metrics label it; NULL: it did not. */
static const char *failure(const struct relay_transfer *t, CURLcode result)
{
    if (result == CURLE_OPERATION_TIMEDOUT)
        return "timeout";
    if (result == CURLE_COULDNT_CONNECT || result == CURLE_COULDNT_RESOLVE_HOST)
        return "connect";
    if (result != CURLE_OK)
        return "transfer";
    return t->status == 429 ? "http_429" : t->status >= 500 ? "http_5xx" : NULL;
}

static void on_upstream(struct relay_transfer *t, CURLcode result, void *arg)
{
    struct call *c = arg;
    c->xfer = NULL;
    c->upstream_us += call_since_us(&c->t0) - c->attempt_start_us;
    router_attempt_end(c->gen->router, c->dep, result == CURLE_OPERATION_TIMEDOUT);
    if (result != CURLE_ABORTED_BY_CALLBACK && result != CURLE_WRITE_ERROR) {
        const char *why = failure(t, result);
        router_report(c->gen->router, c->dep, why == NULL);
        if (why != NULL)
            stats_upstream_error(c->px->stats, c->model_group, why);
    }
    if (retry(c, t, result))
        return;
    if (c->stream)
        stream_done(c, t, result);
    else
        answer_whole(c, t, result);
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
    c->key.models_json = key->models_json ? strdup(key->models_json) : NULL;
    c->key.team_models_json = key->team_models_json ? strdup(key->team_models_json) : NULL;
    c->key.key = key->key;
    c->key.user = key->user;
    c->key.team = key->team;
    c->key.member = key->member;
    c->key.fetched_ms = key->fetched_ms;
    c->key.key_rate = key->key_rate;
    c->key.user_rate = key->user_rate;
    c->key.team_rate = key->team_rate;
    c->key.member_rate = key->member_rate;
    c->key.max_parallel = key->max_parallel;
    c->key.model_rate_json = key->model_rate_json ? strdup(key->model_rate_json) : NULL;
    response_id_owner(key->user_id, key->team_id, c->owner);
    return (key->key_alias && !c->key.key_alias) || (key->user_id && !c->key.user_id) ||
           (key->team_id && !c->key.team_id) || (key->models_json && !c->key.models_json) ||
           (key->team_models_json && !c->key.team_models_json) ||
           (key->model_rate_json && !c->key.model_rate_json)
               ? -1 : 0;
}

/* A request its API sends to one deployment (protocol.h's pin) goes there
 * only, without retries elsewhere. -1 when it was answered and freed. */
static int pin(struct call *c)
{
    const struct deployment *d = NULL;
    const char *why;
    char err[512];
    int status = c->front->pin == NULL ? 0
                 : c->front->pin(c->body, c->gen->cfg,
                                 router_resolve(c->gen->router, c->model_group), c->owner,
                                 c->key.token[0] == '\0', &d, err, sizeof(err));
    if (status != 0) {
        call_error(c, status, status == 403 ? "permission_error" : "invalid_request_error",
                   "previous_response_id", "%s", err);
        call_free(c);
        return -1;
    }
    /* tag routing is access: a deployment the request's tags may not reach is no pin */
    if (d != NULL && router_admits(c->gen->router, &c->route, d) &&
        (c->proto = protocol_for(c->api, d, &why)) != NULL) {
        c->crossed[0] = '\0';
        if (!config_budget_admit(c, d, c->crossed, sizeof(c->crossed)) && refuse_crossed(c)) {
            call_free(c);
            return -1;
        }
        c->dep = d;
        c->pinned = true;
    }
    return 0;
}

/* May the caller's key (kept: keep_key) use model group or alias name? An
 * alias: its name or its group allowed (LiteLLM's _can_object_call_model).
 * The asked model and each fallback group (route_match.may_use) alike. */
static bool call_may_use(const void *arg, const char *name)
{
    const struct call *c = arg;
    return auth_model_allowed(&c->key, name) ||
           auth_model_allowed(&c->key, router_resolve(c->gen->router, name));
}

/* What the routing strategy may weigh: the prompt's tokens (counted only
 * when it does), the request's max tokens, stream or not. */
static struct route_request route_request_of(struct call *c)
{
    struct route_request rq = {.prices = c->gen->prices, .stream = c->stream};
    bool estimated;
    if (router_counts_prompt_for(c->gen->router, c->model_group)) {
        rq.prompt_tokens = c->front->prompt_tokens(c->body, c->model_group, &estimated);
        rq.prompt_tokens = rq.prompt_tokens > 0 ? rq.prompt_tokens : 0;
        rq.max_output = c->front->max_output(c->body);
    }
    return rq;
}

static void route_and_start(struct call *c)
{
    struct route_request rq = route_request_of(c);
    struct route_match m = {c->route_tags, 0, .may_use = call_may_use, .may_use_arg = c};
    enum route_refusal refusal;
    while (m.n_tags < json_array_size(c->tags) && m.n_tags < OWNERS_MAX_TAGS) {
        c->route_tags[m.n_tags] = json_string_value(json_array_get(c->tags, m.n_tags));
        m.n_tags++;
    }
    const struct deployment *first = router_start(c->gen->router, c->model_group, &rq, &m,
                                                  &c->route, &refusal);
    const char *why = NULL;
    char err[512];
    if (first == NULL && c->route.full) {
        call_error(c, 429, "rate_limit_error", NULL,
                   "No deployments available for selected model, Try again in %d seconds. "
                   "Passed model=%s. Each deployment is at its max_parallel_requests or over "
                   "its rpm/tpm this minute", (c->gen->cfg->router.cooldown_ms + 999) / 1000,
                   c->model_group);
        call_free(c);
        return;
    }
    if (first == NULL && refusal == ROUTE_NO_TAG_MATCH) { /* LiteLLM's 401 */
        route_filter_refusal(&c->route, err, sizeof(err));
        call_error(c, 401, "auth_error", "model", "%s", err);
        call_free(c);
        return;
    }
    if (first == NULL) {
        call_error(c, 400, "invalid_request_error", "model",
                       "Invalid model name passed in model=%s. Call `/v1/models` to view "
                       "available models for your key. Available: %s",
                       c->model_group, router_group_names(c->gen->router));
        call_free(c);
        return;
    }
    if ((c->dep = serving(c, first, &why)) == NULL) {
        if (!refuse_crossed(c))
            call_error(c, 400, "invalid_request_error", "model", "Model group %s %s",
                       c->model_group, why);
        call_free(c);
        return;
    }
    if (pin(c) < 0)
        return;
    if (start_attempt(c, err, sizeof(err)) < 0) {
        if (err[0] != '\0')
            call_error(c, 400, "invalid_request_error", NULL, "%s", err);
        else
            call_error(c, 500, "internal_error", NULL, "cannot start the upstream request");
        call_free(c);
    }
}

static void admit(struct call *c);

static void on_fresh_key(const struct keyinfo *key, const char *error, void *arg)
{
    struct call *c = arg;
    if (key == NULL || !key->found) {
        call_error(c, key == NULL ? 503 : 401, key == NULL ? "service_unavailable"
                                                                     : "auth_error",
                       NULL, "Key check failed: %s", key == NULL ? error : "key not found");
        call_free(c);
        return;
    }
    c->key.key = key->key;
    c->key.user = key->user;
    c->key.team = key->team;
    c->key.member = key->member;
    c->key.fetched_ms = key->fetched_ms;
    admit(c);
}

static void on_admit_wait(evutil_socket_t fd, short what, void *arg)
{
    struct call *c = arg;
    (void)fd;
    (void)what;
    event_free(c->wait_ev);
    c->wait_ev = NULL;
    keystore_lookup_fresh(c->px->keys, c->key.token, on_fresh_key, c);
}

/* The 400 of a spent budget, with x-tollgate-budget-reset-at (RFC 3339,
 * UTC) when the budget has a period. */
static void refuse_budget(struct call *c, const struct admission_refusal *why)
{
    time_t secs = (time_t)(why->reset_at_us / 1000000);
    long us = (long)(why->reset_at_us % 1000000);
    struct tm tm;
    char at[64];
    if (why->reset_at_us > 0 && gmtime_r(&secs, &tm) != NULL) {
        size_t len = strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(at + len, sizeof(at) - len, us != 0 ? ".%06ld+00:00" : "+00:00", us);
        if (evhttp_add_header(evhttp_request_get_output_headers(c->req),
                              "x-tollgate-budget-reset-at", at) != 0)
            log_request(LOG_WARN, c->request_id, "cannot add x-tollgate-budget-reset-at");
    }
    stats_budget_refusal(c->px->stats, why->kind);
    call_error(c, 400, "budget_exceeded", NULL, "%s", why->msg);
}

/* Refuses a spent budget (400, LiteLLM's words) or reserves and goes on.
 * When only costs not yet acked by accountd stand in the way, waits for the
 * acks and a row fetched after them, so a cost is never counted twice. */
static void admit(struct call *c)
{
    struct admission_refusal why;
    struct budget_extra extra[2 + OWNERS_MAX_TAGS];
    size_t n = 0, people = (c->end_user != NULL) + c->n_tag_rows;
    for (size_t i = 0; i < people && i < c->n_owner_rows; i++) {
        bool customer = c->end_user != NULL && i == 0;
        const char *id = customer ? c->end_user
                                  : json_string_value(json_array_get(c->tags, i - (c->end_user != NULL)));
        extra[n++] = (struct budget_extra){customer ? 'c' : 'g', id, &c->owner_rows[i].budget,
                                           c->owner_rows[i].fetched_ms};
    }
    if (config_budget_proxy(c, &extra[n]))
        n++;
    const struct keyinfo *key = c->key.token[0] != '\0' ? &c->key : NULL;
    /* the deployment's budgets (config_budget.c) reserve the same amount later */
    bool reserve = reserve_needed(key, extra, n) || c->gen->cfg->n_budgets > 0;
    int rc = admission_admit(c->px->admission, key, extra, n, reserve ? reserve_for(c) : 0,
                             &c->reservation, &why);
    if (rc == 0) {
        call_limits_take(c, route_and_start);
        return;
    }
    struct timeval tv = {0, ADMIT_WAIT_MS * 1000};
    if (rc == ADMISSION_UNSURE && key != NULL && c->admit_waits++ < ADMIT_WAITS_MAX &&
        (c->wait_ev = evtimer_new(c->px->base, on_admit_wait, c)) != NULL &&
        evtimer_add(c->wait_ev, &tv) == 0)
        return;
    refuse_budget(c, &why);
    call_free(c);
}

/* The end user's, the tags' and the config budgets' rows are here (in
 * check_owners' order): a blocked customer is refused. */
static void on_owners(const struct owner_row *rows, size_t n, const char *error, void *arg)
{
    struct call *c = arg;
    size_t first_tag = c->end_user != NULL ? 1 : 0;
    if (error != NULL && strcmp(error, OWNERS_OOM) == 0) {
        call_error(c, 500, "internal_error", NULL, "out of memory");
        call_free(c);
        return;
    }
    if (error == KEYSTORE_BUSY) { /* a flood of made-up end users or tags (owners.c) */
        evhttp_add_header(evhttp_request_get_output_headers(c->req), "Retry-After",
                          OWNERS_BUSY_RETRY_S);
        call_error(c, 429, "rate_limit_error", NULL,
                   "Too many checks of new end users or tags in flight; retry after %s s",
                   OWNERS_BUSY_RETRY_S);
        call_free(c);
        return;
    }
    if (error != NULL) {
        call_error(c, 503, "service_unavailable", NULL,
                       "Budget check unavailable: the database cannot be reached");
        call_free(c);
        return;
    }
    if (c->end_user != NULL && rows[0].blocked) {
        call_error(c, 403, "permission_error", "user",
                       "End user=%s is blocked. Update via `/customer/unblock` if you're an admin.",
                       c->end_user);
        call_free(c);
        return;
    }
    if ((c->owner_rows = malloc((n ? n : 1) * sizeof(*c->owner_rows))) == NULL) {
        call_error(c, 500, "internal_error", NULL, "out of memory");
        call_free(c);
        return;
    }
    memcpy(c->owner_rows, rows, n * sizeof(*rows));
    c->n_owner_rows = n;
    if (c->end_user != NULL && !rows[0].budget.has_max && c->gen->cfg->max_end_user_budget > 0) {
        /* litellm_settings.max_end_user_budget: an end user without a budget of its own */
        c->owner_rows[0].budget.has_max = true;
        c->owner_rows[0].budget.max = c->gen->cfg->max_end_user_budget;
    }
    c->n_tag_rows = json_array_size(c->tags);
    if (c->gen->cfg->n_budgets > 0) {
        c->budget_rows = (int)(first_tag + c->n_tag_rows);
        config_budget_rows(c->gen->cfg, c->owner_rows + c->budget_rows);
    }
    admit(c);
}

/* End user, tags and the config's budgets come into play: fetch their
 * rows, then admit. */
static void check_owners(struct call *c)
{
    size_t ntags = json_array_size(c->tags), n = 0;
    if (c->end_user == NULL && ntags == 0 && c->gen->cfg->n_budgets == 0) {
        admit(c);
        return;
    }
    const struct config *cfg = c->gen->cfg;
    char **names = calloc(1 + ntags + cfg->n_budgets, sizeof(*names));
    int ok = names != NULL;
    if (ok && c->end_user != NULL && (names[n++] = malloc(strlen(c->end_user) + 3)) != NULL)
        sprintf(names[n - 1], "c:%s", c->end_user);
    for (size_t i = 0; ok && i < ntags; i++) {
        const char *tag = json_string_value(json_array_get(c->tags, i));
        if ((names[n++] = malloc(strlen(tag) + 3)) != NULL)
            sprintf(names[n - 1], "g:%s", tag);
    }
    size_t owned = n; /* the config budgets' names are the config's */
    for (size_t i = 0; ok && i < cfg->n_budgets; i++)
        names[n++] = cfg->budgets[i].owner;
    for (size_t i = 0; ok && i < n; i++)
        ok = names[i] != NULL;
    if (ok)
        owners_lookup(c->px->owners, (const char *const *)names, n, on_owners, c);
    for (size_t i = 0; names != NULL && i < owned; i++)
        free(names[i]);
    free(names);
    if (!ok) {
        call_error(c, 500, "internal_error", NULL, "out of memory");
        call_free(c);
    }
}

/* The key's tags join the request's (LiteLLM: key tags are request tags),
 * before their budgets are fetched. 0, or -1 answered and freed. */
static int add_key_tags(struct call *c, const struct keyinfo *key)
{
    json_t *kt = key != NULL && key->tags_json != NULL ? json_loads(key->tags_json, 0, NULL)
                                                       : NULL, *t;
    size_t i;
    if (json_array_size(kt) > 0 && c->tags == NULL && (c->tags = json_array()) == NULL)
        goto oom;
    json_array_foreach(kt, i, t) {
        bool seen = false;
        for (size_t j = 0; j < json_array_size(c->tags) && !seen; j++)
            seen = json_equal(json_array_get(c->tags, j), t);
        if (seen || !json_is_string(t) || json_string_length(t) == 0 ||
            json_string_length(t) > 255)
            continue;
        if (json_array_size(c->tags) >= OWNERS_MAX_TAGS) {
            call_error(c, 400, "invalid_request_error", "metadata.tags",
                           "metadata.tags and the key's tags together are more than %d tags",
                           OWNERS_MAX_TAGS);
            json_decref(kt);
            call_free(c);
            return -1;
        }
        if (json_array_append(c->tags, t) < 0)
            goto oom;
    }
    json_decref(kt);
    return 0;
oom:
    json_decref(kt);
    call_error(c, 500, "internal_error", NULL, "out of memory");
    call_free(c);
    return -1;
}

/* general_settings.global_max_parallel_requests: requests past their key
 * check in flight on this proxyd (per instance, as LiteLLM's), counted
 * after the check as LiteLLM's pre-call hook counts them. false: answered
 * LiteLLM's 429 and freed. */
static bool parallel_take(struct call *c)
{
    long max = c->gen->cfg->global_max_parallel;
    if (max <= 0)
        return true;
    if (c->px->authorized >= (size_t)max) {
        stats_budget_refusal(c->px->stats, "global_parallel");
        call_error(c, 429, "rate_limit_error", NULL, "Max parallel request limit reached Hit "
                   "Global Limit: Limit=%ld, current: %zu", max, c->px->authorized);
        call_free(c);
        return false;
    }
    c->px->authorized++;
    c->authorized = true;
    return true;
}

static void on_auth(const struct keyinfo *key, int refused, void *arg)
{
    struct call *c = arg;
    if (refused) {
        c->status = refused;
        call_free(c);
        return;
    }
    if (keep_key(c, key) < 0) {
        call_error(c, 500, "internal_error", NULL, "out of memory");
        call_free(c);
        return;
    }
    if (!call_may_use(c, c->model_group)) {
        const char *resolved = router_resolve(c->gen->router, c->model_group);
        if (!auth_list_allows(key->team_models_json, c->model_group) &&
            !auth_list_allows(key->team_models_json, resolved))
            call_error(c, 401, "team_model_access_denied", "model",
                       "team not allowed to access model. This team can only access "
                       "models=%s. Tried to access %s", key->team_models_json, c->model_group);
        else
            call_error(c, 401, "auth_error", "model",
                       "Authentication Error, API Key not allowed to access model. This token "
                       "can only access models=%s. Tried to access %s",
                       key->models_json, c->model_group);
        call_free(c);
        return;
    }
    if (parallel_take(c) && add_key_tags(c, key) == 0)
        check_owners(c);
}

void call_start(struct proxy *px, struct evhttp_request *req, enum api api,
                const char *route, const char *path_model)
{
    struct call *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        httpjson_error_as(req, api_front(api)->errors, 500, "internal_error", NULL,
                          "out of memory");
        return;
    }
    *c = (struct call){.px = px, .gen = generation_ref(px->gen), .req = req, .api = api,
                       .front = api_front(api),
                       .route_name = route, .start_us = wall_us(), .ttfb_us = -1,
                       .prompt_estimate = PROMPT_UNCOUNTED, .budget_rows = -1};
    clock_gettime(CLOCK_MONOTONIC, &c->t0);
    px->in_flight++;
    if (ids_uuid7(c->request_id) < 0) {
        call_error(c, 500, "internal_error", NULL, "no randomness for a request id");
        call_free(c);
        return;
    }
    if (publisher_full(px->pub)) {
        call_error(c, 503, "service_unavailable", NULL,
                   "Usage spool is full (accountd unreachable): new requests are refused "
                   "so that every request stays billable");
        call_free(c);
        return;
    }
    if ((c->body = httpjson_body_as(req, px->cfg->proxyd.max_body_bytes, c->front->errors)) ==
        NULL) {
        c->status = evhttp_request_get_response_code(req); /* answered just now, req still ours */
        call_free(c);
        return;
    }
    if (path_model != NULL &&
        json_object_set_new(c->body, "model", json_string(path_model)) != 0) {
        call_error(c, 500, "internal_error", NULL, "out of memory");
        call_free(c);
        return;
    }
    json_t *model = json_object_get(c->body, "model");
    json_t *stream = json_object_get(c->body, "stream");
    if (!json_is_string(model) || json_string_length(model) == 0) {
        call_error(c, 400, "invalid_request_error", "model", "model is required (a string)");
        call_free(c);
        return;
    }
    if (stream != NULL && !json_is_boolean(stream) && !json_is_null(stream)) {
        call_error(c, 400, "invalid_request_error", "stream", "stream must be a boolean");
        call_free(c);
        return;
    }
    c->stream = json_is_true(stream) && c->front->streams;
    c->client_wants_usage = c->front->stream_usage(c->body);
    c->model_group = json_string_value(model);
    if (read_attribution(c) < 0) {
        call_free(c);
        return;
    }
    auth_check(px, req, c->front->errors, on_auth, c);
}
