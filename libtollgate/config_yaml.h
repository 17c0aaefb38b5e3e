/* config_yaml.h - the YAML walking helpers shared by the config loaders
 * (config.c, config_tollgate.c, config_router.c). Not a public API. */
#ifndef TG_CONFIG_YAML_H
#define TG_CONFIG_YAML_H

#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

struct db_config;

/* The state of one load: the document and where to put an error. */
struct loader {
    const char *path;
    yaml_document_t doc;
    char *err;
    size_t errlen;
    yaml_node_t *env_vars; /* the file's environment_variables mapping, or NULL */
    bool refused;          /* a key config_refused.h names was found: the load fails */
};

/* An environment variable as the file sees it: its environment_variables
 * section first (as LiteLLM, which sets them before reading the rest), then
 * the process's. NULL when neither has it. */
const char *cy_env(struct loader *ld, const char *name);

/* Fills ld->err with "FILE:LINE: key: message" (line of node) and returns -1. */
int cy_fail(struct loader *ld, const yaml_node_t *node, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void cy_warn_unknown(struct loader *ld, const yaml_node_t *node, const char *key);
const char *cy_scalar(const yaml_node_t *n);
/* The value of key in mapping node map, or NULL. */
yaml_node_t *cy_map_get(struct loader *ld, yaml_node_t *map, const char *key);
/* Warns about keys of map not in allowed (a NULL-terminated list). */
/* Refuses the keys of map that config_refused.h names (for sections whose
 * other keys are not checked, such as model_info). */
void cy_refuse_keys(struct loader *ld, yaml_node_t *map, const char *prefix);
void cy_check_keys(struct loader *ld, yaml_node_t *map, const char *prefix,
                   const char *const *allowed);
/* -1 (error set) when n exists and is not a mapping. */
int cy_want_map(struct loader *ld, yaml_node_t *n, const char *key);
/* Optional string (os.environ/NAME resolved); *out NULL when absent. */
int cy_str(struct loader *ld, yaml_node_t *map, const char *name, const char *key, char **out);
/* Same, with a default when absent. */
int cy_str_default(struct loader *ld, yaml_node_t *map, const char *name, const char *key,
                   const char *def, char **out);
/* Optional string or list of strings (os.environ/NAME resolved), at most max
 * of them; absent: one, def. *n is how many were stored in out[]. */
int cy_str_list(struct loader *ld, yaml_node_t *map, const char *name, const char *key,
                const char *def, char **out, size_t max, size_t *n);
/* Optional integer in [min, max]; *out unchanged when absent. */
int cy_int(struct loader *ld, yaml_node_t *map, const char *name, const char *key, long min,
           long max, long *out);
/* Optional true or false: 1 when set (*out), 0 when absent (*out unchanged). */
int cy_bool(struct loader *ld, yaml_node_t *map, const char *name, const char *key, bool *out);
/* Optional number in [min, max]; *out unchanged when absent. */
int cy_double(struct loader *ld, yaml_node_t *map, const char *name, const char *key,
              double min, double max, double *out);
/* An http:// or https:// URL (libcurl's parser). */
int cy_url(struct loader *ld, yaml_node_t *n, const char *key, const char *url);
/* Parses ld->path into ld->doc. */
int cy_load_document(struct loader *ld);
/* mysql://USER:PASSWORD@HOST:PORT/DATABASE into db (config.c). */
int config_parse_db_url(struct loader *ld, yaml_node_t *n, const char *key, const char *url,
                        struct db_config *db);
/* The URL's query (raw, NULL: none) as TLS options (config_db_tls.c). */
struct db_tls;
int config_parse_db_tls(struct loader *ld, yaml_node_t *n, const char *key, const char *query,
                        struct db_tls *t);
void config_db_tls_free(struct db_tls *t);
bool config_db_tls_differs(const struct db_tls *a, const struct db_tls *b);

struct config;
/* The sections (config_tollgate.c, config_router.c). */
int config_parse_tollgate(struct loader *ld, yaml_node_t *root, struct config *cfg);
int config_parse_router(struct loader *ld, yaml_node_t *root, struct config *cfg);
/* tollgate.curve and the curve_* keys, after tollgate.accountd (config_curve.c). */
int config_parse_curve(struct loader *ld, yaml_node_t *tg, struct config *cfg);
struct curve_config;
void config_curve_free(struct curve_config *c);
struct router_config;
void config_router_free(struct router_config *rc);
/* router_settings' routing_strategy, routing_strategy_args and
 * default_max_parallel_requests into rc (config_strategy.c). */
int config_parse_strategy(struct loader *ld, yaml_node_t *router_settings,
                          struct router_config *rc);
/* router_settings' redis_* into rc->redis, host "" when none is set
 * (config_redis.c; called by config_parse_strategy). */
int config_parse_redis(struct loader *ld, yaml_node_t *router_settings,
                       struct router_config *rc);
/* A [{group: [fallback groups]}] list (config_router.c); *out and *n are
 * set as far as it was read, also on error (config_fallbacks_free frees them). */
struct fallback;
int config_parse_fallbacks(struct loader *ld, yaml_node_t *list, const char *key,
                           struct fallback **out, size_t *n);
void config_fallbacks_free(struct fallback *fb, size_t n);
/* Aliases, tag routing and the special fallbacks (config_groups.c): after
 * model_list and the router sections; and a deployment's tags, its
 * enable_tag_filtering and max_input_tokens (called by config.c per entry). */
int config_parse_groups(struct loader *ld, yaml_node_t *root, struct config *cfg);
void config_groups_free(struct config *cfg);
struct deployment;
int config_parse_deployment_groups(struct loader *ld, yaml_node_t *params, yaml_node_t *info,
                                   size_t i, struct deployment *d);
void config_deployment_groups_free(struct deployment *d);
/* Budgets and limits set in the config (config_budgets.c); after model_list. */
int config_parse_budgets(struct loader *ld, yaml_node_t *root, struct config *cfg);
void config_budgets_free(struct config *cfg);
/* Defaults and caps of the key and user routes (config_keys.c). */
int config_parse_keys(struct loader *ld, yaml_node_t *root, struct config *cfg);
/* config_ratelimit.c: token_rate_limit_type, ratelimit_output_tokens. */
int config_parse_ratelimit(struct loader *ld, yaml_node_t *root, struct config *cfg);
struct key_settings;
void config_keys_free(struct key_settings *k);

#endif
