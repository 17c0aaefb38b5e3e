/* stream.c - streamed answers: Server-Sent Events relayed as they arrive,
 * whatever the API (the stream's protocol reads the events: sse.h).
 *
 * The first upstream bytes decide: a 2xx starts a chunked reply at once
 * (headers with x-litellm-call-id; the cost goes into the final usage
 * chunk instead, since headers leave before usage is known), anything else
 * is collected and answered whole. Every piece then goes through the SSE
 * filter (sse.c) and straight to the client: nothing waits for the end.
 *
 * A client that goes away mid-stream (the connection's close callback)
 * cancels the upstream transfer; the request is still accounted for what
 * was produced. libevent detaches, rather than frees, a request whose
 * connection failed, so c->req stays valid until evhttp_send_reply_end.
 */
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>

#include "call_priv.h"
#include "clock.h"
#include "httpjson.h"
#include "journal.h"
#include "log.h"
#include "sse.h"
#include "tokencount.h"

#define NOTE_EVERY_MS 25 /* the journal lags what a stream relayed by at most this */
#define TAIL_MAX 1024    /* bytes of a stream's text counted again at each note, at most */

static void price_chunk(struct usage *u, const json_t *chunk, char cost[MONEY_STR_MAX], void *arg)
{
    answer_usage_complete(arg, chunk, u);
    answer_price(arg, u, cost);
}

static void on_client_close(struct evhttp_connection *evcon, void *arg)
{
    struct call *c = arg;
    (void)evcon;
    c->client_gone = true;
    if (c->xfer != NULL)
        relay_cancel(c->xfer); /* runs stream_done and frees c */
}

static void watch_client(struct call *c, bool on)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(c->req);
    if (evcon != NULL)
        evhttp_connection_set_closecb(evcon, on ? on_client_close : NULL, on ? c : NULL);
}

void stream_watch(struct call *c)
{
    watch_client(c, true);
}

/* First bytes of a 2xx stream: headers out, filter ready. -1 aborts. */
static int start_reply(struct call *c, struct relay_transfer *t)
{
    struct upstream_req ur = call_upstream_req(c);
    void *state = c->proto->stream_new != NULL ? c->proto->stream_new(&ur) : NULL;
    if ((c->proto->stream_new != NULL && state == NULL) ||
        (c->sse = sse_filter_new(c->proto, state, c->client_wants_usage, price_chunk, c)) == NULL) {
        if (c->proto->stream_free != NULL)
            c->proto->stream_free(state);
        return -1;
    }
    answer_headers(c, t->content_type[0] ? t->content_type : "text/event-stream", NULL);
    reply_head_to_evhttp(&c->head, c->req); /* a stream's head is evhttp's (chunked) */
    evhttp_send_reply_start(c->req, (int)t->status, "OK");
    c->started = true;
    c->ttfb_us = call_since_us(&c->t0);
    return 0;
}

/* The model whose tokenizer counts what the upstream did not report. */
static const char *count_model(const struct call *c)
{
    return c->dep->base_model != NULL ? c->dep->base_model : c->dep->model;
}

/* Where the text's last word starts: the last space followed by a
 * non-space in text[from..len), or from when there is none. OpenAI's
 * tokenizers never join tokens across such a point (their pre-tokenizer
 * gives a word its leading space), so text before it counts the same alone. */
static size_t last_word_start(const char *text, size_t from, size_t len)
{
    for (size_t i = len; i-- > from + 1;)
        if (text[i - 1] == ' ' && text[i] != ' ')
            return i - 1;
    return from;
}

/* Output tokens relayed so far, as the whole text counts: the words done
 * are counted once (counted_text, counted_tokens) and only the last one
 * again each time, so a long stream costs no more than its length. */
static void count_sent(struct call *c)
{
    char err[128];
    bool est;
    size_t len;
    const char *text = sse_filter_text(c->sse, &len);
    size_t cut = last_word_start(text, c->counted_text, len);
    /* Text without spaces (CJK, code, JSON) is cut anyway, at a character
     * boundary, so no note counts more than TAIL_MAX bytes again: the count
     * may then differ from the whole text's by a token at each cut. */
    if (cut == c->counted_text && len - c->counted_text > TAIL_MAX) {
        cut = len - TAIL_MAX / 2;
        while (cut > c->counted_text && ((unsigned char)text[cut] & 0xC0) == 0x80)
            cut--;
    }
    if (cut > c->counted_text) {
        int64_t n = tokencount_text(count_model(c), text + c->counted_text,
                                    cut - c->counted_text, &est, err, sizeof(err));
        c->counted_tokens += n > 0 ? n : 0;
        c->counted_text = cut;
    }
    int64_t tail = tokencount_text(count_model(c), text + c->counted_text, len - c->counted_text,
                                   &est, err, sizeof(err));
    c->sent_tokens = c->counted_tokens + (tail > 0 ? tail : 0);
}

/* The prompt's tokens, counted locally as the API reads its body: once per
 * request, for the journal's notes and a stream that ends without usage
 * alike (-1: cannot be counted). */
static int64_t prompt_estimate(struct call *c)
{
    bool est;
    if (c->prompt_estimate == PROMPT_UNCOUNTED)
        c->prompt_estimate = c->front->prompt_tokens(c->body, count_model(c), &est);
    return c->prompt_estimate;
}

/* Notes in the journal the event this stream would publish if it were cut
 * now, when content or usage moved since the last note: a proxyd killed
 * mid-stream still bills what was relayed (journal.h). */
static void note_progress(struct call *c)
{
    int status = c->note_status;
    struct usage u;
    bool partial = false;
    bool final = sse_filter_usage(c->sse, &u, &partial);
    int usage_state = final ? 2 : partial ? 1 : 0;
    size_t events = sse_filter_events(c->sse), len;
    if (c->journaled && events == c->noted_events && usage_state == c->noted_usage)
        return;
    count_sent(c);
    if (!final) {
        if (!partial)
            u = (struct usage){.prompt_tokens = prompt_estimate(c) > 0 ? prompt_estimate(c) : 0};
        u.completion_tokens = c->sent_tokens;
        u.total_tokens = u.prompt_tokens + u.completion_tokens;
        u.duration_us = 0;
        answer_usage_complete(c, NULL, &u);
    }
    uint8_t *ev = answer_pack(c, &u, status, !final, &len);
    if (ev == NULL || journal_note(c->px->journal, c->request_id, ev, len) < 0)
        log_request(LOG_WARN, c->request_id, "cannot note the stream in the journal: a kill "
                    "now would leave it unbilled");
    else
        c->journaled = true;
    free(ev);
    c->noted_events = events;
    c->noted_usage = usage_state;
    c->noted_ms = clock_ms();
}

static void on_note_due(evutil_socket_t fd, short what, void *arg)
{
    struct call *c = arg;
    (void)fd, (void)what;
    note_progress(c);
}

/* A stream's first note is written at once, later ones at most every
 * NOTE_EVERY_MS (a timer writes the last): a fast stream costs a few
 * writes, not one per event, and a kill loses at most that much of what
 * was relayed. */
static void want_note(struct call *c, int status)
{
    int64_t since = clock_ms() - c->noted_ms;
    c->note_status = status;
    if (c->note_ev != NULL && evtimer_pending(c->note_ev, NULL))
        return;
    if (!c->journaled || since >= NOTE_EVERY_MS) {
        note_progress(c);
        return;
    }
    struct timeval tv = {0, (suseconds_t)(NOTE_EVERY_MS - since) * 1000};
    if ((c->note_ev == NULL && (c->note_ev = evtimer_new(c->px->base, on_note_due, c)) == NULL) ||
        evtimer_add(c->note_ev, &tv) != 0)
        note_progress(c); /* no timer: note now rather than not at all */
}

int stream_on_data(struct relay_transfer *t, const char *data, size_t len, void *arg)
{
    struct call *c = arg;
    if (c->client_gone)
        return -1;
    if (!c->started && (t->status < 200 || t->status >= 300)) {
        if (c->error_body == NULL && (c->error_body = evbuffer_new()) == NULL)
            return -1;
        return evbuffer_add(c->error_body, data, len) == 0 ? 0 : -1;
    }
    if (!c->started && start_reply(c, t) < 0)
        return -1;
    struct evbuffer *out = evbuffer_new();
    int rc = out != NULL && sse_filter_feed(c->sse, data, len, out) == 0 ? 0 : -1;
    if (rc == 0 && evbuffer_get_length(out) > 0)
        evhttp_send_reply_chunk(c->req, out);
    if (out != NULL)
        evbuffer_free(out);
    if (rc == 0 && c->front->charged)
        want_note(c, (int)t->status);
    return rc;
}

/* Tokens of a stream whose upstream reported no usage (or that was cut
 * short): counted here, the prompt as its API reads (or what the upstream
 * said of it at the start) and the output as the text produced so far. The
 * event is flagged as estimated. */
static bool stream_usage(struct call *c, struct usage *u)
{
    char err[256];
    size_t len = 0;
    bool est, partial = false;
    if (c->sse != NULL && sse_filter_usage(c->sse, u, &partial))
        return false;
    if (!partial)
        *u = (struct usage){0};
    int64_t in = partial ? u->prompt_tokens : prompt_estimate(c);
    const char *text = c->sse != NULL ? sse_filter_text(c->sse, &len) : "";
    int64_t out = tokencount_text(count_model(c), text, len, &est, err, sizeof(err));
    if (in < 0 || out < 0) {
        log_request(LOG_WARN, c->request_id, "cannot count tokens%s%s", out < 0 ? ": " : "",
                    out < 0 ? err : "");
        return true;
    }
    u->prompt_tokens = in;
    u->completion_tokens = out;
    u->total_tokens = in + out;
    return true;
}

/* A stream that never started: the upstream failed or answered non-2xx. */
static void answer_unstarted(struct call *c, struct relay_transfer *t, CURLcode result)
{
    struct usage u = {0};
    int status = (int)t->status;
    if (c->client_gone) {
        answer_publish(c, &u, 499, false);
        evhttp_send_reply(c->req, 499, NULL, NULL); /* frees the detached request */
        return;
    }
    if (result != CURLE_OK) {
        answer_failed(c, t, result);
        return;
    }
    answer_rewrite_error(c, c->error_body, status);
    answer_headers(c, t->content_type, NULL);
    answer_publish(c, &u, status, false);
    reply_send(c->req, status, &c->head, c->error_body);
}

void stream_done(struct call *c, struct relay_transfer *t, CURLcode result)
{
    if (!c->client_gone)
        watch_client(c, false);
    if (!c->started) {
        answer_unstarted(c, t, result);
        return;
    }
    if (result == CURLE_ABORTED_BY_CALLBACK && c->px->drain != NULL)
        log_request(LOG_WARN, c->request_id, "stream cut by the shutdown grace time; "
                    "accounted for what was sent");
    else if (result != CURLE_OK && !c->client_gone)
        log_request(LOG_WARN, c->request_id, "upstream stream ended early: %s",
                    t->errbuf[0] ? t->errbuf : curl_easy_strerror(result));
    struct usage u;
    bool estimated = stream_usage(c, &u);
    if (estimated)
        answer_usage_complete(c, NULL, &u);
    answer_publish(c, &u, (int)t->status, estimated);
    struct evbuffer *out = evbuffer_new();
    if (!c->client_gone && out != NULL && sse_filter_finish(c->sse, out) == 0 &&
        evbuffer_get_length(out) > 0)
        evhttp_send_reply_chunk(c->req, out);
    if (out != NULL)
        evbuffer_free(out);
    evhttp_send_reply_end(c->req); /* after a client left: frees the detached request */
}
