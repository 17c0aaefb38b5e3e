/* notify.c - systemd notifications through libsystemd's sd_notify (see
 * notify.h). A failed notification is logged once, never fatal: the daemon
 * works the same without systemd. */
#include "notify.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <systemd/sd-daemon.h>

#include "log.h"

static void notify(const char *what, const char *state)
{
    static bool warned;
    int rc = sd_notify(0, state);
    if (rc < 0 && !warned) {
        warned = true;
        log_warn("cannot notify systemd (%s): %s", what, strerror(-rc));
    }
}

void notify_ready(const char *status)
{
    char state[512];
    if (status == NULL) { /* after a reload: the STATUS of start stays */
        notify("ready", "READY=1");
        return;
    }
    size_t n = strlen(status);
    if (n > sizeof(state) - 32)
        n = sizeof(state) - 32;
    memcpy(state, "READY=1\nSTATUS=", 15);
    memcpy(state + 15, status, n);
    state[15 + n] = '\0';
    notify("ready", state);
}

void notify_reloading(void)
{
    char state[128];
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* systemd's notify-reload wants the time of it */
    snprintf(state, sizeof(state), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
    notify("reloading", state);
}

void notify_stopping(void)
{
    notify("stopping", "STOPPING=1\nSTATUS=stopping");
}

int64_t notify_watchdog_interval_ms(void)
{
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
        return 0;
    int64_t ms = (int64_t)(usec / 2000);
    return ms > 0 ? ms : 1;
}

void notify_watchdog(void)
{
    notify("watchdog", "WATCHDOG=1");
}
