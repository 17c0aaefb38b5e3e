/* reportd.h - reportd's shared types.
 *
 * reportd runs `workers` threads; each has its own event loop, evhttp
 * server (all accepting on one listening socket) and MariaDB connections
 * (the primary's and, when configured, the read replica's), so a slow query
 * holds up only its own thread. Handlers run on a worker
 * and use its connection with plain blocking calls.
 */
#ifndef REPORTD_REPORTD_H
#define REPORTD_REPORTD_H

#include <event2/http.h>
#include <jansson.h>
#include <mysql.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "budget_period.h"
#include "config.h"
#include "db.h"
#include "money.h"
#include "ops.h"

struct worker {
    struct reportd *d;
    /* The generation of the request being handled (set by api_dispatch for
     * the handler's run; see generation.c): its config and price table. */
    const struct config *cfg;
    const struct price_table *prices;
    const char *request_id; /* the request being handled, for its log lines */
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound; /* NULL once draining */
    MYSQL *db;      /* NULL until first use and after a lost connection */
    MYSQL *read_db; /* the read replica's, likewise (read_database_url) */
    bool replica;   /* the handler's route reads from the replica (api.c) */
    struct drain drain;
    bool park_wanted, parked; /* reload.c, under d->park.lock */
    atomic_bool done;         /* its loop has ended */
};

/* SQL text: a DATETIME column as RFC 3339 UTC text with microseconds. */
#define REPORTD_SQL_RFC3339(col) "DATE_FORMAT(" col ", '%Y-%m-%dT%H:%i:%s.%f+00:00')"

/* Who is calling (filled by api.c before a handler runs). */
struct caller {
    bool master;
    char token[65];   /* key hash; "" for the master key */
    json_t *permissions; /* the key's permissions object; NULL for the master key */
    /* An internal user's key on a route it may read only for itself: the
     * handler limits the answer to user_id's own keys, user and spend. */
    bool self_only;
    char user_id[256];
};

/* The worker's connection, (re)connecting when needed: to the read replica
 * while the handler of a route api.c marks REPLICA runs and one is
 * configured, else to the primary. Answers 503 and returns NULL when
 * MariaDB cannot be reached. */
MYSQL *worker_db(struct worker *w, struct evhttp_request *req);
/* Answers 500 for a failed query (the detail goes to the log, not the client). */
void worker_db_failed(struct worker *w, struct evhttp_request *req, const char *err);

/* Route handlers. */
void manage_team_new(struct worker *w, struct evhttp_request *req, const struct caller *who);
void manage_team_update(struct worker *w, struct evhttp_request *req, const struct caller *who);
void manage_team_delete(struct worker *w, struct evhttp_request *req, const struct caller *who);
void manage_team_info(struct worker *w, struct evhttp_request *req, const struct caller *who);
void manage_team_member_add(struct worker *w, struct evhttp_request *req,
                            const struct caller *who);
void manage_team_member_update(struct worker *w, struct evhttp_request *req,
                               const struct caller *who);
void manage_team_member_delete(struct worker *w, struct evhttp_request *req,
                               const struct caller *who);
void manage_user_new(struct worker *w, struct evhttp_request *req, const struct caller *who);
void manage_user_update(struct worker *w, struct evhttp_request *req, const struct caller *who);
void manage_user_delete(struct worker *w, struct evhttp_request *req, const struct caller *who);
void manage_user_info(struct worker *w, struct evhttp_request *req, const struct caller *who);
void manage_key_generate(struct worker *w, struct evhttp_request *req, const struct caller *who);
void manage_key_update(struct worker *w, struct evhttp_request *req, const struct caller *who);
/* The hash of a key named by its raw value or hash into token; answers 400
 * when key is NULL (manage_keys.c). */
int keys_token_of(struct evhttp_request *req, const char *key, char token[65]);
/* Answers {"key": hash, "info": {...}} for the key token, or 404 (manage_keys.c). */
void keys_answer_info(struct worker *w, struct evhttp_request *req, MYSQL *db, const char *token);
/* Answers the key's info object plus "key": raw, after /key/regenerate. */
void keys_answer_regenerated(struct worker *w, struct evhttp_request *req, MYSQL *db,
                             const char *token, const char *raw);
void manage_key_regenerate(struct worker *w, struct evhttp_request *req, const struct caller *who);
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
void activity_user(struct worker *w, struct evhttp_request *req, const struct caller *who);
void activity_team(struct worker *w, struct evhttp_request *req, const struct caller *who);
void activity_tag(struct worker *w, struct evhttp_request *req, const struct caller *who);
void spend_end_users(struct worker *w, struct evhttp_request *req, const struct caller *who);
void spend_calculate(struct worker *w, struct evhttp_request *req, const struct caller *who);

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

/* The hosted BudgetManager (budget_api.c). */
void budget_get(struct worker *w, struct evhttp_request *req, const struct caller *who);
void budget_set(struct worker *w, struct evhttp_request *req, const struct caller *who);
void budget_create(struct worker *w, struct evhttp_request *req, const struct caller *who);
void budget_update_cost(struct worker *w, struct evhttp_request *req, const struct caller *who);
void budget_reset_cost(struct worker *w, struct evhttp_request *req, const struct caller *who);

/* GET /metrics (Prometheus text; no key needed). */
void ops_metrics(struct worker *w, struct evhttp_request *req, const struct caller *who);

/* Dispatches a request (api.c). */
void api_dispatch(struct evhttp_request *req, void *worker);

#endif
