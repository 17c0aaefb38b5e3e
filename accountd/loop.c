/* loop.c - accountd's main loop (see loop.h).
 *
 * One thread owns every ZeroMQ socket: it reads event messages into the
 * batch being gathered, hands a batch to an idle writer (writers.c) once it
 * has batch_max_events events or its first event is batch_wait_ms old, and
 * acks and publishes each batch a writer has committed. While every writer
 * is busy the batch keeps growing (up to batch_max_events, then messages
 * wait in ZeroMQ), so batches grow with the load and each transaction's
 * fixed costs are shared by more events. Budget resets run every 250 ms
 * and log retention every minute, on a connection of their own.
 *
 * SIGHUP swaps in a new generation of settings (settings.c) between two
 * iterations; a batch takes the generation current when it is handed to a
 * writer. SIGTERM ends the loop: the batches with the writers are waited
 * for (up to shutdown_grace_ms) and acked; the batch being gathered and
 * the messages still in ZeroMQ are never acked, so proxyd resends them.
 */
#include "loop.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "budgets_sync.h"
#include "clock.h"
#include "log.h"
#include "notify.h"
#include "resets.h"
#include "retention.h"

#define POLL_MS 200             /* how often the loop looks at the stop flag when idle */
#define RESET_TICK_MS 250       /* how often due budget resets are looked for */
#define RESET_RETRY_MS 2000     /* ... while they fail: a connect may take seconds, and the
                                 * loop must keep acking what the writers commit */
#define RETENTION_TICK_MS 60000 /* how often log rows past the retention period are deleted */

/* Events per batch: 1 (light load) to batch_max_events (20,000 by default). */
static const double batch_buckets[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000,
                                       10000, 20000};

int loop_declare_metrics(struct accountd *a)
{
    struct metrics *m = a->metrics;
    return (a->m_received = metrics_counter(m, "tollgate_accountd_events_received_total",
                                            "Usage events received from proxyd (a redelivery"
                                            " counts again)", NULL)) < 0 ||
           (a->m_events = metrics_counter(m, "tollgate_accountd_events_committed_total",
                                          "Usage events committed (or found already in the"
                                          " ledger) and acknowledged", NULL)) < 0 ||
           (a->m_batches = metrics_counter(m, "tollgate_accountd_batches_committed_total",
                                           "Batches committed and acknowledged", NULL)) < 0 ||
           (a->m_batch_size = metrics_histogram(m, "tollgate_accountd_batch_events",
                                                "Events per committed batch", NULL, batch_buckets,
                                                sizeof(batch_buckets) / sizeof(double))) < 0 ||
           (a->m_acks = metrics_counter(m, "tollgate_accountd_acks_sent_total",
                                        "Acknowledgements sent (one per proxyd per batch)",
                                        NULL)) < 0 ||
           (a->m_ack_failures = metrics_counter(m, "tollgate_accountd_ack_failures_total",
                                                "Acknowledgements that could not be sent (their"
                                                " events are resent)", NULL)) < 0 ||
           (a->m_resets = metrics_counter(m, "tollgate_accountd_budget_resets_total",
                                          "Budget periods reset", NULL)) < 0 ||
           (a->m_reloads = metrics_counter(m, "tollgate_accountd_config_reloads_total",
                                           "SIGHUP reloads of the config and price file, by"
                                           " result: ok or refused", "result")) < 0 ? -1 : 0;
}

/* SIGHUP: a new generation of settings, or the old one kept (logged). */
static void reload(struct accountd *a)
{
    notify_reloading();
    struct settings *next = settings_reload(a->cfg, a->instance);
    metrics_add(a->metrics, a->m_reloads, METRICS_LABELS(next != NULL ? "ok" : "refused"), 1);
    notify_ready(NULL);
    if (next == NULL)
        return;
    log_configure(next->cfg->log_format, next->cfg->log_level);
    intake_set_batch_max(a->in, next->cfg->accountd.batch_max_events);
    settings_unref(a->gen); /* batches with the writers keep theirs */
    a->gen = next;
    a->budgets_synced = false;
}

/* Resets the budgets that are due; logs once per change between working and
 * failing. Returns whether it failed. */
static bool tick_resets(struct accountd *a, bool was_failing)
{
    char err[1024] = "MariaDB is unreachable";
    MYSQL *db = ledger_db(a->chores);
    int n = -1;
    /* the config's budgets first (at start and after a reload), so that they reset */
    if (db != NULL && !a->budgets_synced &&
        budgets_sync(db, a->gen->cfg, err, sizeof(err)) == 0)
        a->budgets_synced = true;
    if (db != NULL && a->budgets_synced)
        n = resets_run(db, a->up, time(NULL), err, sizeof(err));
    bool failing = n < 0;
    if (n > 0)
        metrics_add(a->metrics, a->m_resets, NULL, (uint64_t)n);
    if (failing)
        ledger_disconnect(a->chores); /* the next tick starts on a fresh connection */
    if (failing && !was_failing)
        log_error("budget resets failed (will retry): %s", err);
    else if (!failing && was_failing)
        log_info("budget resets work again");
    return failing;
}

/* Deletes log rows past the retention period (a chunk per tick). */
static void tick_retention(struct accountd *a)
{
    char err[1024] = "MariaDB is unreachable";
    long keep_s = a->gen->cfg->log_retention_s;
    MYSQL *db = ledger_db(a->chores);
    long n = db != NULL ? retention_run(db, time(NULL) - keep_s, err, sizeof(err)) : -1;
    if (n < 0) {
        ledger_disconnect(a->chores);
        log_error("log retention: %s (will retry)", err);
    } else if (n > 0) {
        log_info("log retention: deleted %ld log rows older than %ld hours", n, keep_s / 3600);
    }
}

/* Acks and publishes every batch the writers have finished. */
static void finish_done(struct accountd *a)
{
    struct writer *w;
    while ((w = writers_done(a->writers)) != NULL) {
        if (w->rc == 0) {
            size_t failed = 0, sent = intake_ack(a->in, &w->batch, &failed);
            a->committed += w->batch.n_events;
            a->batches++;
            metrics_add(a->metrics, a->m_events, NULL, w->batch.n_events);
            metrics_add(a->metrics, a->m_batches, NULL, 1);
            metrics_observe(a->metrics, a->m_batch_size, NULL, (double)w->batch.n_events);
            metrics_add(a->metrics, a->m_acks, NULL, sent);
            if (failed > 0)
                metrics_add(a->metrics, a->m_ack_failures, NULL, failed);
            updates_publish(a->up, &w->ledger->spent, w->batch.events, w->batch.n_events);
        }
        writers_release(a->writers, w);
    }
}

/* How long to wait for events: until the gathered batch is due when a
 * writer could take it, else until the next tick (a finishing writer wakes
 * the wait up). */
static int wait_ms(struct accountd *a, const struct intake_batch *b, bool writer_idle,
                   int64_t first_ms, int64_t next_tick_ms)
{
    int64_t now = clock_ms(), until = next_tick_ms;
    int64_t batch_wait = a->gen->cfg->accountd.batch_wait_ms;
    if (writer_idle && b->n_events > 0 && first_ms + batch_wait < until)
        until = first_ms + batch_wait;
    if (until > now + POLL_MS)
        until = now + POLL_MS;
    return until > now ? (int)(until - now) : 0;
}

/* SIGTERM: waits up to shutdown_grace_ms for the batches the writers have
 * and acks those they commit. Whether none is left. */
static bool drain(struct accountd *a, struct intake_batch *gathering, int64_t ping_ms)
{
    int grace = a->gen->cfg->accountd.shutdown_grace_ms;
    int64_t deadline = clock_ms() + grace, last_ping = 0;
    if (gathering->n_events > 0)
        log_info("stopping: %zu events received but not handed to a writer are not"
                 " acknowledged; proxyd resends them", gathering->n_events);
    while (writers_busy(a->writers) && clock_ms() < deadline) {
        int64_t left = deadline - clock_ms();
        struct pollfd p = {writers_fd(a->writers), POLLIN, 0};
        if (ping_ms > 0 && clock_ms() - last_ping >= ping_ms) {
            last_ping = clock_ms();
            notify_watchdog();
        }
        if (poll(&p, 1, left < POLL_MS ? (int)left : POLL_MS) < 0 && errno != EINTR)
            break;
        finish_done(a);
    }
    finish_done(a);
    if (!writers_busy(a->writers))
        return true;
    log_error("stopping: a batch is still being committed after shutdown_grace_ms (%d ms; is"
              " MariaDB stuck?): exiting without acknowledging it; proxyd resends it and the"
              " ledger counts each event once", grace);
    return false;
}

bool loop_run(struct accountd *a)
{
    struct intake_batch gathering = {0};
    int64_t first_ms = 0, last_reset = 0, last_retention = 0, last_ping = 0;
    int64_t ping_ms = notify_watchdog_interval_ms(); /* the loop wakes at least every tick */
    bool resets_failing = false;
    while (!*a->stop) {
        int64_t now = clock_ms();
        long keep_s = a->gen->cfg->log_retention_s;
        if (*a->reload) {
            *a->reload = 0;
            reload(a);
        }
        if (ping_ms > 0 && now - last_ping >= ping_ms) {
            last_ping = now;
            notify_watchdog();
        }
        int reset_every = resets_failing ? RESET_RETRY_MS : RESET_TICK_MS;
        if (now - last_reset >= reset_every) {
            last_reset = now;
            resets_failing = tick_resets(a, resets_failing);
        }
        if (keep_s > 0 && (last_retention == 0 || now - last_retention >= RETENTION_TICK_MS)) {
            last_retention = now;
            tick_retention(a);
        }
        struct writer *idle = writers_idle(a->writers);
        if (idle != NULL && gathering.n_events > 0 &&
            (intake_full(a->in, &gathering) ||
             clock_ms() >= first_ms + a->gen->cfg->accountd.batch_wait_ms)) {
            writers_submit(a->writers, idle, &gathering, a->gen);
            continue;
        }
        size_t had = gathering.n_events;
        size_t got = intake_collect(a->in, &gathering, wait_ms(a, &gathering, idle != NULL,
                                                               first_ms, last_reset + reset_every),
                                    writers_fd(a->writers));
        if (got > 0)
            metrics_add(a->metrics, a->m_received, NULL, got);
        if (had == 0 && gathering.n_events > 0)
            first_ms = clock_ms();
        finish_done(a);
    }
    notify_stopping();
    bool drained = drain(a, &gathering, ping_ms);
    intake_batch_free(&gathering); /* not acked: the senders resend these */
    return drained;
}
