/* log.c - logfmt lines on stderr: ts=... daemon=... level=... msg="...". */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

static const char *log_daemon = "tollgate"; /* set once at start-up */

void log_init(const char *daemon)
{
    log_daemon = daemon;
}

static void emit(const char *level, const char *fmt, va_list ap)
{
    char msg[2048], ts[32];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    for (char *p = msg; *p; p++) { /* keep one event on one line, quotes balanced */
        if (*p == '\n' || *p == '"')
            *p = *p == '\n' ? ' ' : '\'';
    }
    fprintf(stderr, "ts=%s.%03dZ daemon=%s level=%s msg=\"%s\"\n", ts, (int)(tv.tv_usec / 1000),
            log_daemon, level, msg);
}

#define LOG_FN(name, level)            \
    void name(const char *fmt, ...)    \
    {                                  \
        va_list ap;                    \
        va_start(ap, fmt);             \
        emit(level, fmt, ap);          \
        va_end(ap);                    \
    }

LOG_FN(log_info, "info")
LOG_FN(log_warn, "warn")
LOG_FN(log_error, "error")
