/* config_budget.c - the budgets the config sets, in a request's life: the
 * proxy-wide litellm_settings.max_budget is checked with the key's budgets
 * before routing; a provider's and a deployment's (provider_budget_config,
 * litellm_params.max_budget) when the router picks a deployment, as
 * LiteLLM's budget routing: a spent one is passed over for the group's
 * other deployments, and when none is left the request gets LiteLLM's 429
 * "No deployments available - crossed budget". The request's worst case is
 * reserved against the chosen deployment's budgets like against the key's,
 * so concurrent requests overshoot them by at most one request.
 */
#include "config_budget.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "owners.h"
#include "reload.h"

#define MISSING_WARN_MS 60000 /* at most one warning a minute about missing rows */

void config_budget_rows(const struct config *cfg, struct owner_row *rows)
{
    static int64_t warned_ms; /* the loop thread's */
    for (size_t i = 0; i < cfg->n_budgets; i++) {
        rows[i].budget.has_max = true;
        rows[i].budget.max = cfg->budgets[i].max;
        if (rows[i].found)
            continue;
        /* accountd writes the row when its config has the budget: until
         * then nothing is counted in it, and it cannot refuse */
        rows[i].budget.spend = 0;
        rows[i].budget.reset_at_us = 0;
        if (clock_ms() - warned_ms > MISSING_WARN_MS || warned_ms == 0) {
            warned_ms = clock_ms();
            log_warn("config budget %s has no row in config_budgets yet: accountd counts it "
                     "once its config has it too (reload accountd as well)", cfg->budgets[i].key);
        }
    }
}

/* The extra budget of config budget b, as admission checks it. */
static struct budget_extra extra_of(const struct call *c, int b)
{
    const struct owner_row *row = &c->owner_rows[c->budget_rows + (size_t)b];
    return (struct budget_extra){'p', c->gen->cfg->budgets[b].key, &row->budget,
                                 row->fetched_ms};
}

bool config_budget_proxy(const struct call *c, struct budget_extra *out)
{
    if (c->gen->cfg->proxy_budget < 0 || c->budget_rows < 0)
        return false;
    *out = extra_of(c, c->gen->cfg->proxy_budget);
    return true;
}

/* LiteLLM's words for a deployment passed over. */
static void crossed(const struct call *c, const struct deployment *d, int b, const char *spend,
                    char *why, size_t len)
{
    const struct config_budget *cb = &c->gen->cfg->budgets[b];
    char max[MONEY_STR_MAX];
    money_format(cb->max, max);
    if (b == d->provider_budget)
        snprintf(why, len, "Exceeded budget for provider %s: %s >= %s", d->provider, spend, max);
    else
        snprintf(why, len, "Exceeded budget for deployment model_name: %s, litellm_params.model:"
                 " %s, model_id: %s: %s >= %s", d->model_name, d->model, d->model_id, spend, max);
}

bool config_budget_admit(struct call *c, const struct deployment *d, char *why, size_t len)
{
    struct budget_extra extra[2];
    int which[2];
    size_t n = 0;
    config_budget_release(c);
    if (c->budget_rows < 0)
        return true;
    if (d->provider_budget >= 0)
        which[n] = d->provider_budget, extra[n] = extra_of(c, d->provider_budget), n++;
    if (d->deployment_budget >= 0)
        which[n] = d->deployment_budget, extra[n] = extra_of(c, d->deployment_budget), n++;
    for (size_t i = 0; i < n; i++) {
        struct reservation r;
        struct admission_refusal refused;
        /* one at a time, to say which one is spent */
        if (admission_admit(c->px->admission, NULL, &extra[i], 1, c->reservation.amount, &r,
                            &refused) != 0) {
            char spend[MONEY_STR_MAX];
            money_format(refused.spend, spend);
            crossed(c, d, which[i], spend, why, len);
            config_budget_release(c);
            return false;
        }
        c->dep_reservation.amount = r.amount;
        for (size_t k = 0; k < r.n; k++)
            c->dep_reservation.owners[c->dep_reservation.n++] = r.owners[k];
    }
    return true;
}

void config_budget_release(struct call *c)
{
    admission_release(c->px->admission, &c->dep_reservation);
}

void config_budget_join(struct call *c)
{
    struct reservation *r = &c->reservation, *d = &c->dep_reservation;
    if (d->n == 0)
        return;
    if (r->n == 0)
        r->amount = d->amount; /* nothing holds r's amount */
    if (r->amount != d->amount || r->n + d->n > ADMISSION_MAX_OWNERS) {
        config_budget_release(c); /* cannot happen: one amount, room kept for them */
        return;
    }
    for (size_t i = 0; i < d->n; i++)
        r->owners[r->n++] = d->owners[i];
    d->n = 0;
}
