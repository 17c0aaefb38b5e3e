/* protocol.c - the APIs' fronts and the choice of a protocol per attempt
 * (see protocol.h), with what the protocol modules share: the headers every
 * upstream request carries and the body copy they start from.
 */
#include "protocol.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"
#include "response_id.h"
#include "shape.h"
#include "tokencount.h"

/* Headers from the client an Anthropic upstream gets as they are. */
static const char *const ANTHROPIC_PASSED[] = {"anthropic-beta", NULL};

static const json_t *openai_user(const json_t *body)
{
    return json_object_get(body, "user");
}

static const json_t *anthropic_user(const json_t *body)
{
    return json_object_get(json_object_get(body, "metadata"), "user_id");
}

static bool openai_stream_usage(const json_t *body)
{
    return json_is_true(json_object_get(json_object_get(body, "stream_options"),
                                        "include_usage"));
}

static bool always_usage(const json_t *body)
{
    (void)body; /* the protocol's own stream always carries its usage */
    return true;
}

static int64_t int_member(const json_t *body, const char *name)
{
    const json_t *v = json_object_get(body, name);
    return json_is_integer(v) && json_integer_value(v) > 0 ? json_integer_value(v) : 0;
}

static int64_t chat_max_output(const json_t *body)
{
    int64_t n = int_member(body, "max_completion_tokens");
    return n > 0 ? n : int_member(body, "max_tokens");
}

static int64_t messages_max_output(const json_t *body)
{
    return int_member(body, "max_tokens");
}

static int64_t responses_max_output(const json_t *body)
{
    return int_member(body, "max_output_tokens");
}

static int64_t no_output(const json_t *body)
{
    (void)body;
    return 0;
}

static int64_t chat_prompt(const json_t *body, const char *model, bool *est)
{
    char err[128];
    return tokencount_chat(model, json_object_get(body, "messages"), est, err, sizeof(err));
}

/* Appends the text of s: a string, or the "text" (and "content") members of
 * the objects of a list, recursively (content blocks, input items). */
static void gather_text(const json_t *s, char **buf, size_t *len, size_t *cap, int depth)
{
    size_t i;
    const json_t *item;
    if (depth > 8)
        return;
    if (json_is_string(s)) {
        size_t n = json_string_length(s);
        char *t = grow_array(*buf, cap, *len + n + 2, 1, 256);
        if (t == NULL)
            return;
        *buf = t;
        memcpy(t + *len, json_string_value(s), n);
        *len += n;
        t[(*len)++] = '\n';
        t[*len] = '\0';
    } else if (json_is_array(s)) {
        json_array_foreach(s, i, item) {
            gather_text(json_is_string(item) ? item : json_object_get(item, "text"), buf, len,
                        cap, depth + 1);
            gather_text(json_object_get(item, "content"), buf, len, cap, depth + 1);
        }
    }
}

/* Messages, Responses and completions prompts are counted as their text:
 * an estimate (the role and block framing is not counted). */
static int64_t text_prompt(const json_t *body, const char *const *members, const char *model,
                           bool *est)
{
    char *buf = NULL, err[128];
    size_t len = 0, cap = 0;
    for (size_t i = 0; members[i] != NULL; i++)
        gather_text(json_object_get(body, members[i]), &buf, &len, &cap, 0);
    int64_t n = tokencount_text(model, buf != NULL ? buf : "", len, est, err, sizeof(err));
    free(buf);
    *est = true;
    return n;
}

static int64_t completion_prompt(const json_t *body, const char *model, bool *est)
{
    static const char *const m[] = {"prompt", NULL};
    return text_prompt(body, m, model, est);
}

static int64_t messages_prompt(const json_t *body, const char *model, bool *est)
{
    static const char *const m[] = {"system", "messages", NULL};
    return text_prompt(body, m, model, est);
}

static int64_t responses_prompt(const json_t *body, const char *model, bool *est)
{
    static const char *const m[] = {"instructions", "input", NULL};
    return text_prompt(body, m, model, est);
}

/* Text messages only: every content a string or a list of text parts, no
 * tool calls; and no tool or function definitions in the body. */
static bool plain_chat(const json_t *body)
{
    const json_t *messages = json_object_get(body, "messages"), *m, *part;
    size_t i, j;
    if (!json_is_array(messages) || json_object_get(body, "tools") != NULL ||
        json_object_get(body, "functions") != NULL)
        return false;
    json_array_foreach(messages, i, m) {
        const json_t *content = json_object_get(m, "content");
        if (!json_is_object(m) || json_object_get(m, "tool_calls") != NULL ||
            json_object_get(m, "function_call") != NULL)
            return false;
        if (json_is_array(content)) {
            json_array_foreach(content, j, part) {
                if (!json_is_string(json_object_get(part, "text")) ||
                    strcmp(json_string_value(json_object_get(part, "type")) != NULL
                               ? json_string_value(json_object_get(part, "type")) : "",
                           "text") != 0)
                    return false;
            }
        } else if (!json_is_string(content) && !json_is_null(content)) {
            return false;
        }
    }
    return true;
}

/* The chat prompt's exact tokens when they can be known before the answer:
 * text messages only, and a model with OpenAI's tokenizer; else -1. */
static int64_t chat_exact_prompt(const json_t *body, const char *model)
{
    bool est = false;
    char err[128];
    if (!plain_chat(body))
        return -1;
    int64_t n = tokencount_chat(model, json_object_get(body, "messages"), &est, err, sizeof(err));
    return n >= 0 && !est ? n : -1;
}

static int64_t not_exact(const json_t *body, const char *model)
{
    (void)body, (void)model;
    return -1;
}

static int64_t no_prompt(const json_t *body, const char *model, bool *est)
{
    (void)body, (void)model;
    *est = false;
    return 0;
}

/* previous_response_id names the deployment that holds the conversation. */
static int responses_pin(const json_t *body, const struct config *cfg, const char *group,
                         const char *owner, bool any_owner, const struct deployment **d,
                         char *err, size_t errlen)
{
    const char *prev = json_string_value(json_object_get(body, "previous_response_id"));
    struct response_ref ref;
    *d = NULL;
    if (prev == NULL || strncmp(prev, RESPONSE_ID_PREFIX, strlen(RESPONSE_ID_PREFIX)) != 0)
        return 0; /* not one of ours: the upstream's own, as it is */
    if (!response_id_parse(cfg, prev, &ref)) {
        snprintf(err, errlen, "previous_response_id %.200s is not a response of this "
                 "gateway's deployments", prev);
        return 404;
    }
    if (!any_owner && !cfg->responses_id_security_off && !response_id_owned(&ref, owner)) {
        snprintf(err, errlen, "Forbidden. The previous response id is not associated with the "
                 "%s, who this key belongs to.", ref.owner[0] == 'u' ? "user" : "team");
        return 403;
    }
    if (strcmp(ref.d->model_name, group) != 0) {
        snprintf(err, errlen, "previous_response_id %.200s was made by model group %.200s, "
                 "not %.200s", prev, ref.d->model_name, group);
        return 400;
    }
    *d = ref.d;
    return 0;
}

static const struct api_front FRONTS[] = {
    [API_CHAT] = {"chat_completion", HTTPJSON_OPENAI, true, true, openai_user,
                  openai_stream_usage, chat_max_output, chat_prompt, chat_exact_prompt},
    [API_COMPLETION] = {"text_completion", HTTPJSON_OPENAI, true, true, openai_user,
                        openai_stream_usage, chat_max_output, completion_prompt, not_exact},
    [API_EMBEDDING] = {"embedding", HTTPJSON_OPENAI, false, true, openai_user,
                       openai_stream_usage, no_output, no_prompt, not_exact},
    [API_IMAGE] = {"image_generation", HTTPJSON_OPENAI, false, true, openai_user,
                   openai_stream_usage, no_output, no_prompt, not_exact},
    [API_RESPONSES] = {"responses", HTTPJSON_OPENAI, true, true, openai_user, always_usage,
                       responses_max_output, responses_prompt, not_exact, responses_pin},
    [API_MESSAGES] = {"anthropic_messages", HTTPJSON_ANTHROPIC, true, true, anthropic_user,
                      always_usage, messages_max_output, messages_prompt, not_exact},
    [API_COUNT_TOKENS] = {"count_tokens", HTTPJSON_ANTHROPIC, false, false, anthropic_user,
                          always_usage, no_output, no_prompt, not_exact},
};

const struct api_front *api_front(enum api api)
{
    return &FRONTS[api];
}

const struct protocol *protocol_for(enum api api, const struct deployment *d, const char **why)
{
    bool anthropic = d->kind == UPSTREAM_ANTHROPIC;
    *why = NULL;
    switch (api) {
    case API_MESSAGES:
    case API_COUNT_TOKENS:
        if (anthropic)
            return &PROTO_ANTHROPIC;
        *why = "serves Anthropic's Messages API only on anthropic/ deployments";
        return NULL;
    case API_RESPONSES:
        if (!anthropic)
            return &PROTO_RESPONSES;
        *why = "serves OpenAI's Responses API only on OpenAI and Azure OpenAI deployments";
        return NULL;
    case API_CHAT:
        return anthropic ? &PROTO_CHAT_ANTHROPIC : &PROTO_OPENAI;
    default:
        if (!anthropic)
            return &PROTO_OPENAI;
        *why = "has no completions, embeddings or images API on anthropic/ deployments";
        return NULL;
    }
}

static struct curl_slist *add(struct curl_slist *h, const char *line)
{
    struct curl_slist *more = h != NULL ? curl_slist_append(h, line) : NULL;
    if (more == NULL)
        curl_slist_free_all(h);
    return more;
}

struct curl_slist *protocol_headers(const struct upstream_req *r)
{
    const struct deployment *d = r->d;
    char line[4096];
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = add(h, "Expect:"); /* no 100-continue round trip */
    if (d->kind == UPSTREAM_ANTHROPIC) {
        struct evkeyvalq *in = evhttp_request_get_input_headers(r->client);
        snprintf(line, sizeof(line), "anthropic-version: %s", d->api_version);
        h = add(h, line);
        for (size_t i = 0; ANTHROPIC_PASSED[i] != NULL; i++) {
            const char *v = evhttp_find_header(in, ANTHROPIC_PASSED[i]);
            if (v != NULL && strlen(v) < 2048 && strpbrk(v, "\r\n") == NULL) {
                snprintf(line, sizeof(line), "%s: %s", ANTHROPIC_PASSED[i], v);
                h = add(h, line);
            }
        }
    }
    if (d->api_key != NULL) {
        snprintf(line, sizeof(line), d->kind == UPSTREAM_AZURE       ? "api-key: %s"
                                     : d->kind == UPSTREAM_ANTHROPIC ? "x-api-key: %s"
                                                                     : "Authorization: Bearer %s",
                 d->api_key);
        h = add(h, line);
    }
    return shape_headers(d, h); /* the config's extra_headers, organization */
}

json_t *protocol_body_copy(const struct upstream_req *r)
{
    json_t *b = shape_request(r->body, r->api, r->d, true); /* the config's defaults, drops */
    if (b != NULL && json_object_set_new(b, "model", json_string(r->d->upstream_model)) != 0) {
        json_decref(b);
        return NULL;
    }
    return b;
}

char *protocol_dump(json_t *body)
{
    char *s = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    return s;
}

int protocol_strip_tags(json_t *b)
{
    json_t *meta = json_object_get(b, "metadata");
    if (b == NULL)
        return -1;
    if (!json_is_object(meta) || json_object_get(meta, "tags") == NULL)
        return 0;
    json_t *rest = json_copy(meta); /* b is a shallow copy: its metadata is the client's */
    if (rest == NULL || json_object_del(rest, "tags") != 0) {
        json_decref(rest);
        return -1;
    }
    if (json_object_size(rest) == 0) {
        json_decref(rest);
        return json_object_del(b, "metadata") == 0 ? 0 : -1;
    }
    return json_object_set_new(b, "metadata", rest) == 0 ? 0 : -1;
}
