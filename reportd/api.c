/* api.c - reportd's route table and who may call what.
 *
 * Management routes and the spend reset take the master key only. Spend
 * routes also take a virtual key whose permissions grant "get_spend_routes".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "httpjson.h"
#include "keyhash.h"
#include "log.h"
#include "reportd.h"

enum access { MASTER_ONLY, SPEND_READ };

struct route {
    struct httpjson_route key; /* first: httpjson_find_route reads it */
    enum access access;
    void (*handler)(struct worker *, struct evhttp_request *, const struct caller *);
};

static const struct route ROUTES[] = {
    {{EVHTTP_REQ_POST, "/team/new"}, MASTER_ONLY, manage_team_new},
    {{EVHTTP_REQ_POST, "/user/new"}, MASTER_ONLY, manage_user_new},
    {{EVHTTP_REQ_POST, "/key/generate"}, MASTER_ONLY, manage_key_generate},
    {{EVHTTP_REQ_POST, "/key/update"}, MASTER_ONLY, manage_key_update},
    {{EVHTTP_REQ_GET, "/key/info"}, MASTER_ONLY, manage_key_info},
    {{EVHTTP_REQ_GET, "/key/list"}, MASTER_ONLY, manage_key_list},
    {{EVHTTP_REQ_POST, "/key/block"}, MASTER_ONLY, manage_key_block},
    {{EVHTTP_REQ_POST, "/key/unblock"}, MASTER_ONLY, manage_key_unblock},
    {{EVHTTP_REQ_POST, "/key/delete"}, MASTER_ONLY, manage_key_delete},
    {{EVHTTP_REQ_GET, "/spend/logs"}, SPEND_READ, spend_logs},
    {{EVHTTP_REQ_GET, "/global/spend/report"}, SPEND_READ, spend_report},
    {{EVHTTP_REQ_GET, "/global/spend/keys"}, SPEND_READ, summary_keys},
    {{EVHTTP_REQ_GET, "/global/spend/models"}, SPEND_READ, summary_models},
    {{EVHTTP_REQ_GET, "/global/spend/tags"}, SPEND_READ, summary_global_tags},
    {{EVHTTP_REQ_GET, "/spend/tags"}, SPEND_READ, summary_tags},
    {{EVHTTP_REQ_POST, "/global/spend/reset"}, MASTER_ONLY, summary_reset},
    {{EVHTTP_REQ_GET, "/user/daily/activity"}, SPEND_READ, activity_user},
    {{EVHTTP_REQ_GET, "/team/daily/activity"}, SPEND_READ, activity_team},
    {{EVHTTP_REQ_GET, "/tag/daily/activity"}, SPEND_READ, activity_tag},
    {{EVHTTP_REQ_POST, "/global/spend/end_users"}, SPEND_READ, spend_end_users},
    {{EVHTTP_REQ_POST, "/spend/calculate"}, SPEND_READ, spend_calculate},
};

/* Loads the row of the virtual key who->token; 0 found and usable, -1 answered. */
static int load_key(struct worker *w, struct evhttp_request *req, struct caller *who)
{
    struct db_result *r = NULL;
    char err[512];
    MYSQL *db;
    if ((db = worker_db(w, req)) == NULL)
        return -1;
    struct db_param p[] = {DB_STR(who->token)};
    if (db_exec(db, "SELECT permissions, blocked, expires IS NOT NULL AND expires <= UTC_TIMESTAMP(6)"
                    " FROM api_keys WHERE token = ?", p, 1, &r, NULL, NULL, err, sizeof(err)) < 0) {
        worker_db_failed(w, req, err);
        return -1;
    }
    int rc = -1;
    if (r->nrows == 0)
        httpjson_error(req, 401, "auth_error", NULL,
                       "Authentication Error, Invalid proxy server token passed.");
    else if (strcmp(db_cell(r, 0, 1), "0") != 0)
        httpjson_error(req, 403, "permission_error", NULL, "Authentication Error, Key is blocked.");
    else if (strcmp(db_cell(r, 0, 2), "0") != 0)
        httpjson_error(req, 401, "auth_error", NULL, "Authentication Error - Expired Key.");
    else if ((who->permissions = json_loads(db_cell(r, 0, 0), 0, NULL)) != NULL)
        rc = 0;
    else
        httpjson_error(req, 500, "internal_error", NULL, "key permissions unreadable");
    db_result_free(r);
    return rc;
}

static int authorize(struct worker *w, struct evhttp_request *req, enum access access,
                     struct caller *who)
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
    if (load_key(w, req, who) < 0)
        return -1;
    if (access == SPEND_READ &&
        json_is_true(json_object_get(who->permissions, "get_spend_routes")))
        return 0;
    httpjson_error(req, 403, "permission_error", NULL,
                   access == MASTER_ONLY ? "Only the master key can call this route"
                                         : "This key may not call spend routes "
                                           "(it needs permissions.get_spend_routes)");
    return -1;
}

void api_dispatch(struct evhttp_request *req, void *arg)
{
    const struct route *r = httpjson_find_route(req, ROUTES, sizeof(ROUTES) / sizeof(ROUTES[0]),
                                                sizeof(ROUTES[0]));
    struct caller who = {0};
    if (r != NULL && authorize(arg, req, r->access, &who) == 0)
        r->handler(arg, req, &who);
    json_decref(who.permissions);
}
