/*
 * fake_reply.h - how fake-upstream answers: a JSON reply now or after the
 * request's first-byte delay, errors shaped as the request's API shapes
 * them, and paced SSE streams that stall on demand and notice a client that
 * leaves.
 *
 * A stream is the API's generator (struct stream embedded first in the
 * API's own struct) driven by a timer here: `next` sends one event per
 * call, and says when the stream stalls or is over.
 */
#ifndef FAKE_REPLY_H
#define FAKE_REPLY_H

#include "fake_common.h"

enum stream_step {
    STREAM_SENT,    /* one event sent, more to come */
    STREAM_STALLED, /* nothing more until the client leaves */
    STREAM_OVER,    /* the last event was sent */
};

struct stream {
    enum stream_step (*next)(struct stream *s, struct evhttp_request *req);
    void (*release)(struct stream *s); /* frees the API's struct */
    long chunk_delay_ms;               /* between two events */
    size_t sent;                       /* content events sent (the API counts them) */
    int started;                       /* headers sent */
};

/* Send the JSON text `text` with `status` now; NULL text sends a 500. */
void reply_now(struct evhttp_request *req, int status, const char *text);

/* Send `body` (reference stolen; NULL: a 500) with `status`, after the
 * request's first-byte delay if it has one. */
void reply_json(struct exchange *ex, int status, json_t *body);

/* Send an error in the request's dialect: OpenAI's {"error": {message,
 * type, param, code}} (`code` may be NULL), or Anthropic's {"type":
 * "error", "error": {type, message}} with the type of `status`. */
void reply_error(struct exchange *ex, int status, const char *message, const char *type,
                 const char *code);

/* A 400 invalid_request_error. */
void reply_bad_request(struct exchange *ex, const char *message);

/* Read mock_usage_raw / mock_answer_fields into ex->extras and mock_status;
 * if one is bad (400) or mock_status asks for an error, answer it and
 * return 1; else return 0 without answering. */
int reply_if_mocked_error(struct exchange *ex);

/* Answer `ex` with the stream `s` (taken over; NULL: out of memory, a 500),
 * after the request's first-byte delay. */
void reply_stream(struct exchange *ex, struct stream *s);

/* Send one SSE event: "event: <event>\n" (if `event`), "data: <data>\n\n";
 * `data` is stolen and may be NULL (nothing is sent then). */
void stream_send(struct evhttp_request *req, const char *event, json_t *data);

/* stream_send with the event named by `data`'s "type" member. */
void stream_send_event(struct evhttp_request *req, json_t *data);

/* Send "data: <text>\n\n" (for "[DONE]"). */
void stream_send_text(struct evhttp_request *req, const char *text);

/* Forget every delayed reply and stream (at exit; libevent frees the
 * requests). */
void reply_forget_calls(struct app *app);

#endif
