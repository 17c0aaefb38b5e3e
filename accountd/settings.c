/* settings.c - accountd's generations of settings and their reload (see
 * settings.h).
 *
 * Reload applies: the price file (and what it says), log_format/log_level,
 * batch_max_events, batch_wait_ms, shutdown_grace_ms and the log retention.
 * Everything the process binds or opens at start (the database, its
 * endpoints, the writer threads) and the time zone, which is process-wide
 * state the writers read while committing, need a restart: a changed one
 * is logged, never half applied. Per-deployment prices (model_list) reach
 * accountd inside each event, as proxyd priced them, so they follow
 * proxyd's config.
 */
#include "settings.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

struct settings *settings_new(const struct config *cfg, bool owns_cfg, struct price_table *prices)
{
    struct settings *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->cfg = cfg;
    s->owned_cfg = owns_cfg ? (struct config *)cfg : NULL;
    s->prices = prices;
    atomic_init(&s->refs, 1);
    return s;
}

struct settings *settings_ref(struct settings *s)
{
    atomic_fetch_add(&s->refs, 1);
    return s;
}

void settings_unref(struct settings *s)
{
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    price_table_free(s->prices);
    config_free(s->owned_cfg);
    free(s);
}

static void needs_restart(const char *key)
{
    log_warn("%s changed; takes effect after a restart", key);
}

/* Logs each setting that differs from the running one but needs a restart. */
static void compare_restart_only(const struct config *boot, const struct config *n, size_t i)
{
    const struct config *b = boot;
    if (config_db_differs(&b->db, &n->db))
        needs_restart("general_settings.database_url");
    if (config_str_differs(b->timezone, n->timezone))
        needs_restart("litellm_settings.timezone");
    if (b->accountd.writers != n->accountd.writers)
        needs_restart("tollgate.accountd.writers");
    if (config_curve_differs(&b->curve, &n->curve))
        needs_restart("tollgate.curve and the curve_* keys");
    if (i >= n->accountd.n_accountd) {
        log_warn("tollgate.accountd.events no longer names instance %zu; this instance keeps its"
                 " endpoints until a restart", i + 1);
        return;
    }
    if (strcmp(b->accountd.events[i], n->accountd.events[i]) != 0)
        needs_restart("tollgate.accountd.events");
    if (strcmp(b->accountd.updates[i], n->accountd.updates[i]) != 0)
        needs_restart("tollgate.accountd.updates");
    if ((b->accountd.n_metrics > 0) != (n->accountd.n_metrics > 0) ||
        (n->accountd.n_metrics > 0 &&
         config_addr_differs(&b->accountd.metrics[i], &n->accountd.metrics[i])))
        needs_restart("tollgate.accountd.metrics");
}

struct settings *settings_reload(const struct config *boot, size_t instance)
{
    char err[1024];
    struct config *cfg = config_load(boot->path, err, sizeof(err));
    struct price_table *prices = NULL;
    struct settings *s = NULL;
    if (cfg == NULL) {
        log_error("reload refused, the running configuration and prices stay in force: %s", err);
        return NULL;
    }
    if ((prices = price_table_open(cfg->price_file, err, sizeof(err))) == NULL) {
        log_error("reload refused, the running configuration and prices stay in force:"
                  " cannot load prices: %s", err);
        config_free(cfg);
        return NULL;
    }
    if ((s = settings_new(cfg, true, prices)) == NULL) {
        log_error("reload refused (out of memory), the running configuration and prices stay"
                  " in force");
        price_table_free(prices);
        config_free(cfg);
        return NULL;
    }
    compare_restart_only(boot, cfg, instance);
    log_info("reloaded %s: %zu priced models from %s", cfg->path, price_table_count(prices),
             cfg->price_file != NULL ? cfg->price_file : "the built-in price map");
    return s;
}
