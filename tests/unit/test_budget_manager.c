/* test_budget_manager.c - the BudgetManager library (tollgate/budget_manager.h)
 * on real files in a temp directory: every operation with costs checked
 * against prices read from the price map and multiplied here, in a decimal
 * of this file's own (not libtollgate's money.c), calendar periods
 * (month ends, leap years, ISO weeks, year wraps, zones checked against the C
 * library's own tz code), errors, crash safety (savers SIGKILLed mid-save),
 * two processes updating one project, and the hosted client against
 * mock_budget_server.py in LiteLLM and Tollgate modes.
 *
 * Usage: test_budget_manager PRICES.json TOKENIZER_VECTORS.jsonl TOKENIZER_DIR MOCK_SERVER.py
 */
#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bm_internal.h"
#include "check.h"
#include "tokenizer.h"

#define RESP(model, p, c)                                                                  \
    "{\"id\": \"chatcmpl-1\", \"object\": \"chat.completion\", \"model\": \"" model "\", " \
    "\"choices\": [{\"index\": 0, \"message\": {\"role\": \"assistant\", \"content\": "    \
    "\"hi\"}}], \"usage\": {\"prompt_tokens\": " #p ", \"completion_tokens\": " #c        \
    ", \"total_tokens\": 0}}"

static const char *tokenizer_dir;
static json_t *price_map; /* libtollgate/data/prices.json, read here independently */
static char dir[64];
static double fake_now;

static char *read_text(const char *name);

static double fake_clock(void)
{
    return fake_now;
}

static double utc(const char *s)
{
    struct tm tm = {0};
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return end != NULL && *end == '\0' ? (double)timegm(&tm) : -1;
}

/* Expected costs are exact counts of 1e-12 USD (picodollars), worked out
 * here from the map's decimal text: the prices these tests use have at most
 * 8 decimals (gpt-4o 0.0000025 / 0.00001 per token, gpt-4o-mini 0.00000015 /
 * 0.0000006, ...), so price x tokens is exact in int64 up to $9 million.
 * E.g. gpt-4o, 1000 in and 500 out: 2,500,000 x 1000 + 10,000,000 x 500 pUSD
 * = 7,500,000,000 pUSD = $0.0075. */
typedef int64_t pusd_t;
#define PUSD_DECIMALS 12

/* A plain decimal ("0.0000025") as pUSD; -1 for anything else or more decimals. */
static pusd_t pusd_parse(const char *s)
{
    pusd_t whole = 0, frac = 0;
    int decimals = 0;
    for (; *s >= '0' && *s <= '9'; s++)
        whole = whole * 10 + (*s - '0');
    if (*s == '.')
        for (s++; *s >= '0' && *s <= '9' && decimals < PUSD_DECIMALS; s++, decimals++)
            frac = frac * 10 + (*s - '0');
    if (*s != '\0')
        return -1;
    for (; decimals < PUSD_DECIMALS; decimals++)
        frac *= 10;
    return whole * 1000000000000 + frac;
}

/* The map's per-token price of model (a field name such as input_cost_per_token). */
static pusd_t unit_price(const char *model, const char *field)
{
    const json_t *v = json_object_get(json_object_get(json_object_get(price_map, "models"),
                                                      model), field);
    pusd_t p = json_is_string(v) ? pusd_parse(json_string_value(v)) : -1;
    CHECK(p >= 0, "price of %s %s: not a plain decimal of at most %d decimals", model, field,
          PUSD_DECIMALS);
    return p;
}

static pusd_t expect_cost(const char *model, int64_t in, int64_t out)
{
    return unit_price(model, "input_cost_per_token") * in +
           unit_price(model, "output_cost_per_token") * out;
}

/* p as exact decimal text, trailing zeros trimmed ("0.0075"). */
static const char *pusd_text(pusd_t p, char buf[32])
{
    int n = snprintf(buf, 32, "%lld.%012lld", (long long)(p / 1000000000000),
                     (long long)(p % 1000000000000));
    while (buf[n - 1] == '0')
        buf[--n] = '\0';
    if (buf[n - 1] == '.')
        buf[--n] = '\0';
    return buf;
}

/* The library answers amounts as doubles: the nearest double to the exact
 * cost (as Python would print and read it back). */
static void check_amount(double got, pusd_t want, const char *what)
{
    char w[32];
    pusd_text(want, w);
    CHECK(got == strtod(w, NULL), "%s: got %.17g, want %s", what, got, w);
}

static struct tg_bm *open_local(const char *name, const char *tz)
{
    char path[256], err[512];
    struct tg_bm *m = NULL;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    struct tg_bm_options o = {.path = path, .timezone = tz, .tokenizer_dir = tokenizer_dir};
    int rc = tg_bm_open("proj", &o, &m, err, sizeof(err));
    CHECK(rc == TG_BM_OK && m != NULL, "open %s: %d %s", name, rc, err);
    if (m != NULL)
        m->now = fake_clock;
    return m;
}

struct list {
    char names[8][64];
    double costs[8];
    int n;
};

static void collect_model(const char *model, double cost, void *arg)
{
    struct list *l = arg;
    if (l->n < 8) {
        snprintf(l->names[l->n], 64, "%s", model);
        l->costs[l->n++] = cost;
    }
}

static void collect_user(const char *user, void *arg)
{
    collect_model(user, 0, arg);
}

static double current(struct tg_bm *m, const char *user)
{
    double c = -1;
    int rc = tg_bm_get_current_cost(m, user, &c);
    CHECK(rc == TG_BM_OK, "get_current_cost %s: %s", user, tg_bm_error(m));
    return c;
}

/* The file's layout is LiteLLM's user_cost.json, with floats. */
static void check_layout(const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    json_t *doc = json_load_file(path, 0, NULL);
    json_t *e = json_object_get(doc, "alice");
    CHECK(json_is_real(json_object_get(e, "total_budget")) &&
          json_real_value(json_object_get(e, "total_budget")) == 20.0, "total_budget float");
    CHECK_STR(json_string_value(json_object_get(e, "duration")), "monthly");
    CHECK(json_is_real(json_object_get(e, "created_at")) &&
          json_is_real(json_object_get(e, "last_updated_at")) &&
          json_is_real(json_object_get(e, "current_cost")) &&
          json_is_object(json_object_get(e, "model_cost")), "entry fields");
    CHECK(json_is_null(json_object_get(json_object_get(doc, "bob"), "duration")),
          "no duration is null");
    json_decref(doc);
}

static void operations(void)
{
    struct tg_bm *m = open_local("ops.json", NULL);
    struct list l = {0};
    double v = 0;
    if (m == NULL)
        return;
    fake_now = utc("2024-05-10T12:00:00Z");
    CHECK(!tg_bm_is_valid_user(m, "alice") && tg_bm_error(m)[0] == '\0', "no alice yet");
    CHECK(tg_bm_create_budget(m, 10, "alice", TG_BM_MONTHLY, 0) == TG_BM_OK, "create");
    CHECK(tg_bm_create_budget(m, 5.5, "bob", TG_BM_NONE, 1700000000) == TG_BM_OK, "create bob");
    CHECK(tg_bm_is_valid_user(m, "alice"), "alice valid");
    CHECK(tg_bm_get_total_budget(m, "alice", &v) == TG_BM_OK && v == 10, "total %g", v);
    CHECK(current(m, "alice") == 0, "new user costs 0");
    CHECK(tg_bm_get_users(m, collect_user, &l) == TG_BM_OK && l.n == 2 &&
          strcmp(l.names[0], "alice") == 0 && strcmp(l.names[1], "bob") == 0, "users");

    CHECK(tg_bm_update_cost_response(m, "alice", RESP("gpt-4o", 1000, 500)) == TG_BM_OK,
          "update 4o: %s", tg_bm_error(m));
    check_amount(current(m, "alice"), expect_cost("gpt-4o", 1000, 500), "one gpt-4o call");
    CHECK(tg_bm_update_cost_response(m, "alice", RESP("gpt-4o-mini", 10000, 2000)) ==
          TG_BM_OK, "update mini: %s", tg_bm_error(m));
    pusd_t both = expect_cost("gpt-4o", 1000, 500) + expect_cost("gpt-4o-mini", 10000, 2000);
    check_amount(current(m, "alice"), both, "two calls summed exactly");
    l.n = 0;
    CHECK(tg_bm_get_model_cost(m, "alice", collect_model, &l) == TG_BM_OK && l.n == 2, "models");
    check_amount(l.costs[0], expect_cost("gpt-4o", 1000, 500), l.names[0]);
    check_amount(l.costs[1], expect_cost("gpt-4o-mini", 10000, 2000), l.names[1]);

    /* Replacing a budget keeps the cost; the file is LiteLLM's layout. */
    CHECK(tg_bm_create_budget(m, 20, "alice", TG_BM_MONTHLY, 0) == TG_BM_OK, "replace");
    check_amount(current(m, "alice"), both, "cost kept on replace");
    check_layout("ops.json");
    char *text = read_text("ops.json"); /* floats in their shortest form, as Python writes */
    CHECK(text != NULL && strstr(text, "\"total_budget\": 20.0,") != NULL &&
          strstr(text, "\"current_cost\": 0.0102,") != NULL &&
          strstr(text, "\"total_budget\": 5.5,") != NULL, "file text: %s", text);
    free(text);
    CHECK(tg_bm_save_data(m) == TG_BM_OK, "save_data");
    struct tg_bm *m2 = open_local("ops.json", NULL); /* a second manager sees it all */
    if (m2 != NULL) {
        check_amount(current(m2, "alice"), both, "reopened");
        CHECK(tg_bm_get_total_budget(m2, "bob", &v) == TG_BM_OK && v == 5.5, "bob %g", v);
        tg_bm_close(m2);
    }
    CHECK(tg_bm_reset_cost(m, "alice") == TG_BM_OK && current(m, "alice") == 0, "reset_cost");
    l.n = 0;
    CHECK(tg_bm_get_model_cost(m, "alice", collect_model, &l) == TG_BM_OK && l.n == 0,
          "reset empties model_cost");

    /* Text: the input as one user message (3 + "user" 1 + 2 + 3 priming = 9
     * tokens), the output as its content tokens only (4), not LiteLLM's ~7 more. */
    CHECK(tg_bm_update_cost_text(m, "alice", "gpt-4o", "hello world", "Hello, world!") ==
          TG_BM_OK, "update text: %s", tg_bm_error(m));
    check_amount(current(m, "alice"), expect_cost("gpt-4o", 9, 4), "text cost");
    CHECK(tg_bm_reset_cost(m, "alice") == TG_BM_OK, "reset");
    const char bad_utf8[] = {'a', (char)0xff, (char)0xfe, 'b', 0};
    CHECK(tg_bm_update_cost_text(m, "alice", "gpt-4o", bad_utf8, bad_utf8) == TG_BM_OK,
          "invalid UTF-8 text is counted: %s", tg_bm_error(m));
    CHECK(current(m, "alice") > 0, "invalid UTF-8 costs something");
    tg_bm_close(m);
}

/* projected_cost = current cost + (3 + 1 + content + 3) prompt tokens, for
 * every vector of the tokenizer's golden file. */
static void projected(const char *vectors)
{
    struct tg_bm *m = open_local("proj.json", NULL);
    FILE *f = fopen(vectors, "r");
    char line[65536];
    int n = 0;
    CHECK(f != NULL, "open %s", vectors);
    if (m == NULL || f == NULL) {
        if (f != NULL)
            fclose(f);
        tg_bm_close(m);
        return;
    }
    fake_now = utc("2024-05-10T12:00:00Z");
    tg_bm_create_budget(m, 1, "u", TG_BM_DAILY, 0);
    tg_bm_update_cost_response(m, "u", RESP("gpt-4o", 1000, 500));
    while (fgets(line, sizeof(line), f) != NULL) {
        json_t *v = json_loads(line, 0, NULL);
        json_t *msgs = json_pack("[{s:s,s:O}]", "role", "user", "content",
                                 json_object_get(v, "text"));
        char *text = json_dumps(msgs, 0);
        static const struct { const char *model, *enc; bool est; } cases[] = {
            {"gpt-4o", "o200k_base", false}, {"gpt-3.5-turbo", "cl100k_base", false},
            {"claude-3-5-sonnet-20241022", "cl100k_base", true}};
        for (size_t i = 0; text != NULL && i < 3; i++) {
            double got = 0;
            bool est = !cases[i].est;
            int64_t tokens = 3 + 1 + (int64_t)json_array_size(json_object_get(v, cases[i].enc)) + 3;
            pusd_t want = expect_cost("gpt-4o", 1000, 500) + expect_cost(cases[i].model, tokens, 0);
            int rc = tg_bm_projected_cost(m, cases[i].model, text, "u", &got, &est);
            CHECK(rc == TG_BM_OK && est == cases[i].est, "vector %d %s: %s", n, cases[i].model,
                  tg_bm_error(m));
            check_amount(got, want, cases[i].model);
        }
        free(text);
        json_decref(msgs);
        json_decref(v);
        n++;
    }
    fclose(f);
    CHECK(n >= 100, "%d vectors", n);
    double got = 0; /* a name costs one more token, and its own */
    CHECK(tg_bm_projected_cost(m, "gpt-4o", "[{\"role\": \"user\", \"name\": \"bob\", "
          "\"content\": \"hello world\"}]", "u", &got, NULL) == TG_BM_OK, "with name");
    check_amount(got, expect_cost("gpt-4o", 1000, 500) +
                          expect_cost("gpt-4o", 3 + 1 + 1 + 1 + 2 + 3, 0), "name overhead");
    tg_bm_close(m);
}

/* Errors are returned with a message, never printed: stdout and stderr
 * are captured around the calls. */
static void errors(void)
{
    char path[256], err[512], capture[128];
    struct tg_bm *m = open_local("err.json", NULL), *none = NULL;
    double v;
    if (m == NULL)
        return;
    snprintf(capture, sizeof(capture), "%s/captured", dir);
    fflush(stdout);
    fflush(stderr);
    int cap = open(capture, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int out = dup(1), errfd = dup(2);
    dup2(cap, 1);
    dup2(cap, 2);
    fake_now = utc("2024-05-10T12:00:00Z");
    int rc[32], k = 0;
    tg_bm_create_budget(m, 1, "u", TG_BM_DAILY, 0);
    rc[k++] = tg_bm_create_budget(m, -1, "u", TG_BM_DAILY, 0);
    rc[k++] = tg_bm_create_budget(m, NAN, "u", TG_BM_DAILY, 0);
    rc[k++] = tg_bm_create_budget(m, 1, "u", (enum tg_bm_duration)9, 0);
    rc[k++] = tg_bm_create_budget(m, 1, NULL, TG_BM_DAILY, 0);
    rc[k++] = tg_bm_create_budget(m, 1, "", TG_BM_DAILY, 0);
    rc[k++] = tg_bm_get_total_budget(m, "u", NULL);
    rc[k++] = tg_bm_update_cost_response(m, "u", "{not json");
    rc[k++] = tg_bm_update_cost_response(m, "u", "{\"model\": \"gpt-4o\"}");
    rc[k++] = tg_bm_projected_cost(m, "gpt-4o", "{\"role\": \"user\"}", "u", &v, NULL);
    rc[k++] = tg_bm_update_cost_text(m, "u", NULL, "a", "b");
    int n_inval = k;
    rc[k++] = tg_bm_get_total_budget(m, "nobody", &v);
    rc[k++] = tg_bm_get_current_cost(m, "nobody", &v);
    rc[k++] = tg_bm_update_cost_response(m, "nobody", RESP("gpt-4o", 1, 1));
    rc[k++] = tg_bm_reset_cost(m, "nobody");
    rc[k++] = tg_bm_reset_on_duration(m, "nobody", NULL);
    rc[k++] = tg_bm_projected_cost(m, "gpt-4o", "[]", "nobody", &v, NULL);
    int n_nouser = k;
    rc[k++] = tg_bm_update_cost_response(m, "u", RESP("no-such-model-x", 1, 1));
    rc[k++] = tg_bm_update_cost_text(m, "u", "no-such-model-x", "a", "b");
    int n_model = k;
    struct tg_bm_options bad_tz = {.path = "x.json", .timezone = "Mars/Olympus"};
    struct tg_bm_options hosted = {.client = TG_BM_HOSTED};
    struct tg_bm_options down = {.client = TG_BM_HOSTED, .api_base = "http://127.0.0.1:1"};
    rc[k++] = tg_bm_open("p", &bad_tz, &none, err, sizeof(err));
    rc[k++] = tg_bm_open("p", &hosted, &none, err, sizeof(err));
    rc[k++] = tg_bm_open("", NULL, &none, err, sizeof(err));
    rc[k++] = tg_bm_open("p", &down, &none, err, sizeof(err));
    CHECK(strstr(err, "127.0.0.1:1") != NULL, "server down names the URL: %s", err);
    /* A path that is a directory cannot be read. */
    snprintf(path, sizeof(path), "%s/adir", dir);
    mkdir(path, 0755);
    struct tg_bm_options dopt = {.path = path};
    rc[k++] = tg_bm_open("p", &dopt, &none, err, sizeof(err));
    fflush(stdout);
    fflush(stderr);
    dup2(out, 1);
    dup2(errfd, 2);
    close(out);
    close(errfd);
    close(cap);
    for (int i = 0; i < n_inval; i++)
        CHECK(rc[i] == TG_BM_EINVAL, "call %d: %d, want EINVAL", i, rc[i]);
    for (int i = n_inval; i < n_nouser; i++)
        CHECK(rc[i] == TG_BM_ENOUSER, "call %d: %d, want ENOUSER", i, rc[i]);
    for (int i = n_nouser; i < n_model; i++)
        CHECK(rc[i] == TG_BM_EMODEL, "call %d: %d, want EMODEL", i, rc[i]);
    CHECK(rc[n_model] == TG_BM_EINVAL && rc[n_model + 1] == TG_BM_EINVAL &&
          rc[n_model + 2] == TG_BM_EINVAL, "bad opens: %d %d %d", rc[n_model],
          rc[n_model + 1], rc[n_model + 2]);
    CHECK(rc[n_model + 3] == TG_BM_EHTTP, "server down: %d", rc[n_model + 3]);
    CHECK(rc[n_model + 4] == TG_BM_EIO && strstr(err, "not a regular file") != NULL,
          "directory: %d %s", rc[n_model + 4], err);
    CHECK(none == NULL, "failed opens give no manager");
    struct stat st;
    CHECK(stat(capture, &st) == 0 && st.st_size == 0, "the library printed %ld bytes",
          (long)st.st_size);
    CHECK(tg_bm_error(m)[0] != '\0', "last error kept");
    tg_bm_close(m);
}

static void write_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static char *read_text(const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    char *buf = calloc(1, 65536);
    if (f != NULL && buf != NULL) {
        size_t n = fread(buf, 1, 65535, f);
        buf[n] = '\0';
    }
    if (f != NULL)
        fclose(f);
    return buf;
}

/* Damaged files are ECORRUPT, named, and left untouched. */
static void corrupt_files(void)
{
    static const char *const bad[] = {
        "{\"u\": {\"total_budget\": 1.0", "[1, 2]", "{\"u\": 3}",
        "{\"u\": {\"current_cost\": \"12\"}}", "{\"u\": {\"duration\": \"fortnightly\"}}",
        "{\"u\": {\"model_cost\": {\"gpt-4o\": null}}}", "{\"u\": {}, \"u\": {}}"};
    char path[256], err[512];
    snprintf(path, sizeof(path), "%s/bad.json", dir);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct tg_bm *m = NULL;
        struct tg_bm_options o = {.path = path};
        write_file("bad.json", bad[i]);
        int rc = tg_bm_open("p", &o, &m, err, sizeof(err));
        CHECK(rc == TG_BM_ECORRUPT && strstr(err, "bad.json") != NULL, "case %zu: %d %s", i,
              rc, err);
    }
    /* Damaged after open: the change fails and the file is not overwritten. */
    write_file("bad.json", "{}");
    struct tg_bm *m = open_local("bad.json", NULL);
    if (m == NULL)
        return;
    write_file("bad.json", "{\"u\": {\"total_budget\": 1.0, ");
    CHECK(tg_bm_create_budget(m, 1, "v", TG_BM_NONE, 0) == TG_BM_ECORRUPT, "create on damage");
    CHECK(strstr(tg_bm_error(m), "left as it is") != NULL, "message: %s", tg_bm_error(m));
    char *text = read_text("bad.json");
    CHECK(text != NULL && strcmp(text, "{\"u\": {\"total_budget\": 1.0, ") == 0, "untouched");
    free(text);
    CHECK(!tg_bm_is_valid_user(m, "u") && strstr(tg_bm_error(m), "bad.json") != NULL,
          "is_valid_user false with the reason");
    tg_bm_close(m);
    /* LiteLLM's Python writes durations as days and leaves fields out. */
    write_file("litellm.json", "{\"u\": {\"total_budget\": 10, \"duration\": 7, \"created_at\": "
               "1700000000.5, \"last_updated_at\": 1700000000.5}, \"w\": {\"total_budget\": 3}}");
    m = open_local("litellm.json", NULL);
    bool did = false;
    fake_now = 1700000000.5 + 14 * 86400;
    CHECK(m != NULL && current(m, "u") == 0 && tg_bm_reset_on_duration(m, "u", &did) ==
          TG_BM_OK && did, "LiteLLM days read as weekly: %s", m ? tg_bm_error(m) : "");
    CHECK(m != NULL && tg_bm_update_cost_response(m, "w", RESP("gpt-4o", 10, 10)) == TG_BM_OK,
          "update a sparse entry");
    tg_bm_close(m);
    write_file("empty.json", "");
    m = open_local("empty.json", NULL);
    CHECK(m != NULL && !tg_bm_is_valid_user(m, "u"), "an empty file has no users");
    tg_bm_close(m);
}

#include "test_budget_manager_periods.h"
#include "test_budget_manager_procs.h"
#include "test_budget_manager_hosted.h"
#include "test_budget_manager_corpus.h"

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    char sub[512];
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
        if (rmdir(sub) < 0)
            unlink(sub);
    }
    if (d != NULL)
        closedir(d);
    rmdir(path);
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s PRICES.json VECTORS.jsonl TOKENIZER_DIR MOCK_SERVER.py "
                "COST_CASES.jsonl\n", argv[0]);
        return 2;
    }
    tokenizer_dir = argv[3];
    price_map = json_load_file(argv[1], 0, NULL);
    snprintf(dir, sizeof(dir), "/tmp/test_bm.XXXXXX");
    if (price_map == NULL || mkdtemp(dir) == NULL) {
        fprintf(stderr, "cannot read %s or make a temp dir\n", argv[1]);
        return 2;
    }
    operations();
    projected(argv[2]);
    errors();
    corrupt_files();
    periods();
    resets();
    crash_safety();
    concurrent_updates();
    hosted_litellm(argv[4]);
    hosted_tollgate(argv[4]);
    corpus_costs(argv[5]);
    remove_tree(dir);
    json_decref(price_map);
    tokenizer_cleanup();
    return check_summary("budget_manager");
}
