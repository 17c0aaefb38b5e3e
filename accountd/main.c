/* main.c - accountd: wiring only.
 *
 * accountd receives usage events from proxyd (intake.c), prices them and
 * commits them to the MariaDB ledger (ledger.c), then acks. It is the only
 * writer of spend. `accountd -c FILE --migrate` applies schema migrations.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mysql.h>

#include "config.h"
#include "db.h"
#include "intake.h"
#include "budget_period.h"
#include "clock.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"
#include "resets.h"
#include "retention.h"
#include "runtime.h"
#include "updates.h"
#include "price.h"

#define POLL_MS 200       /* how often the loop looks at the stop flag when idle */
#define RESET_TICK_MS 250 /* how often due budget resets are looked for */
#define RETENTION_TICK_MS 60000 /* how often log rows past the retention period are deleted */

static volatile int stop_flag; /* set by SIGTERM/SIGINT */

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: accountd -c CONFIG [--instance N] [--migrate]\n"
                    "  --instance N  bind the N-th (from 1) of tollgate.accountd.events and\n"
                    "                .updates (default 1), one per accountd instance\n");
}

static int migrate(const struct config *cfg)
{
    char err[1024];
    int applied = 0;
    MYSQL *db = db_connect(&cfg->db, err, sizeof(err));
    if (db == NULL || db_migrate(db, &applied, err, sizeof(err)) < 0) {
        log_error("migration failed: %s", err);
        if (db != NULL)
            mysql_close(db);
        return 1;
    }
    log_info("schema at version %d (%d migration%s applied)", db_schema_latest(), applied,
             applied == 1 ? "" : "s");
    mysql_close(db);
    return 0;
}

/* accountd's own counters (the ledger declares its own, ledger.h). */
struct counters_ids {
    int events, batches, resets;
};

static int declare_counters(struct metrics *m, struct counters_ids *ids)
{
    return (ids->events = metrics_counter(m, "tollgate_accountd_events_committed_total",
                                          "Usage events committed (or found already in the"
                                          " ledger) and acknowledged", NULL)) < 0 ||
           (ids->batches = metrics_counter(m, "tollgate_accountd_batches_committed_total",
                                           "Ledger transactions committed", NULL)) < 0 ||
           (ids->resets = metrics_counter(m, "tollgate_accountd_budget_resets_total",
                                          "Budget periods reset", NULL)) < 0 ? -1 : 0;
}

/* Resets the budgets that are due; logs once per change between working and
 * failing. Returns whether it failed. */
static bool tick_resets(MYSQL *db, struct updates *up, bool was_failing, struct metrics *m,
                        int counter)
{
    char err[1024];
    int n = resets_run(db, up, time(NULL), err, sizeof(err));
    bool failing = n < 0;
    if (n > 0)
        metrics_add(m, counter, NULL, (uint64_t)n);
    if (failing && !was_failing)
        log_error("budget resets failed (will retry): %s", err);
    else if (!failing && was_failing)
        log_info("budget resets work again");
    return failing;
}

/* Deletes log rows past the retention period (a chunk per tick). */
static void tick_retention(MYSQL *db, long retention_s)
{
    char err[1024];
    long n = retention_run(db, time(NULL) - retention_s, err, sizeof(err));
    if (n < 0)
        log_error("log retention: %s (will retry)", err);
    else if (n > 0)
        log_info("log retention: deleted %ld log rows older than %ld days", n, retention_s / 86400);
}

static int run(const struct config *cfg, size_t instance)
{
    const char *events = cfg->accountd.events[instance], *updates = cfg->accountd.updates[instance];
    char err[1024];
    struct sigaction sa = {.sa_handler = on_signal};
    struct intake_batch batch = {0};
    struct price_table *prices = price_table_open(cfg->price_file, err, sizeof(err));
    if (prices == NULL) {
        log_error("cannot load prices: %s", err);
        return 1;
    }
    struct ledger *ledger = NULL;
    struct intake *in = NULL;
    struct updates *up = NULL;
    struct metrics *metrics = metrics_new();
    struct metrics_server *metrics_srv = NULL;
    struct counters_ids ids;
    int rc = 1;
    if (metrics == NULL || declare_counters(metrics, &ids) < 0) {
        log_error("out of memory");
        goto out;
    }
    if (period_set_timezone(cfg->timezone) < 0) {
        log_error("time zone %s is not installed", cfg->timezone);
        goto out;
    }
    if (db_schema_check_at(&cfg->db, err, sizeof(err)) < 0) {
        log_error("%s", err);
        goto out;
    }
    if ((ledger = ledger_new(&cfg->db, prices, metrics, err, sizeof(err))) != NULL)
        ledger->retention_s = cfg->log_retention_s;
    if (ledger == NULL ||
        (in = intake_new(events, cfg->accountd.batch_max_events, cfg->accountd.batch_wait_ms,
                         err, sizeof(err))) == NULL ||
        (up = updates_new(updates, err, sizeof(err))) == NULL ||
        (cfg->accountd.n_metrics > 0 &&
         (metrics_srv = metrics_serve(metrics, &cfg->accountd.metrics[instance], err,
                                      sizeof(err))) == NULL)) {
        log_error("%s", err);
        goto out;
    }
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    log_info("accountd ready: instance %zu of %zu, events on %s, updates on %s, %zu priced models",
             instance + 1, cfg->accountd.n_accountd, events, updates, price_table_count(prices));
    size_t committed = 0, batches = 0;
    int64_t last_reset = 0, last_retention = 0;
    bool resets_failing = false;
    while (!stop_flag) {
        if (clock_ms() - last_reset >= RESET_TICK_MS && ledger->db != NULL) {
            last_reset = clock_ms();
            resets_failing = tick_resets(ledger->db, up, resets_failing, metrics, ids.resets);
        }
        if (cfg->log_retention_s > 0 && ledger->db != NULL &&
            (last_retention == 0 || clock_ms() - last_retention >= RETENTION_TICK_MS)) {
            last_retention = clock_ms();
            tick_retention(ledger->db, cfg->log_retention_s);
        }
        if (intake_collect(in, &batch, POLL_MS) == 0)
            continue;
        if (ledger_commit(ledger, batch.events, batch.n_events, &stop_flag) == 0) {
            committed += batch.n_events;
            batches++;
            metrics_add(metrics, ids.events, NULL, batch.n_events);
            metrics_add(metrics, ids.batches, NULL, 1);
            intake_ack(in, &batch);
            updates_publish(up, &ledger->spent, batch.events, batch.n_events);
        }
        intake_batch_clear(&batch);
    }
    log_info("accountd stopping: committed %zu events in %zu batches", committed, batches);
    rc = 0;
out:
    metrics_server_free(metrics_srv);
    intake_batch_free(&batch);
    intake_free(in);
    updates_free(up);
    ledger_free(ledger);
    price_table_free(prices);
    metrics_free(metrics);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"migrate", no_argument, NULL, 'm'},
        {"instance", required_argument, NULL, 'i'}, {0}};
    const char *path = NULL;
    bool do_migrate = false;
    long instance = 1;
    char *end;
    int c;
    log_init("accountd");
    while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        if (c == 'c')
            path = optarg;
        else if (c == 'm')
            do_migrate = true;
        else if (c == 'i' && (instance = strtol(optarg, &end, 10)) >= 1 && *end == '\0' &&
                 instance <= CONFIG_MAX_ACCOUNTD)
            ;
        else {
            usage();
            return 2;
        }
    }
    if (path == NULL || optind != argc) {
        usage();
        return 2;
    }
    char err[1024];
    if (runtime_init() < 0)
        return 1;
    struct config *cfg = config_load(path, err, sizeof(err));
    int rc;
    if (cfg == NULL) {
        log_error("%s", err);
        rc = 1;
    } else if ((size_t)instance > cfg->accountd.n_accountd) {
        log_error("--instance %ld: %s names %zu accountd instance%s in tollgate.accountd.events",
                  instance, path, cfg->accountd.n_accountd, cfg->accountd.n_accountd == 1 ? "" : "s");
        rc = 2;
    } else {
        rc = do_migrate ? migrate(cfg) : run(cfg, (size_t)instance - 1);
    }
    config_free(cfg);
    runtime_end();
    return rc;
}
