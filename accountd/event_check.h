/* event_check.h - what accountd refuses in a usage event before pricing it. */
#ifndef ACCOUNTD_EVENT_CHECK_H
#define ACCOUNTD_EVENT_CHECK_H

#include <stdint.h>

#include "events.pb-c.h"

#define EVENT_METADATA_MAX (1024 * 1024) /* metadata_json bytes (proxyd caps it lower) */
#define EVENT_TAGS_MAX 256

/* Why the event cannot be true (negative or absurd counts, a negative or
 * malformed custom price, a request id or key hash of the wrong form, a time
 * far from now_us), or NULL. Such an event goes to rejected_events. */
const char *event_check(const Tollgate__UsageEvent *e, int64_t now_us);

#endif
