/* drain.c - SIGTERM's graceful stop (see drain.h). */
#include "drain.h"

#include <event2/event.h>
#include <event2/http.h>
#include <stdlib.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "notify.h"
#include "publish.h"
#include "relay.h"
#include "reload.h"

#define CHECK_EVERY_MS 20
#define ACCOUNTD_GONE_MS 1000 /* not reconnecting in a moment: acks will not come */

struct drain {
    struct proxy *px;
    struct event *tick;
    int64_t cut_at_ms;  /* requests still running then are cut */
    int64_t stop_at_ms; /* the loop stops then, acked or not */
    bool cut;
};

static void stop_loop(struct drain *d, const char *why)
{
    size_t pending = publisher_pending(d->px->pub);
    log_info("drain done (%s): %zu usage events unacknowledged%s", why, pending,
             pending > 0 ? ", kept in the spool for the next start" : "");
    event_base_loopexit(d->px->base, NULL);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct drain *d = arg;
    struct proxy *px = d->px;
    int64_t now = clock_ms();
    (void)fd;
    (void)what;
    if (px->in_flight > 0 && now >= d->cut_at_ms && !d->cut) {
        log_warn("drain: shutdown grace time over; cutting %zu requests in flight",
                 px->in_flight);
        d->cut = true;
        relay_cancel_all(px->relay); /* their answers end and their events are queued now */
    }
    if (px->in_flight == 0 && publisher_pending(px->pub) == 0)
        stop_loop(d, "every event acknowledged");
    else if (px->in_flight == 0 && publisher_down_ms(px->pub) > ACCOUNTD_GONE_MS)
        stop_loop(d, "no accountd connected to acknowledge them");
    else if (now >= d->stop_at_ms)
        stop_loop(d, "time is up");
    else if (px->in_flight == 0 && d->stop_at_ms > now + DRAIN_ACK_WAIT_MS)
        d->stop_at_ms = now + DRAIN_ACK_WAIT_MS; /* only acks left to wait for */
}

void drain_start(struct proxy *px)
{
    struct drain *d = px->drain;
    int64_t now = clock_ms();
    if (d != NULL) {
        log_warn("second stop signal: cutting the %zu requests in flight now", px->in_flight);
        d->cut_at_ms = now;
        d->stop_at_ms = now + DRAIN_ACK_WAIT_MS;
        on_tick(-1, 0, d);
        return;
    }
    if ((d = calloc(1, sizeof(*d))) == NULL ||
        (d->tick = event_new(px->base, -1, EV_PERSIST, on_tick, d)) == NULL) {
        log_error("drain: out of memory; stopping at once");
        free(d);
        event_base_loopexit(px->base, NULL);
        return;
    }
    d->px = px;
    int grace = px->gen->cfg->proxyd.shutdown_grace_ms; /* reloadable */
    d->cut_at_ms = now + grace;
    d->stop_at_ms = d->cut_at_ms + DRAIN_ACK_WAIT_MS;
    px->drain = d;
    if (px->bound != NULL) {
        evhttp_del_accept_socket(px->http, px->bound); /* closes the listening socket */
        px->bound = NULL;
    }
    log_info("draining: %zu requests in flight, %zu events unacknowledged, grace %d ms",
             px->in_flight, publisher_pending(px->pub), grace);
    struct timeval every = {0, CHECK_EVERY_MS * 1000};
    if (event_add(d->tick, &every) != 0) {
        log_error("drain: cannot start its timer; stopping at once");
        event_base_loopexit(px->base, NULL);
        return;
    }
    on_tick(-1, 0, d);
}

void drain_free(struct drain *d)
{
    if (d == NULL)
        return;
    event_free(d->tick);
    free(d);
}
