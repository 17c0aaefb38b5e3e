/* admission.h - budget admission: refusing spent budgets and reserving
 * in-flight requests' worst-case cost against them. */
#ifndef PROXYD_ADMISSION_H
#define PROXYD_ADMISSION_H

#include <stddef.h>
#include <stdint.h>

#include "keystore.h"
#include "money.h"

#include "owners.h"

/* key, internal user or team, team member, end user, tags, the config's
 * proxy, provider and deployment budgets */
#define ADMISSION_MAX_OWNERS (7 + OWNERS_MAX_TAGS)

struct admission;
struct owner;

/* What one admitted request holds. */
struct reservation {
    money_t amount;
    struct owner *owners[ADMISSION_MAX_OWNERS];
    size_t n;
};

/* stale_ms: the oldest key row proxyd still uses (KEYSTORE_STALE_MS). */
struct admission *admission_new(int64_t stale_ms);
void admission_free(struct admission *a);

#define ADMISSION_UNSURE (-2)

/* Why a request was refused: LiteLLM's message, and when the refusing
 * budget's period ends (Unix microseconds; 0 when it has no duration). */
struct admission_refusal {
    const char *kind; /* whose budget: key, user, team, team_member, end_user, tag, proxy */
    char msg[512];
    money_t spend;    /* what the refusing budget counts as spent */
    int64_t reset_at_us;
};

/* A budget beyond the key's chain: the end user ('c') or a tag ('g'). */
struct budget_extra {
    char kind;
    const char *id;
    const struct budget_row *row;
    int64_t fetched_ms;
};

/* Checks every budget of the key's chain (key; internal user when the key
 * has no team, as LiteLLM; team; k may be NULL for the master key) and the
 * extra ones (end user, tags). Refused when spend >= max budget, where
 * spend = the row's spend + what this proxyd knows the row does not include
 * yet + in-flight reservations. On refusal msg gets LiteLLM's message and
 * -1 is returned (why says which budget and when it resets); else the
 * reserve is held against each budget.
 * ADMISSION_UNSURE: refused only because of costs accountd has not acked
 * yet, which the row may already include; ask again with a row fetched
 * after their acks (why holds the refusal to give if it stays so). */
int admission_admit(struct admission *a, const struct keyinfo *k,
                    const struct budget_extra *extra, size_t n_extra, money_t reserve,
                    struct reservation *r, struct admission_refusal *why);

/* The request ended costing `actual`: the reservation goes, the cost counts
 * as unconfirmed until accountd has committed it and a key row fetched
 * after that includes it. */
void admission_settle(struct admission *a, struct reservation *r, money_t actual,
                      const char *request_id);

/* The request ended without a usage event (refused before relaying). */
void admission_release(struct admission *a, struct reservation *r);

/* accountd committed spend for owner ("k:<hash>", "u:<id>", ...), in a
 * period ending at reset_at_us (0: none): from now on it is the base for
 * that owner, instead of older rows. */
void admission_spend_update(struct admission *a, const char *owner, money_t spend,
                            int64_t reset_at_us);

/* accountd acknowledged (committed) request_id. */
void admission_acked(struct admission *a, const char *request_id);

#endif
