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
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* The state of one load: the document and where to put an error. */
struct loader {
    const char *path;
    yaml_document_t doc;
    char *err;
    size_t errlen;
};

static const char *const KNOWN_PROVIDERS[] = {
    "openai", "groq", "deepseek", "together_ai", "hosted_vllm",
    "fireworks_ai", "mistral", "azure", NULL,
};

static int fail(struct loader *ld, const yaml_node_t *node, const char *key,
                const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(ld->err, ld->errlen, "%s:%zu: %s: %s", ld->path,
             node != NULL ? node->start_mark.line + 1 : 1, key, msg);
    return -1;
}

static void warn_unknown(struct loader *ld, const yaml_node_t *node, const char *key)
{
    fprintf(stderr, "%s:%zu: warning: unknown key %s ignored\n", ld->path,
            node->start_mark.line + 1, key);
}

static const char *scalar(const yaml_node_t *n)
{
    return n != NULL && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* The value of key in mapping node map, or NULL. */
static yaml_node_t *map_get(struct loader *ld, yaml_node_t *map, const char *key)
{
    if (map == NULL || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        const char *k = scalar(yaml_document_get_node(&ld->doc, p->key));
        if (k != NULL && strcmp(k, key) == 0)
            return yaml_document_get_node(&ld->doc, p->value);
    }
    return NULL;
}

/* Warns about keys of map not in allowed (a NULL-terminated list). */
static void check_keys(struct loader *ld, yaml_node_t *map, const char *prefix,
                       const char *const *allowed)
{
    if (map == NULL || map->type != YAML_MAPPING_NODE)
        return;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(&ld->doc, p->key);
        const char *k = scalar(kn);
        bool ok = false;
        for (size_t i = 0; k != NULL && allowed[i] != NULL && !ok; i++)
            ok = strcmp(k, allowed[i]) == 0;
        if (!ok) {
            char full[512];
            snprintf(full, sizeof(full), "%s%s", prefix, k != NULL ? k : "(non-scalar key)");
            warn_unknown(ld, kn, full);
        }
    }
}

static int want_map(struct loader *ld, yaml_node_t *n, const char *key)
{
    if (n != NULL && n->type != YAML_MAPPING_NODE)
        return fail(ld, n, key, "must be a mapping");
    return 0;
}

/* Reads an optional string; resolves os.environ/NAME. *out stays NULL if absent. */
static int get_str(struct loader *ld, yaml_node_t *map, const char *name,
                   const char *key, char **out)
{
    yaml_node_t *n = map_get(ld, map, name);
    *out = NULL;
    if (n == NULL)
        return 0;
    const char *v = scalar(n);
    if (v == NULL)
        return fail(ld, n, key, "must be a string");
    if (strncmp(v, "os.environ/", 11) == 0) {
        const char *env = getenv(v + 11);
        if (env == NULL)
            return fail(ld, n, key, "environment variable %s is not set", v + 11);
        v = env;
    }
    if ((*out = strdup(v)) == NULL)
        return fail(ld, n, key, "out of memory");
    return 0;
}

/* Reads an optional string into *out, keeping the default (a literal) when absent. */
static int get_str_default(struct loader *ld, yaml_node_t *map, const char *name,
                           const char *key, const char *def, char **out)
{
    if (get_str(ld, map, name, key, out) < 0)
        return -1;
    if (*out == NULL && (*out = strdup(def)) == NULL)
        return fail(ld, map, key, "out of memory");
    return 0;
}

static int get_int(struct loader *ld, yaml_node_t *map, const char *name,
                   const char *key, long min, long max, long *out)
{
    yaml_node_t *n = map_get(ld, map, name);
    if (n == NULL)
        return 0;
    const char *v = scalar(n);
    char *end;
    errno = 0;
    long x = v != NULL ? strtol(v, &end, 10) : 0;
    if (v == NULL || *v == '\0' || *end != '\0' || errno != 0 || x < min || x > max)
        return fail(ld, n, key, "must be an integer from %ld to %ld", min, max);
    *out = x;
    return 0;
}

static int get_listen(struct loader *ld, yaml_node_t *map, const char *key,
                      const char *def, struct listen_addr *out)
{
    char *s;
    if (get_str_default(ld, map, "listen", key, def, &s) < 0)
        return -1;
    int rc = config_parse_listen(s, out);
    free(s);
    if (rc < 0)
        return fail(ld, map_get(ld, map, "listen"), key, "must be HOST:PORT with a port from 1 to 65535");
    return 0;
}

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

/* Checks an http(s) URL with libcurl's parser. */
static int check_url(struct loader *ld, yaml_node_t *n, const char *key, const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL;
    int rc = 0;
    if (u == NULL)
        return fail(ld, n, key, "out of memory");
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
        rc = fail(ld, n, key, "'%s' is not an http:// or https:// URL", url);
    curl_free(scheme);
    curl_url_cleanup(u);
    return rc;
}

static int parse_provider(struct loader *ld, yaml_node_t *n, const char *key, struct deployment *d)
{
    const char *slash = strchr(d->model, '/');
    d->provider = slash != NULL ? strndup(d->model, (size_t)(slash - d->model)) : strdup("openai");
    d->upstream_model = strdup(slash != NULL ? slash + 1 : d->model);
    if (d->provider == NULL || d->upstream_model == NULL)
        return fail(ld, n, key, "out of memory");
    for (size_t i = 0; KNOWN_PROVIDERS[i] != NULL; i++) {
        if (strcmp(d->provider, KNOWN_PROVIDERS[i]) == 0) {
            d->kind = strcmp(d->provider, "azure") == 0 ? UPSTREAM_AZURE : UPSTREAM_OPENAI;
            if (d->upstream_model[0] == '\0')
                return fail(ld, n, key, "no model name after '%s/'", d->provider);
            return 0;
        }
    }
    return fail(ld, n, key, "unknown provider prefix '%s/' (known: openai, groq, deepseek, "
                "together_ai, hosted_vllm, fireworks_ai, mistral, azure)", d->provider);
}

/* Custom per-token prices must be exact decimals: YAML scalars are text, so no float ever. */
static int get_price(struct loader *ld, yaml_node_t *params, const char *name,
                     const char *key, money_t *out, bool *has)
{
    yaml_node_t *n = map_get(ld, params, name);
    *has = false;
    if (n == NULL)
        return 0;
    const char *v = scalar(n);
    if (v == NULL || money_parse(v, out) < 0 || *out < 0)
        return fail(ld, n, key, "must be a non-negative decimal number");
    *has = true;
    return 0;
}

#define KEY(buf, idx, suffix) (snprintf(buf, sizeof(buf), "model_list[%zu]%s", idx, suffix), buf)

static int parse_deployment(struct loader *ld, yaml_node_t *item, size_t i, struct deployment *d)
{
    static const char *const entry_keys[] = {"model_name", "litellm_params", "model_info", NULL};
    static const char *const param_keys[] = {
        "model", "api_base", "api_key", "api_version", "base_model", "input_cost_per_token",
        "output_cost_per_token", "timeout", "stream_timeout", "weight", "rpm", "tpm", NULL};
    char key[128], prefix[128];
    d->line = (int)item->start_mark.line + 1;
    if (item->type != YAML_MAPPING_NODE)
        return fail(ld, item, KEY(key, i, ""), "must be a mapping");
    check_keys(ld, item, KEY(prefix, i, "."), entry_keys);
    yaml_node_t *params = map_get(ld, item, "litellm_params");
    yaml_node_t *info = map_get(ld, item, "model_info");
    if (get_str(ld, item, "model_name", KEY(key, i, ".model_name"), &d->model_name) < 0)
        return -1;
    if (d->model_name == NULL || d->model_name[0] == '\0')
        return fail(ld, item, KEY(key, i, ".model_name"), "missing");
    if (params == NULL)
        return fail(ld, item, KEY(key, i, ".litellm_params"), "missing");
    if (want_map(ld, params, KEY(key, i, ".litellm_params")) < 0 ||
        want_map(ld, info, KEY(key, i, ".model_info")) < 0)
        return -1;
    check_keys(ld, params, KEY(prefix, i, ".litellm_params."), param_keys);
    yaml_node_t *mn = map_get(ld, params, "model");
    if (get_str(ld, params, "model", KEY(key, i, ".litellm_params.model"), &d->model) < 0)
        return -1;
    if (d->model == NULL || d->model[0] == '\0')
        return fail(ld, params, key, "missing");
    if (parse_provider(ld, mn, key, d) < 0)
        return -1;
    yaml_node_t *bn = map_get(ld, params, "api_base");
    if (get_str(ld, params, "api_base", KEY(key, i, ".litellm_params.api_base"), &d->api_base) < 0)
        return -1;
    if (d->api_base == NULL)
        return fail(ld, params, key, "missing (Tollgate needs each deployment's URL)");
    if (check_url(ld, bn, key, d->api_base) < 0)
        return -1;
    size_t blen = strlen(d->api_base);
    while (blen > 0 && d->api_base[blen - 1] == '/')
        d->api_base[--blen] = '\0';
    if (get_str(ld, params, "api_key", KEY(key, i, ".litellm_params.api_key"), &d->api_key) < 0 ||
        get_str(ld, params, "api_version", KEY(key, i, ".litellm_params.api_version"), &d->api_version) < 0 ||
        get_str(ld, params, "base_model", KEY(key, i, ".litellm_params.base_model"), &d->base_model) < 0)
        return -1;
    if (d->base_model == NULL &&
        get_str(ld, info, "base_model", KEY(key, i, ".model_info.base_model"), &d->base_model) < 0)
        return -1;
    if (d->kind == UPSTREAM_AZURE && d->api_version == NULL)
        return fail(ld, params, KEY(key, i, ".litellm_params.api_version"), "missing (required for azure/)");
    d->price.base_model = d->base_model;
    if (get_price(ld, params, "input_cost_per_token", KEY(key, i, ".litellm_params.input_cost_per_token"),
                  &d->price.input_per_token, &d->price.has_input) < 0 ||
        get_price(ld, params, "output_cost_per_token", KEY(key, i, ".litellm_params.output_cost_per_token"),
                  &d->price.output_per_token, &d->price.has_output) < 0)
        return -1;
    return 0;
}

static int parse_model_list(struct loader *ld, yaml_node_t *root, struct config *cfg)
{
    yaml_node_t *list = map_get(ld, root, "model_list");
    if (list == NULL)
        return fail(ld, root, "model_list", "missing");
    if (list->type != YAML_SEQUENCE_NODE)
        return fail(ld, list, "model_list", "must be a list");
    size_t n = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
    if (n == 0)
        return fail(ld, list, "model_list", "is empty");
    cfg->deployments = calloc(n, sizeof(*cfg->deployments));
    if (cfg->deployments == NULL)
        return fail(ld, list, "model_list", "out of memory");
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = yaml_document_get_node(&ld->doc, list->data.sequence.items.start[i]);
        cfg->n_deployments = i + 1;
        if (parse_deployment(ld, item, i, &cfg->deployments[i]) < 0)
            return -1;
    }
    return 0;
}

/* mysql://user:password@host:port/database, parsed with libcurl's URL API. */
static int parse_database_url(struct loader *ld, yaml_node_t *n, const char *url, struct db_config *db)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *port = NULL, *path = NULL;
    int rc = -1;
    if (u == NULL)
        return fail(ld, n, "general_settings.database_url", "out of memory");
    if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "mysql") != 0 && strcmp(scheme, "mariadb") != 0) ||
        curl_url_get(u, CURLUPART_HOST, &db->host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_USER, &db->user, CURLU_URLDECODE) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PATH, &path, CURLU_URLDECODE) != CURLUE_OK ||
        strlen(path) < 2 || strchr(path + 1, '/') != NULL) {
        fail(ld, n, "general_settings.database_url",
             "must be mysql://USER:PASSWORD@HOST:PORT/DATABASE");
        goto out;
    }
    CURLUcode pc = curl_url_get(u, CURLUPART_PASSWORD, &db->password, CURLU_URLDECODE);
    if (pc != CURLUE_OK && pc != CURLUE_NO_PASSWORD) {
        fail(ld, n, "general_settings.database_url", "bad password part");
        goto out;
    }
    db->port = 3306;
    if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK)
        db->port = (unsigned)strtoul(port, NULL, 10);
    if ((db->database = strdup(path + 1)) == NULL) {
        fail(ld, n, "general_settings.database_url", "out of memory");
        goto out;
    }
    rc = 0;
out:
    curl_free(scheme);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
    return rc;
}

static int parse_general(struct loader *ld, yaml_node_t *root, struct config *cfg)
{
    static const char *const known[] = {"master_key", "database_url", NULL};
    yaml_node_t *gs = map_get(ld, root, "general_settings");
    if (gs == NULL)
        return fail(ld, root, "general_settings", "missing (database_url is required)");
    if (want_map(ld, gs, "general_settings") < 0)
        return -1;
    check_keys(ld, gs, "general_settings.", known);
    char *url;
    if (get_str(ld, gs, "master_key", "general_settings.master_key", &cfg->master_key) < 0 ||
        get_str(ld, gs, "database_url", "general_settings.database_url", &url) < 0)
        return -1;
    if (url == NULL)
        return fail(ld, gs, "general_settings.database_url", "missing");
    int rc = parse_database_url(ld, map_get(ld, gs, "database_url"), url, &cfg->db);
    free(url);
    return rc;
}

static int parse_proxyd(struct loader *ld, yaml_node_t *n, struct config *cfg)
{
    static const char *const known[] = {"listen", "spool_dir", "max_body_bytes",
        "upstream_timeout_ms", "key_cache_ttl_ms", "event_resend_ms", "reportd_url",
        "readiness_grace_ms", "spool_fsync_ms", "spool_max_bytes", "spool_segment_bytes", NULL};
    long body = 10L * 1024 * 1024, timeout = 600000, ttl = 1000, resend = 2000, grace = 10000;
    long fsync_ms = 5, spool_max = 1L << 30, segment = 64L << 20;
    if (want_map(ld, n, "tollgate.proxyd") < 0)
        return -1;
    check_keys(ld, n, "tollgate.proxyd.", known);
    if (get_listen(ld, n, "tollgate.proxyd.listen", "127.0.0.1:4000", &cfg->proxyd.listen) < 0 ||
        get_str_default(ld, n, "spool_dir", "tollgate.proxyd.spool_dir", "var/spool",
                        &cfg->proxyd.spool_dir) < 0 ||
        get_int(ld, n, "max_body_bytes", "tollgate.proxyd.max_body_bytes", 1024, 1L << 30, &body) < 0 ||
        get_int(ld, n, "upstream_timeout_ms", "tollgate.proxyd.upstream_timeout_ms", 100, 3600000, &timeout) < 0 ||
        get_int(ld, n, "key_cache_ttl_ms", "tollgate.proxyd.key_cache_ttl_ms", 0, 60000, &ttl) < 0 ||
        get_int(ld, n, "event_resend_ms", "tollgate.proxyd.event_resend_ms", 100, 600000, &resend) < 0 ||
        get_int(ld, n, "readiness_grace_ms", "tollgate.proxyd.readiness_grace_ms", 0, 3600000, &grace) < 0 ||
        get_int(ld, n, "spool_fsync_ms", "tollgate.proxyd.spool_fsync_ms", 0, 1000, &fsync_ms) < 0 ||
        get_int(ld, n, "spool_max_bytes", "tollgate.proxyd.spool_max_bytes", 1L << 20, 1L << 50,
                &spool_max) < 0 ||
        get_int(ld, n, "spool_segment_bytes", "tollgate.proxyd.spool_segment_bytes", 1L << 16,
                1L << 32, &segment) < 0 ||
        get_str(ld, n, "reportd_url", "tollgate.proxyd.reportd_url", &cfg->proxyd.reportd_url) < 0)
        return -1;
    if (cfg->proxyd.reportd_url != NULL &&
        check_url(ld, map_get(ld, n, "reportd_url"), "tollgate.proxyd.reportd_url",
                  cfg->proxyd.reportd_url) < 0)
        return -1;
    cfg->proxyd.readiness_grace_ms = (int)grace;
    cfg->proxyd.spool_fsync_ms = (int)fsync_ms;
    cfg->proxyd.spool_max_bytes = (uint64_t)spool_max;
    cfg->proxyd.spool_segment_bytes = (uint64_t)segment;
    cfg->proxyd.max_body_bytes = (size_t)body;
    cfg->proxyd.upstream_timeout_ms = (int)timeout;
    cfg->proxyd.key_cache_ttl_ms = (int)ttl;
    cfg->proxyd.event_resend_ms = (int)resend;
    return 0;
}

static int parse_reportd(struct loader *ld, yaml_node_t *n, struct config *cfg)
{
    static const char *const known[] = {"listen", "workers", NULL};
    long workers = 4;
    if (want_map(ld, n, "tollgate.reportd") < 0)
        return -1;
    check_keys(ld, n, "tollgate.reportd.", known);
    if (get_listen(ld, n, "tollgate.reportd.listen", "127.0.0.1:4001", &cfg->reportd.listen) < 0 ||
        get_int(ld, n, "workers", "tollgate.reportd.workers", 1, 64, &workers) < 0)
        return -1;
    cfg->reportd.workers = (int)workers;
    return 0;
}

static int parse_accountd(struct loader *ld, yaml_node_t *n, struct config *cfg)
{
    static const char *const known[] = {"events", "updates", "batch_max_events", "batch_wait_ms", NULL};
    long batch = 1000, wait = 5;
    if (want_map(ld, n, "tollgate.accountd") < 0)
        return -1;
    check_keys(ld, n, "tollgate.accountd.", known);
    if (get_str_default(ld, n, "events", "tollgate.accountd.events", "tcp://127.0.0.1:5555",
                        &cfg->accountd.events) < 0 ||
        get_str_default(ld, n, "updates", "tollgate.accountd.updates", "tcp://127.0.0.1:5556",
                        &cfg->accountd.updates) < 0 ||
        get_int(ld, n, "batch_max_events", "tollgate.accountd.batch_max_events", 1, 100000, &batch) < 0 ||
        get_int(ld, n, "batch_wait_ms", "tollgate.accountd.batch_wait_ms", 0, 10000, &wait) < 0)
        return -1;
    cfg->accountd.batch_max_events = (int)batch;
    cfg->accountd.batch_wait_ms = (int)wait;
    return 0;
}

/* proxyd forwards to the reportd of this config unless told otherwise. */
static int default_reportd_url(struct loader *ld, yaml_node_t *tg, struct config *cfg)
{
    if (cfg->proxyd.reportd_url != NULL)
        return 0;
    const struct listen_addr *l = &cfg->reportd.listen;
    size_t len = strlen(l->host) + 32;
    if ((cfg->proxyd.reportd_url = malloc(len)) == NULL)
        return fail(ld, tg, "tollgate.proxyd.reportd_url", "out of memory");
    snprintf(cfg->proxyd.reportd_url, len, strchr(l->host, ':') ? "http://[%s]:%d" : "http://%s:%d",
             l->host, l->port);
    return 0;
}

/* The tollgate: section; absent sub-sections take all their defaults. */
static int parse_tollgate(struct loader *ld, yaml_node_t *root, struct config *cfg)
{
    static const char *const known[] = {"proxyd", "reportd", "accountd", "price_file", NULL};
    yaml_node_t *tg = map_get(ld, root, "tollgate");
    if (want_map(ld, tg, "tollgate") < 0)
        return -1;
    check_keys(ld, tg, "tollgate.", known);
    if (get_str(ld, tg, "price_file", "tollgate.price_file", &cfg->price_file) < 0)
        return -1;
    if (parse_proxyd(ld, map_get(ld, tg, "proxyd"), cfg) < 0 ||
        parse_reportd(ld, map_get(ld, tg, "reportd"), cfg) < 0 ||
        parse_accountd(ld, map_get(ld, tg, "accountd"), cfg) < 0)
        return -1;
    return default_reportd_url(ld, tg, cfg);
}

static int load_document(struct loader *ld)
{
    FILE *f = fopen(ld->path, "rb");
    yaml_parser_t parser;
    if (f == NULL) {
        snprintf(ld->err, ld->errlen, "%s: cannot open: %s", ld->path, strerror(errno));
        return -1;
    }
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        snprintf(ld->err, ld->errlen, "%s: out of memory", ld->path);
        return -1;
    }
    yaml_parser_set_input_file(&parser, f);
    int ok = yaml_parser_load(&parser, &ld->doc);
    if (!ok)
        snprintf(ld->err, ld->errlen, "%s:%zu: YAML syntax error: %s %s", ld->path,
                 parser.problem_mark.line + 1, parser.problem ? parser.problem : "",
                 parser.context ? parser.context : "");
    yaml_parser_delete(&parser);
    fclose(f);
    return ok ? 0 : -1;
}

struct config *config_load(const char *path, char *err, size_t errlen)
{
    static const char *const top_keys[] = {"model_list", "general_settings", "tollgate",
        NULL};
    struct loader ld = {.path = path, .err = err, .errlen = errlen};
    struct config *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL || (cfg->path = strdup(path)) == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        free(cfg);
        return NULL;
    }
    if (load_document(&ld) < 0) {
        config_free(cfg);
        return NULL;
    }
    yaml_node_t *root = yaml_document_get_root_node(&ld.doc);
    int rc;
    if (root == NULL || root->type != YAML_MAPPING_NODE) {
        rc = fail(&ld, root, "(top level)", "the file must be a YAML mapping");
    } else {
        check_keys(&ld, root, "", top_keys);
        rc = parse_model_list(&ld, root, cfg) < 0 || parse_general(&ld, root, cfg) < 0 ||
             parse_tollgate(&ld, root, cfg) < 0 ? -1 : 0;
    }
    yaml_document_delete(&ld.doc);
    if (rc < 0) {
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
}

void config_free(struct config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->n_deployments; i++)
        deployment_free(&cfg->deployments[i]);
    free(cfg->deployments);
    free(cfg->path);
    free(cfg->master_key);
    free(cfg->price_file);
    curl_free(cfg->db.host);
    curl_free(cfg->db.user);
    curl_free(cfg->db.password);
    free(cfg->db.database);
    free(cfg->proxyd.spool_dir);
    free(cfg->proxyd.reportd_url);
    free(cfg->accountd.events);
    free(cfg->accountd.updates);
    free(cfg);
}
