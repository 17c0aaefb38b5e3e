/* router.h - from a requested model group to the deployment that serves it. */
#ifndef PROXYD_ROUTER_H
#define PROXYD_ROUTER_H

#include <stddef.h>

#include "config.h"

struct router;

struct router *router_new(const struct config *cfg, char *err, size_t errlen);
void router_free(struct router *r);

/* A deployment of group (round robin across the group's deployments), or
 * NULL when the config has no such model group. */
const struct deployment *router_pick(struct router *r, const char *group);

/* The model groups in config order: count and i-th name. */
size_t router_group_count(const struct router *r);
const char *router_group_name(const struct router *r, size_t i);

/* "a, b, c": the model groups, for the unknown-model error. */
const char *router_group_names(const struct router *r);

#endif
