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
 */
#include "loop.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

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

int loop_declare_metrics(struct accountd *a)
{
    return (a->m_events = metrics_counter(a->metrics, "tollgate_accountd_events_committed_total",
                                          "Usage events committed (or found already in the"
                                          " ledger) and acknowledged", NULL)) < 0 ||
           (a->m_batches = metrics_counter(a->metrics, "tollgate_accountd_batches_committed_total",
                                           "Ledger transactions committed", NULL)) < 0 ||
           (a->m_resets = metrics_counter(a->metrics, "tollgate_accountd_budget_resets_total",
                                          "Budget periods reset", NULL)) < 0 ? -1 : 0;
}

/* Resets the budgets that are due; logs once per change between working and
 * failing. Returns whether it failed. */
static bool tick_resets(struct accountd *a, bool was_failing)
{
    char err[1024] = "MariaDB is unreachable";
    MYSQL *db = ledger_db(a->chores);
    int n = db != NULL ? resets_run(db, a->up, time(NULL), err, sizeof(err)) : -1;
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
    long keep_s = a->cfg->log_retention_s;
    MYSQL *db = ledger_db(a->chores);
    long n = db != NULL ? retention_run(db, time(NULL) - keep_s, err, sizeof(err)) : -1;
    if (n < 0) {
        ledger_disconnect(a->chores);
        log_error("log retention: %s (will retry)", err);
    } else if (n > 0) {
        log_info("log retention: deleted %ld log rows older than %ld days", n, keep_s / 86400);
    }
}

/* Acks and publishes every batch the writers have finished. */
static void finish_done(struct accountd *a)
{
    struct writer *w;
    while ((w = writers_done(a->writers)) != NULL) {
        if (w->rc == 0) {
            a->committed += w->batch.n_events;
            a->batches++;
            metrics_add(a->metrics, a->m_events, NULL, w->batch.n_events);
            metrics_add(a->metrics, a->m_batches, NULL, 1);
            intake_ack(a->in, &w->batch);
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
    if (writer_idle && b->n_events > 0 && first_ms + a->cfg->accountd.batch_wait_ms < until)
        until = first_ms + a->cfg->accountd.batch_wait_ms;
    if (until > now + POLL_MS)
        until = now + POLL_MS;
    return until > now ? (int)(until - now) : 0;
}

void loop_run(struct accountd *a)
{
    struct intake_batch gathering = {0};
    int64_t first_ms = 0, last_reset = 0, last_retention = 0, last_ping = 0;
    int64_t ping_ms = notify_watchdog_interval_ms(); /* the loop wakes at least every tick */
    bool resets_failing = false;
    long keep_s = a->cfg->log_retention_s;
    while (!*a->stop) {
        int64_t now = clock_ms();
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
             clock_ms() >= first_ms + a->cfg->accountd.batch_wait_ms)) {
            writers_submit(a->writers, idle, &gathering);
            continue;
        }
        size_t had = gathering.n_events;
        intake_collect(a->in, &gathering, wait_ms(a, &gathering, idle != NULL, first_ms,
                                                  last_reset + reset_every),
                       writers_fd(a->writers));
        if (had == 0 && gathering.n_events > 0)
            first_ms = clock_ms();
        finish_done(a);
    }
    notify_stopping();
    while (writers_busy(a->writers)) { /* the commits in hand finish and are acked */
        struct pollfd p = {writers_fd(a->writers), POLLIN, 0};
        if (poll(&p, 1, POLL_MS) < 0 && errno != EINTR)
            break;
        finish_done(a);
    }
    finish_done(a);
    intake_batch_free(&gathering); /* not acked: the senders resend these */
}
