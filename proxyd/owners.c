/* owners.c - end users and tags for budget admission (see owners.h).
 *
 * A cache of rows by "c:<end user>" and "g:<tag>", trusted for
 * key_cache_ttl_ms like key rows. A request whose rows are all fresh is
 * answered at once; otherwise one job fetches every row it needs on the
 * keystore's MariaDB thread.
 */
#include "owners.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "strmap.h"

struct owners {
    struct keystore *ks;
    const struct config *cfg;
    struct strmap *cache; /* name -> struct owner_row */
};

struct owners_job {
    struct keystore_job base; /* first: the worker queues it */
    struct owners *o;
    size_t n;                 /* names[0] is the end user ("c:..."), if any */
    char **names;
    struct owner_row *rows;
    bool has_customer;
    owners_cb cb;
    void *arg;
};

static const char SQL_CUSTOMER[] =
    "SELECT c.blocked, b.max_budget, c.spend,"
    " " DB_SQL_UNIX_US("b.budget_reset_at") " FROM customers c"
    " LEFT JOIN budgets b ON b.budget_id = c.budget_id WHERE c.user_id = ?";
static const char SQL_TAG[] =
    "SELECT 0, max_budget, spend, " DB_SQL_UNIX_US("budget_reset_at")
    " FROM tags WHERE tag = ?";

struct owners *owners_new(struct keystore *ks, const struct config *cfg)
{
    struct owners *o = calloc(1, sizeof(*o));
    if (o == NULL || (o->cache = strmap_new()) == NULL) {
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
    strmap_free(o->cache, free);
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
        if (keystore_query(db, cfg, j->names[i][0] == 'c' ? SQL_CUSTOMER : SQL_TAG, p, 1, &r,
                           base) < 0)
            return;
        row->found = r->nrows == 1;
        if (row->found) {
            row->blocked = strcmp(db_cell(r, 0, 0), "0") != 0;
            budget_cells(r, 0, 1, &row->budget);
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

/* Calls back with pointers into rows[] (customer first when there is one). */
static void answer(struct owners_job *j, const struct owner_row *rows, const char *error)
{
    const struct owner_row *tags[OWNERS_MAX_TAGS];
    size_t first = j->has_customer ? 1 : 0;
    for (size_t i = first; i < j->n; i++)
        tags[i - first] = &rows[i];
    j->cb(error == NULL && j->has_customer ? &rows[0] : NULL, tags, j->n - first, error, j->arg);
}

/* Loop thread: rows arrived (or could not be had). */
static void finish_owners(struct keystore_job *base)
{
    struct owners_job *j = (struct owners_job *)base;
    for (size_t i = 0; base->ok && i < j->n; i++) {
        struct owner_row *copy = malloc(sizeof(*copy));
        int err;
        if (copy == NULL)
            continue; /* only costs a refetch */
        *copy = j->rows[i];
        free(strmap_put(j->o->cache, j->names[i], copy, &err));
        if (err < 0)
            free(copy);
    }
    answer(j, j->rows, base->ok ? NULL : base->error);
    job_free(j);
}

static struct owners_job *new_job(struct owners *o, const char *end_user,
                                  const char *const *tags, size_t ntags)
{
    struct owners_job *j = calloc(1, sizeof(*j));
    size_t n = ntags + (end_user != NULL);
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
    j->has_customer = end_user != NULL;
    for (size_t i = 0; i < n; i++) {
        const char *id = j->has_customer && i == 0 ? end_user : tags[i - j->has_customer];
        size_t len = strlen(id) + 3;
        if ((j->names[i] = malloc(len)) == NULL) {
            job_free(j);
            return NULL;
        }
        snprintf(j->names[i], len, "%c:%s", j->has_customer && i == 0 ? 'c' : 'g', id);
        j->n = i + 1;
    }
    return j;
}

void owners_lookup(struct owners *o, const char *end_user, const char *const *tags, size_t ntags,
                   owners_cb cb, void *arg)
{
    struct owners_job *j = new_job(o, end_user, tags, ntags);
    if (j == NULL) {
        cb(NULL, NULL, 0, "out of memory", arg);
        return;
    }
    j->cb = cb;
    j->arg = arg;
    struct owner_row rows[OWNERS_MAX_TAGS + 1];
    int64_t now = clock_ms();
    size_t fresh = 0;
    for (; fresh < j->n; fresh++) {
        const struct owner_row *c = strmap_get(o->cache, j->names[fresh]);
        if (c == NULL || now - c->fetched_ms > o->cfg->proxyd.key_cache_ttl_ms)
            break;
        rows[fresh] = *c;
    }
    if (fresh == j->n) {
        answer(j, rows, NULL);
        job_free(j);
        return;
    }
    keystore_submit(o->ks, &j->base);
}
