/* ledger.h - writing priced usage events to MariaDB, exactly once. */
#ifndef ACCOUNTD_LEDGER_H
#define ACCOUNTD_LEDGER_H

#include <mysql.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "events.pb-c.h"
#include "metrics.h"
#include "price.h"
#include "strmap.h"
#include "updates.h"

/* What the ledgers (writers) of one accountd share: the metrics they count
 * in, and the models already warned about as unpriced, so that each is
 * warned once per process. */
struct ledger_shared {
    struct metrics *metrics;
    int m_rows, m_unpriced, m_rejected, m_dups, m_commit_s, m_lag_s, m_lag_last;
    pthread_mutex_t lock; /* guards warned */
    struct strmap *warned;
};

/* Declares the ledger's metrics in metrics. -1 on ENOMEM. */
int ledger_shared_init(struct ledger_shared *s, struct metrics *metrics);
void ledger_shared_destroy(struct ledger_shared *s);

struct ledger {
    MYSQL *db;
    const struct db_config *dbcfg;
    struct ledger_shared *shared;
    struct spend_list spent;        /* owners' spend as the last commit wrote it */
    const struct config *cfg;       /* the commit's: its config budgets (ledger_commit) */
};

/* A ledger with its own MariaDB connection; dbcfg and shared are kept, not
 * owned. */
struct ledger *ledger_new(const struct db_config *dbcfg, struct ledger_shared *shared,
                          char *err, size_t errlen);
void ledger_free(struct ledger *l);

/* The ledger's connection, (re)connected when it has none: for the work
 * beside the batches (resets, retention). NULL while MariaDB is away. */
MYSQL *ledger_db(struct ledger *l);
/* Drops the connection after a failure, so the next use reconnects. */
void ledger_disconnect(struct ledger *l);

/* Prices events with prices and commits them in ONE transaction: each new
 * request_id gets its log row and its spend increments; a request_id
 * already in the ledger changes nothing. retention_s: the log retention (0
 * = forever); older events are refused. Makes at least one attempt, and
 * retries deadlocks and lost connections until *stop becomes true. 0 when
 * every event is in the ledger (so all may be acknowledged; l->spent then
 * holds the budget owners' committed spend), -1 if stopped before that. */
int ledger_commit(struct ledger *l, const struct config *cfg, const struct price_table *prices,
                  long retention_s, Tollgate__UsageEvent **events, size_t n,
                  volatile const int *stop);

#endif
