/* activity.c - /user/daily/activity, /team/daily/activity and
 * /tag/daily/activity in LiteLLM's SpendAnalyticsPaginatedResponse shape,
 * read from the daily rollups accountd keeps (daily_spend, daily_tag_spend),
 * never from the log rows.
 *
 * One implementation serves the three routes; a struct entity says which
 * rollup and column the route is about and how its entities are filtered.
 * The user route covers every request (the ones without a user are the
 * entity "Unassigned", as in LiteLLM), the team route the requests of a
 * team, the tag route each tag of each request (a request with two tags
 * counts under both, so its totals add tags, not requests).
 *
 * Pages hold whole UTC days, newest first: LiteLLM pages over its rollup
 * rows, so one day can straddle two pages; here it cannot. The metadata
 * totals cover the page's days, as LiteLLM's cover its page's rows, so the
 * pages' totals add up to the range's. Every sum is DECIMAL in SQL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "httpjson.h"
#include "input.h"
#include "keyhash.h"
#include "reportd.h"

#define PAGE_MAX 1000000
#define PAGE_SIZE_MAX 1000
#define NAMES_MAX 100 /* names in one list parameter */
#define FILTER_SQL_MAX 1024 /* room for two lists of NAMES_MAX and the rest */
#define FILTER_PARAMS_MAX (2 * NAMES_MAX + 8)
#define SQL_MAX (FILTER_SQL_MAX + 1024)

/* What a route reports on. */
struct entity {
    const char *table;        /* the rollup */
    const char *column;       /* the entity's column in it (alias d) */
    const char *filter;       /* the parameter selecting entities */
    bool filter_is_list;      /* comma-separated names, else one name */
    const char *exclude;      /* the parameter leaving entities out, or NULL */
    const char *required;     /* a condition every row meets, or "" */
    const char *meta_join;    /* joins alias e for the entities' metadata */
    const char *meta_col;     /* that metadata (an aggregate over e), or NULL */
    const char *meta_name;
    long page_size_default;   /* LiteLLM's */
};

static const struct entity USERS = {
    "daily_spend", "user", "user_id", false, NULL, "",
    " LEFT JOIN internal_users e ON e.user_id = d.user", "MAX(e.user_email)", "user_email", 50};
static const struct entity TEAMS = {
    "daily_spend", "team_id", "team_ids", true, "exclude_team_ids", " AND d.team_id IS NOT NULL",
    " LEFT JOIN teams e ON e.team_id = d.team_id", "MAX(e.team_alias)", "team_alias", 10};
static const struct entity TAGS = {
    "daily_tag_spend", "tag", "tags", true, NULL, "", "", NULL, NULL, 10};

/* The nine metrics of a group, in the order of METRIC_NAMES. */
#define METRICS_SQL                                                                     \
    "SUM(d.spend), SUM(d.prompt_tokens), SUM(d.completion_tokens), SUM(d.total_tokens),"  \
    " SUM(d.api_requests), SUM(d.successful_requests), SUM(d.failed_requests),"           \
    " SUM(d.cache_read_input_tokens), SUM(d.cache_creation_input_tokens)"
#define N_METRICS 9
static const char *const METRIC_NAMES[N_METRICS] = {
    "spend", "prompt_tokens", "completion_tokens", "total_tokens", "api_requests",
    "successful_requests", "failed_requests", "cache_read_input_tokens",
    "cache_creation_input_tokens"};
static const char *const TOTAL_NAMES[N_METRICS] = {
    "total_spend", "total_prompt_tokens", "total_completion_tokens", "total_tokens",
    "total_api_requests", "total_successful_requests", "total_failed_requests",
    "total_cache_read_input_tokens", "total_cache_creation_input_tokens"};

/* The parameters, as SQL: "d.day >= DATE(?) AND d.day < DATE(?)" and then
 * cond; p holds the range, the conditions' values and room for two more. */
struct filter {
    char cond[FILTER_SQL_MAX];
    size_t len;
    struct db_param p[FILTER_PARAMS_MAX + 2];
    size_t n;
    char from[DB_DATETIME_MAX], to[DB_DATETIME_MAX];
    char token[KEYHASH_HEX_LEN + 1];
    char *lists[2]; /* copies of the list parameters that p points into */
    long page, page_size;
};

static void filter_free(struct filter *f)
{
    free(f->lists[0]);
    free(f->lists[1]);
}

static void add_cond(struct filter *f, const char *a, const char *b, const char *c)
{
    int n = snprintf(f->cond + f->len, sizeof(f->cond) - f->len, "%s%s%s", a, b, c);
    if (n > 0 && (size_t)n < sizeof(f->cond) - f->len)
        f->len += (size_t)n;
}

/* " AND d.column [NOT] IN (?, ...)" from a comma-separated list; empty
 * names are skipped, no names at all is no condition. */
static int add_list(struct evhttp_request *req, struct filter *f, const char *param,
                    const char *value, const char *column, bool negate, char **copy)
{
    char *save = NULL, *name;
    size_t first = f->n;
    if (value == NULL)
        return 0;
    if ((*copy = strdup(value)) == NULL) {
        httpjson_error(req, 500, "internal_error", NULL, "out of memory");
        return -1;
    }
    for (name = strtok_r(*copy, ",", &save); name != NULL; name = strtok_r(NULL, ",", &save)) {
        if (f->n - first >= NAMES_MAX || strlen(name) > INPUT_ID_MAX) {
            httpjson_error(req, 400, "invalid_request_error", param,
                           "Invalid %s: at most %d comma-separated names of at most %d"
                           " characters", param, NAMES_MAX, INPUT_ID_MAX);
            return -1;
        }
        add_cond(f, f->n == first ? " AND d." : ",", f->n == first ? column : "",
                 f->n == first ? (negate ? " NOT IN (?" : " IN (?") : "?");
        f->p[f->n++] = DB_STR(name);
    }
    if (f->n > first)
        add_cond(f, ")", "", "");
    return 0;
}

/* Reads and checks every parameter of the route into f. */
static int read_filter(struct evhttp_request *req, struct query *q, const struct entity *ent,
                       const struct caller *who, struct filter *f)
{
    const char *names, *excluded = NULL, *model, *key;
    bool dated;
    if (query_date_range(req, q, true, f->from, f->to, &dated) < 0 ||
        query_str(req, q, ent->filter, ent->filter_is_list ? 256 * NAMES_MAX : INPUT_ID_MAX,
                  &names) < 0 ||
        (ent->exclude != NULL && query_str(req, q, ent->exclude, 256 * NAMES_MAX, &excluded) < 0) ||
        query_str(req, q, "model", INPUT_ID_MAX, &model) < 0 ||
        query_str(req, q, "api_key", INPUT_ID_MAX, &key) < 0 ||
        query_int(req, q, "page", 1, PAGE_MAX, 1, &f->page) < 0 ||
        query_int(req, q, "page_size", 1, PAGE_SIZE_MAX, ent->page_size_default,
                  &f->page_size) < 0)
        return -1;
    if (who->self_only) { /* an internal user's key: its own spend only (user route) */
        if (names != NULL && strcmp(names, who->user_id) != 0) {
            httpjson_error(req, 403, "permission_error", ent->filter,
                           "An internal user's key can only read its own spend");
            return -1;
        }
        names = who->user_id;
    }
    f->p[f->n++] = DB_STR(f->from);
    f->p[f->n++] = DB_STR(f->to);
    add_cond(f, ent->required, "", "");
    if (ent->filter_is_list) {
        if (add_list(req, f, ent->filter, names, ent->column, false, &f->lists[0]) < 0)
            return -1;
    } else if (names != NULL) {
        add_cond(f, " AND d.", ent->column, " = ?");
        f->p[f->n++] = DB_STR(names);
    }
    if (add_list(req, f, ent->exclude, excluded, ent->column, true, &f->lists[1]) < 0)
        return -1;
    if (model != NULL) {
        add_cond(f, " AND d.model = ?", "", "");
        f->p[f->n++] = DB_STR(model);
    }
    if (key != NULL) { /* a raw key or its hash */
        if (keyhash_normalize(key, f->token) < 0) {
            httpjson_error(req, 500, "internal_error", NULL, "cannot hash the key");
            return -1;
        }
        add_cond(f, " AND d.api_key = ?", "", "");
        f->p[f->n++] = DB_STR(f->token);
    }
    return 0;
}

/* Runs sql with the filter's values plus `extra` more already in f->p. */
static struct db_result *run(struct worker *w, struct evhttp_request *req, const char *sql,
                             const struct filter *f, size_t extra)
{
    struct db_result *r = NULL;
    char err[512];
    MYSQL *db = worker_db(w, req);
    if (db == NULL)
        return NULL;
    if (db_exec(db, sql, f->p, f->n + extra, &r, NULL, NULL, err, sizeof(err)) < 0) {
        worker_db_failed(w, req, err);
        return NULL;
    }
    return r;
}

/* {"spend", ...} from the N_METRICS cells at col of row; zeros when r is NULL. */
static json_t *metrics_json(const struct db_result *r, size_t row, size_t col,
                            const char *const names[N_METRICS])
{
    json_t *m = json_object();
    for (size_t i = 0; m != NULL && i < N_METRICS; i++) {
        const char *v = r != NULL ? db_cell(r, row, col + i) : NULL;
        json_object_set_new(m, names[i], i == 0 ? httpjson_money_text(v != NULL ? v : "0")
                                                : httpjson_int_text(v));
    }
    return m;
}

/* The oldest and newest day of the requested page into lo/hi ("" when the
 * page is past the last day) and how many days have activity. */
static int page_days(struct worker *w, struct evhttp_request *req, const struct entity *ent,
                     struct filter *f, char lo[16], char hi[16], long *ndays)
{
    char sql[SQL_MAX];
    struct db_result *r;
    snprintf(sql, sizeof(sql), "SELECT COUNT(DISTINCT d.day) FROM %s d"
             " WHERE d.day >= DATE(?) AND d.day < DATE(?)%s", ent->table, f->cond);
    if ((r = run(w, req, sql, f, 0)) == NULL)
        return -1;
    *ndays = strtol(db_cell(r, 0, 0), NULL, 10);
    db_result_free(r);
    snprintf(sql, sizeof(sql), "SELECT %s, %s FROM (SELECT DISTINCT d.day FROM %s d"
             " WHERE d.day >= DATE(?) AND d.day < DATE(?)%s ORDER BY d.day DESC"
             " LIMIT ? OFFSET ?) x", "DATE_FORMAT(MIN(x.day), '%Y-%m-%d')",
             "DATE_FORMAT(MAX(x.day), '%Y-%m-%d')", ent->table, f->cond);
    f->p[f->n] = DB_I64(f->page_size);
    f->p[f->n + 1] = DB_I64((f->page - 1) * f->page_size);
    if ((r = run(w, req, sql, f, 2)) == NULL)
        return -1;
    snprintf(lo, 16, "%s", db_cell(r, 0, 0) != NULL ? db_cell(r, 0, 0) : "");
    snprintf(hi, 16, "%s", db_cell(r, 0, 1) != NULL ? db_cell(r, 0, 1) : "");
    db_result_free(r);
    return 0;
}

/* One breakdown of the page: per day and key, the metrics and metadata. */
struct part {
    const char *name; /* in "breakdown" */
    const char *key;  /* the grouping expression */
    const char *join;
    const char *meta_col[2], *meta_name[2];
};

/* SQL of a part over the page's days: day, key, metrics, metadata. */
static void part_sql(char *sql, size_t size, const struct entity *ent, const struct filter *f,
                     const struct part *pt)
{
    snprintf(sql, size, "SELECT %s, %s, " METRICS_SQL "%s%s%s%s FROM %s d%s"
             " WHERE d.day >= DATE(?) AND d.day < DATE(?)%s AND d.day >= ? AND d.day <= ?"
             " GROUP BY d.day, %s",
             "DATE_FORMAT(d.day, '%Y-%m-%d')", pt->key, pt->meta_col[0] ? ", " : "",
             pt->meta_col[0] ? pt->meta_col[0] : "", pt->meta_col[1] ? ", " : "",
             pt->meta_col[1] ? pt->meta_col[1] : "", ent->table, pt->join, f->cond, pt->key);
}

/* Adds the part's rows to the days in by_day (date -> breakdown object). */
static int add_part(struct worker *w, struct evhttp_request *req, const struct entity *ent,
                    struct filter *f, const struct part *pt, json_t *by_day)
{
    char sql[SQL_MAX];
    part_sql(sql, sizeof(sql), ent, f, pt);
    struct db_result *r = run(w, req, sql, f, 2);
    if (r == NULL)
        return -1;
    for (size_t i = 0; i < r->nrows; i++) {
        json_t *group = json_object_get(json_object_get(by_day, db_cell(r, i, 0)), pt->name);
        json_t *meta = json_object();
        for (size_t m = 0; m < 2 && pt->meta_col[m] != NULL; m++)
            json_object_set_new(meta, pt->meta_name[m],
                                httpjson_str_or_null(db_cell(r, i, 2 + N_METRICS + m)));
        json_object_set_new(group, db_cell(r, i, 1),
                            json_pack("{s:o, s:o}", "metrics",
                                      metrics_json(r, i, 2, METRIC_NAMES), "metadata", meta));
    }
    db_result_free(r);
    return 0;
}

/* The page's days, newest first, each with its metrics and empty breakdowns;
 * by_day maps each date to its breakdown. */
static json_t *page_results(struct worker *w, struct evhttp_request *req,
                            const struct entity *ent, struct filter *f, json_t *by_day)
{
    char sql[SQL_MAX];
    snprintf(sql, sizeof(sql), "SELECT %s, " METRICS_SQL " FROM %s d"
             " WHERE d.day >= DATE(?) AND d.day < DATE(?)%s AND d.day >= ? AND d.day <= ?"
             " GROUP BY d.day ORDER BY d.day DESC", "DATE_FORMAT(d.day, '%Y-%m-%d')",
             ent->table, f->cond);
    struct db_result *r = run(w, req, sql, f, 2);
    if (r == NULL)
        return NULL;
    json_t *results = json_array();
    for (size_t i = 0; results != NULL && i < r->nrows; i++) {
        json_t *bd = json_pack("{s:{}, s:{}, s:{}, s:{}, s:{}}", "models", "model_groups",
                               "providers", "api_keys", "entities");
        json_object_set(by_day, db_cell(r, i, 0), bd);
        json_array_append_new(results, json_pack("{s:s, s:o, s:o}", "date", db_cell(r, i, 0),
                                                 "metrics", metrics_json(r, i, 1, METRIC_NAMES),
                                                 "breakdown", bd));
    }
    db_result_free(r);
    return results;
}

/* The metadata: the page's totals and where the page is. */
static json_t *page_metadata(struct worker *w, struct evhttp_request *req,
                             const struct entity *ent, struct filter *f, bool empty, long ndays)
{
    char sql[SQL_MAX];
    struct db_result *r = NULL;
    snprintf(sql, sizeof(sql), "SELECT " METRICS_SQL " FROM %s d WHERE d.day >= DATE(?)"
             " AND d.day < DATE(?)%s AND d.day >= ? AND d.day <= ?", ent->table, f->cond);
    if (!empty && (r = run(w, req, sql, f, 2)) == NULL)
        return NULL;
    json_t *meta = metrics_json(r, 0, 0, TOTAL_NAMES);
    db_result_free(r);
    json_object_set_new(meta, "page", json_integer(f->page));
    json_object_set_new(meta, "total_pages",
                        json_integer((ndays + f->page_size - 1) / f->page_size));
    json_object_set_new(meta, "has_more", json_boolean(f->page * f->page_size < ndays));
    return meta;
}

/* Fills the page's breakdowns, one query each. */
static int add_parts(struct worker *w, struct evhttp_request *req, const struct entity *ent,
                     struct filter *f, json_t *by_day)
{
    char entity_key[64];
    snprintf(entity_key, sizeof(entity_key), "COALESCE(d.%s, 'Unassigned')", ent->column);
    const struct part parts[] = {
        {"models", "d.model", "", {NULL, NULL}, {NULL, NULL}},
        {"model_groups", "d.model_group", "", {NULL, NULL}, {NULL, NULL}},
        {"providers", "COALESCE(NULLIF(d.custom_llm_provider, ''), 'unknown')", "",
         {NULL, NULL}, {NULL, NULL}},
        {"api_keys", "d.api_key", " LEFT JOIN api_keys k ON k.token = d.api_key",
         {"MAX(k.key_alias)", "MAX(k.team_id)"}, {"key_alias", "team_id"}},
        {"entities", entity_key, ent->meta_join, {ent->meta_col, NULL}, {ent->meta_name, NULL}},
    };
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        if (add_part(w, req, ent, f, &parts[i], by_day) < 0)
            return -1;
    return 0;
}

static void daily_activity(struct worker *w, struct evhttp_request *req, const struct entity *ent,
                           const struct caller *who)
{
    struct query *q = query_parse(req);
    struct filter f = {0};
    char lo[16], hi[16];
    long ndays = 0;
    bool empty;
    json_t *by_day = json_object(), *results = NULL, *meta = NULL;
    if (q == NULL || read_filter(req, q, ent, who, &f) < 0 ||
        page_days(w, req, ent, &f, lo, hi, &ndays) < 0)
        goto out;
    f.p[f.n] = DB_STR(lo); /* the page's days: every query below takes them last */
    f.p[f.n + 1] = DB_STR(hi);
    empty = lo[0] == '\0';
    if ((results = empty ? json_array() : page_results(w, req, ent, &f, by_day)) == NULL ||
        (!empty && add_parts(w, req, ent, &f, by_day) < 0) ||
        (meta = page_metadata(w, req, ent, &f, empty, ndays)) == NULL)
        goto out;
    httpjson_reply(req, 200, json_pack("{s:O, s:O}", "results", results, "metadata", meta));
out:
    json_decref(results);
    json_decref(meta);
    json_decref(by_day);
    filter_free(&f);
    query_free(q);
}

void activity_user(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    daily_activity(w, req, &USERS, who);
}

void activity_team(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    daily_activity(w, req, &TEAMS, who);
}

void activity_tag(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    daily_activity(w, req, &TAGS, who);
}
