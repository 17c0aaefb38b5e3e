/* manage.h - helpers shared by the management routes (manage_*.c): rows
 * that must exist, UPDATEs of only the fields a request gives, budget
 * periods that start now, and JSON for answers.
 */
#ifndef REPORTD_MANAGE_H
#define REPORTD_MANAGE_H

#include <jansson.h>
#include <stdbool.h>

#include "budget_period.h"
#include "db.h"
#include "reportd.h"

#define ER_DUP_ENTRY 1062
#define MANAGE_IDS_MAX 1000 /* ids per delete/block request */

/* Our own validated JSON text back as JSON (null for NULL). */
json_t *manage_parsed(const char *text);
json_t *manage_money_or_null(bool present, const char *text);
/* A DATETIME(6) text as RFC 3339 UTC, or null. */
json_t *manage_rfc3339(const char *datetime);
void manage_now_text(char out[DB_DATETIME_MAX]);

/* 1 when `sql` (one ? for id) returns a row, 0 when not, -1 answered (DB error). */
int manage_exists(struct worker *w, struct evhttp_request *req, MYSQL *db, const char *sql,
                  const char *id);
/* 0 when the row exists; otherwise answers `status` naming `param` (-1). */
int manage_require(struct worker *w, struct evhttp_request *req, MYSQL *db, const char *sql,
                   const char *id, int status, const char *param, const char *what);
/* Creates the internal user on first mention, as LiteLLM does for keys. */
int manage_ensure_user(MYSQL *db, const char *user_id, char *err, size_t errlen);

/* A budget_duration given in a request: the new period starts now. */
struct manage_period {
    const char *text; /* NULL: not given */
    struct period p;
    char start[DB_DATETIME_MAX], reset_at[DB_DATETIME_MAX];
};
/* Reads body[name]; fills start/reset_at when given (on the configured time zone). */
int manage_period_read(struct evhttp_request *req, json_t *body, const char *name,
                       struct manage_period *out);

/* "UPDATE table SET updated_at = now, col = ?, ... WHERE key = ?". */
struct manage_set {
    char sql[2048];
    struct db_param p[32];
    size_t n;
};
void manage_set_init(struct manage_set *s, const char *table);
void manage_set(struct manage_set *s, const char *col, struct db_param v);
/* The three columns of a budget period that starts now. */
void manage_set_period(struct manage_set *s, const struct manage_period *per);
/* Appends the WHERE clause and runs it; *found = rows matched. */
int manage_set_run(MYSQL *db, struct manage_set *s, const char *key_col, const char *key,
                   uint64_t *found, unsigned *errnum, char *err, size_t errlen);

#endif
