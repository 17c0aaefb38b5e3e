/* reload.c - SIGHUP: re-reading the config file and the price file.
 *
 * The main thread reads and checks the new config while the workers go on
 * serving with the old one. Nothing changes unless all of it is good
 * (config_load's validation, which checks the time zone is installed; a
 * readable price file); else one error line says why and the old config stays in force.
 * A good one becomes the generation new requests get (generation.c): the
 * master key, the model list, the prices /spend/calculate uses. Requests in
 * flight finish with the generation they started with; connections stay
 * open.
 *
 * The process-wide settings (TZ, the budget periods' calendar; the log
 * level and format) are globals the workers read without a lock, so they
 * change only while every worker is parked between two callbacks of its
 * loop: the main thread posts park_here to each loop and waits, at most
 * PARK_WAIT_MS, until all are in it. A worker busy longer (a huge report)
 * gets the reload refused rather than raced; a later SIGHUP tries again.
 * Reloads that leave those settings alone never park anyone.
 *
 * Settings read only at start (listen, workers, the databases) are compared
 * with the start's and a change is logged as taking effect after a restart.
 */
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>

#include "budget_period.h"
#include "log.h"
#include "reportd.h"

/* How long a reload waits for busy workers before it is refused. */
#define PARK_WAIT_MS 5000

int park_init(struct park *p)
{
    pthread_condattr_t a;
    if (pthread_mutex_init(&p->lock, NULL) != 0)
        return -1;
    if (pthread_condattr_init(&a) != 0 ||
        pthread_condattr_setclock(&a, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&p->cond, &a) != 0) {
        pthread_mutex_destroy(&p->lock);
        return -1;
    }
    pthread_condattr_destroy(&a);
    return 0;
}

void park_fini(struct park *p)
{
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
}

/* On a worker's thread: wait while the main thread wants it parked. A late
 * callback (its park already given up) finds park_wanted false and returns. */
static void park_here(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct park *p = &w->d->park;
    (void)fd;
    (void)what;
    pthread_mutex_lock(&p->lock);
    if (w->park_wanted) {
        w->parked = true;
        pthread_cond_broadcast(&p->cond);
        while (w->park_wanted)
            pthread_cond_wait(&p->cond, &p->lock);
        w->parked = false;
    }
    pthread_mutex_unlock(&p->lock);
}

static void unpark_all(struct reportd *d)
{
    pthread_mutex_lock(&d->park.lock);
    for (int i = 0; i < d->n_workers; i++)
        d->workers[i].park_wanted = false;
    pthread_cond_broadcast(&d->park.cond);
    pthread_mutex_unlock(&d->park.lock);
}

static bool all_parked(const struct reportd *d)
{
    for (int i = 0; i < d->n_workers; i++)
        if (!d->workers[i].parked)
            return false;
    return true;
}

/* 0 with every worker parked (unpark_all must follow), -1 when one could
 * not be reached or stayed busy PARK_WAIT_MS (nobody left parked). */
static int park_all(struct reportd *d)
{
    struct timeval now = {0, 0};
    struct timespec until;
    int rc = 0;
    pthread_mutex_lock(&d->park.lock);
    for (int i = 0; i < d->n_workers; i++)
        d->workers[i].park_wanted = true;
    pthread_mutex_unlock(&d->park.lock);
    for (int i = 0; i < d->n_workers && rc == 0; i++)
        if (event_base_once(d->workers[i].base, -1, EV_TIMEOUT, park_here, &d->workers[i],
                            &now) != 0)
            rc = -1;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += PARK_WAIT_MS / 1000;
    until.tv_nsec += (PARK_WAIT_MS % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&d->park.lock);
    while (rc == 0 && !all_parked(d))
        if (pthread_cond_timedwait(&d->park.cond, &d->park.lock, &until) == ETIMEDOUT)
            rc = all_parked(d) ? 0 : -1;
    pthread_mutex_unlock(&d->park.lock);
    if (rc < 0)
        unpark_all(d);
    return rc;
}

/* Logs each start-only setting next changes from the one in force. */
static void warn_restart_only(const struct config *now, const struct config *next)
{
    const char *changed[5];
    size_t n = 0;
    if (strcmp(now->reportd.listen.host, next->reportd.listen.host) != 0 ||
        now->reportd.listen.port != next->reportd.listen.port)
        changed[n++] = "tollgate.reportd.listen";
    if (now->reportd.workers != next->reportd.workers)
        changed[n++] = "tollgate.reportd.workers";
    if (config_db_differs(&now->db, &next->db))
        changed[n++] = "general_settings.database_url";
    if (config_db_differs(&now->reportd.read_db, &next->reportd.read_db))
        changed[n++] = "tollgate.reportd.read_database_url";
    if (config_http_limits_differ(&now->reportd.http, &next->reportd.http))
        changed[n++] = "tollgate.reportd header and connection limits";
    for (size_t i = 0; i < n; i++)
        log_warn("%s changed; takes effect after a restart", changed[i]);
}

/* Does next change a setting only a park may change? */
static bool changes_globals(const struct config *now, const struct config *next)
{
    return strcmp(now->timezone, next->timezone) != 0 ||
           strcmp(now->log_format, next->log_format) != 0 ||
           strcmp(now->log_level, next->log_level) != 0;
}

/* Applies next's process-wide settings, the workers parked. */
static int apply_globals(const struct config *next, char *err, size_t errlen)
{
    if (period_set_timezone(next->timezone) < 0) {
        snprintf(err, errlen, "cannot switch to time zone %s", next->timezone);
        return -1;
    }
    log_configure(next->log_format, next->log_level);
    return 0;
}

/* Makes g current (the caller's reference passes to the holder). -1 with
 * err when the process-wide settings could not change (g is released). */
static int install(struct reportd *d, struct generation *g, char *err, size_t errlen)
{
    /* only this thread swaps cur, so reading it here needs no lock */
    const struct config *now = d->gens.cur->cfg;
    bool globals = changes_globals(now, g->cfg);
    if (globals && park_all(d) < 0) {
        snprintf(err, errlen, "a worker stayed busy for %d ms, so the time zone and log"
                 " settings could not change safely; send SIGHUP again", PARK_WAIT_MS);
        gen_release(g);
        return -1;
    }
    if (globals && apply_globals(g->cfg, err, errlen) < 0) {
        /* the old zone stays (setenv failed before changing it) */
        unpark_all(d);
        gen_release(g);
        return -1;
    }
    warn_restart_only(d->boot->cfg, g->cfg);
    gen_swap(&d->gens, g);
    if (globals)
        unpark_all(d);
    return 0;
}

int reload_config(struct reportd *d)
{
    char err[1024] = "";
    struct price_table *prices = NULL;
    struct generation *g = NULL;
    struct config *cfg = config_load(d->config_path, err, sizeof(err));
    if (cfg == NULL) /* its validation covers the time zone too */
        goto refused;
    if ((prices = price_table_open(cfg->price_file, err, sizeof(err))) == NULL)
        goto refused;
    if ((g = gen_new(cfg, prices)) == NULL) {
        snprintf(err, sizeof(err), "out of memory");
        goto refused;
    }
    cfg = NULL; /* both g's now */
    prices = NULL;
    if (install(d, g, err, sizeof(err)) < 0)
        goto refused;
    log_info("config reloaded from %s", d->config_path);
    observe_reload(&d->obs, true);
    return 0;
refused:
    log_error("config reload refused, the running config stays in force: %s", err);
    observe_reload(&d->obs, false);
    if (g == NULL) {
        price_table_free(prices);
        config_free(cfg);
    }
    return -1;
}
