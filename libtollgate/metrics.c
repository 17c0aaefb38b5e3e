/* metrics.c - Prometheus counters and their HTTP endpoint (see metrics.h).
 *
 * Design: a fixed list of counters, declared at start-up; a labelled one
 * keeps its values in a strmap (label value -> uint64_t). One mutex guards
 * all values: they change a few times per batch or request, and a scrape
 * holds it only while it copies them into text. The server is a libevent
 * loop on its own thread, so serving a scrape never waits for a database
 * write and a daemon without an event loop (accountd) can serve one too.
 */
#include "metrics.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"
#include "httpjson.h"
#include "runtime.h"
#include "strmap.h"

struct counter {
    char *name, *help, *label;
    uint64_t value;        /* without a label */
    struct strmap *values; /* with one: label value -> uint64_t * */
};

struct metrics {
    pthread_mutex_t lock;
    struct counter *c;
    size_t n, cap;
};

struct metrics *metrics_new(void)
{
    struct metrics *m = calloc(1, sizeof(*m));
    if (m == NULL || pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        return NULL;
    }
    return m;
}

void metrics_free(struct metrics *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n; i++) {
        free(m->c[i].name);
        free(m->c[i].help);
        free(m->c[i].label);
        strmap_free(m->c[i].values, free);
    }
    free(m->c);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

int metrics_counter(struct metrics *m, const char *name, const char *help, const char *label)
{
    struct counter *c = grow_array(m->c, &m->cap, m->n + 1, sizeof(*m->c), 8);
    if (c == NULL)
        return -1;
    m->c = c;
    c = &m->c[m->n];
    *c = (struct counter){.name = strdup(name), .help = strdup(help),
                          .label = label != NULL ? strdup(label) : NULL,
                          .values = label != NULL ? strmap_new() : NULL};
    if (c->name == NULL || c->help == NULL ||
        (label != NULL && (c->label == NULL || c->values == NULL))) {
        free(c->name);
        free(c->help);
        free(c->label);
        strmap_free(c->values, NULL);
        return -1;
    }
    return (int)m->n++;
}

/* The value cell of counter c for label_value; made on first use. Under lock. */
static uint64_t *cell(struct counter *c, const char *label_value, bool make)
{
    if (c->values == NULL)
        return &c->value;
    uint64_t *v = strmap_get(c->values, label_value != NULL ? label_value : "");
    int err = 0;
    if (v != NULL || !make || (v = calloc(1, sizeof(*v))) == NULL)
        return v;
    strmap_put(c->values, label_value != NULL ? label_value : "", v, &err);
    if (err < 0) {
        free(v);
        return NULL;
    }
    return v;
}

void metrics_add(struct metrics *m, int id, const char *label_value, uint64_t n)
{
    if (m == NULL || id < 0 || (size_t)id >= m->n)
        return;
    pthread_mutex_lock(&m->lock);
    uint64_t *v = cell(&m->c[id], label_value, true);
    if (v != NULL)
        *v += n;
    pthread_mutex_unlock(&m->lock);
}

uint64_t metrics_get(struct metrics *m, int id, const char *label_value)
{
    if (m == NULL || id < 0 || (size_t)id >= m->n)
        return 0;
    pthread_mutex_lock(&m->lock);
    uint64_t *v = cell(&m->c[id], label_value, false), r = v != NULL ? *v : 0;
    pthread_mutex_unlock(&m->lock);
    return r;
}

/* A label value as the text format wants it: \, " and newline escaped. */
static int add_label_value(struct evbuffer *b, const char *s)
{
    int rc = 0;
    for (; *s != '\0' && rc == 0; s++)
        rc = *s == '\\' ? evbuffer_add(b, "\\\\", 2) : *s == '"' ? evbuffer_add(b, "\\\"", 2)
           : *s == '\n' ? evbuffer_add(b, "\\n", 2) : evbuffer_add(b, s, 1);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* One counter's lines; label values sorted, so scrapes read alike. */
static int render_counter(struct evbuffer *b, struct counter *c)
{
    if (evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s counter\n", c->name, c->help, c->name) < 0)
        return -1;
    if (c->values == NULL)
        return evbuffer_add_printf(b, "%s %llu\n", c->name, (unsigned long long)c->value) < 0 ? -1 : 0;
    size_t n = strmap_count(c->values), k = 0, pos = 0;
    const char **keys = malloc((n ? n : 1) * sizeof(*keys)), *key;
    void *v;
    int rc = keys != NULL ? 0 : -1;
    while (rc == 0 && strmap_next(c->values, &pos, &key, &v) == 0)
        keys[k++] = key;
    if (rc == 0)
        qsort(keys, k, sizeof(*keys), cmp_str);
    for (size_t i = 0; rc == 0 && i < k; i++)
        if (evbuffer_add_printf(b, "%s{%s=\"", c->name, c->label) < 0 ||
            add_label_value(b, keys[i]) < 0 ||
            evbuffer_add_printf(b, "\"} %llu\n",
                                (unsigned long long)*(uint64_t *)strmap_get(c->values, keys[i])) < 0)
            rc = -1;
    free(keys);
    return rc;
}

char *metrics_render(struct metrics *m, size_t *len)
{
    struct evbuffer *b = evbuffer_new();
    char *text = NULL;
    int rc = b != NULL ? 0 : -1;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; rc == 0 && i < m->n; i++)
        rc = render_counter(b, &m->c[i]);
    pthread_mutex_unlock(&m->lock);
    if (rc == 0 && (text = malloc(evbuffer_get_length(b) + 1)) != NULL) {
        *len = evbuffer_get_length(b);
        evbuffer_remove(b, text, *len);
        text[*len] = '\0';
    }
    if (b != NULL)
        evbuffer_free(b);
    return text;
}

struct metrics_server {
    struct metrics *m;
    struct event_base *base;
    struct evhttp *http;
    pthread_t thread;
    bool started;
};

static void on_request(struct evhttp_request *req, void *arg)
{
    struct metrics_server *s = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (path == NULL || strcmp(path, "/metrics") != 0) {
        httpjson_error(req, 404, "not_found_error", NULL, "Not found: only GET /metrics is served here");
        return;
    }
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        httpjson_error(req, 405, "invalid_request_error", NULL, "/metrics answers GET only");
        return;
    }
    size_t len = 0;
    char *text = metrics_render(s->m, &len);
    struct evbuffer *out = text != NULL ? evbuffer_new() : NULL;
    if (out == NULL || evbuffer_add(out, text, len) != 0 ||
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "text/plain; version=0.0.4; charset=utf-8") != 0) {
        evhttp_send_error(req, 500, "out of memory");
    } else {
        evhttp_send_reply(req, 200, "OK", out);
    }
    if (out != NULL)
        evbuffer_free(out);
    free(text);
}

static void *serve(void *arg)
{
    struct metrics_server *s = arg;
    event_base_dispatch(s->base);
    return NULL;
}

struct metrics_server *metrics_serve(struct metrics *m, const struct listen_addr *addr,
                                     char *err, size_t errlen)
{
    struct metrics_server *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->base = event_base_new()) == NULL ||
        (s->http = evhttp_new(s->base)) == NULL) {
        snprintf(err, errlen, "metrics: out of memory");
        metrics_server_free(s);
        return NULL;
    }
    s->m = m;
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
    evhttp_set_gencb(s->http, on_request, s);
    if (evhttp_bind_socket(s->http, addr->host, (ev_uint16_t)addr->port) != 0) {
        snprintf(err, errlen, "metrics: cannot listen on %s:%d", addr->host, addr->port);
        metrics_server_free(s);
        return NULL;
    }
    if (runtime_thread_start(&s->thread, serve, s) != 0) {
        snprintf(err, errlen, "metrics: cannot start its thread");
        metrics_server_free(s);
        return NULL;
    }
    s->started = true;
    return s;
}

void metrics_server_free(struct metrics_server *s)
{
    if (s == NULL)
        return;
    if (s->started) {
        event_base_loopexit(s->base, NULL);
        pthread_join(s->thread, NULL);
    }
    if (s->http != NULL)
        evhttp_free(s->http);
    if (s->base != NULL)
        event_base_free(s->base);
    free(s);
}
