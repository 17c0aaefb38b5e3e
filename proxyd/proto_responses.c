/* proto_responses.c - OpenAI's Responses API (POST /v1/responses) on
 * OpenAI-compatible and Azure OpenAI deployments.
 *
 * The body goes up with the deployment's model name and without the
 * gateway's metadata.tags. Usage: the answer's "usage", or in a stream the
 * response of response.completed (or .incomplete / .failed), the stream's
 * last event, held back until the request's usage event is queued. Web
 * searches are the answer's web_search_call items.
 *
 * The id the client sees names the deployment that holds the response
 * ("resp_tg" + 8 hex digits of the deployment + "_" + the upstream's id), so
 * that a later retrieve, cancel or delete reaches it from any proxyd, after
 * any restart (response_ops.c); the ids in answers and in stream events
 * that carry the response object are rewritten so. A background response's
 * id also names the request that created it ("resp_tg" + 8 + "b" + its 32
 * hex digits + "_" + ...): its cost is billed, when a retrieve shows it
 * complete, to the owners of that request's ledger row (background.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyhash.h"
#include "protocol.h"
#include "sse.h"
#include "usage.h"

#define ID_PREFIX "resp_tg"
#define TAG_LEN 8
#define UUID_HEX 32

struct responses_stream {
    const struct deployment *d;
    const json_t *body;          /* the client's, for its web search tool */
    char request_id[IDS_UUID_LEN + 1];
};

/* The deployment's tag: the start of SHA-256(model "\n" api_base). */
static int deployment_tag(const struct deployment *d, char tag[TAG_LEN + 1])
{
    char buf[4096], hex[KEYHASH_HEX_LEN + 1];
    int n = snprintf(buf, sizeof(buf), "%s\n%s", d->model, d->api_base);
    if (n < 0 || (size_t)n >= sizeof(buf) || keyhash_sha256_hex(buf, (size_t)n, hex) < 0)
        return -1;
    memcpy(tag, hex, TAG_LEN);
    tag[TAG_LEN] = '\0';
    return 0;
}

json_t *responses_client_id(const struct deployment *d, const json_t *upstream_id,
                            const char *creator)
{
    char tag[TAG_LEN + 1], hex[UUID_HEX + 2] = "";
    if (!json_is_string(upstream_id) || deployment_tag(d, tag) < 0)
        return NULL;
    if (creator != NULL) { /* the uuid without its dashes */
        size_t n = 0;
        hex[n++] = 'b';
        for (const char *p = creator; *p != '\0' && n <= UUID_HEX; p++)
            if (*p != '-')
                hex[n++] = *p;
        hex[n] = '\0';
    }
    return json_sprintf(ID_PREFIX "%s%s_%s", tag, hex, json_string_value(upstream_id));
}

/* "b" + 32 hex digits -> the creating request's uuid; the length read, or 0. */
static size_t read_creator(const char *s, char creator[IDS_UUID_LEN + 1])
{
    static const int GROUPS[] = {8, 4, 4, 4, 12};
    size_t n = 0, in = 1;
    if (s[0] != 'b' || strspn(s + 1, "0123456789abcdef") < UUID_HEX)
        return 0;
    for (size_t g = 0; g < 5; g++) {
        if (g > 0)
            creator[n++] = '-';
        memcpy(creator + n, s + in, (size_t)GROUPS[g]);
        n += (size_t)GROUPS[g];
        in += (size_t)GROUPS[g];
    }
    creator[n] = '\0';
    return 1 + UUID_HEX;
}

const struct deployment *responses_find(const struct config *cfg, const char *client_id,
                                        const char **upstream_id,
                                        char creator[IDS_UUID_LEN + 1])
{
    char tag[TAG_LEN + 1];
    size_t plen = strlen(ID_PREFIX);
    creator[0] = '\0';
    if (strncmp(client_id, ID_PREFIX, plen) != 0 || strlen(client_id) < plen + TAG_LEN + 2)
        return NULL;
    size_t at = plen + TAG_LEN + read_creator(client_id + plen + TAG_LEN, creator);
    if (client_id[at] != '_' || client_id[at + 1] == '\0')
        return NULL;
    for (size_t i = 0; i < cfg->n_deployments; i++) {
        const struct deployment *d = &cfg->deployments[i];
        if (d->kind != UPSTREAM_ANTHROPIC && deployment_tag(d, tag) == 0 &&
            memcmp(tag, client_id + plen, TAG_LEN) == 0) {
            *upstream_id = client_id + at + 1;
            return d;
        }
    }
    return NULL;
}

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
    if (errlen > 0)
        err[0] = '\0';
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
    json_array_foreach(json_object_get(response, "output"), i, item) {
        const char *type = json_string_value(json_object_get(item, "type"));
        if (type != NULL && strcmp(type, "web_search_call") == 0)
            u->web_search_requests++;
    }
    return 0;
}

/* Gives the response object the id the client sees: with the creating
 * request's for a background response. */
int responses_rewrite_id(const struct deployment *d, json_t *response, const char *request_id)
{
    bool background = json_is_true(json_object_get(response, "background"));
    json_t *id = responses_client_id(d, json_object_get(response, "id"),
                                     background ? request_id : NULL);
    return id != NULL && json_object_set_new(response, "id", id) == 0 ? 0 : -1;
}

static int responses_answer(const struct upstream_req *r, json_t *answer, struct usage *u,
                            json_t **client)
{
    *u = (struct usage){0};
    *client = NULL;
    if (json_is_string(json_object_get(answer, "id")) &&
        responses_rewrite_id(r->d, answer, r->request_id) == 0)
        *client = json_incref(answer);
    /* A background response has no usage yet: it is priced when it completes. */
    if (json_is_null(json_object_get(answer, "usage")))
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
        s->body = r->body;
        snprintf(s->request_id, sizeof(s->request_id), "%s", r->request_id);
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
    if (responses_rewrite_id(s->d, response, s->request_id) < 0)
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
