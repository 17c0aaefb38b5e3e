/* redis_link.h - one hiredis asynchronous connection to the configured
 * Redis (router_settings.redis_*) on proxyd's loop, kept up: the host is
 * resolved with evdns (a slow DNS never blocks the loop), AUTH and SELECT
 * are sent first, a connection that is not ready within CONNECT_TIMEOUT_MS
 * is given up, and attempts are retried with a doubling backoff.
 *
 * Used by usage_share.c (usage-based routing's counts) and ratelimit_redis.c
 * (rate limits). The owner is told of each change of state: up once Redis
 * answered the setup, down (with why) once per outage.
 */
#ifndef PROXYD_REDIS_LINK_H
#define PROXYD_REDIS_LINK_H

#include <event2/event.h>
#include <hiredis/async.h>
#include <stdbool.h>

#include "config.h"

struct redis_link;

typedef void (*redis_link_state_cb)(void *arg, bool up, const char *why);

/* Starts connecting. NULL on ENOMEM. */
struct redis_link *redis_link_new(struct event_base *base, const struct redis_config *rc,
                                  redis_link_state_cb on_state, void *arg);
/* Closes the connection: the callbacks of commands in flight get NULL replies
 * (on_state is not called). */
void redis_link_free(struct redis_link *l);

/* The connection while it is up, else NULL. Commands on one connection are
 * answered in the order they were sent. */
redisAsyncContext *redis_link_ctx(struct redis_link *l);

/* The periodic work the owner's timer calls: connect when down and the
 * backoff has passed, give up a connection that is not ready in time. */
void redis_link_tick(struct redis_link *l);

/* Drops the connection now (an answer that never came; not from a hiredis
 * callback): commands in flight get NULL replies; it connects again after
 * the backoff. */
void redis_link_drop(struct redis_link *l, const char *why);

/* From a hiredis callback that got an error answer: the connection closes
 * when the callback returns (then as redis_link_drop). */
void redis_link_fail(struct redis_link *l, redisAsyncContext *c, const char *why);

#endif
