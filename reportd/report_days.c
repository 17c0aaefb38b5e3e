/* report_days.c - the rollups for /global/spend/report, read without making
 * MariaDB group or sort them (see report_days.h).
 *
 * Why: grouping the rollup rows by day, name, model and key in SQL made
 * MariaDB build a temporary table keyed by four wide text columns (on disk:
 * too long a key for its memory tables) and then sort it, and every cell of
 * the result was then copied into its own allocation. A quarter of daily
 * rows cost seconds that way. Instead the statement reads the primary key
 * (day, group_key) range, which comes in day order, rows are fetched into
 * fixed buffers as they arrive, and each day is summed here, exactly, into
 * one line per group, model and key, sorted and handed on before the next
 * day starts: memory holds one day, never the quarter.
 */
#include "report_days.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpjson.h"
#include "strmap.h"

#define CELL_MAX 1024 /* VARCHAR(255) in utf8mb4: at most 1020 bytes */
#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15)) /* as httpjson_reply */

static int fail(MYSQL_STMT *st, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s", mysql_stmt_error(st));
    return -1;
}

/* Binds p; b, lens and nulls (np each) must live until the statement has run. */
static int bind_params(MYSQL_STMT *st, const struct db_param *p, size_t np, MYSQL_BIND *b,
                       unsigned long *lens, my_bool *nulls, char *err, size_t errlen)
{
    memset(b, 0, np * sizeof(*b));
    for (size_t i = 0; i < np; i++) {
        if (p[i].type != DBP_STR && p[i].type != DBP_NULL) {
            snprintf(err, errlen, "report_stream binds strings only");
            return -1;
        }
        nulls[i] = p[i].type == DBP_NULL || p[i].s == NULL;
        lens[i] = nulls[i] ? 0 : (unsigned long)strlen(p[i].s);
        b[i].buffer_type = nulls[i] ? MYSQL_TYPE_NULL : MYSQL_TYPE_STRING;
        b[i].buffer = (void *)p[i].s;
        b[i].buffer_length = lens[i];
        b[i].length = &lens[i];
        b[i].is_null = &nulls[i];
    }
    return np > 0 && mysql_stmt_bind_param(st, b) != 0 ? fail(st, err, errlen) : 0;
}

/* Fetches every row into buf and hands it to row(). */
static int fetch_all(MYSQL_STMT *st, unsigned ncols, char (*buf)[CELL_MAX + 1],
                     int (*row)(void *, const struct report_row *), void *ctx, char *err,
                     size_t errlen)
{
    MYSQL_BIND b[REPORT_COLS_MAX];
    unsigned long lens[REPORT_COLS_MAX];
    my_bool nulls[REPORT_COLS_MAX], trunc[REPORT_COLS_MAX];
    struct report_row r;
    memset(b, 0, sizeof(b));
    for (unsigned c = 0; c < ncols; c++) {
        b[c].buffer_type = MYSQL_TYPE_STRING;
        b[c].buffer = buf[c];
        b[c].buffer_length = CELL_MAX;
        b[c].length = &lens[c];
        b[c].is_null = &nulls[c];
        b[c].error = &trunc[c];
    }
    if (mysql_stmt_bind_result(st, b) != 0)
        return fail(st, err, errlen);
    for (;;) {
        int f = mysql_stmt_fetch(st);
        if (f == MYSQL_NO_DATA)
            return 0;
        if (f == 1)
            return fail(st, err, errlen);
        for (unsigned c = 0; c < ncols; c++) {
            if (!nulls[c] && lens[c] > CELL_MAX) {
                snprintf(err, errlen, "a report cell is longer than %d bytes", CELL_MAX);
                return -1;
            }
            r.cell[c] = nulls[c] ? NULL : buf[c];
            r.len[c] = nulls[c] ? 0 : lens[c];
            if (!nulls[c])
                buf[c][lens[c]] = '\0';
        }
        if (row(ctx, &r) < 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
}

int report_stream(MYSQL *db, const char *sql, const struct db_param *p, size_t np,
                  int (*row)(void *ctx, const struct report_row *r), void *ctx, char *err,
                  size_t errlen)
{
    MYSQL_STMT *st = mysql_stmt_init(db);
    MYSQL_BIND b[np ? np : 1];
    unsigned long lens[np ? np : 1];
    my_bool nulls[np ? np : 1];
    char (*buf)[CELL_MAX + 1] = malloc(REPORT_COLS_MAX * sizeof(*buf));
    int rc = -1;
    if (st == NULL || buf == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (mysql_stmt_prepare(st, sql, (unsigned long)strlen(sql)) != 0) {
        fail(st, err, errlen);
        goto out;
    }
    if (mysql_stmt_param_count(st) != np) {
        snprintf(err, errlen, "statement wants %lu parameters, got %zu",
                 mysql_stmt_param_count(st), np);
        goto out;
    }
    if (bind_params(st, p, np, b, lens, nulls, err, errlen) < 0)
        goto out;
    if (mysql_stmt_execute(st) != 0) {
        fail(st, err, errlen);
        goto out;
    }
    unsigned ncols = mysql_stmt_field_count(st);
    if (ncols == 0 || ncols > REPORT_COLS_MAX) {
        snprintf(err, errlen, "report_stream: %u columns", ncols);
        goto out;
    }
    rc = fetch_all(st, ncols, buf, row, ctx, err, errlen);
out:
    if (st != NULL) {
        mysql_stmt_free_result(st); /* the rest of an unread result is discarded */
        mysql_stmt_close(st);
    }
    free(buf);
    return rc;
}

/* The day being summed. */
struct days {
    struct strmap *lines; /* "group|model|key" (length-prefixed) -> struct day_line */
    char day[16];
    char *keybuf;
    day_sink sink;
    void *ctx;
};

static void free_line(void *v)
{
    struct day_line *l = v;
    free(l->group);
    free(l->model);
    free(l->key);
    free(l);
}

static int cmp_opt(const char *a, const char *b)
{
    return a == NULL ? (b == NULL ? 0 : -1) : b == NULL ? 1 : strcmp(a, b);
}

static int cmp_line(const void *x, const void *y)
{
    const struct day_line *a = *(struct day_line *const *)x, *b = *(struct day_line *const *)y;
    int c = cmp_opt(a->group, b->group);
    if (c == 0)
        c = strcmp(a->model, b->model);
    return c != 0 ? c : strcmp(a->key, b->key);
}

/* Hands the day's lines, sorted, to the sink and starts an empty day. */
static int flush_day(struct days *d)
{
    size_t n = strmap_count(d->lines), k = 0, pos = 0;
    const char *key;
    void *v;
    if (n == 0)
        return 0;
    struct day_line **list = malloc(n * sizeof(*list));
    int rc = -1;
    if (list != NULL) {
        while (strmap_next(d->lines, &pos, &key, &v) == 0)
            list[k++] = v;
        qsort(list, k, sizeof(*list), cmp_line);
        rc = d->sink(d->ctx, d->day, list, k);
    }
    free(list);
    strmap_free(d->lines, free_line);
    d->lines = strmap_new();
    return rc == 0 && d->lines != NULL ? 0 : -1;
}

static char *dup_cell(const char *s, size_t len)
{
    char *p = s != NULL ? malloc(len + 1) : NULL;
    if (p != NULL)
        memcpy(p, s, len + 1);
    return p;
}

/* rows: day, group, model, spend, total_tokens, api_key */
static int day_row(void *ctx, const struct report_row *r)
{
    struct days *d = ctx;
    if (r->cell[0] == NULL || r->cell[2] == NULL || r->cell[3] == NULL || r->cell[5] == NULL)
        return -1;
    if (strcmp(d->day, r->cell[0]) != 0) {
        if (flush_day(d) < 0)
            return -1;
        snprintf(d->day, sizeof(d->day), "%s", r->cell[0]);
    }
    char *k = d->keybuf;
    if (r->cell[1] == NULL)
        k += sprintf(k, "-|");
    else
        k += sprintf(k, "%zu:%s|", r->len[1], r->cell[1]);
    sprintf(k, "%zu:%s|%s", r->len[2], r->cell[2], r->cell[5]);
    struct day_line *l = strmap_get(d->lines, d->keybuf);
    if (l == NULL) {
        int err = 0;
        if ((l = calloc(1, sizeof(*l))) == NULL)
            return -1;
        l->model = dup_cell(r->cell[2], r->len[2]);
        l->key = dup_cell(r->cell[5], r->len[5]);
        l->group = dup_cell(r->cell[1], r->len[1]);
        if (l->model == NULL || l->key == NULL || (r->cell[1] != NULL && l->group == NULL)) {
            free_line(l);
            return -1;
        }
        strmap_put(d->lines, d->keybuf, l, &err);
        if (err < 0) {
            free_line(l);
            return -1;
        }
    }
    money_t spend = 0;
    money_parse(r->cell[3], &spend);
    money_add(l->spend, spend, &l->spend);
    l->tokens += r->cell[4] != NULL ? strtoll(r->cell[4], NULL, 10) : 0;
    return 0;
}

int report_days(MYSQL *db, const char *sql, const struct db_param *p, size_t np, day_sink sink,
                void *ctx, char *err, size_t errlen)
{
    struct days d = {.lines = strmap_new(), .keybuf = malloc(3 * (CELL_MAX + 32)),
                     .sink = sink, .ctx = ctx};
    int rc = -1;
    if (d.lines == NULL || d.keybuf == NULL)
        snprintf(err, errlen, "out of memory");
    else if ((rc = report_stream(db, sql, p, np, day_row, &d, err, errlen)) == 0 &&
             (rc = flush_day(&d)) < 0)
        snprintf(err, errlen, "out of memory");
    strmap_free(d.lines, free_line);
    free(d.keybuf);
    return rc;
}

int report_json_str(struct evbuffer *b, const char *s)
{
    if (s == NULL)
        return evbuffer_add(b, "null", 4);
    int rc = evbuffer_add(b, "\"", 1);
    const char *run = s;
    for (; rc == 0 && *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        rc = evbuffer_add(b, run, (size_t)(s - run));
        run = s + 1;
        const char *esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\b' ? "\\b"
                        : c == '\f' ? "\\f" : c == '\n' ? "\\n" : c == '\r' ? "\\r"
                        : c == '\t' ? "\\t" : NULL;
        if (rc == 0)
            rc = esc != NULL ? evbuffer_add(b, esc, 2) : evbuffer_add_printf(b, "\\u%04X", c) < 0;
    }
    if (rc == 0)
        rc = evbuffer_add(b, run, (size_t)(s - run));
    return rc == 0 ? evbuffer_add(b, "\"", 1) : -1;
}

int report_json_money(struct evbuffer *b, money_t m)
{
    char text[64];
    json_t *j = httpjson_money(m);
    size_t n = j != NULL ? json_dumpb(j, text, sizeof(text), DUMP_FLAGS | JSON_ENCODE_ANY) : 0;
    json_decref(j);
    return n == 0 || n > sizeof(text) ? -1 : evbuffer_add(b, text, n);
}
