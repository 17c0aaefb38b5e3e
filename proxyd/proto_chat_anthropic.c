/* proto_chat_anthropic.c - OpenAI chat/completions served by an anthropic/
 * deployment: the request, answers, errors and stream events translated
 * by anthropic_chat.c, as LiteLLM translates them.
 *
 * The client sees OpenAI's chat shapes throughout; usage is priced from
 * Anthropic's own counts (cache reads and writes, 5-minute and 1-hour).
 * A stream's usage chunk carries usage.cost when the client asked for
 * usage (stream_options.include_usage) and is withheld when it did not;
 * "data: [DONE]" ends the stream once the usage event is queued.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anthropic_chat.h"
#include "money.h"
#include "protocol.h"
#include "shape.h"
#include "sse.h"
#include "usage.h"

static const char DONE[] = "data: [DONE]\n\n";

static int translated_url(const struct upstream_req *r, char *url, size_t len)
{
    int n = snprintf(url, len, "%s/v1/messages", r->d->api_base);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

/* The config's defaults and top-level drops apply to the chat body, its
 * nested drops to the Messages body it becomes (shape.h, as LiteLLM). */
static char *translated_body(const struct upstream_req *r, char *err, size_t errlen)
{
    err[0] = '\0';
    json_t *chat = shape_request(r->body, r->api, r->d, false);
    json_t *out = chat != NULL ? anthropic_chat_request(chat, r->d->upstream_model,
                                                        r->drop_params, err, errlen)
                               : NULL;
    json_decref(chat);
    if (out != NULL && shape_drop_nested(out, r->d) < 0) {
        json_decref(out);
        out = NULL;
    }
    return protocol_dump(out);
}

static int translated_answer(const struct upstream_req *r, json_t *answer, struct usage *u,
                             json_t **client)
{
    *client = anthropic_chat_answer(answer, r->model_group);
    return usage_from_anthropic(json_object_get(answer, "usage"), u);
}

static json_t *translated_error(const struct upstream_req *r, const json_t *upstream, int status)
{
    (void)r;
    return anthropic_chat_error(upstream, status);
}

static void *translated_stream_new(const struct upstream_req *r)
{
    return anthropic_chat_stream_new(r->model_group, NULL);
}

static void translated_stream_free(void *state)
{
    anthropic_chat_stream_free(state);
}

/* The usage Anthropic reported so far; final at message_delta. */
static void note_usage(struct anthropic_chat_stream *s, struct sse_filter *f, bool final)
{
    struct usage u;
    const json_t *usage = anthropic_chat_stream_usage(s);
    if (usage != NULL && usage_from_anthropic(usage, &u) == 0)
        sse_set_usage(f, &u, final);
}

/* The usage chunk: priced, and with usage.cost for a client that asked. */
static int usage_chunk(struct sse_filter *f, json_t *chunk, struct evbuffer *out)
{
    char cost[MONEY_STR_MAX];
    sse_price(f, chunk, cost);
    if (!sse_client_wants_usage(f))
        return 0;
    return sse_set_cost(chunk, cost) == 0 ? sse_write(out, NULL, chunk) : -1;
}

/* Keeps a chunk's generated text and tool arguments for a cut stream's count. */
static void keep_chunk_text(struct sse_filter *f, const json_t *chunk)
{
    size_t i;
    const json_t *choice, *call;
    json_array_foreach(json_object_get(chunk, "choices"), i, choice) {
        const json_t *delta = json_object_get(choice, "delta");
        const json_t *t = json_object_get(delta, "content");
        size_t j;
        if (json_is_string(t))
            sse_keep_text(f, json_string_value(t), json_string_length(t));
        json_array_foreach(json_object_get(delta, "tool_calls"), j, call) {
            t = json_object_get(json_object_get(call, "function"), "arguments");
            if (json_is_string(t))
                sse_keep_text(f, json_string_value(t), json_string_length(t));
        }
    }
}

static int translated_event(void *state, struct sse_filter *f, const char *name, json_t *data,
                            const char *raw, size_t raw_len, struct evbuffer *out)
{
    struct anthropic_chat_stream *s = state;
    const char *type = json_string_value(json_object_get(data, "type"));
    json_t *chunks = json_array(), *chunk;
    size_t i;
    int rc = 0;
    (void)name, (void)raw, (void)raw_len;
    if (chunks == NULL || anthropic_chat_stream_event(s, data, chunks) < 0) {
        json_decref(chunks);
        return chunks == NULL ? -1 : 0; /* a malformed event: nothing for the client */
    }
    if (type != NULL && (strcmp(type, "message_start") == 0 || strcmp(type, "message_delta") == 0))
        note_usage(s, f, strcmp(type, "message_delta") == 0);
    json_array_foreach(chunks, i, chunk) {
        if (rc < 0)
            break;
        if (json_object_get(chunk, "usage") != NULL &&
            json_array_size(json_object_get(chunk, "choices")) == 0) {
            rc = usage_chunk(f, chunk, out);
            continue;
        }
        if (json_array_size(json_object_get(chunk, "choices")) > 0) {
            keep_chunk_text(f, chunk);
            sse_count_content(f);
        }
        rc = sse_write(out, NULL, chunk);
    }
    json_decref(chunks);
    if (rc == 0 && type != NULL && strcmp(type, "message_stop") == 0)
        rc = sse_hold(f, DONE, sizeof(DONE) - 1);
    return rc;
}

const struct protocol PROTO_CHAT_ANTHROPIC = {
    .url = translated_url, .body = translated_body, .answer = translated_answer,
    .error = translated_error, .stream_new = translated_stream_new,
    .stream_free = translated_stream_free, .stream_event = translated_event,
};
