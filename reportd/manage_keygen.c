/* manage_keygen.c - creating and changing virtual keys: /key/generate,
 * /key/update and /key/regenerate, in LiteLLM's shapes.
 *
 * A raw key is shown once, in the answer that made it; only its SHA-256 is
 * stored. Teams and shared budgets a key names must exist; an internal user
 * named for the first time is created (as LiteLLM does). The config's
 * defaults and caps are applied to the body first (manage_key_caps.c).
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "httpjson.h"
#include "input.h"
#include "keyhash.h"
#include "log.h"
#include "manage.h"
#include "manage_key_caps.h"


/* The fields /key/generate and /key/update take. */
struct key_fields {
    const char *alias, *user_id, *team_id, *budget_id, *duration;
    char budget[MONEY_STR_MAX], soft[MONEY_STR_MAX], spend[MONEY_STR_MAX];
    bool has_budget, has_soft, has_spend, blocked;
    int64_t tpm, rpm, parallel;
    bool has_tpm, has_rpm, has_parallel;
    char *models, *metadata, *permissions, *tags;
    struct period expiry;
    char expires[DB_DATETIME_MAX];
    struct manage_period period;
};

/* A new key: its fields plus what is minted for it. */
struct new_key {
    struct key_fields f;
    const char *custom;
    char raw[KEYHASH_RAW_MAX], token[KEYHASH_HEX_LEN + 1], name[16], created[DB_DATETIME_MAX];
};

static void fields_free(struct key_fields *f)
{
    free(f->models);
    free(f->metadata);
    free(f->permissions);
    free(f->tags);
}

static int read_fields(struct evhttp_request *req, json_t *body, struct key_fields *f)
{
    if (input_str(req, body, "key_alias", INPUT_ID_MAX, &f->alias) < 0 ||
        input_str(req, body, "user_id", INPUT_ID_MAX, &f->user_id) < 0 ||
        input_str(req, body, "team_id", INPUT_ID_MAX, &f->team_id) < 0 ||
        input_str(req, body, "budget_id", INPUT_ID_MAX, &f->budget_id) < 0 ||
        input_money(req, body, "max_budget", f->budget, &f->has_budget) < 0 ||
        input_money(req, body, "soft_budget", f->soft, &f->has_soft) < 0 ||
        input_money(req, body, "spend", f->spend, &f->has_spend) < 0 ||
        input_int(req, body, "tpm_limit", 0, MANAGE_LIMIT_MAX, &f->tpm, &f->has_tpm) < 0 ||
        input_int(req, body, "rpm_limit", 0, MANAGE_LIMIT_MAX, &f->rpm, &f->has_rpm) < 0 ||
        input_int(req, body, "max_parallel_requests", 0, MANAGE_LIMIT_MAX, &f->parallel,
                  &f->has_parallel) < 0 ||
        input_str_list(req, body, "models", &f->models) < 0 ||
        input_str_list(req, body, "tags", &f->tags) < 0 ||
        input_object(req, body, "metadata", &f->metadata) < 0 ||
        input_object(req, body, "permissions", &f->permissions) < 0 ||
        input_bool(req, body, "blocked", &f->blocked) < 0 ||
        input_duration(req, body, "duration", &f->expiry, &f->duration) < 0 ||
        manage_period_read(req, body, "budget_duration", &f->period) < 0)
        return -1;
    if (f->duration != NULL) { /* now + duration, months on the calendar as LiteLLM's expiry */
        long long now = (long long)time(NULL);
        db_datetime((int64_t)(now + config_duration_s(f->duration, now)) * 1000000, f->expires);
    }
    return 0;
}

/* The team and shared budget a key names must exist (400 naming them). */
static int check_refs(struct worker *w, struct evhttp_request *req, MYSQL *db,
                      const struct key_fields *f)
{
    return (f->team_id != NULL &&
            manage_require(w, req, db, "SELECT 1 FROM teams WHERE team_id = ?", f->team_id, 400,
                           "team_id", "Team") < 0) ||
                   (f->budget_id != NULL &&
                    manage_require(w, req, db, "SELECT 1 FROM budgets WHERE budget_id = ?",
                                   f->budget_id, 400, "budget_id", "Budget") < 0)
               ? -1
               : 0;
}

static int insert_key(MYSQL *db, struct new_key *k, unsigned *errnum, char *err, size_t errlen)
{
    const struct key_fields *f = &k->f;
    bool periodic = f->period.text != NULL;
    struct db_param p[] = {
        DB_STR(k->token), DB_STR(k->name), DB_STR(f->alias), DB_STR(f->user_id),
        DB_STR(f->team_id), DB_STR(f->budget_id), DB_STR(f->has_budget ? f->budget : NULL),
        DB_STR(f->has_soft ? f->soft : NULL), DB_STR(f->models), DB_STR(f->metadata),
        DB_STR(f->tags), DB_STR(f->permissions), DB_I64(f->blocked),
        DB_STR(f->duration ? f->expires : NULL), DB_STR(f->period.text),
        DB_STR(periodic ? f->period.reset_at : NULL), DB_STR(periodic ? f->period.start : NULL),
        manage_opt_int(f->has_tpm, f->tpm), manage_opt_int(f->has_rpm, f->rpm),
        manage_opt_int(f->has_parallel, f->parallel), DB_STR(k->created), DB_STR(k->created)};
    if (db_begin(db, err, errlen) < 0)
        return -1;
    if ((f->user_id != NULL && manage_ensure_user(db, f->user_id, err, errlen) < 0) ||
        db_exec(db, "INSERT INTO api_keys (token, key_name, key_alias, user_id, team_id, budget_id,"
                    " max_budget, soft_budget, models, metadata, tags, permissions, blocked,"
                    " expires, budget_duration, budget_reset_at, budget_period_start, tpm_limit,"
                    " rpm_limit, max_parallel_requests, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                p, sizeof(p) / sizeof(p[0]), NULL, NULL, errnum, err, errlen) < 0 ||
        db_commit(db, err, errlen) < 0) {
        db_rollback(db);
        return -1;
    }
    return 0;
}

static json_t *opt_json_int(bool present, int64_t v)
{
    return present ? json_integer(v) : json_null();
}

static json_t *key_answer(const struct new_key *k)
{
    const struct key_fields *f = &k->f;
    json_t *a = json_pack(
        "{s:s, s:s, s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:i, s:o, s:o, s:o, s:o, s:o, s:b, s:o,"
        " s:o, s:o}",
        "key", k->raw, "key_name", k->name, "key_alias", httpjson_str_or_null(f->alias),
        "token", k->token, "user_id", httpjson_str_or_null(f->user_id),
        "team_id", httpjson_str_or_null(f->team_id), "budget_id", httpjson_str_or_null(f->budget_id),
        "max_budget", manage_money_or_null(f->has_budget, f->budget),
        "soft_budget", manage_money_or_null(f->has_soft, f->soft), "spend", 0,
        "models", manage_parsed(f->models), "metadata", manage_parsed(f->metadata),
        "tags", manage_parsed(f->tags), "permissions", manage_parsed(f->permissions),
        "expires", manage_rfc3339(f->duration ? f->expires : NULL), "blocked", f->blocked,
        "created_at", manage_rfc3339(k->created),
        "budget_duration", httpjson_str_or_null(f->period.text),
        "budget_reset_at", manage_rfc3339(f->period.text ? f->period.reset_at : NULL));
    if (a != NULL &&
        (json_object_set_new(a, "tpm_limit", opt_json_int(f->has_tpm, f->tpm)) < 0 ||
         json_object_set_new(a, "rpm_limit", opt_json_int(f->has_rpm, f->rpm)) < 0 ||
         json_object_set_new(a, "max_parallel_requests",
                             opt_json_int(f->has_parallel, f->parallel)) < 0)) {
        json_decref(a);
        return NULL;
    }
    return a;
}

/* A custom raw key (`key` of /key/generate, `new_key` of /key/regenerate),
 * or a fresh random one; then its hash and display name. */
static int mint(struct evhttp_request *req, struct new_key *k, const char *param)
{
    if (k->custom != NULL && (strncmp(k->custom, "sk-", 3) != 0 || strlen(k->custom) < 8)) {
        httpjson_error(req, 400, "invalid_request_error", param,
                       "Invalid %s: a custom key starts with 'sk-' and has at least 8 characters",
                       param);
        return -1;
    }
    if (k->custom != NULL)
        snprintf(k->raw, sizeof(k->raw), "%s", k->custom);
    if ((k->custom == NULL && keyhash_generate(k->raw) < 0) ||
        keyhash_sha256_hex(k->raw, strlen(k->raw), k->token) < 0) {
        httpjson_error(req, 500, "internal_error", NULL, "cannot generate a key");
        return -1;
    }
    keyhash_display_name(k->raw, k->name);
    return 0;
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
    if (key_caps_generate_and_reply(req, w->cfg, body) < 0 || read_fields(req, body, &k.f) < 0 ||
        input_str(req, body, "key", KEYHASH_RAW_MAX - 1, &k.custom) < 0)
        goto out;
    if (k.f.has_spend) {
        httpjson_error(req, 400, "invalid_request_error", "spend",
                       "spend cannot be set on a new key");
        goto out;
    }
    if ((db = worker_db(w, req)) == NULL || check_refs(w, req, db, &k.f) < 0 ||
        mint(req, &k, "key") < 0)
        goto out;
    manage_now_text(k.created);
    if (insert_key(db, &k, &errnum, err, sizeof(err)) < 0) {
        if (errnum == ER_DUP_ENTRY && strstr(err, "PRIMARY") != NULL)
            httpjson_error(req, 400, "invalid_request_error", "key", "This key already exists.");
        else if (errnum == ER_DUP_ENTRY)
            httpjson_error(req, 400, "invalid_request_error", "key_alias",
                           "Key with alias '%s' already exists.", k.f.alias ? k.f.alias : "");
        else
            worker_db_failed(w, req, err);
        goto out;
    }
    log_info("key generated token=%s alias=%s", k.token, k.f.alias ? k.f.alias : "-");
    httpjson_reply(req, 200, key_answer(&k));
out:
    OPENSSL_cleanse(k.raw, sizeof(k.raw));
    fields_free(&k.f);
    json_decref(body);
}

/* The SET list of /key/update: the fields the body gives, nothing else. */
static void changes_of(json_t *body, const struct key_fields *f, struct manage_set *s)
{
    manage_set_init(s, "api_keys");
    if (f->alias != NULL)
        manage_set(s, "key_alias", DB_STR(f->alias));
    if (f->user_id != NULL)
        manage_set(s, "user_id", DB_STR(f->user_id));
    if (f->team_id != NULL)
        manage_set(s, "team_id", DB_STR(f->team_id));
    if (f->budget_id != NULL)
        manage_set(s, "budget_id", DB_STR(f->budget_id));
    if (f->has_budget)
        manage_set(s, "max_budget", DB_STR(f->budget));
    if (f->has_soft)
        manage_set(s, "soft_budget", DB_STR(f->soft));
    if (f->has_spend)
        manage_set(s, "spend", DB_STR(f->spend));
    if (json_object_get(body, "tpm_limit") != NULL) /* null clears a limit */
        manage_set(s, "tpm_limit", manage_opt_int(f->has_tpm, f->tpm));
    if (json_object_get(body, "rpm_limit") != NULL)
        manage_set(s, "rpm_limit", manage_opt_int(f->has_rpm, f->rpm));
    if (json_object_get(body, "max_parallel_requests") != NULL)
        manage_set(s, "max_parallel_requests", manage_opt_int(f->has_parallel, f->parallel));
    if (json_object_get(body, "models") != NULL)
        manage_set(s, "models", DB_STR(f->models));
    if (json_object_get(body, "tags") != NULL)
        manage_set(s, "tags", DB_STR(f->tags));
    if (json_object_get(body, "metadata") != NULL)
        manage_set(s, "metadata", DB_STR(f->metadata));
    if (json_object_get(body, "permissions") != NULL)
        manage_set(s, "permissions", DB_STR(f->permissions));
    if (json_is_boolean(json_object_get(body, "blocked")))
        manage_set(s, "blocked", DB_I64(f->blocked));
    if (f->duration != NULL)
        manage_set(s, "expires", DB_STR(f->expires));
    if (f->period.text != NULL) /* a new period starts now */
        manage_set_period(s, &f->period);
}

/* Runs the update s of key token (with the user created first, and the
 * spend recounted when a new period starts); answers errors. */
static int apply(struct worker *w, struct evhttp_request *req, MYSQL *db,
                 const struct key_fields *f, struct manage_set *s, const char *token)
{
    char err[512];
    unsigned errnum = 0;
    uint64_t found = 0;
    const char *user_id = f != NULL ? f->user_id : NULL, *alias = f != NULL ? f->alias : NULL;
    if (db_begin(db, err, sizeof(err)) < 0 ||
        (user_id != NULL && manage_ensure_user(db, user_id, err, sizeof(err)) < 0) ||
        manage_set_run(db, s, "token", token, &found, &errnum, err, sizeof(err)) < 0 ||
        (f != NULL && !f->has_spend &&
         manage_recount(db, "api_keys", "token", "api_key", token, &f->period, err,
                        sizeof(err)) < 0) ||
        db_commit(db, err, sizeof(err)) < 0) {
        db_rollback(db);
        if (errnum == ER_DUP_ENTRY && alias != NULL)
            httpjson_error(req, 400, "invalid_request_error", "key_alias",
                           "Key with alias '%s' already exists.", alias);
        else if (errnum == ER_DUP_ENTRY)
            httpjson_error(req, 400, "invalid_request_error", "new_key",
                           "This key already exists.");
        else
            worker_db_failed(w, req, err);
        return -1;
    }
    if (found == 0) { /* deleted meanwhile */
        httpjson_error(req, 404, "not_found_error", "key", "Key not found");
        return -1;
    }
    return 0;
}

void manage_key_update(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    json_t *body = httpjson_body(req, 1 << 20);
    struct key_fields f = {0};
    struct manage_set s;
    const char *key = NULL;
    char token[KEYHASH_HEX_LEN + 1];
    MYSQL *db;
    (void)who;
    if (body == NULL)
        return;
    if (input_str(req, body, "key", INPUT_ID_MAX, &key) < 0 ||
        key_caps_check_and_reply(req, w->cfg, body) < 0 || read_fields(req, body, &f) < 0 ||
        keys_token_of(req, key, token) < 0 || (db = worker_db(w, req)) == NULL ||
        manage_require(w, req, db, "SELECT 1 FROM api_keys WHERE token = ?", token, 404, "key",
                       "Key") < 0 ||
        check_refs(w, req, db, &f) < 0)
        goto out;
    changes_of(body, &f, &s);
    if (apply(w, req, db, &f, &s, token) < 0)
        goto out;
    log_info("key updated token=%s", token);
    keys_answer_info(w, req, db, token);
out:
    fields_free(&f);
    json_decref(body);
}

/* /key/regenerate: a new raw key for the same row (settings, budgets and
 * spend kept); the old key stops working. Logs keep the old hash. A body
 * value over a config cap is refused, as LiteLLM does since its #26340. */
void manage_key_regenerate(struct worker *w, struct evhttp_request *req,
                           const struct caller *who)
{
    json_t *body = httpjson_body(req, 1 << 20);
    struct new_key k = {0};
    struct manage_set s;
    const char *key = NULL;
    char token[KEYHASH_HEX_LEN + 1];
    MYSQL *db;
    (void)who;
    if (body == NULL)
        return;
    if (input_str(req, body, "key", INPUT_ID_MAX, &key) < 0 ||
        key_caps_check_and_reply(req, w->cfg, body) < 0 ||
        input_str(req, body, "new_key", KEYHASH_RAW_MAX - 1, &k.custom) < 0 ||
        keys_token_of(req, key, token) < 0 || (db = worker_db(w, req)) == NULL ||
        manage_require(w, req, db, "SELECT 1 FROM api_keys WHERE token = ?", token, 404, "key",
                       "Key") < 0 ||
        mint(req, &k, "new_key") < 0)
        goto out;
    manage_set_init(&s, "api_keys");
    manage_set(&s, "token", DB_STR(k.token));
    manage_set(&s, "key_name", DB_STR(k.name));
    if (apply(w, req, db, NULL, &s, token) < 0)
        goto out;
    log_info("key regenerated token=%s new_token=%s", token, k.token);
    keys_answer_regenerated(w, req, db, k.token, k.raw);
out:
    OPENSSL_cleanse(k.raw, sizeof(k.raw));
    json_decref(body);
}
