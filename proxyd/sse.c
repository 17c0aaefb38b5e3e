/* sse.c - Server-Sent Events filter for streamed completions (see sse.h).
 *
 * Upstream bytes are cut into events at blank lines. An event is parsed
 * only to learn what it carries (usage, generated text); the client gets
 * the original bytes unless the event must change: the usage chunk, which
 * is dropped (client did not ask for usage) or re-encoded with usage.cost.
 * Events longer than EVENT_MAX are passed on unparsed. The closing
 * "data: [DONE]" is held back until sse_filter_finish, so the usage event
 * can be safely queued before the stream's last bytes leave.
 */
#include "sse.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"
#include "usage.h"

#define EVENT_MAX (1024 * 1024)       /* larger events are passed through unparsed */
#define TEXT_MAX (16 * 1024 * 1024)   /* generated text kept for local counting */

struct sse_filter {
    bool client_wants_usage;
    sse_price_cb price;
    void *arg;
    struct evbuffer *pending; /* bytes of the event being received */
    bool have_usage;
    struct usage usage;
    char *text;
    size_t text_len, text_cap;
    size_t events;
    struct evbuffer *held; /* "data: [DONE]", released by sse_filter_finish */
};

struct sse_filter *sse_filter_new(bool client_wants_usage, sse_price_cb price, void *arg)
{
    struct sse_filter *f = calloc(1, sizeof(*f));
    if (f == NULL || (f->pending = evbuffer_new()) == NULL || (f->held = evbuffer_new()) == NULL) {
        if (f != NULL && f->pending != NULL)
            evbuffer_free(f->pending);
        free(f);
        return NULL;
    }
    f->client_wants_usage = client_wants_usage;
    f->price = price;
    f->arg = arg;
    return f;
}

void sse_filter_free(struct sse_filter *f)
{
    if (f == NULL)
        return;
    evbuffer_free(f->pending);
    evbuffer_free(f->held);
    free(f->text);
    free(f);
}

static void keep_text(struct sse_filter *f, const char *s, size_t len)
{
    if (f->text_len + len > TEXT_MAX)
        return;
    char *t = grow_array(f->text, &f->text_cap, f->text_len + len + 1, 1,
                         512); /* most answers are short */
    if (t == NULL)
        return; /* only the fallback count suffers */
    f->text = t;
    memcpy(f->text + f->text_len, s, len);
    f->text_len += len;
    f->text[f->text_len] = '\0';
}

/* Collects choices[].delta.content (chat) and choices[].text (completions). */
static void collect_text(struct sse_filter *f, json_t *chunk)
{
    size_t i;
    json_t *choice;
    json_array_foreach(json_object_get(chunk, "choices"), i, choice) {
        json_t *t = json_object_get(json_object_get(choice, "delta"), "content");
        if (!json_is_string(t))
            t = json_object_get(choice, "text");
        if (json_is_string(t))
            keep_text(f, json_string_value(t), json_string_length(t));
    }
}

/* The data of an event made only of "data:" lines (joined by \n), or NULL. */
static char *event_data(const char *ev, size_t len)
{
    char *out = malloc(len + 1);
    size_t n = 0;
    const char *p = ev, *end = ev + len;
    if (out == NULL)
        return NULL;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl != NULL ? nl : end;
        size_t ll = (size_t)(le - p);
        if (ll > 0 && p[ll - 1] == '\r')
            ll--;
        if (ll > 0) {
            if (ll < 5 || memcmp(p, "data:", 5) != 0) {
                free(out);
                return NULL;
            }
            const char *v = p + 5 + (ll > 5 && p[5] == ' ');
            size_t vl = ll - (size_t)(v - p);
            if (n > 0)
                out[n++] = '\n';
            memcpy(out + n, v, vl);
            n += vl;
        }
        p = le + 1;
    }
    out[n] = '\0';
    return out;
}

/* The usage chunk, rewritten for the client: with usage.cost, or without
 * usage at all. Returns 1 when the event must be dropped entirely. */
static int rewrite_usage(struct sse_filter *f, json_t *chunk, struct evbuffer *out)
{
    size_t n_choices = json_array_size(json_object_get(chunk, "choices"));
    char cost[MONEY_STR_MAX];
    f->price(&f->usage, chunk, cost, f->arg); /* completes the usage either way */
    if (!f->client_wants_usage) {
        if (n_choices == 0)
            return 1;
        json_object_del(chunk, "usage");
    } else {
        money_t m;
        json_t *num = money_parse(cost, &m) == 0 ? json_real(money_to_double(m)) : json_null();
        json_object_set_new(json_object_get(chunk, "usage"), "cost", num);
    }
    char *s = json_dumps(chunk, JSON_COMPACT | JSON_REAL_PRECISION(15));
    if (s == NULL)
        return -1;
    int rc = evbuffer_add_printf(out, "data: %s\n\n", s) < 0 ? -1 : 0;
    free(s);
    return rc;
}

/* One complete event (with its terminating blank line). */
static int handle_event(struct sse_filter *f, const char *ev, size_t len, struct evbuffer *out)
{
    char *data = len <= EVENT_MAX ? event_data(ev, len) : NULL;
    if (data != NULL && strcmp(data, "[DONE]") == 0) {
        free(data); /* the end marker waits until the usage event is safe */
        return evbuffer_add(f->held, ev, len) == 0 ? 0 : -1;
    }
    json_t *chunk = data != NULL ? json_loads(data, 0, NULL) : NULL;
    int rc = 0;
    free(data);
    if (json_is_object(chunk)) {
        collect_text(f, chunk);
        json_t *u = json_object_get(chunk, "usage");
        if (json_is_object(u) && usage_from_json(u, &f->usage) == 0) {
            f->have_usage = true;
            rc = rewrite_usage(f, chunk, out);
            json_decref(chunk);
            return rc < 0 ? -1 : 0;
        }
        if (json_object_get(chunk, "choices") != NULL)
            f->events++;
    }
    json_decref(chunk);
    return evbuffer_add(out, ev, len) == 0 ? 0 : -1;
}

/* The end of the first event in buf: offset after "\n\n" or "\r\n\r\n", or 0. */
static size_t event_end(struct evbuffer *buf)
{
    struct evbuffer_ptr p = evbuffer_search(buf, "\n\n", 2, NULL);
    struct evbuffer_ptr q = evbuffer_search(buf, "\r\n\r\n", 4, NULL);
    if (p.pos < 0 && q.pos < 0)
        return 0;
    if (q.pos >= 0 && (p.pos < 0 || q.pos < p.pos))
        return (size_t)q.pos + 4;
    return (size_t)p.pos + 2;
}

int sse_filter_feed(struct sse_filter *f, const char *data, size_t len, struct evbuffer *out)
{
    if (evbuffer_add(f->pending, data, len) != 0)
        return -1;
    size_t end;
    while ((end = event_end(f->pending)) > 0) {
        const char *ev = (const char *)evbuffer_pullup(f->pending, (ev_ssize_t)end);
        if (ev == NULL || handle_event(f, ev, end, out) < 0)
            return -1;
        evbuffer_drain(f->pending, end);
    }
    /* An event that never ends: pass what we have on rather than hoard it. */
    if (evbuffer_get_length(f->pending) > EVENT_MAX)
        return evbuffer_remove_buffer(f->pending, out, evbuffer_get_length(f->pending)) < 0 ? -1 : 0;
    return 0;
}

int sse_filter_finish(struct sse_filter *f, struct evbuffer *out)
{
    size_t n = evbuffer_get_length(f->pending);
    if (n > 0 && evbuffer_remove_buffer(f->pending, out, n) < 0)
        return -1;
    return evbuffer_add_buffer(out, f->held) == 0 ? 0 : -1;
}

bool sse_filter_usage(const struct sse_filter *f, struct usage *u)
{
    if (f->have_usage)
        *u = f->usage;
    return f->have_usage;
}

const char *sse_filter_text(const struct sse_filter *f, size_t *len)
{
    *len = f->text_len;
    return f->text != NULL ? f->text : "";
}

size_t sse_filter_events(const struct sse_filter *f)
{
    return f->events;
}
