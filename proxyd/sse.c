/* sse.c - Server-Sent Events filter for streamed answers (see sse.h).
 *
 * Upstream bytes are cut into events at blank lines. An event's "event:"
 * and "data:" fields are read and its data parsed as JSON, then the
 * stream's protocol decides what the client gets (protocol.h). Events
 * longer than EVENT_MAX, and comments or fields the filter does not read,
 * are passed on unparsed. "data: [DONE]" (OpenAI's end marker) is held
 * back until sse_filter_finish, as are the protocols' own last events.
 */
#include "sse.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"
#include "protocol.h"

#define EVENT_MAX (1024 * 1024)       /* larger events are passed through unparsed */
#define TEXT_MAX (16 * 1024 * 1024)   /* generated text kept for local counting */
#define NAME_MAX_LEN 128              /* longer event names are not parsed */

struct sse_filter {
    const struct protocol *proto;
    void *state;
    bool client_wants_usage;
    sse_price_cb price;
    void *arg;
    struct evbuffer *pending; /* bytes of the event being received */
    bool have_usage, usage_final;
    struct usage usage;
    char *text;
    size_t text_len, text_cap;
    size_t events;
    struct evbuffer *held; /* released by sse_filter_finish */
};

struct sse_filter *sse_filter_new(const struct protocol *proto, void *state,
                                  bool client_wants_usage, sse_price_cb price, void *arg)
{
    struct sse_filter *f = calloc(1, sizeof(*f));
    if (f == NULL || (f->pending = evbuffer_new()) == NULL || (f->held = evbuffer_new()) == NULL) {
        if (f != NULL && f->pending != NULL)
            evbuffer_free(f->pending);
        free(f);
        return NULL;
    }
    f->proto = proto;
    f->state = state;
    f->client_wants_usage = client_wants_usage;
    f->price = price;
    f->arg = arg;
    return f;
}

void sse_filter_free(struct sse_filter *f)
{
    if (f == NULL)
        return;
    if (f->proto->stream_free != NULL)
        f->proto->stream_free(f->state);
    evbuffer_free(f->pending);
    evbuffer_free(f->held);
    free(f->text);
    free(f);
}

void sse_keep_text(struct sse_filter *f, const char *s, size_t len)
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

bool sse_client_wants_usage(const struct sse_filter *f)
{
    return f->client_wants_usage;
}

void sse_set_usage(struct sse_filter *f, const struct usage *u, bool final)
{
    f->usage = *u;
    f->have_usage = true;
    f->usage_final = final;
}

void sse_price(struct sse_filter *f, const json_t *chunk, char cost[MONEY_STR_MAX])
{
    f->price(&f->usage, chunk, cost, f->arg); /* completes the usage either way */
}

void sse_count_content(struct sse_filter *f)
{
    f->events++;
}

int sse_hold(struct sse_filter *f, const char *raw, size_t len)
{
    return evbuffer_add(f->held, raw, len) == 0 ? 0 : -1;
}

int sse_set_cost(json_t *chunk, const char cost[MONEY_STR_MAX])
{
    money_t m;
    json_t *num = money_parse(cost, &m) == 0 ? json_real(money_to_double(m)) : json_null();
    return json_object_set_new(json_object_get(chunk, "usage"), "cost", num) == 0 ? 0 : -1;
}

int sse_write(struct evbuffer *out, const char *name, const json_t *data)
{
    char *s = json_dumps(data, JSON_COMPACT | JSON_REAL_PRECISION(15));
    if (s == NULL)
        return -1;
    int rc = (name != NULL ? evbuffer_add_printf(out, "event: %s\ndata: %s\n\n", name, s)
                           : evbuffer_add_printf(out, "data: %s\n\n", s)) < 0 ? -1 : 0;
    free(s);
    return rc;
}

/* Reads an event's "event:" name and its "data:" lines (joined by \n).
 * -1 when it has other fields (id:, retry:, comments): passed on as is. */
static int event_fields(const char *ev, size_t len, char name[NAME_MAX_LEN], char **data)
{
    char *out = malloc(len + 1);
    size_t n = 0;
    const char *p = ev, *end = ev + len;
    name[0] = '\0';
    if ((*data = out) == NULL)
        return -1;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl != NULL ? nl : end;
        size_t ll = (size_t)(le - p);
        if (ll > 0 && p[ll - 1] == '\r')
            ll--;
        bool is_data = ll >= 5 && memcmp(p, "data:", 5) == 0;
        bool is_name = ll >= 6 && memcmp(p, "event:", 6) == 0;
        if (ll > 0 && !is_data && !is_name)
            goto other;
        if (ll > 0) {
            size_t skip = is_data ? 5 : 6;
            const char *v = p + skip + (ll > skip && p[skip] == ' ');
            size_t vl = ll - (size_t)(v - p);
            if (is_name) {
                if (vl >= NAME_MAX_LEN)
                    goto other;
                memcpy(name, v, vl);
                name[vl] = '\0';
            } else {
                if (n > 0)
                    out[n++] = '\n';
                memcpy(out + n, v, vl);
                n += vl;
            }
        }
        p = le + 1;
    }
    out[n] = '\0';
    return 0;
other:
    free(out);
    *data = NULL;
    return -1;
}

/* One complete event (with its terminating blank line). */
static int handle_event(struct sse_filter *f, const char *ev, size_t len, struct evbuffer *out)
{
    char name[NAME_MAX_LEN], *data = NULL;
    if (len > EVENT_MAX || event_fields(ev, len, name, &data) < 0)
        return evbuffer_add(out, ev, len) == 0 ? 0 : -1;
    if (strcmp(data, "[DONE]") == 0) {
        free(data); /* the end marker waits until the usage event is safe */
        return sse_hold(f, ev, len);
    }
    json_t *chunk = json_loads(data, 0, NULL);
    free(data);
    int rc = json_is_object(chunk)
                 ? f->proto->stream_event(f->state, f, name[0] ? name : NULL, chunk, ev, len, out)
                 : evbuffer_add(out, ev, len) == 0 ? 0 : -1;
    json_decref(chunk);
    return rc;
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

bool sse_filter_usage(const struct sse_filter *f, struct usage *u, bool *partial)
{
    if (f->have_usage)
        *u = f->usage;
    if (partial != NULL)
        *partial = f->have_usage && !f->usage_final;
    return f->have_usage && f->usage_final;
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
