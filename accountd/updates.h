/* updates.h - spend updates from accountd to every proxyd (ZeroMQ PUB). */
#ifndef ACCOUNTD_UPDATES_H
#define ACCOUNTD_UPDATES_H

#include <mysql.h>
#include <stddef.h>
#include <stdint.h>

#include "events.pb-c.h"
#include "strmap.h"

/* Budget owners' spend as a transaction committed it, to publish. */
struct spend_list {
    Tollgate__OwnerSpend *v; /* owner and spend strings owned by the list */
    size_t n, cap;
};

/* Appends prefix:id with its spend (exact decimal text) and the end of its
 * budget period (reset_at_us, Unix microseconds; 0 for none). -1 on ENOMEM. */
int spend_list_add(struct spend_list *l, char prefix, const char *id, const char *spend,
                   int64_t reset_at_us);
/* Drops the entries from the n-th on (keeps the memory). */
void spend_list_truncate(struct spend_list *l, size_t n);
void spend_list_free(struct spend_list *l);

struct updates;
struct curve_keypair;

/* Binds a PUB socket of ZeroMQ context ctx at endpoint, a CURVE server with
 * key pair server (NULL: plain, `curve: off`). NULL on error (err). */
struct updates *updates_new(void *ctx, const char *endpoint, const struct curve_keypair *server,
                            char *err, size_t errlen);
void updates_free(struct updates *u);

/* After a batch committed: publishes its owners' spend (read inside its
 * transaction, see ledger_periods.c) with the batch's request ids. Best
 * effort: proxyd also re-reads rows, so a lost update only costs freshness. */
void updates_publish(struct updates *u, const struct spend_list *l,
                     Tollgate__UsageEvent **events, size_t n);

/* After a budget reset: reads and publishes the spend of ids (keys of the
 * map) of one owner kind: 'k' keys, 'u' internal users, 't' teams, 'c' end
 * users, 'g' tags. */
void updates_publish_owners(struct updates *u, MYSQL *db, char prefix, struct strmap *ids);

#endif
