/* sse.h - the filter between an upstream's Server-Sent Events stream and
 * the client. It cuts the bytes into events and hands each to the stream's
 * protocol (protocol.h), which passes it on byte for byte, rewrites it (a
 * usage chunk gets the request's cost) or holds it back, and tells the
 * filter what it carried: usage, generated text, content. The filter keeps
 * that for the end of the stream: the usage event (answer.c) is queued
 * before the held-back end of the stream ("data: [DONE]", message_stop,
 * response.completed) leaves, so the event is never younger than the answer. */
#ifndef PROXYD_SSE_H
#define PROXYD_SSE_H

#include <jansson.h>
#include <event2/buffer.h>
#include <stdbool.h>
#include <stddef.h>

#include "money.h"
#include "price.h"

struct sse_filter;
struct protocol;

/* Completes u (what the request asked for, how long it took) and prices it,
 * writing the cost as exact decimal text; chunk is the event that carried
 * the usage (its service_tier counts). */
typedef void (*sse_price_cb)(struct usage *u, const json_t *chunk, char cost[MONEY_STR_MAX],
                             void *arg);

/* state is the protocol's (from its stream_new), freed with the filter. */
struct sse_filter *sse_filter_new(const struct protocol *proto, void *state,
                                  bool client_wants_usage, sse_price_cb price, void *arg);
void sse_filter_free(struct sse_filter *f);

/* Feeds upstream bytes; appends to out what the client gets now (whole
 * events only). -1 on ENOMEM. */
int sse_filter_feed(struct sse_filter *f, const char *data, size_t len, struct evbuffer *out);

/* End of stream: appends an unterminated tail, if any, as it is, and what
 * was held back. */
int sse_filter_finish(struct sse_filter *f, struct evbuffer *out);

/* The usage the upstream reported: true when it is final (the stream's
 * last word on it); *partial (may be NULL) when only part came, e.g. the
 * prompt's at the start of a stream that was then cut. */
bool sse_filter_usage(const struct sse_filter *f, struct usage *u, bool *partial);

/* The generated text seen so far, for counting tokens locally when the
 * upstream reports no usage. */
const char *sse_filter_text(const struct sse_filter *f, size_t *len);

/* Content events passed to the client so far. */
size_t sse_filter_events(const struct sse_filter *f);

/* For the protocols' stream_event: */
bool sse_client_wants_usage(const struct sse_filter *f);
/* The usage so far; final when the stream has said its last on it. */
void sse_set_usage(struct sse_filter *f, const struct usage *u, bool final);
/* Completes and prices the final usage (sse_set_usage first). */
void sse_price(struct sse_filter *f, const json_t *chunk, char cost[MONEY_STR_MAX]);
void sse_keep_text(struct sse_filter *f, const char *s, size_t len);
void sse_count_content(struct sse_filter *f);
/* Holds bytes back until sse_filter_finish. -1 on ENOMEM. */
int sse_hold(struct sse_filter *f, const char *raw, size_t len);
/* Sets chunk's usage.cost to cost (a number, as OpenAI's usage chunks carry
 * it; null when cost is not a decimal). -1 when chunk has no usage object
 * or out of memory. */
int sse_set_cost(json_t *chunk, const char cost[MONEY_STR_MAX]);
/* Writes one event: "event: NAME\n" (when name is not NULL) and "data: JSON\n\n". */
int sse_write(struct evbuffer *out, const char *name, const json_t *data);

#endif
