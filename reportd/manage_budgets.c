/* manage_budgets.c - shared budgets: /budget/new, /budget/update,
 * /budget/delete, /budget/info and /budget/list in LiteLLM's shapes, and the
 * budget-row helpers the customer routes use (declared in reportd.h).
 *
 * A budget row is shared by end users (customers.budget_id) and team
 * members (team_members.budget_id); accountd keeps their spend per period
 * and resets the period at budget_reset_at. A budget_duration given here
 * starts a new period now, as /key/generate and /key/update do for keys.
 * A budget still in use is never deleted, so no reference dangles.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "httpjson.h"
#include "ids.h"
#include "input.h"
#include "log.h"
#include "manage.h"

#define ER_DUP_ENTRY 1062
#define LIST_PAGE_MAX 1000
#define LIST_PAGE_DEFAULT 100

int budgets_read_fields(struct evhttp_request *req, json_t *body, struct budget_fields *f)
{
    memset(f, 0, sizeof(*f));
    if (input_money(req, body, "max_budget", f->max_budget, &f->has_max) < 0 ||
        input_money(req, body, "soft_budget", f->soft_budget, &f->has_soft) < 0 ||
        manage_period_read(req, body, "budget_duration", &f->period) < 0 ||
        input_int(req, body, "tpm_limit", 0, BUDGETS_TPM_RPM_MAX, &f->tpm_limit, &f->has_tpm) < 0 ||
        input_int(req, body, "rpm_limit", 0, BUDGETS_TPM_RPM_MAX, &f->rpm_limit, &f->has_rpm) < 0)
        return -1;
    return 0;
}

const char *budgets_first_field(const struct budget_fields *f)
{
    return f->has_max ? "max_budget" : f->has_soft ? "soft_budget"
         : f->period.text != NULL ? "budget_duration" : f->has_tpm ? "tpm_limit"
         : f->has_rpm ? "rpm_limit" : NULL;
}

int budgets_insert(MYSQL *db, const char *id, const struct budget_fields *f, unsigned *errnum,
                   char *err, size_t errlen)
{
    bool periodic = f->period.text != NULL;
    struct db_param p[] = {DB_STR(id), DB_STR(f->has_max ? f->max_budget : NULL),
                           DB_STR(f->has_soft ? f->soft_budget : NULL), DB_STR(f->period.text),
                           DB_STR(periodic ? f->period.reset_at : NULL),
                           DB_STR(periodic ? f->period.start : NULL),
                           manage_opt_int(f->has_tpm, f->tpm_limit),
                           manage_opt_int(f->has_rpm, f->rpm_limit)};
    return db_exec(db, "INSERT INTO budgets (budget_id, max_budget, soft_budget, budget_duration,"
                       " budget_reset_at, budget_period_start, tpm_limit, rpm_limit, created_at,"
                       " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6),"
                       " UTC_TIMESTAMP(6))", p, 8, NULL, NULL, errnum, err, errlen);
}

int budgets_apply(MYSQL *db, const char *id, const struct budget_fields *f, char *err,
                  size_t errlen)
{
    struct manage_set s;
    manage_set_init(&s, "budgets");
    if (f->has_max)
        manage_set(&s, "max_budget", DB_STR(f->max_budget));
    if (f->has_soft)
        manage_set(&s, "soft_budget", DB_STR(f->soft_budget));
    if (f->has_tpm)
        manage_set(&s, "tpm_limit", DB_I64(f->tpm_limit));
    if (f->has_rpm)
        manage_set(&s, "rpm_limit", DB_I64(f->rpm_limit));
    if (f->period.text != NULL) /* a new period starts now */
        manage_set_period(&s, &f->period);
    return manage_set_run(db, &s, "budget_id", id, NULL, NULL, err, errlen);
}

/* As accountd's reset: the spend of a period that starts now is what the
 * logs hold since its start, for every end user and team member on it. */
int budgets_recount(MYSQL *db, const char *id, const struct budget_fields *f, char *err,
                    size_t errlen)
{
    struct db_param p[] = {DB_STR(f->period.start), DB_STR(id)};
    if (f->period.text == NULL)
        return 0;
    if (db_exec(db, "UPDATE customers c SET c.spend = (SELECT COALESCE(SUM(l.spend), 0)"
                    " FROM spend_logs l WHERE l.start_time >= ? AND l.end_user = c.user_id)"
                    " WHERE c.budget_id = ?", p, 2, NULL, NULL, NULL, err, errlen) < 0 ||
        db_exec(db, "UPDATE team_members m SET m.spend = (SELECT COALESCE(SUM(l.spend), 0)"
                    " FROM spend_logs l WHERE l.start_time >= ? AND l.team_id = m.team_id"
                    " AND l.user = m.user_id) WHERE m.budget_id = ?",
                p, 2, NULL, NULL, NULL, err, errlen) < 0)
        return -1;
    return 0;
}

int budgets_lock(MYSQL *db, const char *id, bool exclusive, char *err, size_t errlen)
{
    struct db_result *r = NULL;
    struct db_param p[] = {DB_STR(id)};
    if (db_exec(db, exclusive ? "SELECT 1 FROM budgets WHERE budget_id = ? FOR UPDATE"
                              : "SELECT 1 FROM budgets WHERE budget_id = ? LOCK IN SHARE MODE",
                p, 1, &r, NULL, NULL, err, errlen) < 0)
        return -1;
    int found = r->nrows > 0;
    db_result_free(r);
    return found;
}

static int count(MYSQL *db, const char *sql, const struct db_param *p, size_t n, long long *out,
                 char *err, size_t errlen)
{
    struct db_result *r = NULL;
    if (db_exec(db, sql, p, n, &r, NULL, NULL, err, errlen) < 0)
        return -1;
    *out = strtoll(db_cell(r, 0, 0), NULL, 10);
    db_result_free(r);
    return 0;
}

int budgets_users(MYSQL *db, const char *id, const char *except_customer, long long *customers,
                  long long *members, char *err, size_t errlen)
{
    struct db_param c[] = {DB_STR(id), DB_STR(except_customer)};
    struct db_param m[] = {DB_STR(id)};
    if (count(db, except_customer != NULL
                      ? "SELECT COUNT(*) FROM customers WHERE budget_id = ? AND user_id <> ?"
                        " LOCK IN SHARE MODE"
                      : "SELECT COUNT(*) FROM customers WHERE budget_id = ? LOCK IN SHARE MODE",
              c, except_customer != NULL ? 2 : 1, customers, err, errlen) < 0 ||
        count(db, "SELECT COUNT(*) FROM team_members WHERE budget_id = ? LOCK IN SHARE MODE",
              m, 1, members, err, errlen) < 0)
        return -1;
    return 0;
}

json_t *budgets_json(const struct db_result *r, size_t i, size_t col)
{
    if (db_cell(r, i, col) == NULL)
        return json_null();
    return json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:s, s:s}",
        "budget_id", db_cell(r, i, col), "max_budget", httpjson_money_text(db_cell(r, i, col + 1)),
        "soft_budget", httpjson_money_text(db_cell(r, i, col + 2)),
        "budget_duration", httpjson_str_or_null(db_cell(r, i, col + 3)),
        "budget_reset_at", httpjson_str_or_null(db_cell(r, i, col + 4)),
        "tpm_limit", manage_int_or_null(db_cell(r, i, col + 5)),
        "rpm_limit", manage_int_or_null(db_cell(r, i, col + 6)),
        "created_at", db_cell(r, i, col + 7), "updated_at", db_cell(r, i, col + 8));
}

char *budgets_sql_in(const char *head, size_t n, const char *tail)
{
    size_t len = strlen(head) + 3 * n + strlen(tail) + 1;
    char *sql = malloc(len), *at;
    if (sql == NULL)
        return NULL;
    at = sql + snprintf(sql, len, "%s", head);
    for (size_t i = 0; i < n; i++)
        at += snprintf(at, len - (size_t)(at - sql), i == 0 ? "?" : ", ?");
    snprintf(at, len - (size_t)(at - sql), "%s", tail);
    return sql;
}

/* Answers budget `id`'s row, or 404 naming param. */
static void answer_budget(struct worker *w, struct evhttp_request *req, MYSQL *db,
                          const char *id, const char *param)
{
    struct db_result *r = NULL;
    struct db_param p[] = {DB_STR(id)};
    char err[512];
    if (db_exec(db, BUDGETS_SQL_ROW, p, 1, &r, NULL, NULL, err, sizeof(err)) < 0) {
        worker_db_failed(w, req, err);
        return;
    }
    if (r->nrows == 0)
        httpjson_error(req, 404, "not_found_error", param, "Budget not found, passed %s=%s",
                       param, id);
    else
        httpjson_reply(req, 200, budgets_json(r, 0, 0));
    db_result_free(r);
}

void manage_budget_new(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    json_t *body = httpjson_body(req, 1 << 16);
    struct budget_fields f;
    const char *id = NULL;
    char gen[IDS_UUID_LEN + 1], err[512];
    unsigned errnum = 0;
    MYSQL *db;
    (void)who;
    if (body == NULL)
        return;
    if (input_str(req, body, "budget_id", INPUT_ID_MAX, &id) < 0 ||
        budgets_read_fields(req, body, &f) < 0 || (db = worker_db(w, req)) == NULL)
        goto out;
    if (id == NULL) {
        if (ids_uuid4(gen) < 0) {
            httpjson_error(req, 500, "internal_error", NULL, "cannot generate a budget id");
            goto out;
        }
        id = gen;
    }
    if (budgets_insert(db, id, &f, &errnum, err, sizeof(err)) < 0) {
        if (errnum == ER_DUP_ENTRY)
            httpjson_error(req, 400, "invalid_request_error", "budget_id",
                           "Budget with id '%s' already exists.", id);
        else
            worker_db_failed(w, req, err);
        goto out;
    }
    log_info("budget created budget_id=%s", id);
    answer_budget(w, req, db, id, "budget_id");
out:
    json_decref(body);
}

void manage_budget_update(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    json_t *body = httpjson_body(req, 1 << 16);
    struct budget_fields f;
    const char *id = NULL;
    char err[512];
    MYSQL *db;
    (void)who;
    if (body == NULL)
        return;
    if (input_str(req, body, "budget_id", INPUT_ID_MAX, &id) < 0 ||
        budgets_read_fields(req, body, &f) < 0)
        goto out;
    if (id == NULL) {
        httpjson_error(req, 400, "invalid_request_error", "budget_id", "budget_id is required");
        goto out;
    }
    if ((db = worker_db(w, req)) == NULL)
        goto out;
    int found = -1;
    if (db_begin(db, err, sizeof(err)) < 0 || (found = budgets_lock(db, id, true, err,
                                                                    sizeof(err))) <= 0 ||
        budgets_apply(db, id, &f, err, sizeof(err)) < 0 ||
        budgets_recount(db, id, &f, err, sizeof(err)) < 0 || db_commit(db, err, sizeof(err)) < 0) {
        db_rollback(db);
        if (found == 0)
            httpjson_error(req, 404, "not_found_error", "budget_id",
                           "Budget not found, passed budget_id=%s", id);
        else
            worker_db_failed(w, req, err);
        goto out;
    }
    log_info("budget updated budget_id=%s", id);
    answer_budget(w, req, db, id, "budget_id");
out:
    json_decref(body);
}

/* In /budget/delete's transaction: 0 and the row in *row when budget `id`
 * exists and nobody uses it; else answered (-1) or a DB error (-2, err). */
static int deletable(struct evhttp_request *req, MYSQL *db, const char *id,
                     struct db_result **row, char *err, size_t errlen)
{
    struct db_param p[] = {DB_STR(id)};
    long long customers = 0, members = 0;
    if (db_exec(db, BUDGETS_SQL_ROW " FOR UPDATE", p, 1, row, NULL, NULL, err, errlen) < 0 ||
        budgets_users(db, id, NULL, &customers, &members, err, errlen) < 0)
        return -2;
    if ((*row)->nrows == 0) {
        httpjson_error(req, 404, "not_found_error", "id", "Budget not found, passed id=%s", id);
        return -1;
    }
    if (customers > 0 || members > 0) {
        httpjson_error(req, 400, "invalid_request_error", "id",
                       "Budget %s is still used by %lld customer(s) and %lld team member(s);"
                       " give them another budget (budget_id) or delete them first",
                       id, customers, members);
        return -1;
    }
    return 0;
}

void manage_budget_delete(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    json_t *body = httpjson_body(req, 1 << 16);
    struct db_result *row = NULL;
    const char *id = NULL;
    char err[512];
    MYSQL *db;
    (void)who;
    if (body == NULL)
        return;
    if (input_str(req, body, "id", INPUT_ID_MAX, &id) < 0)
        goto out;
    if (id == NULL) {
        httpjson_error(req, 400, "invalid_request_error", "id", "id (the budget_id) is required");
        goto out;
    }
    if ((db = worker_db(w, req)) == NULL)
        goto out;
    if (db_begin(db, err, sizeof(err)) < 0) {
        worker_db_failed(w, req, err);
        goto out;
    }
    int ok = deletable(req, db, id, &row, err, sizeof(err));
    struct db_param p[] = {DB_STR(id)};
    if (ok == 0 && (db_exec(db, "DELETE FROM budgets WHERE budget_id = ?", p, 1, NULL, NULL, NULL,
                            err, sizeof(err)) < 0 || db_commit(db, err, sizeof(err)) < 0))
        ok = -2;
    if (ok < 0) {
        db_rollback(db);
        if (ok == -2)
            worker_db_failed(w, req, err);
        goto out;
    }
    log_info("budget deleted budget_id=%s", id);
    httpjson_reply(req, 200, budgets_json(row, 0, 0)); /* LiteLLM answers the deleted row */
out:
    db_result_free(row);
    json_decref(body);
}

/* Answers every row of r as a JSON list of budgets. */
static void answer_rows(struct evhttp_request *req, const struct db_result *r)
{
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && i < r->nrows; i++) {
        if (json_array_append_new(list, budgets_json(r, i, 0)) < 0) {
            json_decref(list);
            list = NULL;
        }
    }
    if (list == NULL)
        httpjson_error(req, 500, "internal_error", NULL, "out of memory");
    else
        httpjson_reply(req, 200, list);
}

void manage_budget_info(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    json_t *body = httpjson_body(req, 1 << 20), *ids;
    struct db_param *p = NULL;
    struct db_result *r = NULL;
    char *sql = NULL, err[512];
    MYSQL *db;
    (void)who;
    if (body == NULL)
        return;
    if (input_id_list(req, body, "budgets", BUDGETS_ID_LIST_MAX, &ids) < 0 ||
        (db = worker_db(w, req)) == NULL)
        goto out;
    size_t n = json_array_size(ids);
    sql = budgets_sql_in("SELECT " BUDGETS_SQL_COLS("") " FROM budgets WHERE budget_id IN (", n,
                         ") ORDER BY budget_id");
    p = calloc(n, sizeof(*p));
    if (sql == NULL || p == NULL) {
        httpjson_error(req, 500, "internal_error", NULL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        p[i] = DB_STR(json_string_value(json_array_get(ids, i)));
    if (db_exec(db, sql, p, n, &r, NULL, NULL, err, sizeof(err)) < 0) {
        worker_db_failed(w, req, err);
        goto out;
    }
    answer_rows(req, r);
out:
    db_result_free(r);
    free(p);
    free(sql);
    json_decref(body);
}

/* LiteLLM answers the whole table as a list; the list here is the same
 * shape, one page of it (page, size), so no call reads a whole table. */
void manage_budget_list(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    struct query *q = query_parse(req);
    struct db_result *r = NULL;
    long page, size;
    char err[512];
    MYSQL *db;
    (void)who;
    if (q == NULL)
        return;
    if (query_int(req, q, "page", 1, 1000000, 1, &page) < 0 ||
        query_int(req, q, "size", 1, LIST_PAGE_MAX, LIST_PAGE_DEFAULT, &size) < 0 ||
        (db = worker_db(w, req)) == NULL)
        goto out;
    struct db_param p[] = {DB_I64(size), DB_I64((page - 1) * size)};
    if (db_exec(db, "SELECT " BUDGETS_SQL_COLS("") " FROM budgets ORDER BY created_at, budget_id"
                    " LIMIT ? OFFSET ?", p, 2, &r, NULL, NULL, err, sizeof(err)) < 0) {
        worker_db_failed(w, req, err);
        goto out;
    }
    answer_rows(req, r);
out:
    db_result_free(r);
    query_free(q);
}
