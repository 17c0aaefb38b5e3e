/* sse.h - the filter between an upstream's Server-Sent Events stream and
 * the client: events pass through byte for byte, except the usage chunk,
 * which gets the request's cost (usage.cost) when the client asked for
 * usage and is withheld when it did not (proxyd asks upstreams for usage
 * on every stream, so that every stream can be priced). */
#ifndef PROXYD_SSE_H
#define PROXYD_SSE_H

#include <jansson.h>
#include <event2/buffer.h>
#include <stdbool.h>
#include <stddef.h>

#include "money.h"
#include "price.h"

struct sse_filter;

/* Prices usage; writes the cost as exact decimal text. */
/* Completes u (what the request asked for, how long it took) and prices it:
 * the usage sse_filter_usage later returns is the completed one. */
typedef void (*sse_price_cb)(struct usage *u, const json_t *chunk, char cost[MONEY_STR_MAX],
                             void *arg);

struct sse_filter *sse_filter_new(bool client_wants_usage, sse_price_cb price, void *arg);
void sse_filter_free(struct sse_filter *f);

/* Feeds upstream bytes; appends to out what the client gets now (whole
 * events only). -1 on ENOMEM. */
int sse_filter_feed(struct sse_filter *f, const char *data, size_t len, struct evbuffer *out);

/* End of stream: appends an unterminated tail, if any, as it is, and the
 * held-back "data: [DONE]". */
int sse_filter_finish(struct sse_filter *f, struct evbuffer *out);

/* The usage the upstream reported, if it did. */
bool sse_filter_usage(const struct sse_filter *f, struct usage *u);

/* The generated text seen so far (content deltas), for counting tokens
 * locally when the upstream reports no usage. */
const char *sse_filter_text(const struct sse_filter *f, size_t *len);

/* Content events passed to the client so far. */
size_t sse_filter_events(const struct sse_filter *f);

#endif
