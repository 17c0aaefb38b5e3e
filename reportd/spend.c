/* spend.c - /spend/logs: the log rows, filtered and paginated. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "httpjson.h"
#include "input.h"
#include "keyhash.h"
#include "reportd.h"

#define PAGE_SIZE_MAX 1000
#define PAGE_SIZE_DEFAULT 100

static json_t *log_row(const struct db_result *r, size_t i)
{
    json_t *tags = json_loads(db_cell(r, i, 16), 0, NULL);
    json_t *meta = json_loads(db_cell(r, i, 17), 0, NULL);
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o,"
                     " s:o, s:o, s:s, s:o, s:o, s:s}",
        "request_id", db_cell(r, i, 0), "call_type", db_cell(r, i, 1), "api_key", db_cell(r, i, 2),
        "spend", httpjson_money_text(db_cell(r, i, 3)),
        "total_tokens", httpjson_int_text(db_cell(r, i, 4)),
        "prompt_tokens", httpjson_int_text(db_cell(r, i, 5)),
        "completion_tokens", httpjson_int_text(db_cell(r, i, 6)),
        "startTime", db_cell(r, i, 7), "endTime", db_cell(r, i, 8), "model", db_cell(r, i, 9),
        "model_group", db_cell(r, i, 10), "api_base", db_cell(r, i, 11),
        "user", httpjson_str_or_null(db_cell(r, i, 12)),
        "team_id", httpjson_str_or_null(db_cell(r, i, 13)),
        "end_user", httpjson_str_or_null(db_cell(r, i, 14)),
        "key_alias", httpjson_str_or_null(db_cell(r, i, 15)),
        "request_tags", tags != NULL ? tags : json_array(),
        "status", db_cell(r, i, 18), "metadata", meta != NULL ? meta : json_object(),
        "cache_read_input_tokens", httpjson_int_text(db_cell(r, i, 19)),
        "pricing", db_cell(r, i, 20));
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
        query_date_range(req, q, false, f->from, f->to, &f->dated) < 0 ||
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
    /* The page's request ids first, from an index alone ((api_key|user, start_time)
     * holds request_id too): sorting a busy key's day of whole rows to keep 100 of
     * them cost tens of ms. Then only the page's rows are read. */
    if (db_exec(db, "SELECT l.request_id, l.call_type, l.api_key, l.spend, l.total_tokens,"
                    " l.prompt_tokens, l.completion_tokens, " REPORTD_SQL_RFC3339("l.start_time") ","
                    " " REPORTD_SQL_RFC3339("l.end_time") ", l.model, l.model_group, l.api_base,"
                    " l.user, l.team_id, l.end_user, l.key_alias, l.request_tags, l.metadata,"
                    " l.status, l.cache_read_input_tokens, l.pricing FROM (SELECT request_id,"
                    " start_time FROM spend_logs"
                    " WHERE (? IS NULL OR api_key = ?) AND (? IS NULL OR user = ?)"
                    " AND (? IS NULL OR request_id = ?) AND (? IS NULL OR start_time >= ?)"
                    " AND (? IS NULL OR start_time < ?)"
                    " ORDER BY start_time DESC, request_id LIMIT ? OFFSET ?) page"
                    " STRAIGHT_JOIN spend_logs l ON l.request_id = page.request_id"
                    " ORDER BY page.start_time DESC, page.request_id",
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
