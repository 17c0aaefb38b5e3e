/* protocol.h - the wire protocols proxyd carries, one module each.
 *
 * A client calls an API (the route: OpenAI's chat, completions, embeddings,
 * images or Responses API, Anthropic's Messages); each attempt goes to a
 * deployment that speaks a protocol (OpenAI's, Azure OpenAI's, Anthropic's).
 * The API's front (struct api_front) says how its requests read and how its
 * errors look; the pair (API, deployment) picks a struct protocol, which says
 * how the request is sent there, where the usage is in what comes back and
 * what the client gets. The call lifecycle (call.c, answer.c, stream.c:
 * admission, routing, retries, relay, spool, events, metrics) only calls
 * through these and never looks inside a body itself.
 *
 * Modules: proto_openai.c (OpenAI and Azure: chat, completions, embeddings,
 * images), proto_responses.c (the Responses API), proto_anthropic.c
 * (Messages and count_tokens), proto_chat_anthropic.c (chat/completions
 * translated to Messages, anthropic_chat.c).
 */
#ifndef PROXYD_PROTOCOL_H
#define PROXYD_PROTOCOL_H

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "httpjson.h"
#include "ids.h"
#include "price.h"

struct sse_filter;

/* The APIs clients call. */
enum api {
    API_CHAT, API_COMPLETION, API_EMBEDDING, API_IMAGE, /* OpenAI's */
    API_RESPONSES,                                      /* OpenAI's Responses */
    API_MESSAGES, API_COUNT_TOKENS,                     /* Anthropic's */
};

/* How one API's requests read and its errors look, whatever the deployment. */
struct api_front {
    const char *call_type;        /* the ledger's call_type */
    enum httpjson_shape errors;   /* the error envelope its clients expect */
    bool streams;                 /* "stream": true is honoured */
    bool charged;                 /* false: relayed, never priced nor in the ledger */
    /* The request's end user: OpenAI's "user", Anthropic's metadata.user_id
     * (NULL: none; not a string: malformed). */
    const json_t *(*end_user)(const json_t *body);
    /* Did the client ask for usage in its stream (OpenAI's stream_options)? */
    bool (*stream_usage)(const json_t *body);
    /* The most output tokens the request allows (0: it does not say). */
    int64_t (*max_output)(const json_t *body);
    /* The prompt's tokens, counted locally for a stream that ends without
     * usage (-1: cannot count; *estimated when not the provider's tokenizer). */
    int64_t (*prompt_tokens)(const json_t *body, const char *model, bool *estimated);
    /* The prompt's tokens exactly as the provider will bill them, for a
     * reservation (-1: not known before the answer: the body's bytes bound it). */
    int64_t (*exact_prompt)(const json_t *body, const char *model);
    /* A request that must go to one deployment of its group (the Responses
     * API's previous_response_id): *d, or NULL when any may serve. 0, or an
     * HTTP status with a message in err when it may not go at all. owner:
     * the key's tag (response_id.h); any_owner: the master key. NULL: none. */
    int (*pin)(const json_t *body, const struct config *cfg, const char *group,
               const char *owner, bool any_owner, const struct deployment **d, char *err,
               size_t errlen);
};

const struct api_front *api_front(enum api api);

/* What a protocol module is told about one attempt. */
struct upstream_req {
    enum api api;
    const char *request_id;        /* the gateway's id of the request */
    const char *owner;             /* the key's user or team, as response ids name it */
    const struct config *cfg;      /* the config the request runs under */
    const struct deployment *d;
    const json_t *body;            /* the client's body */
    struct evhttp_request *client; /* for the headers passed through (anthropic-beta) */
    const char *model_group;       /* what the client asked for */
    bool stream;
    bool drop_params;              /* unsupported parameters: dropped, not refused */
};

struct protocol {
    /* The upstream URL of the attempt. -1 when it does not fit. */
    int (*url)(const struct upstream_req *r, char *url, size_t len);
    /* The body sent upstream; NULL with a message for the client (a 400)
     * in err, or with err "" when out of memory. */
    char *(*body)(const struct upstream_req *r, char *err, size_t errlen);
    /* A whole 2xx answer: its usage (-1: none usable, *u zeroed) and, when
     * the client gets something else than the upstream's bytes, *client
     * (NULL: the bytes as they are). */
    int (*answer)(const struct upstream_req *r, json_t *answer, struct usage *u,
                  json_t **client);
    /* A non-2xx answer's body as the client gets it (NULL: the bytes as they are). */
    json_t *(*error)(const struct upstream_req *r, const json_t *upstream, int status);
    /* Streams: per-stream state, and one Server-Sent Event (sse.h). */
    void *(*stream_new)(const struct upstream_req *r);
    void (*stream_free)(void *state);
    int (*stream_event)(void *state, struct sse_filter *f, const char *name, json_t *data,
                        const char *raw, size_t raw_len, struct evbuffer *out);
};

/* The protocol of api on deployment d, or NULL when d cannot serve it (then
 * *why says so, for the client). */
const struct protocol *protocol_for(enum api api, const struct deployment *d,
                                    const char **why);

/* The headers every upstream request carries, plus the deployment's key the
 * way its protocol wants it (NULL when out of memory). */
struct curl_slist *protocol_headers(const struct upstream_req *r);

/* The modules' tables. */
extern const struct protocol PROTO_OPENAI, PROTO_RESPONSES, PROTO_ANTHROPIC,
    PROTO_CHAT_ANTHROPIC;

/* Shared by the modules: the client body with the deployment's model name,
 * shaped by its litellm_params (shape.h: defaults, additional_drop_params);
 * NULL when out of memory. */
json_t *protocol_body_copy(const struct upstream_req *r);
char *protocol_dump(json_t *body); /* takes body (may be NULL) */
/* Removes metadata.tags (the gateway's), and metadata when nothing is left;
 * the client's own metadata object is left alone. -1 when out of memory. */
int protocol_strip_tags(json_t *body);

/* The Responses API (proto_responses.c): the URL of {api_base}/responses
 * + tail on d, and a response object's usage (web searches included; -1:
 * none usable). */
int responses_url(const struct deployment *d, const char *tail, char *url, size_t len);
int responses_usage(const json_t *response, struct usage *u);

#endif
