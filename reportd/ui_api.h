/* ui_api.h - the Usage page's JSON routes (/ui/api/usage in ui_usage.c,
 * /ui/api/budgets in ui_api.c, /ui/api/logs in ui_logs.c) and what they
 * share: the date range, exact money as text, ratios. */
#ifndef REPORTD_UI_API_H
#define REPORTD_UI_API_H

#include <event2/http.h>
#include <jansson.h>
#include <time.h>

#include "db.h"
#include "input.h"
#include "money.h"
#include "reportd.h"

#define UI_DAYS_MAX 366 /* the longest range a route takes, in days */
#define UI_RATIO_MAX 64

/* start_date .. end_date (both required, inclusive, UTC). */
struct ui_range {
    time_t start;                 /* start_date's midnight */
    int ndays;                    /* 1 .. UI_DAYS_MAX */
    char start_date[16], end_date[16];
    char from[DB_DATETIME_MAX], to[DB_DATETIME_MAX]; /* [from, to): the whole days */
};

/* Reads start_date and end_date; answers the 400 (naming the parameter)
 * and returns -1 when one is absent or bad, start is after end, or the
 * range is longer than UI_DAYS_MAX days. */
int ui_range_read(struct evhttp_request *req, struct query *q, struct ui_range *r);
/* "YYYY-MM-DD" of the range's day i (0 = start_date). */
void ui_range_day(const struct ui_range *r, int i, char out[16]);

/* Money as the page's API writes it: the exact decimal as a JSON string,
 * trailing zeros trimmed ("0.00009", "0"). */
json_t *ui_money(money_t m);
/* The same from a DECIMAL cell; "0" for NULL or unreadable text. */
json_t *ui_money_text(const char *decimal);
money_t ui_money_of(const char *decimal);

/* num / den (both >= 0) rounded half up to `places` decimals (0..8), as
 * trimmed decimal text ("0.4521", "1.05", "0"); "0" when den is 0. */
void ui_ratio(money_t num, money_t den, int places, char out[UI_RATIO_MAX]);

/* Starts a read-only transaction, so that every query of a route reads one
 * snapshot (its totals, lists and series agree with each other); end it
 * with ui_snapshot_end. 0, or -1 answered (500). */
int ui_snapshot_begin(struct worker *w, struct evhttp_request *req, MYSQL *db);
void ui_snapshot_end(MYSQL *db);

/* The handlers (api.c's ROUTES). */
void ui_api_usage(struct worker *w, struct evhttp_request *req, const struct caller *who);
void ui_api_budgets(struct worker *w, struct evhttp_request *req, const struct caller *who);
void ui_api_logs(struct worker *w, struct evhttp_request *req, const struct caller *who);
void ui_static(struct worker *w, struct evhttp_request *req, const struct caller *who);

#endif
