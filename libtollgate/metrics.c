/* metrics.c - the Prometheus metrics registry and its text rendering (see
 * metrics.h; the HTTP side is metrics_http.c).
 *
 * Design: a fixed list of metrics, declared at start-up. Each keeps its
 * series in a strmap from the label values joined by US (0x1f) to a cell:
 * a counter's count, a gauge's value, or a histogram's per-bucket counts,
 * count and sum. One mutex guards all of them: an observation is a few
 * additions, and a scrape holds it only while it copies them into text.
 */
#include "metrics.h"

#include <event2/buffer.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"
#include "strmap.h"

#define SEP '\x1f'

const double metrics_latency_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                          0.1,    0.25,  0.5,    1,     2.5,  5,     10,
                                          30,     60};
const size_t metrics_latency_nbuckets = sizeof(metrics_latency_buckets) / sizeof(double);

enum kind { COUNTER, GAUGE, HISTOGRAM };

struct cell {
    uint64_t n; /* a counter's value, a histogram's count */
    double x;   /* a gauge's value, a histogram's sum */
    uint64_t bucket[]; /* a histogram's counts per bucket (not cumulative), +Inf last */
};

struct metric {
    enum kind kind;
    char *name, *help;
    char *labels[METRICS_MAX_LABELS];
    size_t n_labels;
    double *bounds;
    size_t n_bounds;
    struct strmap *series; /* joined label values -> struct cell * */
};

struct metrics {
    pthread_mutex_t lock;
    struct metric *v;
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

static void metric_fini(struct metric *x)
{
    free(x->name);
    free(x->help);
    for (size_t i = 0; i < x->n_labels; i++)
        free(x->labels[i]);
    free(x->bounds);
    strmap_free(x->series, free);
}

void metrics_free(struct metrics *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n; i++)
        metric_fini(&m->v[i]);
    free(m->v);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* Splits "a,b,c" into x->labels. -1 on ENOMEM or too many labels. */
static int split_labels(struct metric *x, const char *labels)
{
    while (labels != NULL && *labels != '\0') {
        size_t len = strcspn(labels, ",");
        if (x->n_labels == METRICS_MAX_LABELS || len == 0 ||
            (x->labels[x->n_labels] = strndup(labels, len)) == NULL)
            return -1;
        x->n_labels++;
        labels += len + (labels[len] == ',');
    }
    return 0;
}

static int declare(struct metrics *m, enum kind kind, const char *name, const char *help,
                   const char *labels, const double *bounds, size_t n_bounds)
{
    struct metric *v = grow_array(m->v, &m->cap, m->n + 1, sizeof(*m->v), 16);
    if (v == NULL)
        return -1;
    m->v = v;
    struct metric *x = &m->v[m->n];
    *x = (struct metric){.kind = kind, .name = strdup(name), .help = strdup(help),
                         .series = strmap_new(), .n_bounds = n_bounds};
    bool ok = x->name != NULL && x->help != NULL && x->series != NULL &&
              split_labels(x, labels) == 0;
    if (ok && n_bounds > 0 && (x->bounds = malloc(n_bounds * sizeof(double))) != NULL)
        memcpy(x->bounds, bounds, n_bounds * sizeof(double));
    if (!ok || (n_bounds > 0 && x->bounds == NULL)) {
        metric_fini(x);
        return -1;
    }
    return (int)m->n++;
}

int metrics_counter(struct metrics *m, const char *name, const char *help, const char *labels)
{
    return declare(m, COUNTER, name, help, labels, NULL, 0);
}

int metrics_gauge(struct metrics *m, const char *name, const char *help, const char *labels)
{
    return declare(m, GAUGE, name, help, labels, NULL, 0);
}

int metrics_histogram(struct metrics *m, const char *name, const char *help, const char *labels,
                      const double *bounds, size_t n_bounds)
{
    for (size_t i = 1; i < n_bounds; i++)
        if (!(bounds[i] > bounds[i - 1]))
            return -1;
    return declare(m, HISTOGRAM, name, help, labels, bounds, n_bounds);
}

/* The series key of values: each value with SEP and control bytes made
 * '?', joined by SEP; "other" in every label once the metric is full. */
static void series_key(const struct metric *x, const char *const *values, bool other, char *key,
                       size_t len)
{
    size_t at = 0;
    key[0] = '\0';
    for (size_t i = 0; i < x->n_labels; i++) {
        const char *v = other ? "other" : values != NULL && values[i] != NULL ? values[i] : "";
        if (i > 0 && at + 1 < len)
            key[at++] = SEP;
        for (; *v != '\0' && at + 1 < len; v++)
            key[at++] = (unsigned char)*v < 0x20 || *v == 0x7f ? '?' : *v;
        key[at] = '\0';
    }
}

/* The cell of values in metric x, made on first use when make. Under lock. */
static struct cell *find_cell(struct metric *x, const char *const *values, bool make)
{
    char key[1024];
    series_key(x, values, false, key, sizeof(key));
    struct cell *c = strmap_get(x->series, key);
    if (c != NULL || !make)
        return c;
    if (strmap_count(x->series) >= METRICS_MAX_SERIES) {
        series_key(x, values, true, key, sizeof(key));
        if ((c = strmap_get(x->series, key)) != NULL)
            return c;
    }
    size_t nb = x->kind == HISTOGRAM ? x->n_bounds + 1 : 0;
    int err = 0;
    if ((c = calloc(1, sizeof(*c) + nb * sizeof(uint64_t))) == NULL)
        return NULL;
    strmap_put(x->series, key, c, &err);
    if (err < 0) {
        free(c);
        return NULL;
    }
    return c;
}

/* The metric id of kind, or NULL: a wrong id is ignored, not a crash. */
static struct metric *metric_of(struct metrics *m, int id, enum kind kind)
{
    if (m == NULL || id < 0 || (size_t)id >= m->n || m->v[id].kind != kind)
        return NULL;
    return &m->v[id];
}

void metrics_add(struct metrics *m, int id, const char *const *values, uint64_t n)
{
    struct metric *x = metric_of(m, id, COUNTER);
    if (x == NULL)
        return;
    pthread_mutex_lock(&m->lock);
    struct cell *c = find_cell(x, values, true);
    if (c != NULL)
        c->n += n;
    pthread_mutex_unlock(&m->lock);
}

void metrics_set(struct metrics *m, int id, const char *const *values, double v)
{
    struct metric *x = metric_of(m, id, GAUGE);
    if (x == NULL)
        return;
    pthread_mutex_lock(&m->lock);
    struct cell *c = find_cell(x, values, true);
    if (c != NULL)
        c->x = v;
    pthread_mutex_unlock(&m->lock);
}

void metrics_observe(struct metrics *m, int id, const char *const *values, double v)
{
    struct metric *x = metric_of(m, id, HISTOGRAM);
    if (x == NULL || isnan(v))
        return;
    size_t b = 0;
    while (b < x->n_bounds && v > x->bounds[b])
        b++;
    pthread_mutex_lock(&m->lock);
    struct cell *c = find_cell(x, values, true);
    if (c != NULL) {
        c->bucket[b]++;
        c->n++;
        c->x += v;
    }
    pthread_mutex_unlock(&m->lock);
}

double metrics_get(struct metrics *m, int id, const char *const *values)
{
    if (m == NULL || id < 0 || (size_t)id >= m->n)
        return 0;
    pthread_mutex_lock(&m->lock);
    struct metric *x = &m->v[id];
    struct cell *c = find_cell(x, values, false);
    double r = c == NULL ? 0 : x->kind == GAUGE ? c->x : (double)c->n;
    pthread_mutex_unlock(&m->lock);
    return r;
}

/* A label value as the text format wants it: \, " and newline escaped. */
static int add_label_value(struct evbuffer *b, const char *s, size_t len)
{
    int rc = 0;
    for (size_t i = 0; i < len && rc == 0; i++)
        rc = s[i] == '\\' ? evbuffer_add(b, "\\\\", 2) : s[i] == '"' ? evbuffer_add(b, "\\\"", 2)
                                                                      : evbuffer_add(b, s + i, 1);
    return rc;
}

/* {a="x",b="y"[,le="..."]}; nothing when there are no labels and no le. */
static int add_labels(struct evbuffer *b, const struct metric *x, const char *key, const char *le)
{
    if (x->n_labels == 0 && le == NULL)
        return 0;
    int rc = evbuffer_add(b, "{", 1);
    for (size_t i = 0; rc == 0 && i < x->n_labels; i++) {
        size_t len = strcspn(key, "\x1f");
        rc = evbuffer_add_printf(b, "%s%s=\"", i > 0 ? "," : "", x->labels[i]) < 0 ||
             add_label_value(b, key, len) < 0 || evbuffer_add(b, "\"", 1) < 0 ? -1 : 0;
        key += len + (key[len] != '\0');
    }
    if (rc == 0 && le != NULL)
        rc = evbuffer_add_printf(b, "%sle=\"%s\"", x->n_labels > 0 ? "," : "", le) < 0 ? -1 : 0;
    return rc == 0 ? evbuffer_add(b, "}", 1) : -1;
}

/* A sample line: name[suffix]{labels} value. */
static int add_sample(struct evbuffer *b, const struct metric *x, const char *suffix,
                      const char *key, const char *le, const char *value)
{
    return evbuffer_add_printf(b, "%s%s", x->name, suffix) < 0 || add_labels(b, x, key, le) < 0 ||
                   evbuffer_add_printf(b, " %s\n", value) < 0
               ? -1
               : 0;
}

static int render_cell(struct evbuffer *b, const struct metric *x, const char *key,
                       const struct cell *c)
{
    char v[64], le[64];
    if (x->kind != HISTOGRAM) {
        if (x->kind == COUNTER)
            snprintf(v, sizeof(v), "%llu", (unsigned long long)c->n);
        else
            snprintf(v, sizeof(v), "%.17g", c->x);
        return add_sample(b, x, "", key, NULL, v);
    }
    uint64_t cum = 0;
    for (size_t i = 0; i <= x->n_bounds; i++) {
        cum += c->bucket[i];
        if (i < x->n_bounds)
            snprintf(le, sizeof(le), "%g", x->bounds[i]);
        else
            snprintf(le, sizeof(le), "+Inf");
        snprintf(v, sizeof(v), "%llu", (unsigned long long)cum);
        if (add_sample(b, x, "_bucket", key, le, v) < 0)
            return -1;
    }
    snprintf(v, sizeof(v), "%.17g", c->x);
    if (add_sample(b, x, "_sum", key, NULL, v) < 0)
        return -1;
    snprintf(v, sizeof(v), "%llu", (unsigned long long)c->n);
    return add_sample(b, x, "_count", key, NULL, v);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int render_metric_series(struct evbuffer *b, struct metric *x)
{
    size_t n = strmap_count(x->series), k = 0, pos = 0;
    const char **keys = malloc((n ? n : 1) * sizeof(*keys)), *key;
    void *v;
    int rc = keys != NULL ? 0 : -1;
    while (rc == 0 && strmap_next(x->series, &pos, &key, &v) == 0)
        keys[k++] = key;
    if (rc == 0)
        qsort(keys, k, sizeof(*keys), cmp_str);
    for (size_t i = 0; rc == 0 && i < k; i++)
        rc = render_cell(b, x, keys[i], strmap_get(x->series, keys[i]));
    free(keys);
    return rc;
}

/* One metric's lines; series sorted, so scrapes read alike. A metric
 * without labels shows 0 before its first observation. */
static int render_metric(struct evbuffer *b, struct metric *x)
{
    static const char *type[] = {"counter", "gauge", "histogram"};
    if (evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", x->name, x->help, x->name,
                            type[x->kind]) < 0)
        return -1;
    if (x->n_labels == 0 && strmap_count(x->series) == 0)
        return find_cell(x, NULL, true) == NULL ? -1 : render_metric_series(b, x);
    return render_metric_series(b, x);
}

char *metrics_render(struct metrics *m, size_t *len)
{
    struct evbuffer *b = evbuffer_new();
    char *text = NULL;
    int rc = b != NULL ? 0 : -1;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; rc == 0 && i < m->n; i++)
        rc = render_metric(b, &m->v[i]);
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
