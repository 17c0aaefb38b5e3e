/* manage_customers.c - end users (LiteLLM's customers): /customer/new,
 * /customer/info, /customer/update, /customer/delete, /customer/block and
 * /customer/unblock (each also under /end_user/...), in LiteLLM's shapes.
 *
 * A customer's budget is a row of `budgets` (manage_budgets.c): either a
 * shared one named by budget_id, or its own, created from inline budget
 * fields (max_budget, soft_budget, budget_duration, tpm_limit, rpm_limit).
 * Giving both is refused (422), as LiteLLM does for max_budget + budget_id.
 * accountd also creates customers, on their first request, without a
 * budget; proxyd reads the rows (blocked, budget) for its refusals. Deleting
 * a customer keeps its logs and rollups.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "httpjson.h"
#include "ids.h"
#include "input.h"
#include "log.h"
#include "manage.h"

#define ER_DUP_ENTRY 1062

#define CUSTOMER_SQL "SELECT c.user_id, c.alias, c.spend, c.blocked, c.budget_id, " \
    BUDGETS_SQL_COLS("b.") " FROM customers c LEFT JOIN budgets b ON b.budget_id = c.budget_id"

/* In a transaction: 0 done, ANSWERED (the client has its 4xx), DB_FAILED (err). */
enum { ANSWERED = -1, DB_FAILED = -2 };

/* One customer row of CUSTOMER_SQL as LiteLLM's end-user object. */
static json_t *customer_json(const struct db_result *r, size_t i)
{
    return json_pack("{s:s, s:o, s:o, s:b, s:o, s:o}", "user_id", db_cell(r, i, 0),
        "alias", httpjson_str_or_null(db_cell(r, i, 1)),
        "spend", httpjson_money_text(db_cell(r, i, 2)),
        "blocked", strcmp(db_cell(r, i, 3), "0") != 0,
        "budget_id", httpjson_str_or_null(db_cell(r, i, 4)),
        "litellm_budget_table", budgets_json(r, i, 5));
}

static void answer_customer(struct worker *w, struct evhttp_request *req, MYSQL *db,
                            const char *user_id, const char *param)
{
    struct db_result *r = NULL;
    struct db_param p[] = {DB_STR(user_id)};
    char err[512];
    if (db_exec(db, CUSTOMER_SQL " WHERE c.user_id = ?", p, 1, &r, NULL, NULL, err,
                sizeof(err)) < 0) {
        worker_db_failed(w, req, err);
        return;
    }
    if (r->nrows == 0)
        httpjson_error(req, 404, "not_found_error", param, "End User Id=%s does not exist in db",
                       user_id);
    else
        httpjson_reply(req, 200, customer_json(r, 0));
    db_result_free(r);
}

/* The body of /customer/new and /customer/update. */
struct customer_input {
    const char *user_id, *alias, *budget_id;
    bool blocked, has_blocked;
    struct budget_fields f;
    char own_id[IDS_UUID_LEN + 1]; /* a budget created from the inline fields */
};

static int read_input(struct evhttp_request *req, json_t *body, struct customer_input *in)
{
    memset(in, 0, sizeof(*in));
    if (input_str(req, body, "user_id", INPUT_ID_MAX, &in->user_id) < 0 ||
        input_str(req, body, "alias", INPUT_ID_MAX, &in->alias) < 0 ||
        input_bool(req, body, "blocked", &in->blocked) < 0 ||
        input_str(req, body, "budget_id", INPUT_ID_MAX, &in->budget_id) < 0 ||
        budgets_read_fields(req, body, &in->f) < 0)
        return -1;
    in->has_blocked = json_is_boolean(json_object_get(body, "blocked"));
    if (in->user_id == NULL) {
        httpjson_error(req, 400, "invalid_request_error", "user_id", "user_id is required");
        return -1;
    }
    const char *field = budgets_first_field(&in->f);
    if (in->budget_id != NULL && field != NULL) { /* which budget would it be? */
        httpjson_error(req, 422, "invalid_request_error", field,
                       "Set either '%s' or 'budget_id', not both.", field);
        return -1;
    }
    return 0;
}

/* Locks the shared budget in->budget_id (so /budget/delete waits for us). */
static int lock_named_budget(struct evhttp_request *req, MYSQL *db,
                             const struct customer_input *in, char *err, size_t errlen)
{
    int found = budgets_lock(db, in->budget_id, false, err, errlen);
    if (found < 0)
        return DB_FAILED;
    if (found == 0) {
        httpjson_error(req, 400, "invalid_request_error", "budget_id",
                       "Budget not found, passed budget_id=%s", in->budget_id);
        return ANSWERED;
    }
    return 0;
}

/* Creates the customer's own budget from the inline fields, as in->own_id. */
static int create_own_budget(struct evhttp_request *req, MYSQL *db, struct customer_input *in,
                             char *err, size_t errlen)
{
    if (ids_uuid4(in->own_id) < 0) {
        httpjson_error(req, 500, "internal_error", NULL, "cannot generate a budget id");
        return ANSWERED;
    }
    return budgets_insert(db, in->own_id, &in->f, NULL, err, errlen) < 0 ? DB_FAILED : 0;
}

static int create_in_txn(struct evhttp_request *req, MYSQL *db, struct customer_input *in,
                         char *err, size_t errlen)
{
    const char *link = in->budget_id;
    unsigned errnum = 0;
    int rc = 0;
    if (in->budget_id != NULL) {
        rc = lock_named_budget(req, db, in, err, errlen);
    } else if (budgets_first_field(&in->f) != NULL) {
        rc = create_own_budget(req, db, in, err, errlen);
        link = in->own_id;
    }
    if (rc < 0)
        return rc;
    struct db_param p[] = {DB_STR(in->user_id), DB_STR(in->alias), DB_I64(in->blocked),
                           DB_STR(link)};
    if (db_exec(db, "INSERT INTO customers (user_id, alias, blocked, budget_id, spend, created_at,"
                    " updated_at) VALUES (?, ?, ?, ?, 0, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
                p, 4, NULL, NULL, &errnum, err, errlen) == 0)
        return 0;
    if (errnum != ER_DUP_ENTRY)
        return DB_FAILED;
    httpjson_error(req, 400, "invalid_request_error", "user_id",
                   "Customer already exists, passed user_id=%s. Please pass a new user_id.",
                   in->user_id);
    return ANSWERED;
}

/* Runs step (a create or update) in a transaction and answers the customer. */
static void in_txn(struct worker *w, struct evhttp_request *req, json_t *body,
                   int (*step)(struct evhttp_request *, MYSQL *, struct customer_input *,
                               char *, size_t), const char *verb)
{
    struct customer_input in;
    char err[512];
    MYSQL *db;
    if (read_input(req, body, &in) < 0 || (db = worker_db(w, req)) == NULL)
        return;
    int rc = db_begin(db, err, sizeof(err)) < 0 ? DB_FAILED : step(req, db, &in, err, sizeof(err));
    if (rc == 0 && db_commit(db, err, sizeof(err)) < 0)
        rc = DB_FAILED;
    if (rc < 0) {
        db_rollback(db);
        if (rc == DB_FAILED)
            worker_db_failed(w, req, err);
        return;
    }
    log_info("customer %s user_id=%s", verb, in.user_id);
    answer_customer(w, req, db, in.user_id, "user_id");
}

void manage_customer_new(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    json_t *body = httpjson_body(req, 1 << 16);
    (void)who;
    if (body == NULL)
        return;
    in_txn(w, req, body, create_in_txn, "created");
    json_decref(body);
}

void manage_customer_info(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    struct query *q = query_parse(req);
    const char *id;
    MYSQL *db;
    (void)who;
    if (q == NULL)
        return;
    if (query_str(req, q, "end_user_id", INPUT_ID_MAX, &id) < 0)
        goto out;
    if (id == NULL)
        httpjson_error(req, 400, "invalid_request_error", "end_user_id", "end_user_id is required");
    else if ((db = worker_db(w, req)) != NULL)
        answer_customer(w, req, db, id, "end_user_id");
out:
    query_free(q);
}

/* /customer/update's budget fields: they change the customer's own budget
 * (one nobody else uses) or create one. A shared budget is refused rather
 * than changed for everyone who shares it. */
static int update_own_budget(struct evhttp_request *req, MYSQL *db, struct customer_input *in,
                             const char *current, const char **link, char *err, size_t errlen)
{
    long long customers = 0, members = 0;
    int found = current != NULL ? budgets_lock(db, current, true, err, errlen) : 0;
    if (found < 0)
        return DB_FAILED;
    if (found == 0) {
        int rc = create_own_budget(req, db, in, err, errlen);
        *link = in->own_id;
        return rc;
    }
    if (budgets_users(db, current, in->user_id, &customers, &members, err, errlen) < 0)
        return DB_FAILED;
    if (customers > 0 || members > 0) {
        httpjson_error(req, 400, "invalid_request_error", budgets_first_field(&in->f),
                       "Customer %s's budget %s is shared with %lld other customer(s) and %lld"
                       " team member(s): change it with /budget/update, or give this customer"
                       " another one with budget_id", in->user_id, current, customers, members);
        return ANSWERED;
    }
    if (budgets_apply(db, current, &in->f, err, errlen) < 0 ||
        budgets_recount(db, current, &in->f, err, errlen) < 0)
        return DB_FAILED;
    return 0;
}

static int update_in_txn(struct evhttp_request *req, MYSQL *db, struct customer_input *in,
                         char *err, size_t errlen)
{
    struct db_result *r = NULL;
    struct db_param key[] = {DB_STR(in->user_id)};
    const char *link = NULL;
    int rc = 0;
    if (db_exec(db, "SELECT budget_id FROM customers WHERE user_id = ? FOR UPDATE", key, 1, &r,
                NULL, NULL, err, errlen) < 0)
        return DB_FAILED;
    if (r->nrows == 0) {
        httpjson_error(req, 404, "not_found_error", "user_id",
                       "End User Id=%s does not exist in db", in->user_id);
        rc = ANSWERED;
    } else if (in->budget_id != NULL) {
        rc = lock_named_budget(req, db, in, err, errlen);
        link = in->budget_id;
    } else if (budgets_first_field(&in->f) != NULL) {
        rc = update_own_budget(req, db, in, db_cell(r, 0, 0), &link, err, errlen);
    }
    db_result_free(r);
    if (rc < 0)
        return rc;
    char sql[256] = "UPDATE customers SET updated_at = UTC_TIMESTAMP(6)";
    struct db_param p[4];
    size_t n = 0;
    if (in->alias != NULL) {
        strcat(sql, ", alias = ?");
        p[n++] = DB_STR(in->alias);
    }
    if (in->has_blocked) {
        strcat(sql, ", blocked = ?");
        p[n++] = DB_I64(in->blocked);
    }
    if (link != NULL) {
        strcat(sql, ", budget_id = ?");
        p[n++] = DB_STR(link);
    }
    strcat(sql, " WHERE user_id = ?");
    p[n++] = DB_STR(in->user_id);
    /* a new own budget with a duration: the customer's period starts now */
    if (db_exec(db, sql, p, n, NULL, NULL, NULL, err, errlen) < 0 ||
        (link == in->own_id && budgets_recount(db, link, &in->f, err, errlen) < 0))
        return DB_FAILED;
    return 0;
}

void manage_customer_update(struct worker *w, struct evhttp_request *req,
                            const struct caller *who)
{
    json_t *body = httpjson_body(req, 1 << 16);
    (void)who;
    if (body == NULL)
        return;
    in_txn(w, req, body, update_in_txn, "updated");
    json_decref(body);
}

/* The user_ids of a list body, with their IN (...) parameters. */
struct id_list {
    json_t *ids; /* borrowed from the body */
    size_t n;
    struct db_param *p;
};

static int read_ids(struct evhttp_request *req, json_t *body, struct id_list *l)
{
    memset(l, 0, sizeof(*l));
    if (input_id_list(req, body, "user_ids", BUDGETS_ID_LIST_MAX, &l->ids) < 0)
        return -1;
    l->n = json_array_size(l->ids);
    if ((l->p = calloc(l->n, sizeof(*l->p))) == NULL) {
        httpjson_error(req, 500, "internal_error", NULL, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < l->n; i++)
        l->p[i] = DB_STR(json_string_value(json_array_get(l->ids, i)));
    return 0;
}

/* Runs head + "IN (?, ...)" + tail over the ids. */
static int exec_in(MYSQL *db, const char *head, const struct id_list *l, const char *tail,
                   struct db_result **r, uint64_t *affected, char *err, size_t errlen)
{
    char *sql = budgets_sql_in(head, l->n, tail);
    if (sql == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = db_exec(db, sql, l->p, l->n, r, affected, NULL, err, errlen);
    free(sql);
    return rc;
}

/* Locks the listed customers; 404 naming user_ids when one does not exist
 * (LiteLLM changes none then). */
static int lock_all(struct evhttp_request *req, MYSQL *db, const struct id_list *l, char *err,
                    size_t errlen)
{
    struct db_result *r = NULL;
    if (exec_in(db, "SELECT user_id FROM customers WHERE user_id IN (", l, ") FOR UPDATE", &r,
                NULL, err, errlen) < 0)
        return DB_FAILED;
    const char *missing = NULL;
    size_t n_missing = 0;
    for (size_t i = 0; i < l->n; i++) {
        const char *id = json_string_value(json_array_get(l->ids, i));
        bool found = false;
        for (size_t j = 0; !found && j < r->nrows; j++)
            found = strcmp(db_cell(r, j, 0), id) == 0;
        if (!found && n_missing++ == 0)
            missing = id;
    }
    db_result_free(r);
    if (n_missing == 0)
        return 0;
    httpjson_error(req, 404, "not_found_error", "user_ids",
                   "End User Id=%s does not exist in db (%zu of the user_ids do not)", missing,
                   n_missing);
    return ANSWERED;
}

/* Answers {key: [the listed customers, by user_id]}. */
static void answer_list(struct worker *w, struct evhttp_request *req, MYSQL *db,
                        const struct id_list *l, const char *key)
{
    struct db_result *r = NULL;
    char err[512];
    if (exec_in(db, CUSTOMER_SQL " WHERE c.user_id IN (", l, ") ORDER BY c.user_id", &r, NULL,
                err, sizeof(err)) < 0) {
        worker_db_failed(w, req, err);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && i < r->nrows; i++)
        json_array_append_new(list, customer_json(r, i));
    if (list == NULL)
        httpjson_error(req, 500, "internal_error", NULL, "out of memory");
    else
        httpjson_reply(req, 200, json_pack("{s:o}", key, list));
    db_result_free(r);
}

enum list_op { OP_DELETE, OP_BLOCK, OP_UNBLOCK };

/* One list operation in the caller's transaction; *affected rows. */
static int list_step(struct evhttp_request *req, MYSQL *db, const struct id_list *l,
                     enum list_op op, uint64_t *affected, char *err, size_t errlen)
{
    if (op == OP_BLOCK) { /* as LiteLLM: an end user may be blocked before its first request */
        for (size_t i = 0; i < l->n; i++) {
            if (db_exec(db, "INSERT INTO customers (user_id, blocked, spend, created_at,"
                            " updated_at) VALUES (?, 1, 0, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))"
                            " ON DUPLICATE KEY UPDATE blocked = 1, updated_at = UTC_TIMESTAMP(6)",
                        &l->p[i], 1, NULL, NULL, NULL, err, errlen) < 0)
                return DB_FAILED;
        }
        return 0;
    }
    int rc = lock_all(req, db, l, err, errlen);
    if (rc < 0)
        return rc;
    if (exec_in(db, op == OP_DELETE ? "DELETE FROM customers WHERE user_id IN ("
                                    : "UPDATE customers SET blocked = 0,"
                                      " updated_at = UTC_TIMESTAMP(6) WHERE user_id IN (",
                l, ")", NULL, affected, err, errlen) < 0)
        return DB_FAILED;
    return 0;
}

static void answer_deleted(struct evhttp_request *req, const struct id_list *l,
                           uint64_t deleted)
{
    char *ids = json_dumps(l->ids, JSON_COMPACT);
    json_t *msg = ids != NULL ? json_sprintf("Successfully deleted customers with ids: %s", ids)
                              : NULL;
    free(ids);
    if (msg == NULL) {
        httpjson_error(req, 500, "internal_error", NULL, "out of memory");
        return;
    }
    httpjson_reply(req, 200, json_pack("{s:I, s:o}", "deleted_customers", (json_int_t)deleted,
                                       "message", msg));
}

static void list_route(struct worker *w, struct evhttp_request *req, enum list_op op)
{
    static const char *const VERB[] = {"deleted", "blocked", "unblocked"};
    json_t *body = httpjson_body(req, 1 << 20);
    struct id_list l = {0};
    uint64_t affected = 0;
    char err[512];
    MYSQL *db;
    if (body == NULL)
        return;
    if (read_ids(req, body, &l) < 0 || (db = worker_db(w, req)) == NULL)
        goto out;
    int rc = db_begin(db, err, sizeof(err)) < 0
                 ? DB_FAILED : list_step(req, db, &l, op, &affected, err, sizeof(err));
    if (rc == 0 && db_commit(db, err, sizeof(err)) < 0)
        rc = DB_FAILED;
    if (rc < 0) {
        db_rollback(db);
        if (rc == DB_FAILED)
            worker_db_failed(w, req, err);
        goto out;
    }
    log_info("customers %s: %zu", VERB[op], l.n);
    if (op == OP_DELETE)
        answer_deleted(req, &l, affected);
    else
        answer_list(w, req, db, &l, op == OP_BLOCK ? "blocked_users" : "unblocked_users");
out:
    free(l.p);
    json_decref(body);
}

void manage_customer_delete(struct worker *w, struct evhttp_request *req,
                            const struct caller *who)
{
    (void)who;
    list_route(w, req, OP_DELETE);
}

void manage_customer_block(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    (void)who;
    list_route(w, req, OP_BLOCK);
}

void manage_customer_unblock(struct worker *w, struct evhttp_request *req,
                             const struct caller *who)
{
    (void)who;
    list_route(w, req, OP_UNBLOCK);
}
