/* config.c - loading and validating the YAML config (see config.h).
 *
 * libyaml loads the whole document; we then walk its nodes with a few
 * typed getters that know the key path being read, so every error names
 * FILE:LINE and the key (model_list[0].litellm_params.model). String values
 * may be `os.environ/NAME`, resolved here; an unset variable is an error.
 */
#include "config.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget_period.h"
#include "config_access.h"
#include "config_params.h"
#include "config_yaml.h"
#include "keyhash.h"
#include "providers.h"

int config_parse_listen(const char *s, struct listen_addr *addr)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s || (size_t)(colon - s) >= sizeof(addr->host))
        return -1;
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno != 0 || port < 1 || port > 65535)
        return -1;
    memcpy(addr->host, s, (size_t)(colon - s));
    addr->host[colon - s] = '\0';
    addr->port = (int)port;
    return 0;
}

/* The prefix of litellm_params.model ("openai" when there is none), looked up in
 * LiteLLM's provider table (providers.c); *out is its entry. A provider whose
 * protocol Tollgate does not speak yet fails here, naming the deployment and
 * what is missing. */
static int parse_provider(struct loader *ld, yaml_node_t *n, const char *key, struct deployment *d,
                          const struct provider **out)
{
    const char *slash = strchr(d->model, '/');
    d->provider = slash != NULL ? strndup(d->model, (size_t)(slash - d->model)) : strdup("openai");
    d->upstream_model = strdup(slash != NULL ? slash + 1 : d->model);
    if (d->provider == NULL || d->upstream_model == NULL)
        return cy_fail(ld, n, key, "out of memory");
    const struct provider *p = provider_find(d->provider);
    if (p == NULL)
        return cy_fail(ld, n, key, "unknown provider prefix '%.64s/' (not one of LiteLLM's "
                       "providers; any OpenAI-compatible server is openai/<model> with its "
                       "api_base)", d->provider);
    if (p->protocol == PROVIDER_NATIVE)
        return cy_fail(ld, n, key, "deployment '%.80s' (%.80s) cannot be served: %s/ %s",
                       d->model_name, d->model, p->prefix, p->note);
    if (d->upstream_model[0] == '\0')
        return cy_fail(ld, n, key, "no model name after '%s/'", d->provider);
    d->kind = p->protocol == PROVIDER_AZURE       ? UPSTREAM_AZURE
              : p->protocol == PROVIDER_ANTHROPIC ? UPSTREAM_ANTHROPIC
                                                  : UPSTREAM_OPENAI;
    *out = p;
    return 0;
}

/* litellm_params.api_base, else the provider's default (LiteLLM's); a provider
 * without a public one (self-hosted servers, Azure) needs it given. */
static int parse_api_base(struct loader *ld, yaml_node_t *params, const char *key,
                          const struct provider *p, struct deployment *d)
{
    yaml_node_t *bn = cy_map_get(ld, params, "api_base");
    if (cy_str(ld, params, "api_base", key, &d->api_base) < 0)
        return -1;
    if (d->api_base == NULL && p->api_base == NULL)
        return cy_fail(ld, params, key, "missing: %s/ has no public default URL; %s",
                       p->prefix, p->note);
    if (d->api_base == NULL) {
        d->api_base = strdup(p->api_base);
        return d->api_base != NULL ? 0 : cy_fail(ld, params, key, "out of memory");
    }
    if (cy_url(ld, bn, key, d->api_base) < 0)
        return -1;
    size_t blen = strlen(d->api_base);
    while (blen > 0 && d->api_base[blen - 1] == '/')
        d->api_base[--blen] = '\0';
    return 0;
}

/* Custom per-token prices must be exact decimals: YAML scalars are text, so no float ever. */
static int get_price(struct loader *ld, yaml_node_t *params, const char *name,
                     const char *key, money_t *out, bool *has)
{
    yaml_node_t *n = cy_map_get(ld, params, name);
    *has = false;
    if (n == NULL)
        return 0;
    const char *v = cy_scalar(n);
    if (v == NULL || money_parse(v, out) < 0 || *out < 0)
        return cy_fail(ld, n, key, "must be a non-negative decimal number");
    *has = true;
    return 0;
}

/* A custom per-token price, in litellm_params or in model_info (LiteLLM
 * registers either as the deployment's price). Both, with different values:
 * which one LiteLLM bills is not clear, so the start is refused. */
static int custom_price(struct loader *ld, yaml_node_t *params, yaml_node_t *info, size_t i,
                        const char *name, money_t *out, bool *has)
{
    char pkey[160], ikey[160];
    money_t in_info = 0;
    bool has_info = false;
    snprintf(pkey, sizeof(pkey), "model_list[%zu].litellm_params.%s", i, name);
    snprintf(ikey, sizeof(ikey), "model_list[%zu].model_info.%s", i, name);
    if (get_price(ld, params, name, pkey, out, has) < 0 ||
        get_price(ld, info, name, ikey, &in_info, &has_info) < 0)
        return -1;
    if (*has && has_info && in_info != *out)
        return cy_fail(ld, cy_map_get(ld, info, name), ikey, "differs from litellm_params.%s; "
                       "set the price in one place", name);
    if (!*has && has_info) {
        *out = in_info;
        *has = true;
    }
    return 0;
}

/* rpm or tpm: in litellm_params, else at the entry's top level, else in
 * model_info (LiteLLM's router looks in that order). */
static int limit_of(struct loader *ld, yaml_node_t *item, const char *name, size_t i,
                    double max, double *out)
{
    static const char *const where[] = {"litellm_params", NULL, "model_info"};
    char key[128];
    for (size_t k = 0; k < 3; k++) {
        yaml_node_t *map = where[k] != NULL ? cy_map_get(ld, item, where[k]) : item;
        if (cy_map_get(ld, map, name) == NULL)
            continue;
        snprintf(key, sizeof(key), "model_list[%zu]%s%s", i, where[k] != NULL ? "." : "",
                 where[k] != NULL ? where[k] : "");
        return cy_double(ld, map, name, key, 0, max, out);
    }
    return 0;
}

/* weight (else rpm, else tpm, as LiteLLM's simple-shuffle), timeout, stream_timeout;
 * rpm, tpm and max_parallel_requests are also limits (proxyd/router_pick.c). */
static int parse_routing(struct loader *ld, yaml_node_t *item, yaml_node_t *params, size_t i,
                         struct deployment *d)
{
    char key[128];
    double weight = 0, rpm = 0, tpm = 0, timeout = 0, stream_timeout = 0;
    long parallel = 0;
    snprintf(key, sizeof(key), "model_list[%zu].litellm_params.max_parallel_requests", i);
    if (cy_int(ld, params, "max_parallel_requests", key, 1, 1000000, &parallel) < 0)
        return -1;
    d->max_parallel = (int)parallel;
    snprintf(key, sizeof(key), "model_list[%zu].litellm_params", i);
    if (cy_double(ld, params, "weight", key, 0, 1e9, &weight) < 0 ||
        limit_of(ld, item, "rpm", i, 1e12, &rpm) < 0 || limit_of(ld, item, "tpm", i, 1e15, &tpm) < 0 ||
        cy_double(ld, params, "timeout", key, 0.001, 86400, &timeout) < 0 ||
        cy_double(ld, params, "stream_timeout", key, 0.001, 86400, &stream_timeout) < 0)
        return -1;
    d->weight = weight > 0 ? weight : rpm > 0 ? rpm : tpm > 0 ? tpm : 1;
    d->rpm = rpm;
    d->tpm = tpm;
    d->timeout_ms = (int)(timeout * 1000);
    d->stream_timeout_ms = (int)(stream_timeout * 1000);
    return 0;
}

#define KEY(buf, idx, suffix) (snprintf(buf, sizeof(buf), "model_list[%zu]%s", idx, suffix), buf)

static int parse_deployment(struct loader *ld, yaml_node_t *item, size_t i, struct deployment *d)
{
    static const char *const entry_keys[] = {"model_name", "litellm_params", "model_info", "rpm",
                                             "tpm", NULL};
    static const char *const param_keys[] = {
        "model", "api_base", "api_key", "api_version", "base_model", "input_cost_per_token",
        "output_cost_per_token", "timeout", "stream_timeout", "weight", "rpm", "tpm",
        "drop_params", "max_budget", "budget_duration", "max_parallel_requests", "tags",
        "additional_drop_params", "extra_headers", "organization", "temperature", "top_p",
        "presence_penalty", "frequency_penalty", "max_tokens", "max_completion_tokens", "seed",
        "stop", "n", "reasoning_effort", "service_tier", NULL};
    char key[128], prefix[128];
    d->line = (int)item->start_mark.line + 1;
    if (item->type != YAML_MAPPING_NODE)
        return cy_fail(ld, item, KEY(key, i, ""), "must be a mapping");
    cy_check_keys(ld, item, KEY(prefix, i, "."), entry_keys);
    yaml_node_t *params = cy_map_get(ld, item, "litellm_params");
    yaml_node_t *info = cy_map_get(ld, item, "model_info");
    if (cy_str(ld, item, "model_name", KEY(key, i, ".model_name"), &d->model_name) < 0)
        return -1;
    if (d->model_name == NULL || d->model_name[0] == '\0')
        return cy_fail(ld, item, KEY(key, i, ".model_name"), "missing");
    if (params == NULL)
        return cy_fail(ld, item, KEY(key, i, ".litellm_params"), "missing");
    if (cy_want_map(ld, params, KEY(key, i, ".litellm_params")) < 0 ||
        cy_want_map(ld, info, KEY(key, i, ".model_info")) < 0)
        return -1;
    cy_check_keys(ld, params, KEY(prefix, i, ".litellm_params."), param_keys);
    cy_refuse_keys(ld, info, KEY(prefix, i, ".model_info."));
    yaml_node_t *mn = cy_map_get(ld, params, "model");
    if (cy_str(ld, params, "model", KEY(key, i, ".litellm_params.model"), &d->model) < 0)
        return -1;
    if (d->model == NULL || d->model[0] == '\0')
        return cy_fail(ld, params, key, "missing");
    const struct provider *p = NULL;
    if (parse_provider(ld, mn, key, d, &p) < 0 ||
        parse_api_base(ld, params, KEY(key, i, ".litellm_params.api_base"), p, d) < 0)
        return -1;
    if (cy_str(ld, params, "api_key", KEY(key, i, ".litellm_params.api_key"), &d->api_key) < 0 ||
        cy_str(ld, params, "api_version", KEY(key, i, ".litellm_params.api_version"), &d->api_version) < 0 ||
        cy_str(ld, params, "base_model", KEY(key, i, ".litellm_params.base_model"), &d->base_model) < 0)
        return -1;
    if (d->base_model == NULL &&
        cy_str(ld, info, "base_model", KEY(key, i, ".model_info.base_model"), &d->base_model) < 0)
        return -1;
    if (d->kind == UPSTREAM_AZURE && d->api_version == NULL)
        return cy_fail(ld, params, KEY(key, i, ".litellm_params.api_version"),
                       "missing (required for %s/)", d->provider);
    if (d->kind == UPSTREAM_ANTHROPIC && d->api_version == NULL &&
        (d->api_version = strdup(ANTHROPIC_VERSION_DEFAULT)) == NULL)
        return cy_fail(ld, params, key, "out of memory");
    bool drop = false;
    int set = cy_bool(ld, params, "drop_params", KEY(key, i, ".litellm_params.drop_params"), &drop);
    if (set < 0)
        return -1;
    d->drop_params = set ? drop : -1; /* not set: the global's */
    d->price.base_model = d->base_model;
    if (custom_price(ld, params, info, i, "input_cost_per_token", &d->price.input_per_token,
                     &d->price.has_input) < 0 ||
        custom_price(ld, params, info, i, "output_cost_per_token", &d->price.output_per_token,
                     &d->price.has_output) < 0)
        return -1;
    if (config_parse_deployment_groups(ld, params, info, i, d) < 0 ||
        config_parse_shape(ld, params, i, d) < 0)
        return -1;
    return parse_routing(ld, item, params, i, d);
}

static int parse_model_list(struct loader *ld, yaml_node_t *root, struct config *cfg)
{
    yaml_node_t *list = cy_map_get(ld, root, "model_list");
    if (list == NULL)
        return cy_fail(ld, root, "model_list", "missing");
    if (list->type != YAML_SEQUENCE_NODE)
        return cy_fail(ld, list, "model_list", "must be a list");
    size_t n = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
    if (n == 0)
        return cy_fail(ld, list, "model_list", "is empty");
    cfg->deployments = calloc(n, sizeof(*cfg->deployments));
    if (cfg->deployments == NULL)
        return cy_fail(ld, list, "model_list", "out of memory");
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = yaml_document_get_node(&ld->doc, list->data.sequence.items.start[i]);
        cfg->n_deployments = i + 1;
        if (parse_deployment(ld, item, i, &cfg->deployments[i]) < 0)
            return -1;
    }
    return 0;
}

/* mysql://user:password@host:port/database[?TLS options], parsed with
 * libcurl's URL API; key names the setting in errors. */
int config_parse_db_url(struct loader *ld, yaml_node_t *n, const char *key, const char *url,
                        struct db_config *db)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *port = NULL, *path = NULL, *query = NULL;
    int rc = -1;
    if (u == NULL)
        return cy_fail(ld, n, key, "out of memory");
    if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "mysql") != 0 && strcmp(scheme, "mariadb") != 0) ||
        curl_url_get(u, CURLUPART_HOST, &db->host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_USER, &db->user, CURLU_URLDECODE) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PATH, &path, CURLU_URLDECODE) != CURLUE_OK ||
        strlen(path) < 2 || strchr(path + 1, '/') != NULL) {
        cy_fail(ld, n, key,
             "must be mysql://USER:PASSWORD@HOST:PORT/DATABASE");
        goto out;
    }
    CURLUcode pc = curl_url_get(u, CURLUPART_PASSWORD, &db->password, CURLU_URLDECODE);
    if (pc != CURLUE_OK && pc != CURLUE_NO_PASSWORD) {
        cy_fail(ld, n, key, "bad password part");
        goto out;
    }
    db->port = 3306;
    if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK)
        db->port = (unsigned)strtoul(port, NULL, 10);
    if ((db->database = strdup(path + 1)) == NULL) {
        cy_fail(ld, n, key, "out of memory");
        goto out;
    }
    CURLUcode qc = curl_url_get(u, CURLUPART_QUERY, &query, 0);
    if (qc != CURLUE_OK && qc != CURLUE_NO_QUERY) {
        cy_fail(ld, n, key, "bad query part");
        goto out;
    }
    rc = config_parse_db_tls(ld, n, key, query, &db->tls);
out:
    curl_free(query);
    curl_free(scheme);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
    return rc;
}

/* general_settings.maximum_spend_logs_retention_period: "30d" and the like. */
static int parse_retention(struct loader *ld, yaml_node_t *gs, struct config *cfg)
{
    static const long unit_s[] = {[PERIOD_SECOND] = 1, [PERIOD_MINUTE] = 60,
                                  [PERIOD_HOUR] = 3600, [PERIOD_DAY] = 86400,
                                  [PERIOD_WEEK] = 7 * 86400, [PERIOD_MONTH] = 30 * 86400};
    const char *key = "general_settings.maximum_spend_logs_retention_period";
    char *v;
    struct period p;
    if (cy_str(ld, gs, "maximum_spend_logs_retention_period", key, &v) < 0)
        return -1;
    if (v == NULL)
        return 0; /* keep every log row */
    int bad = period_parse(v, &p) < 0 || p.n * unit_s[p.unit] < 3600;
    free(v);
    if (bad)
        return cy_fail(ld, cy_map_get(ld, gs, "maximum_spend_logs_retention_period"), key,
                       "must be a duration of at least an hour, such as 90d");
    cfg->log_retention_s = p.n * unit_s[p.unit];
    return 0;
}

/* The secret of proxyd's signed ids: a hash of the master key, else of the
 * database's credentials (what every proxyd of the config shares). */
static int id_secret(struct loader *ld, yaml_node_t *gs, struct config *cfg)
{
    char seed[2048];
    const struct db_config *db = &cfg->db;
    int n = cfg->master_token[0] != '\0'
                ? snprintf(seed, sizeof(seed), "ids\n%s", cfg->master_token)
                : snprintf(seed, sizeof(seed), "ids\n%s\n%s\n%s\n%u\n%s",
                           db->user ? db->user : "", db->password ? db->password : "",
                           db->host ? db->host : "", db->port, db->database ? db->database : "");
    if (n < 0 || keyhash_sha256_hex(seed, strlen(seed), cfg->id_secret) < 0)
        return cy_fail(ld, gs, "general_settings", "cannot derive the id secret (libcrypto)");
    return 0;
}

static int parse_general(struct loader *ld, yaml_node_t *root, struct config *cfg)
{
    static const char *const known[] = {"master_key", "database_url",
                                        "maximum_spend_logs_retention_period",
                                        "disable_responses_id_security",
                                        "global_max_parallel_requests", "allowed_routes",
                                        "admin_only_routes", "public_routes",
                                        "token_rate_limit_type", NULL};
    yaml_node_t *gs = cy_map_get(ld, root, "general_settings");
    if (gs == NULL)
        return cy_fail(ld, root, "general_settings", "missing (database_url is required)");
    if (cy_want_map(ld, gs, "general_settings") < 0)
        return -1;
    cy_check_keys(ld, gs, "general_settings.", known);
    char *url;
    if (cy_bool(ld, gs, "disable_responses_id_security",
                "general_settings.disable_responses_id_security",
                &cfg->responses_id_security_off) < 0)
        return -1;
    if (cy_str(ld, gs, "master_key", "general_settings.master_key", &cfg->master_key) < 0 ||
        cy_str(ld, gs, "database_url", "general_settings.database_url", &url) < 0)
        return -1;
    if (url == NULL)
        return cy_fail(ld, gs, "general_settings.database_url", "missing");
    if (cfg->master_key != NULL &&
        keyhash_sha256_hex(cfg->master_key, strlen(cfg->master_key), cfg->master_token) < 0) {
        free(url);
        return cy_fail(ld, gs, "general_settings.master_key", "cannot hash it (libcrypto)");
    }
    int rc = config_parse_db_url(ld, cy_map_get(ld, gs, "database_url"),
                                 "general_settings.database_url", url, &cfg->db);
    free(url);
    return rc < 0 || id_secret(ld, gs, cfg) < 0 || parse_retention(ld, gs, cfg) < 0
               ? -1
               : config_parse_access(ld, gs, &cfg->access);
}

/* environment_variables: NAME: value pairs that os.environ/NAME references
 * (and SSL_CERT_FILE) in this file see before the process's environment.
 * They are not exported to the process. */
static int read_env_vars(struct loader *ld, yaml_node_t *root)
{
    yaml_node_t *ev = cy_map_get(ld, root, "environment_variables");
    if (ev == NULL)
        return 0;
    if (cy_want_map(ld, ev, "environment_variables") < 0)
        return -1;
    for (yaml_node_pair_t *p = ev->data.mapping.pairs.start; p < ev->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(&ld->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(&ld->doc, p->value);
        if (cy_scalar(k) == NULL || cy_scalar(v) == NULL)
            return cy_fail(ld, v != NULL ? v : ev, "environment_variables",
                           "must map names to strings");
    }
    /* names that change LiteLLM's limits, access or prices: refused here (the
     * process's own environment is not the file's to refuse) */
    cy_refuse_keys(ld, ev, "environment_variables.");
    ld->env_vars = ev;
    return ld->refused ? -1 : 0;
}

struct config *config_load(const char *path, char *err, size_t errlen)
{
    static const char *const top_keys[] = {"model_list", "general_settings", "tollgate",
        "router_settings", "litellm_settings", "environment_variables", NULL};
    struct loader ld = {.path = path, .err = err, .errlen = errlen};
    struct config *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL || (cfg->path = strdup(path)) == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        free(cfg);
        return NULL;
    }
    if (cy_load_document(&ld) < 0) {
        config_free(cfg);
        return NULL;
    }
    yaml_node_t *root = yaml_document_get_root_node(&ld.doc);
    int rc;
    if (root == NULL || root->type != YAML_MAPPING_NODE) {
        rc = cy_fail(&ld, root, "(top level)", "the file must be a YAML mapping");
    } else {
        cy_check_keys(&ld, root, "", top_keys);
        rc = read_env_vars(&ld, root) < 0 || parse_model_list(&ld, root, cfg) < 0 || parse_general(&ld, root, cfg) < 0 ||
             config_parse_tollgate(&ld, root, cfg) < 0 ||
             config_parse_router(&ld, root, cfg) < 0 || config_parse_keys(&ld, root, cfg) < 0 ||
             config_parse_budgets(&ld, root, cfg) < 0 || config_parse_ratelimit(&ld, root, cfg) < 0 ||
             config_parse_groups(&ld, root, cfg) < 0 ? -1 : 0;
    }
    yaml_document_delete(&ld.doc);
    if (rc < 0 || ld.refused) {
        config_free(cfg);
        return NULL;
    }
    return cfg;
}

static void deployment_free(struct deployment *d)
{
    free(d->model_name);
    free(d->model);
    free(d->provider);
    free(d->upstream_model);
    free(d->api_base);
    free(d->api_key);
    free(d->api_version);
    free(d->base_model);
    free(d->model_id);
    config_deployment_groups_free(d);
    config_shape_free(d->shape);
}

void config_free(struct config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->n_deployments; i++)
        deployment_free(&cfg->deployments[i]);
    free(cfg->deployments);
    free(cfg->path);
    config_router_free(&cfg->router);
    route_access_free(&cfg->access);
    config_groups_free(cfg);
    config_keys_free(&cfg->keys);
    config_budgets_free(cfg);
    config_curve_free(&cfg->curve);
    free(cfg->master_key);
    free(cfg->price_file);
    free(cfg->timezone);
    free(cfg->ssl_ca_file);
    free(cfg->log_format);
    free(cfg->log_level);
    curl_free(cfg->db.host);
    curl_free(cfg->db.user);
    curl_free(cfg->db.password);
    free(cfg->db.database);
    config_db_tls_free(&cfg->db.tls);
    curl_free(cfg->reportd.read_db.host);
    curl_free(cfg->reportd.read_db.user);
    curl_free(cfg->reportd.read_db.password);
    free(cfg->reportd.read_db.database);
    config_db_tls_free(&cfg->reportd.read_db.tls);
    free(cfg->proxyd.spool_dir);
    free(cfg->proxyd.reportd_url);
    for (size_t i = 0; i < CONFIG_MAX_ACCOUNTD; i++) {
        free(cfg->accountd.events[i]);
        free(cfg->accountd.updates[i]);
    }
    free(cfg);
}

bool config_http_limits_differ(const struct config_http_limits *a,
                               const struct config_http_limits *b)
{
    return a->max_header_bytes != b->max_header_bytes || a->max_headers != b->max_headers ||
           a->max_connections != b->max_connections ||
           a->header_timeout_ms != b->header_timeout_ms || a->idle_timeout_ms != b->idle_timeout_ms ||
           a->body_timeout_ms != b->body_timeout_ms;
}

bool config_str_differs(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0);
}

bool config_db_differs(const struct db_config *a, const struct db_config *b)
{
    return config_str_differs(a->host, b->host) || config_str_differs(a->user, b->user) ||
           config_str_differs(a->password, b->password) ||
           config_str_differs(a->database, b->database) || a->port != b->port ||
           config_db_tls_differs(&a->tls, &b->tls);
}

bool config_addr_differs(const struct listen_addr *a, const struct listen_addr *b)
{
    return strcmp(a->host, b->host) != 0 || a->port != b->port;
}
