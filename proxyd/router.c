/* router.c - model groups of the config and the choice of a deployment.
 *
 * A model group is every model_list entry with the same model_name.
 * simple-shuffle: a deployment is drawn at random in proportion to its
 * weight, among those not cooling down and not yet tried by this request
 * (if every one is cooling down, among all: better a doubtful answer than
 * none). A deployment that fails allowed_fails times within a minute cools
 * down for cooldown_time. After a failure a request tries the group's other
 * deployments num_retries times, then each fallback group in order.
 */
#include "router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"

#include "strmap.h"

#define FAIL_WINDOW_MS 60000

struct group {
    const struct deployment **members;
    size_t n;
};

/* Health of one deployment (index = position in cfg->deployments). */
struct health {
    int fails;
    int64_t window_start_ms, cool_until_ms;
};

struct router {
    const struct config *cfg;
    struct health *health;
    unsigned seed;
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

/* Every group named in fallbacks must exist. */
static int check_fallbacks(const struct router *r, const struct config *cfg, char *err,
                           size_t errlen)
{
    for (size_t i = 0; i < cfg->router.n_fallbacks; i++) {
        const struct fallback *fb = &cfg->router.fallbacks[i];
        for (size_t k = 0; k <= fb->n; k++) {
            const char *g = k == 0 ? fb->group : fb->to[k - 1];
            if (!router_has_group(r, g)) {
                snprintf(err, errlen, "%s: fallbacks: %s is not a model_name of model_list",
                         cfg->path, g);
                return -1;
            }
        }
    }
    return 0;
}

struct router *router_new(const struct config *cfg, char *err, size_t errlen)
{
    struct router *r = calloc(1, sizeof(*r));
    if (r == NULL || (r->groups = strmap_new()) == NULL ||
        (r->order = calloc(cfg->n_deployments, sizeof(*r->order))) == NULL ||
        (r->health = calloc(cfg->n_deployments, sizeof(*r->health))) == NULL)
        goto oom;
    r->cfg = cfg;
    r->seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)r;
    for (size_t i = 0; i < cfg->n_deployments; i++) {
        if (add_member(r, &cfg->deployments[i]) < 0)
            goto oom;
    }
    if (build_names(r) < 0)
        goto oom;
    if (check_fallbacks(r, cfg, err, errlen) < 0) {
        router_free(r);
        return NULL;
    }
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
    free(r->health);
    free(r->order);
    free(r->names);
    free(r);
}

static bool tried(const struct route_state *st, const struct deployment *d)
{
    for (size_t i = 0; i < st->n_tried; i++) {
        if (st->tried[i] == d)
            return true;
    }
    return false;
}

/* Weighted draw among untried members; cooling ones only if nothing else. */
static const struct deployment *draw(struct router *r, const struct group *g,
                                     const struct route_state *st)
{
    int64_t now = clock_ms();
    for (int pass = 0; pass < 2; pass++) {
        double total = 0;
        for (size_t i = 0; i < g->n; i++) {
            const struct deployment *d = g->members[i];
            bool cooling = r->health[d - r->cfg->deployments].cool_until_ms > now;
            if (!tried(st, d) && (pass == 1 || !cooling))
                total += d->weight;
        }
        if (total <= 0)
            continue;
        double x = (double)rand_r(&r->seed) / ((double)RAND_MAX + 1.0) * total;
        const struct deployment *last = NULL;
        for (size_t i = 0; i < g->n; i++) {
            const struct deployment *d = g->members[i];
            bool cooling = r->health[d - r->cfg->deployments].cool_until_ms > now;
            if (tried(st, d) || (pass == 0 && cooling))
                continue;
            last = d;
            if ((x -= d->weight) < 0)
                return d;
        }
        return last;
    }
    return NULL;
}

static const struct deployment *attempt(struct router *r, struct route_state *st)
{
    const struct group *g = strmap_get(r->groups, st->group);
    const struct deployment *d = g != NULL && st->n_tried < ROUTER_MAX_ATTEMPTS ? draw(r, g, st)
                                                                               : NULL;
    if (d != NULL) {
        st->tried[st->n_tried++] = d;
        st->attempts_in_group++;
    }
    return d;
}

bool router_has_group(const struct router *r, const char *group)
{
    return strmap_get(r->groups, group) != NULL;
}

const struct deployment *router_first(struct router *r, const char *group,
                                      struct route_state *st)
{
    *st = (struct route_state){.group = group};
    return attempt(r, st);
}

static const struct fallback *fallbacks_of(const struct router *r, const char *group)
{
    for (size_t i = 0; i < r->cfg->router.n_fallbacks; i++) {
        if (strcmp(r->cfg->router.fallbacks[i].group, group) == 0)
            return &r->cfg->router.fallbacks[i];
    }
    return NULL;
}

const struct deployment *router_next(struct router *r, struct route_state *st)
{
    const struct deployment *d = NULL;
    if (st->attempts_in_group <= r->cfg->router.num_retries && (d = attempt(r, st)) != NULL)
        return d;
    /* fallbacks belong to the request's own group: the first tried */
    const struct fallback *fb = fallbacks_of(r, st->tried[0]->model_name);
    while (fb != NULL && st->fallback_next < fb->n) {
        st->group = fb->to[st->fallback_next++];
        st->attempts_in_group = 0;
        if ((d = attempt(r, st)) != NULL)
            return d;
    }
    return NULL;
}

void router_report(struct router *r, const struct deployment *d, bool ok)
{
    struct health *h = &r->health[d - r->cfg->deployments];
    int64_t now = clock_ms();
    if (ok) {
        h->fails = 0;
        return;
    }
    if (now - h->window_start_ms > FAIL_WINDOW_MS) {
        h->window_start_ms = now;
        h->fails = 0;
    }
    if (++h->fails >= r->cfg->router.allowed_fails && h->cool_until_ms <= now) {
        h->cool_until_ms = now + r->cfg->router.cooldown_ms;
        log_warn("deployment %s of %s cools down for %d ms after %d failures", d->model,
                 d->model_name, r->cfg->router.cooldown_ms, h->fails);
    }
}

size_t router_group_count(const struct router *r)
{
    return r->n_groups;
}

const char *router_group_name(const struct router *r, size_t i)
{
    return r->order[i];
}

const char *router_group_names(const struct router *r)
{
    return r->names;
}
