/* publish.h - delivering usage events to accountd, at least once.
 *
 * Events are kept in the durable spool (and in memory) until an accountd
 * acknowledges them after its commit, and re-sent when no ack came within
 * event_resend_ms, also after a restart of proxyd.
 */
#ifndef PROXYD_PUBLISH_H
#define PROXYD_PUBLISH_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct publisher;

struct publisher *publisher_new(struct event_base *base, const struct config *cfg,
                                char *err, size_t errlen);
void publisher_free(struct publisher *p);

/* Queues an encoded UsageEvent (copied) for delivery: 0 when it is in the
 * spool, 1 when the spool refused it (full, a write error) and it is kept
 * in memory only, -1 on ENOMEM. */
int publisher_send(struct publisher *p, const char *request_id, const uint8_t *event, size_t len);

/* cb runs for every event accountd acknowledges (after its commit). */
void publisher_on_ack(struct publisher *p, void (*cb)(const char *request_id, void *arg),
                      void *arg);

/* Is request_id's event queued and not yet acknowledged? */
bool publisher_has(const struct publisher *p, const char *request_id);

/* Is the spool at its cap (new requests must be refused)? */
bool publisher_full(const struct publisher *p);

/* Events not yet acknowledged, and the spool's size on disk. */
size_t publisher_pending(const struct publisher *p);
uint64_t publisher_spool_bytes(const struct publisher *p);
/* What the spool's recovery set aside as damaged at start (spool_damage). */
void publisher_spool_damage(const struct publisher *p, uint64_t *ranges, uint64_t *bytes);

/* How long no accountd has been connected (0 while one is). */
int64_t publisher_down_ms(struct publisher *p);

#endif
