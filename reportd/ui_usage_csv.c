/* ui_usage_csv.c - GET /ui/api/usage?...&format=csv: the report the Usage
 * view shows, as the page's "Download CSV" saves it. One line per day and
 * group of the view's grouping that spent or was called that day (every
 * group, not only the chart's top ten), from the rollups the JSON reads:
 * usage_rollup's day rows for the whole ledger, daily_spend (daily_tag_spend
 * for tags) for an internal user's own rows. Lines are in day order, then by
 * group id (none first); money is the exact decimal, as in the JSON.
 *
 * Columns: date, the group's id (empty for no team / no customer / no key),
 * its name where it has one (a team's or customer's alias, else its id;
 * "Unassigned" / "No customer"; a key's alias and its "sk-...abcd" name),
 * spend, requests, prompt_tokens, completion_tokens, total_tokens. Never a
 * raw key: keys are their hashes.
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <string.h>

#include "httpjson.h"
#include "report_csv.h"
#include "ui_usage.h"

#define SUMS " d.spend, d.api_requests, d.prompt_tokens, d.completion_tokens, d.total_tokens"
#define SELF_SUMS                                                                             \
    " SUM(d.spend), SUM(d.api_requests), SUM(d.prompt_tokens), SUM(d.completion_tokens),"     \
    " SUM(d.total_tokens)"
/* usage_rollup's day rows of one dimension: day, id, name, key name, sums. */
#define LEDGER(dim, names, join)                                                              \
    "SELECT d.period, d.group_id, " names "," SUMS " FROM usage_rollup d " join               \
    " WHERE d.grain = 'd' AND d.dim = '" dim "' AND d.period >= DATE(?)"                      \
    " AND d.period < DATE(?) ORDER BY d.period, d.group_id"
/* An internal user's rows of a rollup, summed per day and group. */
#define SELF(table, col, names, join, self)                                                   \
    "SELECT d.day, COALESCE(d." col ", ''), " names "," SELF_SUMS " FROM " table " d " join   \
    " WHERE d.day >= DATE(?) AND d.day < DATE(?)" self " GROUP BY d.day, d." col              \
    " ORDER BY d.day, d." col

struct csv_form {
    const char *header;    /* after "date," */
    const char *ledger, *self;
    const char *null_name; /* the name of the group without an id */
    int names;             /* name columns: 0, 1 (name) or 2 (alias, key name) */
};

static const struct csv_form FORMS[N_DIMS] = {
    [DIM_TEAM] = {"team_id,team_name",
                  LEDGER("t", "x.team_alias, NULL", "LEFT JOIN teams x ON x.team_id = d.group_id"),
                  SELF("daily_spend", "team_id", "MAX(x.team_alias), NULL",
                       "LEFT JOIN teams x ON x.team_id = d.team_id", USAGE_SELF),
                  "Unassigned", 1},
    [DIM_KEY] = {"api_key,key_alias,key_name",
                 LEDGER("k", "x.key_alias, x.key_name", "LEFT JOIN api_keys x ON x.token = d.group_id"),
                 SELF("daily_spend", "api_key", "MAX(x.key_alias), MAX(x.key_name)",
                      "LEFT JOIN api_keys x ON x.token = d.api_key", USAGE_SELF),
                 NULL, 2},
    [DIM_CUSTOMER] = {"customer_id,customer_name",
                      LEDGER("c", "x.alias, NULL", "LEFT JOIN customers x ON x.user_id = d.group_id"),
                      SELF("daily_spend", "end_user", "MAX(x.alias), NULL",
                           "LEFT JOIN customers x ON x.user_id = d.end_user", USAGE_SELF),
                      "No customer", 1},
    [DIM_MODEL] = {"model", LEDGER("m", "NULL, NULL", ""),
                   SELF("daily_spend", "model", "NULL, NULL", "", USAGE_SELF), NULL, 0},
    [DIM_TAG] = {"tag", LEDGER("g", "NULL, NULL", ""),
                 SELF("daily_tag_spend", "tag", "NULL, NULL", "", USAGE_TAG_SELF), NULL, 0},
};

struct csv_answer {
    struct evbuffer *b;
    const struct csv_form *f;
};

static int add_cell(struct evbuffer *b, const char *text)
{
    return evbuffer_add(b, ",", 1) == 0 && report_csv_text(b, text) == 0 ? 0 : -1;
}

/* One line: day, id, name, key name, spend, requests, prompt, completion, total. */
static int csv_row(void *ctx, const struct report_row *r)
{
    struct csv_answer *a = ctx;
    const char *id = r->cell[1], *name = r->cell[2];
    char money[MONEY_STR_MAX];
    money_t spend = 0;
    if (r->cell[0] == NULL || r->len[0] != 10 || id == NULL || r->cell[4] == NULL ||
        money_parse(r->cell[4], &spend) < 0)
        return -1;
    money_format(spend, money);
    if (id[0] == '\0' && a->f->null_name != NULL)
        name = a->f->null_name;
    else if (name == NULL && a->f->names == 1)
        name = id; /* a team or customer without an alias: its id, as the page shows */
    if (evbuffer_add(a->b, r->cell[0], 10) != 0 || add_cell(a->b, id) < 0 ||
        (a->f->names >= 1 && add_cell(a->b, name != NULL ? name : "") < 0) ||
        (a->f->names == 2 && add_cell(a->b, r->cell[3] != NULL ? r->cell[3] : "") < 0))
        return -1;
    const char *n[4];
    for (int i = 0; i < 4; i++)
        n[i] = r->cell[5 + i] != NULL ? r->cell[5 + i] : "0";
    return evbuffer_add_printf(a->b, ",%s,%s,%s,%s,%s\r\n", money, n[0], n[1], n[2], n[3]) < 0
        ? -1 : 0;
}

/* Content-Type and the file name the page also gives it. */
static int csv_headers(struct evhttp_request *req, const struct ui_usage *u, const char *group)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char disposition[160];
    snprintf(disposition, sizeof(disposition),
             "attachment; filename=\"tollgate-spend-by-%s-%s-to-%s.csv\"", group,
             u->range.start_date, u->range.end_date);
    return evhttp_add_header(h, "Content-Type", "text/csv; charset=utf-8") == 0 &&
           evhttp_add_header(h, "Content-Disposition", disposition) == 0 ? 0 : -1;
}

int usage_csv(struct evhttp_request *req, MYSQL *db, const struct ui_usage *u, int dim,
              char *err, size_t errlen)
{
    struct csv_answer a = {.b = evbuffer_new(), .f = &FORMS[dim]};
    struct db_param p[] = {DB_STR(u->range.from), DB_STR(u->range.to), DB_STR(u->user)};
    int rc = -1;
    if (a.b == NULL || evbuffer_add_printf(a.b, "date,%s,spend,requests,prompt_tokens,"
                                           "completion_tokens,total_tokens\r\n", a.f->header) < 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (report_stream(db, u->user != NULL ? a.f->self : a.f->ledger, p, u->user != NULL ? 3 : 2,
                      csv_row, &a, err, errlen) < 0)
        goto out;
    if (csv_headers(req, u, u->dims[dim].name) < 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    evhttp_send_reply(req, 200, NULL, a.b);
    rc = 0;
out:
    if (a.b != NULL)
        evbuffer_free(a.b);
    return rc;
}
