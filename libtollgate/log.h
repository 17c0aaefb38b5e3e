/* log.h - one logfmt line per event on stderr (journald collects it).
 * Never pass a raw key or message content to these. */
#ifndef TG_LOG_H
#define TG_LOG_H

void log_init(const char *daemon);
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
