/* config_budget.h - the config's budgets (proxy, provider, deployment) in a
 * request: their rows, the proxy-wide check, and a deployment's admission
 * when the router picks it (config_budget.c). */
#ifndef PROXYD_CONFIG_BUDGET_H
#define PROXYD_CONFIG_BUDGET_H

#include <stdbool.h>
#include <stddef.h>

#include "call_priv.h"
#include "owners.h"

/* rows[i] is the row of cfg->budgets[i]: its maximum is the config's. */
void config_budget_rows(const struct config *cfg, struct owner_row *rows);

/* The proxy-wide budget as an extra budget of admission; false: none. */
bool config_budget_proxy(const struct call *c, struct budget_extra *out);

/* Reserves c's worst case against d's provider and deployment budgets
 * (releasing what a previous deployment held). false with LiteLLM's reason
 * in why when one is spent: the router passes d over. */
bool config_budget_admit(struct call *c, const struct deployment *d, char *why, size_t len);

/* Releases what the current deployment's budgets hold. */
void config_budget_release(struct call *c);

/* The request ends priced: the deployment's budgets join c->reservation, so
 * that one settlement counts the cost against all of them. */
void config_budget_join(struct call *c);

#endif
