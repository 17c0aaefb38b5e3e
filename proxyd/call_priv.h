/* call_priv.h - the state of one relayed request, shared by the files that
 * handle its phases: call.c (intake, key check, routing, the upstream
 * request), answer.c (whole answers, the x-litellm-* headers, the usage
 * event) and stream.c (streamed answers). call.c calls into the other two,
 * stream.c into answer.c, never back. What differs between the APIs and
 * upstream protocols is behind front and proto (protocol.h). */
#ifndef PROXYD_CALL_PRIV_H
#define PROXYD_CALL_PRIV_H

#include <event2/http.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "admission.h"
#include "call.h"
#include "ids.h"
#include "keystore.h"
#include "price.h"
#include "protocol.h"
#include "relay.h"
#include "reply.h"
#include "response_id.h"
#include "router.h"

struct sse_filter;
struct limits_state;

struct call {
    struct proxy *px;
    struct generation *gen;     /* the config it started under (reload.h), held */
    struct evhttp_request *req; /* NULL once the client has gone */
    enum api api;
    const struct api_front *front;  /* how the API's requests read and errors look */
    const struct protocol *proto;   /* the current attempt's upstream protocol */
    const char *route_name;     /* the route pattern, for metrics and the access line */
    int status;                 /* what the client was answered (0: not yet) */
    int64_t ttfb_us;            /* streams: when the first byte left (-1: not yet) */
    char request_id[IDS_UUID_LEN + 1];
    int64_t start_us;       /* wall clock, for the ledger */
    struct timespec t0;     /* monotonic, for durations */
    int64_t upstream_us;    /* time spent waiting on upstreams, all attempts */
    int64_t attempt_start_us;
    json_t *body;
    const char *model_group; /* inside body */
    const struct deployment *dep; /* the deployment of the current attempt */
    struct route_state route;
    struct reservation reservation; /* held against the key's budgets while in flight */
    struct event *wait_ev;          /* an unsure budget check waiting to look again */
    struct owner_row *owner_rows; /* end user (if any), tags, config budgets; NULL if none */
    size_t n_owner_rows;
    size_t n_tag_rows;            /* how many of them are tags */
    int budget_rows;              /* where the config budgets' rows start; -1: none */
    struct reservation dep_reservation; /* the deployment's budgets (config_budget.c) */
    char crossed[512];            /* why the last deployment was passed over ("": none) */
    bool authorized;              /* counted in px->authorized (global_max_parallel_requests) */
    struct limits_state *limits;  /* its rate limits (call_limits.c); NULL: none */
    struct reply_head head;       /* its answer's headers (x-ratelimit-*, x-litellm-*) */
    int admit_waits;
    unsigned prompt_counted;  /* bit per tokenizer encoding: prompt_count[enc] is known */
    int64_t prompt_count[2];  /* the chat prompt's exact tokens (-1: not countable) */
    struct keyinfo key;     /* copy of the caller's key row (token "" for master) */
    char owner[RESPONSE_OWNER_LEN + 1]; /* its user or team, as response ids name it */
    char *end_user;
    json_t *tags;           /* array of strings */
    const char *route_tags[OWNERS_MAX_TAGS]; /* its strings, as tag routing reads them */
    char *metadata_json;    /* metadata without tags */
    /* streaming */
    bool stream, client_wants_usage, started, client_gone;
    bool pinned;                  /* one deployment only (protocol.h's pin): no retries */
    struct relay_transfer *xfer;  /* the upstream transfer while it runs */
    struct sse_filter *sse;
    struct evbuffer *error_body;  /* a failed stream's non-2xx answer */
    bool journaled;               /* noted in the stream journal, not yet closed */
    struct event *note_ev;        /* a note waiting for NOTE_EVERY_MS to pass (stream.c) */
    int64_t noted_ms;             /* when the last note was written (monotonic) */
    int note_status;              /* the stream's HTTP status, for its notes */
    size_t noted_events;          /* content events at the last note */
    int noted_usage;              /* usage known at the last note: 0 none, 1 partial, 2 final */
    size_t counted_text;          /* bytes of the stream's text (whole words) counted ... */
    int64_t counted_tokens;       /* ... in these tokens */
    int64_t sent_tokens;          /* output tokens relayed so far */
    int64_t prompt_estimate;      /* the prompt's tokens as its API counts them (stream.c):
                                   * -1 cannot be counted, PROMPT_UNCOUNTED not yet */
};

#define PROMPT_UNCOUNTED INT64_MIN

/* Answers the client an error in its API's shape (with the headers the
 * call has) and remembers the status. */
#define call_error(c, status_, ...)                                                \
    ((c)->status = (status_), reply_head_to_evhttp(&(c)->head, (c)->req),         \
     httpjson_error_as((c)->req, (c)->front->errors, (status_), __VA_ARGS__))

/* What the protocol module is told about the current attempt. */
struct upstream_req call_upstream_req(const struct call *c);

/* reserve.c: does any budget of the request have a max (else nothing to
 * reserve)? And the worst case of the group's priciest deployment (retries
 * and fallbacks included), reserved against each budget while it runs. */
bool reserve_needed(const struct keyinfo *key, const struct budget_extra *extra, size_t n);
money_t reserve_for(struct call *c);
/* The tokens a tpm limit takes at admission (count: which ones): the
 * prompt's as the budget's reservation counts them, plus the max tokens
 * asked, else output_default; the most over the group's deployments. */
int64_t reserve_tokens(struct call *c, enum token_count count, int64_t output_default);

void call_free(struct call *c);

/* call_limits.c: takes the request's rate limits once its budgets admit it
 * and calls next (maybe after asking Redis), or answers the 429 and frees
 * the call; settles its tokens to the answer's usage; gives everything back
 * at its end (call_free). */
void call_limits_take(struct call *c, void (*next)(struct call *c));
void call_limits_settle(struct call *c, const struct usage *u);
void call_limits_end(struct call *c);

/* answer.c */
void answer_whole(struct call *c, struct relay_transfer *t, CURLcode result);
void answer_failed(struct call *c, struct relay_transfer *t, CURLcode result);
void answer_price(struct call *c, const struct usage *u, char cost[MONEY_STR_MAX]);
/* Completes an upstream's usage with what the request asked for (images,
 * web search), the answer's service tier (answer may be NULL) and the
 * request's duration so far, once: header, stream and ledger price the same. */
void answer_usage_complete(struct call *c, const json_t *answer, struct usage *u);
/* The answer's headers (x-litellm-*), added to c->head. */
void answer_headers(struct call *c, const char *content_type, const char *cost);
void answer_publish(struct call *c, const struct usage *u, int status, bool estimated);
/* The request's usage event, encoded (malloc'ed; NULL on ENOMEM). */
uint8_t *answer_pack(const struct call *c, const struct usage *u, int status, bool estimated,
                     size_t *len);
/* A non-2xx answer's body, in place, as the client's API shows errors. */
void answer_rewrite_error(struct call *c, struct evbuffer *body, int status);

/* stream.c */
void stream_watch(struct call *c); /* notice a client leaving while streaming */
int stream_on_data(struct relay_transfer *t, const char *data, size_t len, void *arg);
void stream_done(struct call *c, struct relay_transfer *t, CURLcode result);

#endif
