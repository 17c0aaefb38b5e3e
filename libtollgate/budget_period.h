/* budget_period.h - budget_duration strings and when their periods end.
 *
 * `Ns`, `Nm`, `Nh`, `Nd`, `Nw`, `Nmo` (N >= 1). Periods follow LiteLLM's
 * calendar alignment in the process's time zone (period_set_timezone):
 * seconds, minutes and hours on multiples of N since local midnight; `1d` at
 * the next midnight, `7d` and `1w` on the next Monday 00:00, `30d` on the
 * 1st of the next month, other `Nd`/`Nw` N days (7N) after today's
 * midnight, `Nmo` on the 1st of the month N months on. Calendar arithmetic
 * goes through the C library's local time (mktime), so DST changes are
 * handled: a day is a calendar day, not 86,400 seconds.
 */
#ifndef TG_BUDGET_PERIOD_H
#define TG_BUDGET_PERIOD_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

enum period_unit { PERIOD_SECOND, PERIOD_MINUTE, PERIOD_HOUR, PERIOD_DAY, PERIOD_WEEK,
                   PERIOD_MONTH };

struct period {
    long n;
    enum period_unit unit;
};

/* Parses a budget_duration. 0, or -1 when it is not one of the forms above
 * (or N is 0 or too large: at most 10 years' worth). */
int period_parse(const char *s, struct period *p);

/* The first period end strictly after `after` (Unix seconds). */
time_t period_next(const struct period *p, time_t after);

/* The period end at or before `t` that the period containing t started on:
 * the latest end <= t of the schedule that ends at period_next. Used when
 * resets were missed (accountd down): the current period begins there. */
time_t period_start_of(const struct period *p, time_t t);

/* Is tz an installed IANA zone name ("UTC" always is)? */
bool period_zone_known(const char *tz);

/* Makes tz (an IANA name such as "Europe/Berlin", or "UTC") the zone the
 * calendar is read in. -1 when no such zone is installed. Call once at
 * start, before any thread: it sets TZ for the whole process. */
int period_set_timezone(const char *tz);

#endif
