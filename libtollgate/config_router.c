/* config_router.c - LiteLLM's router_settings and litellm_settings: retries,
 * timeouts, cooldowns and fallbacks. router_settings wins where both set a
 * value. The routing strategy and its arguments are config_strategy.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "budget_period.h"
#include "config_refused.h"
#include "config_yaml.h"

#define DEFAULT_ALLOWED_FAILS 3
#define DEFAULT_COOLDOWN_S 5

/* One {group: [fallback, ...]} item of a fallbacks list. */
static int parse_fallback(struct loader *ld, yaml_node_t *item, const char *key,
                          struct fallback *fb)
{
    if (item->type != YAML_MAPPING_NODE ||
        item->data.mapping.pairs.top - item->data.mapping.pairs.start != 1)
        return cy_fail(ld, item, key, "each item must be {group: [fallback groups]}");
    yaml_node_pair_t *pair = item->data.mapping.pairs.start;
    yaml_node_t *to = yaml_document_get_node(&ld->doc, pair->value);
    const char *group = cy_scalar(yaml_document_get_node(&ld->doc, pair->key));
    if (group == NULL || to == NULL || to->type != YAML_SEQUENCE_NODE)
        return cy_fail(ld, item, key, "each item must be {group: [fallback groups]}");
    size_t n = (size_t)(to->data.sequence.items.top - to->data.sequence.items.start);
    if ((fb->group = strdup(group)) == NULL || (fb->to = calloc(n ? n : 1, sizeof(char *))) == NULL)
        return cy_fail(ld, item, key, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *g = cy_scalar(yaml_document_get_node(&ld->doc, to->data.sequence.items.start[i]));
        if (g == NULL)
            return cy_fail(ld, to, key, "fallback groups must be names");
        if ((fb->to[fb->n++] = strdup(g)) == NULL)
            return cy_fail(ld, to, key, "out of memory");
    }
    return 0;
}

int config_parse_fallbacks(struct loader *ld, yaml_node_t *list, const char *key,
                           struct fallback **out, size_t *n_out)
{
    if (list->type != YAML_SEQUENCE_NODE)
        return cy_fail(ld, list, key, "must be a list of {group: [fallback groups]}");
    size_t n = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
    if ((*out = calloc(n ? n : 1, sizeof(**out))) == NULL)
        return cy_fail(ld, list, key, "out of memory");
    for (size_t i = 0; i < n; i++) {
        *n_out = i + 1;
        yaml_node_t *item = yaml_document_get_node(&ld->doc, list->data.sequence.items.start[i]);
        if (parse_fallback(ld, item, key, &(*out)[i]) < 0)
            return -1;
    }
    return 0;
}

/* Reads one section; values it sets override what is there. */
/* litellm_settings' callback lists: logging integrations are not Tollgate's
 * business (warned about with the other unknown keys), but a callback that
 * enforces (a guardrail, a rate limiter) decides access or limits: refused. */
static int check_callbacks(struct loader *ld, yaml_node_t *sec)
{
    static const char *const lists[] = {"callbacks", "success_callback", "failure_callback",
                                        NULL};
    char key[96];
    for (size_t i = 0; lists[i] != NULL; i++) {
        yaml_node_t *l = cy_map_get(ld, sec, lists[i]);
        if (l == NULL || l->type != YAML_SEQUENCE_NODE)
            continue;
        for (yaml_node_item_t *it = l->data.sequence.items.start; it < l->data.sequence.items.top;
             it++) {
            yaml_node_t *v = yaml_document_get_node(&ld->doc, *it);
            const char *what = cy_scalar(v) != NULL ? config_refused_callback(cy_scalar(v)) : NULL;
            snprintf(key, sizeof(key), "litellm_settings.%s", lists[i]);
            if (what != NULL)
                return cy_fail(ld, v, key, "LiteLLM's %s callback (a %s) is not applied by "
                               "Tollgate, and a callback that decides access or limits is "
                               "refused rather than ignored: remove it to start",
                               cy_scalar(v), what);
        }
    }
    return 0;
}

static int parse_section(struct loader *ld, yaml_node_t *sec, const char *name, bool router,
                         struct router_config *rc)
{
    static const char *const router_keys[] = {"routing_strategy", "num_retries", "timeout",
        "allowed_fails", "cooldown_time", "fallbacks", "provider_budget_config",
        "routing_strategy_args", "default_max_parallel_requests",
        "model_group_alias", "enable_tag_filtering", "tag_filtering_match_any",
        "context_window_fallbacks", "content_policy_fallbacks", "default_fallbacks",
        "redis_host", "redis_port", "redis_password", "redis_db", "redis_url", NULL};
    static const char *const litellm_keys[] = {"num_retries", "request_timeout", "fallbacks",
                                               "context_window_fallbacks",
                                               "content_policy_fallbacks", "default_fallbacks",
                                               "timezone", "ssl_verify", "drop_params", "max_budget",
                                               "budget_duration", "max_end_user_budget", "default_key_generate_params",
                                               "upperbound_key_generate_params",
                                               "default_internal_user_params",
                                               "max_internal_user_budget",
                                               "default_max_internal_user_budget",
                                               "internal_user_budget_duration", NULL};
    char key[64], prefix[64];
    long retries = rc->num_retries, fails = rc->allowed_fails;
    double timeout = rc->timeout_ms / 1000.0, cooldown = rc->cooldown_ms / 1000.0;
    if (sec == NULL)
        return 0;
    if (cy_want_map(ld, sec, name) < 0)
        return -1;
    snprintf(prefix, sizeof(prefix), "%s.", name);
    cy_check_keys(ld, sec, prefix, router ? router_keys : litellm_keys);
    if (!router && check_callbacks(ld, sec) < 0)
        return -1;
    if (router && config_parse_strategy(ld, sec, rc) < 0)
        return -1;
    snprintf(key, sizeof(key), "%s.num_retries", name);
    if (cy_int(ld, sec, "num_retries", key, 0, 10, &retries) < 0)
        return -1;
    snprintf(key, sizeof(key), "%s.%s", name, router ? "timeout" : "request_timeout");
    if (cy_double(ld, sec, router ? "timeout" : "request_timeout", key, 0.001, 86400, &timeout) < 0)
        return -1;
    snprintf(key, sizeof(key), "%s.allowed_fails", name);
    if (router && cy_int(ld, sec, "allowed_fails", key, 1, 1000000, &fails) < 0)
        return -1;
    snprintf(key, sizeof(key), "%s.cooldown_time", name);
    if (router && cy_double(ld, sec, "cooldown_time", key, 0, 86400, &cooldown) < 0)
        return -1;
    rc->num_retries = (int)retries;
    rc->timeout_ms = (int)(timeout * 1000);
    rc->allowed_fails = (int)fails;
    rc->cooldown_ms = (int)(cooldown * 1000);
    yaml_node_t *fb = cy_map_get(ld, sec, "fallbacks");
    snprintf(key, sizeof(key), "%s.fallbacks", name);
    if (fb == NULL)
        return 0;
    config_router_free(rc); /* router_settings' list replaces litellm_settings' */
    return config_parse_fallbacks(ld, fb, key, &rc->fallbacks, &rc->n_fallbacks);
}

void config_fallbacks_free(struct fallback *fb, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(fb[i].group);
        for (size_t k = 0; k < fb[i].n; k++)
            free(fb[i].to[k]);
        free(fb[i].to);
    }
    free(fb);
}

void config_router_free(struct router_config *rc)
{
    config_fallbacks_free(rc->fallbacks, rc->n_fallbacks);
    rc->fallbacks = NULL;
    rc->n_fallbacks = 0;
}

/* litellm_settings.timezone: the zone budget periods follow (default UTC). */
static int parse_timezone(struct loader *ld, yaml_node_t *root, struct config *cfg)
{
    yaml_node_t *ls = cy_map_get(ld, root, "litellm_settings");
    if (cy_str_default(ld, ls, "timezone", "litellm_settings.timezone", "UTC", &cfg->timezone) < 0)
        return -1;
    if (!period_zone_known(cfg->timezone))
        return cy_fail(ld, cy_map_get(ld, ls, "timezone"), "litellm_settings.timezone",
                       "%s is not an installed IANA time zone (see /usr/share/zoneinfo)",
                       cfg->timezone);
    return 0;
}

/* litellm_settings.ssl_verify: true (default), false, or a CA bundle's path;
 * $SSL_CERT_FILE names the bundle when the setting does not (as LiteLLM). */
static int parse_ssl_verify(struct loader *ld, yaml_node_t *root, struct config *cfg)
{
    const char *key = "litellm_settings.ssl_verify";
    yaml_node_t *ls = cy_map_get(ld, root, "litellm_settings");
    yaml_node_t *n = ls != NULL ? cy_map_get(ld, ls, "ssl_verify") : NULL;
    const char *env = cy_env(ld, "SSL_CERT_FILE");
    char *path = NULL;
    cfg->ssl_verify = true;
    if (n != NULL && n->type == YAML_SCALAR_NODE &&
        (strcmp(cy_scalar(n), "true") == 0 || strcmp(cy_scalar(n), "false") == 0)) {
        cfg->ssl_verify = strcmp(cy_scalar(n), "true") == 0;
    } else if (n != NULL) {
        if (cy_str(ld, ls, "ssl_verify", key, &path) < 0)
            return -1;
        if (access(path, R_OK) != 0) {
            int rc = cy_fail(ld, n, key, "cannot read the CA bundle %s", path);
            free(path);
            return rc;
        }
        cfg->ssl_ca_file = path;
        return 0;
    }
    if (cfg->ssl_verify && env != NULL && *env != '\0' &&
        (cfg->ssl_ca_file = strdup(env)) == NULL)
        return cy_fail(ld, n, key, "out of memory");
    return 0;
}

int config_parse_router(struct loader *ld, yaml_node_t *root, struct config *cfg)
{
    struct router_config *rc = &cfg->router;
    if (parse_timezone(ld, root, cfg) < 0 || parse_ssl_verify(ld, root, cfg) < 0 ||
        cy_bool(ld, cy_map_get(ld, root, "litellm_settings"), "drop_params",
                "litellm_settings.drop_params", &cfg->drop_params) < 0)
        return -1;
    rc->allowed_fails = DEFAULT_ALLOWED_FAILS;
    rc->cooldown_ms = DEFAULT_COOLDOWN_S * 1000;
    rc->timeout_ms = cfg->proxyd.upstream_timeout_ms;
    /* litellm_settings first, so that router_settings overrides it */
    return parse_section(ld, cy_map_get(ld, root, "litellm_settings"), "litellm_settings", false,
                         rc) < 0 ||
           parse_section(ld, cy_map_get(ld, root, "router_settings"), "router_settings", true,
                         rc) < 0 ? -1 : 0;
}
