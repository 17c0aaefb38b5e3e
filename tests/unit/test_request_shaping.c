/* test_request_shaping.c - a deployment's request shaping: how
 * config_params.c loads it and what proxyd/shape.c makes of a body.
 *
 * Usage: test_request_shaping CONFIG CASES. CONFIG (request-shaping.yaml)
 * must load with the shaping checked below; each line of CASES is
 * {"name", "model": a model_name of CONFIG, "api": chat | completion |
 * embedding | responses | messages, "nested": bool (default true), "body",
 * "sent"}: shape_request(body) must equal sent and leave body as it was.
 */
#include <jansson.h>
#include <stdlib.h>

#include "check.h"
#include "config.h"
#include "config_params.h"
#include "shape.h"

static const struct deployment *find(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_deployments; i++)
        if (strcmp(cfg->deployments[i].model_name, name) == 0)
            return &cfg->deployments[i];
    return NULL;
}

static int api_of(const char *s)
{
    static const struct {
        const char *name;
        enum api api;
    } apis[] = {{"chat", API_CHAT}, {"completion", API_COMPLETION},
                {"embedding", API_EMBEDDING}, {"responses", API_RESPONSES},
                {"messages", API_MESSAGES}};
    for (size_t i = 0; s != NULL && i < sizeof(apis) / sizeof(apis[0]); i++)
        if (strcmp(s, apis[i].name) == 0)
            return (int)apis[i].api;
    return -1;
}

/* What the loader made of the config's keys. */
static void check_loaded(const struct config *cfg)
{
    const struct deployment *gpt = find(cfg, "gpt"), *claude = find(cfg, "claude");
    CHECK(gpt != NULL && gpt->shape != NULL && claude != NULL && claude->shape != NULL,
          "both deployments shaped");
    if (gpt == NULL || gpt->shape == NULL || claude == NULL || claude->shape == NULL)
        return;
    const struct deployment_shape *s = gpt->shape;
    json_t *want = json_pack("{s:f, s:f, s:f, s:f, s:i, s:i, s:i, s:[s,s]}", "temperature", 0.2,
                             "top_p", 0.9, "presence_penalty", -0.5, "frequency_penalty", 1.0,
                             "max_tokens", 80, "max_completion_tokens", 90, "seed", 42, "stop",
                             "\n\n", "END");
    CHECK(json_equal(s->defaults, want), "gpt's defaults");
    json_decref(want);
    CHECK(s->n_drop == 1 && strcmp(s->drop[0], "logit_bias") == 0, "one top-level drop");
    CHECK(s->n_paths == 2 && s->paths[0].n == 3 && strcmp(s->paths[0].seg[1], "[*]") == 0 &&
              s->paths[1].n == 4 && strcmp(s->paths[1].seg[2], "[0]") == 0,
          "two nested drops, split into segments");
    CHECK(s->n_headers == 3, "three headers (%zu)", s->n_headers);
    if (s->n_headers == 3) {
        CHECK_STR(s->headers[0], "X-Team: search");
        CHECK_STR(s->headers[1], "x-trace: trace-1"); /* os.environ/ resolved */
        CHECK_STR(s->headers[2], "OpenAI-Organization: org-tollgate");
    }
    CHECK(gpt->timeout_ms == 30000 && gpt->stream_timeout_ms == 5000, "timeouts");
    struct curl_slist *h = shape_headers(claude, curl_slist_append(NULL, "Expect:"));
    CHECK(h != NULL && h->next != NULL &&
              strcmp(h->next->data, "anthropic-beta: tools-2024-04-04") == 0,
          "claude's extra header appended");
    curl_slist_free_all(h);
    CHECK(find(cfg, "dropper")->shape->n_drop == 2, "dropper drops two");
}

static void run_case(const struct config *cfg, json_t *c, size_t line)
{
    const char *name = json_string_value(json_object_get(c, "name"));
    const char *model = json_string_value(json_object_get(c, "model"));
    const struct deployment *d = model != NULL ? find(cfg, model) : NULL;
    int api = api_of(json_string_value(json_object_get(c, "api")));
    json_t *body = json_object_get(c, "body"), *nested = json_object_get(c, "nested");
    CHECK(name != NULL && d != NULL && api >= 0 && json_is_object(body),
          "case on line %zu is malformed", line);
    if (name == NULL || d == NULL || api < 0 || !json_is_object(body))
        return;
    json_t *before = json_deep_copy(body);
    json_t *sent = shape_request(body, (enum api)api, d, nested == NULL || json_is_true(nested));
    char *got = sent != NULL ? json_dumps(sent, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
    CHECK(json_equal(sent, json_object_get(c, "sent")), "%s: sent %s", name, got ? got : "NULL");
    CHECK(json_equal(before, body), "%s: the client's body was changed", name);
    free(got);
    json_decref(sent);
    json_decref(before);
}

int main(int argc, char **argv)
{
    char err[1024];
    if (argc != 3) {
        fprintf(stderr, "usage: %s CONFIG CASES\n", argv[0]);
        return 2;
    }
    struct config *cfg = config_load(argv[1], err, sizeof(err));
    CHECK(cfg != NULL, "%s should load: %s", argv[1], err);
    if (cfg == NULL)
        return check_summary("test_request_shaping");
    check_loaded(cfg);
    FILE *f = fopen(argv[2], "r");
    CHECK(f != NULL, "cannot open %s", argv[2]);
    char buf[16384];
    size_t line = 0, cases = 0;
    while (f != NULL && fgets(buf, sizeof(buf), f) != NULL) {
        json_error_t jerr;
        json_t *c = json_loads(buf, 0, &jerr);
        line++;
        CHECK(c != NULL, "line %zu: %s", line, jerr.text);
        if (c != NULL) {
            run_case(cfg, c, line);
            cases++;
        }
        json_decref(c);
    }
    if (f != NULL)
        fclose(f);
    CHECK(cases >= 10, "only %zu cases", cases);
    config_free(cfg);
    return check_summary("test_request_shaping");
}
