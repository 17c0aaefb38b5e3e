/* main.c - accountd: wiring only.
 *
 * accountd receives usage events from proxyd (intake.c), gathers them into
 * batches (loop.c), has its writer threads (writers.c) price and commit
 * them to the MariaDB ledger (ledger.c), then acks. It is the only writer
 * of spend. `accountd -c FILE --migrate` applies schema migrations;
 * `accountd --curve-keygen PREFIX` makes a CURVE key pair for ZeroMQ.
 * Signals: SIGTERM/SIGINT stop it (the batches in hand are committed and
 * acked first), SIGHUP reloads the config and price file (settings.c).
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mysql.h>
#include <zmq.h>

#include "budget_period.h"
#include "config.h"
#include "curve.h"
#include "db.h"
#include "intake.h"
#include "ledger.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "notify.h"
#include "price.h"
#include "runtime.h"
#include "settings.h"
#include "updates.h"
#include "writers.h"
#include "zap.h"

static volatile int stop_flag;            /* set by SIGTERM/SIGINT */
static volatile sig_atomic_t reload_flag; /* set by SIGHUP */

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        reload_flag = 1;
    else
        stop_flag = 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: accountd -c CONFIG [--instance N] [--migrate]\n"
                    "       accountd --curve-keygen PREFIX\n"
                    "  --instance N  bind the N-th (from 1) of tollgate.accountd.events and\n"
                    "                .updates (default 1), one per accountd instance\n"
                    "  --curve-keygen PREFIX  write a new CURVE key pair: PREFIX.key (secret,\n"
                    "                mode 0600) and PREFIX.pub (public); prints the public key\n");
}

/* --curve-keygen PREFIX: the public key on stdout, for the config's lists. */
static int make_keys(const char *prefix)
{
    char err[1024], pub[CURVE_Z85_LEN + 1];
    if (curve_keygen(prefix, pub, err, sizeof(err)) < 0) {
        log_error("%s", err);
        return 1;
    }
    printf("%s\n", pub);
    return fflush(stdout) == 0 ? 0 : 1;
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

/* Both ZeroMQ sockets in one context, behind its ZAP handler and this
 * instance's CURVE key (`curve: off`: plain, loopback only). */
static int open_zmq(struct accountd *a, char *err, size_t errlen)
{
    const struct curve_config *c = &a->cfg->curve;
    struct curve_keypair kp, *server = NULL;
    int rc = -1;
    if ((a->zmq_ctx = zmq_ctx_new()) == NULL) {
        snprintf(err, errlen, "ZeroMQ: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    if (c->off) {
        log_warn("tollgate.curve is off: ZeroMQ peers are not authenticated (loopback only)");
    } else {
        const char *file = c->server_secret_files[c->n_server_secret_files == 1 ? 0 : a->instance];
        if (curve_read_secret(file, &kp, err, errlen) < 0 ||
            (a->zap = zap_start(a->zmq_ctx, c, a->metrics, err, errlen)) == NULL)
            goto out;
        server = &kp;
        log_info("CURVE on: server key %s, %zu client key%s allowed", kp.public_key,
                 c->n_client_public_keys, c->n_client_public_keys == 1 ? "" : "s");
    }
    if ((a->in = intake_new(a->zmq_ctx, a->cfg->accountd.events[a->instance],
                            a->cfg->accountd.batch_max_events, server, err, errlen)) != NULL &&
        (a->up = updates_new(a->zmq_ctx, a->cfg->accountd.updates[a->instance], server, err,
                             errlen)) != NULL)
        rc = 0;
out:
    explicit_bzero(&kp, sizeof(kp));
    return rc;
}

/* Closes the sockets, then the context, which ends the ZAP thread. */
static void close_zmq(struct accountd *a)
{
    intake_free(a->in);
    updates_free(a->up);
    a->in = NULL;
    a->up = NULL;
    if (a->zmq_ctx != NULL)
        zmq_ctx_term(a->zmq_ctx);
    a->zmq_ctx = NULL;
    zap_join(a->zap);
    a->zap = NULL;
}

/* A writer is stuck in a MariaDB call past shutdown_grace_ms: it cannot be
 * joined, and what it holds (its ledger, the metrics, the settings) cannot
 * be freed under it. The acks already sent are flushed, then the process
 * ends. Its transaction is rolled back when the connection closes (or had
 * committed): either way proxyd resends its events, and the ledger counts
 * each once. */
static void abandon(struct accountd *a)
{
    close_zmq(a);
    log_info("accountd stopped without joining a stuck writer");
    _exit(0);
}

static int run(const struct config *cfg, size_t instance)
{
    const char *events = cfg->accountd.events[instance], *updates = cfg->accountd.updates[instance];
    char err[1024];
    struct sigaction sa = {.sa_handler = on_signal};
    /* SA_RESTART: a reload does not interrupt a MariaDB call (the loop's poll wakes anyway) */
    struct sigaction sa_hup = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
    struct accountd a = {.cfg = cfg, .instance = instance, .stop = &stop_flag,
                         .reload = &reload_flag};
    struct ledger_shared shared = {0};
    struct metrics_server *metrics_srv = NULL;
    int rc = 1;
    sigaction(SIGHUP, &sa_hup, NULL); /* early: a SIGHUP while starting must not kill it */
    struct price_table *prices = price_table_open(cfg->price_file, err, sizeof(err));
    if (prices == NULL) {
        log_error("cannot load prices: %s", err);
        return 1;
    }
    if ((a.gen = settings_new(cfg, false, prices)) == NULL) {
        log_error("out of memory");
        price_table_free(prices);
        return 1;
    }
    if ((a.metrics = metrics_new()) == NULL || loop_declare_metrics(&a) < 0 ||
        ledger_shared_init(&shared, a.metrics) < 0) {
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
    if ((a.chores = ledger_new(&cfg->db, &shared, err, sizeof(err))) == NULL ||
        (a.writers = writers_new((size_t)cfg->accountd.writers, &cfg->db, &shared, &stop_flag,
                                 err, sizeof(err))) == NULL ||
        open_zmq(&a, err, sizeof(err)) < 0 ||
        (cfg->accountd.n_metrics > 0 &&
         (metrics_srv = metrics_serve(a.metrics, &cfg->accountd.metrics[instance], err,
                                      sizeof(err))) == NULL)) {
        log_error("%s", err);
        goto out;
    }
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    log_info("accountd ready: instance %zu of %zu, events on %s, updates on %s, %d writers,"
             " %zu priced models", instance + 1, cfg->accountd.n_accountd, events, updates,
             cfg->accountd.writers, price_table_count(a.gen->prices));
    char status[256];
    snprintf(status, sizeof(status), "accountd instance %zu of %zu: events on %s", instance + 1,
             cfg->accountd.n_accountd, events);
    notify_ready(status);
    bool drained = loop_run(&a);
    log_info("accountd stopping: committed %zu events in %zu batches", a.committed, a.batches);
    if (!drained)
        abandon(&a);
    rc = 0;
out:
    metrics_server_free(metrics_srv);
    writers_free(a.writers);
    close_zmq(&a);
    ledger_free(a.chores);
    ledger_shared_destroy(&shared);
    settings_unref(a.gen);
    metrics_free(a.metrics);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"migrate", no_argument, NULL, 'm'},
        {"instance", required_argument, NULL, 'i'},
        {"curve-keygen", required_argument, NULL, 'k'}, {0}};
    const char *path = NULL, *keygen = NULL;
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
        else if (c == 'k')
            keygen = optarg;
        else if (c == 'i' && (instance = strtol(optarg, &end, 10)) >= 1 && *end == '\0' &&
                 instance <= CONFIG_MAX_ACCOUNTD)
            ;
        else {
            usage();
            return 2;
        }
    }
    char err[1024];
    if (keygen != NULL && path == NULL && optind == argc)
        return make_keys(keygen);
    if (path == NULL || keygen != NULL || optind != argc) {
        usage();
        return 2;
    }
    if (runtime_init() < 0)
        return 1;
    struct config *cfg = config_load(path, err, sizeof(err));
    int rc;
    if (cfg == NULL) {
        log_error("%s", err);
        rc = 1;
    } else if (log_configure(cfg->log_format, cfg->log_level),
               (size_t)instance > cfg->accountd.n_accountd) {
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
