/* route_filter.c - tag routing, the context window and the caller's model
 * access on fallbacks (route_filter.h).
 *
 * Tag routing follows LiteLLM's get_deployments_for_tag: with
 * tag_filtering_match_any (the default) a deployment matches when it shares
 * one tag with the request, else when it carries every tag of the request. A
 * tagged request that matches no deployment goes to the ones tagged
 * "default"; with none of those it is refused (LiteLLM's 401). An untagged
 * request goes to the "default" ones, or anywhere when there are none.
 * Unlike LiteLLM, the sets are taken over the whole group, cooling
 * deployments included: a deployment cooling down does not send a tagged
 * request to the "default" ones (the draw still prefers those not cooling).
 */
#include "route_filter.h"

#include <stdio.h>
#include <string.h>

#include "router.h"

static bool has_tag(const struct deployment *d, const char *tag)
{
    for (size_t i = 0; i < d->n_tags; i++) {
        if (strcmp(d->tags[i], tag) == 0)
            return true;
    }
    return false;
}

/* LiteLLM's is_valid_deployment_tag. */
static bool matches(const struct route_state *st, const struct deployment *d)
{
    size_t common = 0;
    for (size_t i = 0; i < st->n_tags; i++)
        common += has_tag(d, st->tags[i]);
    return st->match_any ? common > 0 : st->n_tags > 0 && common == st->n_tags;
}

/* The group's enable_tag_filtering: a member's model_info, else the router's. */
static bool filtering(const struct group_config *g, const struct deployment *const *members,
                      size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (members[i]->tag_filtering >= 0)
            return members[i]->tag_filtering != 0;
    }
    return g->tag_filtering;
}

void route_filter_group(struct route_state *st, const struct group_config *g,
                        const struct deployment *const *members, size_t n)
{
    bool matched = false, defaults = false;
    st->match_any = g->tag_match_any;
    st->tag_mode = ROUTE_TAGS_ALL;
    if (st->probe || !filtering(g, members, n))
        return;
    for (size_t i = 0; i < n; i++) {
        matched = matched || (st->n_tags > 0 && matches(st, members[i]));
        defaults = defaults || has_tag(members[i], "default");
    }
    if (matched)
        st->tag_mode = ROUTE_TAGS_MATCHED;
    else if (defaults)
        st->tag_mode = ROUTE_TAGS_DEFAULT;
    else if (st->n_tags > 0)
        st->tag_mode = ROUTE_TAGS_NONE;
}

static bool fits(const struct route_state *st, const struct deployment *d)
{
    return d->max_input_tokens <= 0 || st->req.prompt_tokens <= d->max_input_tokens;
}

bool route_filter_admits(const struct route_state *st, const struct deployment *d)
{
    if (st->fit_check && !fits(st, d))
        return false;
    switch (st->tag_mode) {
    case ROUTE_TAGS_MATCHED: return matches(st, d);
    case ROUTE_TAGS_DEFAULT: return has_tag(d, "default");
    case ROUTE_TAGS_NONE: return false;
    default: return true;
    }
}

bool route_filter_fits(const struct route_state *st, const struct deployment *const *members,
                       size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (fits(st, members[i]))
            return true;
    }
    return false;
}

bool route_filter_may_use(const struct route_state *st, const char *name)
{
    return st->may_use == NULL || st->may_use(st->may_use_arg, name);
}

void route_filter_refusal(const struct route_state *st, char *buf, size_t len)
{
    int used = snprintf(buf, len, "Not allowed to access model due to tags configuration. "
                        "Passed model=%s and tags=[", st->asked);
    for (size_t i = 0; used >= 0 && (size_t)used < len && i < st->n_tags; i++)
        used += snprintf(buf + used, len - (size_t)used, "%s'%s'", i > 0 ? ", " : "",
                         st->tags[i]);
    if (used >= 0 && (size_t)used < len)
        snprintf(buf + used, len - (size_t)used, "]");
}
