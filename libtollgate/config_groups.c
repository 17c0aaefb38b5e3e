/* config_groups.c - what decides which model group and deployment serve a
 * request besides its model name, as LiteLLM's Router reads it:
 *
 *   router_settings.model_group_alias    another name for a group, maybe
 *                                        hidden from GET /v1/models
 *   router_settings.enable_tag_filtering tag routing: deployments' tags
 *   (and tag_filtering_match_any)        against the request's tags
 *   context_window_fallbacks,            groups tried after one kind of
 *   content_policy_fallbacks             error (litellm_settings or
 *   default_fallbacks                    router_settings; the router's win)
 *
 * plus each deployment's litellm_params.tags, model_info.enable_tag_filtering
 * and model_info.max_input_tokens. Every group these name must exist (an
 * alias's group must be a model_name of model_list; a fallback may also be an
 * alias), checked here so that all three daemons refuse a wrong file alike,
 * naming its line. proxyd/router.c applies what this reads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_yaml.h"

#define MAX_TAGS 64 /* tags of one deployment */

static bool is_group(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_deployments; i++) {
        if (strcmp(cfg->deployments[i].model_name, name) == 0)
            return true;
    }
    return false;
}

static bool is_alias(const struct group_config *g, const char *name)
{
    for (size_t i = 0; i < g->n_aliases; i++) {
        if (strcmp(g->aliases[i].alias, name) == 0)
            return true;
    }
    return false;
}

/* litellm_params.tags: a list of strings. */
static int parse_tags(struct loader *ld, yaml_node_t *params, size_t i, struct deployment *d)
{
    char key[128];
    yaml_node_t *n = cy_map_get(ld, params, "tags");
    snprintf(key, sizeof(key), "model_list[%zu].litellm_params.tags", i);
    if (n == NULL)
        return 0;
    size_t len = n->type == YAML_SEQUENCE_NODE
                     ? (size_t)(n->data.sequence.items.top - n->data.sequence.items.start) : 0;
    if (n->type != YAML_SEQUENCE_NODE || len > MAX_TAGS)
        return cy_fail(ld, n, key, "must be a list of at most %d tags", MAX_TAGS);
    if ((d->tags = calloc(len ? len : 1, sizeof(char *))) == NULL)
        return cy_fail(ld, n, key, "out of memory");
    for (size_t k = 0; k < len; k++) {
        const char *t = cy_scalar(yaml_document_get_node(&ld->doc, n->data.sequence.items.start[k]));
        if (t == NULL || *t == '\0')
            return cy_fail(ld, n, key, "tags must be non-empty strings");
        if ((d->tags[d->n_tags++] = strdup(t)) == NULL)
            return cy_fail(ld, n, key, "out of memory");
    }
    return 0;
}

int config_parse_deployment_groups(struct loader *ld, yaml_node_t *params, yaml_node_t *info,
                                   size_t i, struct deployment *d)
{
    char key[128];
    bool filtering = false;
    d->tag_filtering = -1;
    snprintf(key, sizeof(key), "model_list[%zu].model_info.enable_tag_filtering", i);
    int set = cy_bool(ld, info, "enable_tag_filtering", key, &filtering);
    if (set < 0)
        return -1;
    if (set)
        d->tag_filtering = filtering;
    snprintf(key, sizeof(key), "model_list[%zu].model_info.max_input_tokens", i);
    if (cy_int(ld, info, "max_input_tokens", key, 1, 1000000000L, &d->max_input_tokens) < 0)
        return -1;
    return parse_tags(ld, params, i, d);
}

void config_deployment_groups_free(struct deployment *d)
{
    for (size_t i = 0; i < d->n_tags; i++)
        free(d->tags[i]);
    free(d->tags);
}

/* One alias: group, or alias: {model: group, hidden: bool}. */
static int parse_alias(struct loader *ld, const struct config *cfg, yaml_node_pair_t *p,
                       struct group_alias *a)
{
    const char *key = "router_settings.model_group_alias";
    yaml_node_t *kn = yaml_document_get_node(&ld->doc, p->key);
    yaml_node_t *v = yaml_document_get_node(&ld->doc, p->value);
    const char *alias = cy_scalar(kn), *group = cy_scalar(v);
    if (alias == NULL || *alias == '\0')
        return cy_fail(ld, kn, key, "aliases must be names");
    if (v != NULL && v->type == YAML_MAPPING_NODE) {
        static const char *const item_keys[] = {"model", "hidden", NULL};
        char prefix[320];
        snprintf(prefix, sizeof(prefix), "router_settings.model_group_alias.%.256s.", alias);
        cy_check_keys(ld, v, prefix, item_keys);
        group = cy_scalar(cy_map_get(ld, v, "model"));
        if (cy_bool(ld, v, "hidden", key, &a->hidden) < 0)
            return -1;
    }
    if (group == NULL || *group == '\0')
        return cy_fail(ld, v != NULL ? v : kn, key, "%s: must be a model group, or "
                       "{model: <group>, hidden: true|false}", alias);
    if (!is_group(cfg, group))
        return cy_fail(ld, v, key, "%s: %s is not a model_name of model_list", alias, group);
    if (is_group(cfg, alias))
        return cy_fail(ld, kn, key, "%s is a model_name of model_list already: an alias "
                       "must be a new name", alias);
    if ((a->alias = strdup(alias)) == NULL || (a->group = strdup(group)) == NULL)
        return cy_fail(ld, kn, key, "out of memory");
    return 0;
}

static int parse_aliases(struct loader *ld, yaml_node_t *rs, struct config *cfg)
{
    struct group_config *g = &cfg->groups;
    yaml_node_t *m = cy_map_get(ld, rs, "model_group_alias");
    if (m == NULL)
        return 0;
    if (m->type != YAML_MAPPING_NODE)
        return cy_fail(ld, m, "router_settings.model_group_alias",
                       "must be a mapping of alias: model group");
    size_t n = (size_t)(m->data.mapping.pairs.top - m->data.mapping.pairs.start);
    if ((g->aliases = calloc(n ? n : 1, sizeof(*g->aliases))) == NULL)
        return cy_fail(ld, m, "router_settings.model_group_alias", "out of memory");
    for (size_t i = 0; i < n; i++) {
        g->n_aliases = i + 1;
        if (parse_alias(ld, cfg, &m->data.mapping.pairs.start[i], &g->aliases[i]) < 0)
            return -1;
    }
    return 0;
}

/* name of section's list key: router_settings' if it has one, else litellm_settings'. */
static yaml_node_t *section_list(struct loader *ld, yaml_node_t *root, const char *name,
                                 char *key, size_t keylen)
{
    yaml_node_t *n = cy_map_get(ld, cy_map_get(ld, root, "router_settings"), name);
    snprintf(key, keylen, "%s.%s", n != NULL ? "router_settings" : "litellm_settings", name);
    return n != NULL ? n : cy_map_get(ld, cy_map_get(ld, root, "litellm_settings"), name);
}

/* Every name of a fallback list: a model group or an alias. */
static int check_fallbacks(struct loader *ld, yaml_node_t *n, const char *key,
                           const struct config *cfg, const struct fallback *fb, size_t nfb)
{
    for (size_t i = 0; i < nfb; i++) {
        for (size_t k = 0; k <= fb[i].n; k++) {
            const char *name = k == 0 ? fb[i].group : fb[i].to[k - 1];
            if (!is_group(cfg, name) && !is_alias(&cfg->groups, name))
                return cy_fail(ld, n, key, "%s is not a model_name of model_list", name);
        }
    }
    return 0;
}

static int parse_special(struct loader *ld, yaml_node_t *root, const char *name,
                         struct config *cfg, struct fallback **out, size_t *n)
{
    char key[96];
    yaml_node_t *list = section_list(ld, root, name, key, sizeof(key));
    if (list == NULL)
        return 0;
    return config_parse_fallbacks(ld, list, key, out, n) < 0 ||
                   check_fallbacks(ld, list, key, cfg, *out, *n) < 0 ? -1 : 0;
}

/* default_fallbacks: [group, ...], for every group without fallbacks of its own. */
static int parse_default(struct loader *ld, yaml_node_t *root, struct config *cfg)
{
    char key[96];
    struct group_config *g = &cfg->groups;
    yaml_node_t *list = section_list(ld, root, "default_fallbacks", key, sizeof(key));
    if (list == NULL)
        return 0;
    if (list->type != YAML_SEQUENCE_NODE)
        return cy_fail(ld, list, key, "must be a list of model groups");
    size_t n = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
    if ((g->default_fallbacks = calloc(n ? n : 1, sizeof(char *))) == NULL)
        return cy_fail(ld, list, key, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *name = cy_scalar(yaml_document_get_node(&ld->doc,
                                                            list->data.sequence.items.start[i]));
        if (name == NULL || (!is_group(cfg, name) && !is_alias(g, name)))
            return cy_fail(ld, list, key, "%s is not a model_name of model_list",
                           name != NULL ? name : "(not a name)");
        if ((g->default_fallbacks[g->n_default_fallbacks++] = strdup(name)) == NULL)
            return cy_fail(ld, list, key, "out of memory");
    }
    return 0;
}

int config_parse_groups(struct loader *ld, yaml_node_t *root, struct config *cfg)
{
    struct group_config *g = &cfg->groups;
    yaml_node_t *rs = cy_map_get(ld, root, "router_settings");
    g->tag_match_any = true;
    if (cy_bool(ld, rs, "enable_tag_filtering", "router_settings.enable_tag_filtering",
                &g->tag_filtering) < 0 ||
        cy_bool(ld, rs, "tag_filtering_match_any", "router_settings.tag_filtering_match_any",
                &g->tag_match_any) < 0 ||
        parse_aliases(ld, rs, cfg) < 0)
        return -1;
    return parse_special(ld, root, "context_window_fallbacks", cfg, &g->context_window,
                         &g->n_context_window) < 0 ||
                   parse_special(ld, root, "content_policy_fallbacks", cfg, &g->content_policy,
                                 &g->n_content_policy) < 0 ||
                   parse_default(ld, root, cfg) < 0 ? -1 : 0;
}

void config_groups_free(struct config *cfg)
{
    struct group_config *g = &cfg->groups;
    for (size_t i = 0; i < g->n_aliases; i++) {
        free(g->aliases[i].alias);
        free(g->aliases[i].group);
    }
    free(g->aliases);
    config_fallbacks_free(g->context_window, g->n_context_window);
    config_fallbacks_free(g->content_policy, g->n_content_policy);
    for (size_t i = 0; i < g->n_default_fallbacks; i++)
        free(g->default_fallbacks[i]);
    free(g->default_fallbacks);
    *g = (struct group_config){0};
}
