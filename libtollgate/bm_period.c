/* bm_period.c - the BudgetManager's calendar: which day, ISO week, month or
 * year an instant falls in, in UTC or an IANA time zone.
 *
 * A library must not change its host's TZ (budget_period.c does, for the
 * daemons), so the zone's TZif file (RFC 8536) is read directly: its 64-bit
 * transitions, and after the last one the POSIX TZ rule of its footer
 * ("CET-1CEST,M3.5.0,M10.5.0/3"). Only the UTC offset at an instant is
 * needed: the local civil date follows from it by arithmetic.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bm_internal.h"
#include "civil.h"

#define ZONE_FILE_MAX (1 << 20)

struct tz_rule {
    char kind; /* 'J' (1..365, no Feb 29), 'N' (0..365), 'M' (month.week.day) */
    int n, month, week, wday;
    int32_t time; /* local seconds after midnight */
};

struct bm_zone {
    size_t n;          /* transitions */
    int64_t *at;       /* transition times */
    int32_t *off;      /* offset from each transition on */
    int32_t first_off; /* before the first transition */
    bool has_rule;     /* after the last transition: the footer */
    int32_t std_off, dst_off;
    bool has_dst;
    struct tz_rule start, end;
};

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* Monday = 0 .. Sunday = 6 (1970-01-01 was a Thursday). */
static int weekday_mon0(int64_t days)
{
    return (int)(((days + 3) % 7 + 7) % 7);
}

static bool leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int64_t y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : days[m - 1];
}

/* ---- the POSIX TZ rule of a TZif footer ---- */

static const char *parse_name(const char *s)
{
    if (*s == '<') {
        const char *e = strchr(s, '>');
        return e != NULL && e - s >= 4 ? e + 1 : NULL;
    }
    const char *b = s;
    while ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z'))
        s++;
    return s - b >= 3 ? s : NULL;
}

static long parse_num(const char **s, long max)
{
    if (**s < '0' || **s > '9')
        return -1;
    long v = 0;
    while (**s >= '0' && **s <= '9' && v <= max)
        v = v * 10 + (*(*s)++ - '0');
    return v <= max ? v : -1;
}

/* [+-]hh[:mm[:ss]] in seconds (hours up to 167, TZif version 3). */
static const char *parse_hms(const char *s, int32_t *out)
{
    int sign = 1;
    if (*s == '+' || *s == '-')
        sign = *s++ == '-' ? -1 : 1;
    long h = parse_num(&s, 167), mi = 0, se = 0;
    if (h < 0)
        return NULL;
    if (*s == ':' && (s++, (mi = parse_num(&s, 59)) < 0))
        return NULL;
    if (*s == ':' && (s++, (se = parse_num(&s, 59)) < 0))
        return NULL;
    *out = (int32_t)(sign * (h * 3600 + mi * 60 + se));
    return s;
}

static const char *parse_rule(const char *s, struct tz_rule *r)
{
    *r = (struct tz_rule){.time = 7200};
    if (*s == 'M') {
        s++;
        r->kind = 'M';
        if ((r->month = (int)parse_num(&s, 12)) < 1 || *s++ != '.' ||
            (r->week = (int)parse_num(&s, 5)) < 1 || *s++ != '.' ||
            (r->wday = (int)parse_num(&s, 6)) < 0)
            return NULL;
    } else {
        r->kind = *s == 'J' ? 'J' : 'N';
        if (*s == 'J')
            s++;
        if ((r->n = (int)parse_num(&s, 365)) < (r->kind == 'J' ? 1 : 0))
            return NULL;
    }
    if (*s == '/')
        s = parse_hms(s + 1, &r->time);
    return s;
}

/* "STD offset [DST [offset] [,start[/time],end[/time]]]"; 0 or -1. */
static int parse_footer(const char *s, struct bm_zone *z)
{
    int32_t posix;
    if ((s = parse_name(s)) == NULL || (s = parse_hms(s, &posix)) == NULL)
        return -1;
    z->std_off = -posix; /* POSIX offsets count west of Greenwich */
    z->dst_off = z->std_off + 3600;
    if (*s == '\0')
        return 0;
    if ((s = parse_name(s)) == NULL)
        return -1;
    z->has_dst = true;
    if (*s != ',' && *s != '\0') {
        if ((s = parse_hms(s, &posix)) == NULL)
            return -1;
        z->dst_off = -posix;
    }
    if (*s != ',') /* no rule: POSIX's default is implementation-defined; refuse */
        return -1;
    if ((s = parse_rule(s + 1, &z->start)) == NULL || *s++ != ',' ||
        (s = parse_rule(s, &z->end)) == NULL)
        return -1;
    return *s == '\0' ? 0 : -1;
}

/* The day (since the epoch) a rule names in year y. */
static int64_t rule_day(const struct tz_rule *r, int64_t y)
{
    int64_t jan1 = days_from_civil(y, 1, 1);
    if (r->kind == 'N')
        return jan1 + r->n;
    if (r->kind == 'J')
        return jan1 + r->n - 1 + (leap(y) && r->n >= 60);
    int64_t first = days_from_civil(y, r->month, 1);
    int wday_first = (weekday_mon0(first) + 1) % 7; /* Sunday = 0, as POSIX */
    int day = 1 + (r->wday - wday_first + 7) % 7 + (r->week - 1) * 7;
    while (day > month_days(y, r->month))
        day -= 7;
    return first + day - 1;
}

static int32_t rule_offset(const struct bm_zone *z, int64_t t)
{
    if (!z->has_dst)
        return z->std_off;
    int64_t y;
    int mo, d;
    civil_from_days(floor_div(t + z->std_off, 86400), &y, &mo, &d);
    int64_t start = rule_day(&z->start, y) * 86400 + z->start.time - z->std_off;
    int64_t end = rule_day(&z->end, y) * 86400 + z->end.time - z->dst_off;
    bool dst = start < end ? t >= start && t < end : !(t >= end && t < start);
    return dst ? z->dst_off : z->std_off;
}

/* ---- TZif ---- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

struct tzif_counts {
    uint32_t isut, isstd, leap, time, type, chars;
};

static int read_counts(const unsigned char *p, size_t len, struct tzif_counts *c)
{
    if (len < 44 || memcmp(p, "TZif", 4) != 0)
        return -1;
    *c = (struct tzif_counts){be32(p + 20), be32(p + 24), be32(p + 28), be32(p + 32),
                              be32(p + 36), be32(p + 40)};
    return c->type == 0 || c->type > 256 || c->time > 1000000 ? -1 : 0;
}

static size_t block_size(const struct tzif_counts *c, size_t tsize)
{
    return c->time * tsize + c->time + c->type * 6 + c->chars + c->leap * (tsize + 4) +
           c->isstd + c->isut;
}

/* Parses the version 2+ block (or the version 1 one) and the footer. */
static int parse_tzif(const unsigned char *p, size_t len, struct bm_zone *z)
{
    struct tzif_counts c;
    size_t tsize = 4;
    if (read_counts(p, len, &c) < 0)
        return -1;
    if (p[4] >= '2') {
        size_t skip = 44 + block_size(&c, 4);
        if (skip > len || read_counts(p + skip, len - skip, &c) < 0)
            return -1;
        p += skip;
        len -= skip;
        tsize = 8;
    }
    size_t need = 44 + block_size(&c, tsize);
    if (need > len)
        return -1;
    const unsigned char *times = p + 44, *idx = times + c.time * tsize,
                        *types = idx + c.time;
    z->n = c.time;
    z->at = calloc(c.time + 1, sizeof(*z->at));
    z->off = calloc(c.time + 1, sizeof(*z->off));
    if (z->at == NULL || z->off == NULL)
        return -1;
    for (size_t i = 0; i < c.time; i++) {
        if (idx[i] >= c.type)
            return -1;
        z->at[i] = tsize == 8 ? be64(times + 8 * i) : (int32_t)be32(times + 4 * i);
        z->off[i] = (int32_t)be32(types + 6 * idx[i]);
    }
    z->first_off = (int32_t)be32(types);
    if (tsize == 8 && need < len && p[need] == '\n') {
        const char *f = (const char *)p + need + 1;
        const char *e = memchr(f, '\n', len - need - 1);
        char rule[128];
        if (e != NULL && e > f && (size_t)(e - f) < sizeof(rule)) {
            memcpy(rule, f, (size_t)(e - f));
            rule[e - f] = '\0';
            if (parse_footer(rule, z) < 0)
                return -1;
            z->has_rule = true;
        }
    }
    return 0;
}

static bool zone_name_ok(const char *name)
{
    if (name[0] == '\0' || name[0] == '/' || strstr(name, "..") != NULL || strlen(name) > 200)
        return false;
    for (const char *s = name; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
              (*s >= '0' && *s <= '9') || strchr("/_+-", *s) != NULL))
            return false;
    return true;
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rbe");
    if (f == NULL)
        return NULL;
    unsigned char *buf = malloc(ZONE_FILE_MAX);
    size_t n = buf != NULL ? fread(buf, 1, ZONE_FILE_MAX, f) : 0;
    bool bad = ferror(f) || n == ZONE_FILE_MAX;
    fclose(f);
    if (buf == NULL || bad) {
        free(buf);
        errno = EIO;
        return NULL;
    }
    *len = n;
    return buf;
}

int bm_zone_load(const char *name, struct bm_zone **out, char *err, size_t errlen)
{
    *out = NULL;
    if (name == NULL || strcmp(name, "UTC") == 0)
        return 0;
    if (!zone_name_ok(name)) {
        snprintf(err, errlen, "timezone '%s' is not an IANA zone name", name);
        return TG_BM_EINVAL;
    }
    const char *dir = getenv("TZDIR");
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir != NULL && dir[0] ? dir : "/usr/share/zoneinfo",
             name);
    size_t len = 0;
    unsigned char *data = read_all(path, &len);
    if (data == NULL) {
        snprintf(err, errlen, "timezone '%s': %s: %s", name, path, strerror(errno));
        return TG_BM_EINVAL;
    }
    struct bm_zone *z = calloc(1, sizeof(*z));
    int rc = z != NULL ? parse_tzif(data, len, z) : -1;
    free(data);
    if (rc < 0) {
        bm_zone_free(z);
        snprintf(err, errlen, "timezone '%s': %s is not a usable TZif file", name, path);
        return TG_BM_EINVAL;
    }
    *out = z;
    return 0;
}

void bm_zone_free(struct bm_zone *z)
{
    if (z == NULL)
        return;
    free(z->at);
    free(z->off);
    free(z);
}

int32_t bm_zone_offset(const struct bm_zone *z, int64_t t)
{
    if (z == NULL)
        return 0;
    if (z->n == 0 || t < z->at[0])
        return z->n == 0 && z->has_rule ? rule_offset(z, t) : z->first_off;
    if (t >= z->at[z->n - 1] && z->has_rule)
        return rule_offset(z, t);
    size_t lo = 0, hi = z->n; /* the last transition <= t */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->at[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return z->off[lo];
}

int64_t bm_period_key(const struct bm_zone *z, enum tg_bm_duration d, double t)
{
    double ft = floor(t);
    int64_t secs = ft > 9e15 ? (int64_t)9e15 : ft < -9e15 ? (int64_t)-9e15 : (int64_t)ft;
    int64_t days = floor_div(secs + bm_zone_offset(z, secs), 86400);
    int64_t y;
    int m, dd;
    switch (d) {
    case TG_BM_DAILY:
        return days;
    case TG_BM_WEEKLY:
        return days - weekday_mon0(days);
    case TG_BM_MONTHLY:
        civil_from_days(days, &y, &m, &dd);
        return y * 12 + (m - 1);
    case TG_BM_YEARLY:
        civil_from_days(days, &y, &m, &dd);
        return y;
    case TG_BM_NONE:
        break;
    }
    return 0;
}
