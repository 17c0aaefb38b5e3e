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
#include "money.h"
#include "reportd.h"

#define ER_DUP_ENTRY 1062
#define MANAGE_IDS_MAX 1000 /* ids per delete/block request */
/* rpm / tpm / parallel limits of keys, users, teams and members: larger is a typo */
#define MANAGE_LIMIT_MAX 1000000000000LL

/* Our own validated JSON text back as JSON (null for NULL). */
json_t *manage_parsed(const char *text);
json_t *manage_money_or_null(bool present, const char *text);
/* An integer cell as JSON (null for NULL); an optional integer parameter. */
json_t *manage_int_or_null(const char *text);
struct db_param manage_opt_int(bool present, int64_t v);
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

/* A period that starts now, as accountd's reset: the owner's spend becomes
 * what the logs hold since per->start (log_col names the owner in spend_logs;
 * table and columns are our constants). A no-op when per gives no duration. */
int manage_recount(MYSQL *db, const char *table, const char *id_col, const char *log_col,
                   const char *id, const struct manage_period *per, char *err, size_t errlen);

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

/* Which row an update names and how the logs name it (for the recount). */
struct manage_row {
    const char *table, *id_col, *log_col, *id;
    const char *what; /* "Team", "User": for the 404, which names id_col */
};
/* Runs s on the row and, when per starts a period and recount is set, the
 * spend recount, in one transaction. 0 updated; -1 answered (404 or 500). */
int manage_update_row(struct worker *w, struct evhttp_request *req, MYSQL *db,
                      struct manage_set *s, const struct manage_row *row,
                      const struct manage_period *per, bool recount);


/* Budget rows (manage_budgets.c), shared by the budget and customer routes. */
#define BUDGETS_TPM_RPM_MAX 9007199254740991LL /* 2^53 - 1: exact in every JSON client */
#define BUDGETS_ID_LIST_MAX 1000               /* ids per list body (budgets, user_ids) */

/* The budget fields of a request body; has_* / duration say which were given. */
struct budget_fields {
    char max_budget[MONEY_STR_MAX], soft_budget[MONEY_STR_MAX];
    bool has_max, has_soft, has_tpm, has_rpm;
    int64_t tpm_limit, rpm_limit;
    /* budget_duration (text NULL: not given); a new period starts now */
    struct manage_period period;
};
/* Reads and validates max_budget, soft_budget, budget_duration, tpm_limit and
 * rpm_limit; -1 answered (400 naming the field). */
int budgets_read_fields(struct evhttp_request *req, json_t *body, struct budget_fields *f);
/* The name of the first budget field given, or NULL when none is. */
const char *budgets_first_field(const struct budget_fields *f);
/* Inserts budget `id` with f's fields (the rest NULL). */
int budgets_insert(MYSQL *db, const char *id, const struct budget_fields *f, unsigned *errnum,
                   char *err, size_t errlen);
/* Sets the fields f gives on budget `id` (a duration starts a new period). */
int budgets_apply(MYSQL *db, const char *id, const struct budget_fields *f, char *err,
                  size_t errlen);
/* When f starts a new period (budget_duration given), sets the spend of the
 * end users and team members on budget `id` to their logs since its start,
 * as accountd does at a reset; a no-op otherwise. */
int budgets_recount(MYSQL *db, const char *id, const struct budget_fields *f, char *err,
                    size_t errlen);
/* Locks budget `id` (FOR UPDATE when exclusive, else shared) inside the
 * caller's transaction: 1 exists, 0 not, -1 error. */
int budgets_lock(MYSQL *db, const char *id, bool exclusive, char *err, size_t errlen);
/* How many customers (other than except_customer, may be NULL) and team
 * members use budget `id`, read with shared locks; -1 error. */
int budgets_users(MYSQL *db, const char *id, const char *except_customer, long long *customers,
                  long long *members, char *err, size_t errlen);
/* SELECT text of a budget row's answer columns for table alias `t` ("b.");
 * BUDGETS_NCOLS cells, read back by budgets_json. */
#define BUDGETS_SQL_COLS(t) \
    t "budget_id, " t "max_budget, " t "soft_budget, " t "budget_duration, " \
    REPORTD_SQL_RFC3339(t "budget_reset_at") ", " t "tpm_limit, " t "rpm_limit, " \
    REPORTD_SQL_RFC3339(t "created_at") ", " REPORTD_SQL_RFC3339(t "updated_at")
#define BUDGETS_NCOLS 9
/* One budget row by budget_id (one parameter), in those columns. */
#define BUDGETS_SQL_ROW "SELECT " BUDGETS_SQL_COLS("") " FROM budgets WHERE budget_id = ?"
/* The budget of row i, cells from col on, as LiteLLM's budget table row;
 * JSON null when the budget_id cell is NULL (no budget). */
json_t *budgets_json(const struct db_result *r, size_t i, size_t col);
/* head + "?, ?, ..." (n placeholders) + tail, malloc'ed; NULL out of memory. */
char *budgets_sql_in(const char *head, size_t n, const char *tail);

#endif
