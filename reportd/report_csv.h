/* report_csv.h - the day forms of /global/spend/report as CSV, and the
 * cells every CSV of reportd writes. */
#ifndef REPORTD_REPORT_CSV_H
#define REPORTD_REPORT_CSV_H

#include <event2/buffer.h>
#include <stddef.h>

#include "report_days.h"

/* A text cell: quoted when it holds a comma, quote or line break; a leading
 * = + - @, TAB or CR gets a ' so that a spreadsheet shows it instead of
 * running it.
 * 0, or -1 on ENOMEM. */
int report_csv_text(struct evbuffer *b, const char *s);

/* The header line, naming the group column. 0, or -1 on ENOMEM. */
int report_csv_header(struct evbuffer *b, const char *group_name);

/* One day's lines (sorted by group, model, key, see report_days.h) as one CSV
 * line per group and model, summed over the keys. 0, or -1 on ENOMEM. */
int report_csv_day(struct evbuffer *b, const char *day, struct day_line *const *lines, size_t n);

#endif
