/* ledger_counters.h - what a batch's new log rows add to the spend counters
 * and the daily rollups, applied in the same transaction. */
#ifndef ACCOUNTD_LEDGER_COUNTERS_H
#define ACCOUNTD_LEDGER_COUNTERS_H

#include <mysql.h>
#include <stddef.h>

#include "ledger_rows.h"
#include "updates.h"

/* Adds the rows marked `inserted` to: the spend of their key, internal user,
 * team, team member, end user and tags (end users and tags get a row on
 * first use), the per-entity per-model spend, and the daily rollups; and
 * appends the budget owners' spend as written to *spent. 0, or -1 with
 * err/errnum (the transaction must roll back). */
int counters_apply(MYSQL *db, const struct config *cfg, const struct ledger_row *rows, size_t n,
                   struct spend_list *spent,
                   unsigned *errnum, char *err, size_t errlen);

/* Creates the session's staging tables the period writer needs
 * (ledger_periods.c); once per connection, before the first batch. */
int periods_session_init(MYSQL *db, unsigned *errnum, char *err, size_t errlen);

#endif
