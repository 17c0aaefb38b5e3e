/* report_csv.c - the spend report as CSV for the chargeback portal (see
 * report_csv.h): one row per day, group and model, money as exact decimals
 * (rounded to 10 places, as the JSON), names quoted as RFC 4180 wants and
 * kept from being read as spreadsheet formulas.
 */
#include "report_csv.h"

#include <event2/buffer.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "money.h"

/* A text cell: quoted when it holds a comma, quote or line break; a leading
 * = + - @ gets a ' so that a spreadsheet shows it instead of running it. */
static int add_text(struct evbuffer *b, const char *s)
{
    bool quote = strpbrk(s, ",\"\r\n") != NULL;
    int rc = quote ? evbuffer_add(b, "\"", 1) : 0;
    if (rc == 0 && strchr("=+-@", s[0]) != NULL && s[0] != '\0')
        rc = evbuffer_add(b, "'", 1);
    for (; rc == 0 && *s != '\0'; s++)
        rc = *s == '"' ? evbuffer_add(b, "\"\"", 2) : evbuffer_add(b, s, 1);
    return rc == 0 && quote ? evbuffer_add(b, "\"", 1) : rc;
}

/* The row for (day, group, model) with its spend and tokens. */
static int add_row(struct evbuffer *b, const char *day, const char *group, const char *model,
                   money_t spend, long long tokens)
{
    char money[MONEY_STR_MAX];
    money_format(money_round(spend, 10), money);
    return evbuffer_add(b, day, 10) != 0 || evbuffer_add(b, ",", 1) != 0 ||
           add_text(b, group != NULL ? group : "") != 0 || evbuffer_add(b, ",", 1) != 0 ||
           add_text(b, model) != 0 ||
           evbuffer_add_printf(b, ",%s,%lld\r\n", money, tokens) < 0 ? -1 : 0;
}

static bool same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

char *report_csv_days(const char *group_name, const struct db_result *r, size_t *len)
{
    struct evbuffer *b = evbuffer_new();
    money_t spend = 0;
    long long tokens = 0;
    char *out = NULL;
    int rc = b != NULL ? evbuffer_add_printf(b, "date,%s,model,spend,total_tokens\r\n",
                                             group_name) < 0 : -1;
    for (size_t i = 0; rc == 0 && i < r->nrows; i++) { /* rows: day, group, model, key */
        money_t m = 0;
        money_parse(db_cell(r, i, 3), &m);
        money_add(spend, m, &spend);
        tokens += strtoll(db_cell(r, i, 4), NULL, 10);
        bool last = i + 1 == r->nrows || !same(db_cell(r, i, 0), db_cell(r, i + 1, 0)) ||
                    !same(db_cell(r, i, 1), db_cell(r, i + 1, 1)) ||
                    !same(db_cell(r, i, 2), db_cell(r, i + 1, 2));
        if (!last)
            continue;
        rc = add_row(b, db_cell(r, i, 0), db_cell(r, i, 1), db_cell(r, i, 2), spend, tokens);
        spend = 0;
        tokens = 0;
    }
    if (rc == 0 && (out = malloc(evbuffer_get_length(b) + 1)) != NULL) {
        *len = evbuffer_get_length(b);
        evbuffer_remove(b, out, *len);
        out[*len] = '\0';
    }
    if (b != NULL)
        evbuffer_free(b);
    return out;
}
