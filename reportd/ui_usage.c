/* ui_usage.c - GET /ui/api/usage?start_date=&end_date=&group_by=[&format=]:
 * the Usage page's totals, daily chart series and top lists for a range of
 * UTC days; with format=csv, the view's report as CSV (ui_usage_csv.c).
 *
 * Answer:
 *   {"start_date", "end_date", "group_by",
 *    "totals": {"spend", "requests", "prompt_tokens", "completion_tokens", "total_tokens"},
 *    "days": [every day of the range],
 *    "series": [{"id", "name", "spend", "spend_by_day": [one per day]}, ...],
 *    "top": {"team": [...], "api_key": [...], "customer": [...], "model": [...],
 *            "tag": [...]}}
 * with each top entry {"id", "name", "spend", "requests", "share"} (api_key
 * entries and api_key series add "key_name", the "sk-...abcd" name; "name"
 * is the key's alias or null). Money is exact decimal text; share is the
 * entry's spend / totals.spend rounded half up to 4 places ("0" when the
 * total is 0).
 *
 * Everything is read from the rollups accountd keeps exact, never from
 * spend_logs (ui_usage_read.c), inside one read-only transaction so the
 * parts agree; this file checks the parameters and writes the answer.
 *
 * Decisions the spec left open:
 * - groups: team by team_id (name: the alias, else the id; no team: id
 *   null, "Unassigned"), api_key by key hash, customer by end user (name:
 *   the customer's alias, else the id; none: id null, "No customer"), model
 *   by the deployment's model (as /global/spend/report's model form), tag
 *   by tag. Order: spend, highest first, then id (null first), byte-wise;
 * - top lists: at most USAGE_TOP_MAX (10) entries each;
 * - series: the top groups of group_by, as its top list; when there are
 *   more, one entry {"id": null, "name": "others"} holds the rest, so they
 *   add up, day by day, to the dimension's total: the range's spend, except
 *   for tags, where a request counts once under each of its tags and an
 *   untagged one under none;
 * - requests count every request (failures too) as api_requests does;
 * - an internal user's key (caller.self_only) sees the rows whose user is
 *   its own (daily_spend.user: spend_logs.user, as /spend/logs filters);
 *   daily_tag_spend has no user, so its tag rows are those of keys that
 *   were the user's on that day (a key moved to another user within a day
 *   counts for both that day);
 * - format: json (the default) or csv;
 * - parameters other than start_date, end_date, group_by and format are
 *   refused (400 naming the parameter); the range is at most UI_DAYS_MAX
 *   days.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpjson.h"
#include "ui_usage.h"

static const struct dim DIMS[N_DIMS] = {
    [DIM_TEAM] = {.name = "team", .column = "team_id", .null_name = "Unassigned"},
    [DIM_KEY] = {.name = "api_key", .column = "api_key"},
    [DIM_CUSTOMER] = {.name = "customer", .column = "end_user", .null_name = "No customer"},
    [DIM_MODEL] = {.name = "model", .column = "model"},
    [DIM_TAG] = {.name = "tag", .column = "tag"},
};

/* The dimension's top list, names defaulted (fill_names sets the rest). */
static json_t *top_list(const struct ui_usage *u, const struct dim *d, bool keys)
{
    json_t *list = json_array();
    char share[UI_RATIO_MAX];
    for (size_t i = 0; list != NULL && i < usage_top_count(d); i++) {
        const struct group *g = d->sorted[i];
        const char *name = g->id == NULL ? d->null_name : keys ? NULL : g->id;
        ui_ratio(g->spend, u->spend, 4, share);
        json_t *e = json_pack("{s:s?, s:s?, s:o, s:I, s:s}", "id", g->id, "name", name,
                              "spend", ui_money(g->spend), "requests", (json_int_t)g->requests,
                              "share", share);
        if (e != NULL && keys)
            json_object_set_new(e, "key_name", json_null());
        if (e == NULL || json_array_append_new(list, e) != 0) {
            json_decref(list);
            return NULL;
        }
    }
    return list;
}

/* Where each dimension's names come from: (id, name[, key_name]) rows. */
static const char *const NAMES_SQL[N_DIMS] = {
    [DIM_TEAM] = "SELECT team_id, team_alias, NULL FROM teams WHERE team_id IN (",
    [DIM_KEY] = "SELECT token, key_alias, key_name FROM api_keys WHERE token IN (",
    [DIM_CUSTOMER] = "SELECT user_id, alias, NULL FROM customers WHERE user_id IN (",
};

/* Sets the top entries' names (an alias; a key's key_name) from their rows. */
static int fill_names(MYSQL *db, struct dim *d, int dim, char *err, size_t errlen)
{
    char sql[256 + 4 * USAGE_TOP_MAX];
    struct db_param p[USAGE_TOP_MAX];
    struct db_result *r = NULL;
    size_t np = 0;
    if (NAMES_SQL[dim] == NULL)
        return 0;
    size_t len = (size_t)snprintf(sql, sizeof(sql), "%s", NAMES_SQL[dim]);
    for (size_t i = 0; i < usage_top_count(d); i++)
        if (d->sorted[i]->id != NULL) {
            len += (size_t)snprintf(sql + len, sizeof(sql) - len, "%s?", np ? ", " : "");
            p[np++] = DB_STR(d->sorted[i]->id);
        }
    if (np == 0)
        return 0;
    snprintf(sql + len, sizeof(sql) - len, ")");
    if (db_exec(db, sql, p, np, &r, NULL, NULL, err, errlen) < 0)
        return -1;
    for (size_t row = 0; row < r->nrows; row++)
        for (size_t i = 0; i < usage_top_count(d); i++) {
            json_t *e = json_array_get(d->top, i);
            if (d->sorted[i]->id == NULL || strcmp(d->sorted[i]->id, db_cell(r, row, 0)) != 0)
                continue;
            if (db_cell(r, row, 1) != NULL)
                json_object_set_new(e, "name", json_string(db_cell(r, row, 1)));
            if (db_cell(r, row, 2) != NULL)
                json_object_set_new(e, "key_name", json_string(db_cell(r, row, 2)));
        }
    db_result_free(r);
    return 0;
}

static json_t *day_list(const money_t *by_day, int ndays)
{
    json_t *list = json_array();
    for (int i = 0; list != NULL && i < ndays; i++)
        if (json_array_append_new(list, ui_money(by_day != NULL ? by_day[i] : 0)) != 0) {
            json_decref(list);
            return NULL;
        }
    return list;
}

/* One chart series named as its top entry e. */
static json_t *series_entry(json_t *e, money_t spend, const money_t *by_day, int ndays)
{
    json_t *s = json_pack("{s:O, s:O, s:o, s:o?}", "id", json_object_get(e, "id"), "name",
                          json_object_get(e, "name"), "spend", ui_money(spend), "spend_by_day",
                          day_list(by_day, ndays));
    json_t *key_name = json_object_get(e, "key_name");
    if (s != NULL && key_name != NULL)
        json_object_set(s, "key_name", key_name);
    return s;
}

/* The chart: the top groups of the dimension, then "others" for the rest. */
static json_t *series_list(const struct ui_usage *u, const struct dim *d)
{
    int ndays = u->range.ndays;
    json_t *list = json_array();
    money_t *rest = malloc((size_t)ndays * sizeof(money_t));
    money_t rest_spend = d->total;
    if (list == NULL || rest == NULL)
        goto fail;
    memcpy(rest, d->day_total, (size_t)ndays * sizeof(money_t));
    for (size_t i = 0; i < usage_top_count(d); i++) {
        const struct group *g = d->sorted[i];
        if (json_array_append_new(list, series_entry(json_array_get(d->top, i), g->spend,
                                                     g->by_day, ndays)) != 0)
            goto fail;
        rest_spend -= g->spend; /* exact: every part is in the total */
        for (int k = 0; g->by_day != NULL && k < ndays; k++)
            rest[k] -= g->by_day[k];
    }
    if (d->nsorted > USAGE_TOP_MAX) {
        json_t *others = json_pack("{s:n, s:s}", "id", "name", "others");
        if (json_array_append_new(list, series_entry(others, rest_spend, rest, ndays)) != 0) {
            json_decref(others);
            goto fail;
        }
        json_decref(others);
    }
    free(rest);
    return list;
fail:
    free(rest);
    json_decref(list);
    return NULL;
}

static json_t *answer(const struct ui_usage *u, const char *group_by)
{
    json_t *days = json_array(), *top = json_object(), *series = NULL;
    char day[16];
    for (int i = 0; days != NULL && i < u->range.ndays; i++) {
        ui_range_day(&u->range, i, day);
        json_array_append_new(days, json_string(day));
    }
    for (int i = 0; i < N_DIMS; i++) {
        json_object_set(top, u->dims[i].name, u->dims[i].top);
        if (u->dims[i].series)
            series = series_list(u, &u->dims[i]);
    }
    return json_pack("{s:s, s:s, s:s, s:{s:o, s:I, s:I, s:I, s:I}, s:o?, s:o?, s:o?}",
                     "start_date", u->range.start_date, "end_date", u->range.end_date,
                     "group_by", group_by, "totals", "spend", ui_money(u->spend),
                     "requests", (json_int_t)u->requests, "prompt_tokens", (json_int_t)u->prompt,
                     "completion_tokens", (json_int_t)u->completion,
                     "total_tokens", (json_int_t)u->total_tokens, "days", days, "series", series,
                     "top", top);
}

static void usage_free(struct ui_usage *u)
{
    for (int i = 0; i < N_DIMS; i++) {
        strmap_free(u->dims[i].groups, usage_free_group);
        free(u->dims[i].day_total);
        free(u->dims[i].sorted);
        json_decref(u->dims[i].top);
    }
}

/* group_by (team by default) as a dimension. */
static int read_group_by(struct evhttp_request *req, struct query *q, const char **name)
{
    if (query_str(req, q, "group_by", 16, name) < 0)
        return -1;
    if (*name == NULL)
        *name = "team";
    for (int i = 0; i < N_DIMS; i++)
        if (strcmp(DIMS[i].name, *name) == 0)
            return i;
    httpjson_error(req, 400, "invalid_request_error", "group_by",
                   "Invalid group_by: must be team, model, api_key, customer or tag");
    return -1;
}

/* format: 0 json (the default), 1 csv; -1 answered (400). */
static int read_format(struct evhttp_request *req, struct query *q)
{
    const char *format;
    if (query_str(req, q, "format", 8, &format) < 0)
        return -1;
    if (format == NULL || strcmp(format, "json") == 0)
        return 0;
    if (strcmp(format, "csv") == 0)
        return 1;
    httpjson_error(req, 400, "invalid_request_error", "format",
                   "Invalid format: must be json or csv");
    return -1;
}

/* Sets up the dimensions; -1 on ENOMEM. */
static int usage_init(struct ui_usage *u, int series)
{
    for (int i = 0; i < N_DIMS; i++) {
        u->dims[i] = DIMS[i];
        u->dims[i].series = i == series;
        if ((u->dims[i].groups = strmap_new()) == NULL)
            return -1;
    }
    u->dims[series].day_total = calloc((size_t)u->range.ndays, sizeof(money_t));
    return u->dims[series].day_total != NULL ? 0 : -1;
}

/* Reads the rollups and answers; -1 when a query failed (err set). */
static int usage_run(struct evhttp_request *req, MYSQL *db, struct ui_usage *u,
                     const char *group_by, char *err, size_t errlen)
{
    if (usage_read(db, u, err, errlen) < 0)
        return -1;
    for (int i = 0; i < N_DIMS; i++) {
        if ((u->dims[i].top = top_list(u, &u->dims[i], i == DIM_KEY)) == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        if (fill_names(db, &u->dims[i], i, err, errlen) < 0)
            return -1;
    }
    json_t *body = answer(u, group_by);
    if (body == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    httpjson_reply(req, 200, body);
    return 0;
}

void ui_api_usage(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    static const char *const PARAMS[] = {"start_date", "end_date", "group_by", "format", NULL};
    struct query *q = query_parse(req);
    struct ui_usage u = {.user = who->self_only ? who->user_id : NULL};
    const char *group_by;
    char err[512];
    int series, csv;
    MYSQL *db;
    if (q == NULL)
        return;
    if (query_only(req, q, PARAMS) < 0 || ui_range_read(req, q, &u.range) < 0 ||
        (series = read_group_by(req, q, &group_by)) < 0 || (csv = read_format(req, q)) < 0)
        goto out;
    u.day0 = (int64_t)u.range.start / 86400;
    if (usage_init(&u, series) < 0) {
        httpjson_error(req, 500, "internal_error", NULL, "out of memory");
        goto out;
    }
    if ((db = worker_db(w, req)) == NULL || ui_snapshot_begin(w, req, db) < 0)
        goto out;
    if ((csv ? usage_csv(req, db, &u, series, err, sizeof(err))
             : usage_run(req, db, &u, group_by, err, sizeof(err))) < 0)
        worker_db_failed(w, req, err);
    ui_snapshot_end(db);
out:
    usage_free(&u);
    query_free(q);
}
