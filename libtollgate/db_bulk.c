/* db_bulk.c - array-bound prepared statements (see db_bulk.h).
 *
 * Design: the rows are kept column-wise, which is the layout Connector/C
 * binds without copying: per column an array of string pointers with their
 * lengths, or of integers, plus an indicator array for NULLs. Execution
 * binds a window of those arrays per chunk; chunks stay under BULK_MAX_BYTES
 * so one execution never outgrows the server's max_allowed_packet.
 */
#include "db_bulk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BULK_MAX_BYTES (4u << 20) /* parameter bytes per execution */
#define BULK_MAX_ROWS 20000u      /* rows per execution */
#define BULK_ROW_OVERHEAD 8       /* bytes the protocol adds per value, about */

struct bulk_col {
    enum db_param_type type; /* DBP_NULL until the first non-NULL value */
    const char **s;
    unsigned long *len;
    long long *i;
    char *ind;
};

struct db_bulk {
    size_t ncols, nrows, cap;
    struct bulk_col *cols;
};

struct db_bulk *db_bulk_new(size_t ncols)
{
    struct db_bulk *b = calloc(1, sizeof(*b));
    if (b == NULL || ncols == 0 || (b->cols = calloc(ncols, sizeof(*b->cols))) == NULL) {
        free(b);
        return NULL;
    }
    b->ncols = ncols;
    return b;
}

void db_bulk_free(struct db_bulk *b)
{
    if (b == NULL)
        return;
    for (size_t c = 0; c < b->ncols; c++) {
        free(b->cols[c].s);
        free(b->cols[c].len);
        free(b->cols[c].i);
        free(b->cols[c].ind);
    }
    free(b->cols);
    free(b);
}

void db_bulk_clear(struct db_bulk *b)
{
    b->nrows = 0;
    for (size_t c = 0; c < b->ncols; c++)
        b->cols[c].type = DBP_NULL;
}

size_t db_bulk_rows(const struct db_bulk *b)
{
    return b->nrows;
}

/* Room for one more row in every column array. */
static int reserve(struct db_bulk *b)
{
    if (b->nrows < b->cap)
        return 0;
    size_t cap = b->cap ? b->cap * 2 : 64;
    for (size_t c = 0; c < b->ncols; c++) {
        struct bulk_col *col = &b->cols[c];
        const char **s = realloc(col->s, cap * sizeof(*s));
        if (s != NULL)
            col->s = s;
        unsigned long *len = realloc(col->len, cap * sizeof(*len));
        if (len != NULL)
            col->len = len;
        long long *i = realloc(col->i, cap * sizeof(*i));
        if (i != NULL)
            col->i = i;
        char *ind = realloc(col->ind, cap);
        if (ind != NULL)
            col->ind = ind;
        if (s == NULL || len == NULL || i == NULL || ind == NULL)
            return -1; /* what grew stays owned by col; cap is unchanged */
    }
    b->cap = cap;
    return 0;
}

int db_bulk_add(struct db_bulk *b, const struct db_param *row)
{
    if (reserve(b) < 0)
        return -1;
    size_t r = b->nrows;
    for (size_t c = 0; c < b->ncols; c++) {
        struct bulk_col *col = &b->cols[c];
        const struct db_param *p = &row[c];
        bool null = p->type == DBP_NULL || (p->type != DBP_I64 && p->s == NULL);
        enum db_param_type t = p->type;
        if (!null && col->type != DBP_NULL && col->type != t)
            return -1;
        if (!null)
            col->type = t;
        col->ind[r] = null ? STMT_INDICATOR_NULL : STMT_INDICATOR_NONE;
        col->s[r] = null || t == DBP_I64 ? NULL : p->s;
        col->len[r] = null || t == DBP_I64 ? 0
                      : t == DBP_BLOB ? (unsigned long)p->len : (unsigned long)strlen(p->s);
        col->i[r] = !null && t == DBP_I64 ? p->i : 0;
    }
    b->nrows++;
    return 0;
}

/* How many rows from `start` fit one execution. */
static size_t chunk_rows(const struct db_bulk *b, size_t start)
{
    size_t bytes = 0, n = 0;
    while (start + n < b->nrows && n < BULK_MAX_ROWS) {
        size_t row = 0;
        for (size_t c = 0; c < b->ncols; c++)
            row += b->cols[c].len[start + n] + BULK_ROW_OVERHEAD;
        if (n > 0 && bytes + row > BULK_MAX_BYTES)
            break;
        bytes += row;
        n++;
    }
    return n;
}

static void bind_window(const struct db_bulk *b, size_t start, MYSQL_BIND *bind)
{
    for (size_t c = 0; c < b->ncols; c++) {
        const struct bulk_col *col = &b->cols[c];
        memset(&bind[c], 0, sizeof(bind[c]));
        bind[c].u.indicator = &col->ind[start];
        if (col->type == DBP_I64) {
            bind[c].buffer_type = MYSQL_TYPE_LONGLONG;
            bind[c].buffer = &col->i[start];
        } else {
            bind[c].buffer_type = col->type == DBP_BLOB ? MYSQL_TYPE_BLOB : MYSQL_TYPE_STRING;
            bind[c].buffer = (void *)&col->s[start];
            bind[c].length = &col->len[start];
        }
    }
}

int db_bulk_exec(MYSQL *db, const char *sql, struct db_bulk *b, uint64_t *affected,
                 unsigned *errno_out, char *err, size_t errlen)
{
    uint64_t total = 0;
    int rc = -1;
    if (affected != NULL)
        *affected = 0;
    if (errno_out != NULL)
        *errno_out = 0;
    if (b->nrows == 0)
        return 0;
    MYSQL_BIND *bind = calloc(b->ncols, sizeof(*bind));
    MYSQL_STMT *st = bind != NULL ? mysql_stmt_init(db) : NULL;
    if (st == NULL) {
        snprintf(err, errlen, "out of memory");
        free(bind);
        return -1;
    }
    if (mysql_stmt_prepare(st, sql, (unsigned long)strlen(sql)) != 0)
        goto fail;
    if (mysql_stmt_param_count(st) != b->ncols) {
        snprintf(err, errlen, "bulk statement wants %lu parameters, rows have %zu",
                 mysql_stmt_param_count(st), b->ncols);
        goto out;
    }
    for (size_t start = 0; start < b->nrows;) {
        unsigned int n = (unsigned int)chunk_rows(b, start);
        bind_window(b, start, bind);
        if (mysql_stmt_attr_set(st, STMT_ATTR_ARRAY_SIZE, &n) != 0 ||
            mysql_stmt_bind_param(st, bind) != 0 || mysql_stmt_execute(st) != 0)
            goto fail;
        total += mysql_stmt_affected_rows(st);
        start += n;
    }
    if (affected != NULL)
        *affected = total;
    rc = 0;
    goto out;
fail:
    snprintf(err, errlen, "%s", mysql_stmt_error(st));
    if (errno_out != NULL)
        *errno_out = mysql_stmt_errno(st);
out:
    mysql_stmt_close(st);
    free(bind);
    return rc;
}
