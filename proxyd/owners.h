/* owners.h - end users (customers) and tags as budget owners: their rows,
 * cached like keys and fetched by the keystore's MariaDB thread. */
#ifndef PROXYD_OWNERS_H
#define PROXYD_OWNERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keystore.h"

#define OWNERS_MAX_TAGS 32 /* tags per request; more is a 400 */

/* A customer's or a tag's row (found false: never seen, no budget). */
struct owner_row {
    bool found, blocked;
    struct budget_row budget;
    int64_t fetched_ms;
};

/* customer is NULL when the request names no end user; tags[i] matches the
 * i-th tag asked for. Rows are valid during the call only; error != NULL
 * when MariaDB could not be asked. */
typedef void (*owners_cb)(const struct owner_row *customer, const struct owner_row *const *tags,
                          size_t ntags, const char *error, void *arg);

struct owners;

struct owners *owners_new(struct keystore *ks, const struct config *cfg);
void owners_free(struct owners *o);

/* Rows of the end user and tags of one request; cb may run before return. */
void owners_lookup(struct owners *o, const char *end_user, const char *const *tags, size_t ntags,
                   owners_cb cb, void *arg);

#endif
