/* test_config.c - config loading: the seed config and every bad case.
 *
 * Usage: test_config DIR. DIR/good-*.yaml must load; each DIR/bad-*.yaml
 * starts with "# expect: TEXT" and must fail with "FILE" + TEXT in the error.
 */
#include <dirent.h>
#include <stdlib.h>

#include "check.h"
#include "config.h"

static void check_seed(const char *path)
{
    char err[1024];
    struct config *cfg = config_load(path, err, sizeof(err));
    CHECK(cfg != NULL, "%s should load: %s", path, err);
    if (cfg == NULL)
        return;
    const struct deployment *d = &cfg->deployments[0];
    CHECK(cfg->n_deployments == 1, "one deployment");
    CHECK_STR(d->model_name, "llama3");
    CHECK_STR(d->provider, "groq");
    CHECK_STR(d->upstream_model, "llama-3.1-8b-instant");
    CHECK_STR(d->api_base, "http://127.0.0.1:18080/v1");
    CHECK_STR(d->api_key, "gsk-from-env");
    CHECK_STR(cfg->master_key, "sk-1234");
    CHECK_STR(cfg->db.host, "127.0.0.1");
    CHECK_STR(cfg->db.user, "tollgate");
    CHECK_STR(cfg->db.password, "secret");
    CHECK_STR(cfg->db.database, "tollgate");
    CHECK(cfg->db.port == 3306, "db port %u", cfg->db.port);
    CHECK(cfg->proxyd.listen.port == 4000 && cfg->reportd.listen.port == 4001, "listen ports");
    CHECK_STR(cfg->proxyd.spool_dir, "var/spool");
    CHECK(cfg->accountd.n_accountd == 1, "one accountd");
    CHECK(cfg->accountd.n_metrics == 0, "no metrics endpoint unless configured");
    CHECK_STR(cfg->timezone, "UTC");
    CHECK(cfg->ssl_verify, "upstream certificates checked unless ssl_verify is false");
    CHECK_STR(cfg->accountd.events[0], "tcp://127.0.0.1:5555");
    CHECK_STR(cfg->accountd.updates[0], "tcp://127.0.0.1:5556");
    CHECK(cfg->proxyd.max_body_bytes == 10 * 1024 * 1024, "default max body");
    CHECK(cfg->accountd.batch_max_events > 0 && cfg->reportd.workers > 0, "defaults");
    config_free(cfg);
}

/* Lists of accountd endpoints: one pair per instance, in order. */
static void check_multi(const char *dir)
{
    char path[4096], err[1024];
    snprintf(path, sizeof(path), "%s/multi-accountd.yaml", dir);
    struct config *cfg = config_load(path, err, sizeof(err));
    CHECK(cfg != NULL, "%s should load: %s", path, err);
    if (cfg == NULL)
        return;
    CHECK(cfg->accountd.n_accountd == 2, "two accountd (%zu)", cfg->accountd.n_accountd);
    CHECK_STR(cfg->accountd.events[1], "tcp://10.0.0.2:5555");
    CHECK_STR(cfg->accountd.updates[0], "tcp://10.0.0.1:5556");
    CHECK(cfg->accountd.n_metrics == 2 && cfg->accountd.metrics[1].port == 9091, "metrics");
    CHECK_STR(cfg->accountd.metrics[1].host, "10.0.0.2");
    config_free(cfg);
}

/* The "# expect: " text on the first line of a bad case. */
static int read_expect(const char *path, char *out, size_t len)
{
    FILE *f = fopen(path, "r");
    char line[512];
    int rc = -1;
    if (f == NULL)
        return -1;
    if (fgets(line, sizeof(line), f) != NULL && strncmp(line, "# expect: ", 10) == 0) {
        line[strcspn(line, "\n")] = '\0';
        snprintf(out, len, "%s", line + 10);
        rc = 0;
    }
    fclose(f);
    return rc;
}

static void check_bad(const char *path)
{
    char expect[512], want[4096 + 512], err[1024] = "";
    CHECK(read_expect(path, expect, sizeof(expect)) == 0, "%s has no '# expect:' line", path);
    struct config *cfg = config_load(path, err, sizeof(err));
    CHECK(cfg == NULL, "%s should be refused", path);
    config_free(cfg);
    snprintf(want, sizeof(want), "%s%s", path, expect);
    CHECK(strncmp(err, want, strlen(want)) == 0, "error was\n    %s\nwant it to start with\n    %s",
          err, want);
}

int main(int argc, char **argv)
{
    char path[4096], err[1024];
    if (argc != 2) {
        fprintf(stderr, "usage: test_config DIR\n");
        return 2;
    }
    setenv("GROQ_API_KEY", "gsk-from-env", 1);
    unsetenv("TG_TEST_SURELY_UNSET");
    DIR *dir = opendir(argv[1]);
    CHECK(dir != NULL, "open %s", argv[1]);
    struct dirent *e;
    int bad = 0, good = 0;
    while (dir != NULL && (e = readdir(dir)) != NULL) {
        snprintf(path, sizeof(path), "%s/%s", argv[1], e->d_name);
        if (strncmp(e->d_name, "good-", 5) == 0 && ++good)
            check_seed(path);
        else if (strncmp(e->d_name, "bad-", 4) == 0 && ++bad)
            check_bad(path);
    }
    if (dir != NULL)
        closedir(dir);
    CHECK(good == 1 && bad >= 8, "found %d good and %d bad cases", good, bad);
    check_multi(argv[1]);

    struct config *cfg = config_load("/nonexistent/tollgate.yaml", err, sizeof(err));
    CHECK(cfg == NULL, "missing file refused");
    CHECK(strstr(err, "/nonexistent/tollgate.yaml: cannot open") != NULL, "error: %s", err);
    return check_summary("test_config");
}
