/* test_config_keys.c - litellm_settings' defaults and caps of the key and user
 * routes (libtollgate/config_keys.c): every field of DIR/keys.yaml read with
 * the route's type, YAML null meaning "none", os.environ/ in a cap,
 * max_internal_user_budget over default_max_internal_user_budget; and the
 * duration lengths the caps compare (months on the calendar). The refused
 * cases are DIR/bad-keys-*.yaml, run by test_config.
 *
 * Usage: test_config_keys DIR
 */
#include <jansson.h>
#include <stdlib.h>
#include <time.h>

#include "check.h"
#include "config.h"

static json_t *parsed(const char *text)
{
    json_error_t e;
    json_t *j = text != NULL ? json_loads(text, 0, &e) : NULL;
    CHECK(j != NULL, "JSON text %s", text != NULL ? text : "(null)");
    return j;
}

static void check_key_defaults(const struct key_settings *k)
{
    json_t *d = parsed(k->key_defaults);
    if (d == NULL)
        return;
    CHECK(json_object_size(d) == 6, "six defaults set, duration null left out (%zu)",
          json_object_size(d));
    CHECK(json_real_value(json_object_get(d, "max_budget")) == 1.5, "max_budget");
    CHECK(json_object_get(d, "duration") == NULL, "duration: blank is no default");
    CHECK_STR(json_string_value(json_object_get(d, "team_id")), "core-infra");
    CHECK_STR(json_string_value(json_object_get(d, "budget_duration")), "7d");
    CHECK(json_integer_value(json_object_get(d, "tpm_limit")) == 500, "tpm_limit an integer");
    json_t *want = json_pack("{s:s, s:i, s:b, s:{s:[i, s]}}", "setting", "default", "n", 3,
                             "ok", 1, "nested", "x", 1, "two");
    CHECK(json_equal(json_object_get(d, "metadata"), want), "metadata as JSON, typed as "
          "PyYAML reads it: %s", k->key_defaults);
    json_t *models = json_object_get(d, "models");
    CHECK(json_array_size(models) == 1 &&
          strcmp(json_string_value(json_array_get(models, 0)), "azure-gpt-3.5") == 0, "models");
    json_decref(want);
    json_decref(d);
}

static void check_caps(const struct key_caps *c)
{
    money_t cap;
    CHECK(money_parse("99.5", &cap) == 0, "parse");
    CHECK(c->has_max_budget && c->max_budget == cap, "max_budget from os.environ/");
    CHECK_STR(c->budget_duration, "10d");
    CHECK_STR(c->duration, "30d");
    CHECK(c->has_parallel && c->parallel == 1000, "max_parallel_requests");
    CHECK(c->has_tpm && c->tpm == 1000 && c->has_rpm && c->rpm == 100, "tpm and rpm");
}

static void check_user_defaults(const struct key_settings *k)
{
    money_t want;
    json_t *u = parsed(k->user_defaults);
    if (u != NULL) {
        CHECK(json_object_size(u) == 3, "role, models, teams; available_teams has nothing to "
              "act on (%s)", k->user_defaults);
        CHECK_STR(json_string_value(json_object_get(u, "user_role")), "internal_user_viewer");
        CHECK_STR(json_string_value(json_array_get(json_object_get(u, "teams"), 0)),
                  "core-infra");
    }
    json_decref(u);
    CHECK(money_parse("10.25", &want) == 0, "parse");
    CHECK(k->has_user_budget && k->user_budget == want,
          "max_internal_user_budget wins over default_max_internal_user_budget");
    CHECK_STR(k->user_budget_duration, "1mo");
}

/* Lengths of durations from a given now: months to the same day (or the
 * month's last) of the month n later, as LiteLLM's duration_in_seconds. */
static void check_durations(void)
{
    struct tm jan31 = {.tm_year = 126, .tm_mon = 0, .tm_mday = 31, .tm_hour = 12};
    struct tm dec15 = {.tm_year = 126, .tm_mon = 11, .tm_mday = 15};
    long long a = (long long)timegm(&jan31), b = (long long)timegm(&dec15);
    CHECK(config_duration_s("30d", a) == 30 * 86400LL, "30d");
    CHECK(config_duration_s("2w", a) == 14 * 86400LL, "2w");
    CHECK(config_duration_s("90m", a) == 5400, "90m");
    CHECK(config_duration_s("1mo", a) == 28 * 86400LL, "Jan 31 + 1mo = Feb 28 (%lld)",
          config_duration_s("1mo", a));
    CHECK(config_duration_s("1mo", b) == 31 * 86400LL, "Dec 15 + 1mo = Jan 15");
    CHECK(config_duration_s("13mo", b) == (365 + 31) * 86400LL, "a year and a month");
    CHECK(config_duration_s("1y", a) == -1 && config_duration_s("-1", a) == -1, "not durations");
}

int main(int argc, char **argv)
{
    char path[4096], err[1024];
    if (argc != 2) {
        fprintf(stderr, "usage: test_config_keys DIR\n");
        return 2;
    }
    setenv("TG_TEST_KEY_CAP", "99.5", 1);
    setenv("GROQ_API_KEY", "gsk-from-env", 1); /* good-seed.yaml's */
    snprintf(path, sizeof(path), "%s/keys.yaml", argv[1]);
    struct config *cfg = config_load(path, err, sizeof(err));
    CHECK(cfg != NULL, "%s should load: %s", path, err);
    if (cfg != NULL) {
        check_key_defaults(&cfg->keys);
        check_caps(&cfg->keys.caps);
        check_user_defaults(&cfg->keys);
        config_free(cfg);
    }
    snprintf(path, sizeof(path), "%s/good-seed.yaml", argv[1]);
    cfg = config_load(path, err, sizeof(err));
    CHECK(cfg != NULL && cfg->keys.key_defaults == NULL && cfg->keys.user_defaults == NULL &&
          !cfg->keys.caps.has_max_budget && cfg->keys.caps.duration == NULL &&
          !cfg->keys.has_user_budget, "no defaults or caps unless configured: %s", err);
    config_free(cfg);
    check_durations();
    return check_summary("test_config_keys");
}
