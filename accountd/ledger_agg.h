/* ledger_agg.h - the aggregates of one batch, shared by ledger_counters.c
 * (which builds them and writes the lifetime tables) and ledger_periods.c
 * (which writes the period spend of the budget owners). Private to accountd's
 * ledger. */
#ifndef ACCOUNTD_LEDGER_AGG_H
#define ACCOUNTD_LEDGER_AGG_H

#include <mysql.h>
#include <stddef.h>

#include "ledger_rows.h"
#include "money.h"
#include "strmap.h"
#include "updates.h"

struct sums {
    money_t spend;
    int64_t prompt, completion, total, cache_read, cache_write, requests, ok, failed;
};

/* One counter row to write: its key, what identifies it, and its sums. */
struct agg {
    const char *key;              /* the composite key (owned by the map) */
    const struct ledger_row *row; /* a row of the group: its dimensions */
    char entity;                  /* entity_model_spend */
    char grain[2], dim[2];        /* usage_rollup: "d" or "m"; "t", "k", "c", "m" or "g" */
    char period[11];              /* usage_rollup: the day or the month's first day */
    const char *id, *id2;         /* entity id / tag / team; team member's user */
    char min_start[DB_DATETIME_MAX]; /* the earliest request start among its rows */
    char group_hex[33];           /* rollups */
    char spend_text[MONEY_STR_MAX];
    struct sums s;
};

/* In lock order: every writer writes the tables in this order. The config's
 * budgets come last: every batch of every accountd updates the row "proxy",
 * so its lock is taken as late, and held as briefly, as can be. */
enum table {
    T_KEYS, T_USERS, T_TEAMS, T_MEMBERS, T_CUSTOMERS, T_TAGS, T_ENTITY_MODEL, T_DAILY,
    T_DAILY_TAG, T_DAILY_TAG_TOTAL, T_USAGE, T_CONFIG, T_COUNT
};

/* Is t a budget owners' table (period spend, ledger_periods.c)? */
#define TABLE_HAS_PERIODS(t) ((t) < T_ENTITY_MODEL || (t) == T_CONFIG)

struct counters {
    struct strmap *maps[T_COUNT]; /* composite key -> struct agg */
    struct spend_list *spent;     /* the owners' spend as written (ledger_periods.c) */
    const struct config *cfg;     /* its budgets: which config_budgets rows a row counts in */
    char *keybuf;                 /* scratch for composite keys */
    size_t keycap;
};

/* "LEN:TEXT|" for each field (NULL as "-|"), in c->keybuf. */
const char *counters_compose(struct counters *c, const char *const *fields, size_t n);

/* Table t's aggregates sorted by key (the lock order within a table); the
 * caller frees the array. NULL with *n 0 when there are none or on ENOMEM. */
struct agg **counters_sorted(struct counters *c, enum table t, size_t *n);

/* Writes the period spend of keys, internal users, teams, team members, end
 * users and tags (ledger_periods.c): an event counts only if its request
 * started at or after its owner's budget_period_start. */
int periods_write(MYSQL *db, struct counters *c, const struct ledger_row *rows, size_t nrows,
                  enum table t, unsigned *errnum, char *err, size_t errlen);

#endif
