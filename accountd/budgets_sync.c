/* budgets_sync.c - writes the budgets the config sets (proxy, provider,
 * deployment: libtollgate/config_budgets.c) into config_budgets, so that
 * accountd counts their spend and resets them like every other budget.
 *
 * Run at start and after each reload, by every accountd instance: the upsert
 * is idempotent. A new row's period starts now. A changed budget_duration
 * keeps the spend of the running period and ends it at the new schedule's
 * next boundary; an unchanged one leaves the row's period alone, so a
 * restart never resets a budget. A budget removed from the config keeps its
 * row (the reports may still show it); proxyd no longer enforces it.
 */
#include "budgets_sync.h"

#include <stdio.h>
#include <time.h>

#include "budget_period.h"
#include "db.h"

static const char SQL_UPSERT[] =
    "INSERT INTO config_budgets (budget_key, max_budget, spend, budget_duration,"
    " budget_period_start, budget_reset_at, created_at, updated_at)"
    " VALUES (?, CAST(? AS DECIMAL(38,20)), 0, ?, UTC_TIMESTAMP(6), ?, UTC_TIMESTAMP(6),"
    " UTC_TIMESTAMP(6))"
    " ON DUPLICATE KEY UPDATE"
    " budget_reset_at = IF(budget_duration <=> VALUES(budget_duration), budget_reset_at,"
    " VALUES(budget_reset_at)),"
    " budget_duration = VALUES(budget_duration), max_budget = VALUES(max_budget),"
    " updated_at = UTC_TIMESTAMP(6)";

int budgets_sync(MYSQL *db, const struct config *cfg, char *err, size_t errlen)
{
    time_t now = time(NULL);
    for (size_t i = 0; i < cfg->n_budgets; i++) {
        const struct config_budget *b = &cfg->budgets[i];
        char max[MONEY_STR_MAX], reset_at[DB_DATETIME_MAX];
        struct period p;
        bool periodic = b->duration != NULL && period_parse(b->duration, &p) == 0;
        money_format(b->max, max);
        if (periodic)
            db_datetime((int64_t)period_next(&p, now) * 1000000, reset_at);
        struct db_param q[] = {DB_STR(b->key), DB_STR(max), DB_STR(b->duration),
                               periodic ? DB_STR(reset_at) : DB_NULL};
        if (db_exec(db, SQL_UPSERT, q, 4, NULL, NULL, NULL, err, errlen) < 0)
            return -1;
    }
    return 0;
}
