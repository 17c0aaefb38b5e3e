/* ledger_rows.c - usage events as spend_logs rows (see ledger_rows.h).
 *
 * Exactly-once starts here: spend_logs.request_id is the primary key and the
 * insert leaves an existing row alone, so a redelivered event adds no row.
 * Every row this transaction writes carries its batch_id; when the insert
 * affected fewer rows than it sent, the new ones are told from the old by
 * that tag, so the counters (ledger_counters.c) add only what is new.
 *
 * A row that cannot fit its columns is marked bad here, before the batch
 * is sent, so one poisoned event does not fail the whole batch; it goes to
 * rejected_events (ledger.c). Anything else the database refuses fails the
 * batch, which ledger.c then writes event by event.
 */
#include "ledger_rows.h"

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "db_bulk.h"
#include "event_check.h"
#include "ledger.h"
#include "log.h"

#define READBACK_CHUNK 200 /* request ids per "which rows are ours" SELECT */

/* Warns once per model and process (with the first such request's id), so
 * an unpriced model is loud but not a flood. */
static void warn_unpriced(struct ledger_shared *shared, const char *model,
                          const char *request_id)
{
    int err = 0;
    pthread_mutex_lock(&shared->lock);
    bool seen = strmap_get(shared->warned, model) != NULL;
    if (!seen)
        strmap_put(shared->warned, model, (void *)1, &err);
    pthread_mutex_unlock(&shared->lock);
    if (seen)
        return;
    log_request(LOG_WARN, request_id, "model %s has no price: its requests are logged with"
                " cost 0 and pricing=unpriced", model);
}

static void copy_word(char out[PRICE_WORD_MAX], const char *s)
{
    snprintf(out, PRICE_WORD_MAX, "%s", s != NULL ? s : "");
}

/* Everything the event's price depends on (misfit() has checked the words' lengths). */
static void usage_from_event(const Tollgate__UsageEvent *e, struct usage *u)
{
    *u = (struct usage){
        .prompt_tokens = e->prompt_tokens, .completion_tokens = e->completion_tokens,
        .total_tokens = e->total_tokens, .cache_read_tokens = e->cache_read_tokens,
        .cache_creation_tokens = e->cache_creation_tokens,
        .cache_creation_1h_tokens = e->cache_creation_1h_tokens,
        .prompt_audio_tokens = e->prompt_audio_tokens,
        .prompt_image_tokens = e->prompt_image_tokens, .reasoning_tokens = e->reasoning_tokens,
        .completion_audio_tokens = e->completion_audio_tokens,
        .completion_image_tokens = e->completion_image_tokens,
        .web_search_requests = e->web_search_requests,
        .web_search_requested = e->has_web_search_requested && e->web_search_requested,
        .images = e->images, .image_width = e->image_width, .image_height = e->image_height,
        .duration_us = e->end_time_us - e->start_time_us,
    };
    copy_word(u->search_context_size, e->search_context_size);
    copy_word(u->service_tier, e->service_tier);
    copy_word(u->image_quality, e->image_quality);
}

/* Does the event report any bucket of schema 011? */
static bool has_buckets(const Tollgate__UsageEvent *e)
{
    return e->cache_creation_1h_tokens != 0 || e->prompt_audio_tokens != 0 ||
           e->prompt_image_tokens != 0 || e->reasoning_tokens != 0 ||
           e->completion_audio_tokens != 0 || e->completion_image_tokens != 0 ||
           e->web_search_requests != 0 || (e->has_web_search_requested && e->web_search_requested) ||
           ledger_nonempty(e->service_tier) != NULL || e->images != 0 ||
           ledger_nonempty(e->image_quality) != NULL;
}

/* The event's cost, exact, and how it was priced. */
static void price_row(struct ledger_row *r, const struct price_table *prices,
                      struct ledger_shared *shared)
{
    const Tollgate__UsageEvent *e = r->e;
    struct price_custom custom = {.base_model = e->base_model};
    struct usage u;
    usage_from_event(e, &u);
    char err[256];
    custom.has_input = e->input_cost_per_token != NULL &&
                       money_parse(e->input_cost_per_token, &custom.input_per_token) == 0;
    custom.has_output = e->output_cost_per_token != NULL &&
                        money_parse(e->output_cost_per_token, &custom.output_per_token) == 0;
    enum price_status st = price_cost(prices, e->model, &custom, &u, &r->cost, err, sizeof(err));
    if (st != PRICE_OK)
        r->cost = 0;
    money_format(r->cost, r->cost_text);
    if (st == PRICE_UNPRICED)
        warn_unpriced(shared, e->model, e->request_id);
    else if (st == PRICE_ERROR)
        log_request(LOG_WARN, e->request_id, "cannot price: %s", err);
    r->pricing = st == PRICE_OK ? "priced" : st == PRICE_UNPRICED ? "unpriced" : "invalid";
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

static bool ascii(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s >= 0x80)
            return false;
    return true;
}

/* Why the event cannot fit spend_logs' columns (and tags'), or NULL. */
static const char *misfit(const Tollgate__UsageEvent *e)
{
    static const struct {
        size_t off, max;
        const char *why;
    } limits[] = {
#define LIMIT(field, max) {offsetof(Tollgate__UsageEvent, field), max, \
                           #field " is longer than " #max " characters"}
        LIMIT(request_id, 64), LIMIT(call_type, 32), LIMIT(api_key, 64), LIMIT(key_alias, 255),
        LIMIT(model, 255), LIMIT(model_group, 255), LIMIT(api_base, 1024),
        LIMIT(user_id, 255), LIMIT(team_id, 255), LIMIT(end_user, 255),
        LIMIT(model_id, 200), LIMIT(search_context_size, 15), LIMIT(service_tier, 15), LIMIT(image_quality, 15),
#undef LIMIT
    };
    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        const char *s = *(char *const *)((const char *)e + limits[i].off);
        if (s != NULL && strlen(s) > limits[i].max)
            return limits[i].why;
    }
    if (e->request_id[0] == '\0')
        return "request_id is empty";
    if (!ascii(e->request_id) || (e->api_key != NULL && !ascii(e->api_key)))
        return "request_id or api_key is not ASCII";
    for (size_t i = 0; i < e->n_tags; i++)
        if (strlen(e->tags[i]) > 255)
            return "a tag is longer than 255 characters";
    if (e->http_status < 0 || e->http_status > 999)
        return "http_status out of range";
    if (e->end_time_us < e->start_time_us)
        return "end_time is before start_time";
    if (e->image_width > 100000 || e->image_height > 100000)
        return "image size out of range";
    return NULL;
}

static int cmp_rows(const void *a, const void *b)
{
    return strcmp(((const struct ledger_row *)a)->e->request_id,
                  ((const struct ledger_row *)b)->e->request_id);
}

int rows_prepare(struct ledger_row *rows, Tollgate__UsageEvent **events, size_t n,
                 const struct price_table *prices, struct ledger_shared *shared,
                 int64_t horizon_us)
{
    int64_t now_us = (int64_t)time(NULL) * 1000000;
    for (size_t i = 0; i < n; i++) {
        struct ledger_row *r = &rows[i];
        const char *slash = strchr(events[i]->model, '/');
        *r = (struct ledger_row){.e = events[i]};
        price_row(r, prices, shared);
        db_datetime(r->e->start_time_us, r->start);
        db_datetime(r->e->end_time_us, r->end);
        snprintf(r->day, sizeof(r->day), "%.10s", r->start);
        snprintf(r->provider, sizeof(r->provider), "%.*s",
                 slash != NULL ? (int)(slash - r->e->model) : 6, slash != NULL ? r->e->model : "openai");
        r->buckets = has_buckets(r->e);
        snprintf(r->image_size, sizeof(r->image_size), "%lldx%lld",
                 (long long)(r->e->image_width > 0 ? r->e->image_width : 1024),
                 (long long)(r->e->image_height > 0 ? r->e->image_height : 1024));
        r->bad = misfit(r->e);
        if (r->bad == NULL)
            r->bad = event_check(r->e, now_us);
        r->reason = "invalid";
        if (r->bad == NULL && r->e->start_time_us < horizon_us) {
            r->bad = "started before the log retention period (maximum_spend_logs_retention_"
                     "period): its first copy may be deleted, so it is not counted again";
            r->reason = "retention";
        }
        if ((r->tags_json = tags_json(r->e)) == NULL) {
            rows_release(rows, i + 1);
            return -1;
        }
    }
    if (n > 1)
        qsort(rows, n, sizeof(*rows), cmp_rows);
    for (size_t i = 1; i < n; i++)
        rows[i].dup_in_batch = strcmp(rows[i].e->request_id, rows[i - 1].e->request_id) == 0;
    return 0;
}

void rows_release(struct ledger_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rows[i].tags_json);
        rows[i].tags_json = NULL;
    }
}

/* Two shapes of one insert: most rows report none of the buckets of schema
 * 011 and leave those columns NULL (no bind, no parse, no row space); the
 * others name them. A row's shape follows from its event, so every writer
 * sends a redelivered event in the same statement and the lock order
 * (sorted request ids, plain rows then bucket rows) stays the same. */
#define LOGS_COLUMNS                                                                            \
    "request_id, call_type, api_key, key_alias, spend, pricing, usage_estimated, prompt_tokens," \
    " completion_tokens, total_tokens, cache_read_input_tokens, cache_creation_input_tokens,"    \
    " start_time, end_time, model, model_group, custom_llm_provider, api_base, user, team_id,"  \
    " end_user, request_tags, metadata, status, http_status, batch_id, model_id"
#define LOGS_VALUES                                                                            \
    "?, ?, ?, ?, CAST(? AS DECIMAL(38,20)), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?," \
    " ?, ?, ?, ?"
#define ON_DUP " ON DUPLICATE KEY UPDATE request_id = request_id"
static const char SQL_INSERT_LOGS[] =
    "INSERT INTO spend_logs (" LOGS_COLUMNS ", committed_at)"
    " VALUES (" LOGS_VALUES ", UTC_TIMESTAMP(6))" ON_DUP;
static const char SQL_INSERT_LOGS_BUCKETS[] =
    "INSERT INTO spend_logs (" LOGS_COLUMNS ", cache_creation_1h_input_tokens,"
    " prompt_audio_tokens, prompt_image_tokens, reasoning_tokens, completion_audio_tokens,"
    " completion_image_tokens, web_search_requests, search_context_size, service_tier, images,"
    " image_size, image_quality, committed_at)"
    " VALUES (" LOGS_VALUES ", ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6))" ON_DUP;
#define INSERT_LOGS_COLS 27
#define INSERT_BUCKET_COLS 12

/* A count, or NULL for none. */
static struct db_param count_or_null(int64_t v)
{
    return v != 0 ? DB_I64(v) : DB_NULL;
}

static void bucket_params(const struct ledger_row *r, struct db_param *p)
{
    const Tollgate__UsageEvent *e = r->e;
    bool searched = e->has_web_search_requested && e->web_search_requested;
    struct db_param b[INSERT_BUCKET_COLS] = {
        count_or_null(e->cache_creation_1h_tokens), count_or_null(e->prompt_audio_tokens),
        count_or_null(e->prompt_image_tokens), count_or_null(e->reasoning_tokens),
        count_or_null(e->completion_audio_tokens), count_or_null(e->completion_image_tokens),
        count_or_null(e->web_search_requests),
        DB_STR(searched ? (e->search_context_size ? e->search_context_size : "") : NULL),
        DB_STR(ledger_nonempty(e->service_tier)), count_or_null(e->images),
        DB_STR(e->images > 0 ? r->image_size : NULL), DB_STR(ledger_nonempty(e->image_quality)),
    };
    memcpy(p, b, sizeof(b));
}

static int add_log_row(struct db_bulk *b, const struct ledger_row *r, int64_t batch_id)
{
    const Tollgate__UsageEvent *e = r->e;
    struct db_param p[INSERT_LOGS_COLS + INSERT_BUCKET_COLS] = {
        DB_STR(e->request_id), DB_STR(e->call_type), DB_STR(e->api_key ? e->api_key : ""),
        DB_STR(ledger_nonempty(e->key_alias)), DB_STR(r->cost_text), DB_STR(r->pricing),
        DB_I64(e->has_usage_estimated && e->usage_estimated),
        DB_I64(e->prompt_tokens), DB_I64(e->completion_tokens), DB_I64(e->total_tokens),
        DB_I64(e->cache_read_tokens), DB_I64(e->cache_creation_tokens), DB_STR(r->start),
        DB_STR(r->end), DB_STR(e->model), DB_STR(e->model_group), DB_STR(r->provider),
        DB_STR(e->api_base ? e->api_base : ""), DB_STR(ledger_nonempty(e->user_id)),
        DB_STR(ledger_nonempty(e->team_id)), DB_STR(ledger_nonempty(e->end_user)), DB_STR(r->tags_json),
        DB_STR(ledger_nonempty(e->metadata_json) ? e->metadata_json : "{}"),
        DB_STR(e->http_status >= 200 && e->http_status < 300 ? "success" : "failure"),
        DB_I64(e->http_status), DB_I64(batch_id), DB_STR(ledger_nonempty(e->model_id)),
    };
    if (r->buckets)
        bucket_params(r, p + INSERT_LOGS_COLS);
    return db_bulk_add(b, p);
}

/* Marks which of the sent rows carry batch_id, for up to READBACK_CHUNK rows. */
static int mark_chunk(MYSQL *db, struct ledger_row **sent, size_t n, int64_t batch_id,
                      unsigned *errnum, char *err, size_t errlen)
{
    char sql[128 + READBACK_CHUNK * 2];
    struct db_param p[1 + READBACK_CHUNK];
    struct db_result *res = NULL;
    int len = snprintf(sql, sizeof(sql),
                       "SELECT request_id FROM spend_logs WHERE batch_id = ? AND request_id IN (");
    p[0] = DB_I64(batch_id);
    for (size_t i = 0; i < n; i++) {
        len += snprintf(sql + len, sizeof(sql) - (size_t)len, i ? ",?" : "?");
        p[1 + i] = DB_STR(sent[i]->e->request_id);
    }
    snprintf(sql + len, sizeof(sql) - (size_t)len, ")");
    if (db_exec(db, sql, p, 1 + n, &res, NULL, errnum, err, errlen) < 0)
        return -1;
    for (size_t k = 0; k < res->nrows; k++) {
        const char *id = db_cell(res, k, 0);
        for (size_t i = 0; i < n; i++) /* n is small and this is the rare path */
            if (strcmp(sent[i]->e->request_id, id) == 0)
                sent[i]->inserted = true;
    }
    db_result_free(res);
    return 0;
}

/* Sends the rows of one shape (plain or with buckets), appending them to sent. */
static int insert_shape(MYSQL *db, struct ledger_row *rows, size_t n, int64_t batch_id,
                        bool buckets, struct ledger_row **sent, size_t *nsent,
                        uint64_t *affected, unsigned *errnum, char *err, size_t errlen)
{
    struct db_bulk *b = db_bulk_new(INSERT_LOGS_COLS + (buckets ? INSERT_BUCKET_COLS : 0));
    size_t before = *nsent;
    uint64_t got = 0;
    int rc = -1;
    if (b == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (rows[i].bad != NULL || rows[i].dup_in_batch || rows[i].buckets != buckets)
            continue;
        if (add_log_row(b, &rows[i], batch_id) < 0) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        sent[(*nsent)++] = &rows[i];
    }
    if (*nsent == before ||
        db_bulk_exec(db, buckets ? SQL_INSERT_LOGS_BUCKETS : SQL_INSERT_LOGS, b, &got, errnum,
                     err, errlen) == 0)
        rc = 0;
    *affected += got;
out:
    db_bulk_free(b);
    return rc;
}

int rows_insert(MYSQL *db, struct ledger_row *rows, size_t n, int64_t batch_id,
                unsigned *errnum, char *err, size_t errlen)
{
    struct ledger_row **sent = malloc((n ? n : 1) * sizeof(*sent));
    size_t nsent = 0;
    uint64_t affected = 0;
    int rc = -1;
    *errnum = 0;
    if (sent == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        rows[i].inserted = false;
    if (insert_shape(db, rows, n, batch_id, false, sent, &nsent, &affected, errnum, err,
                     errlen) < 0 ||
        insert_shape(db, rows, n, batch_id, true, sent, &nsent, &affected, errnum, err,
                     errlen) < 0)
        goto out;
    if (affected == nsent) { /* the usual case: every row is new */
        for (size_t i = 0; i < nsent; i++)
            sent[i]->inserted = true;
    } else {
        for (size_t i = 0; i < nsent; i += READBACK_CHUNK) {
            size_t k = nsent - i < READBACK_CHUNK ? nsent - i : READBACK_CHUNK;
            if (mark_chunk(db, sent + i, k, batch_id, errnum, err, errlen) < 0)
                goto out;
        }
    }
    rc = 0;
out:
    free(sent);
    return rc;
}
