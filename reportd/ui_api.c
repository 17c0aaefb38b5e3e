/* ui_api.c - GET /ui/api/budgets, and what the Usage page's JSON routes
 * share (ui_api.h): the date range, money as exact decimal text, ratios and
 * the read snapshot.
 *
 * /ui/api/budgets?threshold=0.8 lists the budgets at or above threshold of
 * their limit: {"budgets": [{"kind", "id", "name", "spend", "max_budget",
 * "ratio", "budget_reset_at"}]}, ratio (spend / max_budget) highest first,
 * then kind and id; at most UI_BUDGETS_MAX entries. Decisions the spec left
 * open:
 * - threshold: a decimal of at most 4 places from 0 to 100 (default 0.8);
 *   the test ratio >= threshold is exact (DECIMAL, in SQL), the ratio shown
 *   is rounded half up to 4 places ("0.95", "1.0833");
 * - kinds and what they read (spend is the current period's, as proxyd
 *   enforces it): key (api_keys; id the token hash, name the alias or else
 *   the "sk-...abcd" key name), user (internal_users; alias, email or id),
 *   team (teams; alias or id), team_member (team_members with the limit of
 *   their budget_id's budget; id "team_id/user_id", name "user in team"),
 *   customer (customers with their budget's limit; alias or id), tag (tags).
 *   budget_reset_at is the owner's reset time (a member's or customer's:
 *   its budget's), RFC 3339 UTC to the second, or null. No entry has kind
 *   "budget": a shared budget holds no spend of its own, its members are
 *   listed with its limit;
 * - a max_budget of 0 is a block, not a budget being used up: not listed;
 * - an internal user's key (caller.self_only): its own keys and its own
 *   user row only.
 * Parameters other than threshold are refused (400, naming the parameter).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpjson.h"
#include "ui_api.h"

#define DAY_S 86400
#define UI_BUDGETS_MAX 100
#define THRESHOLD_SCALE 10000 /* threshold's 4 places */
#define THRESHOLD_MAX (100 * THRESHOLD_SCALE)

int ui_range_read(struct evhttp_request *req, struct query *q, struct ui_range *r)
{
    time_t end;
    bool present;
    struct tm tm;
    if (query_date(req, q, "start_date", true, &r->start, &present) < 0 ||
        query_date(req, q, "end_date", true, &end, &present) < 0)
        return -1;
    if (r->start > end) {
        httpjson_error(req, 400, "invalid_request_error", "start_date",
                       "start_date must not be after end_date");
        return -1;
    }
    long days = (long)((end - r->start) / DAY_S) + 1;
    if (days > UI_DAYS_MAX) {
        httpjson_error(req, 400, "invalid_request_error", "end_date",
                       "Invalid end_date: the range is at most %d days", UI_DAYS_MAX);
        return -1;
    }
    r->ndays = (int)days;
    gmtime_r(&r->start, &tm);
    strftime(r->start_date, sizeof(r->start_date), "%Y-%m-%d", &tm);
    gmtime_r(&end, &tm);
    strftime(r->end_date, sizeof(r->end_date), "%Y-%m-%d", &tm);
    db_datetime((int64_t)r->start * 1000000, r->from);
    db_datetime(((int64_t)end + DAY_S) * 1000000, r->to);
    return 0;
}

void ui_range_day(const struct ui_range *r, int i, char out[16])
{
    time_t t = r->start + (time_t)i * DAY_S;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 16, "%Y-%m-%d", &tm);
}

json_t *ui_money(money_t m)
{
    char text[MONEY_STR_MAX];
    money_format(m, text);
    return json_string(text);
}

money_t ui_money_of(const char *decimal)
{
    money_t m = 0;
    if (decimal == NULL || money_parse(decimal, &m) < 0)
        return 0;
    return m;
}

json_t *ui_money_text(const char *decimal)
{
    return ui_money(ui_money_of(decimal));
}

/* Decimal text of an unsigned 128-bit integer. */
static void u128_text(unsigned __int128 v, char *out, size_t size)
{
    char digits[48];
    int k = 0;
    do {
        digits[k++] = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v > 0 && k < (int)sizeof(digits));
    size_t i = 0;
    while (k > 0 && i + 1 < size)
        out[i++] = digits[--k];
    out[i] = '\0';
}

void ui_ratio(money_t num, money_t den, int places, char out[UI_RATIO_MAX])
{
    /* long division, one decimal at a time: remainder * 10 stays below 2^128
     * while den is below 10^37 (scaled down past that: far beyond any budget) */
    static const unsigned __int128 LIMIT = (unsigned __int128)1000000000000000000ULL *
                                           1000000000000000000ULL * 10;
    unsigned __int128 n = num > 0 ? (unsigned __int128)num : 0;
    unsigned __int128 d = den > 0 ? (unsigned __int128)den : 0;
    char frac[16];
    if (places < 0 || places > 8 || d == 0) {
        snprintf(out, UI_RATIO_MAX, "0");
        return;
    }
    while (d >= LIMIT) {
        n /= 10;
        d /= 10;
    }
    unsigned __int128 whole = n / d, rest = n % d;
    for (int k = 0; k <= places; k++) {
        rest *= 10;
        frac[k] = (char)('0' + (int)(rest / d));
        rest %= d;
    }
    bool up = frac[places] >= '5'; /* half up */
    for (int k = places - 1; up && k >= 0; k--) {
        up = frac[k] == '9';
        frac[k] = up ? '0' : (char)(frac[k] + 1);
    }
    if (up)
        whole++;
    int len = places;
    while (len > 0 && frac[len - 1] == '0')
        len--;
    u128_text(whole, out, UI_RATIO_MAX);
    if (len > 0)
        snprintf(out + strlen(out), UI_RATIO_MAX - strlen(out), ".%.*s", len, frac);
}

int ui_snapshot_begin(struct worker *w, struct evhttp_request *req, MYSQL *db)
{
    char err[512];
    if (db_exec(db, "START TRANSACTION READ ONLY", NULL, 0, NULL, NULL, NULL, err,
                sizeof(err)) < 0) {
        worker_db_failed(w, req, err);
        return -1;
    }
    return 0;
}

void ui_snapshot_end(MYSQL *db)
{
    db_rollback(db); /* it only read */
}

/* threshold: at most 3 integer digits and 4 places, <= 100, as 1/10000ths. */
static int read_threshold(struct evhttp_request *req, struct query *q, int64_t *out)
{
    const char *v;
    if (query_str(req, q, "threshold", 16, &v) < 0)
        return -1;
    *out = 8 * THRESHOLD_SCALE / 10;
    if (v == NULL)
        return 0;
    int64_t whole = 0, frac = 0;
    size_t i = 0, nwhole = 0, nfrac = 0;
    for (; v[i] >= '0' && v[i] <= '9' && nwhole < 3; i++, nwhole++)
        whole = whole * 10 + (v[i] - '0');
    if (v[i] == '.')
        for (i++; v[i] >= '0' && v[i] <= '9' && nfrac < 4; i++, nfrac++)
            frac = frac * 10 + (v[i] - '0');
    for (size_t k = nfrac; k < 4; k++)
        frac *= 10;
    *out = whole * THRESHOLD_SCALE + frac;
    if (nwhole == 0 || v[i] != '\0' || (v[nwhole] == '.' && nfrac == 0) ||
        *out > THRESHOLD_MAX) {
        httpjson_error(req, 400, "invalid_request_error", "threshold",
                       "Invalid threshold: must be a decimal from 0 to 100 with at most 4"
                       " places, e.g. 0.8");
        return -1;
    }
    return 0;
}

/* One kind of budget owner: SELECT head, the tables, the condition (its one
 * parameter: the threshold). Columns: kind, id, name, spend, max_budget,
 * reset time, exact ratio. */
#define RESET_AT(col) "DATE_FORMAT(" col ", '%Y-%m-%dT%H:%i:%s+00:00')"
#define ID(x) "CONVERT(" x " USING utf8mb4) COLLATE utf8mb4_bin"
#define HEAD(kind, id, name, spend, max, reset)                                         \
    "SELECT '" kind "', " ID(id) ", " ID(name) ", " spend ", " max ", " RESET_AT(reset) \
    ", " spend " / " max " FROM "
#define NEAR(spend, max) " WHERE " max " > 0 AND " spend " * 10000 >= " max " * ?"

struct owner_kind {
    const char *head, *from, *near;
    const char *self; /* the condition for an internal user's key (one ?), or NULL: none */
};

static const struct owner_kind KINDS[] = {
    {HEAD("key", "k.token", "COALESCE(k.key_alias, k.key_name)", "k.spend", "k.max_budget",
          "k.budget_reset_at"), "api_keys k", NEAR("k.spend", "k.max_budget"),
     " AND k.user_id = ?"},
    {HEAD("user", "u.user_id", "COALESCE(u.user_alias, u.user_email, u.user_id)", "u.spend",
          "u.max_budget", "u.budget_reset_at"), "internal_users u",
     NEAR("u.spend", "u.max_budget"), " AND u.user_id = ?"},
    {HEAD("team", "t.team_id", "COALESCE(t.team_alias, t.team_id)", "t.spend", "t.max_budget",
          "t.budget_reset_at"), "teams t", NEAR("t.spend", "t.max_budget"), NULL},
    {HEAD("team_member", "CONCAT(m.team_id, '/', m.user_id)",
          "CONCAT(m.user_id, ' in ', COALESCE(t.team_alias, m.team_id))", "m.spend",
          "b.max_budget", "b.budget_reset_at"),
     "team_members m JOIN budgets b ON b.budget_id = m.budget_id"
     " LEFT JOIN teams t ON t.team_id = m.team_id", NEAR("m.spend", "b.max_budget"), NULL},
    {HEAD("customer", "c.user_id", "COALESCE(c.alias, c.user_id)", "c.spend", "b.max_budget",
          "b.budget_reset_at"), "customers c JOIN budgets b ON b.budget_id = c.budget_id",
     NEAR("c.spend", "b.max_budget"), NULL},
    {HEAD("tag", "g.tag", "g.tag", "g.spend", "g.max_budget", "g.budget_reset_at"), "tags g",
     NEAR("g.spend", "g.max_budget"), NULL},
};
#define N_KINDS (sizeof(KINDS) / sizeof(KINDS[0]))
#define BUDGETS_SQL_MAX 8192

static void append(char *sql, size_t *len, const char *s)
{
    int n = snprintf(sql + *len, BUDGETS_SQL_MAX - *len, "%s", s);
    if (n > 0 && (size_t)n < BUDGETS_SQL_MAX - *len)
        *len += (size_t)n;
}

/* The UNION of the kinds the caller may see, with its parameters. */
static void budgets_sql(const struct caller *who, int64_t threshold, char *sql,
                        struct db_param *p, size_t *np)
{
    size_t len = 0;
    char tail[64];
    *np = 0;
    sql[0] = '\0';
    for (size_t i = 0; i < N_KINDS; i++) {
        if (who->self_only && KINDS[i].self == NULL)
            continue;
        append(sql, &len, len ? " UNION ALL " : "");
        append(sql, &len, KINDS[i].head);
        append(sql, &len, KINDS[i].from);
        append(sql, &len, KINDS[i].near);
        p[(*np)++] = DB_I64(threshold);
        if (who->self_only) {
            append(sql, &len, KINDS[i].self);
            p[(*np)++] = DB_STR(who->user_id);
        }
    }
    snprintf(tail, sizeof(tail), " ORDER BY 7 DESC, 1, 2 LIMIT %d", UI_BUDGETS_MAX);
    append(sql, &len, tail);
}

static json_t *budget_entry(const struct db_result *r, size_t i)
{
    char ratio[UI_RATIO_MAX];
    ui_ratio(ui_money_of(db_cell(r, i, 3)), ui_money_of(db_cell(r, i, 4)), 4, ratio);
    return json_pack("{s:s, s:s, s:s?, s:o, s:o, s:s, s:o}", "kind", db_cell(r, i, 0),
                     "id", db_cell(r, i, 1), "name", db_cell(r, i, 2),
                     "spend", ui_money_text(db_cell(r, i, 3)),
                     "max_budget", ui_money_text(db_cell(r, i, 4)), "ratio", ratio,
                     "budget_reset_at", httpjson_str_or_null(db_cell(r, i, 5)));
}

void ui_api_budgets(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    static const char *const PARAMS[] = {"threshold", NULL};
    struct query *q = query_parse(req);
    struct db_result *r = NULL;
    struct db_param p[2 * N_KINDS];
    char sql[BUDGETS_SQL_MAX], err[512];
    int64_t threshold;
    size_t np;
    MYSQL *db;
    if (q == NULL)
        return;
    if (query_only(req, q, PARAMS) < 0 || read_threshold(req, q, &threshold) < 0 ||
        (db = worker_db(w, req)) == NULL)
        goto out;
    budgets_sql(who, threshold, sql, p, &np);
    if (db_exec(db, sql, p, np, &r, NULL, NULL, err, sizeof(err)) < 0) {
        worker_db_failed(w, req, err);
        goto out;
    }
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && i < r->nrows; i++)
        json_array_append_new(list, budget_entry(r, i));
    httpjson_reply(req, 200, json_pack("{s:o?}", "budgets", list));
out:
    db_result_free(r);
    query_free(q);
}
