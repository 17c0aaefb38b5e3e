/* log.c - structured log lines on stderr (see log.h).
 *
 * Each line is built whole in a buffer and written with one fputs on an
 * unbuffered-by-line stderr, so lines from several threads never mix.
 * Values are escaped for their format: logfmt quotes a value with spaces,
 * '=' or quotes in it; JSON goes through jansson. Control characters
 * (a newline from an upstream's error text) never split a line.
 */
#include "log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#define LINE_MAX_BYTES 4096

static const char *log_daemon = "tollgate"; /* set once at start-up */
/* atomic: a daemon may apply a reloaded config (SIGHUP) while other threads log */
static _Atomic int log_fmt = LOG_LOGFMT;
static _Atomic int log_min = LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *daemon)
{
    log_daemon = daemon;
}

int log_format_parse(const char *s)
{
    return s == NULL ? -1 : strcmp(s, "logfmt") == 0 ? LOG_LOGFMT : strcmp(s, "json") == 0 ? LOG_JSON : -1;
}

int log_level_parse(const char *s)
{
    for (int i = 0; s != NULL && i <= LOG_ERROR; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

void log_configure(const char *format, const char *level)
{
    int f = log_format_parse(format), l = log_level_parse(level);
    if (f >= 0)
        log_fmt = f;
    if (l >= 0)
        log_min = l;
}

struct line {
    char buf[LINE_MAX_BYTES];
    size_t len;
};

static void put(struct line *ln, const char *s, size_t n)
{
    if (n > sizeof(ln->buf) - 2 - ln->len) /* room for "\n\0" */
        n = sizeof(ln->buf) - 2 - ln->len;
    memcpy(ln->buf + ln->len, s, n);
    ln->len += n;
}

static void put_str(struct line *ln, const char *s)
{
    put(ln, s, strlen(s));
}

/* A logfmt value: bare when it has no space, '=', quote or control byte,
 * else quoted with those escaped (always quoted when quote). */
static void put_logfmt_value(struct line *ln, const char *v, bool quote)
{
    bool bare = !quote && *v != '\0';
    for (const char *p = v; *p && bare; p++)
        bare = (unsigned char)*p > ' ' && *p != '=' && *p != '"' && *p != 0x7f;
    if (bare) {
        put_str(ln, v);
        return;
    }
    put(ln, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            put(ln, esc, 2);
        } else if (*p < ' ' || *p == 0x7f) {
            put(ln, esc, (size_t)snprintf(esc, sizeof(esc), "\\x%02x", *p));
        } else {
            put(ln, (const char *)p, 1);
        }
    }
    put(ln, "\"", 1);
}

/* name=value for each pair of fields whose value is not NULL. */
static void put_logfmt_fields(struct line *ln, const char *const *fields)
{
    for (size_t i = 0; fields != NULL && fields[i] != NULL; i += 2) {
        if (fields[i + 1] == NULL)
            continue;
        put_str(ln, fields[i]);
        put(ln, "=", 1);
        put_logfmt_value(ln, fields[i + 1], false);
        put(ln, " ", 1);
    }
}

/* A JSON string of s; bytes that are not valid UTF-8 become '?'. */
static json_t *jstr(const char *s)
{
    json_t *j = json_string(s);
    if (j != NULL)
        return j;
    char clean[2048];
    size_t i = 0;
    for (; s[i] != '\0' && i + 1 < sizeof(clean); i++)
        clean[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
    clean[i] = '\0';
    return json_string(clean);
}

/* The line's fields: ts, daemon, level, then fields, then msg. */
static void emit(enum log_level level, const char *const *fields, const char *fmt, va_list ap)
{
    if ((int)level < log_min)
        return;
    char msg[2048], ts[40];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t tl = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + tl, sizeof(ts) - tl, ".%03dZ", (int)(tv.tv_usec / 1000));
    vsnprintf(msg, sizeof(msg), fmt, ap);
    struct line ln = {.len = 0};
    if (log_fmt == LOG_JSON) {
        json_t *o = json_object();
        if (o == NULL)
            return;
        json_object_set_new(o, "ts", json_string(ts));
        json_object_set_new(o, "daemon", json_string(log_daemon));
        json_object_set_new(o, "level", json_string(level_names[level]));
        for (size_t i = 0; fields != NULL && fields[i] != NULL; i += 2)
            if (fields[i + 1] != NULL)
                json_object_set_new(o, fields[i], jstr(fields[i + 1]));
        json_object_set_new(o, "msg", jstr(msg));
        char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        put_str(&ln, text != NULL ? text : "{\"msg\":\"(unprintable log line)\"}");
        free(text);
    } else {
        const char *head[] = {"ts", ts, "daemon", log_daemon, "level", level_names[level], NULL};
        put_logfmt_fields(&ln, head);
        put_logfmt_fields(&ln, fields);
        put(&ln, "msg=", 4);
        put_logfmt_value(&ln, msg, true);
    }
    ln.buf[ln.len++] = '\n';
    ln.buf[ln.len] = '\0';
    fputs(ln.buf, stderr);
}

#define LOG_FN(name, level)            \
    void name(const char *fmt, ...)    \
    {                                  \
        va_list ap;                    \
        va_start(ap, fmt);             \
        emit(level, NULL, fmt, ap);    \
        va_end(ap);                    \
    }

LOG_FN(log_debug, LOG_DEBUG)
LOG_FN(log_info, LOG_INFO)
LOG_FN(log_warn, LOG_WARN)
LOG_FN(log_error, LOG_ERROR)

void log_request(enum log_level level, const char *request_id, const char *fmt, ...)
{
    const char *fields[] = {"request_id", request_id, NULL};
    va_list ap;
    va_start(ap, fmt);
    emit(level, fields, fmt, ap);
    va_end(ap);
}

void log_fields(enum log_level level, const char *const *fields, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(level, fields, fmt, ap);
    va_end(ap);
}
