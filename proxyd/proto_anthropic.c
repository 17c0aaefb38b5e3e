/* proto_anthropic.c - Anthropic's Messages API (POST /v1/messages and
 * /v1/messages/count_tokens) relayed to anthropic/ deployments.
 *
 * The client's body goes up unchanged but for the model (the deployment's)
 * and the gateway's metadata.tags; Anthropic's own metadata.user_id stays.
 * Answers, errors and stream events reach the client as the upstream sent
 * them. Usage: a whole answer's "usage"; in a stream, message_start's
 * (the prompt's, with the cache reads and writes) updated by each
 * message_delta's cumulative counts. message_stop, the stream's last
 * event, is held back until the request's usage event is queued.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anthropic_chat.h"
#include "protocol.h"
#include "sse.h"
#include "usage.h"

struct anthropic_stream {
    json_t *usage; /* merged so far */
};

static int anthropic_url(const struct upstream_req *r, char *url, size_t len)
{
    int n = snprintf(url, len, "%s/v1/messages%s", r->d->api_base,
                     r->api == API_COUNT_TOKENS ? "/count_tokens" : "");
    return n > 0 && (size_t)n < len ? 0 : -1;
}

static char *anthropic_body(const struct upstream_req *r, char *err, size_t errlen)
{
    json_t *b = protocol_body_copy(r);
    if (errlen > 0)
        err[0] = '\0';
    return protocol_strip_tags(b) == 0 ? protocol_dump(b) : protocol_dump(NULL);
}

static int anthropic_answer(const struct upstream_req *r, json_t *answer, struct usage *u,
                            json_t **client)
{
    *client = NULL;
    *u = (struct usage){0};
    if (r->api == API_COUNT_TOKENS)
        return 0; /* never charged */
    return usage_from_anthropic(json_object_get(answer, "usage"), u);
}

static void *anthropic_stream_new(const struct upstream_req *r)
{
    struct anthropic_stream *s = calloc(1, sizeof(*s));
    (void)r;
    if (s != NULL && (s->usage = json_object()) == NULL) {
        free(s);
        s = NULL;
    }
    return s;
}

static void anthropic_stream_free(void *state)
{
    struct anthropic_stream *s = state;
    if (s != NULL)
        json_decref(s->usage);
    free(s);
}

/* Folds an event's usage into the stream's; final once message_delta said it. */
static int note_usage(struct anthropic_stream *s, struct sse_filter *f, json_t *usage,
                      json_t *event, bool final)
{
    struct usage u;
    char cost[MONEY_STR_MAX];
    if (!json_is_object(usage))
        return 0;
    if (anthropic_chat_usage_merge(s->usage, usage) < 0)
        return -1;
    if (usage_from_anthropic(s->usage, &u) < 0)
        return 0; /* nothing usable: the end of the stream counts locally */
    sse_set_usage(f, &u, final);
    if (final)
        sse_price(f, event, cost); /* completes it: the duration ends here */
    return 0;
}

/* The generated text of a content_block_delta, kept for a cut stream's count. */
static void keep_delta(struct sse_filter *f, const json_t *delta)
{
    static const char *const TEXT[] = {"text", "thinking", "partial_json", NULL};
    for (size_t i = 0; TEXT[i] != NULL; i++) {
        const json_t *t = json_object_get(delta, TEXT[i]);
        if (json_is_string(t))
            sse_keep_text(f, json_string_value(t), json_string_length(t));
    }
}

static int anthropic_event(void *state, struct sse_filter *f, const char *name, json_t *data,
                           const char *raw, size_t raw_len, struct evbuffer *out)
{
    struct anthropic_stream *s = state;
    const char *type = json_string_value(json_object_get(data, "type"));
    (void)name;
    if (type == NULL)
        type = "";
    int rc = 0;
    if (strcmp(type, "message_start") == 0)
        rc = note_usage(s, f, json_object_get(json_object_get(data, "message"), "usage"), data,
                        false);
    else if (strcmp(type, "message_delta") == 0)
        rc = note_usage(s, f, json_object_get(data, "usage"), data, true);
    else if (strcmp(type, "content_block_delta") == 0) {
        keep_delta(f, json_object_get(data, "delta"));
        sse_count_content(f);
    } else if (strcmp(type, "message_stop") == 0)
        return sse_hold(f, raw, raw_len);
    return rc == 0 && evbuffer_add(out, raw, raw_len) == 0 ? 0 : -1;
}

const struct protocol PROTO_ANTHROPIC = {
    .url = anthropic_url, .body = anthropic_body, .answer = anthropic_answer, .error = NULL,
    .stream_new = anthropic_stream_new, .stream_free = anthropic_stream_free,
    .stream_event = anthropic_event,
};
