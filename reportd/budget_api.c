/* budget_api.c - the hosted BudgetManager: LiteLLM's POST /get_budget and
 * POST /set_budget (a project's whole user dict), and Tollgate's atomic
 * per-user routes /budget_manager/create_budget, /update_cost and
 * /reset_cost, which change one user in one row-locked transaction so
 * concurrent clients never overwrite each other's costs.
 *
 * Every query is scoped by project_name. Amounts are DECIMAL(38,20) and are
 * added in SQL from exact decimal text; times are Unix seconds with
 * microseconds, as LiteLLM's floats. api.c marks every answer of these routes
 * with x-tollgate-budget-manager: 1, so a client knows the atomic routes
 * exist (a LiteLLM server has only the first two).
 */
#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget_api.h"
#include "db_bulk.h"
#include "httpjson.h"
#include "input.h"
#include "log.h"
#include "reportd.h"

#define BODY_MAX (8 * 1024 * 1024) /* a whole dict; evhttp's own limit (main.c) */
#define BODY_USER_MAX (1 << 16)    /* one user's request */
#define TX_ATTEMPTS 3              /* a deadlock or lock wait timeout is retried */

/* One per-user request, read and checked. */
struct bm_req {
    const char *project, *user, *model, *duration;
    char amount[MONEY_STR_MAX]; /* total_budget or cost */
    char time[BM_TIME_STR_MAX]; /* created_at or if_last_updated_at */
    bool has_time;
    /* /set_budget */
    struct bm_entry *entries;
    size_t n, models;
};

/* What a transaction found, beyond a DB error. */
struct bm_tx {
    char err[512];
    unsigned errnum;
    bool no_user;  /* answer 404 naming "user" */
    bool reset;    /* /reset_cost: whether it reset */
    json_t *entry; /* the user's entry after the change */
};

typedef int (*bm_tx_fn)(MYSQL *db, const struct bm_req *in, struct bm_tx *tx);

/* Runs fn in a transaction, again after a deadlock; 0 committed (or rolled
 * back when fn found no user: tx->no_user), -1 answered. */
static int run_tx(struct worker *w, struct evhttp_request *req, bm_tx_fn fn,
                  const struct bm_req *in, struct bm_tx *tx)
{
    MYSQL *db = worker_db(w, req);
    int rc = -1;
    if (db == NULL)
        return -1;
    for (int attempt = 0; attempt < TX_ATTEMPTS; attempt++) {
        json_decref(tx->entry);
        tx->entry = NULL;
        tx->errnum = 0;
        tx->no_user = false;
        if (db_begin(db, tx->err, sizeof(tx->err)) < 0)
            break;
        rc = fn(db, in, tx);
        if (rc == 0 && !tx->no_user && db_commit(db, tx->err, sizeof(tx->err)) < 0)
            rc = -1;
        if (rc == 0 && !tx->no_user)
            return 0;
        db_rollback(db);
        if (rc == 0 || (tx->errnum != ER_LOCK_DEADLOCK && tx->errnum != ER_LOCK_WAIT_TIMEOUT))
            break;
    }
    if (rc == 0 && tx->no_user)
        httpjson_error(req, 404, "not_found_error", "user",
                       "User not found in project '%s', passed user=%s", in->project, in->user);
    else if (tx->errnum == ER_WARN_DATA_OUT_OF_RANGE || tx->errnum == ER_DATA_OUT_OF_RANGE)
        httpjson_error(req, 400, "invalid_request_error", "cost",
                       "Invalid cost: the user's cost would exceed the largest amount stored"
                       " (DECIMAL(38,20))");
    else
        worker_db_failed(w, req, tx->err);
    return -1;
}

static int exec(MYSQL *db, const char *sql, const struct db_param *p, size_t n,
                struct db_result **r, struct bm_tx *tx)
{
    return db_exec(db, sql, p, n, r, NULL, &tx->errnum, tx->err, sizeof(tx->err));
}

/* Locks the user's row; 1 found (stored last_updated_at into last, may be
 * NULL), 0 not (tx->no_user), -1 DB error. */
static int lock_user(MYSQL *db, const struct bm_req *in, struct bm_tx *tx,
                     char last[BM_TIME_STR_MAX])
{
    struct db_result *r = NULL;
    struct db_param p[] = {DB_STR(in->project), DB_STR(in->user)};
    if (exec(db, "SELECT last_updated_at FROM budget_manager_users WHERE project = ? AND"
                 " user = ? FOR UPDATE", p, 2, &r, tx) < 0)
        return -1;
    int found = r->nrows > 0;
    if (found && last != NULL)
        snprintf(last, BM_TIME_STR_MAX, "%s", db_cell(r, 0, 0));
    tx->no_user = !found;
    db_result_free(r);
    return found;
}

/* Reads the user's entry (its own transaction's view) into tx->entry. */
static int load_entry(MYSQL *db, const struct bm_req *in, struct bm_tx *tx)
{
    struct db_result *u = NULL, *m = NULL;
    struct db_param p[] = {DB_STR(in->project), DB_STR(in->user)};
    int rc = -1;
    if (exec(db, "SELECT " BM_SQL_ENTRY_COLS " FROM budget_manager_users WHERE project = ?"
                 " AND user = ?", p, 2, &u, tx) < 0 ||
        exec(db, "SELECT model, cost FROM budget_manager_model_cost WHERE project = ? AND"
                 " user = ? ORDER BY model", p, 2, &m, tx) < 0)
        goto out;
    if (u->nrows == 0) {
        tx->no_user = true;
        rc = 0;
        goto out;
    }
    tx->entry = bm_entry_json(u, 0, 0);
    rc = tx->entry != NULL ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < m->nrows; i++)
        rc = bm_entry_add_model(tx->entry, db_cell(m, i, 0), db_cell(m, i, 1));
    if (rc < 0)
        snprintf(tx->err, sizeof(tx->err), "out of memory");
out:
    db_result_free(u);
    db_result_free(m);
    return rc;
}

/* {"status": "success", "data": data} (reference stolen), plus members. */
static void answer(struct evhttp_request *req, json_t *data, const char *flag, bool value)
{
    json_t *out = json_pack("{s:s, s:o}", "status", "success", "data", data);
    if (out != NULL && flag != NULL && json_object_set_new(out, flag, json_boolean(value)) < 0) {
        json_decref(out);
        out = NULL;
    }
    if (out == NULL)
        httpjson_error(req, 500, "internal_error", NULL, "out of memory");
    else
        httpjson_reply(req, 200, out);
}

/* ---- LiteLLM's whole-dict routes */

/* Adds every model cost row of r to its user's entry in data. */
static int add_model_costs(json_t *data, const struct db_result *r)
{
    for (size_t i = 0; i < r->nrows; i++) {
        json_t *entry = json_object_get(data, db_cell(r, i, 0));
        if (entry != NULL && bm_entry_add_model(entry, db_cell(r, i, 1), db_cell(r, i, 2)) < 0)
            return -1;
    }
    return 0;
}

/* The project's users and costs, read in one snapshot; -1 answered. */
static int read_project(struct worker *w, struct evhttp_request *req, MYSQL *db,
                        const char *project, json_t **data)
{
    struct db_result *u = NULL, *m = NULL;
    struct db_param p[] = {DB_STR(project), DB_I64(BM_USERS_MAX + 1)};
    char err[512];
    int rc = -1;
    if (db_begin(db, err, sizeof(err)) < 0 ||
        db_exec(db, "SELECT user, " BM_SQL_ENTRY_COLS " FROM budget_manager_users WHERE"
                    " project = ? ORDER BY user LIMIT ?", p, 2, &u, NULL, NULL, err,
                sizeof(err)) < 0 ||
        (u->nrows <= BM_USERS_MAX &&
         db_exec(db, "SELECT user, model, cost FROM budget_manager_model_cost WHERE project = ?"
                     " ORDER BY user, model", p, 1, &m, NULL, NULL, err, sizeof(err)) < 0) ||
        db_commit(db, err, sizeof(err)) < 0) {
        db_rollback(db);
        worker_db_failed(w, req, err);
        goto out;
    }
    if (u->nrows > BM_USERS_MAX) {
        httpjson_error(req, 400, "invalid_request_error", "project_name",
                       "Project '%s' has more than %d users: too many for one answer"
                       " (LiteLLM's whole-dict API cannot page)", project, BM_USERS_MAX);
        goto out;
    }
    *data = json_object();
    for (size_t i = 0; *data != NULL && i < u->nrows; i++) {
        json_t *entry = bm_entry_json(u, i, 1);
        if (entry == NULL || json_object_set_new(*data, db_cell(u, i, 0), entry) < 0) {
            json_decref(*data);
            *data = NULL;
        }
    }
    if (*data != NULL && add_model_costs(*data, m) < 0) {
        json_decref(*data);
        *data = NULL;
    }
    if (*data == NULL)
        httpjson_error(req, 500, "internal_error", NULL, "out of memory");
    rc = *data != NULL ? 0 : -1;
out:
    db_result_free(u);
    db_result_free(m);
    return rc;
}

void budget_get(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    json_t *body = httpjson_body(req, BODY_USER_MAX), *data = NULL;
    const char *project;
    MYSQL *db;
    (void)who;
    if (body == NULL)
        return;
    if (bm_required_id(req, body, "project_name", &project) == 0 &&
        (db = worker_db(w, req)) != NULL && read_project(w, req, db, project, &data) == 0)
        answer(req, data, NULL, false);
    json_decref(body);
}

/* The project's users become exactly in->entries. */
static int set_tx(MYSQL *db, const struct bm_req *in, struct bm_tx *tx)
{
    struct db_param p[] = {DB_STR(in->project)};
    struct db_bulk *users = db_bulk_new(7), *costs = db_bulk_new(4);
    int rc = -1;
    /* the model costs are ours: decimal text of each amount, bound by reference */
    char (*texts)[MONEY_STR_MAX] = calloc(in->models + 1, sizeof(*texts));
    size_t k = 0;
    if (users == NULL || costs == NULL || texts == NULL) {
        snprintf(tx->err, sizeof(tx->err), "out of memory");
        goto out;
    }
    for (size_t i = 0; i < in->n; i++) {
        const struct bm_entry *e = &in->entries[i];
        struct db_param u[] = {DB_STR(in->project), DB_STR(e->user), DB_STR(e->total_budget),
                               DB_STR(e->duration), DB_STR(e->created_at),
                               DB_STR(e->last_updated_at), DB_STR(e->current_cost)};
        const char *model;
        json_t *v;
        if (db_bulk_add(users, u) < 0)
            goto oom;
        json_object_foreach(e->model_cost, model, v) {
            money_t m;
            if (money_from_double(json_number_value(v), &m) < 0) /* checked before */
                goto oom;
            money_format(m, texts[k]);
            struct db_param c[] = {DB_STR(in->project), DB_STR(e->user), DB_STR(model),
                                   DB_STR(texts[k++])};
            if (db_bulk_add(costs, c) < 0)
                goto oom;
        }
    }
    /* users first: the per-user routes lock a user's row before its costs */
    if (exec(db, "DELETE FROM budget_manager_users WHERE project = ?", p, 1, NULL, tx) < 0 ||
        exec(db, "DELETE FROM budget_manager_model_cost WHERE project = ?", p, 1, NULL, tx) < 0 ||
        db_bulk_exec(db, "INSERT INTO budget_manager_users (project, user, total_budget, duration,"
                         " created_at, last_updated_at, current_cost) VALUES (?, ?, ?, ?, ?, ?,"
                         " ?)", users, NULL, &tx->errnum, tx->err, sizeof(tx->err)) < 0 ||
        db_bulk_exec(db, "INSERT INTO budget_manager_model_cost (project, user, model, cost)"
                         " VALUES (?, ?, ?, ?)", costs, NULL, &tx->errnum, tx->err,
                     sizeof(tx->err)) < 0)
        goto out;
    rc = 0;
    goto out;
oom:
    snprintf(tx->err, sizeof(tx->err), "out of memory");
out:
    free(texts);
    db_bulk_free(users);
    db_bulk_free(costs);
    return rc;
}

void budget_set(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    json_t *body = httpjson_body(req, BODY_MAX);
    struct bm_req in = {0};
    struct bm_tx tx = {0};
    (void)who;
    if (body == NULL)
        return;
    if (bm_required_id(req, body, "project_name", &in.project) < 0 ||
        bm_read_user_dict(req, body, &in.entries, &in.n, &in.models) < 0)
        goto out;
    if (run_tx(w, req, set_tx, &in, &tx) == 0) {
        log_info("budget manager: project %s set, %zu users", in.project, in.n);
        json_t *out = json_pack("{s:s}", "status", "success");
        if (out != NULL)
            httpjson_reply(req, 200, out);
        else
            httpjson_error(req, 500, "internal_error", NULL, "out of memory");
    }
out:
    free(in.entries);
    json_decref(body);
}

/* ---- Tollgate's per-user routes */

/* Reads project_name and user; -1 answered. */
static int read_user(struct evhttp_request *req, json_t *body, struct bm_req *in)
{
    if (bm_required_id(req, body, "project_name", &in->project) < 0 ||
        bm_required_id(req, body, "user", &in->user) < 0)
        return -1;
    return 0;
}

/* Creates the user, or replaces its budget keeping its costs. */
static int create_tx(MYSQL *db, const struct bm_req *in, struct bm_tx *tx)
{
    char now[BM_TIME_STR_MAX];
    bm_now(now);
    const char *created = in->has_time ? in->time : now;
    struct db_param p[] = {DB_STR(in->project), DB_STR(in->user), DB_STR(in->amount),
                           DB_STR(in->duration), DB_STR(created), DB_STR(created)};
    if (exec(db, "INSERT INTO budget_manager_users (project, user, total_budget, duration,"
                 " created_at, last_updated_at, current_cost) VALUES (?, ?, ?, ?, ?, ?, 0)"
                 " ON DUPLICATE KEY UPDATE total_budget = VALUES(total_budget),"
                 " duration = VALUES(duration), created_at = VALUES(created_at)",
             p, 6, NULL, tx) < 0)
        return -1;
    return load_entry(db, in, tx);
}

void budget_create(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    json_t *body = httpjson_body(req, BODY_USER_MAX);
    struct bm_req in = {0};
    struct bm_tx tx = {0};
    (void)who;
    if (body == NULL)
        return;
    if (read_user(req, body, &in) < 0 ||
        bm_required_money(req, body, "total_budget", in.amount) < 0 ||
        bm_duration_param(req, body, "duration", &in.duration) < 0 ||
        bm_time_param(req, body, "created_at", in.time, &in.has_time) < 0)
        goto out;
    if (run_tx(w, req, create_tx, &in, &tx) == 0) {
        log_info("budget manager: project %s user %s budget %s", in.project, in.user, in.amount);
        answer(req, tx.entry, NULL, false);
        tx.entry = NULL;
    }
out:
    json_decref(tx.entry);
    json_decref(body);
}

/* current_cost and model_cost[model] += cost, in SQL, on the locked row. */
static int update_tx(MYSQL *db, const struct bm_req *in, struct bm_tx *tx)
{
    char now[BM_TIME_STR_MAX];
    int found = lock_user(db, in, tx, NULL);
    if (found <= 0)
        return found;
    bm_now(now);
    struct db_param u[] = {DB_STR(in->amount), DB_STR(now), DB_STR(in->project), DB_STR(in->user)};
    struct db_param m[] = {DB_STR(in->project), DB_STR(in->user), DB_STR(in->model),
                           DB_STR(in->amount)};
    if (exec(db, "UPDATE budget_manager_users SET current_cost = current_cost +"
                 " CAST(? AS DECIMAL(38,20)), last_updated_at = ? WHERE project = ? AND"
                 " user = ?", u, 4, NULL, tx) < 0 ||
        exec(db, "INSERT INTO budget_manager_model_cost (project, user, model, cost) VALUES"
                 " (?, ?, ?, CAST(? AS DECIMAL(38,20))) ON DUPLICATE KEY UPDATE"
                 " cost = cost + VALUES(cost)", m, 4, NULL, tx) < 0)
        return -1;
    return load_entry(db, in, tx);
}

void budget_update_cost(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    json_t *body = httpjson_body(req, BODY_USER_MAX);
    struct bm_req in = {0};
    struct bm_tx tx = {0};
    (void)who;
    if (body == NULL)
        return;
    if (read_user(req, body, &in) < 0 || bm_required_id(req, body, "model", &in.model) < 0 ||
        bm_required_money(req, body, "cost", in.amount) < 0)
        goto out;
    if (run_tx(w, req, update_tx, &in, &tx) == 0) {
        answer(req, tx.entry, NULL, false);
        tx.entry = NULL;
    }
out:
    json_decref(tx.entry);
    json_decref(body);
}

/* Two DECIMAL(20,6) texts are the same time as the answers show times: JSON
 * numbers of 15 significant digits (httpjson_reply), about 10 us today. A
 * client can only send back what it was shown; two changes of one row, each
 * a locked, committed transaction, are practically never that close. */
static bool same_time(const char *a, const char *b)
{
    char x[40], y[40];
    snprintf(x, sizeof(x), "%.15g", strtod(a, NULL));
    snprintf(y, sizeof(y), "%.15g", strtod(b, NULL));
    return strcmp(x, y) == 0;
}

/* Zero costs, unless if_last_updated_at is given and no longer stored. */
static int reset_tx(MYSQL *db, const struct bm_req *in, struct bm_tx *tx)
{
    char now[BM_TIME_STR_MAX], last[BM_TIME_STR_MAX];
    int found = lock_user(db, in, tx, last);
    if (found <= 0)
        return found;
    tx->reset = !in->has_time || same_time(in->time, last);
    if (tx->reset) {
        bm_now(now);
        struct db_param u[] = {DB_STR(now), DB_STR(in->project), DB_STR(in->user)};
        if (exec(db, "UPDATE budget_manager_users SET current_cost = 0, last_updated_at = ?"
                     " WHERE project = ? AND user = ?", u, 3, NULL, tx) < 0 ||
            exec(db, "DELETE FROM budget_manager_model_cost WHERE project = ? AND user = ?",
                 u + 1, 2, NULL, tx) < 0)
            return -1;
    }
    return load_entry(db, in, tx);
}

void budget_reset_cost(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    json_t *body = httpjson_body(req, BODY_USER_MAX);
    struct bm_req in = {0};
    struct bm_tx tx = {0};
    (void)who;
    if (body == NULL)
        return;
    if (read_user(req, body, &in) < 0 ||
        bm_time_param(req, body, "if_last_updated_at", in.time, &in.has_time) < 0)
        goto out;
    if (run_tx(w, req, reset_tx, &in, &tx) == 0) {
        if (tx.reset)
            log_info("budget manager: project %s user %s cost reset", in.project, in.user);
        answer(req, tx.entry, "reset", tx.reset);
        tx.entry = NULL;
    }
out:
    json_decref(tx.entry);
    json_decref(body);
}
