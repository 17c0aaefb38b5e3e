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

int ledger_shared_init(struct ledger_shared *s, struct metrics *metrics)
{
    *s = (struct ledger_shared){.metrics = metrics};
    if ((s->m_rows = metrics_counter(metrics, "tollgate_accountd_log_rows_inserted_total",
                                     "Rows written to spend_logs (redelivered events add none)",
                                     NULL)) < 0 ||
        (s->m_unpriced = metrics_counter(metrics, "tollgate_accountd_unpriced_events_total",
                                         "Requests logged with cost 0 because their model has"
                                         " no price (pricing=unpriced)", "model")) < 0 ||
        (s->m_rejected = metrics_counter(metrics, "tollgate_accountd_rejected_events_total",
                                         "Events the database refused, kept in rejected_events",
                                         NULL)) < 0 ||
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

struct ledger *ledger_new(const struct db_config *dbcfg, const struct price_table *prices,
                          struct ledger_shared *shared, char *err, size_t errlen)
{
    struct ledger *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->shared = shared;
    l->dbcfg = dbcfg;
    l->prices = prices;
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

static int reject_row(struct ledger *l, const Tollgate__UsageEvent *e, const char *why,
                      unsigned *errnum, char *err, size_t errlen);

/* One transaction: the new log rows, what they add to every counter and
 * rollup, and the rows that cannot be written kept in rejected_events. */
static int write_batch(struct ledger *l, struct ledger_row *rows, size_t n, unsigned *errnum,
                       char *err, size_t errlen)
{
    *errnum = 0;
    if (connect_db(l, errnum, err, errlen) < 0)
        return -1;
    if (db_begin(l->db, err, errlen) < 0) {
        *errnum = mysql_errno(l->db);
        return -1;
    }
    size_t spent_before = l->spent.n;
    if (rows_insert(l->db, rows, n, new_batch_id(), errnum, err, errlen) < 0 ||
        counters_apply(l->db, rows, n, &l->spent, errnum, err, errlen) < 0)
        goto fail;
    for (size_t i = 0; i < n; i++)
        if (rows[i].bad != NULL && !rows[i].dup_in_batch &&
            reject_row(l, rows[i].e, rows[i].bad, errnum, err, errlen) < 0)
            goto fail;
    if (db_commit(l->db, err, errlen) < 0) {
        *errnum = mysql_errno(l->db);
        goto fail;
    }
    return 0;
fail:
    db_rollback(l->db);
    spend_list_truncate(&l->spent, spent_before); /* not committed: not published */
    return -1;
}

/* The dead-letter path: the whole event, encoded, with the reason; once per
 * request id, however often it is delivered. */
static int reject_row(struct ledger *l, const Tollgate__UsageEvent *e, const char *why,
                      unsigned *errnum, char *err, size_t errlen)
{
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
    if (rc == 0 && added > 0) {
        metrics_add(l->shared->metrics, l->shared->m_rejected, NULL, 1);
        log_error("request %s: rejected by the database (%s); kept in rejected_events",
                  e->request_id, why);
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
        int rc = write_batch(l, &rows[i], 1, errnum, err, errlen); /* just the rejection */
        rows[i].bad = NULL;
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* The committed batch's new rows in the metrics. */
static void count_rows(struct ledger *l, const struct ledger_row *rows, size_t n)
{
    uint64_t inserted = 0;
    for (size_t i = 0; i < n; i++) {
        if (!rows[i].inserted)
            continue;
        inserted++;
        if (strcmp(rows[i].pricing, "unpriced") == 0)
            metrics_add(l->shared->metrics, l->shared->m_unpriced,
                        METRICS_LABELS(rows[i].e->model), 1);
    }
    metrics_add(l->shared->metrics, l->shared->m_rows, NULL, inserted);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int ledger_commit(struct ledger *l, Tollgate__UsageEvent **events, size_t n,
                  volatile const int *stop)
{
    int backoff = BACKOFF_MIN_MS, rc = -1;
    bool degraded = false;
    struct ledger_row *rows = calloc(n ? n : 1, sizeof(*rows));
    int64_t horizon_us = l->retention_s > 0 ? ((int64_t)time(NULL) - l->retention_s) * 1000000 : 0;
    if (rows == NULL ||
        rows_prepare(rows, events, n, l->prices, l->shared, horizon_us) < 0) {
        log_error("out of memory pricing a batch of %zu events; the senders will resend", n);
        free(rows);
        return -1;
    }
    while (!*stop) {
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
        sleep_ms(backoff);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    rows_release(rows, n);
    free(rows);
    return rc;
}
