/* ledger_periods.c - the period spend of budget owners (see ledger_agg.h).
 *
 * spend on keys, internal users, teams, team members, end users and tags is
 * the spend of the owner's current budget period: an event counts in the
 * period in which its request started. The common case costs nothing
 * extra: each owner's batch sum is added by one UPDATE whose WHERE asks
 * that the period began no later than the earliest request start of the
 * sum, so the rows it updates take all of it. A row it skips is an owner
 * whose period began inside the batch's span (a reset came in between);
 * those rows are then locked (SELECT ... FOR UPDATE, so no reset can move
 * them again), and only the events that started at or after the period's
 * start are added, event by event. End users and team members read their
 * period from their budget (budget_id).
 *
 * Why a staging table: a bulk UPDATE (array binding) is planned again for
 * every row, which cost MariaDB 40-60 us per owner; the sums go instead
 * into a session's temporary table (bulk INSERTs are cheap) and ONE joined
 * UPDATE per table applies them, driven by the staging rows in key order
 * (STRAIGHT_JOIN), so row locks are still taken in the global order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "db_bulk.h"
#include "ledger_agg.h"

#define FIX_CHUNK 200 /* owners per "which periods began inside the batch" SELECT */

/* The staging tables: one for key hashes (ASCII, as api_keys.token), one for
 * every other id (utf8mb4_bin, as the owners' tables), so the join compares
 * like with like and uses the owners' primary keys. */
#define STAGE_COLS " (seq INT NOT NULL PRIMARY KEY, id %s NOT NULL, id2 VARCHAR(255) NULL," \
                   " spend DECIMAL(38,20) NOT NULL, since DATETIME(6) NOT NULL) ENGINE=InnoDB"
#define STAGE_KEYS "tg_stage_keys"
#define STAGE_IDS "tg_stage_ids"

struct owner_sql {
    char prefix;        /* in spend updates (updates.h); 0: not published */
    const char *stage;  /* the staging table */
    const char *create; /* end users and tags: a row on first use, from the staging table */
    const char *add;    /* the period-checked UPDATE, from the staging table */
    const char *fix;    /* SELECT ids, period start ... IN ( -- then the ids, then FIX_TAIL */
    const char *force;  /* params: spend, ids: the exact part, on a locked row */
    int nids;
    const char *read;   /* id, spend and period end of the staged owners, as written */
};

#define SPEND "CAST(? AS DECIMAL(38,20))"
#define FROM_STAGE(stage) "UPDATE " stage " t STRAIGHT_JOIN "
#define IN_PERIOD(col) " WHERE t.spend <> 0 AND (" col " IS NULL OR " col " <= t.since)"
#define FIX_TAIL ") FOR UPDATE"
#define READ(stage, join, reset_at) \
    "SELECT t.id, " join ".spend, " DB_SQL_UNIX_US(reset_at) " FROM " stage " t STRAIGHT_JOIN "

static const struct owner_sql SQL[T_COUNT] = {
    [T_KEYS] = {'k', STAGE_KEYS, NULL,
        FROM_STAGE(STAGE_KEYS) "api_keys o ON o.token = t.id SET o.spend = o.spend + t.spend"
        IN_PERIOD("o.budget_period_start"),
        "SELECT token, budget_period_start FROM api_keys"
        " WHERE budget_period_start IS NOT NULL AND token IN (",
        "UPDATE api_keys SET spend = spend + " SPEND " WHERE token = ?", 1,
        READ(STAGE_KEYS, "o", "o.budget_reset_at") "api_keys o ON o.token = t.id"},
    [T_USERS] = {'u', STAGE_IDS, NULL,
        FROM_STAGE(STAGE_IDS) "internal_users o ON o.user_id = t.id"
        " SET o.spend = o.spend + t.spend" IN_PERIOD("o.budget_period_start"),
        "SELECT user_id, budget_period_start FROM internal_users"
        " WHERE budget_period_start IS NOT NULL AND user_id IN (",
        "UPDATE internal_users SET spend = spend + " SPEND " WHERE user_id = ?", 1,
        READ(STAGE_IDS, "o", "o.budget_reset_at") "internal_users o ON o.user_id = t.id"},
    [T_TEAMS] = {'t', STAGE_IDS, NULL,
        FROM_STAGE(STAGE_IDS) "teams o ON o.team_id = t.id SET o.spend = o.spend + t.spend"
        IN_PERIOD("o.budget_period_start"),
        "SELECT team_id, budget_period_start FROM teams"
        " WHERE budget_period_start IS NOT NULL AND team_id IN (",
        "UPDATE teams SET spend = spend + " SPEND " WHERE team_id = ?", 1,
        READ(STAGE_IDS, "o", "o.budget_reset_at") "teams o ON o.team_id = t.id"},
    /* a member is published as "m:<team>\x1f<user>", as proxyd names it */
    [T_MEMBERS] = {'m', STAGE_IDS, NULL,
        FROM_STAGE(STAGE_IDS) "team_members m ON m.team_id = t.id AND m.user_id = t.id2"
        " LEFT JOIN budgets b ON b.budget_id = m.budget_id SET m.spend = m.spend + t.spend"
        IN_PERIOD("b.budget_period_start"),
        "SELECT m.team_id, m.user_id, b.budget_period_start FROM team_members m"
        " JOIN budgets b ON b.budget_id = m.budget_id"
        " WHERE b.budget_period_start IS NOT NULL AND (m.team_id, m.user_id) IN (",
        "UPDATE team_members SET spend = spend + " SPEND " WHERE team_id = ? AND user_id = ?", 2,
        "SELECT CONCAT(t.id, CHAR(31), t.id2), m.spend, " DB_SQL_UNIX_US("b.budget_reset_at")
        " FROM " STAGE_IDS " t STRAIGHT_JOIN team_members m ON m.team_id = t.id"
        " AND m.user_id = t.id2 LEFT JOIN budgets b ON b.budget_id = m.budget_id"},
    [T_CUSTOMERS] = {'c', STAGE_IDS,
        "INSERT INTO customers (user_id, spend, created_at, updated_at)"
        " SELECT id, 0, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) FROM " STAGE_IDS " ORDER BY seq"
        " ON DUPLICATE KEY UPDATE user_id = customers.user_id",
        FROM_STAGE(STAGE_IDS) "customers c ON c.user_id = t.id"
        " LEFT JOIN budgets b ON b.budget_id = c.budget_id SET c.spend = c.spend + t.spend"
        IN_PERIOD("b.budget_period_start"),
        "SELECT c.user_id, b.budget_period_start FROM customers c"
        " JOIN budgets b ON b.budget_id = c.budget_id"
        " WHERE b.budget_period_start IS NOT NULL AND c.user_id IN (",
        "UPDATE customers SET spend = spend + " SPEND " WHERE user_id = ?", 1,
        READ(STAGE_IDS, "c", "b.budget_reset_at") "customers c ON c.user_id = t.id"
        " LEFT JOIN budgets b ON b.budget_id = c.budget_id"},
    [T_TAGS] = {'g', STAGE_IDS,
        "INSERT INTO tags (tag, spend, created_at, updated_at)"
        " SELECT id, 0, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) FROM " STAGE_IDS " ORDER BY seq"
        " ON DUPLICATE KEY UPDATE tag = tags.tag",
        FROM_STAGE(STAGE_IDS) "tags o ON o.tag = t.id SET o.spend = o.spend + t.spend"
        IN_PERIOD("o.budget_period_start"),
        "SELECT tag, budget_period_start FROM tags"
        " WHERE budget_period_start IS NOT NULL AND tag IN (",
        "UPDATE tags SET spend = spend + " SPEND " WHERE tag = ?", 1,
        READ(STAGE_IDS, "o", "o.budget_reset_at") "tags o ON o.tag = t.id"},
    /* the config's budgets: rows made by budgets_sync.c, never on first use */
    [T_CONFIG] = {'p', STAGE_IDS, NULL,
        FROM_STAGE(STAGE_IDS) "config_budgets o ON o.budget_key = t.id"
        " SET o.spend = o.spend + t.spend" IN_PERIOD("o.budget_period_start"),
        "SELECT budget_key, budget_period_start FROM config_budgets"
        " WHERE budget_period_start IS NOT NULL AND budget_key IN (",
        "UPDATE config_budgets SET spend = spend + " SPEND " WHERE budget_key = ?", 1,
        READ(STAGE_IDS, "o", "o.budget_reset_at") "config_budgets o ON o.budget_key = t.id"},
};

int periods_session_init(MYSQL *db, unsigned *errnum, char *err, size_t errlen)
{
    char sql[512];
    snprintf(sql, sizeof(sql), "CREATE TEMPORARY TABLE IF NOT EXISTS " STAGE_KEYS STAGE_COLS,
             "CHAR(64) CHARACTER SET ascii COLLATE ascii_bin");
    if (db_exec(db, sql, NULL, 0, NULL, NULL, errnum, err, errlen) < 0)
        return -1;
    snprintf(sql, sizeof(sql), "CREATE TEMPORARY TABLE IF NOT EXISTS " STAGE_IDS STAGE_COLS
             " DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin", "VARCHAR(255)");
    return db_exec(db, sql, NULL, 0, NULL, NULL, errnum, err, errlen);
}

/* Does log row r belong to owner a of table t? */
static bool owns(enum table t, const struct agg *a, const struct ledger_row *r)
{
    const Tollgate__UsageEvent *e = r->e;
    const char *v = t == T_KEYS ? e->api_key : t == T_USERS ? e->user_id
                  : t == T_TEAMS || t == T_MEMBERS ? e->team_id : t == T_CUSTOMERS ? e->end_user
                  : NULL;
    if (t == T_TAGS) {
        for (size_t i = 0; i < e->n_tags; i++)
            if (strcmp(e->tags[i], a->id) == 0)
                return true;
        return false;
    }
    if (t == T_CONFIG)
        return config_budget_covers(a->id, r->provider, ledger_nonempty(e->model_id));
    if (ledger_nonempty(v) == NULL || strcmp(v, a->id) != 0)
        return false;
    return t != T_MEMBERS || (ledger_nonempty(e->user_id) != NULL && strcmp(e->user_id, a->id2) == 0);
}

/* Adds to owner a what its rows that started at or after `since` cost. */
static int add_since(MYSQL *db, enum table t, const struct agg *a, const char *since,
                     const struct ledger_row *rows, size_t nrows, unsigned *errnum, char *err,
                     size_t errlen)
{
    money_t sum = 0;
    char text[MONEY_STR_MAX];
    for (size_t i = 0; i < nrows; i++)
        if (rows[i].inserted && strcmp(rows[i].start, since) >= 0 && owns(t, a, &rows[i]) &&
            money_add(sum, rows[i].cost, &sum) < 0) {
            snprintf(err, errlen, "a counter's sum does not fit DECIMAL(38,20)");
            return -1;
        }
    if (sum == 0)
        return 0;
    money_format(sum, text);
    struct db_param p[] = {DB_STR(text), DB_STR(a->id), DB_STR(a->id2)};
    return db_exec(db, SQL[t].force, p, 1 + (size_t)SQL[t].nids, NULL, NULL, errnum, err, errlen);
}

/* Owners among list[0..n) whose period began after their earliest start:
 * locks them and adds the exact part. */
static int fix_chunk(MYSQL *db, struct counters *c, enum table t, struct agg **list, size_t n,
                     const struct ledger_row *rows, size_t nrows, unsigned *errnum, char *err,
                     size_t errlen)
{
    const struct owner_sql *q = &SQL[t];
    size_t cap = strlen(q->fix) + n * 8 + sizeof(FIX_TAIL);
    char *sql = malloc(cap);
    struct db_param *p = malloc(n * 2 * sizeof(*p));
    struct db_result *res = NULL;
    int rc = -1;
    if (sql == NULL || p == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    size_t len = (size_t)snprintf(sql, cap, "%s", q->fix), np = 0;
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(sql + len, cap - len, "%s%s", i ? "," : "",
                                q->nids == 2 ? "(?,?)" : "?");
        p[np++] = DB_STR(list[i]->id);
        if (q->nids == 2)
            p[np++] = DB_STR(list[i]->id2);
    }
    snprintf(sql + len, cap - len, FIX_TAIL);
    if (db_exec(db, sql, p, np, &res, NULL, errnum, err, errlen) < 0)
        goto out;
    for (size_t k = 0; k < res->nrows; k++) {
        const char *ids[2] = {db_cell(res, k, 0), q->nids == 2 ? db_cell(res, k, 1) : NULL};
        const char *since = db_cell(res, k, (size_t)q->nids);
        const char *key = counters_compose(c, ids, (size_t)q->nids);
        struct agg *a = key != NULL ? strmap_get(c->maps[t], key) : NULL;
        if (a != NULL && since != NULL && strcmp(a->min_start, since) < 0 &&
            add_since(db, t, a, since, rows, nrows, errnum, err, errlen) < 0)
            goto out;
    }
    rc = 0;
out:
    db_result_free(res);
    free(sql);
    free(p);
    return rc;
}

/* Empties q's staging table and fills it with the owners of list, in order. */
static int stage(MYSQL *db, const struct owner_sql *q, struct agg **list, size_t n,
                 unsigned *errnum, char *err, size_t errlen)
{
    char sql[128];
    struct db_bulk *b = db_bulk_new(5);
    int rc = -1;
    if (b == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        struct agg *a = list[i];
        money_format(a->s.spend, a->spend_text);
        struct db_param p[] = {DB_I64((int64_t)i), DB_STR(a->id), DB_STR(a->id2),
                               DB_STR(a->spend_text), DB_STR(a->min_start)};
        if (db_bulk_add(b, p) < 0) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
    }
    snprintf(sql, sizeof(sql), "DELETE FROM %s", q->stage);
    if (db_exec(db, sql, NULL, 0, NULL, NULL, errnum, err, errlen) < 0)
        goto out;
    snprintf(sql, sizeof(sql), "INSERT INTO %s (seq, id, id2, spend, since)"
             " VALUES (?, ?, ?, " SPEND ", ?)", q->stage);
    rc = db_bulk_exec(db, sql, b, NULL, errnum, err, errlen);
out:
    db_bulk_free(b);
    return rc;
}

/* What the staged owners' rows hold now, for the spend update this
 * transaction publishes once committed (its row locks keep it exact). */
static int read_back(MYSQL *db, const struct owner_sql *q, struct spend_list *out,
                     unsigned *errnum, char *err, size_t errlen)
{
    struct db_result *r = NULL;
    if (db_exec(db, q->read, NULL, 0, &r, NULL, errnum, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < r->nrows; i++)
        if (spend_list_add(out, q->prefix, db_cell(r, i, 0), db_cell(r, i, 1),
                           strtoll(db_cell(r, i, 2), NULL, 10)) < 0) {
            snprintf(err, errlen, "out of memory");
            db_result_free(r);
            return -1;
        }
    db_result_free(r);
    return 0;
}

int periods_write(MYSQL *db, struct counters *c, const struct ledger_row *rows, size_t nrows,
                  enum table t, unsigned *errnum, char *err, size_t errlen)
{
    const struct owner_sql *q = &SQL[t];
    size_t n = 0, nz = 0;
    struct agg **list = counters_sorted(c, t, &n);
    uint64_t added = 0;
    int rc = -1;
    *errnum = 0;
    if (n == 0 && strmap_count(c->maps[t]) == 0)
        return 0;
    if (list == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (stage(db, q, list, n, errnum, err, errlen) < 0 ||
        (q->create != NULL && db_exec(db, q->create, NULL, 0, NULL, NULL, errnum, err, errlen) < 0) ||
        db_exec(db, q->add, NULL, 0, NULL, &added, errnum, err, errlen) < 0)
        goto out;
    for (size_t i = 0; i < n; i++) /* zero sums change nothing: not counted */
        if (list[i]->s.spend != 0)
            list[nz++] = list[i];
    /* Fewer updated than staged: some period began inside the batch (or an
     * owner has no row, which the check below finds as well and leaves alone). */
    for (size_t i = 0; added < nz && i < nz; i += FIX_CHUNK)
        if (fix_chunk(db, c, t, list + i, nz - i < FIX_CHUNK ? nz - i : FIX_CHUNK, rows, nrows,
                      errnum, err, errlen) < 0)
            goto out;
    if (q->read != NULL && read_back(db, q, c->spent, errnum, err, errlen) < 0)
        goto out;
    rc = 0;
out:
    free(list);
    return rc;
}
