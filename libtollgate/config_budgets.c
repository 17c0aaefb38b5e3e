/* config_budgets.c - the budgets and the limit that LiteLLM's config sets
 * outside the database: the proxy-wide litellm_settings.max_budget (with
 * budget_duration), router_settings.provider_budget_config, a deployment's
 * litellm_params.max_budget (with budget_duration), the end users' default
 * litellm_settings.max_end_user_budget, and
 * general_settings.global_max_parallel_requests. Also each deployment's
 * model id (model_info.id, as LiteLLM), which names its budget and its
 * spend_logs rows.
 *
 * A budget here is only a key, a maximum and a period: accountd keeps the
 * period spend of each in the config_budgets table and resets it as it does
 * a key's; proxyd refuses (proxy) or routes around (provider, deployment) a
 * spent one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget_period.h"
#include "config.h"
#include "config_yaml.h"
#include "keyhash.h"

#define MODEL_ID_HEX 32 /* hex digits of a derived model id */

/* A budget amount: an exact decimal (YAML scalars are text), positive
 * except where LiteLLM reads 0 as "none" (the proxy's max_budget). */
static int get_amount(struct loader *ld, yaml_node_t *n, const char *key, bool zero_ok,
                      money_t *out)
{
    const char *v = cy_scalar(n);
    if (v == NULL || money_parse(v, out) < 0 || *out < 0 || (*out == 0 && !zero_ok))
        return cy_fail(ld, n, key, "must be a %s decimal number of dollars",
                       zero_ok ? "non-negative" : "positive");
    return 0;
}

/* A period as budget_duration spells it ("30s", "1d", "1mo", ...). */
static int get_duration(struct loader *ld, yaml_node_t *n, const char *key, char **out)
{
    const char *v = cy_scalar(n);
    struct period p;
    if (v == NULL || period_parse(v, &p) < 0)
        return cy_fail(ld, n, key, "must be a duration such as 30s, 10m, 1h, 1d, 7d or 1mo");
    if ((*out = strdup(v)) == NULL)
        return cy_fail(ld, n, key, "out of memory");
    return 0;
}

/* Appends a budget; its index, or -1 (error set). */
static int add_budget(struct loader *ld, struct config *cfg, yaml_node_t *at, const char *key,
                      const char *what, money_t max, char *duration)
{
    struct config_budget *b = realloc(cfg->budgets, (cfg->n_budgets + 1) * sizeof(*b));
    if (b == NULL) {
        free(duration);
        return cy_fail(ld, at, what, "out of memory");
    }
    cfg->budgets = b;
    b = &cfg->budgets[cfg->n_budgets];
    *b = (struct config_budget){.max = max, .duration = duration,
                                .line = (int)at->start_mark.line + 1};
    size_t len = strlen(key) + 3;
    if ((b->key = strdup(key)) == NULL || (b->owner = malloc(len)) == NULL) {
        free(b->key);
        b->key = NULL;
        free(duration);
        b->duration = NULL;
        return cy_fail(ld, at, what, "out of memory");
    }
    snprintf(b->owner, len, "p:%s", key);
    return (int)cfg->n_budgets++;
}

/* max_budget and budget_duration of one mapping: both optional, but a
 * duration alone would be a period of nothing. *max 0: no budget. */
static int amount_and_period(struct loader *ld, yaml_node_t *map, const char *max_name,
                             const char *period_name, const char *prefix, money_t *max,
                             char **duration)
{
    char key[192];
    yaml_node_t *m = cy_map_get(ld, map, max_name), *d = cy_map_get(ld, map, period_name);
    *max = 0;
    *duration = NULL;
    snprintf(key, sizeof(key), "%s%s", prefix, max_name);
    if (m != NULL && get_amount(ld, m, key, strcmp(prefix, "litellm_settings.") == 0, max) < 0)
        return -1;
    snprintf(key, sizeof(key), "%s%s", prefix, period_name);
    if (d != NULL && *max == 0)
        return cy_fail(ld, d, key, "is set without %s%s", prefix, max_name);
    return d != NULL ? get_duration(ld, d, key, duration) : 0;
}

/* model_info.id, else the first hex digits of SHA-256 over what makes the
 * deployment (group, model, URL), so every daemon of one config names it
 * alike; not its key, so that rotating a key keeps the deployment's
 * budget and history. */
static int model_id(struct loader *ld, yaml_node_t *item, size_t i, struct deployment *d)
{
    char key[96], buf[8192], hex[KEYHASH_HEX_LEN + 1];
    snprintf(key, sizeof(key), "model_list[%zu].model_info.id", i);
    if (cy_str(ld, cy_map_get(ld, item, "model_info"), "id", key, &d->model_id) < 0)
        return -1;
    if (d->model_id != NULL) {
        if (d->model_id[0] == '\0' || strlen(d->model_id) > 200)
            return cy_fail(ld, item, key, "must be 1 to 200 characters");
        return 0;
    }
    int n = snprintf(buf, sizeof(buf), "%s\n%s\n%s", d->model_name, d->model, d->api_base);
    if (n < 0 || (size_t)n >= sizeof(buf) || keyhash_sha256_hex(buf, (size_t)n, hex) < 0)
        return cy_fail(ld, item, key, "cannot derive the deployment's id");
    hex[MODEL_ID_HEX] = '\0';
    if ((d->model_id = strdup(hex)) == NULL)
        return cy_fail(ld, item, key, "out of memory");
    return 0;
}

/* Two deployments given one model_info.id would share a budget and a name. */
static int unique_ids(struct loader *ld, yaml_node_t *list, const struct config *cfg)
{
    for (size_t i = 0; i < cfg->n_deployments; i++) {
        for (size_t k = 0; k < i; k++) {
            if (strcmp(cfg->deployments[i].model_id, cfg->deployments[k].model_id) == 0 &&
                (cfg->deployments[i].deployment_budget >= 0 ||
                 cfg->deployments[k].deployment_budget >= 0)) {
                char key[96];
                snprintf(key, sizeof(key), "model_list[%zu].model_info.id", i);
                return cy_fail(ld, yaml_document_get_node(&ld->doc,
                                   list->data.sequence.items.start[i]), key,
                               "%s is also the id of model_list[%zu] (line %d): a deployment "
                               "with a max_budget needs an id of its own",
                               cfg->deployments[i].model_id, k, cfg->deployments[k].line);
            }
        }
    }
    return 0;
}

/* Each deployment's id and litellm_params.max_budget / budget_duration. */
static int deployment_budgets(struct loader *ld, yaml_node_t *root, struct config *cfg)
{
    yaml_node_t *list = cy_map_get(ld, root, "model_list");
    for (size_t i = 0; i < cfg->n_deployments; i++) {
        struct deployment *d = &cfg->deployments[i];
        yaml_node_t *item = yaml_document_get_node(&ld->doc, list->data.sequence.items.start[i]);
        yaml_node_t *params = cy_map_get(ld, item, "litellm_params");
        char prefix[96], name[256];
        money_t max;
        char *duration;
        d->provider_budget = d->deployment_budget = -1;
        if (model_id(ld, item, i, d) < 0)
            return -1;
        snprintf(prefix, sizeof(prefix), "model_list[%zu].litellm_params.", i);
        if (amount_and_period(ld, params, "max_budget", "budget_duration", prefix, &max,
                              &duration) < 0)
            return -1;
        if (max == 0)
            continue;
        snprintf(name, sizeof(name), "deployment:%s", d->model_id);
        if ((d->deployment_budget = add_budget(ld, cfg, cy_map_get(ld, params, "max_budget"),
                                               name, prefix, max, duration)) < 0)
            return -1;
    }
    return unique_ids(ld, list, cfg);
}

/* router_settings.provider_budget_config: {provider: {budget_limit, time_period}}. */
static int provider_budgets(struct loader *ld, yaml_node_t *root, struct config *cfg)
{
    const char *key = "router_settings.provider_budget_config";
    yaml_node_t *pbc = cy_map_get(ld, cy_map_get(ld, root, "router_settings"),
                                  "provider_budget_config");
    if (pbc == NULL)
        return 0;
    if (cy_want_map(ld, pbc, key) < 0)
        return -1;
    for (yaml_node_pair_t *p = pbc->data.mapping.pairs.start; p < pbc->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(&ld->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(&ld->doc, p->value);
        const char *provider = cy_scalar(kn);
        char prefix[192], name[128];
        static const char *const keys[] = {"budget_limit", "time_period", NULL};
        money_t max;
        char *duration;
        if (provider == NULL || strlen(provider) > 64 || v == NULL ||
            v->type != YAML_MAPPING_NODE)
            return cy_fail(ld, kn, key, "each item must be PROVIDER: {budget_limit, time_period}");
        snprintf(prefix, sizeof(prefix), "%s.%s.", key, provider);
        cy_check_keys(ld, v, prefix, keys);
        if (amount_and_period(ld, v, "budget_limit", "time_period", prefix, &max, &duration) < 0)
            return -1;
        if (max == 0)
            return cy_fail(ld, v, prefix, "budget_limit is missing");
        bool used = false;
        for (size_t i = 0; i < cfg->n_deployments; i++)
            used |= strcmp(cfg->deployments[i].provider, provider) == 0;
        if (!used) {
            free(duration);
            return cy_fail(ld, kn, key, "no deployment of model_list uses provider %s", provider);
        }
        snprintf(name, sizeof(name), "provider:%s", provider);
        int b = add_budget(ld, cfg, kn, name, key, max, duration);
        if (b < 0)
            return -1;
        for (size_t i = 0; i < cfg->n_deployments; i++)
            if (strcmp(cfg->deployments[i].provider, provider) == 0)
                cfg->deployments[i].provider_budget = b;
    }
    return 0;
}

int config_parse_budgets(struct loader *ld, yaml_node_t *root, struct config *cfg)
{
    yaml_node_t *ls = cy_map_get(ld, root, "litellm_settings");
    money_t max;
    char *duration;
    cfg->proxy_budget = -1;
    if (deployment_budgets(ld, root, cfg) < 0 || provider_budgets(ld, root, cfg) < 0 ||
        amount_and_period(ld, ls, "max_budget", "budget_duration", "litellm_settings.", &max,
                          &duration) < 0)
        return -1;
    if (max > 0 && (cfg->proxy_budget = add_budget(ld, cfg, cy_map_get(ld, ls, "max_budget"),
                                                   "proxy", "litellm_settings.max_budget", max,
                                                   duration)) < 0)
        return -1;
    yaml_node_t *eu = cy_map_get(ld, ls, "max_end_user_budget");
    if (eu != NULL && get_amount(ld, eu, "litellm_settings.max_end_user_budget", false,
                                 &cfg->max_end_user_budget) < 0)
        return -1;
    return cy_int(ld, cy_map_get(ld, root, "general_settings"), "global_max_parallel_requests",
                  "general_settings.global_max_parallel_requests", 1, 10000000,
                  &cfg->global_max_parallel);
}

bool config_budget_covers(const char *key, const char *provider, const char *model_id)
{
    if (strcmp(key, "proxy") == 0)
        return true;
    if (strncmp(key, "provider:", 9) == 0)
        return provider != NULL && strcmp(key + 9, provider) == 0;
    return strncmp(key, "deployment:", 11) == 0 && model_id != NULL &&
           strcmp(key + 11, model_id) == 0;
}

void config_budgets_free(struct config *cfg)
{
    for (size_t i = 0; i < cfg->n_budgets; i++) {
        free(cfg->budgets[i].key);
        free(cfg->budgets[i].owner);
        free(cfg->budgets[i].duration);
    }
    free(cfg->budgets);
    cfg->budgets = NULL;
    cfg->n_budgets = 0;
}
