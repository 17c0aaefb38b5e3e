/* router.h - from a requested model group to the deployment that serves it:
 * weighted shuffle, retries, fallbacks and cooldowns (LiteLLM's router). */
#ifndef PROXYD_ROUTER_H
#define PROXYD_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define ROUTER_MAX_ATTEMPTS 64

struct router;

/* Where one request stands in its attempts. */
struct route_state {
    const char *group;         /* the group being tried (the request's, then fallbacks) */
    size_t fallback_next;      /* next fallback of the request's group to try */
    int attempts_in_group;
    const struct deployment *tried[ROUTER_MAX_ATTEMPTS];
    size_t n_tried;
};

struct router *router_new(const struct config *cfg, char *err, size_t errlen);
void router_free(struct router *r);

/* Is group a model group of the config? */
bool router_has_group(const struct router *r, const char *group);

/* The first deployment for a request to group (NULL: no such group). */
const struct deployment *router_first(struct router *r, const char *group,
                                      struct route_state *st);

/* After a retryable failure: the next deployment (the group's others while
 * num_retries allows, then the fallback groups), or NULL when none is left. */
const struct deployment *router_next(struct router *r, struct route_state *st);

/* Records how an attempt went; failures put a deployment in cooldown. */
void router_report(struct router *r, const struct deployment *d, bool ok);

/* The model groups in config order: count and i-th name. */
size_t router_group_count(const struct router *r);
const char *router_group_name(const struct router *r, size_t i);

/* "a, b, c": the model groups, for the unknown-model error. */
const char *router_group_names(const struct router *r);

#endif
