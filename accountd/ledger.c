/* ledger.c - accountd's writer: commits a batch of events to MariaDB in ONE
 * transaction, exactly once.
 *
 * A batch is priced once (ledger_rows.c), then each attempt inserts the log
 * rows in one bulk statement, leaving rows already in the ledger alone and
 * learning which rows are new (ledger_rows.c), adds only the new rows to the
 * spend counters and daily rollups in a fixed lock order
 * (ledger_counters.c), keeps what cannot be written in rejected_events, and
 * commits. A redelivered event adds nothing.
 *
 * Failures: deadlocks and lost connections retry the whole batch with
 * backoff (reconnecting as needed) and nothing is acknowledged meanwhile. A
 * batch refused for its data is split into single events, and an event the
 * database refuses on its own goes whole into rejected_events: never lost.
 */
#include "ledger.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "ledger_counters.h"
#include "ledger_rows.h"
#include "log.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 5000
#define STOP_CHECK_MS 50 /* a backoff looks at the stop flag this often */

/* Ledger lag: milliseconds when all is well, up to an hour when accountd or
 * MariaDB was away and proxyd's spool is being delivered. */
static const double lag_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                     2.5, 5, 10, 30, 60, 300, 900, 3600};
#define NBUCKETS(a) (sizeof(a) / sizeof((a)[0]))

static int connect_db(struct ledger *l, unsigned *errnum, char *err, size_t errlen)
{
    if (l->db != NULL)
        return 0;
    if ((l->db = db_connect(l->dbcfg, err, errlen)) == NULL) {
        *errnum = 2002; /* CR_CONNECTION_ERROR: retry */
        return -1;
    }
    /* fewer gap locks between concurrent accountd instances */
    if (db_exec(l->db, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", NULL, 0, NULL,
                NULL, errnum, err, errlen) < 0 ||
        periods_session_init(l->db, errnum, err, errlen) < 0) {
        mysql_close(l->db);
        l->db = NULL;
        return -1;
    }
    return 0;
}

int ledger_shared_init(struct ledger_shared *s, struct metrics *m)
{
    *s = (struct ledger_shared){.metrics = m};
    if ((s->m_rows = metrics_counter(m, "tollgate_accountd_log_rows_inserted_total",
                                     "Rows written to spend_logs (redelivered events add none)",
                                     NULL)) < 0 ||
        (s->m_unpriced = metrics_counter(m, "tollgate_accountd_unpriced_events_total",
                                         "Requests logged with cost 0 because their model has"
                                         " no price (pricing=unpriced)", "model")) < 0 ||
        (s->m_rejected = metrics_counter(m, "tollgate_accountd_rejected_events_total",
                                         "Events kept in rejected_events instead of the ledger,"
                                         " by why: invalid (a field does not fit), retention"
                                         " (older than the log retention), database (refused"
                                         " by MariaDB)", "reason")) < 0 ||
        (s->m_dups = metrics_counter(m, "tollgate_accountd_duplicate_events_total",
                                     "Redelivered events already in the ledger (or twice in a"
                                     " batch): acknowledged, counted once", NULL)) < 0 ||
        (s->m_commit_s = metrics_histogram(m, "tollgate_accountd_commit_duration_seconds",
                                           "Time of one ledger transaction, BEGIN to COMMIT",
                                           NULL, metrics_latency_buckets,
                                           metrics_latency_nbuckets)) < 0 ||
        (s->m_lag_s = metrics_histogram(m, "tollgate_accountd_ledger_lag_seconds",
                                        "Per event written to spend_logs: from its end (proxyd's"
                                        " clock) to its commit", NULL, lag_buckets,
                                        NBUCKETS(lag_buckets))) < 0 ||
        (s->m_lag_last = metrics_gauge(m, "tollgate_accountd_last_batch_lag_seconds",
                                       "Ledger lag of the oldest new event of the last committed"
                                       " batch", NULL)) < 0 ||
        (s->warned = strmap_new()) == NULL)
        return -1;
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        strmap_free(s->warned, NULL);
        s->warned = NULL;
        return -1;
    }
    return 0;
}

void ledger_shared_destroy(struct ledger_shared *s)
{
    if (s->warned == NULL)
        return;
    strmap_free(s->warned, NULL);
    pthread_mutex_destroy(&s->lock);
}

struct ledger *ledger_new(const struct db_config *dbcfg, struct ledger_shared *shared,
                          char *err, size_t errlen)
{
    struct ledger *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->shared = shared;
    l->dbcfg = dbcfg;
    unsigned errnum;
    if (connect_db(l, &errnum, err, errlen) < 0) {
        ledger_free(l);
        return NULL;
    }
    return l;
}

MYSQL *ledger_db(struct ledger *l)
{
    char err[512];
    unsigned errnum;
    return connect_db(l, &errnum, err, sizeof(err)) == 0 ? l->db : NULL;
}

void ledger_disconnect(struct ledger *l)
{
    if (l->db != NULL)
        mysql_close(l->db);
    l->db = NULL;
}

void ledger_free(struct ledger *l)
{
    if (l == NULL)
        return;
    if (l->db != NULL)
        mysql_close(l->db);
    spend_list_free(&l->spent);
    free(l);
}

/* A fresh tag for one attempt's log rows. A new one per attempt matters: if a
 * COMMIT's answer is lost and the batch is retried, the rows the lost commit
 * wrote carry the old tag and are not counted a second time. */
static int64_t new_batch_id(void)
{
    uint64_t v = 0;
    if (RAND_bytes((unsigned char *)&v, sizeof(v)) != 1)
        v = (uint64_t)time(NULL) << 20 ^ (uint64_t)clock();
    v &= INT64_MAX;
    return v != 0 ? (int64_t)v : 1;
}

static int reject_row(struct ledger *l, struct ledger_row *r, unsigned *errnum, char *err,
                      size_t errlen);

/* Seconds on the monotonic clock, for durations. */
static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One transaction: the new log rows, what they add to every counter and
 * rollup, and the rows that cannot be written kept in rejected_events. */
static int write_batch(struct ledger *l, struct ledger_row *rows, size_t n, unsigned *errnum,
                       char *err, size_t errlen)
{
    *errnum = 0;
    if (connect_db(l, errnum, err, errlen) < 0)
        return -1;
    double t0 = mono_s();
    for (size_t i = 0; i < n; i++)
        rows[i].rejected = false;
    if (db_begin(l->db, err, errlen) < 0) {
        *errnum = mysql_errno(l->db);
        return -1;
    }
    size_t spent_before = l->spent.n;
    if (rows_insert(l->db, rows, n, new_batch_id(), errnum, err, errlen) < 0 ||
        counters_apply(l->db, l->cfg, rows, n, &l->spent, errnum, err, errlen) < 0)
        goto fail;
    for (size_t i = 0; i < n; i++)
        if (rows[i].bad != NULL && !rows[i].dup_in_batch &&
            reject_row(l, &rows[i], errnum, err, errlen) < 0)
            goto fail;
    if (db_commit(l->db, err, errlen) < 0) {
        *errnum = mysql_errno(l->db);
        goto fail;
    }
    metrics_observe(l->shared->metrics, l->shared->m_commit_s, NULL, mono_s() - t0);
    return 0;
fail:
    db_rollback(l->db);
    spend_list_truncate(&l->spent, spent_before); /* not committed: not published */
    return -1;
}

/* The dead-letter path: the whole event, encoded, with the reason (r->bad);
 * once per request id, however often it is delivered. */
static int reject_row(struct ledger *l, struct ledger_row *r, unsigned *errnum, char *err,
                      size_t errlen)
{
    const Tollgate__UsageEvent *e = r->e;
    const char *why = r->bad;
    size_t len = tollgate__usage_event__get_packed_size(e);
    uint8_t *buf = malloc(len + 1);
    uint64_t added = 0;
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    tollgate__usage_event__pack(e, buf);
    struct db_param p[] = {DB_STR(e->request_id), DB_STR(why), DB_NULL, DB_STR(e->request_id)};
    p[2] = (struct db_param){.type = DBP_BLOB, .s = (const char *)buf, .len = len};
    int rc = db_exec(l->db, "INSERT INTO rejected_events (request_id, error, payload, received_at)"
                            " SELECT LEFT(?, 255), LEFT(?, 1024), ?, UTC_TIMESTAMP(6) FROM DUAL"
                            " WHERE NOT EXISTS (SELECT 1 FROM rejected_events"
                            " WHERE request_id = LEFT(?, 255))",
                     p, 4, NULL, &added, errnum, err, errlen);
    free(buf);
    if (rc == 0 && added > 0) { /* counted in the metrics once committed */
        r->rejected = true;
        log_request(LOG_ERROR, e->request_id, "rejected (%s): %s; kept in rejected_events",
                    r->reason, why);
    }
    return rc;
}

/* A batch the database refused for its data: one transaction per event, so
 * only the offending events go to rejected_events. */
static int write_singly(struct ledger *l, struct ledger_row *rows, size_t n, unsigned *errnum,
                        char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        if (rows[i].dup_in_batch || write_batch(l, &rows[i], 1, errnum, err, errlen) == 0)
            continue;
        if (db_error_retryable(*errnum))
            return -1;
        char why[1024];
        snprintf(why, sizeof(why), "%s", err);
        rows[i].bad = why;
        rows[i].reason = "database";
        int rc = write_batch(l, &rows[i], 1, errnum, err, errlen); /* just the rejection */
        rows[i].bad = NULL;
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* The committed batch in the metrics: its new rows and their lag, its
 * rejections, and the redelivered events it found in the ledger already. */
static void count_rows(struct ledger *l, const struct ledger_row *rows, size_t n)
{
    struct ledger_shared *sh = l->shared;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9, oldest = -1;
    uint64_t inserted = 0, dups = 0;
    for (size_t i = 0; i < n; i++) {
        const struct ledger_row *r = &rows[i];
        if (r->rejected) {
            metrics_add(sh->metrics, sh->m_rejected, METRICS_LABELS(r->reason), 1);
        } else if (!r->inserted) {
            dups++;
            log_request(LOG_DEBUG, r->e->request_id, "already in the ledger: a redelivery,"
                        " acknowledged and not counted again");
        } else {
            inserted++;
            if (strcmp(r->pricing, "unpriced") == 0)
                metrics_add(sh->metrics, sh->m_unpriced, METRICS_LABELS(r->e->model), 1);
            double lag = now - (double)r->e->end_time_us / 1e6;
            lag = lag > 0 ? lag : 0; /* proxyd's clock may be ahead of ours */
            metrics_observe(sh->metrics, sh->m_lag_s, NULL, lag);
            oldest = lag > oldest ? lag : oldest;
        }
    }
    metrics_add(sh->metrics, sh->m_rows, NULL, inserted);
    if (dups > 0)
        metrics_add(sh->metrics, sh->m_dups, NULL, dups);
    if (oldest >= 0)
        metrics_set(sh->metrics, sh->m_lag_last, NULL, oldest);
}

/* Sleeps ms, or less when *stop becomes true meanwhile. */
static void backoff_sleep(int ms, volatile const int *stop)
{
    while (ms > 0 && !*stop) {
        int step = ms < STOP_CHECK_MS ? ms : STOP_CHECK_MS;
        struct timespec ts = {step / 1000, (long)(step % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

int ledger_commit(struct ledger *l, const struct config *cfg, const struct price_table *prices,
                  long retention_s, Tollgate__UsageEvent **events, size_t n,
                  volatile const int *stop)
{
    l->cfg = cfg;
    int backoff = BACKOFF_MIN_MS, rc = -1;
    bool degraded = false;
    struct ledger_row *rows = calloc(n ? n : 1, sizeof(*rows));
    int64_t horizon_us = retention_s > 0 ? ((int64_t)time(NULL) - retention_s) * 1000000 : 0;
    if (rows == NULL ||
        rows_prepare(rows, events, n, prices, l->shared, horizon_us) < 0) {
        log_error("out of memory pricing a batch of %zu events; the senders will resend", n);
        free(rows);
        return -1;
    }
    /* a batch handed over just before SIGTERM still gets its attempt */
    for (bool first = true; first || !*stop; first = false) {
        char err[1024];
        unsigned errnum = 0;
        spend_list_truncate(&l->spent, 0);
        rc = write_batch(l, rows, n, &errnum, err, sizeof(err));
        if (rc < 0 && errnum != 0 && !db_error_retryable(errnum))
            rc = write_singly(l, rows, n, &errnum, err, sizeof(err));
        if (rc == 0) {
            if (degraded)
                log_info("MariaDB writes work again");
            count_rows(l, rows, n);
            break;
        }
        if (!degraded)
            log_error("cannot commit a batch of %zu events (will retry): %s", n, err);
        degraded = true;
        if (errnum >= 2000 && errnum < 3000 && l->db != NULL) { /* client error: reconnect */
            mysql_close(l->db);
            l->db = NULL;
        }
        backoff_sleep(backoff, stop);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    if (rc < 0)
        log_warn("stopping: a batch of %zu events is not committed and not acknowledged; its"
                 " senders will resend it", n);
    rows_release(rows, n);
    free(rows);
    return rc;
}
