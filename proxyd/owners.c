/* owners.c - end users, tags and config budgets for budget admission (see
 * owners.h).
 *
 * A cache of rows by "c:<end user>", "g:<tag>" and "p:<budget key>", trusted for
 * key_cache_ttl_ms like key rows. A request whose rows are all fresh is
 * answered at once; otherwise one job fetches every row it needs on the
 * keystore's MariaDB thread.
 *
 * Any valid key can name end users and tags at will, so the cache is an LRU
 * of owner_cache_max_entries rows, and a job that names one the cache does
 * not hold is a never-seen lookup (keystore_submit_unseen): it runs after
 * the known lookups and is refused with KEYSTORE_BUSY past key_lookups_max.
 */
#include "owners.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "lru.h"

struct owners {
    struct keystore *ks;
    const struct config *cfg;
    struct lru *cache; /* name -> struct owner_row */
};

struct owners_job {
    struct keystore_job base; /* first: the worker queues it */
    struct owners *o;
    size_t n;
    char **names;
    struct owner_row *rows;
    owners_cb cb;
    void *arg;
};

static const char SQL_CUSTOMER[] =
    "SELECT c.blocked, b.max_budget, c.spend,"
    " " DB_SQL_UNIX_US("b.budget_reset_at") ", b.rpm_limit, b.tpm_limit FROM customers c"
    " LEFT JOIN budgets b ON b.budget_id = c.budget_id WHERE c.user_id = ?";
static const char SQL_TAG[] =
    "SELECT 0, max_budget, spend, " DB_SQL_UNIX_US("budget_reset_at") ", NULL, NULL"
    " FROM tags WHERE tag = ?";
static const char SQL_CONFIG_BUDGET[] =
    "SELECT 0, max_budget, spend, " DB_SQL_UNIX_US("budget_reset_at") ", NULL, NULL"
    " FROM config_budgets WHERE budget_key = ?";

struct owners *owners_new(struct keystore *ks, const struct config *cfg)
{
    struct owners *o = calloc(1, sizeof(*o));
    if (o == NULL || (o->cache = lru_new(cfg->proxyd.owner_cache_max_entries, free)) == NULL) {
        free(o);
        return NULL;
    }
    o->ks = ks;
    o->cfg = cfg;
    return o;
}

void owners_free(struct owners *o)
{
    if (o == NULL)
        return;
    lru_free(o->cache);
    free(o);
}

/* Worker thread: one row per name. */
static void fetch_owners(struct keystore_job *base, MYSQL **db, const struct config *cfg)
{
    struct owners_job *j = (struct owners_job *)base;
    for (size_t i = 0; i < j->n; i++) {
        struct db_result *r = NULL;
        struct db_param p[] = {DB_STR(j->names[i] + 2)};
        struct owner_row *row = &j->rows[i];
        row->fetched_ms = clock_ms();
        char kind = j->names[i][0];
        if (keystore_query(db, cfg, kind == 'c' ? SQL_CUSTOMER : kind == 'g' ? SQL_TAG
                                    : SQL_CONFIG_BUDGET, p, 1, &r, base) < 0)
            return;
        row->found = r->nrows == 1;
        row->rate = (struct rate_limits){-1, -1}; /* a new end user has no budget yet */
        if (row->found) {
            row->blocked = strcmp(db_cell(r, 0, 0), "0") != 0;
            budget_cells(r, 0, 1, &row->budget);
            rate_cells(r, 0, 4, &row->rate);
        }
        db_result_free(r);
    }
    base->ok = true;
}

static void job_free(struct owners_job *j)
{
    for (size_t i = 0; i < j->n; i++)
        free(j->names[i]);
    free(j->names);
    free(j->rows);
    free(j);
}

/* Loop thread: rows arrived (or could not be had). */
static void finish_owners(struct keystore_job *base)
{
    struct owners_job *j = (struct owners_job *)base;
    for (size_t i = 0; base->ok && i < j->n; i++) {
        struct owner_row *copy = malloc(sizeof(*copy));
        if (copy == NULL)
            continue; /* only costs a refetch */
        *copy = j->rows[i];
        if (lru_put(j->o->cache, j->names[i], copy) < 0)
            free(copy);
    }
    j->cb(j->rows, j->n, base->ok ? NULL : base->error, j->arg);
    job_free(j);
}

static struct owners_job *new_job(struct owners *o, const char *const *names, size_t n)
{
    struct owners_job *j = calloc(1, sizeof(*j));
    if (j == NULL || (j->names = calloc(n ? n : 1, sizeof(char *))) == NULL ||
        (j->rows = calloc(n ? n : 1, sizeof(*j->rows))) == NULL) {
        if (j != NULL)
            free(j->names);
        free(j);
        return NULL;
    }
    j->base.run = fetch_owners;
    j->base.finish = finish_owners;
    j->o = o;
    for (size_t i = 0; i < n; i++) {
        if ((j->names[i] = strdup(names[i])) == NULL) {
            job_free(j);
            return NULL;
        }
        j->n = i + 1;
    }
    return j;
}

void owners_lookup(struct owners *o, const char *const *names, size_t n, owners_cb cb, void *arg)
{
    struct owners_job *j = new_job(o, names, n);
    if (j == NULL) {
        cb(NULL, 0, OWNERS_OOM, arg);
        return;
    }
    j->cb = cb;
    j->arg = arg;
    int64_t now = clock_ms();
    size_t fresh = 0;
    bool unseen = false;
    for (size_t i = 0; i < j->n; i++) {
        const struct owner_row *c = lru_get(o->cache, j->names[i]);
        unseen |= c == NULL;
        if (c == NULL || now - c->fetched_ms > o->cfg->proxyd.key_cache_ttl_ms)
            continue;
        j->rows[i] = *c; /* a fetch, if one is needed, writes them all again */
        fresh++;
    }
    if (fresh == j->n) {
        cb(j->rows, j->n, NULL, arg);
        job_free(j);
        return;
    }
    if (!unseen) {
        keystore_submit(o->ks, &j->base);
    } else if (keystore_submit_unseen(o->ks, &j->base) < 0) {
        cb(NULL, 0, KEYSTORE_BUSY, arg);
        job_free(j);
    }
}

void owners_stats(const struct owners *o, size_t *rows, uint64_t *evictions)
{
    *rows = lru_count(o->cache);
    *evictions = lru_evictions(o->cache);
}
