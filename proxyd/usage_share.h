/* usage_share.h - usage-based routing's counts shared among proxyd through
 * Redis (router_settings.redis_*), as LiteLLM's lowest_tpm_rpm_v2.py: each
 * deployment's requests and tokens of the UTC minute, under the keys
 * {model_id}:rpm:{HH-MM} and {model_id}:tpm:{HH-MM}.
 *
 * Nothing here waits on Redis: increments are sent and not waited for, and
 * the counts a pick reads are those of the last refresh (every REFRESH_MS)
 * plus this proxyd's increments since. When Redis does not answer, the
 * counts are not available and router_pick.c counts its own. */
#ifndef PROXYD_USAGE_SHARE_H
#define PROXYD_USAGE_SHARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct event_base;
struct usage_share;

/* Connects (in the background) to cfg->router.redis for the deployments of
 * cfg (borrowed: it outlives the share); ttl_s is how long a key lives after
 * its last increment. NULL: out of memory. */
struct usage_share *usage_share_new(struct event_base *base, const struct config *cfg,
                                    int ttl_s);
void usage_share_free(struct usage_share *s);

/* Deployment i's requests and tokens this minute across every proxyd; false
 * when Redis did not answer lately (the caller counts its own). */
bool usage_share_counts(struct usage_share *s, size_t i, int64_t *requests, int64_t *tokens);

/* This proxyd adds requests and tokens to deployment i's minute. */
void usage_share_add(struct usage_share *s, size_t i, int64_t requests, int64_t tokens);

#endif
