/* ledger.c - accountd's writer: prices events and commits them to MariaDB.
 *
 * Exactly-once: spend_logs.request_id is the primary key. A batch runs in
 * ONE transaction; each event's row is inserted with ON DUPLICATE KEY doing
 * nothing, and only when the insert really added the row (affected rows 1)
 * are the spend counters of the key, internal user, team, end user and tags
 * incremented, in that fixed order (tags sorted), so concurrent writers
 * take row locks in the same order. A redelivered event adds no spend.
 *
 * Failures: deadlocks and lost connections retry the whole batch with
 * backoff (reconnecting as needed) and nothing is acknowledged meanwhile. A
 * batch refused for its data is split into single events, and an event the
 * database refuses on its own goes whole into rejected_events: never lost.
 */
#include "ledger.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "log.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 5000

struct ledger *ledger_new(const struct db_config *dbcfg, const struct price_table *prices,
                          char *err, size_t errlen)
{
    struct ledger *l = calloc(1, sizeof(*l));
    if (l == NULL || (l->warned_unpriced = strmap_new()) == NULL) {
        snprintf(err, errlen, "out of memory");
        free(l);
        return NULL;
    }
    l->dbcfg = dbcfg;
    l->prices = prices;
    if ((l->db = db_connect(dbcfg, err, errlen)) == NULL) {
        ledger_free(l);
        return NULL;
    }
    return l;
}

void ledger_free(struct ledger *l)
{
    if (l == NULL)
        return;
    if (l->db != NULL)
        mysql_close(l->db);
    strmap_free(l->warned_unpriced, NULL);
    free(l);
}

static void fmt_time(int64_t us, char out[32])
{
    time_t s = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%06d", (int)(us % 1000000));
}

/* Warns once per model, so an unpriced model is loud but not a flood. */
static void warn_unpriced(struct ledger *l, const char *model)
{
    int err;
    if (strmap_get(l->warned_unpriced, model) != NULL)
        return;
    strmap_put(l->warned_unpriced, model, (void *)1, &err);
    log_warn("model %s has no price: its requests are logged with cost 0 and pricing=unpriced",
             model);
}

/* The event's cost as exact decimal text, and how it was priced. */
static const char *price_event(struct ledger *l, const Tollgate__UsageEvent *e,
                               char cost[MONEY_STR_MAX])
{
    struct price_custom custom = {.base_model = e->base_model};
    struct usage u = {e->prompt_tokens, e->completion_tokens, e->total_tokens,
                      e->cache_read_tokens, e->cache_creation_tokens};
    money_t m = 0;
    char err[256];
    custom.has_input = e->input_cost_per_token != NULL &&
                       money_parse(e->input_cost_per_token, &custom.input_per_token) == 0;
    custom.has_output = e->output_cost_per_token != NULL &&
                        money_parse(e->output_cost_per_token, &custom.output_per_token) == 0;
    enum price_status st = price_cost(l->prices, e->model, &custom, &u, &m, err, sizeof(err));
    money_format(m, cost);
    if (st == PRICE_UNPRICED)
        warn_unpriced(l, e->model);
    else if (st == PRICE_ERROR)
        log_warn("request %s: cannot price: %s", e->request_id, err);
    return st == PRICE_OK ? "priced" : st == PRICE_UNPRICED ? "unpriced" : "invalid";
}

static char *tags_json(const Tollgate__UsageEvent *e)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < e->n_tags; i++)
        json_array_append_new(a, json_string(e->tags[i]));
    char *s = a != NULL ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return s;
}

static const char *nonempty(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : NULL;
}

static const char *provider_of(const char *model, char buf[64])
{
    const char *slash = strchr(model, '/');
    snprintf(buf, 64, "%.*s", slash != NULL ? (int)(slash - model) : 6,
             slash != NULL ? model : "openai");
    return buf;
}

static const char SQL_INSERT_LOG[] =
    "INSERT INTO spend_logs (request_id, call_type, api_key, key_alias, spend, pricing,"
    " usage_estimated,"
    " prompt_tokens, completion_tokens, total_tokens, cache_read_input_tokens,"
    " cache_creation_input_tokens, start_time, end_time, model, model_group,"
    " custom_llm_provider, api_base, user, team_id, end_user, request_tags, metadata,"
    " status, http_status, committed_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
    " UTC_TIMESTAMP(6))"
    " ON DUPLICATE KEY UPDATE request_id = request_id";

/* Inserts the log row; *cost and *inserted tell what to add to counters. */
static int insert_log(struct ledger *l, const Tollgate__UsageEvent *e, char cost[MONEY_STR_MAX],
                      bool *inserted, unsigned *errnum, char *err, size_t errlen)
{
    char start[32], end[32], prov[64];
    const char *pricing = price_event(l, e, cost);
    char *tags = tags_json(e);
    uint64_t affected = 0;
    if (tags == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    fmt_time(e->start_time_us, start);
    fmt_time(e->end_time_us, end);
    struct db_param p[] = {
        DB_STR(e->request_id), DB_STR(e->call_type), DB_STR(e->api_key ? e->api_key : ""),
        DB_STR(nonempty(e->key_alias)), DB_STR(cost), DB_STR(pricing),
        DB_I64(e->has_usage_estimated && e->usage_estimated),
        DB_I64(e->prompt_tokens), DB_I64(e->completion_tokens), DB_I64(e->total_tokens),
        DB_I64(e->cache_read_tokens), DB_I64(e->cache_creation_tokens), DB_STR(start),
        DB_STR(end), DB_STR(e->model), DB_STR(e->model_group), DB_STR(provider_of(e->model, prov)),
        DB_STR(e->api_base ? e->api_base : ""), DB_STR(nonempty(e->user_id)),
        DB_STR(nonempty(e->team_id)), DB_STR(nonempty(e->end_user)), DB_STR(tags),
        DB_STR(nonempty(e->metadata_json) ? e->metadata_json : "{}"),
        DB_STR(e->http_status >= 200 && e->http_status < 300 ? "success" : "failure"),
        DB_I64(e->http_status),
    };
    int rc = db_exec(l->db, SQL_INSERT_LOG, p, sizeof(p) / sizeof(p[0]), NULL, &affected,
                     errnum, err, errlen);
    free(tags);
    *inserted = rc == 0 && affected == 1;
    return rc;
}

/* Adds cost to one counter; a missing owner row (deleted key) is not an error.
 * The CAST matters: DECIMAL + string is computed in floating point. */
static int add_spend(struct ledger *l, const char *sql, const char *id, const char *cost,
                     unsigned *errnum, char *err, size_t errlen)
{
    if (nonempty(id) == NULL)
        return 0;
    struct db_param p[] = {DB_STR(cost), DB_STR(id)};
    return db_exec(l->db, sql, p, 2, NULL, NULL, errnum, err, errlen);
}

/* The counters a new log row adds to, in the lock order every writer keeps. */
static const char *const SQL_ADD_SPEND[] = {
    "UPDATE api_keys SET spend = spend + CAST(? AS DECIMAL(38,20)) WHERE token = ?",
    "UPDATE internal_users SET spend = spend + CAST(? AS DECIMAL(38,20)) WHERE user_id = ?",
    "UPDATE teams SET spend = spend + CAST(? AS DECIMAL(38,20)) WHERE team_id = ?",
};

/* End users and tags get a row on first use, so they appear in reports. */
static const char SQL_ADD_CUSTOMER[] =
    "INSERT INTO customers (user_id, spend, created_at, updated_at)"
    " VALUES (?, CAST(? AS DECIMAL(38,20)), UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))"
    " ON DUPLICATE KEY UPDATE spend = spend + VALUES(spend)";
static const char SQL_ADD_TAG[] =
    "INSERT INTO tags (tag, spend, created_at, updated_at)"
    " VALUES (?, CAST(? AS DECIMAL(38,20)), UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))"
    " ON DUPLICATE KEY UPDATE spend = spend + VALUES(spend)";

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Tags in sorted order (the lock order), each once. */
static int add_tag_spend(struct ledger *l, const Tollgate__UsageEvent *e, const char *cost,
                         unsigned *errnum, char *err, size_t errlen)
{
    char *tags[e->n_tags ? e->n_tags : 1];
    if (e->n_tags == 0)
        return 0;
    memcpy(tags, e->tags, e->n_tags * sizeof(*tags));
    qsort(tags, e->n_tags, sizeof(*tags), cmp_str);
    for (size_t i = 0; i < e->n_tags; i++) {
        if ((i > 0 && strcmp(tags[i], tags[i - 1]) == 0) || tags[i][0] == '\0')
            continue;
        struct db_param p[] = {DB_STR(tags[i]), DB_STR(cost)};
        if (db_exec(l->db, SQL_ADD_TAG, p, 2, NULL, NULL, errnum, err, errlen) < 0)
            return -1;
    }
    return 0;
}

static int apply_event(struct ledger *l, const Tollgate__UsageEvent *e, unsigned *errnum,
                       char *err, size_t errlen)
{
    const char *owners[] = {e->api_key, e->user_id, e->team_id};
    char cost[MONEY_STR_MAX];
    bool inserted;
    if (insert_log(l, e, cost, &inserted, errnum, err, errlen) < 0)
        return -1;
    if (!inserted)
        return 0;
    for (size_t i = 0; i < sizeof(owners) / sizeof(owners[0]); i++) {
        if (add_spend(l, SQL_ADD_SPEND[i], owners[i], cost, errnum, err, errlen) < 0)
            return -1;
    }
    struct db_param p[] = {DB_STR(e->end_user), DB_STR(cost)};
    if (nonempty(e->end_user) != NULL &&
        db_exec(l->db, SQL_ADD_CUSTOMER, p, 2, NULL, NULL, errnum, err, errlen) < 0)
        return -1;
    return add_tag_spend(l, e, cost, errnum, err, errlen);
}

static int write_batch(struct ledger *l, Tollgate__UsageEvent **events, size_t n,
                       unsigned *errnum, char *err, size_t errlen)
{
    *errnum = 0;
    if (l->db == NULL && (l->db = db_connect(l->dbcfg, err, errlen)) == NULL) {
        *errnum = 2002; /* CR_CONNECTION_ERROR: retry */
        return -1;
    }
    if (db_begin(l->db, err, errlen) < 0) {
        *errnum = mysql_errno(l->db);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (apply_event(l, events[i], errnum, err, errlen) < 0) {
            db_rollback(l->db);
            return -1;
        }
    }
    if (db_commit(l->db, err, errlen) < 0) {
        *errnum = mysql_errno(l->db);
        db_rollback(l->db);
        return -1;
    }
    return 0;
}

/* The dead-letter path: the whole event, encoded, with the reason. */
static int reject_event(struct ledger *l, const Tollgate__UsageEvent *e, const char *why,
                        unsigned *errnum, char *err, size_t errlen)
{
    size_t len = tollgate__usage_event__get_packed_size(e);
    uint8_t *buf = malloc(len + 1);
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    tollgate__usage_event__pack(e, buf);
    struct db_param p[] = {DB_STR(e->request_id), DB_STR(why), DB_NULL};
    p[2] = (struct db_param){.type = DBP_BLOB, .s = (const char *)buf, .len = len};
    int rc = db_exec(l->db, "INSERT INTO rejected_events (request_id, error, payload, received_at)"
                            " VALUES (LEFT(?, 255), LEFT(?, 1024), ?, UTC_TIMESTAMP(6))",
                     p, 3, NULL, NULL, errnum, err, errlen);
    free(buf);
    if (rc == 0)
        log_error("request %s: rejected by the database (%s); kept in rejected_events",
                  e->request_id, why);
    return rc;
}

/* A batch the database refused for its data: one transaction per event, so
 * only the offending events go to rejected_events. */
static int write_singly(struct ledger *l, Tollgate__UsageEvent **events, size_t n,
                        unsigned *errnum, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        if (write_batch(l, &events[i], 1, errnum, err, errlen) == 0)
            continue;
        if (db_error_retryable(*errnum))
            return -1;
        char why[1024];
        memcpy(why, err, sizeof(why) < errlen ? sizeof(why) : errlen);
        why[sizeof(why) - 1] = '\0';
        if (reject_event(l, events[i], why, errnum, err, errlen) < 0)
            return -1;
    }
    return 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int ledger_commit(struct ledger *l, Tollgate__UsageEvent **events, size_t n,
                  volatile const int *stop)
{
    int backoff = BACKOFF_MIN_MS;
    bool degraded = false;
    while (!*stop) {
        char err[1024];
        unsigned errnum = 0;
        int rc = write_batch(l, events, n, &errnum, err, sizeof(err));
        if (rc < 0 && errnum != 0 && !db_error_retryable(errnum))
            rc = write_singly(l, events, n, &errnum, err, sizeof(err));
        if (rc == 0) {
            if (degraded)
                log_info("MariaDB writes work again");
            return 0;
        }
        if (!degraded)
            log_error("cannot commit a batch of %zu events (will retry): %s", n, err);
        degraded = true;
        if (errnum >= 2000 && errnum < 3000 && l->db != NULL) { /* client error: reconnect */
            mysql_close(l->db);
            l->db = NULL;
        }
        sleep_ms(backoff);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    return -1;
}
