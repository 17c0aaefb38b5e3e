/* ui_logs.c - GET /ui/api/logs: one page of the spend log for the Usage
 * page's table, with the count the pager needs.
 *
 * Parameters: start_date, end_date (required, at most UI_DAYS_MAX days),
 * page (from 1), page_size (1..PAGE_SIZE_MAX, default PAGE_SIZE_DEFAULT),
 * and the filters api_key (a raw key or its hash), user_id, request_id,
 * team_id, end_user (the customer), tag (one of the request's tags) and
 * model (the model group or the deployment's model). Any other parameter
 * is refused (400, naming it). An internal user's key reads its own user's
 * rows only (as /spend/logs: another user_id is a 403).
 *
 * Answer: {"page", "page_size", "total", "has_more", "rows": [{"request_id",
 * "start_time", "status", "call_type", "model", "model_group", "api_key"
 * (the hash), "key_alias", "key_name" ("sk-...abcd"), "team_id",
 * "team_name", "user", "end_user", "tags", "spend" (exact decimal text),
 * "prompt_tokens", "completion_tokens", "total_tokens"}]}, newest first
 * (start_time, then request_id, both descending).
 *
 * The page reads spend_logs as /spend/logs does: the page's request ids
 * first, walking an index ((api_key | user, start_time), else start_time)
 * backwards and stopping at the page's end, then only those rows. team_id,
 * end_user, tag and model have no index of their own in spend_logs (schema
 * 004 dropped them to keep inserts cheap), so they are checked on the rows
 * the walk passes: cheap when they match many rows, but a customer's few
 * rows among a quarter's would be a walk over all of it. So for team_id,
 * end_user and tag (without api_key or user_id) the keys that spent for
 * them in the range come first, from the rollups' indexes, and when they
 * are at most KEYS_IN_MAX the page is read among those keys' rows
 * (api_key IN (...): the (api_key, start_time) index): a customer's page
 * took 46 ms instead of 5.9 s on a 300,000-request quarter. No key: an
 * empty page without reading spend_logs.
 *
 * "total" is never counted over spend_logs: it is the requests the
 * rollups hold for the range and filters (usage_rollup's day rows with no
 * filter or one team, key, customer or tag alone; else daily_spend, or
 * daily_tag_spend for a tag), so after the retention policy deleted old
 * rows it still counts them; "has_more" is
 * exact (one row past the page is read). A tag together with user_id (also
 * an internal user's own), team_id or end_user has no rollup: "total" is
 * null then, and has_more is what pages on. With request_id, total is
 * counted on the row itself (its primary key).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpjson.h"
#include "keyhash.h"
#include "ui_api.h"

#define PAGE_MAX 100000
#define PAGE_SIZE_MAX 500
#define PAGE_SIZE_DEFAULT 50
#define KEYS_IN_MAX 64 /* keys the page is read among (see above) */
#define SQL_MAX (2048 + 4 * KEYS_IN_MAX)

enum filter { F_KEY, F_USER, F_REQUEST, F_TEAM, F_END_USER, F_TAG, F_MODEL, N_FILTERS };

/* Each filter's condition on spend_logs, and on the rollups (alias d; NULL:
 * not a rollup column). F_MODEL binds its value twice. */
static const char *const LOG_COND[N_FILTERS] = {
    " AND api_key = ?", " AND user = ?", " AND request_id = ?", " AND team_id = ?",
    " AND end_user = ?", " AND JSON_CONTAINS(request_tags, JSON_QUOTE(?))",
    " AND (model_group = ? OR model = ?)"};
static const char *const ROLLUP_COND[N_FILTERS] = {
    " AND d.api_key = ?", " AND d.user = ?", NULL, " AND d.team_id = ?", " AND d.end_user = ?",
    " AND d.tag = ?", " AND (d.model_group = ? OR d.model = ?)"};

struct logs_query {
    struct ui_range range;
    const char *v[N_FILTERS]; /* NULL: not given */
    char token[KEYHASH_HEX_LEN + 1];
    long page, page_size;
};

static int read_filters(struct evhttp_request *req, struct query *q, const struct caller *who,
                        struct logs_query *f)
{
    static const char *const NAMES[N_FILTERS] = {"api_key", "user_id", "request_id", "team_id",
                                                 "end_user", "tag", "model"};
    for (int i = 0; i < N_FILTERS; i++)
        if (query_str(req, q, NAMES[i], i == F_REQUEST ? 64 : INPUT_ID_MAX, &f->v[i]) < 0)
            return -1;
    if (who->self_only) { /* an internal user's key: its own user's rows only */
        if (f->v[F_USER] != NULL && strcmp(f->v[F_USER], who->user_id) != 0) {
            httpjson_error(req, 403, "permission_error", "user_id",
                           "An internal user's key can only read its own spend");
            return -1;
        }
        f->v[F_USER] = who->user_id;
    }
    for (const char *c = f->v[F_REQUEST]; c != NULL && *c != '\0'; c++)
        if ((unsigned char)*c >= 0x80) { /* request ids are ASCII (an ascii column) */
            httpjson_error(req, 400, "invalid_request_error", "request_id",
                           "Invalid request_id: must be ASCII");
            return -1;
        }
    if (f->v[F_KEY] != NULL) {
        if (keyhash_normalize(f->v[F_KEY], f->token) < 0) {
            httpjson_error(req, 500, "internal_error", NULL, "cannot hash the key");
            return -1;
        }
        f->v[F_KEY] = f->token;
    }
    return 0;
}

static int read_logs_query(struct evhttp_request *req, struct query *q, const struct caller *who,
                           struct logs_query *f)
{
    static const char *const PARAMS[] = {"start_date", "end_date", "page", "page_size",
                                         "api_key", "user_id", "request_id", "team_id",
                                         "end_user", "tag", "model", NULL};
    if (query_only(req, q, PARAMS) < 0 || ui_range_read(req, q, &f->range) < 0 ||
        query_int(req, q, "page", 1, PAGE_MAX, 1, &f->page) < 0 ||
        query_int(req, q, "page_size", 1, PAGE_SIZE_MAX, PAGE_SIZE_DEFAULT, &f->page_size) < 0)
        return -1;
    return read_filters(req, q, who, f);
}

/* Appends the conditions of the filters given (conds: LOG_COND or
 * ROLLUP_COND) and binds their values. */
static void add_conds(const struct logs_query *f, const char *const conds[N_FILTERS],
                      char *sql, size_t size, struct db_param *p, size_t *np)
{
    size_t len = strlen(sql);
    for (int i = 0; i < N_FILTERS; i++) {
        if (f->v[i] == NULL || conds[i] == NULL)
            continue;
        len += (size_t)snprintf(sql + len, size - len, "%s", conds[i]);
        p[(*np)++] = DB_STR(f->v[i]);
        if (i == F_MODEL)
            p[(*np)++] = DB_STR(f->v[i]);
    }
}

static const char SQL_PAGE_HEAD[] =
    "SELECT l.request_id, " REPORTD_SQL_RFC3339("l.start_time") ", l.status, l.call_type,"
    " l.model, l.model_group, l.api_key, l.key_alias, k.key_name, l.team_id,"
    " COALESCE(t.team_alias, l.team_id), l.user, l.end_user, l.request_tags, l.spend,"
    " l.prompt_tokens, l.completion_tokens, l.total_tokens"
    " FROM (SELECT request_id, start_time FROM spend_logs WHERE start_time >= ?"
    " AND start_time < ?";
static const char SQL_PAGE_TAIL[] =
    " ORDER BY start_time DESC, request_id DESC LIMIT ? OFFSET ?) page"
    " STRAIGHT_JOIN spend_logs l ON l.request_id = page.request_id"
    " LEFT JOIN api_keys k ON k.token = l.api_key LEFT JOIN teams t ON t.team_id = l.team_id"
    " ORDER BY page.start_time DESC, page.request_id DESC";

/* The keys that spent for the filters team_id, end_user or tag in the range
 * (see above), into *keys; *keys NULL when the walk is the way (no such
 * filter, a key or user filter already indexed, or too many keys). 0, or
 * -1 answered (500). */
static int filter_keys(struct worker *w, struct evhttp_request *req, MYSQL *db,
                       const struct logs_query *f, struct db_result **keys)
{
    char sql[SQL_MAX], err[512];
    struct db_param p[N_FILTERS + 3];
    size_t np = 2;
    bool by_spend = f->v[F_TEAM] != NULL || f->v[F_END_USER] != NULL;
    *keys = NULL;
    if (f->v[F_KEY] != NULL || f->v[F_USER] != NULL || f->v[F_REQUEST] != NULL ||
        (!by_spend && f->v[F_TAG] == NULL))
        return 0;
    snprintf(sql, sizeof(sql), "SELECT DISTINCT d.api_key FROM %s d"
             " WHERE d.day >= DATE(?) AND d.day < DATE(?)",
             by_spend ? "daily_spend" : "daily_tag_spend");
    p[0] = DB_STR(f->range.from);
    p[1] = DB_STR(f->range.to);
    struct logs_query only = *f; /* the conditions that table has */
    if (by_spend)
        only.v[F_TAG] = NULL;
    add_conds(&only, ROLLUP_COND, sql, sizeof(sql), p, &np);
    snprintf(sql + strlen(sql), sizeof(sql) - strlen(sql), " LIMIT %d", KEYS_IN_MAX + 1);
    if (db_exec(db, sql, p, np, keys, NULL, NULL, err, sizeof(err)) < 0) {
        worker_db_failed(w, req, err);
        return -1;
    }
    if ((*keys)->nrows > KEYS_IN_MAX) {
        db_result_free(*keys);
        *keys = NULL;
    }
    return 0;
}

/* The page's rows plus one (has_more), among keys when not NULL. */
static struct db_result *page_rows(struct worker *w, struct evhttp_request *req, MYSQL *db,
                                   const struct logs_query *f, const struct db_result *keys)
{
    char sql[SQL_MAX], err[512];
    struct db_param p[N_FILTERS + 5 + KEYS_IN_MAX] = {DB_STR(f->range.from),
                                                      DB_STR(f->range.to)};
    size_t np = 2;
    struct db_result *r = NULL;
    snprintf(sql, sizeof(sql), "%s", SQL_PAGE_HEAD);
    add_conds(f, LOG_COND, sql, sizeof(sql), p, &np);
    for (size_t i = 0; keys != NULL && i < keys->nrows; i++) {
        snprintf(sql + strlen(sql), sizeof(sql) - strlen(sql), "%s",
                 i == 0 ? " AND api_key IN (?" : ", ?");
        p[np++] = DB_STR(db_cell(keys, i, 0));
    }
    snprintf(sql + strlen(sql), sizeof(sql) - strlen(sql), "%s%s",
             keys != NULL ? ")" : "", SQL_PAGE_TAIL);
    p[np++] = DB_I64(f->page_size + 1);
    p[np++] = DB_I64((f->page - 1) * f->page_size);
    if (db_exec(db, sql, p, np, &r, NULL, NULL, err, sizeof(err)) < 0) {
        worker_db_failed(w, req, err);
        return NULL;
    }
    return r;
}

/* The page: no rows at all when the filters' keys are none. */
static struct db_result *page_of(struct worker *w, struct evhttp_request *req, MYSQL *db,
                                 const struct logs_query *f)
{
    struct db_result *keys = NULL, *r = NULL;
    if (filter_keys(w, req, db, f, &keys) < 0)
        return NULL;
    if (keys != NULL && keys->nrows == 0)
        r = calloc(1, sizeof(*r)); /* db_result_free frees it */
    else
        r = page_rows(w, req, db, f, keys);
    if (keys != NULL && keys->nrows == 0 && r == NULL)
        httpjson_error(req, 500, "internal_error", NULL, "out of memory");
    db_result_free(keys);
    return r;
}

/* usage_rollup's dimension that counts the range's requests when the filters
 * are none ("m": every request has one model) or one team, key, customer or
 * tag alone (*id: its value); NULL when they are others. */
static const char *count_dim(const struct logs_query *f, const char **id)
{
    static const char *const DIM[N_FILTERS] = {[F_KEY] = "k", [F_TEAM] = "t",
                                               [F_END_USER] = "c", [F_TAG] = "g"};
    const char *dim = "m";
    *id = NULL;
    for (int i = 0; i < N_FILTERS; i++) {
        if (f->v[i] == NULL)
            continue;
        if (DIM[i] == NULL || *id != NULL || f->v[i][0] == '\0') /* "" is no group here */
            return NULL;
        dim = DIM[i];
        *id = f->v[i];
    }
    return dim;
}

/* The statement counting the requests of the range and filters (see
 * above); false when no rollup can. */
static bool count_sql(const struct logs_query *f, char *sql, size_t size, struct db_param *p,
                      size_t *np)
{
    const char *const *conds = ROLLUP_COND;
    const char *from = "daily_spend", *id, *dim = count_dim(f, &id);
    if (dim != NULL) { /* a few day rows per day, however busy the range */
        snprintf(sql, size, "SELECT COALESCE(SUM(api_requests), 0) FROM usage_rollup"
                 " WHERE grain = 'd' AND dim = ? AND period >= DATE(?) AND period < DATE(?)%s",
                 id != NULL ? " AND group_id = ?" : "");
        p[0] = DB_STR(dim);
        p[1] = DB_STR(f->range.from);
        p[2] = DB_STR(f->range.to);
        p[3] = DB_STR(id);
        *np = id != NULL ? 4 : 3;
        return true;
    }
    if (f->v[F_REQUEST] != NULL) {
        conds = LOG_COND;
        snprintf(sql, size, "SELECT COUNT(*) FROM spend_logs"
                 " WHERE start_time >= ? AND start_time < ?");
    } else {
        if (f->v[F_TAG] != NULL) {
            if (f->v[F_USER] != NULL || f->v[F_TEAM] != NULL || f->v[F_END_USER] != NULL)
                return false;
            from = f->v[F_KEY] != NULL || f->v[F_MODEL] != NULL ? "daily_tag_spend"
                                                                 : "daily_tag_totals";
        }
        snprintf(sql, size, "SELECT COALESCE(SUM(d.api_requests), 0) FROM %s d"
                 " WHERE d.day >= DATE(?) AND d.day < DATE(?)", from);
    }
    p[0] = DB_STR(f->range.from);
    p[1] = DB_STR(f->range.to);
    *np = 2;
    add_conds(f, conds, sql, size, p, np);
    return true;
}

/* The count as JSON (null when no rollup holds it); NULL answered (500). */
static json_t *count_rows(struct worker *w, struct evhttp_request *req, MYSQL *db,
                          const struct logs_query *f)
{
    char sql[SQL_MAX], err[512];
    struct db_param p[N_FILTERS + 3];
    size_t np;
    struct db_result *r = NULL;
    if (!count_sql(f, sql, sizeof(sql), p, &np))
        return json_null();
    if (db_exec(db, sql, p, np, &r, NULL, NULL, err, sizeof(err)) < 0) {
        worker_db_failed(w, req, err);
        return NULL;
    }
    json_t *n = httpjson_int_text(db_cell(r, 0, 0));
    db_result_free(r);
    return n;
}

static json_t *log_row(const struct db_result *r, size_t i)
{
    json_t *tags = json_loads(db_cell(r, i, 13), 0, NULL);
    if (!json_is_array(tags)) {
        json_decref(tags);
        tags = json_array();
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?,"
                     " s:o, s:o, s:o, s:o, s:o}",
                     "request_id", db_cell(r, i, 0), "start_time", db_cell(r, i, 1),
                     "status", db_cell(r, i, 2), "call_type", db_cell(r, i, 3),
                     "model", db_cell(r, i, 4), "model_group", db_cell(r, i, 5),
                     "api_key", db_cell(r, i, 6), "key_alias", db_cell(r, i, 7),
                     "key_name", db_cell(r, i, 8), "team_id", db_cell(r, i, 9),
                     "team_name", db_cell(r, i, 10), "user", db_cell(r, i, 11),
                     "end_user", db_cell(r, i, 12), "tags", tags,
                     "spend", ui_money_text(db_cell(r, i, 14)),
                     "prompt_tokens", httpjson_int_text(db_cell(r, i, 15)),
                     "completion_tokens", httpjson_int_text(db_cell(r, i, 16)),
                     "total_tokens", httpjson_int_text(db_cell(r, i, 17)));
}

void ui_api_logs(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    struct query *q = query_parse(req);
    struct logs_query f = {0};
    struct db_result *r = NULL;
    json_t *total = NULL;
    MYSQL *db;
    if (q == NULL)
        return;
    if (read_logs_query(req, q, who, &f) < 0 || (db = worker_db(w, req)) == NULL ||
        ui_snapshot_begin(w, req, db) < 0)
        goto out;
    r = page_of(w, req, db, &f);
    total = r != NULL ? count_rows(w, req, db, &f) : NULL;
    ui_snapshot_end(db);
    if (total == NULL)
        goto out;
    json_t *rows = json_array();
    size_t n = r->nrows < (size_t)f.page_size ? r->nrows : (size_t)f.page_size;
    for (size_t i = 0; rows != NULL && i < n; i++)
        json_array_append_new(rows, log_row(r, i));
    httpjson_reply(req, 200, json_pack("{s:I, s:I, s:O, s:b, s:o?}", "page", (json_int_t)f.page,
                                       "page_size", (json_int_t)f.page_size, "total", total,
                                       "has_more", r->nrows > (size_t)f.page_size, "rows", rows));
out:
    json_decref(total);
    db_result_free(r);
    query_free(q);
}
