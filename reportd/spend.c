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

static int read_log_filter(struct evhttp_request *req, struct query *q,
                           const struct caller *who, struct log_filter *f)
{
    if (query_str(req, q, "api_key", 255, &f->api_key) < 0 ||
        query_str(req, q, "user_id", 255, &f->user_id) < 0 ||
        query_str(req, q, "request_id", 64, &f->request_id) < 0 ||
        query_date_range(req, q, false, f->from, f->to, &f->dated) < 0 ||
        query_int(req, q, "page", 1, 1000000, 1, &f->page) < 0 ||
        query_int(req, q, "page_size", 1, PAGE_SIZE_MAX, PAGE_SIZE_DEFAULT, &f->page_size) < 0)
        return -1;
    if (who->self_only) { /* an internal user's key: its own user's logs only */
        if (f->user_id != NULL && strcmp(f->user_id, who->user_id) != 0) {
            httpjson_error(req, 403, "permission_error", "user_id",
                           "An internal user's key can only read its own spend");
            return -1;
        }
        f->user_id = who->user_id;
    }
    for (const char *c = f->request_id; c != NULL && *c != '\0'; c++) {
        if ((unsigned char)*c >= 0x80) { /* request ids are ASCII (an ascii column) */
            httpjson_error(req, 400, "invalid_request_error", "request_id",
                           "Invalid request_id: must be ASCII");
            return -1;
        }
    }
    if (f->api_key != NULL && keyhash_normalize(f->api_key, f->token) < 0) {
        httpjson_error(req, 500, "internal_error", NULL, "cannot hash the key");
        return -1;
    }
    return 0;
}

static const char SQL_LOGS_HEAD[] =
    "SELECT l.request_id, l.call_type, l.api_key, l.spend, l.total_tokens, l.prompt_tokens,"
    " l.completion_tokens, " REPORTD_SQL_RFC3339("l.start_time") ","
    " " REPORTD_SQL_RFC3339("l.end_time") ", l.model, l.model_group, l.api_base, l.user,"
    " l.team_id, l.end_user, l.key_alias, l.request_tags, l.metadata, l.status,"
    " l.cache_read_input_tokens, l.pricing"
    " FROM (SELECT request_id, start_time FROM spend_logs WHERE 1 = 1";
static const char SQL_LOGS_TAIL[] =
    " ORDER BY start_time DESC, request_id LIMIT ? OFFSET ?) page"
    " STRAIGHT_JOIN spend_logs l ON l.request_id = page.request_id"
    " ORDER BY page.start_time DESC, page.request_id";

void spend_logs(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    struct query *q = query_parse(req);
    struct log_filter f = {0};
    struct db_result *r = NULL;
    char err[512];
    MYSQL *db;
    if (q == NULL)
        return;
    if (read_log_filter(req, q, who, &f) < 0 || (db = worker_db(w, req)) == NULL)
        goto out;
    /* The page's request ids first, from an index alone ((api_key|user, start_time)
     * holds request_id too), then only the page's rows: sorting a busy key's day of
     * whole rows to keep 100 of them cost tens of ms. Only the filters given are in
     * the SQL (fixed text, values bound): a switched-off "? IS NULL OR user = ?"
     * would still need the user column, which that index lacks. */
    char sql[sizeof(SQL_LOGS_HEAD) + sizeof(SQL_LOGS_TAIL) + 128];
    struct db_param p[7];
    size_t n = 0;
    int len = snprintf(sql, sizeof(sql), "%s", SQL_LOGS_HEAD);
    const char *const conds[] = {" AND api_key = ?", " AND user = ?", " AND request_id = ?",
                                 " AND start_time >= ?", " AND start_time < ?"};
    const char *const vals[] = {f.api_key ? f.token : NULL, f.user_id, f.request_id,
                                f.dated ? f.from : NULL, f.dated ? f.to : NULL};
    for (size_t i = 0; i < sizeof(conds) / sizeof(conds[0]); i++)
        if (vals[i] != NULL) {
            len += snprintf(sql + len, sizeof(sql) - (size_t)len, "%s", conds[i]);
            p[n++] = DB_STR(vals[i]);
        }
    snprintf(sql + len, sizeof(sql) - (size_t)len, "%s", SQL_LOGS_TAIL);
    p[n++] = DB_I64(f.page_size);
    p[n++] = DB_I64((f.page - 1) * f.page_size);
    if (db_exec(db, sql, p, n, &r, NULL, NULL, err, sizeof(err)) < 0) {
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
