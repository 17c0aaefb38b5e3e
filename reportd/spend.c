/* spend.c - spend routes: /spend/logs (the log rows) and /global/spend/report
 * (the daily rollups).
 *
 * Date ranges cover whole UTC days, from start_date 00:00 through the end
 * of end_date (LiteLLM drops most of the end day; we do not). Totals are
 * summed from DECIMAL text with exact money arithmetic, never in floats.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "httpjson.h"
#include "input.h"
#include "keyhash.h"
#include "reportd.h"

#define DAY_S 86400
#define PAGE_SIZE_MAX 1000
#define PAGE_SIZE_DEFAULT 100

static void sql_time(time_t t, char out[DB_DATETIME_MAX])
{
    db_datetime((int64_t)t * 1000000, out);
}

/* Reads start_date/end_date into [from, to) bounds as SQL text. */
static int date_range(struct evhttp_request *req, struct query *q, bool required,
                      char from[DB_DATETIME_MAX], char to[DB_DATETIME_MAX], bool *present)
{
    time_t start = 0, end = 0;
    bool has_start, has_end;
    if (query_date(req, q, "start_date", required, &start, &has_start) < 0 ||
        query_date(req, q, "end_date", required, &end, &has_end) < 0)
        return -1;
    if (has_start != has_end) {
        httpjson_error(req, 400, "invalid_request_error", has_start ? "end_date" : "start_date",
                       "start_date and end_date go together");
        return -1;
    }
    if (has_start && start > end) {
        httpjson_error(req, 400, "invalid_request_error", "start_date",
                       "start_date must not be after end_date");
        return -1;
    }
    *present = has_start;
    sql_time(start, from);
    sql_time(end + DAY_S, to);
    return 0;
}

static json_t *str_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

static json_t *int_of(const char *s)
{
    return json_integer(s != NULL ? strtoll(s, NULL, 10) : 0);
}

static json_t *log_row(const struct db_result *r, size_t i)
{
    json_t *tags = json_loads(db_cell(r, i, 16), 0, NULL);
    json_t *meta = json_loads(db_cell(r, i, 17), 0, NULL);
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o,"
                     " s:o, s:o, s:s, s:o, s:o, s:s}",
        "request_id", db_cell(r, i, 0), "call_type", db_cell(r, i, 1), "api_key", db_cell(r, i, 2),
        "spend", httpjson_money_text(db_cell(r, i, 3)), "total_tokens", int_of(db_cell(r, i, 4)),
        "prompt_tokens", int_of(db_cell(r, i, 5)), "completion_tokens", int_of(db_cell(r, i, 6)),
        "startTime", db_cell(r, i, 7), "endTime", db_cell(r, i, 8), "model", db_cell(r, i, 9),
        "model_group", db_cell(r, i, 10), "api_base", db_cell(r, i, 11),
        "user", str_or_null(db_cell(r, i, 12)), "team_id", str_or_null(db_cell(r, i, 13)),
        "end_user", str_or_null(db_cell(r, i, 14)), "key_alias", str_or_null(db_cell(r, i, 15)),
        "request_tags", tags != NULL ? tags : json_array(),
        "status", db_cell(r, i, 18), "metadata", meta != NULL ? meta : json_object(),
        "cache_read_input_tokens", int_of(db_cell(r, i, 19)), "pricing", db_cell(r, i, 20));
}

/* Parameters of /spend/logs, with the SQL filter they select. */
struct log_filter {
    const char *api_key, *user_id, *request_id;
    char token[KEYHASH_HEX_LEN + 1];
    char from[DB_DATETIME_MAX], to[DB_DATETIME_MAX];
    bool dated;
    long page, page_size;
};

static int read_log_filter(struct evhttp_request *req, struct query *q, struct log_filter *f)
{
    if (query_str(req, q, "api_key", 255, &f->api_key) < 0 ||
        query_str(req, q, "user_id", 255, &f->user_id) < 0 ||
        query_str(req, q, "request_id", 64, &f->request_id) < 0 ||
        date_range(req, q, false, f->from, f->to, &f->dated) < 0 ||
        query_int(req, q, "page", 1, 1000000, 1, &f->page) < 0 ||
        query_int(req, q, "page_size", 1, PAGE_SIZE_MAX, PAGE_SIZE_DEFAULT, &f->page_size) < 0)
        return -1;
    if (f->api_key != NULL && keyhash_normalize(f->api_key, f->token) < 0) {
        httpjson_error(req, 500, "internal_error", NULL, "cannot hash the key");
        return -1;
    }
    return 0;
}

void spend_logs(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    struct query *q = query_parse(req);
    struct log_filter f = {0};
    struct db_result *r = NULL;
    char err[512];
    MYSQL *db;
    (void)who;
    if (q == NULL)
        return;
    if (read_log_filter(req, q, &f) < 0 || (db = worker_db(w, req)) == NULL)
        goto out;
    /* Every filter is always bound; "? IS NULL OR" switches it off. */
    struct db_param p[] = {
        DB_STR(f.api_key ? f.token : NULL), DB_STR(f.api_key ? f.token : NULL),
        DB_STR(f.user_id), DB_STR(f.user_id), DB_STR(f.request_id), DB_STR(f.request_id),
        DB_STR(f.dated ? f.from : NULL), DB_STR(f.dated ? f.from : NULL),
        DB_STR(f.dated ? f.to : NULL), DB_STR(f.dated ? f.to : NULL),
        DB_I64(f.page_size), DB_I64((f.page - 1) * f.page_size)};
    if (db_exec(db, "SELECT request_id, call_type, api_key, spend, total_tokens, prompt_tokens,"
                    " completion_tokens, DATE_FORMAT(start_time, '%Y-%m-%dT%H:%i:%s.%f+00:00'),"
                    " DATE_FORMAT(end_time, '%Y-%m-%dT%H:%i:%s.%f+00:00'), model, model_group,"
                    " api_base, user, team_id, end_user, key_alias, request_tags, metadata, status,"
                    " cache_read_input_tokens, pricing FROM spend_logs"
                    " WHERE (? IS NULL OR api_key = ?) AND (? IS NULL OR user = ?)"
                    " AND (? IS NULL OR request_id = ?) AND (? IS NULL OR start_time >= ?)"
                    " AND (? IS NULL OR start_time < ?)"
                    " ORDER BY start_time DESC, request_id LIMIT ? OFFSET ?",
                p, sizeof(p) / sizeof(p[0]), &r, NULL, NULL, err, sizeof(err)) < 0) {
        worker_db_failed(w, req, err);
        goto out;
    }
    json_t *rows = json_array();
    for (size_t i = 0; rows != NULL && i < r->nrows; i++)
        json_array_append_new(rows, log_row(r, i));
    httpjson_reply(req, 200, rows);
out:
    db_result_free(r);
    query_free(q);
}

/* One group_by form of the report: the grouping column and the JSON names. */
struct report_form {
    const char *name;       /* group_by value */
    const char *list_key;   /* "teams" */
    const char *item_key;   /* "team_name" */
    const char *sql;
};

/* From the daily rollup (accountd keeps it exact in the ledger's transaction):
 * a quarter's report reads ~100 rows per day and group, not every request. */
static const struct report_form FORMS[] = {
    {"team", "teams", "team_name",
     "SELECT DATE_FORMAT(d.day, '%Y-%m-%dT00:00:00+00:00') AS dayname,"
     " COALESCE(t.team_alias, d.team_id, 'Unassigned Team') AS grp, d.model,"
     " SUM(d.spend), SUM(d.total_tokens), d.api_key"
     " FROM daily_spend d LEFT JOIN teams t ON t.team_id = d.team_id"
     " WHERE d.day >= DATE(?) AND d.day < DATE(?)"
     " GROUP BY dayname, grp, d.model, d.api_key ORDER BY dayname, grp, d.model, d.api_key"},
    {"customer", "customers", "customer",
     "SELECT DATE_FORMAT(d.day, '%Y-%m-%dT00:00:00+00:00') AS dayname, d.end_user AS grp,"
     " d.model, SUM(d.spend), SUM(d.total_tokens), d.api_key"
     " FROM daily_spend d WHERE d.day >= DATE(?) AND d.day < DATE(?)"
     " GROUP BY dayname, grp, d.model, d.api_key ORDER BY dayname, grp, d.model, d.api_key"},
};

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
static json_t *nest_report(const struct report_form *f, const struct db_result *r)
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
            group = json_pack("{s:o, s:i, s:[]}", f->item_key, str_or_null(g), "total_spend", 0,
                              "metadata");
            json_array_append_new(groups, group);
            meta = json_object_get(group, "metadata");
        }
        money_t spend = 0;
        money_parse(db_cell(r, i, 3), &spend);
        money_add(total, spend, &total);
        json_array_append_new(meta, json_pack("{s:s, s:o, s:o, s:s}", "model", db_cell(r, i, 2),
            "spend", httpjson_money(spend), "total_tokens", int_of(db_cell(r, i, 4)),
            "api_key", db_cell(r, i, 5)));
    }
    close_group(group, total);
    return days;
}

void spend_report(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    struct query *q = query_parse(req);
    struct db_result *r = NULL;
    const char *group_by;
    const struct report_form *form = NULL;
    char from[DB_DATETIME_MAX], to[DB_DATETIME_MAX], err[512];
    bool dated;
    MYSQL *db;
    (void)who;
    if (q == NULL)
        return;
    if (date_range(req, q, true, from, to, &dated) < 0 ||
        query_str(req, q, "group_by", 32, &group_by) < 0)
        goto out;
    for (size_t i = 0; i < sizeof(FORMS) / sizeof(FORMS[0]) && form == NULL; i++) {
        if (strcmp(FORMS[i].name, group_by != NULL ? group_by : "team") == 0)
            form = &FORMS[i];
    }
    if (form == NULL) {
        httpjson_error(req, 400, "invalid_request_error", "group_by",
                       "Invalid group_by: must be team or customer");
        goto out;
    }
    if ((db = worker_db(w, req)) == NULL)
        goto out;
    struct db_param p[] = {DB_STR(from), DB_STR(to)};
    if (db_exec(db, form->sql, p, 2, &r, NULL, NULL, err, sizeof(err)) < 0) {
        worker_db_failed(w, req, err);
        goto out;
    }
    httpjson_reply(req, 200, nest_report(form, r));
out:
    db_result_free(r);
    query_free(q);
}
