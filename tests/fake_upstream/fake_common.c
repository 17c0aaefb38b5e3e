/*
 * fake_common.c - the mock_* body fields every API of fake-upstream reads
 * the same way (see fake_common.h), the words a stream sends one at a time,
 * and ids.
 *
 * Nothing here answers a request: a bad field comes back as a message for
 * the caller's 400, so each API shapes it its own way.
 */
#include "fake_common.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_CONTENT "This is a fake answer."
#define MAX_ANSWER_BYTES ((size_t)64 * 1024 * 1024) /* mock_content x mock_chunks */
#define MAX_REPS 100000L                            /* mock_chunks */
#define MAX_CHUNK_DELAY_MS 10000L

int mock_read_long(const json_t *obj, const char *name, long min, long max, long *out,
                   char *msg, size_t size)
{
    const json_t *value = json_object_get(obj, name);

    if (!value)
        return 0;
    if (!json_is_integer(value) || json_integer_value(value) < min
        || json_integer_value(value) > max) {
        snprintf(msg, size, "%s must be an integer between %ld and %ld", name, min, max);
        return -1;
    }
    *out = (long)json_integer_value(value);
    return 0;
}

const char *mock_read_count(const json_t *obj, const char *name, json_int_t *out,
                            int *present)
{
    const json_t *value = json_object_get(obj, name);

    if (!value)
        return NULL;
    if (!json_is_integer(value) || json_integer_value(value) < 0
        || json_integer_value(value) > MAX_TOKENS)
        return "mock_usage fields must be non-negative integers";
    *out = json_integer_value(value);
    if (present)
        *present = 1;
    return NULL;
}

int mock_read_status(const json_t *body)
{
    const json_t *value = json_object_get(body, "mock_status");
    json_int_t status;

    if (!value)
        return 0;
    if (!json_is_integer(value))
        return -1;
    status = json_integer_value(value);
    return (status >= 400 && status <= 599) ? (int)status : -1;
}

/* mock_stream_usage into a->usage_mode; -1 (with `msg`) on a bad value. */
static int read_usage_mode(const json_t *body, struct answer *a, char *msg, size_t size)
{
    const json_t *mode = json_object_get(body, "mock_stream_usage");
    const char *m = json_string_value(mode);

    a->usage_mode = USAGE_AUTO;
    if (mode && m && strcmp(m, "never") == 0) {
        a->usage_mode = USAGE_NEVER;
    } else if (mode && m && strcmp(m, "always") == 0) {
        a->usage_mode = USAGE_ALWAYS;
    } else if (mode && !(m && strcmp(m, "auto") == 0)) {
        snprintf(msg, size, "mock_stream_usage must be \"auto\", \"never\" or \"always\"");
        return -1;
    }
    return 0;
}

int mock_read_answer(const json_t *body, struct answer *a, char *msg, size_t size)
{
    const json_t *content = json_object_get(body, "mock_content");

    a->content = DEFAULT_CONTENT;
    a->length = strlen(DEFAULT_CONTENT);
    a->reps = 1;
    a->chunk_delay_ms = 0;
    a->stall_after = -1;
    if (content && !json_is_string(content)) {
        snprintf(msg, size, "mock_content must be a string");
        return -1;
    }
    if (content) {
        a->content = json_string_value(content);
        a->length = json_string_length(content);
    }
    if (mock_read_long(body, "mock_chunks", 1, MAX_REPS, &a->reps, msg, size) != 0
        || mock_read_long(body, "mock_chunk_delay_ms", 0, MAX_CHUNK_DELAY_MS,
                          &a->chunk_delay_ms, msg, size) != 0
        || mock_read_long(body, "mock_stall_after_chunks", 0, INT_MAX, &a->stall_after, msg,
                          size) != 0)
        return -1;
    if (a->length > 0 && (size_t)a->reps > MAX_ANSWER_BYTES / a->length) {
        snprintf(msg, size, "mock_content times mock_chunks exceeds %zu bytes",
                 MAX_ANSWER_BYTES);
        return -1;
    }
    return read_usage_mode(body, a, msg, size);
}

char *mock_answer_text(const struct answer *a, size_t *len)
{
    char *text = malloc(a->length * (size_t)a->reps + 1);
    long i;

    if (!text)
        return NULL;
    for (i = 0; i < a->reps; i++)
        memcpy(text + (size_t)i * a->length, a->content, a->length);
    *len = a->length * (size_t)a->reps;
    text[*len] = '\0';
    return text;
}

void mock_new_id(struct app *app, const char *prefix, char *dst, size_t size)
{
    /* an odd multiplier is a bijection: distinct counters, distinct ids */
    uint64_t mixed = (uint64_t)++app->counter * UINT64_C(0x9E3779B97F4A7C15);

    snprintf(dst, size, "%s%08x%08x%016llx", prefix, (unsigned)time(NULL),
             (unsigned)getpid(), (unsigned long long)mixed);
}

/* The end of the word starting at `i`: its letters, then its spaces. */
static size_t word_end(const char *text, size_t len, size_t i)
{
    while (i < len && text[i] != ' ')
        i++;
    while (i < len && text[i] == ' ')
        i++;
    return i;
}

int words_init(struct words *w, const struct answer *a)
{
    size_t n = 0, i;

    memset(w, 0, sizeof *w);
    for (i = 0; i < a->length; i = word_end(a->content, a->length, i))
        n++;
    if (n == 0)
        n = 1;
    w->text = malloc(a->length + 1);
    w->cuts = malloc((n + 1) * sizeof *w->cuts);
    if (!w->text || !w->cuts) {
        words_clear(w);
        return -1;
    }
    memcpy(w->text, a->content, a->length);
    w->text[a->length] = '\0';
    w->cuts[0] = 0;
    for (i = 1; i <= n; i++)
        w->cuts[i] = word_end(a->content, a->length, w->cuts[i - 1]);
    w->n = n;
    w->total = n * (size_t)a->reps;
    return 0;
}

const char *words_at(const struct words *w, size_t i, size_t *len)
{
    size_t k = i % w->n;

    *len = w->cuts[k + 1] - w->cuts[k];
    return w->text + w->cuts[k];
}

void words_clear(struct words *w)
{
    free(w->text);
    free(w->cuts);
    memset(w, 0, sizeof *w);
}
