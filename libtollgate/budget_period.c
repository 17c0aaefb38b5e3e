/* budget_period.c - budget periods on the local calendar (see budget_period.h).
 *
 * Every boundary is built from calendar fields (struct tm) and turned into a
 * time with mktime(tm_isdst = -1), which resolves DST: 00:00 on the day after
 * a spring-forward change is still that day's midnight, and a day with 23 or
 * 25 hours is one day. When a wall-clock time is ambiguous or skipped the C
 * library picks or shifts it; period_next then checks the result is after
 * its argument and walks on if not, so a period is never empty.
 */
#include "budget_period.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SECONDS (10L * 366 * 86400) /* the longest period accepted */

int period_parse(const char *s, struct period *p)
{
    char *end;
    if (s == NULL || !isdigit((unsigned char)s[0]))
        return -1;
    errno = 0;
    long n = strtol(s, &end, 10);
    if (errno != 0 || n < 1)
        return -1;
    static const struct {
        const char *suffix;
        enum period_unit unit;
        long seconds; /* about: for the upper bound only */
    } units[] = {{"s", PERIOD_SECOND, 1},      {"m", PERIOD_MINUTE, 60},
                 {"h", PERIOD_HOUR, 3600},     {"d", PERIOD_DAY, 86400},
                 {"w", PERIOD_WEEK, 7 * 86400}, {"mo", PERIOD_MONTH, 31 * 86400}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].suffix) == 0) {
            if (n > MAX_SECONDS / units[i].seconds)
                return -1;
            *p = (struct period){n, units[i].unit};
            return 0;
        }
    }
    return -1;
}

/* Local midnight of the day `days` after t's day. */
static time_t midnight_plus(time_t t, long days)
{
    struct tm tm;
    localtime_r(&t, &tm);
    tm.tm_mday += (int)days;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    tm.tm_isdst = -1;
    return mktime(&tm);
}

/* The next multiple of `step` seconds of wall-clock time since local
 * midnight after t (the grid starts again at each midnight). */
static time_t next_on_grid(time_t t, long step)
{
    struct tm tm;
    localtime_r(&t, &tm);
    long since = tm.tm_hour * 3600L + tm.tm_min * 60L + tm.tm_sec;
    long next = (since / step + 1) * step;
    if (next >= 86400)
        return midnight_plus(t, 1);
    tm.tm_hour = (int)(next / 3600);
    tm.tm_min = (int)(next / 60 % 60);
    tm.tm_sec = (int)(next % 60);
    tm.tm_isdst = -1;
    return mktime(&tm);
}

/* One candidate for the end after t; may be <= t around a DST change. */
static time_t candidate(const struct period *p, time_t t)
{
    struct tm tm;
    switch (p->unit) {
    case PERIOD_SECOND:
        return next_on_grid(t, p->n);
    case PERIOD_MINUTE:
        return next_on_grid(t, p->n * 60);
    case PERIOD_HOUR:
        return next_on_grid(t, p->n * 3600);
    case PERIOD_WEEK:
    case PERIOD_DAY:
        if (p->unit == PERIOD_WEEK && p->n != 1)
            return midnight_plus(t, 7 * p->n);
        if (p->unit == PERIOD_WEEK || p->n == 7) { /* 1w and 7d: the next Monday */
            localtime_r(&t, &tm);
            int days = (8 - tm.tm_wday) % 7;
            return midnight_plus(t, days == 0 ? 7 : days);
        }
        if (p->n != 30)
            return midnight_plus(t, p->n);
        /* 30d: the 1st of next month, as 1mo */
        localtime_r(&t, &tm);
        tm.tm_mon += 1;
        break;
    case PERIOD_MONTH:
        localtime_r(&t, &tm);
        tm.tm_mon += (int)p->n;
        break;
    }
    tm.tm_mday = 1; /* mktime carries months past December into the next year */
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    tm.tm_isdst = -1;
    return mktime(&tm);
}

time_t period_next(const struct period *p, time_t after)
{
    time_t t = after;
    for (int i = 0; i < 8; i++) {
        time_t c = candidate(p, t);
        if (c > after)
            return c;
        t = (c > t ? c : t) + 1; /* a skipped or repeated wall-clock time: look later */
    }
    return after + 1;
}

time_t period_start_of(const struct period *p, time_t t)
{
    /* Step back further than one period can last, then walk the schedule up to t. */
    static const long longest[] = {[PERIOD_SECOND] = 1, [PERIOD_MINUTE] = 60,
                                   [PERIOD_HOUR] = 3600, [PERIOD_DAY] = 86400,
                                   [PERIOD_WEEK] = 7 * 86400, [PERIOD_MONTH] = 31 * 86400};
    time_t slack = p->unit <= PERIOD_HOUR ? 1 : 2 * 86400; /* grids vs. calendar days */
    time_t b = period_next(p, t - (time_t)(p->n * longest[p->unit]) - slack);
    for (time_t nb; (nb = period_next(p, b)) <= t;)
        b = nb;
    return b;
}

bool period_zone_known(const char *tz)
{
    char path[4096];
    const char *dir = getenv("TZDIR");
    if (tz == NULL || tz[0] == '\0' || tz[0] == '/' || strstr(tz, "..") != NULL)
        return false;
    if (strcmp(tz, "UTC") == 0)
        return true;
    snprintf(path, sizeof(path), "%s/%s", dir != NULL ? dir : "/usr/share/zoneinfo", tz);
    return access(path, R_OK) == 0;
}

int period_set_timezone(const char *tz)
{
    if (!period_zone_known(tz))
        return -1;
    if (setenv("TZ", tz, 1) != 0)
        return -1;
    tzset();
    return 0;
}
