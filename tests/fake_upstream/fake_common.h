/*
 * fake_common.h - what every API fake-upstream speaks shares: the daemon's
 * context, the request being answered, and the mock_* body fields that mean
 * the same for every API (the answer's text, its pacing, mock_status).
 *
 * The API files (fake_upstream.c for OpenAI chat and friends,
 * fake_anthropic.c, fake_responses.c) read the body with these helpers and
 * answer with fake_reply.h; neither of these two calls an API file.
 */
#ifndef FAKE_COMMON_H
#define FAKE_COMMON_H

#include <limits.h>
#include <stddef.h>
#include <stdio.h>

#include <event2/http.h>
#include <jansson.h>

#include "fake_answer_extras.h"

#define MAX_TOKENS ((json_int_t)INT_MAX)
#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(9))

struct options {
    char *host; /* malloc'd */
    int port;
    const char *api_key;
    json_int_t prompt_tokens;
    json_int_t completion_tokens;
    const char *log_path;
    long fail_first;
};

struct call;
struct responses_store;

/* The daemon's context, built in main. */
struct app {
    struct options opt;
    struct event_base *base;
    struct evhttp *http;
    struct event *sigint_ev;
    struct event *sigterm_ev;
    FILE *log;
    unsigned long counter;             /* ids handed out */
    struct call *calls;                /* delayed replies and streams under way */
    struct responses_store *responses; /* Responses API objects, made on first use */
    unsigned long requests;            /* POSTs received */
    unsigned long failed;              /* POSTs failed by --fail-first */
    unsigned long active_streams;
    unsigned long cancelled_streams; /* streams the client left */
    unsigned long calls_now, calls_max; /* delayed replies and streams under way; the most
                                         * at once since the start or GET /stats/reset */
};

/* How the request's API shapes an error. */
enum dialect { DIALECT_OPENAI, DIALECT_ANTHROPIC };

/* The request being answered. */
struct exchange {
    struct app *app;
    struct evhttp_request *req;
    const json_t *body;          /* NULL unless a POST with a JSON body */
    const char *deployment;      /* the Azure deployment, or NULL */
    long delay_ms;               /* mock_first_byte_delay_ms */
    enum dialect dialect;
    struct answer_extras extras; /* filled by reply_if_mocked_error */
};

enum usage_mode { USAGE_AUTO, USAGE_NEVER, USAGE_ALWAYS };

/* An answer's text and pacing, from the mock_* body fields. */
struct answer {
    const char *content; /* borrowed from the body */
    size_t length;
    long reps;
    long chunk_delay_ms;
    long stall_after; /* -1: never */
    enum usage_mode usage_mode;
};

/* The words of an answer, for a stream: word i of the answer (i < total)
 * is word i % n of one copy of the text. */
struct words {
    char *text;   /* one copy, malloc'd */
    size_t *cuts; /* word i is text[cuts[i] .. cuts[i + 1]) */
    size_t n;     /* words in one copy (at least one, maybe empty) */
    size_t total; /* words in the answer: n x mock_chunks */
};

/* Read the integer `obj`.<name>, if present, into *out; on a value outside
 * [min, max] writes a message into `msg` and returns -1. */
int mock_read_long(const json_t *obj, const char *name, long min, long max, long *out,
                   char *msg, size_t size);

/* Read the token count `obj`.<name>, if present, into *out (and set
 * *present if `present`); returns an error message or NULL. */
const char *mock_read_count(const json_t *obj, const char *name, json_int_t *out,
                            int *present);

/* mock_status: 0 if absent, the status if valid (400..599), -1 if not. */
int mock_read_status(const json_t *body);

/* Fill `a` from the defaults and mock_content, mock_chunks,
 * mock_chunk_delay_ms, mock_stall_after_chunks, mock_stream_usage; -1 (with
 * `msg`) on a bad value. */
int mock_read_answer(const json_t *body, struct answer *a, char *msg, size_t size);

/* `a`'s text repeated mock_chunks times (malloc'd, *len bytes), or NULL. */
char *mock_answer_text(const struct answer *a, size_t *len);

/* Write `prefix` and 32 hex digits, unique in this process, into `dst`. */
void mock_new_id(struct app *app, const char *prefix, char *dst, size_t size);

/* Fill `w` with `a`'s words; -1 if out of memory (then `w` is empty). */
int words_init(struct words *w, const struct answer *a);

/* Word `i` of the answer (its trailing spaces included), *len bytes. */
const char *words_at(const struct words *w, size_t i, size_t *len);

void words_clear(struct words *w);

#endif
