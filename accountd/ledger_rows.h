/* ledger_rows.h - a batch of usage events as spend_logs rows: priced, checked
 * against the columns, sorted, and inserted in one bulk statement that tells
 * which rows are new. */
#ifndef ACCOUNTD_LEDGER_ROWS_H
#define ACCOUNTD_LEDGER_ROWS_H

#include <mysql.h>
#include <stdbool.h>
#include <stdint.h>

#include "db.h"
#include "events.pb-c.h"
#include "money.h"
#include "price.h"
#include "strmap.h"

/* s, or NULL when it is NULL or empty (an event's optional string). */
static inline const char *ledger_nonempty(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : NULL;
}

struct ledger_shared;

struct ledger_row {
    const Tollgate__UsageEvent *e;
    money_t cost;
    char cost_text[MONEY_STR_MAX];
    const char *pricing;     /* priced | unpriced | invalid */
    char start[DB_DATETIME_MAX], end[DB_DATETIME_MAX]; /* DATETIME(6) text, UTC */
    char day[11];            /* YYYY-MM-DD of start, UTC */
    char provider[64];
    char image_size[48];     /* "WxH" an image generation was priced at */
    bool buckets;            /* reports a bucket of schema 011: written with those columns */
    char *tags_json;
    const char *bad;         /* why the row cannot be written as it is; NULL if it can */
    const char *reason;      /* bad's kind, the rejected-events metric's label: invalid |
                              * retention | database */
    bool dup_in_batch;       /* the same request id came earlier in this batch */
    bool inserted;           /* this transaction inserted it (set by rows_insert) */
    bool rejected;           /* this transaction added it to rejected_events */
};

/* Prices and checks each event into rows[i] (n entries, sorted by request
 * id afterwards, the order every writer takes the log rows' locks in). An
 * event that started before horizon_us (the log retention's, 0 for none)
 * is marked bad: its first copy may have been deleted already.
 * shared: the models already warned about as unpriced. -1 on ENOMEM. */
int rows_prepare(struct ledger_row *rows, Tollgate__UsageEvent **events, size_t n,
                 const struct price_table *prices, struct ledger_shared *shared,
                 int64_t horizon_us);
void rows_release(struct ledger_row *rows, size_t n);

/* Inserts the rows (not dup_in_batch, not bad) tagged with batch_id; a
 * request id already in the ledger is left as it is. Sets each row's
 * `inserted`. 0, or -1 with err/errnum (the transaction must roll back). */
int rows_insert(MYSQL *db, struct ledger_row *rows, size_t n, int64_t batch_id,
                unsigned *errnum, char *err, size_t errlen);

#endif
