/* answer.c - what a relayed request leaves behind: the answer's
 * x-litellm-* headers, whole (non-streamed) answers and failures, and the
 * one usage event per request handed to the publisher.
 *
 * The cost in x-litellm-response-cost is computed here with the same price
 * library and the same inputs accountd uses, so header == ledger.
 */
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call_priv.h"
#include "config_budget.h"
#include "event.h"
#include "events.pb-c.h"
#include "httpjson.h"
#include "journal.h"
#include "log.h"
#include "reload.h"
#include "publish.h"
#include "usage.h"

void answer_usage_complete(struct call *c, const json_t *answer, struct usage *u)
{
    if (usage_note_request(c->body, c->api == API_IMAGE, u) < 0)
        log_request(LOG_WARN, c->request_id, "image n or size is malformed: priced as 1 "
                    "image of 1024x1024");
    if (answer != NULL)
        usage_note_answer(answer, u);
    if (u->duration_us == 0)
        u->duration_us = call_since_us(&c->t0);
}

static void fill_event(const struct call *c, Tollgate__UsageEvent *e, const struct usage *u,
                       int status, char in_price[MONEY_STR_MAX], char out_price[MONEY_STR_MAX])
{
    const struct deployment *d = c->dep;
    e->request_id = (char *)c->request_id;
    e->call_type = (char *)c->front->call_type;
    e->start_time_us = c->start_us;
    /* A priced request ends when its usage was complete: the duration a
     * per-second price was computed from. */
    e->end_time_us = c->start_us + (u->duration_us > 0 ? u->duration_us : call_since_us(&c->t0));
    e->api_key = (char *)c->key.token;
    e->user_id = c->key.user_id;
    e->team_id = c->key.team_id;
    e->key_alias = c->key.key_alias;
    e->end_user = c->end_user;
    e->metadata_json = c->metadata_json;
    e->model_group = (char *)c->model_group;
    event_fill_deployment(e, d, in_price, out_price);
    event_fill_usage(e, u);
    e->http_status = status;
}

uint8_t *answer_pack(const struct call *c, const struct usage *u, int status, bool estimated,
                     size_t *len)
{
    Tollgate__UsageEvent e = TOLLGATE__USAGE_EVENT__INIT;
    char in_price[MONEY_STR_MAX], out_price[MONEY_STR_MAX];
    size_t ntags = json_array_size(c->tags);
    char *tags[ntags ? ntags : 1];
    for (size_t i = 0; i < ntags; i++)
        tags[i] = (char *)json_string_value(json_array_get(c->tags, i));
    fill_event(c, &e, u, status, in_price, out_price);
    e.has_usage_estimated = estimated;
    e.usage_estimated = estimated;
    e.n_tags = ntags;
    e.tags = tags;
    *len = tollgate__usage_event__get_packed_size(&e);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (buf != NULL)
        tollgate__usage_event__pack(&e, buf);
    return buf;
}

/* A success's latency and tokens, for the routing strategy (router_pick.h). */
static void sample_route(struct call *c, const struct usage *u)
{
    int64_t start = c->attempt_start_us;
    struct route_sample s = {
        .latency_us = call_since_us(&c->t0) - start,
        .ttft_us = c->stream && c->ttfb_us >= start ? c->ttfb_us - start : -1,
        .completion_tokens = u->completion_tokens, .total_tokens = u->total_tokens};
    router_attempt_sample(c->gen->router, c->dep, &s);
}

/* Hands the usage event to the publisher (which keeps it until acked). */
void answer_publish(struct call *c, const struct usage *u, int status, bool estimated)
{
    money_t cost = 0;
    char err[128];
    size_t len;
    c->status = status;
    if (status >= 200 && status < 300 && c->dep != NULL)
        sample_route(c, u);
    if (!c->front->charged)
        return; /* relayed, never billed (count_tokens) */
    call_limits_settle(c, u);
    if (price_cost(c->gen->prices, c->dep->model, &c->dep->price, u, &cost, err, sizeof(err)) !=
        PRICE_OK)
        cost = 0;
    config_budget_join(c);
    admission_settle(c->px->admission, &c->reservation, cost, c->request_id);
    uint8_t *buf = answer_pack(c, u, status, estimated, &len);
    int sent = buf != NULL ? publisher_send(c->px->pub, c->request_id, buf, len) : -1;
    if (sent < 0)
        log_error("request %s: out of memory queueing its usage event", c->request_id);
    else if (c->journaled && sent == 0) /* in the spool: the cut note is no longer needed */
        journal_close(c->px->journal, c->request_id);
    else if (c->journaled && journal_note(c->px->journal, c->request_id, buf, len) < 0)
        log_error("request %s: its usage event is in memory only (spool refused it, journal "
                  "too)", c->request_id); /* the journal keeps the final event in its place */
    free(buf);
}

static void add_header(struct reply_head *h, const char *name, const char *value)
{
    if (value != NULL && reply_head_add(h, name, value) != 0)
        log_warn("cannot add header %s", name);
}

void answer_price(struct call *c, const struct usage *u, char cost[MONEY_STR_MAX])
{
    money_t m = 0;
    char err[256];
    if (price_cost(c->gen->prices, c->dep->model, &c->dep->price, u, &m, err, sizeof(err)) ==
        PRICE_ERROR)
        log_request(LOG_WARN, c->request_id, "%s", err);
    money_format(m, cost);
}

/* Usage of a whole 2xx answer (all 0 when it has none) and, when the
 * protocol rewrites it, what the client gets instead (NULL: the bytes). */
static json_t *read_answer(struct call *c, struct evbuffer *body, struct usage *u)
{
    json_t *doc = httpjson_buffer_parse(body);
    json_t *client = NULL;
    struct upstream_req ur = call_upstream_req(c);
    if (c->proto->answer(&ur, doc, u, &client) < 0) {
        log_request(LOG_WARN, c->request_id, "upstream answer has no usable usage object");
        *u = (struct usage){0};
    }
    answer_usage_complete(c, doc, u);
    json_decref(doc);
    return client;
}

/* Replaces buf's bytes with doc's JSON (taken). -1 when out of memory. */
static int replace_body(struct evbuffer *buf, json_t *doc)
{
    int rc = httpjson_buffer_set(buf, doc, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(doc);
    return rc;
}

void answer_rewrite_error(struct call *c, struct evbuffer *body, int status)
{
    if (c->proto->error == NULL || body == NULL)
        return;
    json_t *doc = httpjson_buffer_parse(body);
    struct upstream_req ur = call_upstream_req(c);
    json_t *client = c->proto->error(&ur, doc, status);
    json_decref(doc);
    if (client != NULL && replace_body(body, client) < 0)
        log_request(LOG_ERROR, c->request_id, "out of memory rewriting the upstream's error");
}

void answer_headers(struct call *c, const char *content_type, const char *cost)
{
    struct reply_head *h = &c->head;
    char num[32];
    add_header(h, "Content-Type", content_type[0] ? content_type : "application/json");
    add_header(h, "x-litellm-call-id", c->request_id);
    add_header(h, "x-litellm-response-cost", cost);
    add_header(h, "x-litellm-model-api-base", c->dep->api_base);
    add_header(h, "x-litellm-model-group", c->model_group);
    if (c->key.token[0] != '\0') {
        char money[MONEY_STR_MAX];
        money_format(c->key.key.spend, money);
        add_header(h, "x-litellm-key-spend", money);
        money_format(c->key.key.max, money);
        add_header(h, "x-litellm-key-max-budget", c->key.key.has_max ? money : NULL);
    }
    int64_t total = call_since_us(&c->t0);
    snprintf(num, sizeof(num), "%.3f", (double)total / 1000.0);
    add_header(h, "x-litellm-response-duration-ms", num);
    int64_t upstream = c->upstream_us + (c->xfer != NULL ? total - c->attempt_start_us : 0);
    snprintf(num, sizeof(num), "%.3f", (double)(total - upstream) / 1000.0);
    add_header(h, "x-litellm-overhead-duration-ms", num);
}

void answer_failed(struct call *c, struct relay_transfer *t, CURLcode result)
{
    struct usage u = {0};
    int status = result == CURLE_OPERATION_TIMEDOUT ? 504 : 502;
    const char *why = t->errbuf[0] ? t->errbuf : curl_easy_strerror(result);
    log_request(LOG_WARN, c->request_id, "upstream %s failed: %s", c->dep->api_base, why);
    if (c->req != NULL)
        call_error(c, status, "upstream_error", NULL, "Upstream %s failed: %s",
                       c->dep->model_name, why);
    answer_publish(c, &u, status, false);
}

void answer_whole(struct call *c, struct relay_transfer *t, CURLcode result)
{
    struct usage u = {0};
    char cost[MONEY_STR_MAX];
    if (result != CURLE_OK) {
        answer_failed(c, t, result);
        return;
    }
    int status = (int)t->status;
    bool ok = status >= 200 && status < 300;
    json_t *client = ok ? read_answer(c, t->response, &u) : NULL;
    if (ok)
        answer_price(c, &u, cost);
    else
        answer_rewrite_error(c, t->response, status);
    if (client != NULL && replace_body(t->response, client) < 0)
        log_request(LOG_ERROR, c->request_id, "out of memory rewriting the answer");
    answer_headers(c, t->content_type, ok ? cost : NULL);
    /* The event is queued before the answer leaves, so it is never younger than the 2xx. */
    answer_publish(c, &u, status, false);
    reply_send(c->req, status, &c->head, t->response);
}
