/* proto_responses.c - OpenAI's Responses API (POST /v1/responses) on
 * OpenAI-compatible and Azure OpenAI deployments.
 *
 * The body goes up with the deployment's model name and without the
 * gateway's metadata.tags. Usage: the answer's "usage", or in a stream the
 * response of response.completed (or .incomplete / .failed), the stream's
 * last event, held back until the request's usage event is queued. Web
 * searches are the answer's web_search_call items.
 *
 * The ids in answers and in stream events that carry the response object
 * are made the client's (response_id.h): they name the deployment, the
 * creating key's user or team and, for a background response, the
 * creating request, whose ledger row's owners its cost is billed to when a
 * retrieve shows it ended (background.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"
#include "response_id.h"
#include "sse.h"
#include "usage.h"

struct responses_stream {
    const struct config *cfg;
    const struct deployment *d;
    const json_t *body;          /* the client's, for its web search tool */
    char owner[RESPONSE_OWNER_LEN + 1];
};

int responses_url(const struct deployment *d, const char *tail, char *url, size_t len)
{
    int n = d->kind == UPSTREAM_AZURE
                ? snprintf(url, len, "%s/openai/responses%s?api-version=%s", d->api_base, tail,
                           d->api_version)
                : snprintf(url, len, "%s/responses%s", d->api_base, tail);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

static int create_url(const struct upstream_req *r, char *url, size_t len)
{
    return responses_url(r->d, "", url, len);
}

static char *responses_body(const struct upstream_req *r, char *err, size_t errlen)
{
    json_t *b = protocol_body_copy(r);
    const char *prev = json_string_value(json_object_get(r->body, "previous_response_id"));
    struct response_ref ref;
    if (errlen > 0)
        err[0] = '\0';
    /* the conversation's previous response, as the upstream knows it (call.c
     * pinned the request to its deployment) */
    if (b != NULL && prev != NULL && response_id_parse(r->cfg, prev, &ref) && ref.d == r->d &&
        json_object_set_new(b, "previous_response_id", json_string(ref.upstream_id)) != 0) {
        json_decref(b);
        return NULL;
    }
    return protocol_strip_tags(b) == 0 ? protocol_dump(b) : protocol_dump(NULL);
}

/* The search_context_size of the request's web search tool, which prices
 * each search ("" when it names none: medium). */
static void search_size(const json_t *body, struct usage *u)
{
    size_t i;
    const json_t *tool;
    json_array_foreach(json_object_get(body, "tools"), i, tool) {
        const char *type = json_string_value(json_object_get(tool, "type"));
        const char *size = json_string_value(json_object_get(tool, "search_context_size"));
        if (type != NULL && strncmp(type, "web_search", 10) == 0 && size != NULL &&
            strlen(size) < PRICE_WORD_MAX)
            snprintf(u->search_context_size, PRICE_WORD_MAX, "%s", size);
    }
}

/* The usage of a response object, web searches included (-1: none usable). */
int responses_usage(const json_t *response, struct usage *u)
{
    size_t i;
    const json_t *item;
    if (usage_from_responses(json_object_get(response, "usage"), u) < 0)
        return -1;
    search_size(response, u); /* the response echoes its tools */
    json_array_foreach(json_object_get(response, "output"), i, item) {
        const char *type = json_string_value(json_object_get(item, "type"));
        if (type != NULL && strcmp(type, "web_search_call") == 0)
            u->web_search_requests++;
    }
    return 0;
}

/* Gives the response object the id the client sees. creator: the request
 * that is billed later, when a retrieve shows the response ended (NULL for
 * one priced now). */
static int rewrite_id(const struct config *cfg, const struct deployment *d, json_t *response,
                      const char *owner, const char *creator)
{
    json_t *id = response_id_make(cfg, d, json_object_get(response, "id"), owner, creator);
    return id != NULL && json_object_set_new(response, "id", id) == 0 ? 0 : -1;
}

static int responses_answer(const struct upstream_req *r, json_t *answer, struct usage *u,
                            json_t **client)
{
    *u = (struct usage){0};
    *client = NULL;
    /* A background response answered without usage is priced when it ends:
     * its id names this request, whose ledger row's owners pay then. */
    bool later = json_is_true(json_object_get(answer, "background")) &&
                 json_is_null(json_object_get(answer, "usage"));
    if (json_is_string(json_object_get(answer, "id")) &&
        rewrite_id(r->cfg, r->d, answer, r->owner, later ? r->request_id : NULL) == 0)
        *client = json_incref(answer);
    if (later)
        return 0;
    if (responses_usage(answer, u) < 0)
        return -1;
    search_size(r->body, u);
    return 0;
}

static void *responses_stream_new(const struct upstream_req *r)
{
    struct responses_stream *s = malloc(sizeof(*s));
    if (s != NULL) {
        s->d = r->d;
        s->cfg = r->cfg;
        s->body = r->body;
        snprintf(s->owner, sizeof(s->owner), "%s", r->owner != NULL ? r->owner : "");
    }
    return s;
}

static bool is_last(const char *type)
{
    return strcmp(type, "response.completed") == 0 || strcmp(type, "response.incomplete") == 0 ||
           strcmp(type, "response.failed") == 0;
}

static int responses_event(void *state, struct sse_filter *f, const char *name, json_t *data,
                           const char *raw, size_t raw_len, struct evbuffer *out)
{
    struct responses_stream *s = state;
    const char *type = json_string_value(json_object_get(data, "type"));
    json_t *response = json_object_get(data, "response");
    struct usage u;
    char cost[MONEY_STR_MAX];
    if (type == NULL)
        return evbuffer_add(out, raw, raw_len) == 0 ? 0 : -1;
    if (strcmp(type, "response.output_text.delta") == 0) {
        const json_t *t = json_object_get(data, "delta");
        if (json_is_string(t))
            sse_keep_text(f, json_string_value(t), json_string_length(t));
        sse_count_content(f);
    }
    if (!json_is_object(response) || !json_is_string(json_object_get(response, "id")))
        return evbuffer_add(out, raw, raw_len) == 0 ? 0 : -1;
    if (is_last(type) && responses_usage(response, &u) == 0) {
        search_size(s->body, &u);
        sse_set_usage(f, &u, true);
        sse_price(f, response, cost);
    }
    if (rewrite_id(s->cfg, s->d, response, s->owner, NULL) < 0) /* priced at its end */
        return -1;
    if (!is_last(type))
        return sse_write(out, name, data);
    struct evbuffer *last = evbuffer_new();
    size_t len;
    int rc = last != NULL && sse_write(last, name, data) == 0 &&
             (len = evbuffer_get_length(last), sse_hold(f, (const char *)evbuffer_pullup(last, -1),
                                                         len)) == 0 ? 0 : -1;
    if (last != NULL)
        evbuffer_free(last);
    return rc;
}

const struct protocol PROTO_RESPONSES = {
    .url = create_url, .body = responses_body, .answer = responses_answer, .error = NULL,
    .stream_new = responses_stream_new, .stream_free = free, .stream_event = responses_event,
};
