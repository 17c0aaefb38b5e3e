/* db.h - MariaDB access shared by the daemons: connecting, prepared
 * statements with typed parameters, results as text, and the schema version.
 *
 * Every statement goes through db_exec (prepared, parameters bound), so no
 * external string is ever spliced into SQL.
 */
#ifndef TG_DB_H
#define TG_DB_H

#include <mysql.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

enum db_param_type { DBP_NULL, DBP_STR, DBP_I64, DBP_BLOB };

struct db_param {
    enum db_param_type type;
    const char *s; /* DBP_STR, DBP_BLOB; NULL binds SQL NULL */
    int64_t i;
    size_t len;    /* DBP_BLOB */
};

#define DB_STR(x) ((struct db_param){.type = DBP_STR, .s = (x)})
#define DB_I64(x) ((struct db_param){.type = DBP_I64, .i = (x)})
#define DB_NULL ((struct db_param){.type = DBP_NULL})

/* A result set, every cell as text (NULL for SQL NULL). */
struct db_result {
    size_t nrows, ncols;
    char **cells; /* row-major */
};

/* Connects over TCP (or the default socket for host "localhost"), utf8mb4,
 * strict SQL mode, UTC session time zone. NULL on error. */
MYSQL *db_connect(const struct db_config *cfg, char *err, size_t errlen);

/* Prepares, binds and runs sql. When res is not NULL and the statement
 * returns rows, they are fetched into *res (free with db_result_free).
 * *affected (may be NULL) gets the affected row count. 0, or -1 with err set
 * and *errno_out (may be NULL) = the server's error number. */
int db_exec(MYSQL *db, const char *sql, const struct db_param *params, size_t nparams,
            struct db_result **res, uint64_t *affected, unsigned *errno_out,
            char *err, size_t errlen);

const char *db_cell(const struct db_result *r, size_t row, size_t col);
void db_result_free(struct db_result *r);

/* The highest migration built into this binary. */
int db_schema_latest(void);
/* The database's schema version (0 when never migrated). -1 on error. */
int db_schema_version(MYSQL *db, char *err, size_t errlen);
/* Fails with "run accountd --migrate" unless the schema is the latest. */
int db_schema_check(MYSQL *db, char *err, size_t errlen);
/* Connects, checks the schema as db_schema_check, disconnects: a daemon's
 * start-up gate. */
int db_schema_check_at(const struct db_config *cfg, char *err, size_t errlen);
/* Applies the pending migrations in order; *applied gets how many. */
int db_migrate(MYSQL *db, int *applied, char *err, size_t errlen);

#define DB_DATETIME_MAX 32

/* SQL text: a DATETIME column as Unix microseconds, 0 for NULL (the session
 * time zone is UTC); read the cell with strtoll. */
#define DB_SQL_UNIX_US(col) "COALESCE(FLOOR(UNIX_TIMESTAMP(" col ") * 1000000), 0)"

/* A time (Unix microseconds) as DATETIME(6) text in UTC, the sessions' time
 * zone: "YYYY-MM-DD HH:MM:SS.ffffff". */
void db_datetime(int64_t unix_us, char out[DB_DATETIME_MAX]);

/* Transactions: BEGIN / COMMIT / ROLLBACK. */
int db_begin(MYSQL *db, char *err, size_t errlen);
int db_commit(MYSQL *db, char *err, size_t errlen);
void db_rollback(MYSQL *db);

/* Is this server error worth retrying the transaction for (deadlock, lock
 * wait timeout, lost connection)? */
bool db_error_retryable(unsigned errnum);

#endif
