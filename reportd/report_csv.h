/* report_csv.h - the day forms of /global/spend/report as CSV. */
#ifndef REPORTD_REPORT_CSV_H
#define REPORTD_REPORT_CSV_H

#include <stddef.h>

#include "db.h"

/* Rows (day, group, model, spend, total_tokens, api_key), ordered by day,
 * group, model, as CSV with a header naming the group column: one line per
 * day, group and model (summed over keys). The caller frees; NULL on ENOMEM. */
char *report_csv_days(const char *group_name, const struct db_result *r, size_t *len);

#endif
