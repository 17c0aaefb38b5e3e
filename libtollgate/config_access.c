/* config_access.c - general_settings.allowed_routes, admin_only_routes and
 * public_routes.
 *
 * Each is a list of routes ("/chat/completions") and LiteLLM route groups
 * ("LiteLLMRoutes.llm_api_routes"); admin_only_routes also takes routes
 * ending in '*'. What they mean, and where that differs from LiteLLM's code,
 * is in route_access.h. An entry Tollgate cannot give LiteLLM's meaning to
 * stops the start, naming it: these keys decide who may call what.
 */
#include "config_access.h"

#include <stdio.h>
#include <string.h>

#define GROUP_PREFIX "LiteLLMRoutes."

/* How a list's entries are read. */
enum list_kind {
    EXACT,   /* allowed_routes: routes compared exactly, groups */
    PATTERN, /* admin_only_routes: also "prefix*" */
    PUBLIC,  /* public_routes: only what Tollgate can serve without a key */
};

/* The route group an entry names, or an error naming the groups there are. */
static int parse_group(struct loader *ld, yaml_node_t *item, const char *key, const char *v,
                       enum list_kind kind, struct route_list *l)
{
    const struct route_group *g = route_group_find(v + strlen(GROUP_PREFIX));
    if (g == NULL)
        return cy_fail(ld, item, key, "'%.80s' is not a route group Tollgate knows (openai_routes, "
                       "anthropic_routes, llm_api_routes, info_routes, management_routes, "
                       "key_management_routes, spend_tracking_routes, "
                       "global_spend_tracking_routes, public_routes, master_key_only_routes)", v);
    if (kind == PUBLIC && g != route_group_find("public_routes"))
        return cy_fail(ld, item, key, "'%.80s': of the route groups, only " GROUP_PREFIX
                       "public_routes can be served without a key", v);
    return route_list_add(l, NULL, g) < 0 ? cy_fail(ld, item, key, "out of memory") : 0;
}

/* One entry. In allowed_routes (exact) a '*' or '{' would make an entry
 * LiteLLM compares as a plain string, that no route equals. */
static int parse_entry(struct loader *ld, yaml_node_t *item, const char *key, enum list_kind kind,
                       struct route_list *l)
{
    const char *v = cy_scalar(item);
    if (v == NULL || item->type != YAML_SCALAR_NODE)
        return cy_fail(ld, item, key, "must list routes (strings)");
    if (strncmp(v, GROUP_PREFIX, strlen(GROUP_PREFIX)) == 0)
        return parse_group(ld, item, key, v, kind, l);
    if (v[0] != '/')
        return cy_fail(ld, item, key, "'%.80s' is not a route (a route starts with '/'; a route "
                       "group is written " GROUP_PREFIX "<group>)", v);
    const char *star = strchr(v, '*');
    if (kind == EXACT && (star != NULL || strchr(v, '{') != NULL))
        return cy_fail(ld, item, key, "'%.80s': LiteLLM compares allowed_routes exactly, so "
                       "this entry would let no route through; list each route, or a group "
                       "such as " GROUP_PREFIX "llm_api_routes", v);
    if (kind == PUBLIC && !route_access_may_be_public(v))
        return cy_fail(ld, item, key, "'%.80s': Tollgate serves without a key only what answers "
                       "every caller alike (/spend/calculate, " GROUP_PREFIX "public_routes, "
                       "the health checks, /metrics); a route that bills a call or shows "
                       "spend needs a key", v);
    if (star != NULL && star[1] != '\0')
        return cy_fail(ld, item, key, "'%.80s': '*' may only end an entry", v);
    return route_list_add(l, v, NULL) < 0 ? cy_fail(ld, item, key, "out of memory") : 0;
}

static int parse_list(struct loader *ld, yaml_node_t *gs, const char *name, enum list_kind kind,
                      struct route_list *l)
{
    char key[96];
    snprintf(key, sizeof(key), "general_settings.%s", name);
    yaml_node_t *n = cy_map_get(ld, gs, name);
    if (n == NULL)
        return 0;
    if (n->type != YAML_SEQUENCE_NODE)
        return cy_fail(ld, n, key, "must be a list of routes");
    l->set = true;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++)
        if (parse_entry(ld, yaml_document_get_node(&ld->doc, *it), key, kind, l) < 0)
            return -1;
    return 0;
}

int config_parse_access(struct loader *ld, yaml_node_t *gs, struct route_access *ra)
{
    return parse_list(ld, gs, "allowed_routes", EXACT, &ra->allowed) < 0 ||
                   parse_list(ld, gs, "admin_only_routes", PATTERN, &ra->admin_only) < 0 ||
                   parse_list(ld, gs, "public_routes", PUBLIC, &ra->public_routes) < 0
               ? -1
               : 0;
}
