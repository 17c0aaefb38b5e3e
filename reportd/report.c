/* report.c - GET /global/spend/report, from the daily rollups.
 *
 * accountd keeps daily_spend exact in the ledger's own transactions, so a
 * quarter's report reads one row per day and rollup group instead of every
 * request. Forms, by the contract's precedence: api_key= (one key) >
 * internal_user_id= (that user's keys) > team_id= / customer_id= (one
 * team's or customer's days) > group_by (team, the default; customer;
 * api_key; and Tollgate's tag, model and user). format=csv gives the day
 * forms as CSV (report_csv.c). The day forms nest [{group_by_day, teams|customers: [{name,
 * total_spend, metadata: [{model, spend, total_tokens, api_key}]}]}]; the
 * key form lists [{api_key, total_cost, total_input_tokens,
 * total_output_tokens, model_details: [...]}] by total_cost, highest first.
 * Totals are summed from DECIMAL text with exact money arithmetic.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "httpjson.h"
#include "input.h"
#include "keyhash.h"
#include "report_csv.h"
#include "reportd.h"

/* Every filter is bound (NULL switches it off): day from, day to, then the
 * pairs of FILTER_*. */
#define DAYS " WHERE d.day >= DATE(?) AND d.day < DATE(?)"
#define FILTER(col) " AND (? IS NULL OR " col " = ?)"

/* A day form: how rows are grouped and how the JSON names them. Rows are
 * (day, group, model, spend, total_tokens, api_key), ordered by the first
 * three. */
struct day_form {
    const char *name;     /* group_by value, and the CSV column */
    const char *list_key; /* "teams" */
    const char *item_key; /* "team_name" */
    const char *sql;      /* params: days, then (filters) team and customer */
    bool filters;
};

#define DAY_COLS "SELECT DATE_FORMAT(d.day, '%Y-%m-%dT00:00:00+00:00') AS dayname, "
#define DAY_SUMS ", d.model, SUM(d.spend), SUM(d.total_tokens), d.api_key"
#define DAY_ORDER " GROUP BY dayname, grp, d.model, d.api_key ORDER BY dayname, grp, d.model, d.api_key"

static const struct day_form DAY_FORMS[] = {
    {"team", "teams", "team_name",
     DAY_COLS "COALESCE(t.team_alias, d.team_id, 'Unassigned Team') AS grp" DAY_SUMS
     " FROM daily_spend d LEFT JOIN teams t ON t.team_id = d.team_id"
     DAYS FILTER("d.team_id") FILTER("d.end_user") DAY_ORDER, true},
    {"customer", "customers", "customer",
     DAY_COLS "d.end_user AS grp" DAY_SUMS " FROM daily_spend d"
     DAYS FILTER("d.team_id") FILTER("d.end_user") DAY_ORDER, true},
    {"tag", "tags", "tag", DAY_COLS "d.tag AS grp" DAY_SUMS " FROM daily_tag_spend d" DAYS DAY_ORDER,
     false},
    {"model", "models", "model", DAY_COLS "d.model AS grp" DAY_SUMS " FROM daily_spend d" DAYS
     DAY_ORDER, false},
    {"user", "users", "user", DAY_COLS "d.user AS grp" DAY_SUMS " FROM daily_spend d" DAYS
     DAY_ORDER, false},
};
#define N_DAY_FORMS (sizeof(DAY_FORMS) / sizeof(DAY_FORMS[0]))

/* params: days, key filter, internal user filter */
static const char SQL_KEYS[] =
    "SELECT d.api_key, d.model, SUM(d.spend), SUM(d.prompt_tokens), SUM(d.completion_tokens)"
    " FROM daily_spend d" DAYS FILTER("d.api_key") FILTER("d.user")
    " GROUP BY d.api_key, d.model ORDER BY d.api_key, d.model";

/* The parameters, validated. */
struct report_query {
    char from[DB_DATETIME_MAX], to[DB_DATETIME_MAX];
    const char *group_by, *format, *api_key, *user_id, *team_id, *customer_id;
    char token[KEYHASH_HEX_LEN + 1];
};

static int read_query(struct evhttp_request *req, struct query *q, struct report_query *r)
{
    bool dated;
    if (query_date_range(req, q, true, r->from, r->to, &dated) < 0 ||
        query_str(req, q, "group_by", 32, &r->group_by) < 0 ||
        query_str(req, q, "format", 8, &r->format) < 0 ||
        query_str(req, q, "api_key", 255, &r->api_key) < 0 ||
        query_str(req, q, "internal_user_id", 255, &r->user_id) < 0 ||
        query_str(req, q, "team_id", 255, &r->team_id) < 0 ||
        query_str(req, q, "customer_id", 255, &r->customer_id) < 0)
        return -1;
    bool known = r->group_by == NULL || strcmp(r->group_by, "api_key") == 0;
    for (size_t i = 0; !known && i < N_DAY_FORMS; i++)
        known = strcmp(r->group_by, DAY_FORMS[i].name) == 0;
    if (!known) {
        httpjson_error(req, 400, "invalid_request_error", "group_by",
                       "Invalid group_by: must be team, customer, api_key, tag, model or user");
        return -1;
    }
    if (r->format != NULL && strcmp(r->format, "json") != 0 && strcmp(r->format, "csv") != 0) {
        httpjson_error(req, 400, "invalid_request_error", "format",
                       "Invalid format: must be json or csv");
        return -1;
    }
    if (r->api_key != NULL && keyhash_normalize(r->api_key, r->token) < 0) {
        httpjson_error(req, 500, "internal_error", NULL, "cannot hash the key");
        return -1;
    }
    return 0;
}

static bool same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Closes the current group: writes its exact total. */
static void close_group(json_t *group, money_t total)
{
    if (group != NULL)
        json_object_set_new(group, "total_spend", httpjson_money(total));
}

/* Rows ordered by day, group: nest them as [{day, groups: [{name, total, metadata}]}]. */
static json_t *nest_report(const struct day_form *f, const struct db_result *r)
{
    json_t *days = json_array(), *day = NULL, *groups = NULL, *group = NULL, *meta = NULL;
    money_t total = 0;
    for (size_t i = 0; days != NULL && i < r->nrows; i++) {
        const char *d = db_cell(r, i, 0), *g = db_cell(r, i, 1);
        bool new_day = i == 0 || !same(d, db_cell(r, i - 1, 0));
        if (new_day) {
            day = json_pack("{s:s, s:[]}", "group_by_day", d, f->list_key);
            json_array_append_new(days, day);
            groups = json_object_get(day, f->list_key);
        }
        if (new_day || !same(g, db_cell(r, i - 1, 1))) {
            close_group(group, total);
            total = 0;
            /* total_spend is a placeholder until close_group: keeps the contract's key order */
            group = json_pack("{s:o, s:i, s:[]}", f->item_key, httpjson_str_or_null(g),
                              "total_spend", 0, "metadata");
            json_array_append_new(groups, group);
            meta = json_object_get(group, "metadata");
        }
        money_t spend = 0;
        money_parse(db_cell(r, i, 3), &spend);
        money_add(total, spend, &total);
        json_array_append_new(meta, json_pack("{s:s, s:o, s:o, s:s}", "model", db_cell(r, i, 2),
            "spend", httpjson_money(spend), "total_tokens", httpjson_int_text(db_cell(r, i, 4)),
            "api_key", db_cell(r, i, 5)));
    }
    close_group(group, total);
    return days;
}

/* One key's line of the key form, with its models' lines. */
struct key_total {
    json_t *obj, *details;
    money_t cost;
};

static int cmp_cost_desc(money_t a, money_t b)
{
    return a < b ? 1 : a > b ? -1 : 0;
}

static int cmp_key_total(const void *x, const void *y)
{
    const struct key_total *a = x, *b = y;
    int c = cmp_cost_desc(a->cost, b->cost);
    return c != 0 ? c : strcmp(json_string_value(json_object_get(a->obj, "api_key")),
                               json_string_value(json_object_get(b->obj, "api_key")));
}

static int cmp_detail(const void *x, const void *y)
{
    json_t *a = *(json_t *const *)x, *b = *(json_t *const *)y;
    money_t ca = 0, cb = 0;
    money_parse(json_string_value(json_object_get(a, "_cost")), &ca);
    money_parse(json_string_value(json_object_get(b, "_cost")), &cb);
    int c = cmp_cost_desc(ca, cb);
    return c != 0 ? c : strcmp(json_string_value(json_object_get(a, "model")),
                               json_string_value(json_object_get(b, "model")));
}

/* Sorts a key's model lines by cost, highest first (the exact cost rides
 * along as "_cost" text until then). */
static json_t *sorted_details(json_t *details)
{
    size_t n = json_array_size(details);
    json_t **v = malloc((n ? n : 1) * sizeof(*v)), *out = json_array();
    for (size_t i = 0; v != NULL && i < n; i++)
        v[i] = json_array_get(details, i);
    if (v != NULL)
        qsort(v, n, sizeof(*v), cmp_detail);
    for (size_t i = 0; v != NULL && out != NULL && i < n; i++) {
        json_object_del(v[i], "_cost");
        json_array_append(out, v[i]);
    }
    free(v);
    json_decref(details);
    return out;
}

/* Rows ordered by key, model: [{api_key, totals, model_details}] by cost. */
static json_t *key_report(const struct db_result *r)
{
    struct key_total *keys = calloc(r->nrows ? r->nrows : 1, sizeof(*keys));
    size_t n = 0;
    int64_t in = 0, out = 0;
    json_t *list = json_array();
    for (size_t i = 0; keys != NULL && list != NULL && i < r->nrows; i++) {
        const char *key = db_cell(r, i, 0);
        if (i == 0 || !same(key, db_cell(r, i - 1, 0))) {
            if (n > 0) {
                json_object_set_new(keys[n - 1].obj, "total_input_tokens", json_integer(in));
                json_object_set_new(keys[n - 1].obj, "total_output_tokens", json_integer(out));
            }
            keys[n].details = json_array();
            keys[n].obj = json_pack("{s:s}", "api_key", key);
            n++;
            in = out = 0;
        }
        money_t cost = 0;
        money_parse(db_cell(r, i, 2), &cost);
        money_add(keys[n - 1].cost, cost, &keys[n - 1].cost);
        int64_t pin = strtoll(db_cell(r, i, 3), NULL, 10);
        int64_t pout = strtoll(db_cell(r, i, 4), NULL, 10);
        in += pin;
        out += pout;
        json_array_append_new(keys[n - 1].details, json_pack(
            "{s:s, s:o, s:I, s:I, s:s}", "model", db_cell(r, i, 1), "total_cost",
            httpjson_money(cost), "total_input_tokens", (json_int_t)pin, "total_output_tokens",
            (json_int_t)pout, "_cost", db_cell(r, i, 2)));
    }
    if (n > 0) {
        json_object_set_new(keys[n - 1].obj, "total_input_tokens", json_integer(in));
        json_object_set_new(keys[n - 1].obj, "total_output_tokens", json_integer(out));
    }
    if (keys != NULL)
        qsort(keys, n, sizeof(*keys), cmp_key_total);
    for (size_t i = 0; i < n; i++) {
        json_object_set_new(keys[i].obj, "total_cost", httpjson_money(keys[i].cost));
        json_object_set_new(keys[i].obj, "model_details", sorted_details(keys[i].details));
        json_array_append_new(list, keys[i].obj);
    }
    free(keys);
    return list;
}

/* The day form the query asks for (the contract's precedence below the key
 * forms): team_id= or customer_id= before group_by; team by default. */
static const struct day_form *day_form_of(const struct report_query *rq)
{
    const char *name = rq->team_id != NULL ? "team" : rq->customer_id != NULL ? "customer"
                     : rq->group_by != NULL ? rq->group_by : "team";
    for (size_t i = 0; i < N_DAY_FORMS; i++)
        if (strcmp(DAY_FORMS[i].name, name) == 0)
            return &DAY_FORMS[i];
    return &DAY_FORMS[0];
}

static void reply_csv(struct evhttp_request *req, const struct day_form *form,
                      const struct db_result *res)
{
    size_t len = 0;
    char *csv = report_csv_days(form->name, res, &len);
    if (csv == NULL) {
        httpjson_error(req, 500, "internal_error", NULL, "out of memory");
        return;
    }
    if (evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Disposition",
                          "attachment; filename=\"spend-report.csv\"") != 0) {
        free(csv);
        httpjson_error(req, 500, "internal_error", NULL, "out of memory");
        return;
    }
    httpjson_reply_raw(req, 200, "text/csv; charset=utf-8", csv, len);
    free(csv);
}

void spend_report(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    struct query *q = query_parse(req);
    struct report_query rq = {0};
    struct db_result *res = NULL;
    char err[512];
    MYSQL *db;
    (void)who;
    if (q == NULL)
        return;
    if (read_query(req, q, &rq) < 0)
        goto out;
    const char *key = rq.api_key != NULL ? rq.token : NULL;
    const char *user = key == NULL ? rq.user_id : NULL;
    bool by_key = key != NULL || user != NULL ||
                  (rq.team_id == NULL && rq.customer_id == NULL && rq.group_by != NULL &&
                   strcmp(rq.group_by, "api_key") == 0);
    bool csv = rq.format != NULL && strcmp(rq.format, "csv") == 0;
    if (by_key && csv) {
        httpjson_error(req, 400, "invalid_request_error", "format",
                       "format=csv is for the day forms (group_by team, customer, tag, model,"
                       " user): one row per day, group and model");
        goto out;
    }
    if ((db = worker_db(w, req)) == NULL)
        goto out;
    const struct day_form *form = day_form_of(&rq);
    const char *a = by_key ? key : rq.team_id, *b = by_key ? user : rq.customer_id;
    struct db_param p[] = {DB_STR(rq.from), DB_STR(rq.to), DB_STR(a), DB_STR(a), DB_STR(b),
                           DB_STR(b)};
    if (db_exec(db, by_key ? SQL_KEYS : form->sql, p, by_key || form->filters ? 6 : 2, &res,
                NULL, NULL, err, sizeof(err)) < 0) {
        worker_db_failed(w, req, err);
        goto out;
    }
    if (csv)
        reply_csv(req, form, res);
    else
        httpjson_reply(req, 200, by_key ? key_report(res) : nest_report(form, res));
out:
    db_result_free(res);
    query_free(q);
}
