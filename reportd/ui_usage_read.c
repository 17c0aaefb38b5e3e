/* ui_usage_read.c - /ui/api/usage's reading of the rollups (see ui_usage.c
 * for the route).
 *
 * The whole ledger (the master key, admins, get_spend_routes keys) is read
 * from usage_rollup (schema 010), which holds each team, key, customer, model
 * and tag alone per day and per month: the range's whole months from the
 * month rows and the days around them from the day rows give every group's
 * sums (the top lists; the model rows add up to the totals, as each request
 * has one model), then the chart's days come from the day rows of its top
 * groups and of its dimension's total. A calendar quarter is three month
 * rows per group, whatever the traffic.
 *
 * An internal user's key sees only its own rows, which only daily_spend
 * (split by user) has: one pass over the user's rows for the range sums the
 * totals and the groups of team, key, customer and model at once, rows
 * streamed into fixed buffers (report_days.h) and summed exactly here; tags
 * from daily_tag_spend. The chart's dimension also keeps each group's spend
 * per day while it has at most SERIES_INLINE_MAX groups; past that only the
 * top groups' days are read, by a second query on the rollup's index for
 * that column.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "civil.h"
#include "report_days.h"
#include "ui_usage.h"

#define SERIES_INLINE_MAX 256 /* groups whose days the first pass keeps */
#define SQL_MAX 1024

#define DAYS_SQL " WHERE d.day >= DATE(?) AND d.day < DATE(?)"
/* An internal user's rows: day, key, team, end user, model, spend, requests,
 * prompt, completion, total tokens. */
static const char SQL_MAIN[] =
    "SELECT d.day, d.api_key, d.team_id, d.end_user, d.model, d.spend, d.api_requests,"
    " d.prompt_tokens, d.completion_tokens, d.total_tokens FROM daily_spend d" DAYS_SQL;
static const char SQL_SELF[] = USAGE_SELF;
static const char SQL_TAG_SELF[] = USAGE_TAG_SELF;

/* usage_rollup's rows of a grain and period range, every dimension: dim,
 * group, spend, requests, prompt, completion, total tokens. */
static const char SQL_ROLLUP[] =
    "SELECT dim, group_id, spend, api_requests, prompt_tokens, completion_tokens, total_tokens"
    " FROM usage_rollup WHERE grain = ? AND dim IN ('t', 'k', 'c', 'm', 'g')"
    " AND period >= ? AND period < ?";
/* A dimension's day rows: day, group, spend (the top groups' when filtered). */
static const char SQL_ROLLUP_DAYS[] =
    "SELECT period, group_id, spend FROM usage_rollup WHERE grain = 'd' AND dim = ?"
    " AND period >= DATE(?) AND period < DATE(?)";
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

void usage_free_group(void *v)
{
    struct group *g = v;
    free(g->id);
    free(g->by_day);
    free(g);
}

/* Too many groups to keep each one's days: the second pass reads the top's. */
static void drop_days(struct dim *d)
{
    size_t pos = 0;
    const char *k;
    void *v;
    while (strmap_next(d->groups, &pos, &k, &v) == 0) {
        struct group *g = v;
        free(g->by_day);
        g->by_day = NULL;
    }
    d->dropped_days = true;
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
    if (d->series && !d->dropped_days && strmap_count(d->groups) > SERIES_INLINE_MAX)
        drop_days(d);
    return g;
}

/* Adds a day's row of a group to the dimension. */
static int dim_add(struct ui_usage *u, struct dim *d, const char *id, size_t len, int day,
                   money_t spend, int64_t requests)
{
    struct group *g = dim_group(u, d, id, len, true);
    if (g == NULL || money_add(g->spend, spend, &g->spend) < 0 ||
        money_add(d->total, spend, &d->total) < 0)
        return -1;
    g->requests += requests;
    if (!d->series)
        return 0;
    if (money_add(d->day_total[day], spend, &d->day_total[day]) < 0)
        return -1;
    if (d->dropped_days)
        return 0;
    if (g->by_day == NULL && (g->by_day = calloc((size_t)u->range.ndays, sizeof(money_t))) == NULL)
        return -1;
    return money_add(g->by_day[day], spend, &g->by_day[day]);
}

static int64_t cell_int(const struct report_row *r, int c)
{
    return r->cell[c] != NULL ? strtoll(r->cell[c], NULL, 10) : 0;
}

/* Cell c's group id for dimension dim: NULL for SQL NULL, and for the empty
 * id usage_rollup keeps for no team or no customer. */
static const char *group_id(int dim, const struct report_row *r, int c)
{
    if (r->cell[c] != NULL && r->len[c] == 0 && (dim == DIM_TEAM || dim == DIM_CUSTOMER))
        return NULL;
    return r->cell[c];
}

/* A daily_spend row (SQL_MAIN's columns). */
static int main_row(void *ctx, const struct report_row *r)
{
    struct ui_usage *u = ctx;
    int day = r->cell[0] != NULL ? day_index(u, r->cell[0]) : -1;
    money_t spend = 0;
    if (day < 0 || r->cell[1] == NULL || r->cell[4] == NULL || r->cell[5] == NULL ||
        money_parse(r->cell[5], &spend) < 0)
        return -1;
    int64_t requests = cell_int(r, 6);
    if (money_add(u->spend, spend, &u->spend) < 0)
        return -1;
    u->requests += requests;
    u->prompt += cell_int(r, 7);
    u->completion += cell_int(r, 8);
    u->total_tokens += cell_int(r, 9);
    static const int COL[] = {[DIM_TEAM] = 2, [DIM_KEY] = 1, [DIM_CUSTOMER] = 3, [DIM_MODEL] = 4};
    for (int i = DIM_TEAM; i <= DIM_MODEL; i++)
        if (dim_add(u, &u->dims[i], r->cell[COL[i]], r->len[COL[i]], day, spend, requests) < 0)
            return -1;
    return 0;
}

/* A tag row: day, tag, spend, requests. */
static int tag_row(void *ctx, const struct report_row *r)
{
    struct ui_usage *u = ctx;
    int day = r->cell[0] != NULL ? day_index(u, r->cell[0]) : -1;
    money_t spend = 0;
    if (day < 0 || r->cell[1] == NULL || r->cell[2] == NULL || money_parse(r->cell[2], &spend) < 0)
        return -1;
    return dim_add(u, &u->dims[DIM_TAG], r->cell[1], r->len[1], day, spend, cell_int(r, 3));
}

/* The chart's dimension. */
static struct dim *series_dim(struct ui_usage *u)
{
    for (int i = 0; i < N_DIMS; i++)
        if (u->dims[i].series)
            return &u->dims[i];
    return NULL;
}

/* The second pass's rows: day, group, spend, for top groups only. */
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

/* The FROM and WHERE of a dimension's rows of an internal user's view. */
static void rows_sql(int dim, const char *cols, char *sql, size_t size)
{
    snprintf(sql, size, "SELECT %s FROM %s d" DAYS_SQL "%s", cols,
             dim != DIM_TAG ? "daily_spend" : "daily_tag_spend",
             dim != DIM_TAG ? SQL_SELF : SQL_TAG_SELF);
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

/* Every dimension's groups in their order. */
static int sort_dims(struct ui_usage *u, char *err, size_t errlen)
{
    for (int i = 0; i < N_DIMS; i++)
        if (sort_dim(&u->dims[i]) < 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    return 0;
}

size_t usage_top_count(const struct dim *d)
{
    return d->nsorted < USAGE_TOP_MAX ? d->nsorted : USAGE_TOP_MAX;
}

/* " AND (d.col IN (?, ...) OR d.col IS NULL)" for the top groups, their ids
 * into p from *np. */
static void top_filter(const struct dim *d, char *sql, size_t size, struct db_param *p,
                       size_t *np)
{
    size_t len = strlen(sql), n = 0;
    bool has_null = false;
    for (size_t i = 0; i < usage_top_count(d); i++) {
        if (d->sorted[i]->id == NULL) {
            has_null = true;
            continue;
        }
        len += (size_t)snprintf(sql + len, size - len, n == 0 ? " AND (d.%s IN (?" : ", ?",
                                d->column);
        p[(*np)++] = DB_STR(d->sorted[i]->id);
        n++;
    }
    if (n > 0)
        len += (size_t)snprintf(sql + len, size - len, ")%s", has_null ? " OR " : ")");
    else
        len += (size_t)snprintf(sql + len, size - len, " AND (");
    if (has_null)
        snprintf(sql + len, size - len, "d.%s IS NULL)", d->column);
}

/* Reads the days of the chart's top groups when the first pass dropped them. */
static int series_pass(MYSQL *db, struct ui_usage *u, int dim, char *err, size_t errlen)
{
    struct dim *d = &u->dims[dim];
    char sql[SQL_MAX + 64 * USAGE_TOP_MAX];
    struct db_param p[3 + USAGE_TOP_MAX];
    size_t np = 0;
    char cols[64];
    if (!d->dropped_days || d->nsorted == 0)
        return 0;
    snprintf(cols, sizeof(cols), "d.day, d.%s, d.spend", d->column);
    rows_sql(dim, cols, sql, SQL_MAX);
    p[np++] = DB_STR(u->range.from);
    p[np++] = DB_STR(u->range.to);
    p[np++] = DB_STR(u->user);
    top_filter(d, sql, sizeof(sql), p, &np);
    return report_stream(db, sql, p, np, series_row, u, err, errlen);
}

/* An internal user's view: its rows of daily_spend and of daily_tag_spend. */
static int self_read(MYSQL *db, struct ui_usage *u, char *err, size_t errlen)
{
    char sql[SQL_MAX];
    struct db_param p[] = {DB_STR(u->range.from), DB_STR(u->range.to), DB_STR(u->user)};
    size_t np = 3;
    snprintf(sql, sizeof(sql), "%s%s", SQL_MAIN, SQL_SELF);
    if (report_stream(db, sql, p, np, main_row, u, err, errlen) < 0)
        return -1;
    rows_sql(DIM_TAG, "d.day, d.tag, d.spend, d.api_requests", sql, sizeof(sql));
    if (report_stream(db, sql, p, np, tag_row, u, err, errlen) < 0)
        return -1;
    if (sort_dims(u, err, errlen) < 0)
        return -1;
    for (int i = 0; i < N_DIMS; i++)
        if (u->dims[i].series && series_pass(db, u, i, err, errlen) < 0)
            return -1;
    return 0;
}

/* --- the whole ledger: usage_rollup ------------------------------------- */

static int64_t first_of_month(int64_t z)
{
    int64_t y;
    int m, d;
    civil_from_days(z, &y, &m, &d);
    return days_from_civil(y, m, 1);
}

/* A usage_rollup row (SQL_ROLLUP's columns) into its dimension's group; the
 * model rows also into the totals (each request has exactly one model). */
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
    char a[16], b[16];
    if (from >= to)
        return 0;
    ui_range_day(&u->range, (int)(from - u->day0), a);
    ui_range_day(&u->range, (int)(to - u->day0), b);
    struct db_param p[] = {DB_STR(grain), DB_STR(a), DB_STR(b)};
    return report_stream(db, SQL_ROLLUP, p, 3, rollup_row, u, err, errlen);
}

/* A day row of the chart's dimension total (SQL_ROLLUP_DAYS's columns). */
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

/* The chart: its dimension's spend per day (the model rows', which add up to
 * every request's, or the tag rows'), then its top groups' days. */
static int ledger_series(MYSQL *db, struct ui_usage *u, int dim, char *err, size_t errlen)
{
    const struct dim *d = &u->dims[dim];
    char sql[sizeof(SQL_ROLLUP_DAYS) + 32 + 4 * USAGE_TOP_MAX];
    char code[2] = {dim == DIM_TAG ? 'g' : 'm', '\0'};
    struct db_param p[3 + USAGE_TOP_MAX];
    size_t np = 0;
    p[np++] = DB_STR(code);
    p[np++] = DB_STR(u->range.from);
    p[np++] = DB_STR(u->range.to);
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

/* The whole ledger's view: the range's whole months from the month rows and
 * the days before and after them from the day rows. */
static int ledger_read(MYSQL *db, struct ui_usage *u, char *err, size_t errlen)
{
    int64_t start = u->day0, end = u->day0 + u->range.ndays;
    int64_t first = first_of_month(start);
    int64_t m0 = first == start ? start : first_of_month(first + 31); /* the next month's */
    int64_t m1 = first_of_month(end);
    for (int i = 0; i < N_DIMS; i++)
        u->dims[i].dropped_days = true; /* ledger_series reads the chart's days */
    if (m0 < m1) {
        if (rollup_pass(db, u, "m", m0, m1, err, errlen) < 0 ||
            rollup_pass(db, u, "d", start, m0, err, errlen) < 0 ||
            rollup_pass(db, u, "d", m1, end, err, errlen) < 0)
            return -1;
    } else if (rollup_pass(db, u, "d", start, end, err, errlen) < 0) {
        return -1;
    }
    if (sort_dims(u, err, errlen) < 0)
        return -1;
    for (int i = 0; i < N_DIMS; i++)
        if (u->dims[i].series && ledger_series(db, u, i, err, errlen) < 0)
            return -1;
    return 0;
}

int usage_read(MYSQL *db, struct ui_usage *u, char *err, size_t errlen)
{
    return u->user != NULL ? self_read(db, u, err, errlen) : ledger_read(db, u, err, errlen);
}
