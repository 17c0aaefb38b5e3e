/* report_csv.c - the spend report as CSV for the chargeback portal (see
 * report_csv.h): one row per day, group and model, money as exact decimals
 * (rounded to 10 places, as the JSON), names quoted as RFC 4180 wants and
 * kept from being read as spreadsheet formulas.
 */
#include "report_csv.h"

#include <event2/buffer.h>
#include <stdbool.h>
#include <string.h>

#include "money.h"

int report_csv_text(struct evbuffer *b, const char *s)
{
    bool quote = strpbrk(s, ",\"\r\n") != NULL;
    int rc = quote ? evbuffer_add(b, "\"", 1) : 0;
    /* OWASP's CSV injection list: a spreadsheet runs a cell starting so */
    if (rc == 0 && s[0] != '\0' && strchr("=+-@\t\r", s[0]) != NULL)
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
           report_csv_text(b, group != NULL ? group : "") != 0 || evbuffer_add(b, ",", 1) != 0 ||
           report_csv_text(b, model) != 0 ||
           evbuffer_add_printf(b, ",%s,%lld\r\n", money, tokens) < 0 ? -1 : 0;
}

static bool same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

int report_csv_header(struct evbuffer *b, const char *group_name)
{
    return evbuffer_add_printf(b, "date,%s,model,spend,total_tokens\r\n", group_name) < 0 ? -1 : 0;
}

int report_csv_day(struct evbuffer *b, const char *day, struct day_line *const *l, size_t n)
{
    money_t spend = 0;
    long long tokens = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        money_add(spend, l[i]->spend, &spend);
        tokens += l[i]->tokens;
        if (i + 1 < n && same(l[i]->group, l[i + 1]->group) &&
            strcmp(l[i]->model, l[i + 1]->model) == 0)
            continue; /* the next key's line of the same group and model */
        rc = add_row(b, day, l[i]->group, l[i]->model, spend, tokens);
        spend = 0;
        tokens = 0;
    }
    return rc;
}
