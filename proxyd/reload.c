/* reload.c - configuration generations and SIGHUP reloads (see reload.h). */
#include "reload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "router.h"
#include "stats.h"

/* Warns about every routed model the price map cannot price. */
static void warn_unpriced(const struct generation *g)
{
    for (size_t i = 0; i < g->cfg->n_deployments; i++) {
        const struct deployment *d = &g->cfg->deployments[i];
        if (!price_known(g->prices, d->model, &d->price))
            log_warn("model group %s: deployment %s has no price; its requests will be "
                     "logged as unpriced with cost 0", d->model_name, d->model);
    }
}

static struct generation *build(const struct config *cfg, struct event_base *base, char *err,
                                size_t errlen)
{
    struct generation *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    g->cfg = cfg;
    g->refs = 1;
    g->number = 1;
    if ((g->prices = price_table_open(cfg->price_file, err, errlen)) == NULL ||
        (g->router = router_new(cfg, err, errlen)) == NULL ||
        router_share_usage(g->router, base, err, errlen) < 0) {
        router_free(g->router);
        price_table_free(g->prices);
        free(g);
        return NULL;
    }
    warn_unpriced(g);
    return g;
}

struct generation *generation_first(const struct config *cfg, struct event_base *base,
                                    char *err, size_t errlen)
{
    return build(cfg, base, err, errlen);
}

struct generation *generation_ref(struct generation *g)
{
    g->refs++;
    return g;
}

void generation_unref(struct generation *g)
{
    if (g == NULL || --g->refs > 0)
        return;
    router_free(g->router);
    price_table_free(g->prices);
    config_free(g->owned);
    free(g);
}

/* Do the accountd endpoints proxyd connected to at start differ in new? */
static bool endpoints_differ(const struct config *old, const struct config *new)
{
    if (old->accountd.n_accountd != new->accountd.n_accountd)
        return true;
    for (size_t i = 0; i < old->accountd.n_accountd; i++)
        if (config_str_differs(old->accountd.events[i], new->accountd.events[i]) ||
            config_str_differs(old->accountd.updates[i], new->accountd.updates[i]))
            return true;
    return false;
}

/* Settings read once at start: a change is reported, and waits for a restart. */
static void report_restart_only(const struct config *old, const struct config *new)
{
    const struct { const char *name; bool changed; } s[] = {
        {"tollgate.proxyd.listen", config_addr_differs(&old->proxyd.listen, &new->proxyd.listen)},
        {"tollgate.proxyd.spool_dir", config_str_differs(old->proxyd.spool_dir, new->proxyd.spool_dir)},
        {"tollgate.proxyd.spool_*", old->proxyd.spool_fsync_ms != new->proxyd.spool_fsync_ms ||
                                        old->proxyd.spool_max_bytes != new->proxyd.spool_max_bytes ||
                                        old->proxyd.spool_segment_bytes != new->proxyd.spool_segment_bytes},
        {"tollgate.proxyd.reportd_url", config_str_differs(old->proxyd.reportd_url, new->proxyd.reportd_url)},
        {"tollgate.proxyd limits and timers",
         old->proxyd.max_body_bytes != new->proxyd.max_body_bytes ||
             old->proxyd.key_cache_ttl_ms != new->proxyd.key_cache_ttl_ms ||
             old->proxyd.event_resend_ms != new->proxyd.event_resend_ms ||
             old->proxyd.readiness_grace_ms != new->proxyd.readiness_grace_ms},
        {"general_settings.database_url", config_db_differs(&old->db, &new->db)},
        {"tollgate.accountd endpoints", endpoints_differ(old, new)},
        {"tollgate.curve and the curve_* keys", config_curve_differs(&old->curve, &new->curve)},
        {"tollgate.proxyd header, connection and metadata limits",
         config_http_limits_differ(&old->proxyd.http, &new->proxyd.http) ||
             old->proxyd.max_metadata_bytes != new->proxyd.max_metadata_bytes},
        {"tollgate.proxyd key and owner cache limits",
         old->proxyd.key_cache_max_entries != new->proxyd.key_cache_max_entries ||
             old->proxyd.owner_cache_max_entries != new->proxyd.owner_cache_max_entries ||
             old->proxyd.key_negative_ttl_ms != new->proxyd.key_negative_ttl_ms ||
             old->proxyd.key_negative_max_entries != new->proxyd.key_negative_max_entries ||
             old->proxyd.key_lookups_max != new->proxyd.key_lookups_max},
        {"the rate limits' Redis (router_settings.redis_*) and ratelimit_fallback, _instances,"
         " _slot_ttl_ms",
         memcmp(&old->router.redis, &new->router.redis, sizeof(old->router.redis)) != 0 ||
             old->ratelimit.fail_open != new->ratelimit.fail_open ||
             old->ratelimit.instances != new->ratelimit.instances ||
             old->ratelimit.slot_ttl_ms != new->ratelimit.slot_ttl_ms},
    };
    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
        if (s[i].changed)
            log_warn("reload: %s changed; takes effect after a restart", s[i].name);
}

int reload_config(struct proxy *px)
{
    char err[1024];
    struct config *cfg = config_load(px->cfg->path, err, sizeof(err));
    struct generation *g = cfg != NULL ? build(cfg, px->base, err, sizeof(err)) : NULL;
    if (g == NULL) {
        log_error("reload refused, the running configuration stays in force: %s", err);
        config_free(cfg);
        stats_reload(px->stats, false);
        return -1;
    }
    g->owned = cfg;
    g->number = px->gen->number + 1;
    report_restart_only(px->cfg, cfg);
    log_configure(cfg->log_format, cfg->log_level);
    generation_unref(px->gen); /* freed once its last request ends */
    px->gen = g;
    stats_reload(px->stats, true);
    log_info("reloaded %s (generation %u): %zu deployments, %zu priced models", cfg->path,
             g->number, cfg->n_deployments, price_table_count(g->prices));
    return 0;
}
