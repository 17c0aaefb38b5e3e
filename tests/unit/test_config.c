/* test_config.c - config loading: the seed config and every bad case, and the
 * provider table (every LiteLLM provider prefix, with its default api_base).
 *
 * Usage: test_config DIR. DIR/good-*.yaml must load; each DIR/bad-*.yaml
 * starts with "# expect: TEXT" and must fail with "FILE" + TEXT in the error.
 * DIR/providers.yaml must load with the URLs and protocols check_providers lists.
 */
#include <dirent.h>
#include <jansson.h>
#include <stdlib.h>

#include "check.h"
#include "config.h"
#include "embedded.h"
#include "providers.h"

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
    CHECK(!cfg->drop_params && !cfg->responses_id_security_off, "drop_params and "
          "disable_responses_id_security default to false");
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
    /* CURVE: one accountd secret for both, two clients, a server key each */
    CHECK(!cfg->curve.off && cfg->curve.n_server_secret_files == 1, "curve on, one secret file");
    CHECK_STR(cfg->curve.server_secret_files[0], "/etc/tollgate/curve/accountd.key");
    CHECK(cfg->curve.n_client_public_keys == 2, "two clients (%zu)", cfg->curve.n_client_public_keys);
    CHECK_STR(cfg->curve.client_public_keys[1], "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID");
    CHECK_STR(cfg->curve.client_secret_file, "/etc/tollgate/curve/proxyd.key");
    CHECK(cfg->curve.n_server_public_keys == 2, "a server key each");
    CHECK_STR(cfg->curve.server_public_keys[1], "e7K:xZ1{ly8vNZ)pJPa<FhaX!Hd1yEPpv1.&8f3!");
    config_free(cfg);
}

/* One deployment of providers.yaml: what the prefix made of it. */
static void check_deployment(const struct deployment *d, const char *provider, const char *model,
                             const char *api_base, enum upstream_kind kind)
{
    CHECK_STR(d->provider, provider);
    CHECK_STR(d->upstream_model, model);
    CHECK_STR(d->api_base, api_base);
    CHECK(d->kind == kind, "%s: kind %d, want %d", d->model, (int)d->kind, (int)kind);
}

/* Prefixes as LiteLLM users write them: OpenAI-compatible ones get LiteLLM's
 * default api_base when none is given; a given one wins. */
static void check_providers(const char *dir)
{
    char path[4096], err[1024];
    snprintf(path, sizeof(path), "%s/providers.yaml", dir);
    struct config *cfg = config_load(path, err, sizeof(err));
    CHECK(cfg != NULL, "%s should load: %s", path, err);
    if (cfg == NULL)
        return;
    const struct deployment *d = cfg->deployments;
    CHECK(cfg->n_deployments == 13, "thirteen deployments (%zu)", cfg->n_deployments);
    CHECK(cfg->drop_params, "litellm_settings.drop_params");
    CHECK(cfg->responses_id_security_off, "general_settings.disable_responses_id_security");
    if (cfg->n_deployments == 13) {
        check_deployment(&d[0], "openai", "gpt-4o", "https://api.openai.com/v1", UPSTREAM_OPENAI);
        check_deployment(&d[1], "gemini", "gemini-2.0-flash",
                         "https://generativelanguage.googleapis.com/v1beta/openai", UPSTREAM_OPENAI);
        CHECK_STR(d[1].api_key, "gsk-from-env");
        check_deployment(&d[2], "xai", "grok-3", "https://api.x.ai/v1", UPSTREAM_OPENAI);
        check_deployment(&d[3], "openrouter", "anthropic/claude-3.5-sonnet",
                         "https://openrouter.ai/api/v1", UPSTREAM_OPENAI);
        check_deployment(&d[4], "groq", "llama-3.1-8b-instant", "http://127.0.0.1:18080/v1",
                         UPSTREAM_OPENAI);
        check_deployment(&d[5], "text-completion-openai", "gpt-3.5-turbo-instruct",
                         "https://api.openai.com/v1", UPSTREAM_OPENAI);
        check_deployment(&d[6], "hosted_vllm", "meta-llama/Llama-3.1-8B-Instruct",
                         "http://10.0.0.5:8000/v1", UPSTREAM_OPENAI);
        check_deployment(&d[7], "azure_text", "my-instruct", "https://example.openai.azure.com",
                         UPSTREAM_AZURE);
        check_deployment(&d[8], "deepseek", "deepseek-chat", "https://api.deepseek.com/beta",
                         UPSTREAM_OPENAI);
        check_deployment(&d[9], "perplexity", "sonar", "https://api.perplexity.ai", UPSTREAM_OPENAI);
        /* Anthropic: its host (the API's paths start with /v1), anthropic-version's default */
        check_deployment(&d[10], "anthropic", "claude-sonnet-4-20250514",
                         "https://api.anthropic.com", UPSTREAM_ANTHROPIC);
        CHECK_STR(d[10].api_version, "2023-06-01");
        CHECK(d[10].drop_params == -1, "drop_params unset: the global's");
        check_deployment(&d[11], "anthropic", "claude-3-5-haiku-20241022",
                         "http://10.0.0.7:8080", UPSTREAM_ANTHROPIC);
        CHECK_STR(d[11].api_version, "2024-01-01");
        CHECK(d[11].drop_params == 1, "drop_params: true");
        money_t in, out;
        CHECK(money_parse("0.0000021", &in) == 0 && money_parse("0.0000042", &out) == 0, "parse");
        CHECK(d[12].price.has_input && d[12].price.input_per_token == in,
              "model_info.input_cost_per_token is the deployment's price");
        CHECK(d[12].price.has_output && d[12].price.output_per_token == out,
              "model_info.output_cost_per_token is the deployment's price");
    }
    config_free(cfg);
}

/* environment_variables: what os.environ/NAME (and SSL_CERT_FILE) in the
 * same file see first, as LiteLLM sets them before reading the rest; the
 * process's environment is left as it was. */
static void check_env_vars(const char *dir)
{
    char path[4096], err[1024];
    snprintf(path, sizeof(path), "%s/env-vars.yaml", dir);
    struct config *cfg = config_load(path, err, sizeof(err));
    CHECK(cfg != NULL, "%s should load: %s", path, err);
    if (cfg == NULL)
        return;
    CHECK(cfg->n_deployments == 2, "two deployments");
    if (cfg->n_deployments == 2) {
        CHECK_STR(cfg->deployments[0].api_key, "key-from-config");
        CHECK_STR(cfg->deployments[1].api_key, "set-in-the-file"); /* wins over the process's */
    }
    CHECK_STR(getenv("GROQ_API_KEY"), "gsk-from-env");
    CHECK(getenv("TG_TEST_FROM_CONFIG") == NULL, "not exported to the process");
    config_free(cfg);
}

/* The table: sorted (provider_find searches it), each entry whole, and every
 * value of LiteLLM's LlmProviders enum (litellm/types/utils.py) in it, plus
 * the price map's older providers. */
static void check_table(void)
{
    static const char *const litellm[] = {
        "openai", "openai_like", "jina_ai", "xai", "custom_openai", "text-completion-openai",
        "cohere", "cohere_chat", "clarifai", "anthropic", "anthropic_text", "bytez", "replicate",
        "runwayml", "huggingface", "together_ai", "openrouter", "datarobot", "vertex_ai",
        "vertex_ai_beta", "gemini", "ai21", "baseten", "azure", "azure_text", "azure_ai",
        "sagemaker", "sagemaker_chat", "bedrock", "vllm", "nlp_cloud", "petals", "oobabooga",
        "ollama", "ollama_chat", "deepinfra", "perplexity", "mistral", "milvus", "groq",
        "nvidia_nim", "cerebras", "ai21_chat", "volcengine", "codestral",
        "text-completion-codestral", "dashscope", "moonshot", "v0", "morph", "lambda_ai",
        "deepseek", "sambanova", "maritalk", "voyage", "cloudflare", "xinference",
        "fireworks_ai", "friendliai", "featherless_ai", "watsonx", "watsonx_text", "triton",
        "predibase", "databricks", "empower", "github", "compactifai", "docker_model_runner",
        "custom", "litellm_proxy", "hosted_vllm", "llamafile", "lm_studio", "galadriel",
        "nebius", "infinity", "deepgram", "elevenlabs", "novita", "aiohttp_openai", "langfuse",
        "humanloop", "topaz", "assemblyai", "github_copilot", "snowflake", "gradient_ai",
        "meta_llama", "nscale", "pg_vector", "hyperbolic", "recraft", "fal_ai", "heroku",
        "aiml", "cometapi", "oci", "auto_router", "vercel_ai_gateway", "dotprompt", "wandb",
        "ovhcloud", "lemonade", "chatgpt", "zai", "aws_polly", "black_forest_labs",
        "sagemaker_nova", "gigachat", "publicai", "helicone", "amazon_nova", "aleph_alpha",
        "anyscale", "palm", NULL};
    size_t n;
    const struct provider *t = provider_table(&n);
    for (size_t i = 0; i < n; i++) {
        CHECK(i == 0 || strcmp(t[i - 1].prefix, t[i].prefix) < 0, "%s out of order", t[i].prefix);
        CHECK(provider_find(t[i].prefix) == &t[i], "find %s", t[i].prefix);
        CHECK(t[i].protocol == PROVIDER_NATIVE ? t[i].note != NULL && t[i].api_base == NULL
                                               : (t[i].api_base == NULL) == (t[i].note != NULL),
              "%s: a default URL or a note saying what to give", t[i].prefix);
        CHECK(t[i].api_base == NULL || (strncmp(t[i].api_base, "https://", 8) == 0 &&
                                        t[i].api_base[strlen(t[i].api_base) - 1] != '/'),
              "%s: default %s", t[i].prefix, t[i].api_base);
    }
    for (size_t i = 0; litellm[i] != NULL; i++)
        CHECK(provider_find(litellm[i]) != NULL, "LiteLLM's %s/ is not in the table", litellm[i]);
    CHECK(provider_find("nosuchprovider") == NULL && provider_find("") == NULL, "unknown");
}

/* The prefix a price-map litellm_provider stands for ("vertex_ai-language-models"
 * is vertex_ai/, "bedrock_converse" is bedrock/), or NULL. */
static const struct provider *price_provider(const char *name)
{
    char head[64];
    if (strcmp(name, "bedrock_converse") == 0)
        return provider_find("bedrock");
    const struct provider *p = provider_find(name);
    if (p != NULL || strchr(name, '-') == NULL)
        return p;
    snprintf(head, sizeof(head), "%.*s", (int)(strchr(name, '-') - name), name);
    return provider_find(head);
}

/* Every provider of the shipped price map that serves a route Tollgate relays
 * (chat, completions, embeddings, images, responses) has a table entry, so a
 * price-map refresh cannot bring a provider whose deployments fail as unknown. */
static void check_price_map(void)
{
    static const char *const routed[] = {"chat", "completion", "embedding", "image_generation",
                                         "responses", NULL};
    size_t len, checked = 0;
    const char *text = embedded_prices(&len);
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    json_t *models = json_object_get(root, "models"), *m;
    const char *name;
    CHECK(json_is_object(models), "embedded price map: %s", jerr.text);
    json_object_foreach(models, name, m) {
        const char *prov = json_string_value(json_object_get(m, "provider"));
        const char *mode = json_string_value(json_object_get(m, "mode"));
        bool relayed = mode == NULL;
        for (size_t i = 0; routed[i] != NULL && !relayed; i++)
            relayed = strcmp(mode, routed[i]) == 0;
        if (prov == NULL || prov[0] == '\0' || !relayed)
            continue;
        checked++;
        CHECK(price_provider(prov) != NULL, "%s: price-map provider %s has no prefix", name, prov);
    }
    CHECK(checked > 1000, "%zu price-map models checked", checked);
    json_decref(root);
}

/* DIR/groups.yaml: aliases (plain and hidden), tag routing, deployments' tags
 * and max_input_tokens, and the special fallbacks, router_settings' list
 * replacing litellm_settings'. */
static void check_groups(const char *dir)
{
    char path[4096], err[1024];
    snprintf(path, sizeof(path), "%s/groups.yaml", dir);
    struct config *cfg = config_load(path, err, sizeof(err));
    CHECK(cfg != NULL, "%s should load: %s", path, err);
    if (cfg == NULL)
        return;
    const struct group_config *g = &cfg->groups;
    CHECK(g->tag_filtering && !g->tag_match_any, "enable_tag_filtering, match all");
    CHECK(g->n_aliases == 3, "%zu aliases", g->n_aliases);
    if (g->n_aliases == 3) {
        CHECK_STR(g->aliases[0].alias, "gpt4");
        CHECK_STR(g->aliases[0].group, "gpt-4o");
        CHECK(!g->aliases[0].hidden && g->aliases[1].hidden && !g->aliases[2].hidden, "hidden");
        CHECK_STR(g->aliases[1].group, "big");
    }
    const struct deployment *d = cfg->deployments;
    CHECK(d[0].n_tags == 2 && d[1].n_tags == 1 && d[2].n_tags == 0, "tags");
    if (d[0].n_tags == 2)
        CHECK_STR(d[0].tags[1], "default");
    CHECK(d[0].max_input_tokens == 128000 && d[1].max_input_tokens == 0, "max_input_tokens");
    CHECK(d[0].tag_filtering == -1 && d[1].tag_filtering == 0, "model_info.enable_tag_filtering");
    CHECK(g->n_context_window == 2, "router_settings' context_window_fallbacks");
    if (g->n_context_window == 2) {
        CHECK_STR(g->context_window[0].group, "gpt4");
        CHECK_STR(g->context_window[1].to[0], "hidden-big");
    }
    CHECK(g->n_content_policy == 1 && g->n_default_fallbacks == 1, "litellm_settings' lists");
    if (g->n_default_fallbacks == 1)
        CHECK_STR(g->default_fallbacks[0], "big");
    config_free(cfg);
}

/* DIR/budgets.yaml: the proxy's, a provider's and a deployment's budgets,
 * model ids (given and derived) and global_max_parallel_requests. */
static void check_budgets(const char *dir)
{
    char path[4096], err[1024];
    snprintf(path, sizeof(path), "%s/budgets.yaml", dir);
    struct config *cfg = config_load(path, err, sizeof(err));
    CHECK(cfg != NULL, "%s should load: %s", path, err);
    if (cfg == NULL)
        return;
    const struct deployment *d = cfg->deployments;
    CHECK(cfg->n_budgets == 3, "%zu budgets", cfg->n_budgets);
    CHECK(cfg->global_max_parallel == 100, "global_max_parallel_requests");
    CHECK_STR(d[0].model_id, "gpt4o-east");
    CHECK(strlen(d[1].model_id) == 32, "a derived model id: %s", d[1].model_id);
    if (cfg->n_budgets == 3 && d[0].deployment_budget == 0 && d[1].provider_budget == 1 &&
        cfg->proxy_budget == 2) {
        const struct config_budget *b = cfg->budgets;
        CHECK_STR(b[0].key, "deployment:gpt4o-east");
        char text[MONEY_STR_MAX];
        money_format(b[0].max, text);
        CHECK_STR(text, "10.5");
        CHECK_STR(b[0].duration, "1d");
        CHECK_STR(b[1].key, "provider:groq");
        CHECK_STR(b[1].duration, "1mo");
        CHECK_STR(b[2].key, "proxy");
        money_format(b[2].max, text);
        CHECK_STR(text, "0.000000000001");
        CHECK_STR(b[2].duration, "30d");
    } else {
        CHECK(false, "budget indexes %d %d %d", d[0].deployment_budget, d[1].provider_budget,
              cfg->proxy_budget);
    }
    CHECK(d[0].provider_budget == -1 && d[1].deployment_budget == -1, "no other budgets");
    CHECK(d[0].tpm == 1000 && d[0].rpm == 0 && d[1].rpm == 60 && d[1].tpm == 0,
          "rpm/tpm at the entry's top level and in model_info");
    char eu[MONEY_STR_MAX];
    money_format(cfg->max_end_user_budget, eu);
    CHECK_STR(eu, "2.5");
    config_free(cfg);
}

/* DIR/dropin.yaml: a LiteLLM config using the honoured keys of every section
 * loads, with a few of them as read. */
static void check_dropin(const char *dir)
{
    char path[4096], err[1024];
    snprintf(path, sizeof(path), "%s/dropin.yaml", dir);
    struct config *cfg = config_load(path, err, sizeof(err));
    CHECK(cfg != NULL, "%s should load: %s", path, err);
    if (cfg == NULL)
        return;
    CHECK(cfg->n_deployments == 3 && cfg->deployments[0].kind == UPSTREAM_AZURE,
          "an azure/ and two openai/ deployments");
    CHECK(cfg->n_budgets == 3 && cfg->proxy_budget >= 0, "proxy, provider and deployment budgets");
    CHECK(cfg->global_max_parallel == 1000, "global_max_parallel_requests");
    CHECK(cfg->groups.n_aliases == 2, "model_group_alias");
    CHECK_STR(cfg->deployments[0].api_key, "azure-key");
    config_free(cfg);
}

/* router_settings' Redis: redis_url, and redis_host/port/password/db. */
static void check_redis(const char *dir)
{
    char path[4096], err[1024];
    snprintf(path, sizeof(path), "%s/redis-url.yaml", dir);
    struct config *cfg = config_load(path, err, sizeof(err));
    CHECK(cfg != NULL, "%s should load: %s", path, err);
    if (cfg != NULL) {
        const struct redis_config *r = &cfg->router.redis;
        CHECK_STR(r->host, "::1");
        CHECK_STR(r->user, "ops");
        CHECK_STR(r->password, "p@ss");
        CHECK(r->port == 6380 && r->db == 3, "url port %d db %d", r->port, r->db);
        config_free(cfg);
    }
    snprintf(path, sizeof(path), "%s/redis-host.yaml", dir);
    cfg = config_load(path, err, sizeof(err));
    CHECK(cfg != NULL, "%s should load: %s", path, err);
    if (cfg != NULL) {
        const struct redis_config *r = &cfg->router.redis;
        CHECK_STR(r->host, "redis.internal");
        CHECK_STR(r->user, "");
        CHECK_STR(r->password, "s3cret");
        CHECK(r->port == 6381 && r->db == 2, "port %d db %d", r->port, r->db);
        config_free(cfg);
    }
    snprintf(path, sizeof(path), "%s/good-seed.yaml", dir);
    cfg = config_load(path, err, sizeof(err));
    CHECK(cfg != NULL && cfg->router.redis.host[0] == '\0', "no Redis unless configured");
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
    check_providers(argv[1]);
    check_env_vars(argv[1]);
    check_groups(argv[1]);
    check_budgets(argv[1]);
    check_dropin(argv[1]);
    check_redis(argv[1]);
    check_table();
    check_price_map();

    struct config *cfg = config_load("/nonexistent/tollgate.yaml", err, sizeof(err));
    CHECK(cfg == NULL, "missing file refused");
    CHECK(strstr(err, "/nonexistent/tollgate.yaml: cannot open") != NULL, "error: %s", err);
    return check_summary("test_config");
}
