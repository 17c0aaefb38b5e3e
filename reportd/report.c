/* report.c - GET /global/spend/report, from the daily rollups.
 *
 * accountd keeps daily_spend exact in the ledger's own transactions, so a
 * quarter's report reads one row per day and rollup group instead of every
 * request. Forms, by the contract's precedence: api_key= (one key) >
 * internal_user_id= (that user's keys) > team_id= / customer_id= (one
 * team's or customer's days) > group_by (team, the default; customer;
 * api_key). The day forms nest [{group_by_day, teams|customers: [{name,
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
#include "reportd.h"

/* Every filter is bound (NULL switches it off): day from, day to, then the
 * pairs of FILTER_*. */
#define DAYS " WHERE d.day >= DATE(?) AND d.day < DATE(?)"
#define FILTER(col) " AND (? IS NULL OR " col " = ?)"

/* A day form: how rows are grouped and how the JSON names them. */
struct day_form {
    const char *list_key; /* "teams" */
    const char *item_key; /* "team_name" */
    const char *sql;      /* params: days, team filter, customer filter */
};

static const struct day_form TEAM_FORM = {"teams", "team_name",
    "SELECT DATE_FORMAT(d.day, '%Y-%m-%dT00:00:00+00:00') AS dayname,"
    " COALESCE(t.team_alias, d.team_id, 'Unassigned Team') AS grp, d.model,"
    " SUM(d.spend), SUM(d.total_tokens), d.api_key"
    " FROM daily_spend d LEFT JOIN teams t ON t.team_id = d.team_id"
    DAYS FILTER("d.team_id") FILTER("d.end_user")
    " GROUP BY dayname, grp, d.model, d.api_key ORDER BY dayname, grp, d.model, d.api_key"};

static const struct day_form CUSTOMER_FORM = {"customers", "customer",
    "SELECT DATE_FORMAT(d.day, '%Y-%m-%dT00:00:00+00:00') AS dayname, d.end_user AS grp,"
    " d.model, SUM(d.spend), SUM(d.total_tokens), d.api_key FROM daily_spend d"
    DAYS FILTER("d.team_id") FILTER("d.end_user")
    " GROUP BY dayname, grp, d.model, d.api_key ORDER BY dayname, grp, d.model, d.api_key"};

/* params: days, key filter, internal user filter */
static const char SQL_KEYS[] =
    "SELECT d.api_key, d.model, SUM(d.spend), SUM(d.prompt_tokens), SUM(d.completion_tokens)"
    " FROM daily_spend d" DAYS FILTER("d.api_key") FILTER("d.user")
    " GROUP BY d.api_key, d.model ORDER BY d.api_key, d.model";

/* The parameters, validated. */
struct report_query {
    char from[DB_DATETIME_MAX], to[DB_DATETIME_MAX];
    const char *group_by, *api_key, *user_id, *team_id, *customer_id;
    char token[KEYHASH_HEX_LEN + 1];
};

static int read_query(struct evhttp_request *req, struct query *q, struct report_query *r)
{
    bool dated;
    if (query_date_range(req, q, true, r->from, r->to, &dated) < 0 ||
        query_str(req, q, "group_by", 32, &r->group_by) < 0 ||
        query_str(req, q, "api_key", 255, &r->api_key) < 0 ||
        query_str(req, q, "internal_user_id", 255, &r->user_id) < 0 ||
        query_str(req, q, "team_id", 255, &r->team_id) < 0 ||
        query_str(req, q, "customer_id", 255, &r->customer_id) < 0)
        return -1;
    if (r->group_by != NULL && strcmp(r->group_by, "team") != 0 &&
        strcmp(r->group_by, "customer") != 0 && strcmp(r->group_by, "api_key") != 0) {
        httpjson_error(req, 400, "invalid_request_error", "group_by",
                       "Invalid group_by: must be team, customer or api_key");
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
    if (read_query(req, q, &rq) < 0 || (db = worker_db(w, req)) == NULL)
        goto out;
    const char *key = rq.api_key != NULL ? rq.token : NULL;
    const char *user = key == NULL ? rq.user_id : NULL;
    bool by_key = key != NULL || user != NULL ||
                  (rq.team_id == NULL && rq.customer_id == NULL && rq.group_by != NULL &&
                   strcmp(rq.group_by, "api_key") == 0);
    const char *a = by_key ? key : rq.team_id, *b = by_key ? user : rq.customer_id;
    struct db_param p[] = {DB_STR(rq.from), DB_STR(rq.to), DB_STR(a), DB_STR(a), DB_STR(b),
                           DB_STR(b)};
    const struct day_form *form =
        rq.team_id != NULL ? &TEAM_FORM
        : rq.customer_id != NULL || (rq.group_by != NULL && strcmp(rq.group_by, "customer") == 0)
            ? &CUSTOMER_FORM : &TEAM_FORM;
    if (db_exec(db, by_key ? SQL_KEYS : form->sql, p, 6, &res, NULL, NULL, err, sizeof(err)) < 0) {
        worker_db_failed(w, req, err);
        goto out;
    }
    httpjson_reply(req, 200, by_key ? key_report(res) : nest_report(form, res));
out:
    db_result_free(res);
    query_free(q);
}
