/* updates.h - spend updates from accountd to every proxyd (ZeroMQ PUB). */
#ifndef ACCOUNTD_UPDATES_H
#define ACCOUNTD_UPDATES_H

#include <mysql.h>
#include <stddef.h>

#include "events.pb-c.h"
#include "strmap.h"

struct updates;

/* Binds a PUB socket at endpoint. NULL on error (err). */
struct updates *updates_new(const char *endpoint, char *err, size_t errlen);
void updates_free(struct updates *u);

/* After a batch committed: reads the spend of every budget owner the events
 * name (key, user, team, end user, tags) and publishes it. Best effort:
 * proxyd also re-reads rows, so a lost update only costs freshness. */
void updates_publish(struct updates *u, MYSQL *db, Tollgate__UsageEvent **events, size_t n);

/* The same for ids (keys of the map) of one owner kind: 'k' keys, 'u' internal
 * users, 't' teams, 'c' end users, 'g' tags; after a budget reset. */
void updates_publish_owners(struct updates *u, MYSQL *db, char prefix, struct strmap *ids);

#endif
