/* db.c - MariaDB Connector/C wrapper: connection, prepared statements,
 * text results, transactions and schema migrations (see db.h).
 */
#include "db.h"

#include <errmsg.h>
#include <limits.h>
#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DB_CELL_MAX (16 * 1024 * 1024) /* longest cell we fetch */

/* The URL's TLS options (config_db_tls.c) as Connector/C's: TLS enforced;
 * with a CA Connector/C checks the server's chain (require with sslrootcert,
 * verify-ca); verify-full checks its name too. Set either way, so that a
 * Connector/C whose default differs cannot change what the mode means. */
static int db_apply_tls(MYSQL *db, const struct db_tls *t)
{
    my_bool on = 1, verify_name = t->mode == DB_TLS_VERIFY_FULL;
    if (t->mode == DB_TLS_OFF)
        return 0;
    if (mysql_optionsv(db, MYSQL_OPT_SSL_ENFORCE, &on) != 0 ||
        mysql_optionsv(db, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify_name) != 0)
        return -1;
    if (t->ca != NULL && mysql_optionsv(db, MYSQL_OPT_SSL_CA, t->ca) != 0)
        return -1;
    if (t->cert != NULL && mysql_optionsv(db, MYSQL_OPT_SSL_CERT, t->cert) != 0)
        return -1;
    if (t->key != NULL && mysql_optionsv(db, MYSQL_OPT_SSL_KEY, t->key) != 0)
        return -1;
    return 0;
}

/* ", TLS sslmode=M sslrootcert=F" for a connection error, "" without TLS. */
static void db_tls_describe(const struct db_tls *t, char *out, size_t len)
{
    out[0] = '\0';
    if (t->mode != DB_TLS_OFF)
        snprintf(out, len, " over TLS (sslmode=%s%s%s)", config_db_tls_mode_name(t->mode),
                 t->ca != NULL ? ", sslrootcert=" : "", t->ca != NULL ? t->ca : "");
}

MYSQL *db_connect(const struct db_config *cfg, char *err, size_t errlen)
{
    MYSQL *db = mysql_init(NULL);
    unsigned timeout = 5;
    if (db == NULL) {
        snprintf(err, errlen, "mysql_init: out of memory");
        return NULL;
    }
    if (mysql_optionsv(db, MYSQL_SET_CHARSET_NAME, "utf8mb4") != 0 ||
        mysql_optionsv(db, MYSQL_OPT_CONNECT_TIMEOUT, &timeout) != 0 ||
        mysql_optionsv(db, MYSQL_INIT_COMMAND,
                       "SET SESSION sql_mode='STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ENGINE_SUBSTITUTION,"
                       "ERROR_FOR_DIVISION_BY_ZERO', time_zone='+00:00'") != 0) {
        snprintf(err, errlen, "mysql_optionsv: %s", mysql_error(db));
        mysql_close(db);
        return NULL;
    }
    if (db_apply_tls(db, &cfg->tls) < 0) {
        snprintf(err, errlen, "mysql_optionsv (TLS): %s", mysql_error(db));
        mysql_close(db);
        return NULL;
    }
    if (mysql_real_connect(db, cfg->host, cfg->user, cfg->password, cfg->database,
                           cfg->port, NULL, 0) == NULL) {
        char tls[PATH_MAX + 64];
        db_tls_describe(&cfg->tls, tls, sizeof(tls));
        snprintf(err, errlen, "cannot connect to MariaDB %s:%u/%s as %s%s: %s", cfg->host,
                 cfg->port, cfg->database, cfg->user, tls, mysql_error(db));
        mysql_close(db);
        return NULL;
    }
    return db;
}

static void bind_params(MYSQL_BIND *b, const struct db_param *p, size_t n,
                        unsigned long *lens, my_bool *nulls)
{
    for (size_t i = 0; i < n; i++) {
        memset(&b[i], 0, sizeof(b[i]));
        nulls[i] = p[i].type == DBP_NULL || (p[i].type != DBP_I64 && p[i].s == NULL);
        b[i].is_null = &nulls[i];
        if (p[i].type == DBP_I64) {
            b[i].buffer_type = MYSQL_TYPE_LONGLONG;
            b[i].buffer = (void *)&p[i].i;
        } else {
            lens[i] = nulls[i] ? 0 : p[i].type == DBP_BLOB ? (unsigned long)p[i].len
                                                         : (unsigned long)strlen(p[i].s);
            b[i].buffer_type = nulls[i] ? MYSQL_TYPE_NULL
                               : p[i].type == DBP_BLOB ? MYSQL_TYPE_BLOB : MYSQL_TYPE_STRING;
            b[i].buffer = (void *)p[i].s;
            b[i].buffer_length = lens[i];
            b[i].length = &lens[i];
        }
    }
}

static int stmt_fail(MYSQL_STMT *st, unsigned *errno_out, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s", mysql_stmt_error(st));
    if (errno_out != NULL)
        *errno_out = mysql_stmt_errno(st);
    return -1;
}

/* Fetches one column of the current row as a fresh NUL-terminated string. */
static int fetch_cell(MYSQL_STMT *st, unsigned col, unsigned long len, char **out)
{
    if (len > DB_CELL_MAX)
        return -1;
    char *buf = malloc(len + 1);
    if (buf == NULL)
        return -1;
    MYSQL_BIND one = {0};
    unsigned long got = 0;
    one.buffer_type = MYSQL_TYPE_STRING;
    one.buffer = buf;
    one.buffer_length = len + 1;
    one.length = &got;
    if (len > 0 && mysql_stmt_fetch_column(st, &one, col, 0) != 0) {
        free(buf);
        return -1;
    }
    buf[len] = '\0';
    *out = buf;
    return 0;
}

static int fetch_rows(MYSQL_STMT *st, struct db_result **res, char *err, size_t errlen)
{
    MYSQL_RES *meta = mysql_stmt_result_metadata(st);
    unsigned ncols = meta != NULL ? mysql_num_fields(meta) : 0;
    struct db_result *r = calloc(1, sizeof(*r));
    MYSQL_BIND *b = calloc(ncols ? ncols : 1, sizeof(*b));
    unsigned long *lens = calloc(ncols ? ncols : 1, sizeof(*lens));
    my_bool *nulls = calloc(ncols ? ncols : 1, sizeof(*nulls));
    size_t cap = 0;
    int rc = -1;
    if (meta != NULL)
        mysql_free_result(meta);
    if (r == NULL || b == NULL || lens == NULL || nulls == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    r->ncols = ncols;
    for (unsigned c = 0; c < ncols; c++) { /* zero-length buffers: learn lengths first */
        b[c].buffer_type = MYSQL_TYPE_STRING;
        b[c].length = &lens[c];
        b[c].is_null = &nulls[c];
    }
    if (mysql_stmt_bind_result(st, b) != 0) {
        snprintf(err, errlen, "bind result: %s", mysql_stmt_error(st));
        goto out;
    }
    for (;;) {
        int f = mysql_stmt_fetch(st);
        if (f == MYSQL_NO_DATA)
            break;
        if (f == 1) {
            snprintf(err, errlen, "fetch: %s", mysql_stmt_error(st));
            goto out;
        }
        if ((r->nrows + 1) * ncols > cap) {
            size_t ncap = cap ? cap * 2 : (size_t)ncols * 16;
            char **cells = realloc(r->cells, ncap * sizeof(*cells));
            if (cells == NULL) {
                snprintf(err, errlen, "out of memory");
                goto out;
            }
            r->cells = cells;
            cap = ncap;
        }
        for (unsigned c = 0; c < ncols; c++) {
            char **cell = &r->cells[r->nrows * ncols + c];
            *cell = NULL;
            if (!nulls[c] && fetch_cell(st, c, lens[c], cell) < 0) {
                for (unsigned k = 0; k < c; k++)
                    free(r->cells[r->nrows * ncols + k]);
                snprintf(err, errlen, "fetch column %u failed", c);
                goto out;
            }
        }
        r->nrows++;
    }
    *res = r;
    r = NULL;
    rc = 0;
out:
    db_result_free(r);
    free(b);
    free(lens);
    free(nulls);
    return rc;
}

int db_exec(MYSQL *db, const char *sql, const struct db_param *params, size_t nparams,
            struct db_result **res, uint64_t *affected, unsigned *errno_out,
            char *err, size_t errlen)
{
    MYSQL_BIND b[nparams ? nparams : 1];
    unsigned long lens[nparams ? nparams : 1];
    my_bool nulls[nparams ? nparams : 1];
    MYSQL_STMT *st = mysql_stmt_init(db);
    int rc = -1;
    if (res != NULL)
        *res = NULL;
    if (errno_out != NULL)
        *errno_out = 0;
    if (st == NULL) {
        snprintf(err, errlen, "mysql_stmt_init: %s", mysql_error(db));
        if (errno_out != NULL)
            *errno_out = mysql_errno(db);
        return -1;
    }
    if (mysql_stmt_prepare(st, sql, (unsigned long)strlen(sql)) != 0)
        goto fail;
    if (mysql_stmt_param_count(st) != nparams) {
        snprintf(err, errlen, "statement wants %lu parameters, got %zu",
                 mysql_stmt_param_count(st), nparams);
        goto out;
    }
    bind_params(b, params, nparams, lens, nulls);
    if ((nparams > 0 && mysql_stmt_bind_param(st, b) != 0) || mysql_stmt_execute(st) != 0)
        goto fail;
    if (affected != NULL)
        *affected = mysql_stmt_affected_rows(st);
    if (res != NULL && mysql_stmt_field_count(st) > 0) {
        if (mysql_stmt_store_result(st) != 0)
            goto fail;
        if (fetch_rows(st, res, err, errlen) < 0)
            goto out;
    }
    rc = 0;
    goto out;
fail:
    stmt_fail(st, errno_out, err, errlen);
out:
    mysql_stmt_close(st);
    return rc;
}

const char *db_cell(const struct db_result *r, size_t row, size_t col)
{
    return r->cells[row * r->ncols + col];
}

void db_result_free(struct db_result *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nrows * r->ncols; i++)
        free(r->cells[i]);
    free(r->cells);
    free(r);
}

void db_datetime(int64_t unix_us, char out[DB_DATETIME_MAX])
{
    time_t s = (time_t)(unix_us / 1000000);
    struct tm tm;
    if (gmtime_r(&s, &tm) == NULL)
        memset(&tm, 0, sizeof(tm));
    size_t n = strftime(out, DB_DATETIME_MAX, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(out + n, DB_DATETIME_MAX - n, ".%06d", (int)(unix_us % 1000000));
}

static int simple(MYSQL *db, const char *sql, char *err, size_t errlen)
{
    if (mysql_real_query(db, sql, (unsigned long)strlen(sql)) != 0) {
        snprintf(err, errlen, "%s: %s", sql, mysql_error(db));
        return -1;
    }
    return 0;
}

int db_begin(MYSQL *db, char *err, size_t errlen)
{
    return simple(db, "START TRANSACTION", err, errlen);
}

int db_commit(MYSQL *db, char *err, size_t errlen)
{
    return simple(db, "COMMIT", err, errlen);
}

void db_rollback(MYSQL *db)
{
    (void)mysql_rollback(db); /* failing here means the connection is gone: nothing to undo */
}

bool db_error_retryable(unsigned errnum)
{
    return errnum == ER_LOCK_DEADLOCK || errnum == ER_LOCK_WAIT_TIMEOUT ||
           errnum == CR_SERVER_GONE_ERROR || errnum == CR_SERVER_LOST ||
           errnum == CR_CONNECTION_ERROR || errnum == CR_CONN_HOST_ERROR;
}
