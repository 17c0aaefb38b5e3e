/* keystore.h - virtual key data for proxyd, without blocking the loop.
 *
 * A bounded cache of key rows (by SHA-256 hash) in front of MariaDB, and a
 * smaller one of hashes MariaDB did not know. Misses and stale entries are
 * fetched by one worker thread with its own connection; the answer comes
 * back to the loop thread through a libevent event. Lookups of keys never
 * seen are capped (key_lookups_max) and run after every other lookup, so a
 * flood of made-up keys is refused (KEYSTORE_BUSY) instead of queued, and
 * known keys never wait behind it.
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

/* An owner's requests and tokens per minute; -1: not set. */
struct rate_limits {
    int64_t rpm, tpm;
};

/* What proxyd knows of a key, its internal user and its team. Strings are
 * owned by the struct. */
struct keyinfo {
    char token[KEYHASH_HEX_LEN + 1];
    bool found;
    char *key_alias, *user_id, *team_id;
    char *models_json;   /* JSON array of allowed model groups; "[]" = all */
    char *team_models_json; /* its team's, the same way; NULL: no team */
    char *tags_json;     /* JSON array of tags added to every request of the key */
    bool blocked, team_blocked;
    bool proxy_admin;    /* its internal user's role is proxy_admin */
    int64_t expires_us;  /* 0 = never */
    struct budget_row key, user, team;
    struct budget_row member; /* the user's max_budget_in_team and spend in the team */
    /* rate limits (call_limits.c): the key's, its user's, its team's and its
     * membership budget's; the key's max_parallel_requests (-1: none); the
     * key's and the team's metadata model_rpm_limit / model_tpm_limit as
     * {"key_rpm": {GROUP: N}, "key_tpm", "team_rpm", "team_tpm"} (NULL: none) */
    struct rate_limits key_rate, user_rate, team_rate, member_rate;
    int64_t max_parallel;
    char *model_rate_json;
    int64_t fetched_ms;  /* monotonic time the fetch started: spend is as of then */
};

/* A unit of work for the keystore's MariaDB thread. */
struct keystore_job {
    struct keystore_job *next;
    void (*run)(struct keystore_job *j, MYSQL **db, const struct config *cfg); /* worker */
    void (*finish)(struct keystore_job *j); /* loop thread; frees j */
    bool ok;
    bool unseen; /* set by keystore_submit_unseen: counts against key_lookups_max */
    char error[256];
};

/* The error of a lookup refused because key_lookups_max lookups of keys
 * (or owners) never seen are in flight: the caller answers 429 with a
 * Retry-After. Compare the pointer. */
extern const char KEYSTORE_BUSY[];

/* Called on the loop thread. info is valid only during the call; NULL when
 * the database could not be asked (the caller answers 503) or the lookup was
 * refused (error == KEYSTORE_BUSY). */
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
 * worker. A hash MariaDB did not know less than key_negative_ttl_ms ago is
 * answered "not found" at once; one not in either cache is a never-seen
 * lookup (KEYSTORE_BUSY past key_lookups_max). cb may run before return. */
void keystore_lookup(struct keystore *ks, const char *token, keystore_cb cb, void *arg);

/* Queues a job for the worker thread (ahead of every never-seen lookup). */
void keystore_submit(struct keystore *ks, struct keystore_job *j);
/* Queues a job that looks up something never seen (an end user, a tag)
 * behind the others; -1 (j not taken) when key_lookups_max such lookups are
 * already in flight. */
int keystore_submit_unseen(struct keystore *ks, struct keystore_job *j);

/* Worker thread: runs a query on the worker's connection, (re)connecting;
 * on failure fills j->error and drops the connection. */
int keystore_query(MYSQL **db, const struct config *cfg, const char *sql,
                   const struct db_param *params, size_t n, struct db_result **res,
                   struct keystore_job *j);

/* Reads a budget_row from a result's cells col (max_budget), col + 1
 * (spend) and col + 2 (budget_reset_at as Unix microseconds, 0 for none). */
void budget_cells(const struct db_result *r, size_t row, size_t col, struct budget_row *b);
/* Cells rpm and tpm (NULL: not set) from column col on. */
void rate_cells(const struct db_result *r, size_t row, size_t col, struct rate_limits *l);

/* How long MariaDB has been unreachable (0 when it answers). */
int64_t keystore_db_down_ms(struct keystore *ks);

/* Like keystore_lookup, but always answers with a row fetched from now on;
 * for a key known to exist (it queues ahead of never-seen lookups). */
void keystore_lookup_fresh(struct keystore *ks, const char *token, keystore_cb cb, void *arg);

/* What the caches hold and did, for /metrics. */
struct keystore_stats {
    size_t keys, unknown_keys;       /* entries in the key and negative caches */
    uint64_t evictions;              /* key rows forgotten to make room */
    uint64_t unknown_evictions;      /* unknown keys forgotten to make room */
    uint64_t negative_hits;          /* lookups answered "not found" from the negative cache */
    uint64_t refused;                /* lookups refused with KEYSTORE_BUSY */
    int unseen_in_flight;            /* never-seen lookups queued or running */
};
void keystore_stats(const struct keystore *ks, struct keystore_stats *out);

#endif
