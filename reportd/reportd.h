/* reportd.h - reportd's shared types.
 *
 * reportd runs `workers` threads; each has its own event loop, evhttp
 * server (all accepting on one listening socket) and MariaDB connection,
 * so a slow query holds up only its own thread. Handlers run on a worker
 * and use its connection with plain blocking calls.
 */
#ifndef REPORTD_REPORTD_H
#define REPORTD_REPORTD_H

#include <event2/http.h>
#include <jansson.h>
#include <mysql.h>
#include <stdbool.h>

#include "budget_period.h"
#include "config.h"
#include "db.h"
#include "money.h"

struct worker {
    const struct config *cfg;
    struct event_base *base;
    struct evhttp *http;
    MYSQL *db; /* NULL until first use and after a lost connection */
};

/* SQL text: a DATETIME column as RFC 3339 UTC text with microseconds. */
#define REPORTD_SQL_RFC3339(col) "DATE_FORMAT(" col ", '%Y-%m-%dT%H:%i:%s.%f+00:00')"

/* Who is calling (filled by api.c before a handler runs). */
struct caller {
    bool master;
    char token[65];   /* key hash; "" for the master key */
    json_t *permissions; /* the key's permissions object; NULL for the master key */
};

/* The worker's connection, (re)connecting when needed. Answers 503 and
 * returns NULL when MariaDB cannot be reached. */
MYSQL *worker_db(struct worker *w, struct evhttp_request *req);
/* Answers 500 for a failed query (the detail goes to the log, not the client). */
void worker_db_failed(struct worker *w, struct evhttp_request *req, const char *err);

/* Route handlers. */
void manage_team_new(struct worker *w, struct evhttp_request *req, const struct caller *who);
void manage_user_new(struct worker *w, struct evhttp_request *req, const struct caller *who);
void manage_key_generate(struct worker *w, struct evhttp_request *req, const struct caller *who);
void manage_key_update(struct worker *w, struct evhttp_request *req, const struct caller *who);
/* The hash of a key named by its raw value or hash into token; answers 400
 * when key is NULL (manage_keys.c). */
int keys_token_of(struct evhttp_request *req, const char *key, char token[65]);
/* Answers {"key": hash, "info": {...}} for the key token, or 404 (manage_keys.c). */
void keys_answer_info(struct worker *w, struct evhttp_request *req, MYSQL *db, const char *token);
void manage_key_info(struct worker *w, struct evhttp_request *req, const struct caller *who);
void manage_key_list(struct worker *w, struct evhttp_request *req, const struct caller *who);
void manage_key_block(struct worker *w, struct evhttp_request *req, const struct caller *who);
void manage_key_unblock(struct worker *w, struct evhttp_request *req, const struct caller *who);
void manage_key_delete(struct worker *w, struct evhttp_request *req, const struct caller *who);
void spend_logs(struct worker *w, struct evhttp_request *req, const struct caller *who);
void spend_report(struct worker *w, struct evhttp_request *req, const struct caller *who);
void summary_keys(struct worker *w, struct evhttp_request *req, const struct caller *who);
void summary_models(struct worker *w, struct evhttp_request *req, const struct caller *who);
void summary_global_tags(struct worker *w, struct evhttp_request *req, const struct caller *who);
void summary_tags(struct worker *w, struct evhttp_request *req, const struct caller *who);
void summary_reset(struct worker *w, struct evhttp_request *req, const struct caller *who);

void manage_customer_new(struct worker *w, struct evhttp_request *req, const struct caller *who);
void manage_customer_info(struct worker *w, struct evhttp_request *req, const struct caller *who);
void manage_customer_update(struct worker *w, struct evhttp_request *req,
                            const struct caller *who);
void manage_customer_delete(struct worker *w, struct evhttp_request *req,
                            const struct caller *who);
void manage_customer_block(struct worker *w, struct evhttp_request *req, const struct caller *who);
void manage_customer_unblock(struct worker *w, struct evhttp_request *req,
                             const struct caller *who);
void manage_budget_new(struct worker *w, struct evhttp_request *req, const struct caller *who);
void manage_budget_update(struct worker *w, struct evhttp_request *req, const struct caller *who);
void manage_budget_delete(struct worker *w, struct evhttp_request *req, const struct caller *who);
void manage_budget_info(struct worker *w, struct evhttp_request *req, const struct caller *who);
void manage_budget_list(struct worker *w, struct evhttp_request *req, const struct caller *who);

/* Budget rows (manage_budgets.c), shared by the budget and customer routes. */
#define BUDGETS_TPM_RPM_MAX 9007199254740991LL /* 2^53 - 1: exact in every JSON client */
#define BUDGETS_ID_LIST_MAX 1000               /* ids per list body (budgets, user_ids) */

/* The budget fields of a request body; has_* / duration say which were given. */
struct budget_fields {
    char max_budget[MONEY_STR_MAX], soft_budget[MONEY_STR_MAX];
    bool has_max, has_soft, has_tpm, has_rpm;
    int64_t tpm_limit, rpm_limit;
    const char *duration; /* budget_duration, borrowed from the body; NULL: not given */
    struct period period;
    /* with a duration: a new period starts now and ends at period_next */
    char period_start[DB_DATETIME_MAX], reset_at[DB_DATETIME_MAX];
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
/* The budget of row i, cells from col on, as LiteLLM's budget table row;
 * JSON null when the budget_id cell is NULL (no budget). */
json_t *budgets_json(const struct db_result *r, size_t i, size_t col);
/* head + "?, ?, ..." (n placeholders) + tail, malloc'ed; NULL out of memory. */
char *budgets_sql_in(const char *head, size_t n, const char *tail);

/* Dispatches a request (api.c). */
void api_dispatch(struct evhttp_request *req, void *worker);

#endif
