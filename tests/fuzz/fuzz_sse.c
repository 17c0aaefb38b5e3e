/* fuzz_sse.c - proxyd's Server-Sent Events reader (sse.c) on any upstream
 * stream, with each protocol's stream events behind it (proto_openai.c,
 * proto_responses.c, proto_anthropic.c, and the chat translation's
 * anthropic_chat_answer.c): cutting events, reading their fields, the usage
 * found in them, the text kept for local counting, what is held back.
 *
 * Input: byte 0 picks the (API, deployment) pair (fuzz_proxyd.h); byte 1
 * the size of the pieces the stream arrives in (1 to 128 bytes, so events
 * are cut anywhere) and, in its top bit, whether the client asked for
 * usage; the rest is the stream. */
#include <event2/buffer.h>
#include <jansson.h>
#include <stdio.h>

#include "fuzz_proxyd.h"
#include "sse.h"

/* What answer.c does with a stream's usage, deterministically: the built-in
 * price map, a fixed duration. */
static void price(struct usage *u, const json_t *chunk, char cost[MONEY_STR_MAX], void *arg)
{
    static struct price_table *prices;
    const char *model = arg;
    char err[256];
    money_t m = 0;
    if (prices == NULL && (prices = price_table_open(NULL, err, sizeof(err))) == NULL) {
        fprintf(stderr, "prices: %s\n", err);
        abort();
    }
    (void)chunk;
    u->duration_us = 1500000;
    if (price_cost(prices, model, NULL, u, &m, err, sizeof(err)) != PRICE_OK)
        m = 0;
    money_format(m, cost);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    json_t *body = json_pack("{s:s, s:b, s:[{s:s, s:s}], s:{s:s}}", "model", "m", "stream", 1,
                             "messages", "role", "user", "content", "hi", "web_search_options",
                             "search_context_size", "low");
    struct upstream_req r;
    const struct protocol *p = fuzz_route(data[0], body, &r);
    size_t piece = (size_t)(data[1] & 0x7f) + 1;
    void *state = p->stream_new != NULL ? p->stream_new(&r) : NULL;
    struct sse_filter *f = sse_filter_new(p, state, data[1] & 0x80, price,
                                          (void *)r.d->upstream_model);
    struct evbuffer *out = evbuffer_new();
    if (body == NULL || (p->stream_new != NULL && state == NULL) || f == NULL || out == NULL)
        abort();
    const char *s = (const char *)data + 2;
    size_t left = size - 2;
    int rc = 0;
    while (rc == 0 && left > 0) {
        size_t n = left < piece ? left : piece;
        rc = sse_filter_feed(f, s, n, out);
        evbuffer_drain(out, evbuffer_get_length(out));
        s += n;
        left -= n;
    }
    if (rc == 0)
        (void)sse_filter_finish(f, out);
    struct usage u;
    bool partial;
    size_t len;
    (void)sse_filter_usage(f, &u, &partial);
    (void)sse_filter_text(f, &len);
    (void)sse_filter_events(f);
    sse_filter_free(f);
    evbuffer_free(out);
    json_decref(body);
    return 0;
}
