/* owners.h - end users (customers), tags and the config's budgets (proxy,
 * provider, deployment) as budget owners: their rows, cached like keys (an
 * LRU of owner_cache_max_entries) and fetched by the keystore's MariaDB
 * thread. */
#ifndef PROXYD_OWNERS_H
#define PROXYD_OWNERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keystore.h"

#define OWNERS_MAX_TAGS 32 /* tags per request; more is a 400 */
#define OWNERS_OOM "out of memory" /* the error of a lookup that could not start */
#define OWNERS_BUSY_RETRY_S "1"    /* Retry-After of a lookup refused as KEYSTORE_BUSY */

/* A customer's, a tag's or a config budget's row (found false: never seen,
 * no budget; a config budget's maximum is the config's, not the row's). */
struct owner_row {
    bool found, blocked;
    struct budget_row budget;
    struct rate_limits rate; /* an end user's budget's rpm / tpm (call_limits.c) */
    int64_t fetched_ms;
};

/* rows[i] answers names[i]; valid during the call only; error != NULL when
 * MariaDB could not be asked. */
typedef void (*owners_cb)(const struct owner_row *rows, size_t n, const char *error, void *arg);

struct owners;

struct owners *owners_new(struct keystore *ks, const struct config *cfg);
void owners_free(struct owners *o);

/* The rows of names ("c:<end user>", "g:<tag>", "p:<config budget key>");
 * cb may run before return. A name the cache does not hold makes it a
 * never-seen lookup: error KEYSTORE_BUSY (rows NULL) past key_lookups_max. */
void owners_lookup(struct owners *o, const char *const *names, size_t n, owners_cb cb, void *arg);

/* Rows cached and rows forgotten to make room, for /metrics. */
void owners_stats(const struct owners *o, size_t *rows, uint64_t *evictions);

#endif
