/* resets.c - budget-duration resets (see resets.h).
 *
 * Design: every RESET_TICK_MS accountd asks each owner table for the rows
 * whose budget_reset_at has come, locks them (SELECT ... FOR UPDATE, in id
 * order), and for each starts a new period: budget_period_start becomes the
 * boundary, budget_reset_at the next one (budget_period.c), and spend what
 * the logs hold for requests that started since the boundary. Exactly once
 * with any number of accountd: the rows are locked, and a row another
 * instance reset meanwhile is read again after the wait with its new
 * budget_reset_at, which is no longer due.
 *
 * Nothing that races a reset is lost or counted in the wrong period: spend
 * is recomputed from the committed logs, so an event committed just after
 * the boundary, before the reset ran, stays in the new period; and a batch
 * committing after the reset adds an event only if its request started in
 * the new period (ledger_periods.c), so a late event of the old period
 * counts in the logs and lifetime figures, not against the new budget.
 * When resets were missed (accountd down), the new period starts at the
 * last boundary before now, not at the old budget_reset_at.
 */
#include "resets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget_period.h"
#include "db.h"
#include "log.h"
#include "strmap.h"

#define RESET_BATCH 100 /* rows locked per pass */

struct owner_kind {
    char prefix; /* in spend updates; 0: a shared budget */
    const char *table, *id;
    const char *recount; /* params: start, id, start, next, id */
};

#define RECOUNT(table, id, where) \
    "UPDATE " table " SET spend = (SELECT COALESCE(SUM(spend), 0) FROM spend_logs" \
    " WHERE start_time >= ? AND " where "), budget_period_start = ?, budget_reset_at = ?" \
    " WHERE " id " = ?"

static const struct owner_kind KINDS[] = {
    {'k', "api_keys", "token", RECOUNT("api_keys", "token", "api_key = ?")},
    {'u', "internal_users", "user_id", RECOUNT("internal_users", "user_id", "user = ?")},
    {'t', "teams", "team_id", RECOUNT("teams", "team_id", "team_id = ?")},
    {'g', "tags", "tag", RECOUNT("tags", "tag", "JSON_CONTAINS(request_tags, JSON_QUOTE(?))")},
    /* "proxy" counts every row; "provider:P" and "deployment:ID" theirs */
    {'p', "config_budgets", "budget_key",
     RECOUNT("config_budgets", "budget_key", "? IN ('proxy', CONCAT('provider:',"
             " custom_llm_provider), CONCAT('deployment:', model_id))")},
    {0, "budgets", "budget_id", NULL},
};

/* A shared budget's end users and team members, then the budget itself.
 * params of the first two: start, budget id. */
static const char SQL_BUDGET_CUSTOMERS[] =
    "UPDATE customers c SET c.spend = (SELECT COALESCE(SUM(l.spend), 0) FROM spend_logs l"
    " WHERE l.start_time >= ? AND l.end_user = c.user_id) WHERE c.budget_id = ?";
static const char SQL_BUDGET_MEMBERS[] =
    "UPDATE team_members m SET m.spend = (SELECT COALESCE(SUM(l.spend), 0) FROM spend_logs l"
    " WHERE l.start_time >= ? AND l.team_id = m.team_id AND l.user = m.user_id)"
    " WHERE m.budget_id = ?";
static const char SQL_BUDGET_ROW[] =
    "UPDATE budgets SET budget_period_start = ?, budget_reset_at = ? WHERE budget_id = ?";

static void fmt_utc(time_t t, char out[DB_DATETIME_MAX])
{
    db_datetime((int64_t)t * 1000000, out);
}

static int parse_utc(const char *s, time_t *out)
{
    struct tm tm = {0};
    const char *end = s != NULL ? strptime(s, "%Y-%m-%d %H:%M:%S", &tm) : NULL;
    if (end == NULL)
        return -1;
    *out = timegm(&tm);
    return 0;
}

/* Starts the new period of one locked row. *reset says whether it did. */
static int reset_row(MYSQL *db, const struct owner_kind *k, const char *id, const char *duration,
                     const char *reset_at, time_t now, bool *reset, char *err, size_t errlen)
{
    struct period p;
    time_t at;
    char start[DB_DATETIME_MAX], next[DB_DATETIME_MAX];
    *reset = false;
    if (period_parse(duration, &p) < 0 || parse_utc(reset_at, &at) < 0) {
        log_warn("%s %s: budget_duration '%s' is not a duration; its budget is no longer reset",
                 k->table, id, duration != NULL ? duration : "");
        struct db_param q[] = {DB_STR(id)};
        char sql[160];
        snprintf(sql, sizeof(sql), "UPDATE %s SET budget_reset_at = NULL WHERE %s = ?", k->table,
                 k->id);
        return db_exec(db, sql, q, 1, NULL, NULL, NULL, err, errlen);
    }
    if (at > now)
        return 0; /* another instance reset it while we waited for the lock */
    time_t begin = period_next(&p, at) > now ? at : period_start_of(&p, now);
    fmt_utc(begin, start);
    fmt_utc(period_next(&p, begin), next);
    *reset = true;
    if (k->recount != NULL) {
        struct db_param q[] = {DB_STR(start), DB_STR(id), DB_STR(start), DB_STR(next), DB_STR(id)};
        return db_exec(db, k->recount, q, 5, NULL, NULL, NULL, err, errlen);
    }
    struct db_param q[] = {DB_STR(start), DB_STR(id)};
    struct db_param r[] = {DB_STR(start), DB_STR(next), DB_STR(id)};
    return db_exec(db, SQL_BUDGET_CUSTOMERS, q, 2, NULL, NULL, NULL, err, errlen) < 0 ||
           db_exec(db, SQL_BUDGET_MEMBERS, q, 2, NULL, NULL, NULL, err, errlen) < 0 ||
           db_exec(db, SQL_BUDGET_ROW, r, 3, NULL, NULL, NULL, err, errlen) < 0 ? -1 : 0;
}

/* The end users of the budgets just reset, for the spend update. */
static void add_customers(MYSQL *db, const char *budget_id, struct strmap *ids)
{
    struct db_result *r = NULL;
    struct db_param q[] = {DB_STR(budget_id)};
    char err[256];
    int e;
    if (db_exec(db, "SELECT user_id FROM customers WHERE budget_id = ?", q, 1, &r, NULL, NULL,
                err, sizeof(err)) < 0)
        return; /* the update is best effort: proxyd re-reads rows too */
    for (size_t i = 0; i < r->nrows; i++)
        strmap_put(ids, db_cell(r, i, 0), (void *)1, &e);
    db_result_free(r);
}

/* One pass over one kind: locks up to RESET_BATCH due rows and resets them.
 * Adds the owners reset to `ids`; returns how many, -1 on error. */
static int reset_pass(MYSQL *db, const struct owner_kind *k, time_t now, struct strmap *ids,
                      char *err, size_t errlen)
{
    char sql[256], nowtxt[DB_DATETIME_MAX];
    struct db_result *due = NULL;
    int done = 0, e;
    fmt_utc(now, nowtxt);
    snprintf(sql, sizeof(sql),
             "SELECT %s, budget_duration, budget_reset_at FROM %s WHERE budget_reset_at <= ?"
             " ORDER BY %s LIMIT %d FOR UPDATE", k->id, k->table, k->id, RESET_BATCH);
    struct db_param q[] = {DB_STR(nowtxt)};
    if (db_begin(db, err, errlen) < 0)
        return -1;
    if (db_exec(db, sql, q, 1, &due, NULL, NULL, err, errlen) < 0)
        goto fail;
    for (size_t i = 0; i < due->nrows; i++) {
        bool reset;
        const char *id = db_cell(due, i, 0);
        if (reset_row(db, k, id, db_cell(due, i, 1), db_cell(due, i, 2), now, &reset, err,
                      errlen) < 0)
            goto fail;
        if (reset && k->prefix != 0)
            strmap_put(ids, id, (void *)1, &e);
        else if (reset)
            add_customers(db, id, ids);
        done += reset;
    }
    if (db_commit(db, err, errlen) < 0)
        goto fail;
    db_result_free(due);
    return done;
fail:
    db_rollback(db);
    db_result_free(due);
    return -1;
}

/* Is anything of kind k due? A cheap indexed look before taking locks. */
static int any_due(MYSQL *db, const struct owner_kind *k, time_t now, char *err, size_t errlen)
{
    char sql[160], nowtxt[DB_DATETIME_MAX];
    struct db_result *r = NULL;
    fmt_utc(now, nowtxt);
    snprintf(sql, sizeof(sql), "SELECT 1 FROM %s WHERE budget_reset_at <= ? LIMIT 1", k->table);
    struct db_param q[] = {DB_STR(nowtxt)};
    if (db_exec(db, sql, q, 1, &r, NULL, NULL, err, errlen) < 0)
        return -1;
    int due = r->nrows > 0;
    db_result_free(r);
    return due;
}

int resets_run(MYSQL *db, struct updates *up, time_t now, char *err, size_t errlen)
{
    int total = 0;
    for (size_t k = 0; k < sizeof(KINDS) / sizeof(KINDS[0]); k++) {
        int due = any_due(db, &KINDS[k], now, err, errlen);
        if (due <= 0) {
            if (due < 0)
                return -1;
            continue;
        }
        struct strmap *ids = strmap_new();
        int n, kind_total = 0;
        if (ids == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        do {
            if ((n = reset_pass(db, &KINDS[k], now, ids, err, errlen)) < 0) {
                strmap_free(ids, NULL);
                return -1;
            }
            kind_total += n;
        } while (n == RESET_BATCH);
        total += kind_total;
        if (kind_total > 0)
            log_info("%s: %d budget%s reset", KINDS[k].table, kind_total, kind_total == 1 ? "" : "s");
        if (strmap_count(ids) > 0) {
            updates_publish_owners(up, db, KINDS[k].prefix ? KINDS[k].prefix : 'c', ids);
        }
        strmap_free(ids, NULL);
    }
    return total;
}
