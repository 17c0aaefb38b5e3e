/* ledger.h - writing priced usage events to MariaDB, exactly once. */
#ifndef ACCOUNTD_LEDGER_H
#define ACCOUNTD_LEDGER_H

#include <mysql.h>
#include <stdbool.h>
#include <stddef.h>

#include "events.pb-c.h"
#include "metrics.h"
#include "price.h"
#include "strmap.h"
#include "updates.h"

struct ledger {
    MYSQL *db;
    const struct db_config *dbcfg;
    const struct price_table *prices;
    struct strmap *warned_unpriced; /* models already warned about */
    long retention_s;               /* log retention; 0 = forever (main.c sets it) */
    struct spend_list spent;        /* owners' spend as the last commit wrote it */
    struct metrics *metrics;        /* counters below: ids in it */
    int m_rows, m_unpriced, m_rejected;
};

/* metrics: where the ledger declares and counts its rows, unpriced events
 * and rejected events (kept, not owned). */
struct ledger *ledger_new(const struct db_config *dbcfg, const struct price_table *prices,
                          struct metrics *metrics, char *err, size_t errlen);
void ledger_free(struct ledger *l);

/* Commits events in ONE transaction: each new request_id gets its log row
 * and its spend increments; a request_id already in the ledger changes
 * nothing. Retries deadlocks and lost connections until *stop becomes true.
 * 0 when every event is in the ledger (so all may be acknowledged; l->spent
 * then holds the budget owners' committed spend), -1 if stopped before that. */
int ledger_commit(struct ledger *l, Tollgate__UsageEvent **events, size_t n,
                  volatile const int *stop);

#endif
