/* route_access.c - matching routes against general_settings' route lists, and
 * LiteLLM's route groups (LiteLLMRoutes in its proxy/_types.py).
 *
 * A group holds LiteLLM's entries that can match a route Tollgate serves:
 * the others name routes Tollgate does not have (which answer 404 whatever
 * a list says), so leaving them out changes no answer. Entries keep
 * LiteLLM's spelling, placeholders and wildcards, and are matched as its
 * RouteChecks.check_route_access does (exact, "prefix*", "{name}").
 * public_routes is LiteLLM's in full: it names what public_routes may list.
 */
#include "route_access.h"

#include <stdlib.h>
#include <string.h>

struct route_group {
    const char *name;
    const char *const *routes; /* NULL-terminated */
};

#define OPENAI_ROUTES                                                                         \
    "/openai/deployments/{model}/chat/completions", "/chat/completions",                      \
        "/v1/chat/completions", "/openai/deployments/{model}/completions", "/completions",   \
        "/v1/completions", "/openai/deployments/{model}/embeddings", "/embeddings",          \
        "/v1/embeddings", "/images/generations", "/v1/images/generations", "/models",        \
        "/v1/models", "/responses", "/v1/responses", "/responses/{response_id}",              \
        "/v1/responses/{response_id}", "/responses/{response_id}/input_items",                \
        "/v1/responses/{response_id}/input_items", "/responses/{response_id}/cancel",         \
        "/v1/responses/{response_id}/cancel"
#define ANTHROPIC_ROUTES "/v1/messages", "/v1/messages/count_tokens"
#define KEY_MANAGEMENT_ROUTES                                                                 \
    "/key/generate", "/key/update", "/key/delete", "/key/info", "/key/regenerate",            \
        "/key/{key_id}/regenerate", "/key/list", "/key/block", "/key/unblock",                \
        "/team/daily/activity", "/spend/logs"

static const char *const OPENAI[] = {OPENAI_ROUTES, NULL};
static const char *const ANTHROPIC[] = {ANTHROPIC_ROUTES, NULL};
/* + LiteLLM's pass-through prefix for /openai/, which takes in every Azure-style route */
static const char *const LLM_API[] = {OPENAI_ROUTES, ANTHROPIC_ROUTES, "/openai/*", NULL};
static const char *const INFO[] = {"/key/info", "/team/info", "/user/info", "/key/list",
                                   "/models", "/v1/models", NULL};
static const char *const KEY_MANAGEMENT[] = {KEY_MANAGEMENT_ROUTES, NULL};
/* "/team/{team_id}" is LiteLLM's too: it covers every /team/<word> route */
static const char *const MANAGEMENT[] = {
    "/user/new", "/user/update", "/user/delete", "/user/info", "/user/daily/activity",
    "/team/new", "/team/update", "/team/{team_id}", "/team/delete", "/team/info",
    "/team/daily/activity", KEY_MANAGEMENT_ROUTES, NULL};
static const char *const SPEND_TRACKING[] = {"/spend/tags", "/spend/calculate", "/spend/logs",
                                             NULL};
static const char *const GLOBAL_SPEND_TRACKING[] = {
    "/global/spend/keys", "/global/spend/end_users", "/global/spend/models",
    "/global/spend/report", "/global/spend/tags", NULL};
/* in full: what public_routes may list (route_access_may_be_public) */
static const char *const PUBLIC[] = {
    "/routes", "/", "/health/liveliness", "/health/liveness", "/test", "/config/yaml",
    "/litellm/.well-known/litellm-ui-config", "/.well-known/litellm-ui-config",
    "/public/model_hub", "/public/model_hub/info", "/public/agent_hub", "/public/mcp_hub",
    "/public/skill_hub", "/public/litellm_model_cost_map", NULL};
/* Tollgate's keyed routes whose answer is the same for every caller: they may be public */
static const char *const KEYLESS_OK[] = {"/spend/calculate", NULL};
/* Tollgate's routes that need no key anyway */
static const char *const OPEN_ANYWAY[] = {"/health/readiness", "/metrics", NULL};
static const char *const MASTER_KEY_ONLY[] = {"/global/spend/reset", NULL};

static const struct route_group GROUPS[] = {
    {"openai_routes", OPENAI},
    {"anthropic_routes", ANTHROPIC},
    {"llm_api_routes", LLM_API},
    {"info_routes", INFO},
    {"key_management_routes", KEY_MANAGEMENT},
    {"management_routes", MANAGEMENT},
    {"spend_tracking_routes", SPEND_TRACKING},
    {"global_spend_tracking_routes", GLOBAL_SPEND_TRACKING},
    {"public_routes", PUBLIC},
    {"master_key_only_routes", MASTER_KEY_ONLY},
};

const struct route_group *route_group_find(const char *name)
{
    for (size_t i = 0; i < sizeof(GROUPS) / sizeof(GROUPS[0]); i++)
        if (strcmp(GROUPS[i].name, name) == 0)
            return &GROUPS[i];
    return NULL;
}

const char *route_group_name(const struct route_group *g)
{
    return g->name;
}

bool route_group_has(const struct route_group *g, const char *path)
{
    for (const char *const *r = g->routes; *r != NULL; r++)
        if (route_pattern_match(*r, path))
            return true;
    return false;
}

/* A placeholder is LiteLLM's [^/]+; in its patterns one is always followed
 * by '/' or the end, so taking every character up to the next '/' is the
 * only way it can match. */
bool route_pattern_match(const char *pattern, const char *path)
{
    size_t plen = strlen(pattern);
    if (plen > 0 && pattern[plen - 1] == '*')
        return strncmp(path, pattern, plen - 1) == 0;
    const char *p = pattern, *s = path;
    while (*p != '\0') {
        const char *close = *p == '{' ? strchr(p, '}') : NULL;
        if (close != NULL) {
            size_t n = strcspn(s, "/");
            if (n == 0)
                return false;
            p = close + 1;
            s += n;
        } else if (*p++ != *s++) {
            return false;
        }
    }
    return *s == '\0';
}

int route_list_add(struct route_list *l, const char *route, const struct route_group *group)
{
    struct route_rule *grown = realloc(l->rules, (l->n + 1) * sizeof(*grown));
    if (grown == NULL)
        return -1;
    l->rules = grown;
    char *copy = route != NULL ? strdup(route) : NULL;
    if (route != NULL && copy == NULL)
        return -1;
    l->rules[l->n++] = (struct route_rule){copy, group};
    return 0;
}

bool route_list_match(const struct route_list *l, const char *path)
{
    for (size_t i = 0; i < l->n; i++) {
        const struct route_rule *r = &l->rules[i];
        if (r->group != NULL ? route_group_has(r->group, path)
                             : route_pattern_match(r->route, path))
            return true;
    }
    return false;
}

static bool listed(const char *const *routes, const char *route)
{
    for (; *routes != NULL; routes++)
        if (strcmp(*routes, route) == 0)
            return true;
    return false;
}

bool route_access_may_be_public(const char *route)
{
    return listed(PUBLIC, route) || listed(KEYLESS_OK, route) || listed(OPEN_ANYWAY, route);
}

bool route_access_allows(const struct route_access *ra, const char *path)
{
    return !ra->allowed.set || route_list_match(&ra->allowed, path);
}

bool route_access_admin_only(const struct route_access *ra, const char *path)
{
    return route_list_match(&ra->admin_only, path);
}

bool route_access_public(const struct route_access *ra, const char *path)
{
    return route_list_match(&ra->public_routes, path);
}

static void list_free(struct route_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->rules[i].route);
    free(l->rules);
    *l = (struct route_list){0};
}

void route_access_free(struct route_access *ra)
{
    list_free(&ra->allowed);
    list_free(&ra->admin_only);
    list_free(&ra->public_routes);
}
