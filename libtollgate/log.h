/* log.h - one line per event on stderr (journald collects it), as logfmt
 * (ts=... daemon=... level=... msg="...") or JSON, with the request id on
 * every line about a request. Never pass a raw key or message content to
 * these. */
#ifndef TG_LOG_H
#define TG_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_LOGFMT, LOG_JSON };

void log_init(const char *daemon);
/* "logfmt"/"json" and "debug"/"info"/"warn"/"error"; -1 for anything else. */
int log_format_parse(const char *s);
int log_level_parse(const char *s);
/* Applies tollgate.log_format and tollgate.log_level (validated by the config). */
void log_configure(const char *format, const char *level);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A line about one request: request_id=... joins the line's fields. */
void log_request(enum log_level level, const char *request_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A line of named fields (fields: name, value, name, value, ..., NULL; a
 * NULL value leaves its field out) and a message; for access lines. */
void log_fields(enum log_level level, const char *const *fields, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
