/* api.c - reportd's route table and who may call what.
 *
 * The master key may call everything. A virtual key's rights come from its
 * internal user's role (LiteLLM's roles) and its permissions:
 *   proxy_admin           every route but the global spend reset;
 *   proxy_admin_viewer    every route that only reads;
 *   internal_user(_viewer) its own keys, user and spend (the handler limits
 *                         the answer: caller.self_only);
 *   permissions.get_spend_routes  the spend routes.
 *   permissions.budget_manager  the hosted BudgetManager routes (which no role opens).
 * GET /metrics needs no key (Prometheus scrapes it; it holds counts only),
 * nor do the Usage page's files (/ui, its scripts and style: no data in
 * them; the page's own JSON under /ui/api/ is SPEND_SELF like /spend/logs).
 * general_settings.allowed_routes and admin_only_routes (route_access.h) hold
 * on every route that needs a key: the first before the key is read, the
 * second for every caller but the master key and proxy_admin users' keys.
 * A route general_settings.public_routes lists (of the routes here, only
 * /spend/calculate may be) is then served without a key, as an OPEN one.
 *
 * Routes marked REPLICA read from tollgate.reportd.read_database_url when it
 * is set: the spend reports, which only read what accountd wrote and may lag
 * a replica by its delay. Everything else stays on the primary: the routes
 * that write, and the management reads (/key/info, /user/info, /team/info,
 * /key/list, ...), which a client calls right after a write and must see it
 * (read-after-write); authorization (a key just made or blocked) always reads
 * the primary too.
 *
 * api_dispatch also gives every request its id, config generation, access
 * log line and metrics (observe.c), and its place in a drain (drain.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "httpjson.h"
#include "keyhash.h"
#include "log.h"
#include "reportd.h"
#include "route_access.h"
#include "ui_api.h"

enum access {
    OPEN,        /* no key needed */
    MASTER_ONLY, /* the master key alone */
    ADMIN,       /* + proxy_admin keys */
    ADMIN_READ,  /* + proxy_admin_viewer keys */
    SELF_READ,   /* + internal users' keys, for their own rows */
    SPEND_READ,  /* ADMIN_READ + keys with get_spend_routes */
    SPEND_SELF,  /* SPEND_READ + internal users' keys, for their own spend */
    BUDGET_MANAGER, /* the master key + keys with permissions.budget_manager */
};

/* Which database a route's handler reads (see above). */
enum db_use { PRIMARY, REPLICA };

struct route {
    struct httpjson_route key; /* first: httpjson_find_route reads it */
    enum access access;
    void (*handler)(struct worker *, struct evhttp_request *, const struct caller *);
    enum db_use db;
};

static const struct route ROUTES[] = {
    {{EVHTTP_REQ_POST, "/team/new"}, ADMIN, manage_team_new, PRIMARY},
    {{EVHTTP_REQ_POST, "/team/update"}, ADMIN, manage_team_update, PRIMARY},
    {{EVHTTP_REQ_POST, "/team/delete"}, ADMIN, manage_team_delete, PRIMARY},
    {{EVHTTP_REQ_GET, "/team/info"}, ADMIN_READ, manage_team_info, PRIMARY},
    {{EVHTTP_REQ_POST, "/team/member_add"}, ADMIN, manage_team_member_add, PRIMARY},
    {{EVHTTP_REQ_POST, "/team/member_update"}, ADMIN, manage_team_member_update, PRIMARY},
    {{EVHTTP_REQ_POST, "/team/member_delete"}, ADMIN, manage_team_member_delete, PRIMARY},
    {{EVHTTP_REQ_POST, "/user/new"}, ADMIN, manage_user_new, PRIMARY},
    {{EVHTTP_REQ_POST, "/user/update"}, ADMIN, manage_user_update, PRIMARY},
    {{EVHTTP_REQ_POST, "/user/delete"}, ADMIN, manage_user_delete, PRIMARY},
    {{EVHTTP_REQ_GET, "/user/info"}, SELF_READ, manage_user_info, PRIMARY},
    {{EVHTTP_REQ_POST, "/key/generate"}, ADMIN, manage_key_generate, PRIMARY},
    {{EVHTTP_REQ_POST, "/key/update"}, ADMIN, manage_key_update, PRIMARY},
    {{EVHTTP_REQ_POST, "/key/regenerate"}, ADMIN, manage_key_regenerate, PRIMARY},
    {{EVHTTP_REQ_GET, "/key/info"}, SELF_READ, manage_key_info, PRIMARY},
    {{EVHTTP_REQ_GET, "/key/list"}, SELF_READ, manage_key_list, PRIMARY},
    {{EVHTTP_REQ_POST, "/key/block"}, ADMIN, manage_key_block, PRIMARY},
    {{EVHTTP_REQ_POST, "/key/unblock"}, ADMIN, manage_key_unblock, PRIMARY},
    {{EVHTTP_REQ_POST, "/key/delete"}, ADMIN, manage_key_delete, PRIMARY},
    {{EVHTTP_REQ_GET, "/spend/logs"}, SPEND_SELF, spend_logs, REPLICA},
    {{EVHTTP_REQ_GET, "/global/spend/report"}, SPEND_READ, spend_report, REPLICA},
    {{EVHTTP_REQ_GET, "/global/spend/keys"}, SPEND_READ, summary_keys, REPLICA},
    {{EVHTTP_REQ_GET, "/global/spend/models"}, SPEND_READ, summary_models, REPLICA},
    {{EVHTTP_REQ_GET, "/global/spend/tags"}, SPEND_READ, summary_global_tags, REPLICA},
    {{EVHTTP_REQ_GET, "/spend/tags"}, SPEND_READ, summary_tags, REPLICA},
    {{EVHTTP_REQ_POST, "/global/spend/reset"}, MASTER_ONLY, summary_reset, PRIMARY},
    {{EVHTTP_REQ_POST, "/customer/new"}, ADMIN, manage_customer_new, PRIMARY},
    {{EVHTTP_REQ_POST, "/end_user/new"}, ADMIN, manage_customer_new, PRIMARY},
    {{EVHTTP_REQ_GET, "/customer/info"}, ADMIN_READ, manage_customer_info, PRIMARY},
    {{EVHTTP_REQ_GET, "/end_user/info"}, ADMIN_READ, manage_customer_info, PRIMARY},
    {{EVHTTP_REQ_POST, "/customer/update"}, ADMIN, manage_customer_update, PRIMARY},
    {{EVHTTP_REQ_POST, "/end_user/update"}, ADMIN, manage_customer_update, PRIMARY},
    {{EVHTTP_REQ_POST, "/customer/delete"}, ADMIN, manage_customer_delete, PRIMARY},
    {{EVHTTP_REQ_POST, "/end_user/delete"}, ADMIN, manage_customer_delete, PRIMARY},
    {{EVHTTP_REQ_POST, "/customer/block"}, ADMIN, manage_customer_block, PRIMARY},
    {{EVHTTP_REQ_POST, "/end_user/block"}, ADMIN, manage_customer_block, PRIMARY},
    {{EVHTTP_REQ_POST, "/customer/unblock"}, ADMIN, manage_customer_unblock, PRIMARY},
    {{EVHTTP_REQ_POST, "/end_user/unblock"}, ADMIN, manage_customer_unblock, PRIMARY},
    {{EVHTTP_REQ_POST, "/budget/new"}, ADMIN, manage_budget_new, PRIMARY},
    {{EVHTTP_REQ_POST, "/budget/update"}, ADMIN, manage_budget_update, PRIMARY},
    {{EVHTTP_REQ_POST, "/budget/delete"}, ADMIN, manage_budget_delete, PRIMARY},
    {{EVHTTP_REQ_POST, "/budget/info"}, ADMIN_READ, manage_budget_info, PRIMARY},
    {{EVHTTP_REQ_GET, "/budget/list"}, ADMIN_READ, manage_budget_list, PRIMARY},
    {{EVHTTP_REQ_GET, "/user/daily/activity"}, SPEND_SELF, activity_user, REPLICA},
    {{EVHTTP_REQ_GET, "/team/daily/activity"}, SPEND_READ, activity_team, REPLICA},
    {{EVHTTP_REQ_GET, "/tag/daily/activity"}, SPEND_READ, activity_tag, REPLICA},
    {{EVHTTP_REQ_POST, "/global/spend/end_users"}, SPEND_READ, spend_end_users, REPLICA},
    {{EVHTTP_REQ_POST, "/spend/calculate"}, SPEND_READ, spend_calculate, PRIMARY},
    {{EVHTTP_REQ_POST, "/get_budget"}, BUDGET_MANAGER, budget_get, PRIMARY},
    {{EVHTTP_REQ_POST, "/set_budget"}, BUDGET_MANAGER, budget_set, PRIMARY},
    {{EVHTTP_REQ_POST, "/budget_manager/create_budget"}, BUDGET_MANAGER, budget_create, PRIMARY},
    {{EVHTTP_REQ_POST, "/budget_manager/update_cost"}, BUDGET_MANAGER, budget_update_cost, PRIMARY},
    {{EVHTTP_REQ_POST, "/budget_manager/reset_cost"}, BUDGET_MANAGER, budget_reset_cost, PRIMARY},
    {{EVHTTP_REQ_GET, "/metrics"}, OPEN, ops_metrics, PRIMARY},
    {{EVHTTP_REQ_GET, "/ui"}, OPEN, ui_static, PRIMARY},
    {{EVHTTP_REQ_GET, "/ui/"}, OPEN, ui_static, PRIMARY},
    {{EVHTTP_REQ_GET, "/ui/app.js"}, OPEN, ui_static, PRIMARY},
    {{EVHTTP_REQ_GET, "/ui/app.css"}, OPEN, ui_static, PRIMARY},
    {{EVHTTP_REQ_GET, "/ui/chart.umd.js"}, OPEN, ui_static, PRIMARY},
    {{EVHTTP_REQ_GET, "/ui/api/usage"}, SPEND_SELF, ui_api_usage, REPLICA},
    {{EVHTTP_REQ_GET, "/ui/api/budgets"}, SPEND_SELF, ui_api_budgets, REPLICA},
    {{EVHTTP_REQ_GET, "/ui/api/logs"}, SPEND_SELF, ui_api_logs, REPLICA},
};

#define N_ROUTES (sizeof(ROUTES) / sizeof(ROUTES[0]))

/* Loads the row of the virtual key who->token (its permissions, user and
 * the user's role into *role); 0 found and usable, -1 answered. A key is
 * refused as proxyd refuses it (auth.c): blocked, of a blocked team, expired,
 * in that order and in the same words. */
static int load_key(struct worker *w, struct evhttp_request *req, struct caller *who,
                    char role[32])
{
    struct db_result *r = NULL;
    char err[512];
    MYSQL *db;
    if ((db = worker_db(w, req)) == NULL)
        return -1;
    struct db_param p[] = {DB_STR(who->token)};
    if (db_exec(db, "SELECT k.permissions, k.blocked,"
                    " k.expires IS NOT NULL AND k.expires <= UTC_TIMESTAMP(6), k.user_id,"
                    " u.user_role, COALESCE(t.blocked, 0), k.team_id FROM api_keys k"
                    " LEFT JOIN internal_users u ON u.user_id = k.user_id"
                    " LEFT JOIN teams t ON t.team_id = k.team_id WHERE k.token = ?",
                p, 1, &r, NULL, NULL, err, sizeof(err)) < 0) {
        worker_db_failed(w, req, err);
        return -1;
    }
    int rc = -1;
    if (r->nrows == 0)
        httpjson_error(req, 401, "auth_error", NULL,
                       "Authentication Error, Invalid proxy server token passed.");
    else if (strcmp(db_cell(r, 0, 1), "0") != 0)
        httpjson_error(req, 403, "permission_error", NULL, "Authentication Error, Key is blocked.");
    else if (strcmp(db_cell(r, 0, 5), "0") != 0)
        httpjson_error(req, 403, "permission_error", NULL,
                       "Team=%s is blocked. Update via `/team/unblock` if you're an admin.",
                       db_cell(r, 0, 6));
    else if (strcmp(db_cell(r, 0, 2), "0") != 0)
        httpjson_error(req, 401, "auth_error", NULL, "Authentication Error - Expired Key.");
    else if ((who->permissions = json_loads(db_cell(r, 0, 0), 0, NULL)) != NULL)
        rc = 0;
    else
        httpjson_error(req, 500, "internal_error", NULL, "key permissions unreadable");
    if (rc == 0 && db_cell(r, 0, 3) != NULL && db_cell(r, 0, 4) != NULL) {
        snprintf(who->user_id, sizeof(who->user_id), "%s", db_cell(r, 0, 3));
        snprintf(role, 32, "%s", db_cell(r, 0, 4));
    }
    db_result_free(r);
    return rc;
}

/* May a key whose user has `role` (and these permissions) call a route of
 * this access? Sets who->self_only when only for its own rows. */
static bool allowed(enum access access, const char *role, struct caller *who)
{
    bool admin = strcmp(role, "proxy_admin") == 0;
    bool reader = admin || strcmp(role, "proxy_admin_viewer") == 0;
    bool internal = strcmp(role, "internal_user") == 0 ||
                    strcmp(role, "internal_user_viewer") == 0;
    bool spend = reader || json_is_true(json_object_get(who->permissions, "get_spend_routes"));
    switch (access) {
    case OPEN:
        return true;
    case MASTER_ONLY:
        return false;
    case ADMIN:
        return admin;
    case ADMIN_READ:
        return reader;
    case SELF_READ:
        who->self_only = !reader && internal;
        return reader || internal;
    case SPEND_READ:
        return spend;
    case SPEND_SELF:
        who->self_only = !spend && internal;
        return spend || internal;
    case BUDGET_MANAGER:
        return json_is_true(json_object_get(who->permissions, "budget_manager"));
    }
    return false;
}

static int authorize(struct worker *w, struct evhttp_request *req, const char *route,
                     enum access access, struct caller *who)
{
    const char *raw = httpjson_request_key(req);
    if (raw == NULL) {
        httpjson_error(req, 401, "auth_error", NULL, "Authentication Error, No api key passed in.");
        return -1;
    }
    if (keyhash_sha256_hex(raw, strlen(raw), who->token) < 0) {
        httpjson_error(req, 500, "internal_error", NULL, "cannot hash the key");
        return -1;
    }
    if (w->cfg->master_token[0] != '\0' && keyhash_token_equal(who->token, w->cfg->master_token)) {
        who->master = true;
        return 0;
    }
    char role[32] = "";
    if (load_key(w, req, who, role) < 0)
        return -1;
    if (strcmp(role, "proxy_admin") != 0 && route_access_admin_only(&w->cfg->access, route)) {
        httpjson_error(req, 403, "permission_error", NULL, ROUTE_ACCESS_ADMIN_ONLY_FMT, route);
        return -1;
    }
    if (allowed(access, role, who))
        return 0;
    if (access == BUDGET_MANAGER) {
        httpjson_error(req, 403, "permission_error", NULL,
                       "This key may not call the budget manager routes (it needs the master"
                       " key or permissions.budget_manager)");
        return -1;
    }
    httpjson_error(req, 403, "permission_error", NULL,
                   access == MASTER_ONLY ? "Only the master key can call this route"
                   : access == SPEND_READ || access == SPEND_SELF
                       ? "This key may not call spend routes (it needs "
                         "permissions.get_spend_routes or an admin user)"
                       : "This key may not call this route (it needs the master key or a "
                         "proxy_admin user)");
    return -1;
}

/* The metrics' route label of a request no route took: the pattern of a
 * known path called with another method (405), else "other" (404). */
static const char *route_label(struct evhttp_request *req)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    for (size_t i = 0; path != NULL && i < N_ROUTES; i++)
        if (strcmp(ROUTES[i].key.path, path) == 0)
            return ROUTES[i].key.path;
    return "other";
}

/* Authorizes and runs the route's handler (all in the caller's generation). */
static void run_route(struct worker *w, struct evhttp_request *req, const struct route *r)
{
    struct caller who = {0};
    /* tells a hosted BudgetManager client that Tollgate's atomic routes exist,
     * on every answer of these routes (401 and 403 too) */
    if (r->access == BUDGET_MANAGER &&
        evhttp_add_header(evhttp_request_get_output_headers(req), "x-tollgate-budget-manager",
                          "1") != 0)
        log_error("cannot add the x-tollgate-budget-manager header");
    if (r->access != OPEN && !route_access_allows(&w->cfg->access, r->key.path)) {
        httpjson_error(req, 403, "permission_error", NULL, ROUTE_ACCESS_NOT_ALLOWED_FMT,
                       r->key.path);
    } else if (r->access == OPEN || route_access_public(&w->cfg->access, r->key.path) ||
               authorize(w, req, r->key.path, r->access, &who) == 0) {
        w->replica = r->db == REPLICA;
        r->handler(w, req, &who);
        w->replica = false;
    }
    json_decref(who.permissions);
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

void api_dispatch(struct evhttp_request *req, void *arg)
{
    struct worker *w = arg;
    struct timespec t0;
    char request_id[OBSERVE_ID_MAX + 1];
    clock_gettime(CLOCK_MONOTONIC, &t0);
    observe_request_id(req, request_id);
    drain_track(w, req);
    struct generation *g = gen_acquire(&w->d->gens);
    w->cfg = g->cfg;
    w->prices = g->prices;
    w->request_id = request_id;
    const struct route *r = httpjson_find_route(req, ROUTES, N_ROUTES, sizeof(ROUTES[0]));
    if (r != NULL)
        run_route(w, req, r);
    w->cfg = NULL;
    w->prices = NULL;
    w->request_id = NULL;
    gen_release(g);
    observe_request(&w->d->obs, req, request_id, r != NULL ? r->key.path : route_label(req),
                    seconds_since(&t0));
}
