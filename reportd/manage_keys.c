/* manage_keys.c - reading, listing, blocking and deleting virtual keys:
 * /key/info, /key/list, /key/block, /key/unblock, /key/delete, in LiteLLM's
 * shapes. A key may be named by its raw value (hashed first) or its hash;
 * answers never carry a raw key, only the hash ("token").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "httpjson.h"
#include "input.h"
#include "keyhash.h"
#include "log.h"
#include "manage.h"

#define LIST_PAGE_MAX 1000
#define LIST_PAGE_DEFAULT 100
#define DELETE_MAX 1000 /* keys or aliases per /key/delete */

#define SQL_INFO_COLS \
    "SELECT token, key_name, key_alias, user_id, team_id, max_budget, spend, models, metadata," \
    " permissions, blocked, " REPORTD_SQL_RFC3339("expires") ", " \
    REPORTD_SQL_RFC3339("created_at") ", " REPORTD_SQL_RFC3339("updated_at") ", budget_duration, " \
    REPORTD_SQL_RFC3339("budget_reset_at") ", soft_budget, tags, budget_id, tpm_limit, rpm_limit," \
    " max_parallel_requests FROM api_keys"
static const char SQL_INFO[] = SQL_INFO_COLS " WHERE token = ?";

/* One api_keys row of SQL_INFO as LiteLLM's key info object. */
static json_t *info_of(const struct db_result *r, size_t i)
{
    json_t *o = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b, s:o, s:s, s:s,"
                     " s:o, s:o}",
        "token", db_cell(r, i, 0), "key_name", db_cell(r, i, 1),
        "key_alias", httpjson_str_or_null(db_cell(r, i, 2)),
        "user_id", httpjson_str_or_null(db_cell(r, i, 3)),
        "team_id", httpjson_str_or_null(db_cell(r, i, 4)),
        "max_budget", httpjson_money_text(db_cell(r, i, 5)),
        "spend", httpjson_money_text(db_cell(r, i, 6)),
        "models", manage_parsed(db_cell(r, i, 7)), "metadata", manage_parsed(db_cell(r, i, 8)),
        "permissions", manage_parsed(db_cell(r, i, 9)),
        "blocked", strcmp(db_cell(r, i, 10), "0") != 0,
        "expires", httpjson_str_or_null(db_cell(r, i, 11)), "created_at", db_cell(r, i, 12),
        "updated_at", db_cell(r, i, 13), "budget_duration", httpjson_str_or_null(db_cell(r, i, 14)),
        "budget_reset_at", httpjson_str_or_null(db_cell(r, i, 15)));
    if (o != NULL &&
        (json_object_set_new(o, "soft_budget", httpjson_money_text(db_cell(r, i, 16))) < 0 ||
         json_object_set_new(o, "tags", manage_parsed(db_cell(r, i, 17))) < 0 ||
         json_object_set_new(o, "budget_id", httpjson_str_or_null(db_cell(r, i, 18))) < 0 ||
         json_object_set_new(o, "tpm_limit", manage_int_or_null(db_cell(r, i, 19))) < 0 ||
         json_object_set_new(o, "rpm_limit", manage_int_or_null(db_cell(r, i, 20))) < 0 ||
         json_object_set_new(o, "max_parallel_requests",
                             manage_int_or_null(db_cell(r, i, 21))) < 0)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The key's tier (its budget_id's row, whose rpm / tpm limits are the
 * key's) as LiteLLM's litellm_budget_table, into info; -1 on a database
 * error (err filled), -2 out of memory. */
static int add_tier(MYSQL *db, json_t *info, char *err, size_t errlen)
{
    const char *id = json_string_value(json_object_get(info, "budget_id"));
    struct db_result *r = NULL;
    struct db_param p[] = {DB_STR(id)};
    json_t *tier = json_null();
    if (id != NULL) {
        if (db_exec(db, BUDGETS_SQL_ROW, p, 1, &r, NULL, NULL, err, errlen) < 0)
            return -1;
        tier = r->nrows > 0 ? budgets_json(r, 0, 0) : json_null();
        db_result_free(r);
    }
    return json_object_set_new(info, "litellm_budget_table", tier) < 0 ? -2 : 0;
}

/* The info object of key token into *out (NULL: not found); -1 answered. */
static int load_info(struct worker *w, struct evhttp_request *req, MYSQL *db, const char *token,
                     json_t **out)
{
    struct db_result *r = NULL;
    struct db_param p[] = {DB_STR(token)};
    char err[512];
    int rc;
    *out = NULL;
    if (db_exec(db, SQL_INFO, p, 1, &r, NULL, NULL, err, sizeof(err)) < 0) {
        worker_db_failed(w, req, err);
        return -1;
    }
    if (r->nrows == 0)
        httpjson_error(req, 404, "not_found_error", "key", "Key not found");
    else if ((*out = info_of(r, 0)) == NULL)
        httpjson_error(req, 500, "internal_error", NULL, "out of memory");
    db_result_free(r);
    if (*out != NULL && (rc = add_tier(db, *out, err, sizeof(err))) < 0) {
        json_decref(*out);
        *out = NULL;
        if (rc == -1)
            worker_db_failed(w, req, err);
        else
            httpjson_error(req, 500, "internal_error", NULL, "out of memory");
    }
    return *out != NULL ? 0 : -1;
}

void keys_answer_info(struct worker *w, struct evhttp_request *req, MYSQL *db,
                      const char *token)
{
    json_t *info;
    if (load_info(w, req, db, token, &info) == 0)
        httpjson_reply(req, 200, json_pack("{s:s, s:o}", "key", token, "info", info));
}

void keys_answer_regenerated(struct worker *w, struct evhttp_request *req, MYSQL *db,
                             const char *token, const char *raw)
{
    json_t *info;
    if (load_info(w, req, db, token, &info) < 0)
        return;
    if (json_object_set_new(info, "key", json_string(raw)) < 0) {
        json_decref(info);
        httpjson_error(req, 500, "internal_error", NULL, "out of memory");
        return;
    }
    httpjson_reply(req, 200, info);
}

int keys_token_of(struct evhttp_request *req, const char *key, char token[KEYHASH_HEX_LEN + 1])
{
    if (key == NULL) {
        httpjson_error(req, 400, "invalid_request_error", "key", "key is required");
        return -1;
    }
    if (keyhash_normalize(key, token) < 0) {
        httpjson_error(req, 500, "internal_error", NULL, "cannot hash the key");
        return -1;
    }
    return 0;
}

/* An internal user's key may read only its user's keys: 403 otherwise. */
static int own_key(struct worker *w, struct evhttp_request *req, MYSQL *db,
                   const struct caller *who, const char *token)
{
    if (!who->self_only || strcmp(token, who->token) == 0)
        return 0;
    struct db_result *r = NULL;
    struct db_param p[] = {DB_STR(token), DB_STR(who->user_id)};
    char err[512];
    if (db_exec(db, "SELECT 1 FROM api_keys WHERE token = ? AND user_id = ?", p, 2, &r, NULL,
                NULL, err, sizeof(err)) < 0) {
        worker_db_failed(w, req, err);
        return -1;
    }
    size_t n = r->nrows;
    db_result_free(r);
    if (n == 0)
        httpjson_error(req, 403, "permission_error", "key",
                       "An internal user's key can only read its own user's keys");
    return n > 0 ? 0 : -1;
}

/* GET /key/info?key=: without key, a virtual key reads itself (as LiteLLM). */
void manage_key_info(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    struct query *q = query_parse(req);
    const char *key;
    char token[KEYHASH_HEX_LEN + 1];
    MYSQL *db;
    if (q == NULL)
        return;
    if (query_str(req, q, "key", INPUT_ID_MAX, &key) < 0)
        goto out;
    if (key == NULL && !who->master)
        memcpy(token, who->token, sizeof(token));
    else if (keys_token_of(req, key, token) < 0)
        goto out;
    if ((db = worker_db(w, req)) != NULL && own_key(w, req, db, who, token) == 0)
        keys_answer_info(w, req, db, token);
out:
    query_free(q);
}

#define SQL_LIST_WHERE " WHERE (? IS NULL OR user_id = ?) AND (? IS NULL OR team_id = ?)"

/* The page of keys r as hashes, or (full) as info objects; NULL out of memory. */
static json_t *list_of(const struct db_result *r, bool full)
{
    json_t *keys = json_array();
    for (size_t i = 0; keys != NULL && i < r->nrows; i++) {
        if (json_array_append_new(keys, full ? info_of(r, i) : json_string(db_cell(r, i, 0))) < 0) {
            json_decref(keys);
            keys = NULL;
        }
    }
    return keys;
}

/* GET /key/list?page&size[&user_id][&team_id][&return_full_object]: key
 * hashes, paginated, or with return_full_object=true each key's info object
 * (as LiteLLM); an internal user's key lists its own user's keys only. */
void manage_key_list(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    struct query *q = query_parse(req);
    struct db_result *r = NULL, *count = NULL;
    const char *user_id, *team_id, *full;
    long page, size;
    char err[512];
    MYSQL *db;
    if (q == NULL)
        return;
    if (query_int(req, q, "page", 1, 1000000, 1, &page) < 0 ||
        query_int(req, q, "size", 1, LIST_PAGE_MAX, LIST_PAGE_DEFAULT, &size) < 0 ||
        query_str(req, q, "user_id", INPUT_ID_MAX, &user_id) < 0 ||
        query_str(req, q, "team_id", INPUT_ID_MAX, &team_id) < 0 ||
        query_str(req, q, "return_full_object", 8, &full) < 0)
        goto out;
    if (full != NULL && strcmp(full, "true") != 0 && strcmp(full, "false") != 0) {
        httpjson_error(req, 400, "invalid_request_error", "return_full_object",
                       "Invalid return_full_object: must be true or false");
        goto out;
    }
    bool full_object = full != NULL && strcmp(full, "true") == 0;
    if (who->self_only && user_id != NULL && strcmp(user_id, who->user_id) != 0) {
        httpjson_error(req, 403, "permission_error", "user_id",
                       "An internal user's key can only list its own user's keys");
        goto out;
    }
    if (who->self_only)
        user_id = who->user_id;
    if ((db = worker_db(w, req)) == NULL)
        goto out;
    struct db_param p[] = {DB_STR(user_id), DB_STR(user_id), DB_STR(team_id), DB_STR(team_id),
                           DB_I64(size), DB_I64((page - 1) * size)};
    if (db_exec(db, "SELECT COUNT(*) FROM api_keys" SQL_LIST_WHERE, p, 4, &count, NULL, NULL, err,
                sizeof(err)) < 0 ||
        db_exec(db, full_object ? SQL_INFO_COLS SQL_LIST_WHERE
                                  " ORDER BY created_at, token LIMIT ? OFFSET ?"
                                : "SELECT token FROM api_keys" SQL_LIST_WHERE
                                  " ORDER BY created_at, token LIMIT ? OFFSET ?",
                p, 6, &r, NULL, NULL, err, sizeof(err)) < 0) {
        worker_db_failed(w, req, err);
        goto out;
    }
    long long total = strtoll(db_cell(count, 0, 0), NULL, 10);
    json_t *keys = list_of(r, full_object);
    if (keys == NULL) {
        httpjson_error(req, 500, "internal_error", NULL, "out of memory");
        goto out;
    }
    httpjson_reply(req, 200, json_pack("{s:o, s:I, s:I, s:I}", "keys", keys, "total_count",
                                       (json_int_t)total, "current_page", (json_int_t)page,
                                       "total_pages", (json_int_t)((total + size - 1) / size)));
out:
    db_result_free(r);
    db_result_free(count);
    query_free(q);
}

/* /key/block and /key/unblock: body {"key"}; answers the key's info. */
static void set_blocked(struct worker *w, struct evhttp_request *req, bool blocked)
{
    json_t *body = httpjson_body(req, 1 << 16);
    const char *key = NULL;
    char token[KEYHASH_HEX_LEN + 1], err[512];
    uint64_t changed = 0;
    MYSQL *db;
    if (body == NULL)
        return;
    if (input_str(req, body, "key", INPUT_ID_MAX, &key) < 0 || keys_token_of(req, key, token) < 0)
        goto out;
    if ((db = worker_db(w, req)) == NULL)
        goto out;
    struct db_param p[] = {DB_I64(blocked), DB_STR(token)};
    if (db_exec(db, "UPDATE api_keys SET blocked = ?, updated_at = UTC_TIMESTAMP(6)"
                    " WHERE token = ?", p, 2, NULL, &changed, NULL, err, sizeof(err)) < 0) {
        worker_db_failed(w, req, err);
        goto out;
    }
    log_info("key %s token=%s", blocked ? "blocked" : "unblocked", token);
    keys_answer_info(w, req, db, token);
out:
    json_decref(body);
}

void manage_key_block(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    (void)who;
    set_blocked(w, req, true);
}

void manage_key_unblock(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    (void)who;
    set_blocked(w, req, false);
}

/* The string array body[name] (at most DELETE_MAX), or NULL when absent;
 * -1 answered when it is not one. */
static int str_array(struct evhttp_request *req, json_t *body, const char *name, json_t **out)
{
    json_t *v = json_object_get(body, name);
    *out = NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    bool ok = json_is_array(v) && json_array_size(v) <= DELETE_MAX;
    for (size_t i = 0; ok && i < json_array_size(v); i++)
        ok = json_is_string(json_array_get(v, i)) &&
             json_string_length(json_array_get(v, i)) <= INPUT_ID_MAX &&
             strlen(json_string_value(json_array_get(v, i))) ==
                 json_string_length(json_array_get(v, i)); /* no NUL to cut it short */
    if (!ok) {
        httpjson_error(req, 400, "invalid_request_error", name,
                       "Invalid %s: must be a list of at most %d strings", name, DELETE_MAX);
        return -1;
    }
    *out = v;
    return 0;
}

void manage_key_delete(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    json_t *body = httpjson_body(req, 1 << 20), *keys, *aliases, *deleted = json_array();
    struct db_result *r = NULL;
    char token[KEYHASH_HEX_LEN + 1], err[512] = "out of memory";
    MYSQL *db = NULL;
    (void)who;
    if (body == NULL || deleted == NULL)
        goto out;
    if (str_array(req, body, "keys", &keys) < 0 ||
        str_array(req, body, "key_aliases", &aliases) < 0)
        goto out;
    if (keys == NULL && aliases == NULL) {
        httpjson_error(req, 400, "invalid_request_error", "keys",
                       "keys or key_aliases is required");
        goto out;
    }
    if ((db = worker_db(w, req)) == NULL || db_begin(db, err, sizeof(err)) < 0)
        goto failed;
    json_t *list = keys != NULL ? keys : aliases;
    for (size_t i = 0; i < json_array_size(list); i++) {
        const char *name = json_string_value(json_array_get(list, i));
        if (keys != NULL && keyhash_normalize(name, token) < 0) {
            snprintf(err, sizeof(err), "cannot hash a key");
            goto failed;
        }
        struct db_param p[] = {DB_STR(keys != NULL ? token : name)};
        db_result_free(r);
        r = NULL;
        if (db_exec(db, keys != NULL ? "SELECT token FROM api_keys WHERE token = ? FOR UPDATE"
                                     : "SELECT token FROM api_keys WHERE key_alias = ? FOR UPDATE",
                    p, 1, &r, NULL, NULL, err, sizeof(err)) < 0)
            goto failed;
        if (r->nrows == 0)
            continue;
        struct db_param d[] = {DB_STR(db_cell(r, 0, 0))};
        if (db_exec(db, "DELETE FROM api_keys WHERE token = ?", d, 1, NULL, NULL, NULL, err,
                    sizeof(err)) < 0)
            goto failed;
        json_array_append_new(deleted, json_string(name));
    }
    if (db_commit(db, err, sizeof(err)) < 0)
        goto failed;
    log_info("keys deleted: %zu", json_array_size(deleted));
    httpjson_reply(req, 200, json_pack("{s:O}", "deleted_keys", deleted));
    goto out;
failed:
    if (db != NULL) {
        db_rollback(db);
        worker_db_failed(w, req, err);
    }
out:
    db_result_free(r);
    json_decref(deleted);
    json_decref(body);
}
