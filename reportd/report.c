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
 * Totals are summed from DECIMAL text with exact money arithmetic. The day
 * forms stream the rollup rows in day order and sum each day in C
 * (report_days.c), writing the answer as text straight into the reply.
 */
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "httpjson.h"
#include "input.h"
#include "keyhash.h"
#include "report_csv.h"
#include "report_days.h"
#include "reportd.h"
#include "strmap.h"

/* Every filter is bound (NULL switches it off): day from, day to, then the
 * pairs of FILTER_*. */
#define DAYS " WHERE d.day >= DATE(?) AND d.day < DATE(?)"
#define FILTER(col) " AND (? IS NULL OR " col " = ?)"

/* A day form: how rows are grouped and how the JSON names them. Rows are
 * (day, group, model, spend, total_tokens, api_key), in day order only: the
 * primary key's order, so MariaDB neither groups nor sorts (report_days.c
 * sums each day). */
struct day_form {
    const char *name;     /* group_by value, and the CSV column */
    const char *list_key; /* "teams" */
    const char *item_key; /* "team_name" */
    const char *sql;      /* params: days, then (filters) team and customer */
    bool filters;
};

#define DAY_COLS "SELECT d.day, "
#define DAY_SUMS ", d.model, d.spend, d.total_tokens, d.api_key"
#define DAY_ORDER " ORDER BY d.day"

static const struct day_form DAY_FORMS[] = {
    {"team", "teams", "team_name",
     DAY_COLS "COALESCE(t.team_alias, d.team_id, 'Unassigned Team')" DAY_SUMS
     " FROM daily_spend d LEFT JOIN teams t ON t.team_id = d.team_id"
     DAYS FILTER("d.team_id") FILTER("d.end_user") DAY_ORDER, true},
    {"customer", "customers", "customer",
     DAY_COLS "d.end_user" DAY_SUMS " FROM daily_spend d"
     DAYS FILTER("d.team_id") FILTER("d.end_user") DAY_ORDER, true},
    {"tag", "tags", "tag", DAY_COLS "d.tag" DAY_SUMS " FROM daily_tag_spend d" DAYS DAY_ORDER,
     false},
    {"model", "models", "model", DAY_COLS "d.model" DAY_SUMS " FROM daily_spend d" DAYS
     DAY_ORDER, false},
    {"user", "users", "user", DAY_COLS "d.user" DAY_SUMS " FROM daily_spend d" DAYS
     DAY_ORDER, false},
};
#define N_DAY_FORMS (sizeof(DAY_FORMS) / sizeof(DAY_FORMS[0]))

/* params: days, key filter, internal user filter. Not grouped by MariaDB
 * either (its temporary table keyed by key and model text cost more than
 * the rows): summed per key and model here (key_row). */
static const char SQL_KEYS[] =
    "SELECT d.api_key, d.model, d.spend, d.prompt_tokens, d.completion_tokens"
    " FROM daily_spend d" DAYS FILTER("d.api_key") FILTER("d.user");

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

/* The answer being written: JSON text or CSV, straight into a buffer. */
struct day_answer {
    struct evbuffer *b;
    const struct day_form *f;
    size_t days;
};

/* The lines of one group (l[0] .. l[n-1]) as {name, total_spend, metadata}. */
static int json_group(struct evbuffer *b, const struct day_form *f, struct day_line *const *l,
                      size_t n)
{
    money_t total = 0;
    for (size_t i = 0; i < n; i++)
        money_add(total, l[i]->spend, &total);
    int rc = evbuffer_add_printf(b, "{\"%s\":", f->item_key) < 0 ||
             report_json_str(b, l[0]->group) < 0 ||
             evbuffer_add_printf(b, ",\"total_spend\":") < 0 || report_json_money(b, total) < 0 ||
             evbuffer_add_printf(b, ",\"metadata\":[") < 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = evbuffer_add_printf(b, "%s{\"model\":", i ? "," : "") < 0 ||
             report_json_str(b, l[i]->model) < 0 || evbuffer_add_printf(b, ",\"spend\":") < 0 ||
             report_json_money(b, l[i]->spend) < 0 ||
             evbuffer_add_printf(b, ",\"total_tokens\":%lld,\"api_key\":",
                                 (long long)l[i]->tokens) < 0 ||
             report_json_str(b, l[i]->key) < 0 || evbuffer_add(b, "}", 1) != 0;
    return rc == 0 && evbuffer_add(b, "]}", 2) == 0 ? 0 : -1;
}

/* A day as {group_by_day, teams|customers|...: [groups]}. */
static int json_day(void *ctx, const char *day, struct day_line *const *l, size_t n)
{
    struct day_answer *a = ctx;
    int rc = evbuffer_add_printf(a->b, "%s{\"group_by_day\":\"%.10sT00:00:00+00:00\",\"%s\":[",
                                 a->days++ ? "," : "", day, a->f->list_key) < 0;
    for (size_t i = 0, j; rc == 0 && i < n; i = j) {
        for (j = i + 1; j < n && same(l[j]->group, l[i]->group); j++)
            ;
        rc = (i > 0 && evbuffer_add(a->b, ",", 1) != 0) || json_group(a->b, a->f, l + i, j - i) < 0;
    }
    return rc == 0 && evbuffer_add(a->b, "]}", 2) == 0 ? 0 : -1;
}

static int csv_day(void *ctx, const char *day, struct day_line *const *l, size_t n)
{
    return report_csv_day(((struct day_answer *)ctx)->b, day, l, n);
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

/* A key's spend on one model over the days. */
struct key_model {
    char *key, *model;
    money_t cost;
    int64_t in, out;
};

static void free_key_model(void *v)
{
    struct key_model *m = v;
    free(m->key);
    free(m->model);
    free(m);
}

static int cmp_key_model(const void *x, const void *y)
{
    const struct key_model *a = *(struct key_model *const *)x, *b = *(struct key_model *const *)y;
    int c = strcmp(a->key, b->key);
    return c != 0 ? c : strcmp(a->model, b->model);
}

/* rows: api_key, model, spend, prompt_tokens, completion_tokens */
static int key_row(void *ctx, const struct report_row *r)
{
    char name[2 * 1100];
    if (r->cell[0] == NULL || r->cell[1] == NULL || r->cell[2] == NULL)
        return -1;
    snprintf(name, sizeof(name), "%zu:%s|%s", r->len[0], r->cell[0], r->cell[1]);
    struct key_model *m = strmap_get(ctx, name);
    if (m == NULL) {
        int err = 0;
        if ((m = calloc(1, sizeof(*m))) == NULL)
            return -1;
        m->key = strdup(r->cell[0]);
        m->model = strdup(r->cell[1]);
        if (m->key == NULL || m->model == NULL || (strmap_put(ctx, name, m, &err), err < 0)) {
            free_key_model(m);
            return -1;
        }
    }
    money_t cost = 0;
    money_parse(r->cell[2], &cost);
    money_add(m->cost, cost, &m->cost);
    m->in += r->cell[3] != NULL ? strtoll(r->cell[3], NULL, 10) : 0;
    m->out += r->cell[4] != NULL ? strtoll(r->cell[4], NULL, 10) : 0;
    return 0;
}

/* The map's lines sorted by key and model; NULL on ENOMEM. */
static struct key_model **sorted_key_models(struct strmap *map, size_t *n)
{
    size_t pos = 0;
    const char *name;
    void *v;
    struct key_model **list = malloc((strmap_count(map) ? strmap_count(map) : 1) * sizeof(*list));
    *n = 0;
    while (list != NULL && strmap_next(map, &pos, &name, &v) == 0)
        list[(*n)++] = v;
    if (list != NULL)
        qsort(list, *n, sizeof(*list), cmp_key_model);
    return list;
}

/* Lines sorted by key, model: [{api_key, totals, model_details}] by cost. */
static json_t *key_report(struct key_model *const *r, size_t nrows)
{
    struct key_total *keys = calloc(nrows ? nrows : 1, sizeof(*keys));
    size_t n = 0;
    int64_t in = 0, out = 0;
    json_t *list = json_array();
    for (size_t i = 0; keys != NULL && list != NULL && i < nrows; i++) {
        const char *key = r[i]->key;
        char cost_text[MONEY_STR_MAX];
        if (i == 0 || strcmp(key, r[i - 1]->key) != 0) {
            if (n > 0) {
                json_object_set_new(keys[n - 1].obj, "total_input_tokens", json_integer(in));
                json_object_set_new(keys[n - 1].obj, "total_output_tokens", json_integer(out));
            }
            keys[n].details = json_array();
            keys[n].obj = json_pack("{s:s}", "api_key", key);
            n++;
            in = out = 0;
        }
        money_add(keys[n - 1].cost, r[i]->cost, &keys[n - 1].cost);
        in += r[i]->in;
        out += r[i]->out;
        money_format(r[i]->cost, cost_text);
        json_array_append_new(keys[n - 1].details, json_pack(
            "{s:s, s:o, s:I, s:I, s:s}", "model", r[i]->model, "total_cost",
            httpjson_money(r[i]->cost), "total_input_tokens", (json_int_t)r[i]->in,
            "total_output_tokens", (json_int_t)r[i]->out, "_cost", cost_text));
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

/* Runs the key form and answers it. */
static void reply_keys(struct worker *w, struct evhttp_request *req, MYSQL *db,
                       const struct db_param *p)
{
    struct strmap *map = strmap_new();
    struct key_model **list = NULL;
    size_t n = 0;
    char err[512];
    if (map == NULL) {
        httpjson_error(req, 500, "internal_error", NULL, "out of memory");
        return;
    }
    if (report_stream(db, SQL_KEYS, p, 6, key_row, map, err, sizeof(err)) < 0)
        worker_db_failed(w, req, err);
    else if ((list = sorted_key_models(map, &n)) == NULL)
        httpjson_error(req, 500, "internal_error", NULL, "out of memory");
    else
        httpjson_reply(req, 200, key_report(list, n));
    free(list);
    strmap_free(map, free_key_model);
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

/* Runs a day form and answers it as JSON or CSV. */
static void reply_days(struct worker *w, struct evhttp_request *req, MYSQL *db,
                       const struct day_form *form, const struct db_param *p, bool csv)
{
    struct day_answer a = {.b = evbuffer_new(), .f = form};
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char err[512];
    if (a.b == NULL || (csv ? report_csv_header(a.b, form->name) : evbuffer_add(a.b, "[", 1)) != 0) {
        httpjson_error(req, 500, "internal_error", NULL, "out of memory");
        goto out;
    }
    if (report_days(db, form->sql, p, form->filters ? 6 : 2, csv ? csv_day : json_day, &a, err,
                    sizeof(err)) < 0) {
        worker_db_failed(w, req, err);
        goto out;
    }
    if ((!csv && evbuffer_add(a.b, "]", 1) != 0) ||
        evhttp_add_header(h, "Content-Type", csv ? "text/csv; charset=utf-8"
                                                 : "application/json") != 0 ||
        (csv && evhttp_add_header(h, "Content-Disposition",
                                  "attachment; filename=\"spend-report.csv\"") != 0)) {
        httpjson_error(req, 500, "internal_error", NULL, "out of memory");
        goto out;
    }
    evhttp_send_reply(req, 200, NULL, a.b);
out:
    if (a.b != NULL)
        evbuffer_free(a.b);
}

void spend_report(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    struct query *q = query_parse(req);
    struct report_query rq = {0};
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
    if (!by_key)
        reply_days(w, req, db, form, p, csv);
    else
        reply_keys(w, req, db, p);
out:
    query_free(q);
}
