/* retention.c - the log retention policy (see retention.h).
 *
 * The oldest rows go first, RETENTION_CHUNK at a time, each chunk its own
 * short transaction on the start_time index, so the ledger's writers are
 * never held up for long. Because request ids are time-ordered (UUIDv7) the
 * rows of old days sit together at the start of the primary key, and
 * deleting them touches few pages. The daily rollups keep those days for
 * reports. An event older than the horizon that arrives later is not
 * written again (ledger_rows.c keeps it in rejected_events), since its
 * first copy may be among the rows deleted here.
 */
#include "retention.h"

#include <stdint.h>
#include <stdio.h>

#include "db.h"

#define RETENTION_CHUNK 5000
#define RETENTION_MAX_ROWS 100000 /* per call */

long retention_run(MYSQL *db, time_t horizon, char *err, size_t errlen)
{
    char cutoff[DB_DATETIME_MAX];
    long total = 0;
    db_datetime((int64_t)horizon * 1000000, cutoff);
    struct db_param p[] = {DB_STR(cutoff)};
    for (uint64_t n = RETENTION_CHUNK; n == RETENTION_CHUNK && total < RETENTION_MAX_ROWS;) {
        if (db_exec(db, "DELETE FROM spend_logs WHERE start_time < ? ORDER BY start_time LIMIT 5000",
                    p, 1, NULL, &n, NULL, err, errlen) < 0)
            return -1;
        total += (long)n;
    }
    return total;
}
