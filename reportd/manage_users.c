/* manage_users.c - internal users: /user/new, /user/update, /user/delete and
 * /user/info, in LiteLLM's shapes.
 *
 * A user's teams are its team_members rows (/user/new's `teams` adds them as
 * a "user" member). Deleting a user deletes its keys and memberships, as
 * LiteLLM does; its logs and rollups stay. /user/new takes the config's
 * defaults for what it leaves out (manage_key_caps.c). tpm_limit and
 * rpm_limit (null: none; null on /user/update clears) are stored for proxyd,
 * which enforces them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpjson.h"
#include "ids.h"
#include "input.h"
#include "log.h"
#include "manage.h"
#include "manage_key_caps.h"

#define INFO_LIST_MAX 1000 /* keys and teams listed by /user/info */

static const char *const USER_ROLES[] = {"proxy_admin", "proxy_admin_viewer", "internal_user",
                                         "internal_user_viewer", NULL};

struct user_fields {
    const char *user_id, *email, *alias, *role;
    char budget[MONEY_STR_MAX], spend[MONEY_STR_MAX];
    bool has_budget, has_spend;
    int64_t tpm, rpm; /* proxyd enforces them on all the user's keys */
    bool has_tpm, has_rpm;
    char *models, *metadata;
    struct manage_period period;
};

static int valid_role(struct evhttp_request *req, const char *role)
{
    for (size_t i = 0; role != NULL && USER_ROLES[i] != NULL; i++) {
        if (strcmp(USER_ROLES[i], role) == 0)
            return 0;
    }
    httpjson_error(req, 400, "invalid_request_error", "user_role",
                   "Invalid user_role: must be one of proxy_admin, proxy_admin_viewer, "
                   "internal_user, internal_user_viewer");
    return -1;
}

static int read_user(struct evhttp_request *req, json_t *body, struct user_fields *u)
{
    return input_str(req, body, "user_id", INPUT_ID_MAX, &u->user_id) < 0 ||
                   input_str(req, body, "user_email", INPUT_ID_MAX, &u->email) < 0 ||
                   input_str(req, body, "user_alias", INPUT_ID_MAX, &u->alias) < 0 ||
                   input_str(req, body, "user_role", 32, &u->role) < 0 ||
                   (u->role != NULL && valid_role(req, u->role) < 0) ||
                   input_money(req, body, "max_budget", u->budget, &u->has_budget) < 0 ||
                   input_money(req, body, "spend", u->spend, &u->has_spend) < 0 ||
                   input_int(req, body, "tpm_limit", 0, MANAGE_LIMIT_MAX, &u->tpm, &u->has_tpm) < 0 ||
                   input_int(req, body, "rpm_limit", 0, MANAGE_LIMIT_MAX, &u->rpm, &u->has_rpm) < 0 ||
                   input_str_list(req, body, "models", &u->models) < 0 ||
                   input_object(req, body, "metadata", &u->metadata) < 0 ||
                   manage_period_read(req, body, "budget_duration", &u->period) < 0
               ? -1
               : 0;
}

/* /user/new's teams: each must exist; the user joins each as a "user". */
static int read_teams(struct evhttp_request *req, json_t *body, json_t **out)
{
    *out = NULL;
    json_t *v = json_object_get(body, "teams");
    if (v == NULL || json_is_null(v) || (json_is_array(v) && json_array_size(v) == 0))
        return 0;
    return input_id_list(req, body, "teams", MANAGE_IDS_MAX, out);
}

static int join_teams(struct worker *w, struct evhttp_request *req, MYSQL *db,
                      const char *user_id, json_t *teams, char *err, size_t errlen)
{
    json_t *t;
    size_t i;
    json_array_foreach(teams, i, t) {
        const char *team_id = json_string_value(t);
        struct db_param p[] = {DB_STR(team_id), DB_STR(user_id)};
        if (manage_require(w, req, db, "SELECT 1 FROM teams WHERE team_id = ?", team_id, 400,
                           "teams", "Team") < 0)
            return -2; /* answered */
        if (db_exec(db, "INSERT INTO team_members (team_id, user_id, created_at, updated_at)"
                        " VALUES (?, ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))"
                        " ON DUPLICATE KEY UPDATE updated_at = updated_at",
                    p, 2, NULL, NULL, NULL, err, errlen) < 0)
            return -1;
    }
    return 0;
}

/* The user row as LiteLLM's user object; teams from the memberships. */
static json_t *user_object(MYSQL *db, const char *user_id, char *err, size_t errlen)
{
    struct db_result *r = NULL, *t = NULL;
    struct db_param p[] = {DB_STR(user_id)};
    if (db_exec(db, "SELECT user_email, user_alias, user_role, max_budget, spend, models,"
                    " metadata, budget_duration, " REPORTD_SQL_RFC3339("budget_reset_at") ", "
                    REPORTD_SQL_RFC3339("created_at") ", " REPORTD_SQL_RFC3339("updated_at")
                    ", tpm_limit, rpm_limit FROM internal_users WHERE user_id = ?", p, 1, &r, NULL,
                NULL, err, errlen) < 0)
        return NULL;
    json_t *u = NULL, *teams = json_array();
    if (r->nrows == 0 || teams == NULL)
        snprintf(err, errlen, "user row not found");
    else if (db_exec(db, "SELECT team_id FROM team_members WHERE user_id = ? ORDER BY team_id",
                     p, 1, &t, NULL, NULL, err, errlen) == 0) {
        for (size_t i = 0; i < t->nrows; i++)
            json_array_append_new(teams, json_string(db_cell(t, i, 0)));
        u = json_pack("{s:s, s:o, s:o, s:s, s:o, s:o, s:o, s:O, s:o, s:o, s:o, s:s, s:s, s:o,"
                      " s:o}",
                      "user_id", user_id, "user_email", httpjson_str_or_null(db_cell(r, 0, 0)),
                      "user_alias", httpjson_str_or_null(db_cell(r, 0, 1)),
                      "user_role", db_cell(r, 0, 2),
                      "max_budget", httpjson_money_text(db_cell(r, 0, 3)),
                      "spend", httpjson_money_text(db_cell(r, 0, 4)),
                      "models", manage_parsed(db_cell(r, 0, 5)), "teams", teams,
                      "metadata", manage_parsed(db_cell(r, 0, 6)),
                      "budget_duration", httpjson_str_or_null(db_cell(r, 0, 7)),
                      "budget_reset_at", httpjson_str_or_null(db_cell(r, 0, 8)),
                      "created_at", db_cell(r, 0, 9), "updated_at", db_cell(r, 0, 10),
                      "tpm_limit", manage_int_or_null(db_cell(r, 0, 11)),
                      "rpm_limit", manage_int_or_null(db_cell(r, 0, 12)));
        db_result_free(t);
    }
    json_decref(teams);
    db_result_free(r);
    return u;
}

static void answer_user(struct worker *w, struct evhttp_request *req, MYSQL *db,
                        const char *user_id)
{
    char err[512];
    json_t *u = user_object(db, user_id, err, sizeof(err));
    if (u == NULL)
        worker_db_failed(w, req, err);
    else
        httpjson_reply(req, 200, u);
}

void manage_user_new(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    json_t *body = httpjson_body(req, 1 << 20), *teams = NULL;
    struct user_fields u = {0};
    char id[IDS_UUID_LEN + 1], err[512];
    unsigned errnum = 0;
    MYSQL *db;
    (void)who;
    if (body == NULL)
        return;
    if (user_defaults_fill_or_reply(req, w->cfg, body) < 0 || read_user(req, body, &u) < 0 ||
        read_teams(req, body, &teams) < 0)
        goto out;
    if (u.has_spend) {
        httpjson_error(req, 400, "invalid_request_error", "spend",
                       "spend cannot be set on a new user");
        goto out;
    }
    if ((db = worker_db(w, req)) == NULL)
        goto out;
    if (u.user_id == NULL && ids_uuid4(id) == 0)
        u.user_id = id;
    bool periodic = u.period.text != NULL;
    struct db_param p[] = {DB_STR(u.user_id), DB_STR(u.email), DB_STR(u.alias),
                           DB_STR(u.role ? u.role : "internal_user"),
                           DB_STR(u.has_budget ? u.budget : NULL), DB_STR(u.models),
                           DB_STR(u.metadata), DB_STR(u.period.text),
                           DB_STR(periodic ? u.period.start : NULL),
                           DB_STR(periodic ? u.period.reset_at : NULL),
                           manage_opt_int(u.has_tpm, u.tpm), manage_opt_int(u.has_rpm, u.rpm)};
    int joined = 0;
    if (db_begin(db, err, sizeof(err)) < 0 ||
        db_exec(db, "INSERT INTO internal_users (user_id, user_email, user_alias, user_role,"
                    " max_budget, models, metadata, budget_duration, budget_period_start,"
                    " budget_reset_at, tpm_limit, rpm_limit, created_at, updated_at) VALUES"
                    " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
                p, sizeof(p) / sizeof(p[0]), NULL, NULL, &errnum, err, sizeof(err)) < 0 ||
        (teams != NULL && (joined = join_teams(w, req, db, u.user_id, teams, err,
                                               sizeof(err))) < 0) ||
        db_commit(db, err, sizeof(err)) < 0) {
        db_rollback(db);
        if (joined == -2)
            goto out;
        if (errnum == ER_DUP_ENTRY)
            httpjson_error(req, 400, "invalid_request_error", "user_id",
                           "User id = %s already exists.", u.user_id);
        else
            worker_db_failed(w, req, err);
        goto out;
    }
    log_info("user created user_id=%s", u.user_id);
    answer_user(w, req, db, u.user_id);
out:
    free(u.models);
    free(u.metadata);
    json_decref(teams);
    json_decref(body);
}

void manage_user_update(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    json_t *body = httpjson_body(req, 1 << 20);
    struct user_fields u = {0};
    struct manage_set s;
    MYSQL *db;
    (void)who;
    if (body == NULL)
        return;
    if (read_user(req, body, &u) < 0)
        goto out;
    if (u.user_id == NULL) {
        httpjson_error(req, 400, "invalid_request_error", "user_id", "user_id is required");
        goto out;
    }
    if ((db = worker_db(w, req)) == NULL)
        goto out;
    manage_set_init(&s, "internal_users");
    if (u.email != NULL)
        manage_set(&s, "user_email", DB_STR(u.email));
    if (u.alias != NULL)
        manage_set(&s, "user_alias", DB_STR(u.alias));
    if (u.role != NULL)
        manage_set(&s, "user_role", DB_STR(u.role));
    if (u.has_budget)
        manage_set(&s, "max_budget", DB_STR(u.budget));
    if (u.has_spend)
        manage_set(&s, "spend", DB_STR(u.spend));
    if (json_object_get(body, "models") != NULL)
        manage_set(&s, "models", DB_STR(u.models));
    if (json_object_get(body, "metadata") != NULL)
        manage_set(&s, "metadata", DB_STR(u.metadata));
    if (json_object_get(body, "tpm_limit") != NULL) /* null clears */
        manage_set(&s, "tpm_limit", manage_opt_int(u.has_tpm, u.tpm));
    if (json_object_get(body, "rpm_limit") != NULL)
        manage_set(&s, "rpm_limit", manage_opt_int(u.has_rpm, u.rpm));
    if (u.period.text != NULL)
        manage_set_period(&s, &u.period);
    const struct manage_row row = {"internal_users", "user_id", "user", u.user_id, "User"};
    if (manage_update_row(w, req, db, &s, &row, &u.period, !u.has_spend) == 0)
        answer_user(w, req, db, u.user_id);
out:
    free(u.models);
    free(u.metadata);
    json_decref(body);
}

/* Private budgets of the user's memberships that nothing else points to. */
static const char SQL_DROP_USER_BUDGETS[] =
    "DELETE b FROM budgets b JOIN team_members m ON m.budget_id = b.budget_id"
    " WHERE m.user_id = ?"
    " AND NOT EXISTS (SELECT 1 FROM customers c WHERE c.budget_id = b.budget_id)"
    " AND NOT EXISTS (SELECT 1 FROM api_keys k WHERE k.budget_id = b.budget_id)"
    " AND NOT EXISTS (SELECT 1 FROM team_members o WHERE o.budget_id = b.budget_id"
    " AND o.user_id <> m.user_id)";

void manage_user_delete(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    json_t *body = httpjson_body(req, 1 << 20), *ids, *id, *deleted = json_array();
    char err[512];
    size_t i;
    MYSQL *db;
    (void)who;
    if (body == NULL || deleted == NULL ||
        input_id_list(req, body, "user_ids", MANAGE_IDS_MAX, &ids) < 0 ||
        (db = worker_db(w, req)) == NULL)
        goto out;
    if (db_begin(db, err, sizeof(err)) < 0)
        goto failed;
    json_array_foreach(ids, i, id) {
        struct db_param p[] = {DB_STR(json_string_value(id))};
        uint64_t n = 0;
        if (db_exec(db, SQL_DROP_USER_BUDGETS, p, 1, NULL, NULL, NULL, err, sizeof(err)) < 0 ||
            db_exec(db, "DELETE FROM team_members WHERE user_id = ?", p, 1, NULL, NULL, NULL, err,
                    sizeof(err)) < 0 ||
            db_exec(db, "DELETE FROM api_keys WHERE user_id = ?", p, 1, NULL, NULL, NULL, err,
                    sizeof(err)) < 0 ||
            db_exec(db, "DELETE FROM internal_users WHERE user_id = ?", p, 1, NULL, &n, NULL, err,
                    sizeof(err)) < 0)
            goto failed;
        if (n > 0 && json_array_append(deleted, id) < 0)
            goto failed;
    }
    if (db_commit(db, err, sizeof(err)) < 0)
        goto failed;
    log_info("users deleted count=%zu", json_array_size(deleted));
    httpjson_reply(req, 200, json_pack("{s:O}", "deleted_users", deleted));
    goto out;
failed:
    db_rollback(db);
    worker_db_failed(w, req, err);
out:
    json_decref(deleted);
    json_decref(body);
}

/* The user's keys and teams (bounded), for /user/info. */
static json_t *user_lists(MYSQL *db, const char *user_id, json_t **teams, char *err,
                          size_t errlen)
{
    struct db_result *k = NULL, *t = NULL;
    struct db_param p[] = {DB_STR(user_id), DB_I64(INFO_LIST_MAX)};
    *teams = NULL;
    if (db_exec(db, "SELECT token, key_name, key_alias, team_id, spend, max_budget, blocked"
                    " FROM api_keys WHERE user_id = ? ORDER BY created_at, token LIMIT ?",
                p, 2, &k, NULL, NULL, err, errlen) < 0)
        return NULL;
    if (db_exec(db, "SELECT m.team_id, t.team_alias, m.role, m.spend, b.max_budget"
                    " FROM team_members m JOIN teams t ON t.team_id = m.team_id"
                    " LEFT JOIN budgets b ON b.budget_id = m.budget_id"
                    " WHERE m.user_id = ? ORDER BY m.team_id LIMIT ?",
                p, 2, &t, NULL, NULL, err, errlen) < 0) {
        db_result_free(k);
        return NULL;
    }
    json_t *keys = json_array();
    *teams = json_array();
    for (size_t i = 0; keys != NULL && i < k->nrows; i++)
        json_array_append_new(keys, json_pack(
            "{s:s, s:s, s:o, s:o, s:o, s:o, s:b}", "token", db_cell(k, i, 0),
            "key_name", db_cell(k, i, 1), "key_alias", httpjson_str_or_null(db_cell(k, i, 2)),
            "team_id", httpjson_str_or_null(db_cell(k, i, 3)),
            "spend", httpjson_money_text(db_cell(k, i, 4)),
            "max_budget", httpjson_money_text(db_cell(k, i, 5)),
            "blocked", strcmp(db_cell(k, i, 6), "0") != 0));
    for (size_t i = 0; *teams != NULL && i < t->nrows; i++)
        json_array_append_new(*teams, json_pack(
            "{s:s, s:o, s:s, s:o, s:o}", "team_id", db_cell(t, i, 0),
            "team_alias", httpjson_str_or_null(db_cell(t, i, 1)), "role", db_cell(t, i, 2),
            "spend_in_team", httpjson_money_text(db_cell(t, i, 3)),
            "max_budget_in_team", httpjson_money_text(db_cell(t, i, 4))));
    db_result_free(k);
    db_result_free(t);
    if (keys == NULL || *teams == NULL) {
        json_decref(keys);
        json_decref(*teams);
        *teams = NULL;
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    return keys;
}

/* GET /user/info?user_id=: {"user_id", "user_info", "keys", "teams"} (lists
 * bounded at INFO_LIST_MAX: "list_limit"). An internal user's key reads
 * only its own user (api.c passes who->user_id). */
void manage_user_info(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    struct query *q = query_parse(req);
    json_t *user = NULL, *keys = NULL, *teams = NULL;
    const char *user_id;
    char err[512];
    MYSQL *db;
    if (q == NULL)
        return;
    if (query_str(req, q, "user_id", INPUT_ID_MAX, &user_id) < 0)
        goto out;
    if (user_id == NULL && who->self_only)
        user_id = who->user_id;
    if (user_id == NULL) {
        httpjson_error(req, 400, "invalid_request_error", "user_id", "user_id is required");
        goto out;
    }
    if (who->self_only && strcmp(user_id, who->user_id) != 0) {
        httpjson_error(req, 403, "permission_error", "user_id",
                       "An internal user's key can only read its own user");
        goto out;
    }
    if ((db = worker_db(w, req)) == NULL ||
        manage_require(w, req, db, "SELECT 1 FROM internal_users WHERE user_id = ?", user_id,
                       404, "user_id", "User") < 0)
        goto out;
    if ((user = user_object(db, user_id, err, sizeof(err))) == NULL ||
        (keys = user_lists(db, user_id, &teams, err, sizeof(err))) == NULL) {
        worker_db_failed(w, req, err);
        goto out;
    }
    httpjson_reply(req, 200, json_pack("{s:s, s:O, s:O, s:O, s:i}", "user_id", user_id,
                                       "user_info", user, "keys", keys, "teams", teams,
                                       "list_limit", INFO_LIST_MAX));
out:
    json_decref(user);
    json_decref(keys);
    json_decref(teams);
    query_free(q);
}
