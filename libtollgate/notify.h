/* notify.h - telling systemd (Type=notify units) how a daemon is doing:
 * READY=1 once it serves, STOPPING=1 when it drains, and watchdog pings when
 * the unit sets WatchdogSec. All no-ops outside systemd (no NOTIFY_SOCKET). */
#ifndef TG_NOTIFY_H
#define TG_NOTIFY_H

#include <stdint.h>

/* READY=1 with a STATUS= line for `systemctl status`. */
void notify_ready(const char *status);
/* RELOADING=1 when a SIGHUP reload starts; notify_ready(NULL) when it ends. */
void notify_reloading(void);
void notify_stopping(void);
/* How often to ping the watchdog (half its timeout), in ms; 0 when the
 * unit has no watchdog. */
int64_t notify_watchdog_interval_ms(void);
void notify_watchdog(void);

#endif
