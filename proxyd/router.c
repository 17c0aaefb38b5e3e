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
    const char **order;    /* group names in config order */
    size_t n_groups;
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
        r->order[r->n_groups++] = d->model_name;
    }
    const struct deployment **m = realloc(g->members, (g->n + 1) * sizeof(*m));
    if (m == NULL)
        return -1;
    m[g->n++] = d;
    g->members = m;
    return 0;
}

/* Builds "a, b" from the groups in config order. */
static int build_names(struct router *r)
{
    size_t cap = 1;
    for (size_t i = 0; i < r->n_groups; i++)
        cap += strlen(r->order[i]) + 2;
    if ((r->names = calloc(1, cap)) == NULL)
        return -1;
    for (size_t i = 0; i < r->n_groups; i++) {
        if (i > 0)
            strcat(r->names, ", ");
        strcat(r->names, r->order[i]);
    }
    return 0;
}

struct router *router_new(const struct config *cfg, char *err, size_t errlen)
{
    struct router *r = calloc(1, sizeof(*r));
    if (r == NULL || (r->groups = strmap_new()) == NULL ||
        (r->order = calloc(cfg->n_deployments, sizeof(*r->order))) == NULL)
        goto oom;
    for (size_t i = 0; i < cfg->n_deployments; i++) {
        if (add_member(r, &cfg->deployments[i]) < 0)
            goto oom;
    }
    if (build_names(r) < 0)
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
    free(r->order);
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

size_t router_group_count(const struct router *r)
{
    return r->n_groups;
}

const char *router_group_name(const struct router *r, size_t i)
{
    return r->order[i];
}
