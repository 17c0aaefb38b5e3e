/* keystore.h - virtual key data for proxyd, without blocking the loop.
 *
 * A cache of key rows (by SHA-256 hash) in front of MariaDB. Misses and
 * stale entries are fetched by one worker thread with its own connection;
 * the answer comes back to the loop thread through a libevent event.
 */
#ifndef PROXYD_KEYSTORE_H
#define PROXYD_KEYSTORE_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "db.h"
#include "keyhash.h"
#include "money.h"

/* Spend and budget of one owner, as the database had them at fetch time. */
struct budget_row {
    bool has_max;
    money_t max, spend;
    int64_t reset_at_us; /* end of the budget period (Unix us); 0: no budget_duration */
};

/* What proxyd knows of a key, its internal user and its team. Strings are
 * owned by the struct. */
struct keyinfo {
    char token[KEYHASH_HEX_LEN + 1];
    bool found;
    char *key_alias, *user_id, *team_id;
    char *models_json;   /* JSON array of allowed model groups; "[]" = all */
    char *tags_json;     /* JSON array of tags added to every request of the key */
    bool blocked, team_blocked;
    bool proxy_admin;    /* its internal user's role is proxy_admin */
    int64_t expires_us;  /* 0 = never */
    struct budget_row key, user, team;
    struct budget_row member; /* the user's max_budget_in_team and spend in the team */
    int64_t fetched_ms;  /* monotonic time the fetch started: spend is as of then */
};

/* A unit of work for the keystore's MariaDB thread. */
struct keystore_job {
    struct keystore_job *next;
    void (*run)(struct keystore_job *j, MYSQL **db, const struct config *cfg); /* worker */
    void (*finish)(struct keystore_job *j); /* loop thread; frees j */
    bool ok;
    char error[256];
};

/* Called on the loop thread. info is valid only during the call; NULL when
 * the database could not be asked (the caller answers 503). */
typedef void (*keystore_cb)(const struct keyinfo *info, const char *error, void *arg);

/* How old a cached row may be and still answer while it is refreshed. Rows
 * are aged from the start of their fetch, so a change committed to MariaDB
 * (a key blocked, deleted, expired, a budget changed) reaches every request
 * that arrives more than this after it: 2 s with the default 1 s ttl. */
#define KEYSTORE_STALE_MS(ttl) ((ttl) + 1000)

struct keystore;

struct keystore *keystore_new(struct event_base *base, const struct config *cfg,
                              char *err, size_t errlen);
/* Stops the worker thread (waiting for the query in flight) and frees all. */
void keystore_free(struct keystore *ks);

/* Looks up token (a key hash). A row younger than key_cache_ttl_ms is used
 * as it is; an older one still answers (up to KEYSTORE_STALE_MS) while a
 * refresh runs in the background; otherwise the caller waits for the
 * worker. cb may run before return. */
void keystore_lookup(struct keystore *ks, const char *token, keystore_cb cb, void *arg);

/* Queues a job for the worker thread. */
void keystore_submit(struct keystore *ks, struct keystore_job *j);

/* Worker thread: runs a query on the worker's connection, (re)connecting;
 * on failure fills j->error and drops the connection. */
int keystore_query(MYSQL **db, const struct config *cfg, const char *sql,
                   const struct db_param *params, size_t n, struct db_result **res,
                   struct keystore_job *j);

/* Reads a budget_row from a result's cells col (max_budget), col + 1
 * (spend) and col + 2 (budget_reset_at as Unix microseconds, 0 for none). */
void budget_cells(const struct db_result *r, size_t row, size_t col, struct budget_row *b);

/* How long MariaDB has been unreachable (0 when it answers). */
int64_t keystore_db_down_ms(struct keystore *ks);

/* Like keystore_lookup, but always answers with a row fetched from now on. */
void keystore_lookup_fresh(struct keystore *ks, const char *token, keystore_cb cb, void *arg);

#endif
