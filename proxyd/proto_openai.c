/* proto_openai.c - OpenAI's chat, completions, embeddings and images APIs
 * on OpenAI-compatible and Azure OpenAI deployments.
 *
 * The body goes up with the deployment's model name and without metadata
 * (the gateway's tags and the like); streams always ask for usage
 * (stream_options.include_usage), so that every stream can be priced. A
 * stream's usage chunk reaches the client with usage.cost when it asked for
 * usage, and is withheld when it did not.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "money.h"
#include "protocol.h"
#include "sse.h"
#include "usage.h"

static const char *const PATH[] = {
    [API_CHAT] = "chat/completions", [API_COMPLETION] = "completions",
    [API_EMBEDDING] = "embeddings", [API_IMAGE] = "images/generations"};

static int openai_url(const struct upstream_req *r, char *url, size_t len)
{
    const struct deployment *d = r->d;
    int n = d->kind == UPSTREAM_AZURE
                ? snprintf(url, len, "%s/openai/deployments/%s/%s?api-version=%s", d->api_base,
                           d->upstream_model, PATH[r->api], d->api_version)
                : snprintf(url, len, "%s/%s", d->api_base, PATH[r->api]);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

/* Streams always ask for usage; the client's own stream_options are kept. */
static int ask_usage(json_t *b)
{
    json_t *opts = json_object_get(b, "stream_options");
    json_t *copy = json_is_object(opts) ? json_copy(opts) : json_object();
    return copy != NULL && json_object_set_new(copy, "include_usage", json_true()) == 0 &&
           json_object_set_new(b, "stream_options", copy) == 0 ? 0 : -1;
}

static char *openai_body(const struct upstream_req *r, char *err, size_t errlen)
{
    json_t *b = protocol_body_copy(r);
    if (errlen > 0)
        err[0] = '\0';
    if (b == NULL || (r->stream && ask_usage(b) < 0)) {
        json_decref(b);
        return NULL;
    }
    json_object_del(b, "metadata");
    return protocol_dump(b);
}

static int openai_answer(const struct upstream_req *r, json_t *answer, struct usage *u,
                         json_t **client)
{
    json_t *usage = json_object_get(answer, "usage");
    *client = NULL;
    *u = (struct usage){0};
    /* An image answer may carry no usage: its price is per pixel or image. */
    if (r->api == API_IMAGE && usage == NULL)
        return 0;
    return usage_from_json(usage, u);
}

/* Collects choices[].delta.content (chat) and choices[].text (completions). */
static void collect_text(struct sse_filter *f, json_t *chunk)
{
    size_t i;
    json_t *choice;
    json_array_foreach(json_object_get(chunk, "choices"), i, choice) {
        json_t *t = json_object_get(json_object_get(choice, "delta"), "content");
        if (!json_is_string(t))
            t = json_object_get(choice, "text");
        if (json_is_string(t))
            sse_keep_text(f, json_string_value(t), json_string_length(t));
    }
}

/* The usage chunk, rewritten for the client: with usage.cost, or without
 * usage at all (dropped when it carries nothing else). */
static int rewrite_usage(struct sse_filter *f, json_t *chunk, struct evbuffer *out)
{
    size_t n_choices = json_array_size(json_object_get(chunk, "choices"));
    char cost[MONEY_STR_MAX];
    sse_price(f, chunk, cost);
    if (!sse_client_wants_usage(f)) {
        if (n_choices == 0)
            return 0;
        json_object_del(chunk, "usage");
    } else if (sse_set_cost(chunk, cost) < 0) {
        return -1;
    }
    return sse_write(out, NULL, chunk);
}

static int openai_event(void *state, struct sse_filter *f, const char *name, json_t *chunk,
                        const char *raw, size_t raw_len, struct evbuffer *out)
{
    struct usage u;
    (void)state, (void)name;
    collect_text(f, chunk);
    json_t *usage = json_object_get(chunk, "usage");
    if (json_is_object(usage) && usage_from_json(usage, &u) == 0) {
        sse_set_usage(f, &u, true);
        return rewrite_usage(f, chunk, out);
    }
    if (json_object_get(chunk, "choices") != NULL)
        sse_count_content(f);
    return evbuffer_add(out, raw, raw_len) == 0 ? 0 : -1;
}

const struct protocol PROTO_OPENAI = {
    .url = openai_url, .body = openai_body, .answer = openai_answer, .error = NULL,
    .stream_new = NULL, .stream_free = NULL, .stream_event = openai_event,
};
