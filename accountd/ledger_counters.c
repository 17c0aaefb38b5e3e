/* ledger_counters.c - a batch's spend counters and rollups (see
 * ledger_counters.h).
 *
 * Design: the rows this transaction inserted are summed in C, exactly
 * (money_t), into one aggregate per counter row: per key, internal user,
 * team, team member, end user, tag, entity and model, and per rollup group
 * of a day (daily_tag_totals: per day and tag alone; usage_rollup: per day
 * and per month and one team, key, customer, model or tag). Each table then gets
 * ONE bulk statement (db_bulk.c) whose rows are sorted by their key, and the
 * tables always go in the same order (enum table, ledger_agg.h). So every
 * accountd instance takes its row locks in one global order, and two
 * instances committing at once wait for each other instead of deadlocking.
 * The budget owners' tables hold the spend of the current period and are
 * written by ledger_periods.c; the lifetime tables (per entity and model, the
 * daily rollups) here.
 *
 * Aggregates are keyed by a composite text of length-prefixed fields
 * ("4:team|5:alice|"), so no id can be mistaken for two others joined. The
 * rollups' group_key is the first 128 bits of that text's SHA-256.
 */
#include "ledger_counters.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_bulk.h"
#include "keyhash.h"
#include "ledger_agg.h"

/* What a rollup row already there gets from the batch: every sum added. */
#define ROLLUP_ADD                                                                            \
    " ON DUPLICATE KEY UPDATE spend = spend + VALUES(spend),"                                 \
    " prompt_tokens = prompt_tokens + VALUES(prompt_tokens),"                                 \
    " completion_tokens = completion_tokens + VALUES(completion_tokens),"                     \
    " total_tokens = total_tokens + VALUES(total_tokens),"                                    \
    " cache_read_input_tokens = cache_read_input_tokens + VALUES(cache_read_input_tokens),"   \
    " cache_creation_input_tokens = cache_creation_input_tokens"                              \
    " + VALUES(cache_creation_input_tokens),"                                                 \
    " api_requests = api_requests + VALUES(api_requests),"                                    \
    " successful_requests = successful_requests + VALUES(successful_requests),"               \
    " failed_requests = failed_requests + VALUES(failed_requests)"

static const char *const SQL[T_COUNT] = {
    [T_ENTITY_MODEL] = "INSERT INTO entity_model_spend (entity, entity_id, model, spend)"
                       " VALUES (?, ?, ?, CAST(? AS DECIMAL(38,20)))"
                       " ON DUPLICATE KEY UPDATE spend = spend + VALUES(spend)",
    [T_DAILY] = "INSERT INTO daily_spend (day, group_key, api_key, user, team_id, end_user,"
                " model_group, model, custom_llm_provider, spend, prompt_tokens,"
                " completion_tokens, total_tokens, cache_read_input_tokens,"
                " cache_creation_input_tokens, api_requests, successful_requests,"
                " failed_requests)"
                " VALUES (?, UNHEX(?), ?, ?, ?, ?, ?, ?, ?, CAST(? AS DECIMAL(38,20)),"
                " ?, ?, ?, ?, ?, ?, ?, ?)"
                ROLLUP_ADD,
    [T_DAILY_TAG] = "INSERT INTO daily_tag_spend (day, group_key, tag, api_key, model_group,"
                    " model, custom_llm_provider, spend, prompt_tokens, completion_tokens,"
                    " total_tokens, cache_read_input_tokens, cache_creation_input_tokens,"
                    " api_requests, successful_requests, failed_requests)"
                    " VALUES (?, UNHEX(?), ?, ?, ?, ?, ?, CAST(? AS DECIMAL(38,20)),"
                    " ?, ?, ?, ?, ?, ?, ?, ?)"
                    ROLLUP_ADD,
    [T_DAILY_TAG_TOTAL] = "INSERT INTO daily_tag_totals (day, tag, spend, prompt_tokens,"
                          " completion_tokens, total_tokens, api_requests,"
                          " successful_requests, failed_requests)"
                          " VALUES (?, ?, CAST(? AS DECIMAL(38,20)), ?, ?, ?, ?, ?, ?)"
                          " ON DUPLICATE KEY UPDATE spend = spend + VALUES(spend),"
                          " prompt_tokens = prompt_tokens + VALUES(prompt_tokens),"
                          " completion_tokens = completion_tokens + VALUES(completion_tokens),"
                          " total_tokens = total_tokens + VALUES(total_tokens),"
                          " api_requests = api_requests + VALUES(api_requests),"
                          " successful_requests = successful_requests"
                          " + VALUES(successful_requests),"
                          " failed_requests = failed_requests + VALUES(failed_requests)",
    [T_USAGE] = "INSERT INTO usage_rollup (grain, dim, period, group_id, spend, prompt_tokens,"
                " completion_tokens, total_tokens, api_requests)"
                " VALUES (?, ?, ?, ?, CAST(? AS DECIMAL(38,20)), ?, ?, ?, ?)"
                " ON DUPLICATE KEY UPDATE spend = spend + VALUES(spend),"
                " prompt_tokens = prompt_tokens + VALUES(prompt_tokens),"
                " completion_tokens = completion_tokens + VALUES(completion_tokens),"
                " total_tokens = total_tokens + VALUES(total_tokens),"
                " api_requests = api_requests + VALUES(api_requests)",
};

#define MAX_COLS 18 /* daily_spend's */

/* Writes n in decimal at p; returns the end. */
static char *put_len(char *p, size_t n)
{
    char digits[24];
    int k = 0;
    do {
        digits[k++] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0);
    while (k > 0)
        *p++ = digits[--k];
    return p;
}

/* "LEN:TEXT|" for each field (NULL as "-|") in c->keybuf. By hand, not
 * snprintf: this runs several times per event. */
const char *counters_compose(struct counters *c, const char *const *fields, size_t n)
{
    size_t lens[16], need = 1;
    for (size_t i = 0; i < n && i < 16; i++)
        need += (lens[i] = fields[i] ? strlen(fields[i]) : 0) + 24;
    if (n > 16)
        return NULL;
    if (need > c->keycap) {
        char *k = realloc(c->keybuf, need);
        if (k == NULL)
            return NULL;
        c->keybuf = k;
        c->keycap = need;
    }
    char *p = c->keybuf;
    for (size_t i = 0; i < n; i++) {
        if (fields[i] == NULL) {
            *p++ = '-';
        } else {
            p = put_len(p, lens[i]);
            *p++ = ':';
            memcpy(p, fields[i], lens[i]);
            p += lens[i];
        }
        *p++ = '|';
    }
    *p = '\0';
    return c->keybuf;
}

static void add_sums(struct sums *s, const struct ledger_row *r, bool *overflow)
{
    const Tollgate__UsageEvent *e = r->e;
    if (money_add(s->spend, r->cost, &s->spend) < 0)
        *overflow = true;
    s->prompt += e->prompt_tokens;
    s->completion += e->completion_tokens;
    s->total += e->total_tokens;
    s->cache_read += e->cache_read_tokens;
    s->cache_write += e->cache_creation_tokens;
    s->requests++;
    if (e->http_status >= 200 && e->http_status < 300)
        s->ok++;
    else
        s->failed++;
}

/* Finds or makes the aggregate for fields in table t and adds row r to it.
 * *fresh (may be NULL) tells whether it was made now. */
static struct agg *account(struct counters *c, enum table t, const char *const *fields,
                           size_t n, const struct ledger_row *r, bool *overflow, bool *fresh)
{
    const char *key = counters_compose(c, fields, n);
    if (key == NULL)
        return NULL;
    struct agg *a = strmap_get(c->maps[t], key);
    if (fresh != NULL)
        *fresh = a == NULL;
    if (a == NULL) {
        int err = 0;
        if ((a = calloc(1, sizeof(*a))) == NULL)
            return NULL;
        a->row = r;
        snprintf(a->min_start, sizeof(a->min_start), "%s", r->start);
        strmap_put(c->maps[t], key, a, &err);
        if (err < 0) {
            free(a);
            return NULL;
        }
    }
    if (strcmp(r->start, a->min_start) < 0)
        snprintf(a->min_start, sizeof(a->min_start), "%s", r->start);
    add_sums(&a->s, r, overflow);
    return a;
}

/* The first 128 bits of SHA-256 of the group's composite key, as hex. */
static int group_of(struct agg *a, const char *key)
{
    char hex[KEYHASH_HEX_LEN + 1];
    if (keyhash_sha256_hex(key, strlen(key), hex) < 0)
        return -1;
    memcpy(a->group_hex, hex, 32);
    a->group_hex[32] = '\0';
    return 0;
}

/* Adds row r to usage_rollup's group id ("" for none) of dimension dim, on
 * its day and on its month. -1 on ENOMEM. */
static int account_usage(struct counters *c, const struct ledger_row *r, char dim, const char *id,
                         bool *overflow)
{
    char month[11];
    memcpy(month, r->day, 8); /* "YYYY-MM-" */
    memcpy(month + 8, "01", 3);
    const char *periods[] = {r->day, month};
    static const char grains[] = "dm";
    for (size_t i = 0; i < 2; i++) {
        const char *f[] = {(char[]){grains[i], 0}, (char[]){dim, 0}, periods[i], id};
        struct agg *a = account(c, T_USAGE, f, 4, r, overflow, NULL);
        if (a == NULL)
            return -1;
        a->grain[0] = grains[i];
        a->dim[0] = dim;
        memcpy(a->period, periods[i], sizeof(a->period));
        a->id = id;
    }
    return 0;
}

/* The config's budgets the row counts in (proxy, its provider, its
 * deployment), by the rule resets recount by (config_budget_covers). */
static int account_config_budgets(struct counters *c, const struct ledger_row *r, bool *overflow)
{
    const char *model_id = ledger_nonempty(r->e->model_id);
    for (size_t i = 0; c->cfg != NULL && i < c->cfg->n_budgets; i++) {
        const char *b = c->cfg->budgets[i].key;
        if (!config_budget_covers(b, r->provider, model_id))
            continue;
        struct agg *a = account(c, T_CONFIG, (const char *[]){b}, 1, r, overflow, NULL);
        if (a == NULL)
            return -1;
        a->id = b;
    }
    return 0;
}

/* Adds one inserted row to every aggregate it belongs to. -1 on ENOMEM. */
static int account_row(struct counters *c, const struct ledger_row *r, bool *overflow)
{
    const Tollgate__UsageEvent *e = r->e;
    const char *key = ledger_nonempty(e->api_key), *user = ledger_nonempty(e->user_id),
               *team = ledger_nonempty(e->team_id), *end_user = ledger_nonempty(e->end_user);
    const char *owners[] = {key, user, team, end_user};
    static const enum table owner_table[] = {T_KEYS, T_USERS, T_TEAMS, T_CUSTOMERS};
    static const char entity[] = "kutc";
    struct agg *a;
    for (size_t i = 0; i < 4; i++) {
        if (owners[i] == NULL)
            continue;
        const char *f[] = {owners[i]}, *fm[] = {(char[]){entity[i], 0}, owners[i], e->model};
        if ((a = account(c, owner_table[i], f, 1, r, overflow, NULL)) == NULL)
            return -1;
        a->id = owners[i];
        if ((a = account(c, T_ENTITY_MODEL, fm, 3, r, overflow, NULL)) == NULL)
            return -1;
        a->entity = entity[i];
        a->id = owners[i];
    }
    if (team != NULL && user != NULL) {
        const char *f[] = {team, user};
        if ((a = account(c, T_MEMBERS, f, 2, r, overflow, NULL)) == NULL)
            return -1;
        a->id = team;
        a->id2 = user;
    }
    const char *g[] = {key ? key : "", user, team, end_user, e->model_group, e->model, r->provider};
    bool fresh;
    if ((a = account(c, T_DAILY, (const char *[]){r->day, g[0], g[1], g[2], g[3], g[4], g[5], g[6]},
                     8, r, overflow, &fresh)) == NULL ||
        (fresh && group_of(a, counters_compose(c, g, 7)) < 0))
        return -1;
    if (account_usage(c, r, 't', team ? team : "", overflow) < 0 ||
        account_usage(c, r, 'k', key ? key : "", overflow) < 0 ||
        account_usage(c, r, 'c', end_user ? end_user : "", overflow) < 0 ||
        account_usage(c, r, 'm', e->model, overflow) < 0)
        return -1;
    for (size_t i = 0; i < e->n_tags; i++) {
        const char *tag = ledger_nonempty(e->tags[i]);
        bool seen = false;
        for (size_t k = 0; tag != NULL && k < i && !seen; k++)
            seen = strcmp(e->tags[k], tag) == 0;
        if (tag == NULL || seen)
            continue;
        const char *f[] = {tag}, *fm[] = {"g", tag, e->model},
                   *tg[] = {tag, key ? key : "", e->model_group, e->model, r->provider};
        if ((a = account(c, T_TAGS, f, 1, r, overflow, NULL)) == NULL)
            return -1;
        a->id = tag;
        if ((a = account(c, T_ENTITY_MODEL, fm, 3, r, overflow, NULL)) == NULL)
            return -1;
        a->entity = 'g';
        a->id = tag;
        if ((a = account(c, T_DAILY_TAG, (const char *[]){r->day, tg[0], tg[1], tg[2], tg[3], tg[4]},
                         6, r, overflow, &fresh)) == NULL ||
            (fresh && group_of(a, counters_compose(c, tg, 5)) < 0))
            return -1;
        a->id = tag;
        if ((a = account(c, T_DAILY_TAG_TOTAL, (const char *[]){r->day, tag}, 2, r, overflow,
                         NULL)) == NULL)
            return -1;
        a->id = tag;
        if (account_usage(c, r, 'g', tag, overflow) < 0)
            return -1;
    }
    return account_config_budgets(c, r, overflow);
}

/* The bulk parameters of one aggregate of table t into p; returns how many. */
static size_t params_of(enum table t, struct agg *a, struct db_param *p, char entity[2])
{
    const struct ledger_row *r = a->row;
    const Tollgate__UsageEvent *e = r->e;
    const struct sums *s = &a->s;
    money_format(s->spend, a->spend_text);
    if (t == T_ENTITY_MODEL) {
        entity[0] = a->entity, entity[1] = '\0';
        p[0] = DB_STR(entity), p[1] = DB_STR(a->id), p[2] = DB_STR(e->model),
        p[3] = DB_STR(a->spend_text);
        return 4;
    }
    size_t n = 0;
    if (t == T_USAGE) {
        p[n++] = DB_STR(a->grain);
        p[n++] = DB_STR(a->dim);
        p[n++] = DB_STR(a->period);
        p[n++] = DB_STR(a->id);
        p[n++] = DB_STR(a->spend_text);
        const int64_t v[] = {s->prompt, s->completion, s->total, s->requests};
        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
            p[n++] = DB_I64(v[i]);
        return n;
    }
    if (t == T_DAILY_TAG_TOTAL) {
        p[n++] = DB_STR(r->day);
        p[n++] = DB_STR(a->id);
        p[n++] = DB_STR(a->spend_text);
        const int64_t v[] = {s->prompt, s->completion, s->total, s->requests, s->ok, s->failed};
        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
            p[n++] = DB_I64(v[i]);
        return n;
    }
    p[n++] = DB_STR(r->day);
    p[n++] = DB_STR(a->group_hex);
    if (t == T_DAILY_TAG)
        p[n++] = DB_STR(a->id);
    p[n++] = DB_STR(e->api_key ? e->api_key : "");
    if (t == T_DAILY) {
        p[n++] = DB_STR(ledger_nonempty(e->user_id));
        p[n++] = DB_STR(ledger_nonempty(e->team_id));
        p[n++] = DB_STR(ledger_nonempty(e->end_user));
    }
    p[n++] = DB_STR(e->model_group);
    p[n++] = DB_STR(e->model);
    p[n++] = DB_STR(r->provider);
    p[n++] = DB_STR(a->spend_text);
    const int64_t v[] = {s->prompt, s->completion, s->total, s->cache_read, s->cache_write,
                         s->requests, s->ok, s->failed};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        p[n++] = DB_I64(v[i]);
    return n;
}

static int cmp_agg(const void *x, const void *y)
{
    return strcmp((*(struct agg *const *)x)->key, (*(struct agg *const *)y)->key);
}

struct agg **counters_sorted(struct counters *c, enum table t, size_t *n)
{
    size_t pos = 0, k = 0;
    const char *key;
    void *v;
    *n = 0;
    struct agg **list = strmap_count(c->maps[t]) > 0
        ? malloc(strmap_count(c->maps[t]) * sizeof(*list)) : NULL;
    if (list == NULL)
        return NULL;
    while (strmap_next(c->maps[t], &pos, &key, &v) == 0) {
        list[k] = v;
        list[k++]->key = key;
    }
    qsort(list, k, sizeof(*list), cmp_agg);
    *n = k;
    return list;
}

/* Writes a lifetime table's aggregates, sorted by key, in one bulk statement. */
static int write_table(MYSQL *db, struct counters *c, enum table t, unsigned *errnum,
                       char *err, size_t errlen)
{
    if (strmap_count(c->maps[t]) == 0)
        return 0;
    size_t k = 0;
    struct agg **list = counters_sorted(c, t, &k);
    char (*entities)[2] = malloc(strmap_count(c->maps[t]) * sizeof(*entities));
    struct db_param p[MAX_COLS];
    struct db_bulk *b = NULL;
    int rc = -1;
    if (list == NULL || entities == NULL)
        goto oom;
    for (size_t i = 0; i < k; i++) {
        size_t cols = params_of(t, list[i], p, entities[i]);
        if ((b == NULL && (b = db_bulk_new(cols)) == NULL) || db_bulk_add(b, p) < 0)
            goto oom;
    }
    rc = db_bulk_exec(db, SQL[t], b, NULL, errnum, err, errlen);
    goto out;
oom:
    snprintf(err, errlen, "out of memory");
out:
    db_bulk_free(b);
    free(entities);
    free(list);
    return rc;
}

static void counters_free(struct counters *c)
{
    for (size_t t = 0; t < T_COUNT; t++)
        strmap_free(c->maps[t], free);
    free(c->keybuf);
}

int counters_apply(MYSQL *db, const struct config *cfg, const struct ledger_row *rows, size_t n,
                   struct spend_list *spent,
                   unsigned *errnum, char *err, size_t errlen)
{
    struct counters c = {.spent = spent, .cfg = cfg};
    bool overflow = false;
    int rc = -1;
    *errnum = 0;
    for (size_t t = 0; t < T_COUNT; t++)
        if ((c.maps[t] = strmap_new()) == NULL)
            goto oom;
    for (size_t i = 0; i < n; i++)
        if (rows[i].inserted && account_row(&c, &rows[i], &overflow) < 0)
            goto oom;
    if (overflow) {
        snprintf(err, errlen, "a counter's sum does not fit DECIMAL(38,20)");
        goto out;
    }
    for (size_t t = 0; t < T_COUNT; t++) /* the lock order: the same for every writer */
        if ((TABLE_HAS_PERIODS(t) ? periods_write(db, &c, rows, n, (enum table)t, errnum, err, errlen)
                                : write_table(db, &c, (enum table)t, errnum, err, errlen)) < 0)
            goto out;
    rc = 0;
    goto out;
oom:
    snprintf(err, errlen, "out of memory");
out:
    counters_free(&c);
    return rc;
}
