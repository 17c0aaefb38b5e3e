/* manage.c - management routes: teams, internal users and virtual keys.
 *
 * Shapes follow LiteLLM's /team/new, /user/new and /key/generate. A raw key
 * is shown once, in the /key/generate answer; only its SHA-256 is stored.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "httpjson.h"
#include "ids.h"
#include "input.h"
#include "keyhash.h"
#include "log.h"
#include "reportd.h"

#define ER_DUP_ENTRY 1062

static const char *const USER_ROLES[] = {"proxy_admin", "proxy_admin_viewer", "internal_user",
                                         "internal_user_viewer", NULL};

/* JSON text from our own validated input back into the answer. */
static json_t *parsed(const char *text)
{
    json_t *v = json_loads(text, 0, NULL);
    return v != NULL ? v : json_null();
}

static json_t *money_or_null(bool present, const char *text)
{
    return present ? httpjson_money_text(text) : json_null();
}

/* Does a row with this id exist? -1 answered (DB error). */
static int exists(struct worker *w, struct evhttp_request *req, MYSQL *db, const char *sql,
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

void manage_team_new(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    json_t *body = httpjson_body(req, 1 << 20);
    const char *team_id = NULL, *alias = NULL;
    char budget[MONEY_STR_MAX], id[IDS_UUID_LEN + 1], err[512];
    char *models = NULL, *metadata = NULL;
    bool has_budget = false, blocked = false;
    unsigned errnum = 0;
    MYSQL *db;
    (void)who;
    if (body == NULL)
        return;
    if (input_str(req, body, "team_id", INPUT_ID_MAX, &team_id) < 0 ||
        input_str(req, body, "team_alias", INPUT_ID_MAX, &alias) < 0 ||
        input_money(req, body, "max_budget", budget, &has_budget) < 0 ||
        input_bool(req, body, "blocked", &blocked) < 0 ||
        input_str_list(req, body, "models", &models) < 0 ||
        input_object(req, body, "metadata", &metadata) < 0 || (db = worker_db(w, req)) == NULL)
        goto out;
    if (team_id == NULL && ids_uuid4(id) == 0)
        team_id = id;
    struct db_param p[] = {DB_STR(team_id), DB_STR(alias), DB_STR(has_budget ? budget : NULL),
                           DB_STR(models), DB_STR(metadata), DB_I64(blocked)};
    if (db_exec(db, "INSERT INTO teams (team_id, team_alias, max_budget, models, metadata, blocked,"
                    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6),"
                    " UTC_TIMESTAMP(6))", p, 6, NULL, NULL, &errnum, err, sizeof(err)) < 0) {
        if (errnum == ER_DUP_ENTRY)
            httpjson_error(req, 400, "invalid_request_error", "team_id",
                           "Team id = %s already exists. Please use a different team id.", team_id);
        else
            worker_db_failed(w, req, err);
        goto out;
    }
    httpjson_reply(req, 200, json_pack("{s:s, s:o, s:o, s:i, s:o, s:o, s:b, s:[]}",
        "team_id", team_id, "team_alias", alias ? json_string(alias) : json_null(),
        "max_budget", money_or_null(has_budget, budget), "spend", 0, "models", parsed(models),
        "metadata", parsed(metadata), "blocked", blocked, "members_with_roles"));
out:
    free(models);
    free(metadata);
    json_decref(body);
}

static int valid_role(struct evhttp_request *req, const char *role)
{
    for (size_t i = 0; USER_ROLES[i] != NULL; i++) {
        if (strcmp(USER_ROLES[i], role) == 0)
            return 0;
    }
    httpjson_error(req, 400, "invalid_request_error", "user_role",
                   "Invalid user_role: must be one of proxy_admin, proxy_admin_viewer, "
                   "internal_user, internal_user_viewer");
    return -1;
}

void manage_user_new(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    json_t *body = httpjson_body(req, 1 << 20);
    const char *user_id = NULL, *email = NULL, *alias = NULL, *role = "internal_user";
    char budget[MONEY_STR_MAX], id[IDS_UUID_LEN + 1], err[512];
    char *models = NULL, *teams = NULL, *metadata = NULL;
    bool has_budget = false;
    unsigned errnum = 0;
    MYSQL *db;
    (void)who;
    if (body == NULL)
        return;
    if (input_str(req, body, "user_id", INPUT_ID_MAX, &user_id) < 0 ||
        input_str(req, body, "user_email", INPUT_ID_MAX, &email) < 0 ||
        input_str(req, body, "user_alias", INPUT_ID_MAX, &alias) < 0 ||
        input_str(req, body, "user_role", 32, &role) < 0 || valid_role(req, role) < 0 ||
        input_money(req, body, "max_budget", budget, &has_budget) < 0 ||
        input_str_list(req, body, "models", &models) < 0 ||
        input_str_list(req, body, "teams", &teams) < 0 ||
        input_object(req, body, "metadata", &metadata) < 0 || (db = worker_db(w, req)) == NULL)
        goto out;
    if (user_id == NULL && ids_uuid4(id) == 0)
        user_id = id;
    struct db_param p[] = {DB_STR(user_id), DB_STR(email), DB_STR(alias), DB_STR(role),
                           DB_STR(has_budget ? budget : NULL), DB_STR(models), DB_STR(teams),
                           DB_STR(metadata)};
    if (db_exec(db, "INSERT INTO internal_users (user_id, user_email, user_alias, user_role,"
                    " max_budget, models, teams, metadata, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
                p, 8, NULL, NULL, &errnum, err, sizeof(err)) < 0) {
        if (errnum == ER_DUP_ENTRY)
            httpjson_error(req, 400, "invalid_request_error", "user_id",
                           "User id = %s already exists.", user_id);
        else
            worker_db_failed(w, req, err);
        goto out;
    }
    httpjson_reply(req, 200, json_pack("{s:s, s:o, s:o, s:s, s:o, s:i, s:o, s:o, s:o}",
        "user_id", user_id, "user_email", email ? json_string(email) : json_null(),
        "user_alias", alias ? json_string(alias) : json_null(), "user_role", role,
        "max_budget", money_or_null(has_budget, budget), "spend", 0, "models", parsed(models),
        "teams", parsed(teams), "metadata", parsed(metadata)));
out:
    free(models);
    free(teams);
    free(metadata);
    json_decref(body);
}

/* Keys name their internal user; like LiteLLM, a user named for the first
 * time is created, so its spend has a row to land in. */
static int ensure_user(MYSQL *db, const char *user_id, char *err, size_t errlen)
{
    struct db_param p[] = {DB_STR(user_id)};
    return db_exec(db, "INSERT INTO internal_users (user_id, created_at, updated_at)"
                       " VALUES (?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))"
                       " ON DUPLICATE KEY UPDATE user_id = user_id",
                   p, 1, NULL, NULL, NULL, err, errlen);
}

struct new_key {
    const char *alias, *user_id, *team_id, *custom, *duration, *budget_duration;
    char budget[MONEY_STR_MAX];
    bool has_budget, blocked;
    char *models, *metadata, *permissions;
    char raw[KEYHASH_RAW_MAX], token[KEYHASH_HEX_LEN + 1], name[16], created[40];
    struct period expiry, period;
    char expires[DB_DATETIME_MAX], period_start[DB_DATETIME_MAX], reset_at[DB_DATETIME_MAX];
};

/* now + d, for a key's `duration`: seconds to weeks exactly, months on the
 * calendar (UTC), like LiteLLM's expiry. */
static time_t expiry_after(time_t now, const struct period *d)
{
    static const long unit_s[] = {[PERIOD_SECOND] = 1, [PERIOD_MINUTE] = 60,
                                  [PERIOD_HOUR] = 3600, [PERIOD_DAY] = 86400,
                                  [PERIOD_WEEK] = 7 * 86400};
    if (d->unit != PERIOD_MONTH)
        return now + (time_t)(d->n * unit_s[d->unit]);
    struct tm tm;
    gmtime_r(&now, &tm);
    tm.tm_mon += (int)d->n;
    return timegm(&tm);
}

/* When the key expires and when its first budget period ends, from now. */
static void key_times(struct new_key *k)
{
    time_t now = time(NULL);
    if (k->duration != NULL)
        db_datetime((int64_t)expiry_after(now, &k->expiry) * 1000000, k->expires);
    if (k->budget_duration != NULL) {
        db_datetime((int64_t)now * 1000000, k->period_start);
        db_datetime((int64_t)period_next(&k->period, now) * 1000000, k->reset_at);
    }
}

static int insert_key(MYSQL *db, struct new_key *k, unsigned *errnum, char *err, size_t errlen)
{
    bool periodic = k->budget_duration != NULL;
    struct db_param p[] = {DB_STR(k->token), DB_STR(k->name), DB_STR(k->alias), DB_STR(k->user_id),
                           DB_STR(k->team_id), DB_STR(k->has_budget ? k->budget : NULL),
                           DB_STR(k->models), DB_STR(k->metadata), DB_STR(k->permissions),
                           DB_I64(k->blocked), DB_STR(k->duration ? k->expires : NULL),
                           DB_STR(k->budget_duration), DB_STR(periodic ? k->reset_at : NULL),
                           DB_STR(periodic ? k->period_start : NULL),
                           DB_STR(k->created), DB_STR(k->created)};
    if (db_begin(db, err, errlen) < 0)
        return -1;
    if ((k->user_id != NULL && ensure_user(db, k->user_id, err, errlen) < 0) ||
        db_exec(db, "INSERT INTO api_keys (token, key_name, key_alias, user_id, team_id, max_budget,"
                    " models, metadata, permissions, blocked, expires, budget_duration,"
                    " budget_reset_at, budget_period_start, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                p, 16, NULL, NULL, errnum, err, errlen) < 0 ||
        db_commit(db, err, errlen) < 0) {
        db_rollback(db);
        return -1;
    }
    return 0;
}

/* A DATETIME(6) text as RFC 3339 UTC, or null. */
static json_t *rfc3339(const char *t)
{
    char out[48];
    if (t == NULL || t[0] == '\0')
        return json_null();
    snprintf(out, sizeof(out), "%.10sT%.15s+00:00", t, t + 11); /* HH:MM:SS.ffffff */
    return json_string(out);
}

static json_t *key_answer(const struct new_key *k)
{
    return json_pack("{s:s, s:s, s:o, s:s, s:o, s:o, s:o, s:i, s:o, s:o, s:o, s:o, s:b, s:o,"
                     " s:o, s:o}",
        "key", k->raw, "key_name", k->name,
        "key_alias", k->alias ? json_string(k->alias) : json_null(), "token", k->token,
        "user_id", k->user_id ? json_string(k->user_id) : json_null(),
        "team_id", k->team_id ? json_string(k->team_id) : json_null(),
        "max_budget", money_or_null(k->has_budget, k->budget), "spend", 0,
        "models", parsed(k->models), "metadata", parsed(k->metadata),
        "permissions", parsed(k->permissions), "expires", rfc3339(k->expires),
        "blocked", k->blocked, "created_at", rfc3339(k->created),
        "budget_duration", k->budget_duration ? json_string(k->budget_duration) : json_null(),
        "budget_reset_at", rfc3339(k->reset_at));
}

static void now_text(char out[DB_DATETIME_MAX])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    db_datetime((int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000, out);
}

void manage_key_generate(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    json_t *body = httpjson_body(req, 1 << 20);
    struct new_key k = {0};
    char err[512];
    unsigned errnum = 0;
    MYSQL *db;
    (void)who;
    if (body == NULL)
        return;
    if (input_str(req, body, "key_alias", INPUT_ID_MAX, &k.alias) < 0 ||
        input_str(req, body, "user_id", INPUT_ID_MAX, &k.user_id) < 0 ||
        input_str(req, body, "team_id", INPUT_ID_MAX, &k.team_id) < 0 ||
        input_money(req, body, "max_budget", k.budget, &k.has_budget) < 0 ||
        input_str_list(req, body, "models", &k.models) < 0 ||
        input_object(req, body, "metadata", &k.metadata) < 0 ||
        input_object(req, body, "permissions", &k.permissions) < 0 ||
        input_bool(req, body, "blocked", &k.blocked) < 0 ||
        input_str(req, body, "key", KEYHASH_RAW_MAX - 1, &k.custom) < 0 ||
        input_duration(req, body, "duration", &k.expiry, &k.duration) < 0 ||
        input_duration(req, body, "budget_duration", &k.period, &k.budget_duration) < 0)
        goto out;
    if (k.custom != NULL && (strncmp(k.custom, "sk-", 3) != 0 || strlen(k.custom) < 8)) {
        httpjson_error(req, 400, "invalid_request_error", "key",
                       "Invalid key: a custom key starts with 'sk-' and has at least 8 characters");
        goto out;
    }
    if ((db = worker_db(w, req)) == NULL)
        goto out;
    if (k.team_id != NULL) {
        int found = exists(w, req, db, "SELECT 1 FROM teams WHERE team_id = ?", k.team_id);
        if (found < 0)
            goto out;
        if (!found) {
            httpjson_error(req, 400, "invalid_request_error", "team_id",
                           "Team not found, passed team_id=%s", k.team_id);
            goto out;
        }
    }
    if (k.custom != NULL)
        snprintf(k.raw, sizeof(k.raw), "%s", k.custom);
    if ((k.custom == NULL && keyhash_generate(k.raw) < 0) ||
        keyhash_sha256_hex(k.raw, strlen(k.raw), k.token) < 0) {
        httpjson_error(req, 500, "internal_error", NULL, "cannot generate a key");
        goto out;
    }
    keyhash_display_name(k.raw, k.name);
    now_text(k.created);
    key_times(&k);
    if (insert_key(db, &k, &errnum, err, sizeof(err)) < 0) {
        if (errnum == ER_DUP_ENTRY && strstr(err, "PRIMARY") != NULL)
            httpjson_error(req, 400, "invalid_request_error", "key", "This key already exists.");
        else if (errnum == ER_DUP_ENTRY)
            httpjson_error(req, 400, "invalid_request_error", "key_alias",
                           "Key with alias '%s' already exists.", k.alias ? k.alias : "");
        else
            worker_db_failed(w, req, err);
        goto out;
    }
    log_info("key generated token=%s alias=%s", k.token, k.alias ? k.alias : "-");
    httpjson_reply(req, 200, key_answer(&k));
out:
    OPENSSL_cleanse(k.raw, sizeof(k.raw));
    free(k.models);
    free(k.metadata);
    free(k.permissions);
    json_decref(body);
}

/* The SET list and parameters of /key/update for the fields k holds. */
struct key_changes {
    char sql[1024];
    struct db_param p[16];
    size_t n;
};

static void change(struct key_changes *c, const char *col, struct db_param v)
{
    size_t len = strlen(c->sql);
    snprintf(c->sql + len, sizeof(c->sql) - len, ", %s = ?", col);
    c->p[c->n++] = v;
}

/* Reads /key/update's optional fields into k (and the spend); builds c. */
static int read_changes(struct evhttp_request *req, json_t *body, struct new_key *k,
                        char spend[MONEY_STR_MAX], struct key_changes *c)
{
    bool has_spend = false;
    if (input_str(req, body, "key_alias", INPUT_ID_MAX, &k->alias) < 0 ||
        input_str(req, body, "user_id", INPUT_ID_MAX, &k->user_id) < 0 ||
        input_str(req, body, "team_id", INPUT_ID_MAX, &k->team_id) < 0 ||
        input_money(req, body, "max_budget", k->budget, &k->has_budget) < 0 ||
        input_money(req, body, "spend", spend, &has_spend) < 0 ||
        input_str_list(req, body, "models", &k->models) < 0 ||
        input_object(req, body, "metadata", &k->metadata) < 0 ||
        input_object(req, body, "permissions", &k->permissions) < 0 ||
        input_bool(req, body, "blocked", &k->blocked) < 0 ||
        input_duration(req, body, "duration", &k->expiry, &k->duration) < 0 ||
        input_duration(req, body, "budget_duration", &k->period, &k->budget_duration) < 0)
        return -1;
    key_times(k);
    snprintf(c->sql, sizeof(c->sql), "UPDATE api_keys SET updated_at = UTC_TIMESTAMP(6)");
    if (k->alias != NULL)
        change(c, "key_alias", DB_STR(k->alias));
    if (k->user_id != NULL)
        change(c, "user_id", DB_STR(k->user_id));
    if (k->team_id != NULL)
        change(c, "team_id", DB_STR(k->team_id));
    if (k->has_budget)
        change(c, "max_budget", DB_STR(k->budget));
    if (has_spend)
        change(c, "spend", DB_STR(spend));
    if (json_object_get(body, "models") != NULL)
        change(c, "models", DB_STR(k->models));
    if (json_object_get(body, "metadata") != NULL)
        change(c, "metadata", DB_STR(k->metadata));
    if (json_object_get(body, "permissions") != NULL)
        change(c, "permissions", DB_STR(k->permissions));
    if (json_is_boolean(json_object_get(body, "blocked")))
        change(c, "blocked", DB_I64(k->blocked));
    if (k->duration != NULL)
        change(c, "expires", DB_STR(k->expires));
    if (k->budget_duration != NULL) { /* a new period starts now */
        change(c, "budget_duration", DB_STR(k->budget_duration));
        change(c, "budget_period_start", DB_STR(k->period_start));
        change(c, "budget_reset_at", DB_STR(k->reset_at));
    }
    return 0;
}

void manage_key_update(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    json_t *body = httpjson_body(req, 1 << 20);
    struct new_key k = {0};
    struct key_changes c = {0};
    const char *key = NULL;
    char spend[MONEY_STR_MAX], token[KEYHASH_HEX_LEN + 1], err[512];
    unsigned errnum = 0;
    uint64_t found = 0;
    MYSQL *db;
    (void)who;
    if (body == NULL)
        return;
    if (input_str(req, body, "key", INPUT_ID_MAX, &key) < 0 ||
        read_changes(req, body, &k, spend, &c) < 0 || keys_token_of(req, key, token) < 0)
        goto out;
    if ((db = worker_db(w, req)) == NULL)
        goto out;
    int known = exists(w, req, db, "SELECT 1 FROM api_keys WHERE token = ?", token);
    if (known <= 0) {
        if (known == 0)
            httpjson_error(req, 404, "not_found_error", "key", "Key not found");
        goto out;
    }
    if (k.team_id != NULL) {
        int ok = exists(w, req, db, "SELECT 1 FROM teams WHERE team_id = ?", k.team_id);
        if (ok <= 0) {
            if (ok == 0)
                httpjson_error(req, 400, "invalid_request_error", "team_id",
                               "Team not found, passed team_id=%s", k.team_id);
            goto out;
        }
    }
    size_t len = strlen(c.sql);
    snprintf(c.sql + len, sizeof(c.sql) - len, " WHERE token = ?");
    c.p[c.n++] = DB_STR(token);
    if (db_begin(db, err, sizeof(err)) < 0 ||
        (k.user_id != NULL && ensure_user(db, k.user_id, err, sizeof(err)) < 0) ||
        db_exec(db, c.sql, c.p, c.n, NULL, &found, &errnum, err, sizeof(err)) < 0 ||
        db_commit(db, err, sizeof(err)) < 0) {
        db_rollback(db);
        if (errnum == ER_DUP_ENTRY)
            httpjson_error(req, 400, "invalid_request_error", "key_alias",
                           "Key with alias '%s' already exists.", k.alias ? k.alias : "");
        else
            worker_db_failed(w, req, err);
        goto out;
    }
    if (found == 0) { /* deleted meanwhile */
        httpjson_error(req, 404, "not_found_error", "key", "Key not found");
        goto out;
    }
    log_info("key updated token=%s", token);
    keys_answer_info(w, req, db, token);
out:
    free(k.models);
    free(k.metadata);
    free(k.permissions);
    json_decref(body);
}
