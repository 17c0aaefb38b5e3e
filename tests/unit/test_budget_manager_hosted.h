/* test_budget_manager_hosted.h - part of test_budget_manager.c (included
 * there, so the CHECK counters are shared): the hosted client against
 * mock_budget_server.py, as a LiteLLM server (whole dict, save_data) and
 * as Tollgate's reportd (atomic per-user requests, conditional resets). */
#include <curl/curl.h>

static const char *const mock_headers[] = {"Authorization: Bearer sk-mock", NULL};

/* Starts the mock in `mode`; its port in *port. */
static pid_t start_mock(const char *script, const char *mode, int *port)
{
    int fds[2];
    *port = 0;
    if (pipe(fds) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        execlp("python3", "python3", script, mode, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    if (f == NULL || fscanf(f, "%d", port) != 1)
        *port = 0;
    if (f != NULL)
        fclose(f);
    CHECK(*port > 0, "mock server (%s) did not start", mode);
    return pid;
}

static void stop_mock(pid_t pid)
{
    int status;
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, &status, 0);
    }
}

static size_t discard(char *d, size_t s, size_t n, void *arg)
{
    (void)d;
    (void)arg;
    return s * n;
}

/* Sets the mock server's clock. */
static void mock_now(int port, const char *when)
{
    char url[128], body[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/_mock/now", port);
    snprintf(body, sizeof(body), "{\"now\": %.0f}", utc(when));
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, mock_headers[0]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    CHECK(curl_easy_perform(c) == CURLE_OK, "set mock clock");
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

static struct tg_bm *open_hosted(int port, const char *const *headers, int *rc, char *err)
{
    char base[64];
    struct tg_bm *m = NULL;
    snprintf(base, sizeof(base), "http://127.0.0.1:%d/", port);
    struct tg_bm_options o = {.client = TG_BM_HOSTED, .api_base = base, .headers = headers,
                              .tokenizer_dir = tokenizer_dir};
    *rc = tg_bm_open("hproj", &o, &m, err, 512);
    if (m != NULL)
        m->now = fake_clock;
    return m;
}

static void hosted_litellm(const char *script)
{
    int port, rc;
    char err[512];
    pid_t pid = start_mock(script, "litellm", &port);
    if (port == 0)
        return stop_mock(pid);
    struct tg_bm *m = open_hosted(port, NULL, &rc, err);
    CHECK(m == NULL && rc == TG_BM_EHTTP && strstr(err, "HTTP 401") != NULL &&
          strstr(err, "Authentication Error") != NULL, "no key: %d %s", rc, err);
    m = open_hosted(port, mock_headers, &rc, err);
    CHECK(m != NULL && !m->tollgate, "LiteLLM server: %d %s", rc, err);
    if (m == NULL)
        return stop_mock(pid);
    fake_now = utc("2024-01-10T00:00:00Z");
    pusd_t sum = expect_cost("gpt-4o", 1000, 500) + expect_cost("gpt-4o", 9, 4);
    CHECK(tg_bm_create_budget(m, 10, "alice", TG_BM_MONTHLY, 0) == TG_BM_OK &&
          tg_bm_create_budget(m, 2, "bob", TG_BM_NONE, 0) == TG_BM_OK &&
          tg_bm_update_cost_response(m, "alice", RESP("gpt-4o", 1000, 500)) == TG_BM_OK &&
          tg_bm_update_cost_text(m, "alice", "gpt-4o", "hello world", "Hello, world!") ==
          TG_BM_OK, "changes: %s", tg_bm_error(m));
    check_amount(current(m, "alice"), sum, "in memory");
    struct tg_bm *before = open_hosted(port, mock_headers, &rc, err);
    CHECK(before != NULL && !tg_bm_is_valid_user(before, "alice"), "unsaved changes stay local");
    tg_bm_close(before);
    CHECK(tg_bm_save_data(m) == TG_BM_OK, "save_data: %s", tg_bm_error(m));
    struct tg_bm *m2 = open_hosted(port, mock_headers, &rc, err);
    double v = 0;
    CHECK(m2 != NULL, "reopen: %s", err);
    if (m2 != NULL) {
        check_amount(current(m2, "alice"), sum, "the server's dict");
        CHECK(tg_bm_get_total_budget(m2, "bob", &v) == TG_BM_OK && v == 2, "bob %g", v);
        struct list l = {0};
        CHECK(tg_bm_get_model_cost(m2, "alice", collect_model, &l) == TG_BM_OK && l.n == 1,
              "model cost");
        check_amount(l.costs[0], sum, "gpt-4o");
        bool did = false;
        fake_now = utc("2024-02-01T00:00:00Z");
        CHECK(tg_bm_reset_on_duration(m2, "alice", &did) == TG_BM_OK && did &&
              current(m2, "alice") == 0, "reset in memory");
        CHECK(tg_bm_save_data(m2) == TG_BM_OK, "save again");
    }
    tg_bm_close(m2);
    m2 = open_hosted(port, mock_headers, &rc, err);
    CHECK(m2 != NULL && current(m2, "alice") == 0, "reset saved");
    tg_bm_close(m2);
    tg_bm_close(m);
    stop_mock(pid);
}

static void hosted_tollgate(const char *script)
{
    int port, rc;
    char err[512];
    bool did = true;
    pid_t pid = start_mock(script, "tollgate", &port);
    if (port == 0)
        return stop_mock(pid);
    mock_now(port, "2024-01-15T00:00:00Z");
    struct tg_bm *a = open_hosted(port, mock_headers, &rc, err);
    struct tg_bm *b = open_hosted(port, mock_headers, &rc, err);
    CHECK(a != NULL && b != NULL && a->tollgate && b->tollgate, "Tollgate detected: %s", err);
    if (a == NULL || b == NULL) {
        tg_bm_close(a);
        tg_bm_close(b);
        return stop_mock(pid);
    }
    fake_now = utc("2024-01-15T00:00:00Z");
    CHECK(tg_bm_create_budget(a, 10, "alice", TG_BM_MONTHLY,
                              (time_t)utc("2024-01-10T00:00:00Z")) == TG_BM_OK,
          "create: %s", tg_bm_error(a));
    /* b loaded before alice existed: its update still lands, atomically. */
    CHECK(tg_bm_update_cost_response(a, "alice", RESP("gpt-4o", 1000, 500)) == TG_BM_OK &&
          tg_bm_update_cost_response(b, "alice", RESP("gpt-4o-mini", 10000, 2000)) == TG_BM_OK,
          "updates: %s %s", tg_bm_error(a), tg_bm_error(b));
    pusd_t sum = expect_cost("gpt-4o", 1000, 500) + expect_cost("gpt-4o-mini", 10000, 2000);
    check_amount(current(b, "alice"), sum, "b's answer holds both updates");
    CHECK(tg_bm_save_data(a) == TG_BM_OK, "save_data is a no-op");
    CHECK(tg_bm_update_cost_response(a, "nobody", RESP("gpt-4o", 1, 1)) == TG_BM_ENOUSER,
          "unknown user: %s", tg_bm_error(a));
    /* Feb 2: b resets and spends; a, still holding January, must not reset again. */
    mock_now(port, "2024-02-02T00:00:00Z");
    fake_now = utc("2024-02-02T00:00:00Z");
    CHECK(tg_bm_reset_on_duration(b, "alice", &did) == TG_BM_OK && did, "b resets");
    CHECK(tg_bm_update_cost_response(b, "alice", RESP("gpt-4o", 1000, 500)) == TG_BM_OK, "b");
    did = true;
    CHECK(tg_bm_reset_on_duration(a, "alice", &did) == TG_BM_OK && !did,
          "a's stale reset refused: %s", tg_bm_error(a));
    check_amount(current(a, "alice"), expect_cost("gpt-4o", 1000, 500), "b's spend kept");
    /* March: update_budget_all_users loads the users again and resets. */
    mock_now(port, "2024-03-05T00:00:00Z");
    fake_now = utc("2024-03-05T00:00:00Z");
    CHECK(tg_bm_update_budget_all_users(a) == TG_BM_OK, "all: %s", tg_bm_error(a));
    struct tg_bm *c = open_hosted(port, mock_headers, &rc, err);
    CHECK(c != NULL && current(c, "alice") == 0, "March reset stored");
    tg_bm_close(c);
    tg_bm_close(a);
    tg_bm_close(b);
    stop_mock(pid);
}
