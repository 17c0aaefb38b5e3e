/* report_days.h - reading the rollups for /global/spend/report without making
 * MariaDB group or sort them: rows streamed into fixed buffers (report_stream),
 * and the day forms summed per day here (report_days). */
#ifndef REPORTD_REPORT_DAYS_H
#define REPORTD_REPORT_DAYS_H

#include <event2/buffer.h>
#include <mysql.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "money.h"

#define REPORT_COLS_MAX 10

/* One fetched row: text cells (NULL for SQL NULL) and their lengths. */
struct report_row {
    const char *cell[REPORT_COLS_MAX];
    size_t len[REPORT_COLS_MAX];
};

/* Runs sql (string parameters only; a NULL string binds SQL NULL) and calls
 * row() for each row as it arrives, without storing the result. Cells are
 * valid during the call. 0, or -1 with err set (row() returning -1 stops). */
int report_stream(MYSQL *db, const char *sql, const struct db_param *p, size_t np,
                  int (*row)(void *ctx, const struct report_row *r), void *ctx, char *err,
                  size_t errlen);

/* One line of a day form: a day's rollup rows of one group, model and key. */
struct day_line {
    char *group; /* NULL: no group (e.g. requests without an end user) */
    char *model, *key;
    money_t spend;
    int64_t tokens;
};

/* Called once per day ("YYYY-MM-DD") with its lines sorted by group (NULL
 * first), model and key, byte-wise as MariaDB's binary collations; -1 stops. */
typedef int (*day_sink)(void *ctx, const char *day, struct day_line *const *lines, size_t n);

/* Streams sql, whose rows are (day, group, model, spend, total_tokens, api_key)
 * in day order, and gives each day's lines to sink. 0, or -1 with err set. */
int report_days(MYSQL *db, const char *sql, const struct db_param *p, size_t np, day_sink sink,
                void *ctx, char *err, size_t errlen);

/* JSON text helpers for answers written straight into a buffer: a string
 * (escaped as jansson does) or null, and money as httpjson_money writes it. */
int report_json_str(struct evbuffer *b, const char *s);
int report_json_money(struct evbuffer *b, money_t m);

#endif
