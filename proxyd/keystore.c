/* keystore.c - key cache and the MariaDB worker thread behind it.
 *
 * Design: the loop thread owns the caches (LRU maps, no locks). A miss
 * pushes a job onto a mutex-protected queue; the worker thread runs the job
 * (prepared SELECTs on its own connection) and moves it to a done queue,
 * then wakes the loop with event_active() (libevent built with pthreads).
 * The loop finishes the job: stores the rows and calls back. owners.c uses
 * the same worker for end users and tags.
 *
 * Bounds against made-up keys (DESIGN invariant 8): key rows live in an LRU
 * of key_cache_max_entries; a hash MariaDB does not know goes to a separate
 * LRU of key_negative_max_entries, trusted for key_negative_ttl_ms (so a
 * repeated bad key costs no query, and a key created under that hash works
 * after at most that long). There are two queues: known (refreshes, keys
 * with a cached row, owners already seen, background bills) and unseen
 * (hashes in neither cache, never-seen end users and tags). The worker
 * always takes a known job first, so a flood of random keys delays a known
 * key by at most the one unseen query running; and at most key_lookups_max
 * unseen jobs are queued or running, past which the lookup is refused
 * (KEYSTORE_BUSY, answered 429 with Retry-After) instead of queued. The cap
 * is global rather than per client address because clients reach proxyd
 * through load balancers that hide their address.
 *
 * Callers never keep a pointer into a cache entry past the callback that
 * gets it (they copy what they keep), and entries are only stored or
 * evicted in on_done, never inside such a callback.
 */
#include "keystore.h"

#include <event2/thread.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "db.h"
#include "log.h"
#include "lru.h"

#define HEALTH_PING_S 1 /* how often an idle worker checks MariaDB */

const char KEYSTORE_BUSY[] = "too many lookups of unknown keys in flight";

struct cached {
    struct keyinfo info;
    bool refreshing; /* a background refresh is queued */
};

/* A hash MariaDB did not know, and when the lookup that said so started. */
struct unknown {
    int64_t fetched_ms;
};

struct jobq {
    struct keystore_job *head, *tail;
};

/* A key row lookup: cb NULL means a background refresh. */
struct job {
    struct keystore_job base; /* first: the worker queues it */
    struct keystore *ks;
    char token[KEYHASH_HEX_LEN + 1];
    keystore_cb cb;
    void *arg;
    struct keyinfo info;
};

struct keystore {
    const struct config *cfg;
    struct lru *cache;       /* token -> struct cached (found keys); loop thread only */
    struct lru *unknown;     /* token -> struct unknown; loop thread only */
    int unseen_in_flight;    /* loop thread: unseen jobs queued or running */
    uint64_t negative_hits, refused; /* loop thread */
    struct event *done_ev;
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct jobq known, unseen, done; /* under mu */
    bool stopping;                   /* under mu */
    _Atomic int64_t db_down_since_ms; /* 0 while MariaDB answers; set by the worker */
};

static void keyinfo_clear(struct keyinfo *k)
{
    free(k->key_alias);
    free(k->user_id);
    free(k->team_id);
    free(k->models_json);
    free(k->team_models_json);
    free(k->tags_json);
    free(k->model_rate_json);
    memset(k, 0, sizeof(*k));
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

/* Cells max (DECIMAL(38,20); NULL means no budget), spend and the period's
 * end (Unix microseconds, "0" for none) from column col on. */
void budget_cells(const struct db_result *r, size_t row, size_t col, struct budget_row *b)
{
    const char *max = db_cell(r, row, col), *spend = db_cell(r, row, col + 1);
    b->has_max = max != NULL && money_parse(max, &b->max) == 0;
    if (spend == NULL || money_parse(spend, &b->spend) < 0)
        b->spend = 0;
    b->reset_at_us = strtoll(db_cell(r, row, col + 2), NULL, 10);
}

static int keyinfo_copy(struct keyinfo *dst, const struct keyinfo *src)
{
    *dst = *src;
    dst->key_alias = dup_or_null(src->key_alias);
    dst->user_id = dup_or_null(src->user_id);
    dst->team_id = dup_or_null(src->team_id);
    dst->models_json = dup_or_null(src->models_json);
    dst->team_models_json = dup_or_null(src->team_models_json);
    dst->tags_json = dup_or_null(src->tags_json);
    dst->model_rate_json = dup_or_null(src->model_rate_json);
    if ((src->key_alias && !dst->key_alias) || (src->user_id && !dst->user_id) ||
        (src->team_id && !dst->team_id) || (src->models_json && !dst->models_json) ||
        (src->team_models_json && !dst->team_models_json) || (src->tags_json && !dst->tags_json) ||
        (src->model_rate_json && !dst->model_rate_json)) {
        keyinfo_clear(dst);
        return -1;
    }
    return 0;
}

/* A key's budget_id names a tier, as LiteLLM's rate-limit tiers: the
 * budget's rpm_limit / tpm_limit, where set, are the key's own (counted per
 * key, not shared by the tier's keys), in place of the key's columns. */
static const char SQL_KEY[] =
    "SELECT k.key_alias, k.user_id, k.team_id, k.models, k.blocked,"
    " " DB_SQL_UNIX_US("k.expires") ","
    " k.max_budget, k.spend, " DB_SQL_UNIX_US("k.budget_reset_at") ","
    " u.max_budget, u.spend, " DB_SQL_UNIX_US("u.budget_reset_at") ","
    " t.max_budget, t.spend, " DB_SQL_UNIX_US("t.budget_reset_at") ", COALESCE(t.blocked, 0),"
    " mb.max_budget, m.spend, " DB_SQL_UNIX_US("mb.budget_reset_at") ", k.tags,"
    " COALESCE(u.user_role = 'proxy_admin', 0), t.models,"
    " k.max_parallel_requests, COALESCE(kb.rpm_limit, k.rpm_limit),"
    " COALESCE(kb.tpm_limit, k.tpm_limit), u.rpm_limit, u.tpm_limit,"
    " t.rpm_limit, t.tpm_limit, mb.rpm_limit, mb.tpm_limit,"
    " JSON_EXTRACT(k.metadata, '$.model_rpm_limit'), JSON_EXTRACT(k.metadata, '$.model_tpm_limit'),"
    " JSON_EXTRACT(t.metadata, '$.model_rpm_limit'), JSON_EXTRACT(t.metadata, '$.model_tpm_limit')"
    " FROM api_keys k LEFT JOIN internal_users u ON u.user_id = k.user_id"
    " LEFT JOIN teams t ON t.team_id = k.team_id"
    " LEFT JOIN team_members m ON m.team_id = k.team_id AND m.user_id = k.user_id"
    " LEFT JOIN budgets mb ON mb.budget_id = m.budget_id"
    " LEFT JOIN budgets kb ON kb.budget_id = k.budget_id WHERE k.token = ?";

/* A rate limit column: NULL (or unreadable) is no limit (-1). */
static int64_t limit_cell(const char *v)
{
    char *end;
    long long n = v != NULL ? strtoll(v, &end, 10) : -1;
    return v != NULL && *end == '\0' && n >= 0 ? n : -1;
}

void rate_cells(const struct db_result *r, size_t row, size_t col, struct rate_limits *l)
{
    l->rpm = limit_cell(db_cell(r, row, col));
    l->tpm = limit_cell(db_cell(r, row, col + 1));
}

/* The metadata's model_rpm_limit / model_tpm_limit objects of the key and
 * the team (cells col..col+3, JSON or NULL) as one JSON text; NULL when
 * none is an object (or out of memory: the limits then go unchecked until
 * the row is fetched again, logged). */
static char *model_rates(const struct db_result *r, size_t col)
{
    static const char *const names[] = {"key_rpm", "key_tpm", "team_rpm", "team_tpm"};
    json_t *all = json_object();
    char *text = NULL;
    bool any = false;
    for (size_t i = 0; all != NULL && i < 4; i++) {
        const char *cell = db_cell(r, 0, col + i);
        json_t *v = cell != NULL ? json_loads(cell, JSON_DECODE_ANY, NULL) : NULL;
        if (json_is_object(v) && json_object_set(all, names[i], v) == 0)
            any = true;
        json_decref(v);
    }
    if (any && (text = json_dumps(all, JSON_COMPACT)) == NULL)
        log_warn("out of memory reading a key's model rate limits");
    json_decref(all);
    return text;
}

/* Worker thread: one key row (with its user's and team's budgets) by token. */
static void fetch_key(struct keystore_job *base, MYSQL **db, const struct config *cfg)
{
    struct job *j = (struct job *)base;
    struct db_result *r = NULL;
    struct db_param p[] = {DB_STR(j->token)};
    struct keyinfo *k = &j->info;
    k->fetched_ms = clock_ms();
    if (keystore_query(db, cfg, SQL_KEY, p, 1, &r, base) < 0)
        return;
    memcpy(k->token, j->token, sizeof(j->token));
    k->found = r->nrows == 1;
    if (k->found) {
        k->key_alias = dup_or_null(db_cell(r, 0, 0));
        k->user_id = dup_or_null(db_cell(r, 0, 1));
        k->team_id = dup_or_null(db_cell(r, 0, 2));
        k->models_json = dup_or_null(db_cell(r, 0, 3));
        k->blocked = strcmp(db_cell(r, 0, 4), "0") != 0;
        k->expires_us = strtoll(db_cell(r, 0, 5), NULL, 10);
        budget_cells(r, 0, 6, &k->key);
        budget_cells(r, 0, 9, &k->user);
        budget_cells(r, 0, 12, &k->team);
        k->team_blocked = strcmp(db_cell(r, 0, 15), "0") != 0;
        budget_cells(r, 0, 16, &k->member);
        k->tags_json = dup_or_null(db_cell(r, 0, 19));
        k->proxy_admin = strcmp(db_cell(r, 0, 20), "0") != 0;
        k->team_models_json = dup_or_null(db_cell(r, 0, 21));
        k->max_parallel = limit_cell(db_cell(r, 0, 22));
        rate_cells(r, 0, 23, &k->key_rate);
        rate_cells(r, 0, 25, &k->user_rate);
        rate_cells(r, 0, 27, &k->team_rate);
        rate_cells(r, 0, 29, &k->member_rate);
        k->model_rate_json = model_rates(r, 31);
    }
    db_result_free(r);
    base->ok = true;
}

int keystore_query(MYSQL **db, const struct config *cfg, const char *sql,
                   const struct db_param *params, size_t n, struct db_result **res,
                   struct keystore_job *j)
{
    if (*db == NULL && (*db = db_connect(&cfg->db, j->error, sizeof(j->error))) == NULL)
        return -1;
    if (db_exec(*db, sql, params, n, res, NULL, NULL, j->error, sizeof(j->error)) < 0) {
        mysql_close(*db); /* reconnect next time: the connection may be gone */
        *db = NULL;
        return -1;
    }
    return 0;
}

/* Records whether MariaDB answered, for /health/readiness. */
static void note_db(struct keystore *ks, bool ok)
{
    int64_t expected = 0;
    if (ok)
        atomic_store(&ks->db_down_since_ms, 0);
    else
        atomic_compare_exchange_strong(&ks->db_down_since_ms, &expected, clock_ms());
}

/* Idle worker: checks the connection so readiness knows MariaDB's state. */
static void idle_ping(struct keystore *ks, MYSQL **db)
{
    char err[256];
    if (*db == NULL)
        *db = db_connect(&ks->cfg->db, err, sizeof(err));
    else if (mysql_ping(*db) != 0) {
        mysql_close(*db);
        *db = NULL;
    }
    note_db(ks, *db != NULL);
}

static void jobq_push(struct jobq *q, struct keystore_job *j)
{
    j->next = NULL;
    if (q->tail != NULL)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
}

static struct keystore_job *jobq_pop(struct jobq *q)
{
    struct keystore_job *j = q->head;
    if (j != NULL && (q->head = j->next) == NULL)
        q->tail = NULL;
    return j;
}

/* Under mu: the next job, known ones first. */
static struct keystore_job *next_job(struct keystore *ks)
{
    struct keystore_job *j = jobq_pop(&ks->known);
    return j != NULL ? j : jobq_pop(&ks->unseen);
}

static void *worker_main(void *arg)
{
    struct keystore *ks = arg;
    MYSQL *db = NULL;
    mysql_thread_init();
    for (;;) {
        pthread_mutex_lock(&ks->mu);
        while (ks->known.head == NULL && ks->unseen.head == NULL && !ks->stopping) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += HEALTH_PING_S;
            if (pthread_cond_timedwait(&ks->cv, &ks->mu, &until) != 0 &&
                ks->known.head == NULL && ks->unseen.head == NULL && !ks->stopping) {
                pthread_mutex_unlock(&ks->mu);
                idle_ping(ks, &db);
                pthread_mutex_lock(&ks->mu);
            }
        }
        struct keystore_job *j = next_job(ks);
        pthread_mutex_unlock(&ks->mu);
        if (j == NULL) /* stopping and nothing left */
            break;

        j->run(j, &db, ks->cfg);
        note_db(ks, j->ok);

        pthread_mutex_lock(&ks->mu);
        jobq_push(&ks->done, j);
        pthread_mutex_unlock(&ks->mu);
        event_active(ks->done_ev, EV_READ, 0);
    }
    if (db != NULL)
        mysql_close(db);
    mysql_thread_end();
    return NULL;
}

static void free_cached(void *p)
{
    struct cached *c = p;
    keyinfo_clear(&c->info);
    free(c);
}

/* Loop thread: is info older than what either cache already says? */
static bool overtaken(struct keystore *ks, const struct keyinfo *info)
{
    const struct cached *c = lru_peek(ks->cache, info->token);
    const struct unknown *u = lru_peek(ks->unknown, info->token);
    return (c != NULL && c->info.fetched_ms > info->fetched_ms) ||
           (u != NULL && u->fetched_ms > info->fetched_ms);
}

/* Loop thread: remembers a found row. A failed copy only costs a refetch. */
static void cache_store(struct keystore *ks, const struct keyinfo *info)
{
    struct cached *c = calloc(1, sizeof(*c));
    if (c == NULL || keyinfo_copy(&c->info, info) < 0) {
        free(c);
        return;
    }
    lru_del(ks->unknown, info->token);
    if (lru_put(ks->cache, info->token, c) < 0)
        free_cached(c);
}

/* Loop thread: remembers that MariaDB does not know token (and forgets its
 * row: the key was deleted). */
static void negative_store(struct keystore *ks, const struct keyinfo *info)
{
    lru_del(ks->cache, info->token);
    if (ks->cfg->proxyd.key_negative_ttl_ms == 0)
        return;
    struct unknown *u = malloc(sizeof(*u));
    if (u == NULL)
        return;
    u->fetched_ms = info->fetched_ms;
    if (lru_put(ks->unknown, info->token, u) < 0)
        free(u);
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    struct keystore *ks = arg;
    (void)fd;
    (void)what;
    pthread_mutex_lock(&ks->mu);
    struct keystore_job *j = ks->done.head;
    ks->done.head = ks->done.tail = NULL;
    pthread_mutex_unlock(&ks->mu);
    while (j != NULL) {
        struct keystore_job *next = j->next;
        if (j->unseen)
            ks->unseen_in_flight--;
        j->finish(j); /* frees j */
        j = next;
    }
}

/* Loop thread: a key row arrived (or could not be had). */
static void finish_key(struct keystore_job *base)
{
    struct job *j = (struct job *)base;
    struct cached *c;
    if (base->ok && !overtaken(j->ks, &j->info)) {
        if (j->info.found)
            cache_store(j->ks, &j->info); /* a new entry: not refreshing */
        else
            negative_store(j->ks, &j->info);
    } else if ((c = lru_peek(j->ks->cache, j->token)) != NULL) {
        c->refreshing = false; /* failed or overtaken: try again on the next lookup */
    }
    if (j->cb != NULL)
        j->cb(base->ok ? &j->info : NULL, base->ok ? NULL : base->error, j->arg);
    keyinfo_clear(&j->info);
    free(j);
}

struct keystore *keystore_new(struct event_base *base, const struct config *cfg,
                              char *err, size_t errlen)
{
    struct keystore *ks = calloc(1, sizeof(*ks));
    if (ks == NULL ||
        (ks->cache = lru_new(cfg->proxyd.key_cache_max_entries, free_cached)) == NULL ||
        (ks->unknown = lru_new(cfg->proxyd.key_negative_max_entries, free)) == NULL ||
        (ks->done_ev = event_new(base, -1, 0, on_done, ks)) == NULL) {
        snprintf(err, errlen, "out of memory");
        keystore_free(ks);
        return NULL;
    }
    ks->cfg = cfg;
    pthread_mutex_init(&ks->mu, NULL);
    pthread_cond_init(&ks->cv, NULL);
    if (pthread_create(&ks->thread, NULL, worker_main, ks) != 0) {
        snprintf(err, errlen, "cannot start the key lookup thread");
        keystore_free(ks);
        return NULL;
    }
    ks->thread_started = true;
    return ks;
}

void keystore_free(struct keystore *ks)
{
    if (ks == NULL)
        return;
    if (ks->thread_started) {
        pthread_mutex_lock(&ks->mu);
        ks->stopping = true;
        pthread_cond_signal(&ks->cv);
        pthread_mutex_unlock(&ks->mu);
        pthread_join(ks->thread, NULL);
        on_done(-1, 0, ks); /* answer what the worker finished */
        pthread_mutex_destroy(&ks->mu);
        pthread_cond_destroy(&ks->cv);
    }
    if (ks->done_ev != NULL)
        event_free(ks->done_ev);
    lru_free(ks->cache);
    lru_free(ks->unknown);
    free(ks);
}

void keystore_submit(struct keystore *ks, struct keystore_job *j)
{
    pthread_mutex_lock(&ks->mu);
    jobq_push(&ks->known, j);
    pthread_cond_signal(&ks->cv);
    pthread_mutex_unlock(&ks->mu);
}

int keystore_submit_unseen(struct keystore *ks, struct keystore_job *j)
{
    if (ks->unseen_in_flight >= ks->cfg->proxyd.key_lookups_max) {
        ks->refused++;
        return -1;
    }
    ks->unseen_in_flight++;
    j->unseen = true;
    pthread_mutex_lock(&ks->mu);
    jobq_push(&ks->unseen, j);
    pthread_cond_signal(&ks->cv);
    pthread_mutex_unlock(&ks->mu);
    return 0;
}

/* A key job for token; cb NULL means a background refresh. */
static struct job *key_job(struct keystore *ks, const char *token, keystore_cb cb, void *arg)
{
    struct job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return NULL;
    j->base.run = fetch_key;
    j->base.finish = finish_key;
    j->ks = ks;
    snprintf(j->token, sizeof(j->token), "%s", token);
    j->cb = cb;
    j->arg = arg;
    return j;
}

/* A hash MariaDB did not know less than key_negative_ttl_ms ago answers
 * "not found" at once; an older entry is dropped. */
static bool negative_hit(struct keystore *ks, const char *token, keystore_cb cb, void *arg)
{
    struct unknown *u = lru_get(ks->unknown, token);
    if (u == NULL)
        return false;
    if (clock_ms() - u->fetched_ms > ks->cfg->proxyd.key_negative_ttl_ms) {
        lru_del(ks->unknown, token);
        return false;
    }
    struct keyinfo none = {.found = false, .fetched_ms = u->fetched_ms};
    snprintf(none.token, sizeof(none.token), "%s", token);
    ks->negative_hits++;
    cb(&none, NULL, arg);
    return true;
}

/* A hash in neither cache: queued behind the known lookups, or refused. */
static void lookup_unseen(struct keystore *ks, const char *token, keystore_cb cb, void *arg)
{
    struct job *j = key_job(ks, token, cb, arg);
    if (j == NULL) {
        cb(NULL, "out of memory", arg);
        return;
    }
    if (keystore_submit_unseen(ks, &j->base) < 0) {
        free(j);
        cb(NULL, KEYSTORE_BUSY, arg);
    }
}

void keystore_lookup(struct keystore *ks, const char *token, keystore_cb cb, void *arg)
{
    struct cached *c = lru_get(ks->cache, token);
    int64_t age = c != NULL ? clock_ms() - c->info.fetched_ms : 0;
    int ttl = ks->cfg->proxyd.key_cache_ttl_ms;
    struct job *j;
    if (c != NULL && age <= KEYSTORE_STALE_MS(ttl)) {
        if (age > ttl && !c->refreshing && (j = key_job(ks, token, NULL, NULL)) != NULL) {
            c->refreshing = true;
            keystore_submit(ks, &j->base);
        }
        cb(&c->info, NULL, arg);
        return;
    }
    if (c != NULL)
        keystore_lookup_fresh(ks, token, cb, arg);
    else if (!negative_hit(ks, token, cb, arg))
        lookup_unseen(ks, token, cb, arg);
}

void keystore_lookup_fresh(struct keystore *ks, const char *token, keystore_cb cb, void *arg)
{
    struct job *j = key_job(ks, token, cb, arg);
    if (j == NULL) {
        cb(NULL, "out of memory", arg);
        return;
    }
    keystore_submit(ks, &j->base);
}

int64_t keystore_db_down_ms(struct keystore *ks)
{
    int64_t since = atomic_load(&ks->db_down_since_ms);
    return since == 0 ? 0 : clock_ms() - since;
}

void keystore_stats(const struct keystore *ks, struct keystore_stats *out)
{
    *out = (struct keystore_stats){
        .keys = lru_count(ks->cache),
        .unknown_keys = lru_count(ks->unknown),
        .evictions = lru_evictions(ks->cache),
        .unknown_evictions = lru_evictions(ks->unknown),
        .negative_hits = ks->negative_hits,
        .refused = ks->refused,
        .unseen_in_flight = ks->unseen_in_flight,
    };
}
