/* router.c - model groups of the config and the choice of a deployment.
 *
 * A model group is every model_list entry with the same model_name. The
 * routing strategy (router_pick.c) chooses among the deployments not cooling
 * down and not yet tried by this request (if every one is cooling down, among
 * all: better a doubtful answer than none); when each of them is at its
 * limits (max_parallel_requests, rpm, tpm) the request goes to the group's
 * fallbacks, else is refused. A deployment that fails allowed_fails times within a minute cools
 * down for cooldown_time. After a failure a request tries the group's other
 * deployments num_retries times, then each fallback group in order.
 *
 * As LiteLLM's Router: a name may be an alias of a group (model_group_alias);
 * tag routing and the context window narrow a group to the deployments a
 * request may reach (route_filter.h) before the strategy chooses; the
 * fallback lists are the asked name's (its fallbacks, else default_fallbacks;
 * context_window_fallbacks and content_policy_fallbacks after those errors:
 * router_switch), each group of a list tried in order, the asked one skipped,
 * and so is one the caller's key may not call (route_filter_may_use;
 * LiteLLM's enforce_fallback_model_access, always on here): with none left
 * the request ends with the error it had.
 */
#include "router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "route_filter.h"

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
    struct pick *pick;                /* the strategy and its measures */
    const struct deployment **cands;  /* scratch for draw(), n_deployments long */
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
        (r->health = calloc(cfg->n_deployments, sizeof(*r->health))) == NULL ||
        (r->cands = calloc(cfg->n_deployments, sizeof(*r->cands))) == NULL ||
        (r->pick = pick_new(cfg)) == NULL)
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

int router_share_usage(struct router *r, struct event_base *base, char *err, size_t errlen)
{
    if (pick_share_usage(r->pick, base) == 0)
        return 0;
    snprintf(err, errlen, "out of memory");
    return -1;
}

void router_free(struct router *r)
{
    if (r == NULL)
        return;
    strmap_free(r->groups, group_free);
    pick_free(r->pick);
    free(r->cands);
    free(r->health);
    free(r->order);
    free(r->names);
    free(r);
}

/* Tried already by this request, or one it may not reach (route_filter.h):
 * no candidate either way. */
static bool tried(const struct route_state *st, const struct deployment *d)
{
    if (!route_filter_admits(st, d))
        return true;
    for (size_t i = 0; i < st->n_tried; i++) {
        if (st->tried[i] == d)
            return true;
    }
    return false;
}

/* The strategy's choice among untried members; cooling ones only if
 * nothing else. NULL with st->full when each candidate is at its limits. */
static const struct deployment *draw(struct router *r, const struct group *g,
                                     struct route_state *st)
{
    int64_t now = clock_ms();
    for (int pass = 0; pass < 2; pass++) {
        size_t n = 0;
        for (size_t i = 0; i < g->n; i++) {
            const struct deployment *d = g->members[i];
            bool cooling = r->health[d - r->cfg->deployments].cool_until_ms > now;
            if (!tried(st, d) && (pass == 1 || !cooling))
                r->cands[n++] = d;
        }
        if (n == 0)
            continue;
        if (st->probe) /* visits them all, whatever their limits: no choice to make */
            return r->cands[0];
        const struct deployment *d = pick_choose(r->pick, r->cands, n, &st->req, &r->seed);
        st->full = st->full || d == NULL;
        return d;
    }
    return NULL;
}

/* The group name stands for: a model_name, or an alias's group. */
static const struct group *group_of(const struct router *r, const char *name)
{
    const struct group *g = strmap_get(r->groups, name);
    const struct group_config *gc = &r->cfg->groups;
    for (size_t i = 0; g == NULL && i < gc->n_aliases; i++) {
        if (strcmp(gc->aliases[i].alias, name) == 0)
            g = strmap_get(r->groups, gc->aliases[i].group);
    }
    return g;
}

static const struct deployment *attempt(struct router *r, struct route_state *st)
{
    const struct group *g = group_of(r, st->group);
    if (g != NULL)
        route_filter_group(st, &r->cfg->groups, g->members, g->n);
    const struct deployment *d = g != NULL && st->n_tried < ROUTER_MAX_ATTEMPTS ? draw(r, g, st)
                                                                               : NULL;
    if (d != NULL) {
        st->tried[st->n_tried++] = d;
        st->attempts_in_group++;
    }
    return d;
}

bool router_has_group(const struct router *r, const char *name)
{
    return group_of(r, name) != NULL;
}

const char *router_resolve(const struct router *r, const char *name)
{
    const struct group_config *gc = &r->cfg->groups;
    for (size_t i = 0; i < gc->n_aliases; i++) {
        if (strcmp(gc->aliases[i].alias, name) == 0)
            return gc->aliases[i].group;
    }
    return name;
}

const struct deployment *router_first(struct router *r, const char *group,
                                      struct route_state *st)
{
    *st = (struct route_state){.group = group, .asked = group, .list_of = group, .probe = true};
    const struct deployment *d = attempt(r, st);
    return d == NULL && st->full ? router_next(r, st) : d;
}

bool router_counts_prompt(const struct router *r)
{
    return pick_counts_prompt(r->pick);
}

static const struct fallback *entry_of(const struct fallback *fb, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(fb[i].group, name) == 0)
            return &fb[i];
    }
    return NULL;
}

/* The groups of name's fallback list of this kind (*n 0: it has none). */
static char *const *fallback_list(const struct router *r, enum route_fallback kind,
                                  const char *name, size_t *n)
{
    const struct group_config *gc = &r->cfg->groups;
    const struct fallback *fb =
        kind == ROUTE_FALLBACK_CONTEXT_WINDOW
            ? entry_of(gc->context_window, gc->n_context_window, name)
        : kind == ROUTE_FALLBACK_CONTENT_POLICY
            ? entry_of(gc->content_policy, gc->n_content_policy, name)
            : entry_of(r->cfg->router.fallbacks, r->cfg->router.n_fallbacks, name);
    if (fb != NULL) {
        *n = fb->n;
        return fb->to;
    }
    /* default_fallbacks: LiteLLM's {"*": [...]}, for a group without fallbacks of its own */
    *n = kind == ROUTE_FALLBACK_ANY ? gc->n_default_fallbacks : 0;
    return gc->default_fallbacks;
}

/* A deployment of the next group of the list walked that has one for st
 * (a probe goes on with the asked name's other lists); NULL at the end. */
static const struct deployment *next_fallback(struct router *r, struct route_state *st)
{
    for (;;) {
        size_t n;
        char *const *to = fallback_list(r, st->kind, st->list_of, &n);
        while (st->fallback_next < n) {
            const char *name = to[st->fallback_next++];
            if (group_of(r, name) == group_of(r, st->list_of))
                continue; /* as LiteLLM's run_async_fallback: not the group that failed */
            if (!route_filter_may_use(st, name))
                continue; /* a group the key may not call is no fallback of its */
            st->group = name;
            st->attempts_in_group = 0;
            st->in_fallback = true;
            const struct deployment *d = attempt(r, st);
            if (d != NULL)
                return d;
        }
        if (!st->probe || st->kind == ROUTE_FALLBACK_CONTENT_POLICY)
            return NULL;
        st->kind = (enum route_fallback)(st->kind + 1);
        st->fallback_next = 0;
    }
}

const struct deployment *router_next(struct router *r, struct route_state *st)
{
    const struct deployment *d = NULL;
    /* a probe (router_first: a reservation's worst case) visits every member */
    if ((st->probe || st->attempts_in_group <= r->cfg->router.num_retries) &&
        (d = attempt(r, st)) != NULL)
        return d;
    return next_fallback(r, st);
}

const struct deployment *router_switch(struct router *r, struct route_state *st,
                                       enum route_fallback kind)
{
    size_t n;
    const char *name = st->in_fallback ? st->group : st->asked;
    if (st->kind == kind)
        return next_fallback(r, st); /* a group of this very list failed alike: the next */
    (void)fallback_list(r, kind, name, &n);
    if (n == 0)
        return NULL;
    st->kind = kind;
    st->list_of = name;
    st->fallback_next = 0;
    return next_fallback(r, st);
}

/* Is the prompt too long for every deployment of g, and has the asked name
 * context_window_fallbacks to go to instead? */
static bool too_long(const struct router *r, const struct route_state *st,
                     const struct group *g)
{
    size_t n;
    (void)fallback_list(r, ROUTE_FALLBACK_CONTEXT_WINDOW, st->asked, &n);
    return n > 0 && st->req.prompt_tokens > 0 && !route_filter_fits(st, g->members, g->n);
}

/* A too long prompt: the first group of the context-window fallbacks that
 * has a deployment large enough; NULL (st as it was) when none has. */
static const struct deployment *context_window_first(struct router *r, struct route_state *st)
{
    struct route_state before = *st;
    st->fit_check = true;
    st->kind = ROUTE_FALLBACK_CONTEXT_WINDOW;
    const struct deployment *d = next_fallback(r, st);
    if (d == NULL)
        *st = before; /* the upstream decides, as without the check */
    return d;
}

const struct deployment *router_start(struct router *r, const char *name,
                                      const struct route_request *rq,
                                      const struct route_match *m, struct route_state *st,
                                      enum route_refusal *why)
{
    const struct group *g = group_of(r, name);
    *st = (struct route_state){.group = name, .asked = name, .list_of = name};
    if (rq != NULL)
        st->req = *rq;
    if (m != NULL) {
        st->tags = m->tags;
        st->n_tags = m->n_tags;
        st->may_use = m->may_use;
        st->may_use_arg = m->may_use_arg;
    }
    *why = ROUTE_UNKNOWN_MODEL;
    if (g == NULL)
        return NULL;
    const struct deployment *d = too_long(r, st, g) ? context_window_first(r, st) : NULL;
    if (d == NULL && (d = attempt(r, st)) == NULL) {
        /* tags matching none of the group, or each deployment at its limits:
         * the fallbacks, as LiteLLM's after its error */
        st->tags_refused = st->tag_mode == ROUTE_TAGS_NONE;
        d = router_next(r, st);
    }
    *why = st->tags_refused ? ROUTE_NO_TAG_MATCH : ROUTE_UNKNOWN_MODEL;
    return d;
}

void router_pass_over(struct route_state *st)
{
    if (st->attempts_in_group > 0)
        st->attempts_in_group--;
}

bool router_admits(const struct router *r, const struct route_state *st,
                   const struct deployment *d)
{
    struct route_state as = *st;
    const struct group *g = group_of(r, d->model_name);
    as.fit_check = false;
    route_filter_group(&as, &r->cfg->groups, g->members, g->n);
    return route_filter_admits(&as, d);
}

bool router_counts_prompt_for(const struct router *r, const char *name)
{
    size_t n;
    const struct group *g = group_of(r, name);
    if (router_counts_prompt(r))
        return true;
    (void)fallback_list(r, ROUTE_FALLBACK_CONTEXT_WINDOW, name, &n);
    for (size_t i = 0; g != NULL && n > 0 && i < g->n; i++) {
        if (g->members[i]->max_input_tokens > 0)
            return true;
    }
    return false;
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

void router_attempt_start(struct router *r, const struct deployment *d)
{
    pick_attempt_start(r->pick, d);
}

void router_attempt_end(struct router *r, const struct deployment *d, bool timed_out)
{
    pick_attempt_end(r->pick, d, timed_out);
}

void router_attempt_sample(struct router *r, const struct deployment *d,
                           const struct route_sample *s)
{
    pick_attempt_sample(r->pick, d, s);
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
