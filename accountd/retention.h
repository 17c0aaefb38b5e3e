/* retention.h - deleting log rows older than maximum_spend_logs_retention_period. */
#ifndef ACCOUNTD_RETENTION_H
#define ACCOUNTD_RETENTION_H

#include <mysql.h>
#include <stddef.h>
#include <time.h>

/* Deletes spend_logs rows whose request started before `horizon`, in small
 * transactions, at most RETENTION_MAX_ROWS per call (the next call goes on).
 * Rollups, counters and entity_model_spend are not touched. Returns the
 * number deleted, -1 on a database error (err). */
long retention_run(MYSQL *db, time_t horizon, char *err, size_t errlen);

#endif
