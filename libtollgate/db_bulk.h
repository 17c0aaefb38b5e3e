/* db_bulk.h - many rows through one prepared statement: Connector/C's array
 * binding, which MariaDB runs as one COM_STMT_BULK_EXECUTE per chunk, so a
 * batch of thousands of rows costs a few round trips instead of one each.
 *
 * Rows are added as db_param arrays (see db.h); strings are referenced, not
 * copied, and must stay alive until db_bulk_exec returns. Every row of a
 * statement has the same number of parameters; a column holds strings,
 * blobs or integers, one kind each (NULL is allowed in any).
 */
#ifndef TG_DB_BULK_H
#define TG_DB_BULK_H

#include <mysql.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"

struct db_bulk;

struct db_bulk *db_bulk_new(size_t ncols);
void db_bulk_free(struct db_bulk *b);

/* Forgets the rows (keeps the memory for the next statement). */
void db_bulk_clear(struct db_bulk *b);

/* Appends one row of ncols parameters. -1 on ENOMEM or a column whose type
 * differs from its earlier rows. */
int db_bulk_add(struct db_bulk *b, const struct db_param *row);

size_t db_bulk_rows(const struct db_bulk *b);

/* Runs sql once for every row, in the order added (so row locks are taken
 * in that order), in chunks that fit a packet. *affected (may be NULL) gets
 * the total of affected rows. 0, or -1 with err and *errno_out set. Rows
 * stay; a statement with no rows does nothing. */
int db_bulk_exec(MYSQL *db, const char *sql, struct db_bulk *b, uint64_t *affected,
                 unsigned *errno_out, char *err, size_t errlen);

#endif
