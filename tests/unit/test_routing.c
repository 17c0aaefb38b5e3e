/* test_routing.c - the routing strategies: their config and their choices.
 *
 * Usage: test_routing DIR. Each DIR/routing-*.yaml must load, its first line
 * "# expect: strategy=NAME ttl_ms=N buffer=X list=N default_parallel=N"
 * saying what router_settings became (the bad cases are test_config's
 * bad-strategy-*.yaml). Then proxyd/router_pick.c chooses among the
 * deployments of some of those files, fed with made-up measures: least-busy,
 * usage-based, latency-based, cost-based and the caps LiteLLM derives.
 */
#include <dirent.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "price.h"
#include "router_pick.h"

#define DRAWS 200
#define NONE 8 /* hits[NONE]: no deployment chosen */

static const char *const NAMES[] = {"simple-shuffle", "least-busy", "usage-based-routing",
                                    "latency-based-routing", "cost-based-routing"};

static void check_expect(const char *path)
{
    char err[1024], line[512], name[64];
    int ttl, list, parallel;
    double buffer;
    FILE *f = fopen(path, "r");
    CHECK(f != NULL && fgets(line, sizeof(line), f) != NULL, "%s: no first line", path);
    if (f != NULL)
        fclose(f);
    CHECK(sscanf(line, "# expect: strategy=%63s ttl_ms=%d buffer=%lf list=%d default_parallel=%d",
                 name, &ttl, &buffer, &list, &parallel) == 5, "%s: bad expect line", path);
    struct config *cfg = config_load(path, err, sizeof(err));
    CHECK(cfg != NULL, "%s should load: %s", path, err);
    if (cfg == NULL)
        return;
    const struct router_config *rc = &cfg->router;
    if (strcmp(name, "usage-based-routing-v2") == 0)
        name[strlen("usage-based-routing")] = '\0'; /* one strategy, two names */
    CHECK_STR(NAMES[rc->strategy], name);
    CHECK(rc->strategy_ttl_ms == ttl, "%s: ttl_ms %d, want %d", path, rc->strategy_ttl_ms, ttl);
    CHECK(rc->latency_buffer == buffer, "%s: buffer %g", path, rc->latency_buffer);
    CHECK(rc->latency_list_size == list, "%s: list %d", path, rc->latency_list_size);
    CHECK(rc->default_max_parallel == parallel, "%s: default %d", path, rc->default_max_parallel);
    config_free(cfg);
}

/* A config of DIR and its strategy state, with every deployment a candidate. */
struct bench {
    struct config *cfg;
    struct pick *p;
    const struct deployment *all[8];
    size_t n;
    unsigned seed;
};

static int bench_open(struct bench *b, const char *dir, const char *file)
{
    char path[4096], err[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    *b = (struct bench){.seed = 7};
    b->cfg = config_load(path, err, sizeof(err));
    CHECK(b->cfg != NULL, "%s: %s", path, err);
    if (b->cfg == NULL || (b->p = pick_new(b->cfg)) == NULL)
        return -1;
    for (b->n = 0; b->n < b->cfg->n_deployments && b->n < 8; b->n++)
        b->all[b->n] = &b->cfg->deployments[b->n];
    return 0;
}

static void bench_close(struct bench *b)
{
    pick_free(b->p);
    config_free(b->cfg);
}

/* How often each deployment (by its index in the config) is chosen in DRAWS draws. */
static void count(struct bench *b, const struct route_request *rq, int hits[NONE + 1])
{
    memset(hits, 0, (NONE + 1) * sizeof(int));
    for (int i = 0; i < DRAWS; i++) {
        const struct deployment *d = pick_choose(b->p, b->all, b->n, rq, &b->seed);
        hits[d != NULL ? (size_t)(d - b->cfg->deployments) : NONE]++;
    }
}

/* Counts by the minute: a test of them must not straddle one. */
static void wait_for_minute_start(void)
{
    while (time(NULL) % 60 >= 57)
        sleep(1);
}

static void sample(struct bench *b, size_t i, double seconds, int64_t ttft_us, int64_t tokens)
{
    struct route_sample s = {(int64_t)(seconds * 1e6), ttft_us, tokens, tokens};
    pick_attempt_sample(b->p, b->all[i], &s);
}

/* rpm 2 -> 2 in flight, tpm 100 -> 1, max_parallel_requests 3 over rpm 1, none. */
static void check_caps(const char *dir)
{
    struct bench b;
    int hits[NONE + 1];
    if (bench_open(&b, dir, "routing-simple-shuffle.yaml") < 0)
        return bench_close(&b);
    int starts[] = {2, 1, 3, 50};
    for (size_t i = 0; i < 4; i++) {
        for (int k = 0; k < starts[i]; k++)
            pick_attempt_start(b.p, b.all[i]);
    }
    count(&b, NULL, hits);
    CHECK(hits[0] == 0 && hits[1] == 0 && hits[2] == 0 && hits[3] == DRAWS,
          "at their caps the first three are left out: %d %d %d %d", hits[0], hits[1],
          hits[2], hits[3]);
    pick_attempt_end(b.p, b.all[1], false);
    count(&b, NULL, hits);
    CHECK(hits[1] > 0 && hits[0] == 0, "a slot freed: %d %d", hits[0], hits[1]);
    b.n = 3; /* without the uncapped one: every candidate full */
    pick_attempt_start(b.p, b.all[1]);
    count(&b, NULL, hits);
    CHECK(hits[NONE] == DRAWS, "all at their caps: none, %d", hits[NONE]);
    bench_close(&b);
}

static void check_least_busy(const char *dir)
{
    struct bench b;
    int hits[NONE + 1];
    if (bench_open(&b, dir, "routing-least-busy.yaml") < 0)
        return bench_close(&b);
    count(&b, NULL, hits);
    CHECK(hits[0] > 0 && hits[1] > 0 && hits[2] > 0, "idle: any (%d %d %d)", hits[0], hits[1],
          hits[2]);
    pick_attempt_start(b.p, b.all[0]);
    count(&b, NULL, hits);
    CHECK(hits[0] == 0 && hits[1] > 0 && hits[2] > 0, "one busy: the others (%d %d %d)",
          hits[0], hits[1], hits[2]);
    pick_attempt_start(b.p, b.all[1]);
    count(&b, NULL, hits);
    CHECK(hits[2] == DRAWS, "two busy: the third (%d)", hits[2]);
    pick_attempt_start(b.p, b.all[2]);
    pick_attempt_start(b.p, b.all[2]);
    count(&b, NULL, hits);
    CHECK(hits[0] + hits[1] == DRAWS && hits[0] > 0 && hits[1] > 0, "1, 1, 2: the ones (%d %d)",
          hits[0], hits[1]);
    pick_attempt_start(b.p, b.all[0]);
    pick_attempt_start(b.p, b.all[1]);
    count(&b, NULL, hits);
    CHECK(hits[NONE] == DRAWS, "default_max_parallel_requests 2 each: none (%d)", hits[NONE]);
    bench_close(&b);
}

/* tpm 100 (cap 100), rpm 2, unlimited; ttl 30 s. */
static void check_usage(const char *dir)
{
    struct bench b;
    int hits[NONE + 1];
    struct route_request rq = {.prompt_tokens = 20};
    wait_for_minute_start();
    if (bench_open(&b, dir, "routing-usage-v2.yaml") < 0)
        return bench_close(&b);
    CHECK(pick_counts_prompt(b.p), "usage-based weighs the prompt");
    sample(&b, 0, 1, -1, 70);
    sample(&b, 2, 1, -1, 40);
    count(&b, &rq, hits);
    CHECK(hits[1] == DRAWS, "fewest tokens this minute (%d %d %d)", hits[0], hits[1], hits[2]);
    pick_attempt_start(b.p, b.all[1]);
    pick_attempt_end(b.p, b.all[1], false);
    sample(&b, 1, 1, -1, 50);
    count(&b, &rq, hits);
    CHECK(hits[2] == DRAWS, "then the next fewest (%d %d %d)", hits[0], hits[1], hits[2]);
    sample(&b, 2, 1, -1, 100);
    count(&b, &rq, hits);
    CHECK(hits[1] == DRAWS, "70 + 20 prompt tokens fit tpm 100, but 1 is fewer (%d %d %d)",
          hits[0], hits[1], hits[2]);
    pick_attempt_start(b.p, b.all[1]);
    pick_attempt_end(b.p, b.all[1], false);
    count(&b, &rq, hits);
    CHECK(hits[0] == DRAWS, "rpm 2 spent: 0 within its tpm (%d %d %d)", hits[0], hits[1],
          hits[2]);
    rq.prompt_tokens = 31;
    count(&b, &rq, hits);
    CHECK(hits[2] == DRAWS, "70 + 31 > tpm 100: the unlimited one (%d %d %d)", hits[0],
          hits[1], hits[2]);
    bench_close(&b);
}

/* buffer 0.5, list 5. */
static void check_latency(const char *dir)
{
    struct bench b;
    int hits[NONE + 1];
    struct route_request rq = {0}, stream = {.stream = true};
    if (bench_open(&b, dir, "routing-latency.yaml") < 0)
        return bench_close(&b);
    sample(&b, 0, 0.1, -1, 1);
    count(&b, &rq, hits);
    CHECK(hits[0] == 0 && hits[1] > 0 && hits[2] > 0, "unmeasured ones first (%d %d %d)",
          hits[0], hits[1], hits[2]);
    sample(&b, 1, 0.5, -1, 1);
    sample(&b, 2, 0.14, -1, 1);
    count(&b, &rq, hits);
    CHECK(hits[1] == 0 && hits[0] > 0 && hits[2] > 0, "within 1.5 x the lowest (%d %d %d)",
          hits[0], hits[1], hits[2]);
    sample(&b, 2, 0.3, -1, 1); /* average 0.22 > 0.15 */
    count(&b, &rq, hits);
    CHECK(hits[0] == DRAWS, "the average counts (%d %d %d)", hits[0], hits[1], hits[2]);
    /* 0.35 s a token: the last 5 average 0.35 > 1.5 x 0.22; with the first
     * 0.1 s still counted it would be 0.31 */
    for (int i = 0; i < 5; i++)
        sample(&b, 0, 3.5, -1, 10);
    count(&b, &rq, hits);
    CHECK(hits[0] == 0 && hits[2] == DRAWS, "per token, last 5 only (%d %d %d)", hits[0],
          hits[1], hits[2]);
    sample(&b, 1, 3.0, 10000, 100); /* 0.03 s a token, ttft 0.0001 */
    sample(&b, 0, 3.0, 1000, 10);   /* ttft 0.0001 a token */
    count(&b, &stream, hits);
    CHECK(hits[2] == 0 && hits[0] > 0 && hits[1] > 0, "streams weigh ttft (%d %d %d)",
          hits[0], hits[1], hits[2]);
    bench_close(&b);
    if (bench_open(&b, dir, "routing-latency.yaml") < 0)
        return bench_close(&b);
    for (size_t i = 0; i < 3; i++)
        sample(&b, i, 0.1, -1, 1);
    pick_attempt_start(b.p, b.all[2]);
    pick_attempt_end(b.p, b.all[2], true);
    count(&b, &rq, hits);
    CHECK(hits[2] == 0 && hits[0] > 0 && hits[1] > 0, "a timeout counts 1000 s (%d %d %d)",
          hits[0], hits[1], hits[2]);
    bench_close(&b);
}

/* a: cheap input, b: cheap output, c: dear, d: unpriced. */
static void check_cost(const char *dir)
{
    struct bench b;
    int hits[NONE + 1];
    char err[256];
    struct price_table *prices = price_table_open(NULL, err, sizeof(err));
    CHECK(prices != NULL, "built-in prices: %s", err);
    struct route_request long_prompt = {prices, 5000, 10, false}, long_answer = {prices, 10, 0,
                                                                                 false};
    if (prices == NULL || bench_open(&b, dir, "routing-cost.yaml") < 0) {
        price_table_free(prices);
        return bench_close(&b);
    }
    count(&b, &long_prompt, hits);
    CHECK(hits[0] == DRAWS, "long prompt: cheap input (%d %d %d %d)", hits[0], hits[1],
          hits[2], hits[3]);
    count(&b, &long_answer, hits);
    CHECK(hits[1] == DRAWS, "default max tokens: cheap output (%d %d %d %d)", hits[0],
          hits[1], hits[2], hits[3]);
    long_answer.max_output = 1;
    count(&b, &long_answer, hits);
    CHECK(hits[0] == DRAWS, "max tokens 1: cheap input again (%d %d %d %d)", hits[0], hits[1],
          hits[2], hits[3]);
    long_answer.max_output = 0;
    b.all[0] = b.all[3]; /* d, b, c */
    b.all[1] = &b.cfg->deployments[2];
    b.n = 2;
    count(&b, &long_answer, hits);
    CHECK(hits[2] == DRAWS, "unpriced last (%d %d)", hits[2], hits[3]);
    price_table_free(prices);
    bench_close(&b);
}

int main(int argc, char **argv)
{
    char path[4096];
    int n = 0;
    if (argc != 2) {
        fprintf(stderr, "usage: test_routing DIR\n");
        return 2;
    }
    DIR *dir = opendir(argv[1]);
    CHECK(dir != NULL, "open %s", argv[1]);
    for (struct dirent *e; dir != NULL && (e = readdir(dir)) != NULL;) {
        if (strncmp(e->d_name, "routing-", 8) != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", argv[1], e->d_name);
        check_expect(path);
        n++;
    }
    if (dir != NULL)
        closedir(dir);
    CHECK(n == 6, "found %d routing-*.yaml, want 6 (one per strategy name)", n);
    check_caps(argv[1]);
    check_least_busy(argv[1]);
    check_usage(argv[1]);
    check_latency(argv[1]);
    check_cost(argv[1]);
    return check_summary("test_routing");
}
