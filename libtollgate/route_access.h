/* route_access.h - general_settings' route controls, as LiteLLM applies them:
 *
 *   allowed_routes     the only routes the proxy serves. Checked before the
 *                      key is even read, for every caller, the master key
 *                      included (LiteLLM: auth_utils.py pre_db_read_auth_checks).
 *   admin_only_routes  routes only an admin may call: the master key or a key
 *                      whose internal user is a proxy_admin (LiteLLM:
 *                      route_checks.py custom_admin_only_route_check, reached
 *                      for non-admins only).
 *   public_routes      routes served without a key (LiteLLM: auth_utils.py
 *                      route_in_additonal_public_routes, checked after
 *                      allowed_routes and before the key; admin_only_routes
 *                      then does not apply). Tollgate serves without a key
 *                      only what answers the same to every caller:
 *                      /spend/calculate, and the routes that need no key
 *                      anyway; public_routes may list those and LiteLLM's
 *                      own public routes (LiteLLMRoutes.public_routes, which
 *                      Tollgate either serves without a key or does not have),
 *                      and the loader refuses any other entry.
 *
 * They apply to the routes that need a key; the health checks, /metrics and
 * the Usage page's files need none and are never refused here (in LiteLLM
 * they do not go through its key check either).
 *
 * Entries are matched as LiteLLM does: a route compares exactly (with and
 * without /v1 are different routes). Tollgate rules where LiteLLM's docs and
 * its code differ: `LiteLLMRoutes.<group>` stands for that route group of
 * LiteLLM's (its docs' example lists LiteLLMRoutes.public_routes; its code
 * compares the name as a plain string, which no route equals); in
 * admin_only_routes an entry ending in `*` covers every route starting with
 * what precedes it (its docs; its code compares exactly). allowed_routes
 * takes no `*` (LiteLLM documents it as an exact-match list, where such an
 * entry would match nothing): the loader refuses it rather than guess.
 */
#ifndef TG_ROUTE_ACCESS_H
#define TG_ROUTE_ACCESS_H

#include <stdbool.h>
#include <stddef.h>

/* LiteLLM's answers (its HTTPException details), status 403. */
#define ROUTE_ACCESS_NOT_ALLOWED_FMT "Access forbidden: Route %s not allowed"
#define ROUTE_ACCESS_ADMIN_ONLY_FMT \
    "user not allowed to access this route. Route=%s is an admin only route"

struct route_group;

/* One entry of a list: a route (maybe ending in '*') or a route group. */
struct route_rule {
    char *route;                     /* owned; NULL for a group */
    const struct route_group *group; /* static; NULL for a route */
};

struct route_list {
    struct route_rule *rules; /* owned */
    size_t n;
    bool set; /* the key was in the file: an empty allowed_routes lets nothing through */
};

struct route_access {
    struct route_list allowed;    /* general_settings.allowed_routes */
    struct route_list admin_only; /* general_settings.admin_only_routes */
    struct route_list public_routes; /* general_settings.public_routes */
};

/* LiteLLM's route group `name` (without "LiteLLMRoutes."), or NULL. */
const struct route_group *route_group_find(const char *name);
const char *route_group_name(const struct route_group *g);
/* Is path one of the group's routes? */
bool route_group_has(const struct route_group *g, const char *path);

/* Does path match pattern: equal, or pattern ends in '*' and path starts
 * with what precedes it, or each {name} of pattern stands for one or more
 * characters other than '/' (LiteLLM's route patterns). */
bool route_pattern_match(const char *pattern, const char *path);

/* Appends a rule (copies route); -1 out of memory. */
int route_list_add(struct route_list *l, const char *route, const struct route_group *group);
/* Does any rule of l match path? */
bool route_list_match(const struct route_list *l, const char *path);

/* May path be called at all (allowed_routes unset, or path listed)? */
bool route_access_allows(const struct route_access *ra, const char *path);
/* Is path one only an admin may call? */
bool route_access_admin_only(const struct route_access *ra, const char *path);
/* Is path served without a key? */
bool route_access_public(const struct route_access *ra, const char *path);
/* May public_routes list route (see above)? */
bool route_access_may_be_public(const char *route);

void route_access_free(struct route_access *ra);

#endif
