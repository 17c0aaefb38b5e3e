/* budget_api.h - the hosted BudgetManager's entries (budget_api_entry.c),
 * shared by its routes (budget_api.c): a user's entry read from a request,
 * checked, and written back as LiteLLM's user_cost.json entry.
 */
#ifndef REPORTD_BUDGET_API_H
#define REPORTD_BUDGET_API_H

#include <event2/http.h>
#include <jansson.h>
#include <stdbool.h>

#include "db.h"
#include "money.h"

#define BM_ID_MAX 255         /* project, user, model: bytes, as the columns hold */
#define BM_USERS_MAX 100000   /* users of a project in one whole-dict answer or body */
#define BM_TIME_STR_MAX 32    /* "253402300799.999999" and NUL */
#define BM_TIME_MAX 253402300799.0 /* 9999-12-31T23:59:59Z: DECIMAL(20,6) holds more */

/* One user of a /set_budget body, its texts ready to bind. */
struct bm_entry {
    const char *user;     /* borrowed from the body */
    char total_budget[MONEY_STR_MAX], current_cost[MONEY_STR_MAX];
    const char *duration; /* daily|weekly|monthly|yearly or NULL */
    char created_at[BM_TIME_STR_MAX], last_updated_at[BM_TIME_STR_MAX];
    json_t *model_cost;   /* borrowed: an object of checked amounts, or NULL */
};

/* The time now as Unix seconds with microseconds ("1733100000.123456"). */
void bm_now(char out[BM_TIME_STR_MAX]);

/* A name (project_name, user, model) of 1..BM_ID_MAX bytes without NUL:
 * 0 with *out borrowed; -1 answered (400 naming `name`, also when absent). */
int bm_required_id(struct evhttp_request *req, json_t *body, const char *name,
                   const char **out);
/* body[name] as an amount >= 0 (required: -1 answered when absent). */
int bm_required_money(struct evhttp_request *req, json_t *body, const char *name,
                      char out[MONEY_STR_MAX]);
/* body[name] as a time (Unix seconds, 0..BM_TIME_MAX); *present false when
 * absent or null. -1 answered. */
int bm_time_param(struct evhttp_request *req, json_t *body, const char *name,
                  char out[BM_TIME_STR_MAX], bool *present);
/* body[name]: daily|weekly|monthly|yearly, or NULL for absent/null. */
int bm_duration_param(struct evhttp_request *req, json_t *body, const char *name,
                      const char **out);

/* /set_budget's user_dict: every entry checked (-1 answered, naming
 * user_dict and saying which user and field). *out (free()) holds *n
 * entries; *models the number of model_cost amounts over all of them. */
int bm_read_user_dict(struct evhttp_request *req, json_t *body, struct bm_entry **out,
                      size_t *n, size_t *models);

/* SQL text: the entry columns of budget_manager_users, read by bm_entry_json. */
#define BM_SQL_ENTRY_COLS "total_budget, duration, created_at, last_updated_at, current_cost"
#define BM_ENTRY_NCOLS 5
/* The entry of row i (cells from col on) with an empty model_cost; NULL on
 * out of memory. */
json_t *bm_entry_json(const struct db_result *r, size_t i, size_t col);
/* Adds model -> cost (a DECIMAL text) to entry's model_cost; -1 out of memory. */
int bm_entry_add_model(json_t *entry, const char *model, const char *cost);

#endif
