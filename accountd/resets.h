/* resets.h - budget-duration resets, run by accountd between batches. */
#ifndef ACCOUNTD_RESETS_H
#define ACCOUNTD_RESETS_H

#include <mysql.h>
#include <time.h>

#include "updates.h"

/* Resets every budget whose budget_reset_at is at or before now: keys,
 * internal users, teams, tags, and the end users and team members of each
 * shared budget; then publishes the new spend. Returns how many budgets
 * were reset, -1 on a database error (err; the next call tries again). */
int resets_run(MYSQL *db, struct updates *up, time_t now, char *err, size_t errlen);

#endif
