/* manage_teams.c - teams and their members: /team/new, /team/update,
 * /team/delete, /team/info, /team/member_add, /team/member_update and
 * /team/member_delete, in LiteLLM's shapes.
 *
 * A member's max_budget_in_team lives in a budget row of its own that the
 * membership points to (LiteLLM's TeamMembership -> BudgetTable); accountd
 * keeps the member's spend in the team. A member's tpm_limit / rpm_limit live
 * in that same row (one row holds budget and limits); a team's own are on
 * the team row. proxyd enforces both; null on an update clears a limit.
 * Deleting a team deletes its keys and memberships, as LiteLLM does; its
 * logs and rollups stay.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpjson.h"
#include "ids.h"
#include "input.h"
#include "log.h"
#include "manage.h"

#define MEMBERS_MAX 1000  /* members per request */
#define INFO_LIST_MAX 1000 /* keys and members listed by /team/info */

/* tpm_limit and rpm_limit of a body: has_* a value, given_* the field at
 * all (a null given on an update clears). */
struct limits {
    int64_t tpm, rpm;
    bool has_tpm, has_rpm, given_tpm, given_rpm;
};

struct team_fields {
    const char *team_id, *alias;
    char budget[MONEY_STR_MAX];
    bool has_budget, blocked;
    char *models, *metadata;
    struct manage_period period;
    struct limits lim;
};

static int read_limits(struct evhttp_request *req, json_t *body, struct limits *l)
{
    l->given_tpm = json_object_get(body, "tpm_limit") != NULL;
    l->given_rpm = json_object_get(body, "rpm_limit") != NULL;
    return input_int(req, body, "tpm_limit", 0, MANAGE_LIMIT_MAX, &l->tpm, &l->has_tpm) < 0 ||
                   input_int(req, body, "rpm_limit", 0, MANAGE_LIMIT_MAX, &l->rpm, &l->has_rpm) < 0
               ? -1
               : 0;
}

/* The limits an update gives (null: cleared), into s's SET list. */
static void set_limits(struct manage_set *s, const struct limits *l)
{
    if (l->given_tpm)
        manage_set(s, "tpm_limit", manage_opt_int(l->has_tpm, l->tpm));
    if (l->given_rpm)
        manage_set(s, "rpm_limit", manage_opt_int(l->has_rpm, l->rpm));
}

static int read_team(struct evhttp_request *req, json_t *body, struct team_fields *t)
{
    return input_str(req, body, "team_id", INPUT_ID_MAX, &t->team_id) < 0 ||
                   input_str(req, body, "team_alias", INPUT_ID_MAX, &t->alias) < 0 ||
                   input_money(req, body, "max_budget", t->budget, &t->has_budget) < 0 ||
                   input_bool(req, body, "blocked", &t->blocked) < 0 ||
                   input_str_list(req, body, "models", &t->models) < 0 ||
                   input_object(req, body, "metadata", &t->metadata) < 0 ||
                   manage_period_read(req, body, "budget_duration", &t->period) < 0 ||
                   read_limits(req, body, &t->lim) < 0
               ? -1
               : 0;
}

static const char *const MEMBER_ROLES[] = {"admin", "user", NULL};

/* One member object {"user_id", "role"?}; -1 answered. */
static int read_member(struct evhttp_request *req, json_t *m, const char *param,
                       const char **user_id, const char **role)
{
    *user_id = NULL;
    *role = "user";
    if (!json_is_object(m) || input_str(req, m, "user_id", INPUT_ID_MAX, user_id) < 0 ||
        input_str(req, m, "role", 16, role) < 0)
        return json_is_object(m) ? -1 : (httpjson_error(req, 400, "invalid_request_error", param,
                                                        "Invalid %s: members are objects with "
                                                        "user_id and role", param), -1);
    for (size_t i = 0; MEMBER_ROLES[i] != NULL; i++) {
        if (strcmp(*role, MEMBER_ROLES[i]) == 0)
            return *user_id != NULL ? 0
                                    : (httpjson_error(req, 400, "invalid_request_error", param,
                                                      "Invalid %s: user_id is required", param),
                                       -1);
    }
    /* /team/member_update's member is the body itself: its role is the param */
    const char *bad = strcmp(param, "user_id") == 0 ? "role" : param;
    httpjson_error(req, 400, "invalid_request_error", bad,
                   "Invalid %s: role must be admin or user", bad);
    return -1;
}

/* A list of members (or one member object) from body[name]; -1 answered. */
static int read_members(struct evhttp_request *req, json_t *body, const char *name, json_t **out)
{
    json_t *v = json_object_get(body, name), *m;
    const char *user_id, *role;
    size_t i;
    *out = NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_object(v)) {
        if (read_member(req, v, name, &user_id, &role) < 0)
            return -1;
        *out = json_pack("[O]", v);
        return *out != NULL ? 0 : -1;
    }
    if (!json_is_array(v) || json_array_size(v) > MEMBERS_MAX) {
        httpjson_error(req, 400, "invalid_request_error", name,
                       "Invalid %s: must be a list of at most %d members", name, MEMBERS_MAX);
        return -1;
    }
    json_array_foreach(v, i, m) {
        if (read_member(req, m, name, &user_id, &role) < 0)
            return -1;
    }
    *out = json_incref(v);
    return 0;
}

/* A private budget row for one member's max_budget_in_team (may be NULL)
 * and limits; id into out. */
static int insert_member_budget(MYSQL *db, const char *budget, const struct limits *l,
                                char out[IDS_UUID_LEN + 1], char *err, size_t errlen)
{
    if (ids_uuid4(out) < 0) {
        snprintf(err, errlen, "cannot make a budget id");
        return -1;
    }
    struct db_param p[] = {DB_STR(out), DB_STR(budget), manage_opt_int(l->has_tpm, l->tpm),
                           manage_opt_int(l->has_rpm, l->rpm)};
    return db_exec(db, "INSERT INTO budgets (budget_id, max_budget, tpm_limit, rpm_limit,"
                       " created_at, updated_at)"
                       " VALUES (?, ?, ?, ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
                   p, 4, NULL, NULL, NULL, err, errlen);
}

/* Adds each member (users created on first mention), with a budget row of
 * its own when `budget` or a limit is given. */
static int add_members(MYSQL *db, const char *team_id, json_t *members, const char *budget,
                       const struct limits *l, unsigned *errnum, char *err, size_t errlen)
{
    bool own = budget != NULL || l->has_tpm || l->has_rpm;
    json_t *m;
    size_t i;
    json_array_foreach(members, i, m) {
        const char *user_id = json_string_value(json_object_get(m, "user_id"));
        const char *role = json_string_value(json_object_get(m, "role"));
        char budget_id[IDS_UUID_LEN + 1];
        if (manage_ensure_user(db, user_id, err, errlen) < 0 ||
            (own && insert_member_budget(db, budget, l, budget_id, err, errlen) < 0))
            return -1;
        struct db_param p[] = {DB_STR(team_id), DB_STR(user_id), DB_STR(role ? role : "user"),
                               DB_STR(own ? budget_id : NULL)};
        if (db_exec(db, "INSERT INTO team_members (team_id, user_id, role, budget_id, created_at,"
                        " updated_at) VALUES (?, ?, ?, ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
                    p, 4, NULL, NULL, errnum, err, errlen) < 0)
            return -1;
    }
    return 0;
}

static json_t *members_answer(MYSQL *db, const char *team_id, char *err, size_t errlen);
static void team_answer(struct worker *w, struct evhttp_request *req, MYSQL *db,
                        const char *team_id);

void manage_team_new(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    json_t *body = httpjson_body(req, 1 << 20), *members = NULL;
    struct team_fields t = {0};
    char id[IDS_UUID_LEN + 1], err[512];
    unsigned errnum = 0;
    MYSQL *db;
    (void)who;
    if (body == NULL)
        return;
    if (read_team(req, body, &t) < 0 ||
        read_members(req, body, json_object_get(body, "members") ? "members"
                                                                 : "members_with_roles",
                     &members) < 0 ||
        (db = worker_db(w, req)) == NULL)
        goto out;
    if (t.team_id == NULL && ids_uuid4(id) == 0)
        t.team_id = id;
    bool periodic = t.period.text != NULL;
    const struct limits none = {0};
    struct db_param p[] = {DB_STR(t.team_id), DB_STR(t.alias), DB_STR(t.has_budget ? t.budget : NULL),
                           DB_STR(t.models), DB_STR(t.metadata), DB_I64(t.blocked),
                           DB_STR(t.period.text), DB_STR(periodic ? t.period.start : NULL),
                           DB_STR(periodic ? t.period.reset_at : NULL),
                           manage_opt_int(t.lim.has_tpm, t.lim.tpm),
                           manage_opt_int(t.lim.has_rpm, t.lim.rpm)};
    if (db_begin(db, err, sizeof(err)) < 0 ||
        db_exec(db, "INSERT INTO teams (team_id, team_alias, max_budget, models, metadata, blocked,"
                    " budget_duration, budget_period_start, budget_reset_at, tpm_limit, rpm_limit,"
                    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                    " UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))", p, sizeof(p) / sizeof(p[0]), NULL,
                NULL, &errnum, err, sizeof(err)) < 0 ||
        (members != NULL && add_members(db, t.team_id, members, NULL, &none, &errnum, err,
                                        sizeof(err)) < 0) ||
        db_commit(db, err, sizeof(err)) < 0) {
        db_rollback(db);
        if (errnum == ER_DUP_ENTRY && strstr(err, "team_members") == NULL &&
            strstr(err, "PRIMARY") != NULL && members == NULL)
            httpjson_error(req, 400, "invalid_request_error", "team_id",
                           "Team id = %s already exists. Please use a different team id.",
                           t.team_id);
        else if (errnum == ER_DUP_ENTRY)
            httpjson_error(req, 400, "invalid_request_error", members ? "members" : "team_id",
                           "Team id = %s already exists, or a member is listed twice.",
                           t.team_id);
        else
            worker_db_failed(w, req, err);
        goto out;
    }
    log_info("team created team_id=%s", t.team_id);
    team_answer(w, req, db, t.team_id);
out:
    free(t.models);
    free(t.metadata);
    json_decref(members);
    json_decref(body);
}

void manage_team_update(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    json_t *body = httpjson_body(req, 1 << 20);
    struct team_fields t = {0};
    struct manage_set s;
    MYSQL *db;
    (void)who;
    if (body == NULL)
        return;
    if (read_team(req, body, &t) < 0)
        goto out;
    if (t.team_id == NULL) {
        httpjson_error(req, 400, "invalid_request_error", "team_id", "team_id is required");
        goto out;
    }
    if ((db = worker_db(w, req)) == NULL)
        goto out;
    manage_set_init(&s, "teams");
    if (t.alias != NULL)
        manage_set(&s, "team_alias", DB_STR(t.alias));
    if (t.has_budget)
        manage_set(&s, "max_budget", DB_STR(t.budget));
    if (json_object_get(body, "models") != NULL)
        manage_set(&s, "models", DB_STR(t.models));
    if (json_object_get(body, "metadata") != NULL)
        manage_set(&s, "metadata", DB_STR(t.metadata));
    if (json_is_boolean(json_object_get(body, "blocked")))
        manage_set(&s, "blocked", DB_I64(t.blocked));
    set_limits(&s, &t.lim);
    if (t.period.text != NULL)
        manage_set_period(&s, &t.period);
    const struct manage_row row = {"teams", "team_id", "team_id", t.team_id, "Team"};
    if (manage_update_row(w, req, db, &s, &row, &t.period, true) == 0)
        team_answer(w, req, db, t.team_id);
out:
    free(t.models);
    free(t.metadata);
    json_decref(body);
}

/* Private budget rows of the memberships about to go: those no key, customer
 * or other membership points to. */
static const char SQL_DROP_TEAM_BUDGETS[] =
    "DELETE b FROM budgets b JOIN team_members m ON m.budget_id = b.budget_id"
    " WHERE m.team_id = ?"
    " AND NOT EXISTS (SELECT 1 FROM customers c WHERE c.budget_id = b.budget_id)"
    " AND NOT EXISTS (SELECT 1 FROM api_keys k WHERE k.budget_id = b.budget_id)"
    " AND NOT EXISTS (SELECT 1 FROM team_members o WHERE o.budget_id = b.budget_id"
    " AND o.team_id <> m.team_id)";
static const char SQL_DROP_MEMBER_BUDGET[] =
    "DELETE b FROM budgets b JOIN team_members m ON m.budget_id = b.budget_id"
    " WHERE m.team_id = ? AND m.user_id = ?"
    " AND NOT EXISTS (SELECT 1 FROM customers c WHERE c.budget_id = b.budget_id)"
    " AND NOT EXISTS (SELECT 1 FROM api_keys k WHERE k.budget_id = b.budget_id)"
    " AND NOT EXISTS (SELECT 1 FROM team_members o WHERE o.budget_id = b.budget_id"
    " AND (o.team_id <> m.team_id OR o.user_id <> m.user_id))";
void manage_team_delete(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    json_t *body = httpjson_body(req, 1 << 20), *ids, *id, *deleted = json_array();
    char err[512];
    size_t i;
    MYSQL *db;
    (void)who;
    if (body == NULL || deleted == NULL || input_id_list(req, body, "team_ids", MANAGE_IDS_MAX,
                                                         &ids) < 0 ||
        (db = worker_db(w, req)) == NULL)
        goto out;
    if (db_begin(db, err, sizeof(err)) < 0)
        goto failed;
    json_array_foreach(ids, i, id) {
        struct db_param p[] = {DB_STR(json_string_value(id))};
        uint64_t n = 0;
        if (db_exec(db, SQL_DROP_TEAM_BUDGETS, p, 1, NULL, NULL, NULL, err, sizeof(err)) < 0 ||
            db_exec(db, "DELETE FROM team_members WHERE team_id = ?", p, 1, NULL, NULL, NULL, err,
                    sizeof(err)) < 0 ||
            db_exec(db, "DELETE FROM api_keys WHERE team_id = ?", p, 1, NULL, NULL, NULL, err,
                    sizeof(err)) < 0 ||
            db_exec(db, "DELETE FROM teams WHERE team_id = ?", p, 1, NULL, &n, NULL, err,
                    sizeof(err)) < 0)
            goto failed;
        if (n > 0 && json_array_append(deleted, id) < 0)
            goto failed;
    }
    if (db_commit(db, err, sizeof(err)) < 0)
        goto failed;
    log_info("teams deleted count=%zu", json_array_size(deleted));
    httpjson_reply(req, 200, json_pack("{s:O}", "deleted_teams", deleted));
    goto out;
failed:
    db_rollback(db);
    worker_db_failed(w, req, err);
out:
    json_decref(deleted);
    json_decref(body);
}

/* The team's members (bounded) with their roles, spend and budgets. */
static json_t *members_answer(MYSQL *db, const char *team_id, char *err, size_t errlen)
{
    struct db_result *r = NULL;
    struct db_param p[] = {DB_STR(team_id), DB_I64(INFO_LIST_MAX)};
    if (db_exec(db, "SELECT m.user_id, m.role, m.spend, m.budget_id, b.max_budget,"
                    " b.budget_duration, " REPORTD_SQL_RFC3339("b.budget_reset_at")
                    ", b.tpm_limit, b.rpm_limit"
                    " FROM team_members m LEFT JOIN budgets b ON b.budget_id = m.budget_id"
                    " WHERE m.team_id = ? ORDER BY m.user_id LIMIT ?",
                p, 2, &r, NULL, NULL, err, errlen) < 0)
        return NULL;
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && i < r->nrows; i++) {
        json_t *budget = db_cell(r, i, 3) == NULL
            ? json_null()
            : json_pack("{s:s, s:o, s:o, s:o, s:o, s:o}", "budget_id", db_cell(r, i, 3),
                        "max_budget", httpjson_money_text(db_cell(r, i, 4)),
                        "budget_duration", httpjson_str_or_null(db_cell(r, i, 5)),
                        "budget_reset_at", httpjson_str_or_null(db_cell(r, i, 6)),
                        "tpm_limit", manage_int_or_null(db_cell(r, i, 7)),
                        "rpm_limit", manage_int_or_null(db_cell(r, i, 8)));
        json_t *m = json_pack("{s:s, s:s, s:s, s:o, s:o, s:o}", "team_id", team_id,
                              "user_id", db_cell(r, i, 0), "role", db_cell(r, i, 1),
                              "spend", httpjson_money_text(db_cell(r, i, 2)),
                              "budget_id", httpjson_str_or_null(db_cell(r, i, 3)),
                              "litellm_budget_table", budget);
        if (m == NULL || json_array_append_new(list, m) < 0) {
            json_decref(list);
            list = NULL;
        }
    }
    db_result_free(r);
    if (list == NULL)
        snprintf(err, errlen, "out of memory");
    return list;
}

/* The team row as LiteLLM's team object, with members_with_roles. */
static json_t *team_object(MYSQL *db, const char *team_id, char *err, size_t errlen)
{
    struct db_result *r = NULL;
    struct db_param p[] = {DB_STR(team_id)};
    if (db_exec(db, "SELECT team_alias, max_budget, spend, models, metadata, blocked,"
                    " budget_duration, " REPORTD_SQL_RFC3339("budget_reset_at") ", "
                    REPORTD_SQL_RFC3339("created_at") ", " REPORTD_SQL_RFC3339("updated_at")
                    ", tpm_limit, rpm_limit FROM teams WHERE team_id = ?", p, 1, &r, NULL, NULL,
                err, errlen) < 0)
        return NULL;
    json_t *t = NULL;
    if (r->nrows == 0)
        snprintf(err, errlen, "not found");
    else
        t = json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:b, s:o, s:o, s:s, s:s, s:o, s:o}",
                      "team_id", team_id, "team_alias", httpjson_str_or_null(db_cell(r, 0, 0)),
                      "max_budget", httpjson_money_text(db_cell(r, 0, 1)),
                      "spend", httpjson_money_text(db_cell(r, 0, 2)),
                      "models", manage_parsed(db_cell(r, 0, 3)),
                      "metadata", manage_parsed(db_cell(r, 0, 4)),
                      "blocked", strcmp(db_cell(r, 0, 5), "0") != 0,
                      "budget_duration", httpjson_str_or_null(db_cell(r, 0, 6)),
                      "budget_reset_at", httpjson_str_or_null(db_cell(r, 0, 7)),
                      "created_at", db_cell(r, 0, 8), "updated_at", db_cell(r, 0, 9),
                      "tpm_limit", manage_int_or_null(db_cell(r, 0, 10)),
                      "rpm_limit", manage_int_or_null(db_cell(r, 0, 11)));
    db_result_free(r);
    return t;
}

/* members_with_roles from the memberships. */
static int add_roles(json_t *team, json_t *memberships)
{
    json_t *roles = json_array(), *m;
    size_t i;
    json_array_foreach(memberships, i, m) {
        if (roles == NULL || json_array_append_new(roles, json_pack("{s:O, s:O}", "user_id",
                                                   json_object_get(m, "user_id"), "role",
                                                   json_object_get(m, "role"))) < 0)
            break;
    }
    return json_object_set_new(team, "members_with_roles", roles);
}

static void team_answer(struct worker *w, struct evhttp_request *req, MYSQL *db,
                        const char *team_id)
{
    char err[512];
    json_t *team = team_object(db, team_id, err, sizeof(err));
    json_t *members = team != NULL ? members_answer(db, team_id, err, sizeof(err)) : NULL;
    if (members == NULL || add_roles(team, members) < 0)
        worker_db_failed(w, req, err);
    else
        httpjson_reply(req, 200, json_incref(team));
    json_decref(members);
    json_decref(team);
}

/* The team's keys (bounded): hash, names, spend and budget, never a raw key. */
static json_t *team_keys(MYSQL *db, const char *team_id, char *err, size_t errlen)
{
    struct db_result *r = NULL;
    struct db_param p[] = {DB_STR(team_id), DB_I64(INFO_LIST_MAX)};
    if (db_exec(db, "SELECT token, key_name, key_alias, user_id, spend, max_budget, blocked"
                    " FROM api_keys WHERE team_id = ? ORDER BY created_at, token LIMIT ?",
                p, 2, &r, NULL, NULL, err, errlen) < 0)
        return NULL;
    json_t *keys = json_array();
    for (size_t i = 0; keys != NULL && i < r->nrows; i++) {
        json_t *k = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:b}", "token", db_cell(r, i, 0),
                              "key_name", db_cell(r, i, 1),
                              "key_alias", httpjson_str_or_null(db_cell(r, i, 2)),
                              "user_id", httpjson_str_or_null(db_cell(r, i, 3)),
                              "spend", httpjson_money_text(db_cell(r, i, 4)),
                              "max_budget", httpjson_money_text(db_cell(r, i, 5)),
                              "blocked", strcmp(db_cell(r, i, 6), "0") != 0);
        if (k == NULL || json_array_append_new(keys, k) < 0) {
            json_decref(keys);
            keys = NULL;
        }
    }
    db_result_free(r);
    if (keys == NULL)
        snprintf(err, errlen, "out of memory");
    return keys;
}

/* GET /team/info?team_id=: {"team_id", "team_info", "keys", "team_memberships"};
 * keys and memberships list at most INFO_LIST_MAX each ("list_limit" says so). */
void manage_team_info(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    struct query *q = query_parse(req);
    json_t *team = NULL, *members = NULL, *keys = NULL;
    const char *team_id;
    char err[512];
    MYSQL *db;
    (void)who;
    if (q == NULL)
        return;
    if (query_str(req, q, "team_id", INPUT_ID_MAX, &team_id) < 0)
        goto out;
    if (team_id == NULL) {
        httpjson_error(req, 400, "invalid_request_error", "team_id", "team_id is required");
        goto out;
    }
    if ((db = worker_db(w, req)) == NULL ||
        manage_require(w, req, db, "SELECT 1 FROM teams WHERE team_id = ?", team_id, 404,
                       "team_id", "Team") < 0)
        goto out;
    if ((team = team_object(db, team_id, err, sizeof(err))) == NULL ||
        (members = members_answer(db, team_id, err, sizeof(err))) == NULL ||
        (keys = team_keys(db, team_id, err, sizeof(err))) == NULL || add_roles(team, members) < 0) {
        worker_db_failed(w, req, err);
        goto out;
    }
    httpjson_reply(req, 200, json_pack("{s:s, s:O, s:O, s:O, s:i}", "team_id", team_id,
                                       "team_info", team, "keys", keys, "team_memberships",
                                       members, "list_limit", INFO_LIST_MAX));
out:
    json_decref(team);
    json_decref(members);
    json_decref(keys);
    query_free(q);
}

/* team_id of a member route's body, which must name an existing team. */
static int member_team(struct worker *w, struct evhttp_request *req, MYSQL *db, json_t *body,
                       const char **team_id)
{
    *team_id = NULL; /* input_str leaves it alone for an absent or null team_id */
    if (input_str(req, body, "team_id", INPUT_ID_MAX, team_id) < 0)
        return -1;
    if (*team_id == NULL) {
        httpjson_error(req, 400, "invalid_request_error", "team_id", "team_id is required");
        return -1;
    }
    return manage_require(w, req, db, "SELECT 1 FROM teams WHERE team_id = ?", *team_id, 404,
                          "team_id", "Team");
}

/* POST /team/member_add {team_id, member: {user_id, role} | [...],
 * max_budget_in_team?, tpm_limit?, rpm_limit?}: budget and limits apply to
 * each member added. */
void manage_team_member_add(struct worker *w, struct evhttp_request *req,
                            const struct caller *who)
{
    json_t *body = httpjson_body(req, 1 << 20), *members = NULL;
    const char *team_id;
    char budget[MONEY_STR_MAX], err[512];
    bool has_budget = false;
    struct limits lim = {0};
    unsigned errnum = 0;
    MYSQL *db;
    (void)who;
    if (body == NULL)
        return;
    if (read_members(req, body, "member", &members) < 0 ||
        input_money(req, body, "max_budget_in_team", budget, &has_budget) < 0 ||
        read_limits(req, body, &lim) < 0 ||
        (db = worker_db(w, req)) == NULL || member_team(w, req, db, body, &team_id) < 0)
        goto out;
    if (members == NULL || json_array_size(members) == 0) {
        httpjson_error(req, 400, "invalid_request_error", "member", "member is required");
        goto out;
    }
    if (db_begin(db, err, sizeof(err)) < 0 ||
        add_members(db, team_id, members, has_budget ? budget : NULL, &lim, &errnum, err,
                    sizeof(err)) < 0 ||
        db_commit(db, err, sizeof(err)) < 0) {
        db_rollback(db);
        if (errnum == ER_DUP_ENTRY)
            httpjson_error(req, 400, "invalid_request_error", "member",
                           "User is already a member of team %s", team_id);
        else
            worker_db_failed(w, req, err);
        goto out;
    }
    log_info("team members added team_id=%s count=%zu", team_id, json_array_size(members));
    team_answer(w, req, db, team_id);
out:
    json_decref(members);
    json_decref(body);
}

/* The member's budget row (budget_id, NULL: none yet): the fields given
 * are changed in place, or a row is made when one of them has a value. */
static int set_member_budget(MYSQL *db, const char *team_id, const char *user_id,
                             const char *budget_id, const char *budget, const struct limits *l,
                             char *err, size_t errlen)
{
    char id[IDS_UUID_LEN + 1];
    if (budget_id != NULL) {
        struct manage_set s;
        manage_set_init(&s, "budgets");
        if (budget != NULL)
            manage_set(&s, "max_budget", DB_STR(budget));
        set_limits(&s, l);
        return manage_set_run(db, &s, "budget_id", budget_id, NULL, NULL, err, errlen);
    }
    if (budget == NULL && !l->has_tpm && !l->has_rpm)
        return 0; /* only nulls for a member with no budget: nothing to clear */
    struct db_param q[] = {DB_STR(id), DB_STR(team_id), DB_STR(user_id)};
    return insert_member_budget(db, budget, l, id, err, errlen) < 0 ||
                   db_exec(db, "UPDATE team_members SET budget_id = ?,"
                               " updated_at = UTC_TIMESTAMP(6) WHERE team_id = ? AND user_id = ?",
                           q, 3, NULL, NULL, NULL, err, errlen) < 0
               ? -1
               : 0;
}

/* POST /team/member_update {team_id, user_id, max_budget_in_team?, role?,
 * tpm_limit?, rpm_limit?} */
void manage_team_member_update(struct worker *w, struct evhttp_request *req,
                               const struct caller *who)
{
    json_t *body = httpjson_body(req, 1 << 20);
    const char *team_id, *user_id = NULL, *role = NULL;
    char budget[MONEY_STR_MAX], err[512];
    bool has_budget = false;
    struct limits lim = {0};
    MYSQL *db;
    (void)who;
    if (body == NULL)
        return;
    json_t *m = json_pack("{s:O?, s:O?}", "user_id", json_object_get(body, "user_id"), "role",
                          json_object_get(body, "role"));
    if (m == NULL || read_member(req, m, "user_id", &user_id, &role) < 0 ||
        input_money(req, body, "max_budget_in_team", budget, &has_budget) < 0 ||
        read_limits(req, body, &lim) < 0 || (db = worker_db(w, req)) == NULL ||
        member_team(w, req, db, body, &team_id) < 0)
        goto out;
    struct db_param p[] = {DB_STR(team_id), DB_STR(user_id)};
    struct db_param r[] = {DB_STR(role), DB_STR(team_id), DB_STR(user_id)};
    struct db_result *row = NULL;
    if (db_begin(db, err, sizeof(err)) < 0 ||
        db_exec(db, "SELECT budget_id FROM team_members WHERE team_id = ? AND user_id = ?"
                    " FOR UPDATE", p, 2, &row, NULL, NULL, err, sizeof(err)) < 0)
        goto failed;
    if (row->nrows == 0) {
        db_result_free(row);
        db_rollback(db);
        httpjson_error(req, 404, "not_found_error", "user_id",
                       "User %s is not a member of team %s", user_id, team_id);
        goto out;
    }
    if ((json_object_get(body, "role") != NULL &&
         db_exec(db, "UPDATE team_members SET role = ?, updated_at = UTC_TIMESTAMP(6)"
                     " WHERE team_id = ? AND user_id = ?", r, 3, NULL, NULL, NULL, err,
                 sizeof(err)) < 0) ||
        ((has_budget || lim.given_tpm || lim.given_rpm) &&
         set_member_budget(db, team_id, user_id, db_cell(row, 0, 0), has_budget ? budget : NULL,
                           &lim, err, sizeof(err)) < 0) ||
        db_commit(db, err, sizeof(err)) < 0) {
        db_result_free(row);
        goto failed;
    }
    db_result_free(row);
    team_answer(w, req, db, team_id);
    goto out;
failed:
    db_rollback(db);
    worker_db_failed(w, req, err);
out:
    json_decref(m);
    json_decref(body);
}

/* POST /team/member_delete {team_id, user_id}: the membership, its private
 * budget and the user's keys in the team go (as LiteLLM does). */
void manage_team_member_delete(struct worker *w, struct evhttp_request *req,
                               const struct caller *who)
{
    json_t *body = httpjson_body(req, 1 << 20);
    const char *team_id, *user_id = NULL;
    char err[512];
    uint64_t n = 0;
    MYSQL *db;
    (void)who;
    if (body == NULL)
        return;
    if (input_str(req, body, "user_id", INPUT_ID_MAX, &user_id) < 0 ||
        (db = worker_db(w, req)) == NULL || member_team(w, req, db, body, &team_id) < 0)
        goto out;
    if (user_id == NULL) {
        httpjson_error(req, 400, "invalid_request_error", "user_id", "user_id is required");
        goto out;
    }
    struct db_param p[] = {DB_STR(team_id), DB_STR(user_id)};
    if (db_begin(db, err, sizeof(err)) < 0 ||
        db_exec(db, SQL_DROP_MEMBER_BUDGET, p, 2, NULL, NULL, NULL, err, sizeof(err)) < 0 ||
        db_exec(db, "DELETE FROM team_members WHERE team_id = ? AND user_id = ?", p, 2, NULL, &n,
                NULL, err, sizeof(err)) < 0 ||
        db_exec(db, "DELETE FROM api_keys WHERE team_id = ? AND user_id = ?", p, 2, NULL, NULL,
                NULL, err, sizeof(err)) < 0 ||
        db_commit(db, err, sizeof(err)) < 0) {
        db_rollback(db);
        worker_db_failed(w, req, err);
        goto out;
    }
    if (n == 0)
        httpjson_error(req, 404, "not_found_error", "user_id",
                       "User %s is not a member of team %s", user_id, team_id);
    else
        team_answer(w, req, db, team_id);
out:
    json_decref(body);
}
