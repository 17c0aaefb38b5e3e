/* manage_common.c - helpers shared by the management routes (see manage.h). */
#include "manage.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "httpjson.h"
#include "input.h"

json_t *manage_parsed(const char *text)
{
    json_t *v = text != NULL ? json_loads(text, 0, NULL) : NULL;
    return v != NULL ? v : json_null();
}

json_t *manage_money_or_null(bool present, const char *text)
{
    return present ? httpjson_money_text(text) : json_null();
}

json_t *manage_int_or_null(const char *text)
{
    return text != NULL ? httpjson_int_text(text) : json_null();
}

struct db_param manage_opt_int(bool present, int64_t v)
{
    return present ? DB_I64(v) : DB_NULL;
}

json_t *manage_rfc3339(const char *t)
{
    char out[48];
    if (t == NULL || t[0] == '\0')
        return json_null();
    snprintf(out, sizeof(out), "%.10sT%.15s+00:00", t, t + 11); /* HH:MM:SS.ffffff */
    return json_string(out);
}

void manage_now_text(char out[DB_DATETIME_MAX])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    db_datetime((int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000, out);
}

int manage_exists(struct worker *w, struct evhttp_request *req, MYSQL *db, const char *sql,
                  const char *id)
{
    struct db_result *r = NULL;
    struct db_param p[] = {DB_STR(id)};
    char err[512];
    if (db_exec(db, sql, p, 1, &r, NULL, NULL, err, sizeof(err)) < 0) {
        worker_db_failed(w, req, err);
        return -1;
    }
    int found = r->nrows > 0;
    db_result_free(r);
    return found;
}

int manage_require(struct worker *w, struct evhttp_request *req, MYSQL *db, const char *sql,
                   const char *id, int status, const char *param, const char *what)
{
    int found = manage_exists(w, req, db, sql, id);
    if (found == 0)
        httpjson_error(req, status, status == 404 ? "not_found_error" : "invalid_request_error",
                       param, "%s not found, passed %s=%s", what, param, id);
    return found == 1 ? 0 : -1;
}

int manage_ensure_user(MYSQL *db, const char *user_id, char *err, size_t errlen)
{
    struct db_param p[] = {DB_STR(user_id)};
    return db_exec(db, "INSERT INTO internal_users (user_id, created_at, updated_at)"
                       " VALUES (?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))"
                       " ON DUPLICATE KEY UPDATE user_id = user_id",
                   p, 1, NULL, NULL, NULL, err, errlen);
}

int manage_period_read(struct evhttp_request *req, json_t *body, const char *name,
                       struct manage_period *out)
{
    if (input_duration(req, body, name, &out->p, &out->text) < 0)
        return -1;
    if (out->text != NULL) {
        time_t now = time(NULL);
        db_datetime((int64_t)now * 1000000, out->start);
        db_datetime((int64_t)period_next(&out->p, now) * 1000000, out->reset_at);
    }
    return 0;
}

void manage_set_init(struct manage_set *s, const char *table)
{
    snprintf(s->sql, sizeof(s->sql), "UPDATE %s SET updated_at = UTC_TIMESTAMP(6)", table);
    s->n = 0;
}

void manage_set(struct manage_set *s, const char *col, struct db_param v)
{
    size_t len = strlen(s->sql);
    if (s->n >= sizeof(s->p) / sizeof(s->p[0]) - 1) /* keep one for the WHERE */
        return;
    snprintf(s->sql + len, sizeof(s->sql) - len, ", %s = ?", col);
    s->p[s->n++] = v;
}

void manage_set_period(struct manage_set *s, const struct manage_period *per)
{
    manage_set(s, "budget_duration", DB_STR(per->text));
    manage_set(s, "budget_period_start", DB_STR(per->start));
    manage_set(s, "budget_reset_at", DB_STR(per->reset_at));
}

int manage_set_run(MYSQL *db, struct manage_set *s, const char *key_col, const char *key,
                   uint64_t *found, unsigned *errnum, char *err, size_t errlen)
{
    size_t len = strlen(s->sql);
    snprintf(s->sql + len, sizeof(s->sql) - len, " WHERE %s = ?", key_col);
    s->p[s->n++] = DB_STR(key);
    return db_exec(db, s->sql, s->p, s->n, NULL, found, errnum, err, errlen);
}

int manage_recount(MYSQL *db, const char *table, const char *id_col, const char *log_col,
                   const char *id, const struct manage_period *per, char *err, size_t errlen)
{
    char sql[512];
    if (per->text == NULL)
        return 0;
    snprintf(sql, sizeof(sql), "UPDATE %s SET spend = (SELECT COALESCE(SUM(spend), 0)"
             " FROM spend_logs WHERE start_time >= ? AND %s = ?) WHERE %s = ?",
             table, log_col, id_col);
    struct db_param p[] = {DB_STR(per->start), DB_STR(id), DB_STR(id)};
    return db_exec(db, sql, p, 3, NULL, NULL, NULL, err, errlen);
}

int manage_update_row(struct worker *w, struct evhttp_request *req, MYSQL *db,
                      struct manage_set *s, const struct manage_row *row,
                      const struct manage_period *per, bool recount)
{
    char err[512];
    uint64_t found = 0;
    if (db_begin(db, err, sizeof(err)) < 0 ||
        manage_set_run(db, s, row->id_col, row->id, &found, NULL, err, sizeof(err)) < 0 ||
        (recount && manage_recount(db, row->table, row->id_col, row->log_col, row->id, per, err,
                                   sizeof(err)) < 0) ||
        db_commit(db, err, sizeof(err)) < 0) {
        db_rollback(db);
        worker_db_failed(w, req, err);
        return -1;
    }
    if (found == 0) {
        httpjson_error(req, 404, "not_found_error", row->id_col, "%s not found, passed %s=%s",
                       row->what, row->id_col, row->id);
        return -1;
    }
    return 0;
}
