/* route_filter.h - which deployments of a model group one request may
 * reach, before a strategy chooses among them: LiteLLM's tag routing
 * (router_strategy/tag_based_routing.py, get_deployments_for_tag) and the
 * context window (a prompt longer than a deployment's max_input_tokens),
 * and the caller's model access for the fallback groups.
 * What it decides is kept in the request's struct route_state (router.h);
 * router.c calls route_filter_group before each draw from a group, and a
 * deployment route_filter_admits refuses is never drawn. */
#ifndef PROXYD_ROUTE_FILTER_H
#define PROXYD_ROUTE_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct route_state;

/* Sets st's tag filter for the group about to be drawn from: with tag
 * filtering on for the group (model_info.enable_tag_filtering of a member,
 * else router_settings'), a tagged request reaches the members whose tags
 * match, else those tagged "default", else none; an untagged one the members
 * tagged "default", else all. */
void route_filter_group(struct route_state *st, const struct group_config *g,
                        const struct deployment *const *members, size_t n);

/* May st's request go to d (tags, and the prompt's size when checked)? */
bool route_filter_admits(const struct route_state *st, const struct deployment *d);

/* Is some member's context window (max_input_tokens, where known) large
 * enough for st's prompt? */
bool route_filter_fits(const struct route_state *st, const struct deployment *const *members,
                       size_t n);

/* May st's request go to fallback group (or alias) name: the caller's
 * models allow it (always true without a route_match.may_use)? */
bool route_filter_may_use(const struct route_state *st, const char *name);

/* LiteLLM's words for a request whose tags match no deployment, with the
 * request's model and tags, into buf. */
void route_filter_refusal(const struct route_state *st, char *buf, size_t len);

#endif
