/* router.c - model groups of the config and the choice of a deployment.
 *
 * A model group is every model_list entry with the same model_name. For
 * now the choice is plain round robin; weights, retries, fallbacks and
 * cooldowns belong here too.
 */
#include "router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"

struct group {
    const struct deployment **members;
    size_t n;
    size_t next; /* round robin cursor */
};

struct router {
    struct strmap *groups; /* model_name -> struct group */
    char *names;
};

static void group_free(void *p)
{
    struct group *g = p;
    free(g->members);
    free(g);
}

static int add_member(struct router *r, const struct deployment *d)
{
    struct group *g = strmap_get(r->groups, d->model_name);
    int err = 0;
    if (g == NULL) {
        if ((g = calloc(1, sizeof(*g))) == NULL)
            return -1;
        strmap_put(r->groups, d->model_name, g, &err);
        if (err < 0) {
            free(g);
            return -1;
        }
    }
    const struct deployment **m = realloc(g->members, (g->n + 1) * sizeof(*m));
    if (m == NULL)
        return -1;
    m[g->n++] = d;
    g->members = m;
    return 0;
}

/* Builds "a, b" in config order, each group once. */
static int build_names(struct router *r, const struct config *cfg)
{
    size_t cap = 1;
    for (size_t i = 0; i < cfg->n_deployments; i++)
        cap += strlen(cfg->deployments[i].model_name) + 2;
    if ((r->names = calloc(1, cap)) == NULL)
        return -1;
    for (size_t i = 0; i < cfg->n_deployments; i++) {
        const char *name = cfg->deployments[i].model_name;
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = strcmp(cfg->deployments[k].model_name, name) == 0;
        if (seen)
            continue;
        if (r->names[0] != '\0')
            strcat(r->names, ", ");
        strcat(r->names, name);
    }
    return 0;
}

struct router *router_new(const struct config *cfg, char *err, size_t errlen)
{
    struct router *r = calloc(1, sizeof(*r));
    if (r == NULL || (r->groups = strmap_new()) == NULL)
        goto oom;
    for (size_t i = 0; i < cfg->n_deployments; i++) {
        if (add_member(r, &cfg->deployments[i]) < 0)
            goto oom;
    }
    if (build_names(r, cfg) < 0)
        goto oom;
    return r;
oom:
    snprintf(err, errlen, "out of memory");
    router_free(r);
    return NULL;
}

void router_free(struct router *r)
{
    if (r == NULL)
        return;
    strmap_free(r->groups, group_free);
    free(r->names);
    free(r);
}

const struct deployment *router_pick(struct router *r, const char *group)
{
    struct group *g = strmap_get(r->groups, group);
    if (g == NULL)
        return NULL;
    const struct deployment *d = g->members[g->next % g->n];
    g->next++;
    return d;
}

const char *router_group_names(const struct router *r)
{
    return r->names;
}
