/* test_period.c - budget_duration parsing and period ends, driven by the
 * cases of tests/data/budget_periods.tsv (time zones, DST days, month and
 * year wraps).
 *
 * Usage: test_period FILE
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "budget_period.h"
#include "check.h"

static int parse_utc(const char *s, time_t *out)
{
    struct tm tm = {0};
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (end == NULL || *end != '\0')
        return -1;
    *out = timegm(&tm);
    return 0;
}

static void fmt_utc(time_t t, char out[32])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* One "next" or "start" line: kind, tz, duration, time, expected. */
static void run_case(int line, char **f)
{
    struct period p = {1, PERIOD_DAY};
    time_t t = 0, want = 0;
    char got[32];
    CHECK(period_set_timezone(f[1]) == 0, "line %d: time zone %s not installed", line, f[1]);
    CHECK(period_parse(f[2], &p) == 0, "line %d: %s should parse", line, f[2]);
    CHECK(parse_utc(f[3], &t) == 0 && parse_utc(f[4], &want) == 0, "line %d: bad times", line);
    time_t r = strcmp(f[0], "next") == 0 ? period_next(&p, t) : period_start_of(&p, t);
    fmt_utc(r, got);
    CHECK(r == want, "line %d: %s %s %s %s: got %s, want %s", line, f[0], f[1], f[2], f[3], got,
          f[4]);
}

int main(int argc, char **argv)
{
    char buf[512];
    int line = 0, cases = 0;
    FILE *in = argc == 2 ? fopen(argv[1], "r") : NULL;
    if (in == NULL) {
        fprintf(stderr, "usage: test_period FILE\n");
        return 2;
    }
    while (fgets(buf, sizeof(buf), in) != NULL) {
        char *f[5] = {0}, *save = NULL;
        int n = 0;
        line++;
        buf[strcspn(buf, "\n")] = '\0';
        if (buf[0] == '#' || buf[0] == '\0')
            continue;
        for (char *tok = strtok_r(buf, "\t", &save); tok != NULL && n < 5;
             tok = strtok_r(NULL, "\t", &save))
            f[n++] = tok;
        cases++;
        if (strcmp(f[0], "bad") == 0) {
            struct period p;
            CHECK(n == 2 && period_parse(f[1], &p) < 0, "line %d: %s should not parse", line,
                  f[1] ? f[1] : "");
        } else {
            CHECK(n == 5 && (strcmp(f[0], "next") == 0 || strcmp(f[0], "start") == 0),
                  "line %d: malformed", line);
            if (n == 5)
                run_case(line, f);
        }
    }
    fclose(in);
    CHECK(cases >= 40, "only %d cases", cases);
    CHECK(period_set_timezone("Nowhere/Atlantis") < 0, "unknown zone refused");
    CHECK(period_set_timezone("../etc/passwd") < 0, "path refused");
    return check_summary("test_period");
}
