/* test_metrics.c - the Prometheus registry: exact text for counters with
 * several labels, gauges and histograms, label escaping, the series cap,
 * and counts under concurrent updates. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "metrics.h"

static const char *render(struct metrics *m, char **text)
{
    size_t len = 0;
    free(*text);
    *text = metrics_render(m, &len);
    CHECK(*text != NULL && strlen(*text) == len, "render");
    return *text != NULL ? *text : "";
}

static void exact_text(void)
{
    struct metrics *m = metrics_new();
    static const double b[] = {0.125, 1}; /* binary fractions: an exact sum */
    int req = metrics_counter(m, "t_requests_total", "Requests.", "route,status");
    int up = metrics_gauge(m, "t_up", "Up.", NULL);
    int lat = metrics_histogram(m, "t_seconds", "Latency.", "route", b, 2);
    int none = metrics_counter(m, "t_none_total", "Never added to.", NULL);
    CHECK(req == 0 && up == 1 && lat == 2 && none == 3, "ids %d %d %d %d", req, up, lat, none);
    metrics_add(m, req, METRICS_LABELS("/v1/chat", "200"), 2);
    metrics_add(m, req, METRICS_LABELS("/v1/chat", "200"), 1);
    metrics_add(m, req, METRICS_LABELS("/a\"b\\c\nd", "500"), 1);
    metrics_set(m, up, NULL, 1.5);
    metrics_observe(m, lat, METRICS_LABELS("/x"), 0.0625);
    metrics_observe(m, lat, METRICS_LABELS("/x"), 0.125); /* le is inclusive */
    metrics_observe(m, lat, METRICS_LABELS("/x"), 3);
    char *text = NULL;
    CHECK_STR(render(m, &text),
              "# HELP t_requests_total Requests.\n# TYPE t_requests_total counter\n"
              "t_requests_total{route=\"/a\\\"b\\\\c?d\",status=\"500\"} 1\n"
              "t_requests_total{route=\"/v1/chat\",status=\"200\"} 3\n"
              "# HELP t_up Up.\n# TYPE t_up gauge\nt_up 1.5\n"
              "# HELP t_seconds Latency.\n# TYPE t_seconds histogram\n"
              "t_seconds_bucket{route=\"/x\",le=\"0.125\"} 2\n"
              "t_seconds_bucket{route=\"/x\",le=\"1\"} 2\n"
              "t_seconds_bucket{route=\"/x\",le=\"+Inf\"} 3\n"
              "t_seconds_sum{route=\"/x\"} 3.1875\n"
              "t_seconds_count{route=\"/x\"} 3\n"
              "# HELP t_none_total Never added to.\n# TYPE t_none_total counter\nt_none_total 0\n");
    CHECK(metrics_get(m, req, METRICS_LABELS("/v1/chat", "200")) == 3, "get");
    CHECK(metrics_get(m, lat, METRICS_LABELS("/x")) == 3, "histogram count");
    CHECK(metrics_get(m, req, METRICS_LABELS("/nope", "200")) == 0, "unknown series");
    /* wrong kinds and ids are ignored */
    metrics_add(m, up, NULL, 1);
    metrics_observe(m, req, METRICS_LABELS("a", "b"), 1);
    metrics_add(m, 99, NULL, 1);
    metrics_add(m, -1, NULL, 1);
    CHECK(metrics_get(m, up, NULL) == 1.5, "gauge kept");
    static const double bad[] = {1, 1};
    CHECK(metrics_histogram(m, "t_bad", "x", NULL, bad, 2) < 0, "unsorted bounds refused");
    CHECK(metrics_counter(m, "t_many_total", "x", "a,b,c,d,e") < 0, "five labels refused");
    free(text);
    metrics_free(m);
}

static void series_cap(void)
{
    struct metrics *m = metrics_new();
    int c = metrics_counter(m, "t_cap_total", "Capped.", "model");
    char v[32];
    for (int i = 0; i < METRICS_MAX_SERIES + 500; i++) {
        snprintf(v, sizeof(v), "m%d", i);
        metrics_add(m, c, METRICS_LABELS(v), 1);
    }
    CHECK(metrics_get(m, c, METRICS_LABELS("other")) == 500, "overflow counted as other: %g",
          metrics_get(m, c, METRICS_LABELS("other")));
    CHECK(metrics_get(m, c, METRICS_LABELS("m0")) == 1, "early series kept");
    metrics_free(m);
}

struct worker {
    struct metrics *m;
    int c, h;
};

static void *hammer(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 100000; i++) {
        metrics_add(w->m, w->c, METRICS_LABELS(i % 2 ? "a" : "b"), 1);
        metrics_observe(w->m, w->h, NULL, 0.001);
    }
    return NULL;
}

static void concurrent(void)
{
    struct metrics *m = metrics_new();
    struct worker w = {m, metrics_counter(m, "t_c_total", "c", "l"),
                       metrics_histogram(m, "t_h", "h", NULL, metrics_latency_buckets,
                                         metrics_latency_nbuckets)};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        CHECK(pthread_create(&t[i], NULL, hammer, &w) == 0, "thread");
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    CHECK(metrics_get(m, w.c, METRICS_LABELS("a")) == 200000, "a");
    CHECK(metrics_get(m, w.c, METRICS_LABELS("b")) == 200000, "b");
    CHECK(metrics_get(m, w.h, NULL) == 400000, "histogram count");
    metrics_free(m);
}

int main(void)
{
    exact_text();
    series_cap();
    concurrent();
    return check_summary("metrics");
}
