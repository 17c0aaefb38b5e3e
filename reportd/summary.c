/* summary.c - spend summaries and the spend reset: /global/spend/keys,
 * /global/spend/models, /global/spend/tags, /spend/tags and
 * /global/spend/reset, in LiteLLM's shapes.
 *
 * Keys answer with their spend counter (what LiteLLM's key table holds);
 * models and tags with sums over the daily rollups, never the log rows: tags
 * over daily_tag_totals (per day and tag, ~10 rows a day for 10 tags) rather
 * than daily_tag_spend (also per key and model: ~2.4M rows for a quarter of
 * 10M requests). log_count is the tag's requests (each request counts once
 * per distinct tag), failed ones included.
 * Lists are bounded: `limit` (keys, models; 1..1000, default 100) or the
 * number of tags. The reset zeroes keys and teams only, as LiteLLM does:
 * the logs and rollups keep the history.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "httpjson.h"
#include "input.h"
#include "reportd.h"

#define LIMIT_MAX 1000
#define LIMIT_DEFAULT 100
#define TAGS_MAX 100 /* tags= names at most */

/* Runs sql with params; answers 500 itself on failure. */
static struct db_result *run(struct worker *w, struct evhttp_request *req, const char *sql,
                             const struct db_param *p, size_t n)
{
    struct db_result *r = NULL;
    char err[512];
    MYSQL *db = worker_db(w, req);
    if (db == NULL)
        return NULL;
    if (db_exec(db, sql, p, n, &r, NULL, NULL, err, sizeof(err)) < 0) {
        worker_db_failed(w, req, err);
        return NULL;
    }
    return r;
}

/* A `limit`-bounded query (its one parameter): the rows, or NULL answered. */
static struct db_result *limited(struct worker *w, struct evhttp_request *req, const char *sql)
{
    struct query *q = query_parse(req);
    struct db_result *r = NULL;
    long limit;
    if (q != NULL && query_int(req, q, "limit", 1, LIMIT_MAX, LIMIT_DEFAULT, &limit) == 0) {
        struct db_param p[] = {DB_I64(limit)};
        r = run(w, req, sql, p, 1);
    }
    query_free(q);
    return r;
}

void summary_keys(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    struct db_result *r = limited(w, req, "SELECT token, key_alias, key_name, spend FROM api_keys"
                                          " ORDER BY spend DESC, token LIMIT ?");
    (void)who;
    if (r == NULL)
        return;
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && i < r->nrows; i++)
        json_array_append_new(list, json_pack("{s:s, s:o, s:s, s:o}",
            "api_key", db_cell(r, i, 0), "key_alias", httpjson_str_or_null(db_cell(r, i, 1)),
            "key_name", db_cell(r, i, 2), "total_spend", httpjson_money_text(db_cell(r, i, 3))));
    httpjson_reply(req, 200, list);
    db_result_free(r);
}

void summary_models(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    struct db_result *r = limited(w, req, "SELECT model, SUM(spend) AS total FROM daily_spend"
                                          " GROUP BY model ORDER BY total DESC, model LIMIT ?");
    (void)who;
    if (r == NULL)
        return;
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && i < r->nrows; i++)
        json_array_append_new(list, json_pack("{s:s, s:o}", "model", db_cell(r, i, 0),
                                              "total_spend", httpjson_money_text(db_cell(r, i, 1))));
    httpjson_reply(req, 200, list);
    db_result_free(r);
}

/* Spend and request count per tag over [from, to) (all days when not
 * dated), optionally only the comma-separated tags in `only`. */
static struct db_result *tag_sums(struct worker *w, struct evhttp_request *req, bool dated,
                                  const char *from, const char *to, const char *only)
{
    char sql[512 + TAGS_MAX * 2];
    struct db_param p[2 + TAGS_MAX];
    size_t n = 0;
    int len = snprintf(sql, sizeof(sql), "SELECT tag, SUM(spend) AS total, SUM(api_requests)"
                       " FROM daily_tag_totals WHERE 1 = 1");
    if (dated) {
        len += snprintf(sql + len, sizeof(sql) - (size_t)len,
                        " AND day >= DATE(?) AND day < DATE(?)");
        p[n++] = DB_STR(from);
        p[n++] = DB_STR(to);
    }
    char *names = only != NULL ? strdup(only) : NULL, *save = NULL;
    if (only != NULL && names == NULL) {
        httpjson_error(req, 500, "internal_error", NULL, "out of memory");
        return NULL;
    }
    for (char *t = names ? strtok_r(names, ",", &save) : NULL; t != NULL;
         t = strtok_r(NULL, ",", &save)) {
        if (n - (dated ? 2 : 0) >= TAGS_MAX || strlen(t) > 255) {
            free(names);
            httpjson_error(req, 400, "invalid_request_error", "tags",
                           "Invalid tags: at most %d names of at most 255 characters", TAGS_MAX);
            return NULL;
        }
        len += snprintf(sql + len, sizeof(sql) - (size_t)len,
                        n == (dated ? 2u : 0u) ? " AND tag IN (?" : ",?");
        p[n++] = DB_STR(t);
    }
    if (n > (dated ? 2u : 0u))
        len += snprintf(sql + len, sizeof(sql) - (size_t)len, ")");
    snprintf(sql + len, sizeof(sql) - (size_t)len, " GROUP BY tag ORDER BY total DESC, tag");
    struct db_result *r = run(w, req, sql, p, n);
    free(names);
    return r;
}

void summary_global_tags(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    struct query *q = query_parse(req);
    struct db_result *r = NULL;
    char from[DB_DATETIME_MAX], to[DB_DATETIME_MAX];
    const char *tags;
    bool dated;
    (void)who;
    if (q == NULL)
        return;
    if (query_date_range(req, q, false, from, to, &dated) < 0 ||
        query_str(req, q, "tags", 256 * TAGS_MAX, &tags) < 0 ||
        (r = tag_sums(w, req, dated, from, to, tags)) == NULL)
        goto out;
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && i < r->nrows; i++)
        json_array_append_new(list, json_pack("{s:s, s:o, s:o}", "name", db_cell(r, i, 0),
            "spend", httpjson_money_text(db_cell(r, i, 1)),
            "log_count", httpjson_int_text(db_cell(r, i, 2))));
    httpjson_reply(req, 200, json_pack("{s:o}", "spend_per_tag", list));
out:
    db_result_free(r);
    query_free(q);
}

void summary_tags(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    struct query *q = query_parse(req);
    struct db_result *r = NULL;
    char from[DB_DATETIME_MAX], to[DB_DATETIME_MAX];
    bool dated;
    (void)who;
    if (q == NULL)
        return;
    if (query_date_range(req, q, false, from, to, &dated) < 0 ||
        (r = tag_sums(w, req, dated, from, to, NULL)) == NULL)
        goto out;
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && i < r->nrows; i++)
        json_array_append_new(list, json_pack("{s:s, s:o, s:o}",
            "individual_request_tag", db_cell(r, i, 0),
            "log_count", httpjson_int_text(db_cell(r, i, 2)),
            "total_spend", httpjson_money_text(db_cell(r, i, 1))));
    httpjson_reply(req, 200, list);
out:
    db_result_free(r);
    query_free(q);
}

void summary_reset(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    char err[512];
    MYSQL *db = worker_db(w, req);
    (void)who;
    if (db == NULL)
        return;
    if (db_begin(db, err, sizeof(err)) < 0 ||
        db_exec(db, "UPDATE api_keys SET spend = 0", NULL, 0, NULL, NULL, NULL, err,
                sizeof(err)) < 0 ||
        db_exec(db, "UPDATE teams SET spend = 0", NULL, 0, NULL, NULL, NULL, err,
                sizeof(err)) < 0 ||
        db_commit(db, err, sizeof(err)) < 0) {
        db_rollback(db);
        worker_db_failed(w, req, err);
        return;
    }
    httpjson_reply(req, 200, json_pack("{s:s, s:s}", "message",
                                       "Spend for all API Keys and Teams reset successfully",
                                       "status", "success"));
}
