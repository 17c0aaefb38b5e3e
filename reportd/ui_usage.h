/* ui_usage.h - /ui/api/usage's sums (private to ui_usage.c, which answers
 * the route, and ui_usage_read.c, which reads the rollups into them). */
#ifndef REPORTD_UI_USAGE_H
#define REPORTD_UI_USAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "money.h"
#include "strmap.h"
#include "ui_api.h"

#define USAGE_TOP_MAX 10 /* entries of a top list, series of the chart (+ "others") */
#define USAGE_KEY_MAX 1100 /* a group's map key: a cell (at most 1024 bytes) and a mark */

enum { DIM_TEAM, DIM_KEY, DIM_CUSTOMER, DIM_MODEL, DIM_TAG, N_DIMS };

/* An internal user's rows of daily_spend d, and of daily_tag_spend d: those
 * of keys that were the user's on that day (ui_usage.c says why). */
#define USAGE_SELF " AND d.user = ?"
#define USAGE_TAG_SELF                                                                        \
    " AND EXISTS (SELECT 1 FROM daily_spend s WHERE s.api_key = d.api_key AND s.day = d.day"  \
    " AND s.user = ?)"

/* One group of a dimension over the range. */
struct group {
    char *id;         /* NULL: no team / no customer */
    money_t spend;
    int64_t requests;
    money_t *by_day;  /* the chart's dimension only, per day (ui_usage_read.c) */
};

/* A dimension: its groups over the range, their top list. */
struct dim {
    const char *name;      /* group_by's value and the key in "top" */
    const char *column;    /* its rollup column */
    const char *null_name; /* the name of the group without an id */
    struct strmap *groups; /* "-" (no id) or "=" id -> struct group */
    bool series, dropped_days;
    money_t total, *day_total; /* all groups' spend (day_total: the chart's dimension) */
    struct group **sorted;
    size_t nsorted;
    json_t *top; /* its top list */
};

/* One answer being made. */
struct ui_usage {
    struct ui_range range;
    int64_t day0;     /* start_date in days since 1970-01-01 */
    const char *user; /* an internal user's key: its user */
    struct dim dims[N_DIMS];
    money_t spend;
    int64_t requests, prompt, completion, total_tokens;
    char key[USAGE_KEY_MAX];
    char last_day[16];
    int last_idx;
};

/* Reads the range's rollups into u (its range, user and dimensions set up):
 * totals, every dimension's groups sorted (spend, highest first, then id,
 * null first), the chart dimension's groups' days. 0, or -1 with err set. */
int usage_read(MYSQL *db, struct ui_usage *u, char *err, size_t errlen);
/* Answers the range's report of group_by's dimension as CSV (ui_usage_csv.c):
 * one line per day and group. 0, or -1 with err set (nothing answered). */
int usage_csv(struct evhttp_request *req, MYSQL *db, const struct ui_usage *u, int dim,
              char *err, size_t errlen);
/* How many of the dimension's groups its top list holds. */
size_t usage_top_count(const struct dim *d);
void usage_free_group(void *group);

#endif
