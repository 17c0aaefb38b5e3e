/* ui_usage_read.c - /ui/api/usage's reading of usage_rollup (schema 010;
 * see ui_usage.c for the route).
 *
 * usage_rollup holds each team, key, customer, model and tag alone per day
 * and per month, for the whole ledger (user_id '') and for each internal
 * user's own requests (an internal user's key reads those). The range's
 * whole months come from the month rows and the days before and after them
 * from the day rows: together they give every group's sums (the top lists;
 * the model rows add up to the totals, as each request has one model). Then
 * the chart's days come from the day rows of its dimension's total and of
 * its top groups (by the (grain, user_id, dim, group_id, period) index). A
 * calendar quarter is three month rows per group, whatever the traffic.
 * Rows are streamed into fixed buffers (report_days.h) and summed exactly
 * here (money_t).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "civil.h"
#include "report_days.h"
#include "ui_usage.h"

/* The rows of a grain, user and period range, every dimension: dim, group,
 * spend, requests, prompt, completion, total tokens. */
static const char SQL_ROLLUP[] =
    "SELECT dim, group_id, spend, api_requests, prompt_tokens, completion_tokens, total_tokens"
    " FROM usage_rollup WHERE grain = ? AND user_id = ? AND dim IN ('t', 'k', 'c', 'm', 'g')"
    " AND period >= ? AND period < ?";
/* A dimension's day rows: day, group, spend (the top groups' when filtered). */
static const char SQL_ROLLUP_DAYS[] =
    "SELECT period, group_id, spend FROM usage_rollup WHERE grain = 'd' AND user_id = ?"
    " AND dim = ? AND period >= ? AND period < ?";
static const char DIM_CODE[N_DIMS + 1] = "tkcmg"; /* usage_rollup.dim, by DIM_ */

/* The range's index of a "YYYY-MM-DD" cell; -1 outside the range. */
static int day_index(struct ui_usage *u, const char *day)
{
    int y, m, d;
    if (strcmp(day, u->last_day) == 0)
        return u->last_idx;
    if (sscanf(day, "%4d-%2d-%2d", &y, &m, &d) != 3)
        return -1;
    int64_t i = days_from_civil(y, m, d) - u->day0;
    if (i < 0 || i >= u->range.ndays)
        return -1;
    snprintf(u->last_day, sizeof(u->last_day), "%s", day);
    u->last_idx = (int)i;
    return (int)i;
}

static void day_text(int64_t z, char out[11])
{
    int64_t y;
    int m, d;
    civil_from_days(z, &y, &m, &d);
    snprintf(out, 11, "%04d-%02d-%02d", (int)y, m, d);
}

static int64_t first_of_month(int64_t z)
{
    int64_t y;
    int m, d;
    civil_from_days(z, &y, &m, &d);
    return days_from_civil(y, m, 1);
}

void usage_free_group(void *v)
{
    struct group *g = v;
    free(g->id);
    free(g->by_day);
    free(g);
}

/* The group of id (NULL: none) in d, made when new; NULL on ENOMEM. */
static struct group *dim_group(struct ui_usage *u, struct dim *d, const char *id, size_t len,
                               bool create)
{
    if (len + 2 > sizeof(u->key))
        return NULL;
    u->key[0] = id != NULL ? '=' : '-';
    memcpy(u->key + 1, id != NULL ? id : "", id != NULL ? len + 1 : 1);
    struct group *g = strmap_get(d->groups, u->key);
    int err = 0;
    if (g != NULL || !create)
        return g;
    if ((g = calloc(1, sizeof(*g))) == NULL)
        return NULL;
    if (id != NULL && (g->id = strdup(id)) == NULL) {
        free(g);
        return NULL;
    }
    strmap_put(d->groups, u->key, g, &err);
    if (err < 0) {
        usage_free_group(g);
        return NULL;
    }
    return g;
}

static int64_t cell_int(const struct report_row *r, int c)
{
    return r->cell[c] != NULL ? strtoll(r->cell[c], NULL, 10) : 0;
}

/* Cell c's group id for dimension dim: NULL for the empty id usage_rollup
 * keeps for no team or no customer (no key stays "", as /spend/logs has it). */
static const char *group_id(int dim, const struct report_row *r, int c)
{
    if (r->cell[c] != NULL && r->len[c] == 0 && (dim == DIM_TEAM || dim == DIM_CUSTOMER))
        return NULL;
    return r->cell[c];
}

/* The chart's dimension. */
static struct dim *series_dim(struct ui_usage *u)
{
    for (int i = 0; i < N_DIMS; i++)
        if (u->dims[i].series)
            return &u->dims[i];
    return NULL;
}

/* A row of SQL_ROLLUP into its dimension's group; the model rows also into
 * the totals (each request has exactly one model). */
static int rollup_row(void *ctx, const struct report_row *r)
{
    struct ui_usage *u = ctx;
    const char *code = r->cell[0] != NULL && r->cell[0][0] != '\0'
        ? strchr(DIM_CODE, r->cell[0][0]) : NULL;
    money_t spend = 0;
    if (code == NULL || r->cell[1] == NULL || r->cell[2] == NULL ||
        money_parse(r->cell[2], &spend) < 0)
        return -1;
    int dim = (int)(code - DIM_CODE);
    struct dim *d = &u->dims[dim];
    int64_t requests = cell_int(r, 3);
    struct group *g = dim_group(u, d, group_id(dim, r, 1), r->len[1], true);
    if (g == NULL || money_add(g->spend, spend, &g->spend) < 0 ||
        money_add(d->total, spend, &d->total) < 0)
        return -1;
    g->requests += requests;
    if (dim != DIM_MODEL)
        return 0;
    u->requests += requests;
    u->prompt += cell_int(r, 4);
    u->completion += cell_int(r, 5);
    u->total_tokens += cell_int(r, 6);
    return money_add(u->spend, spend, &u->spend);
}

/* The rows of one grain ("d" or "m") for the days [from, to). */
static int rollup_pass(MYSQL *db, struct ui_usage *u, const char *grain, int64_t from,
                       int64_t to, char *err, size_t errlen)
{
    char a[11], b[11];
    if (from >= to)
        return 0;
    day_text(from, a);
    day_text(to, b);
    struct db_param p[] = {DB_STR(grain), DB_STR(u->user ? u->user : ""), DB_STR(a), DB_STR(b)};
    return report_stream(db, SQL_ROLLUP, p, 4, rollup_row, u, err, errlen);
}

/* A day row of the chart dimension's total (SQL_ROLLUP_DAYS's columns). */
static int day_total_row(void *ctx, const struct report_row *r)
{
    struct ui_usage *u = ctx;
    struct dim *d = series_dim(u);
    int day = r->cell[0] != NULL ? day_index(u, r->cell[0]) : -1;
    money_t spend = 0;
    if (d == NULL || day < 0 || r->cell[2] == NULL || money_parse(r->cell[2], &spend) < 0)
        return -1;
    return money_add(d->day_total[day], spend, &d->day_total[day]);
}

/* A day row of one of the chart's top groups. */
static int series_row(void *ctx, const struct report_row *r)
{
    struct ui_usage *u = ctx;
    struct dim *d = series_dim(u);
    int day = r->cell[0] != NULL ? day_index(u, r->cell[0]) : -1;
    money_t spend = 0;
    struct group *g = d != NULL ? dim_group(u, d, group_id((int)(d - u->dims), r, 1), r->len[1],
                                            false) : NULL;
    if (day < 0 || g == NULL || r->cell[2] == NULL || money_parse(r->cell[2], &spend) < 0)
        return -1;
    if (g->by_day == NULL && (g->by_day = calloc((size_t)u->range.ndays, sizeof(money_t))) == NULL)
        return -1;
    return money_add(g->by_day[day], spend, &g->by_day[day]);
}

/* The chart: its dimension's spend per day (the model rows', which add up to
 * every request's, or the tag rows'), then its top groups' days. */
static int series_read(MYSQL *db, struct ui_usage *u, int dim, char *err, size_t errlen)
{
    const struct dim *d = &u->dims[dim];
    char sql[sizeof(SQL_ROLLUP_DAYS) + 32 + 4 * USAGE_TOP_MAX], from[11], to[11];
    char code[2] = {dim == DIM_TAG ? 'g' : 'm', '\0'};
    struct db_param p[4 + USAGE_TOP_MAX];
    size_t np = 0;
    day_text(u->day0, from);
    day_text(u->day0 + u->range.ndays, to);
    p[np++] = DB_STR(u->user ? u->user : "");
    p[np++] = DB_STR(code);
    p[np++] = DB_STR(from);
    p[np++] = DB_STR(to);
    if (report_stream(db, SQL_ROLLUP_DAYS, p, np, day_total_row, u, err, errlen) < 0)
        return -1;
    if (d->nsorted == 0)
        return 0;
    code[0] = DIM_CODE[dim];
    size_t len = (size_t)snprintf(sql, sizeof(sql), "%s AND group_id IN (", SQL_ROLLUP_DAYS);
    for (size_t i = 0; i < usage_top_count(d); i++) {
        len += (size_t)snprintf(sql + len, sizeof(sql) - len, i > 0 ? ", ?" : "?");
        p[np++] = DB_STR(d->sorted[i]->id != NULL ? d->sorted[i]->id : "");
    }
    snprintf(sql + len, sizeof(sql) - len, ")");
    return report_stream(db, sql, p, np, series_row, u, err, errlen);
}

static int cmp_group(const void *x, const void *y)
{
    const struct group *a = *(struct group *const *)x, *b = *(struct group *const *)y;
    if (a->spend != b->spend)
        return a->spend > b->spend ? -1 : 1;
    if (a->id == NULL || b->id == NULL)
        return (a->id != NULL) - (b->id != NULL);
    return strcmp(a->id, b->id);
}

static int sort_dim(struct dim *d)
{
    size_t pos = 0, n = 0;
    const char *k;
    void *v;
    d->sorted = malloc((strmap_count(d->groups) + 1) * sizeof(*d->sorted));
    if (d->sorted == NULL)
        return -1;
    while (strmap_next(d->groups, &pos, &k, &v) == 0)
        d->sorted[n++] = v;
    qsort(d->sorted, n, sizeof(*d->sorted), cmp_group);
    d->nsorted = n;
    return 0;
}

size_t usage_top_count(const struct dim *d)
{
    return d->nsorted < USAGE_TOP_MAX ? d->nsorted : USAGE_TOP_MAX;
}

int usage_read(MYSQL *db, struct ui_usage *u, char *err, size_t errlen)
{
    int64_t start = u->day0, end = u->day0 + u->range.ndays, first = first_of_month(start);
    int64_t m0 = first == start ? start : first_of_month(first + 31); /* the next month's */
    int64_t m1 = first_of_month(end);
    if (m0 < m1) {
        if (rollup_pass(db, u, "m", m0, m1, err, errlen) < 0 ||
            rollup_pass(db, u, "d", start, m0, err, errlen) < 0 ||
            rollup_pass(db, u, "d", m1, end, err, errlen) < 0)
            return -1;
    } else if (rollup_pass(db, u, "d", start, end, err, errlen) < 0) {
        return -1;
    }
    for (int i = 0; i < N_DIMS; i++)
        if (sort_dim(&u->dims[i]) < 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    for (int i = 0; i < N_DIMS; i++)
        if (u->dims[i].series && series_read(db, u, i, err, errlen) < 0)
            return -1;
    return 0;
}
