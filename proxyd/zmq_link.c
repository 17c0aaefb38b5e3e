/* zmq_link.c - a proxyd socket's connections to every accountd instance,
 * kept alive through failed handshakes.
 *
 * libzmq (4.3) gives up on a connected endpoint for good once a handshake
 * fails for a protocol reason (the peer speaks another mechanism) or the
 * peer's ZAP handler refuses the client key. A peer that is not accountd (an
 * impostor on the port while accountd restarts, a scanner speaking ZMTP) or
 * an accountd that does not list this proxyd yet would otherwise cut proxyd
 * off from that instance until a restart. A socket monitor sees each such
 * failure; the endpoint is disconnected and connected again RETRY_MS later.
 * (A wrong server key fails without detail, and libzmq retries that itself.)
 *
 * The same monitor tells which connections completed a handshake, not
 * merely a TCP connect: only those count as up, for sends and readiness.
 * They are told apart by the endpoint the monitor reports, which is the
 * configured one for a first connection but the resolved address after a
 * reconnect (tcp://accountd1:5555 becomes tcp://10.0.0.5:5555): the up
 * set holds what was reported, and a failure on an address no configured
 * endpoint spells is retried on every endpoint given by host name.
 */
#include "zmq_link.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "clock.h"
#include "config.h"
#include "curve.h"
#include "log.h"

#define RETRY_MS 1000     /* before connecting again to an endpoint libzmq gave up on */
#define WARN_EVERY_MS 10000 /* handshake failures logged at most this often */
#define UP_MAX (2 * CONFIG_MAX_ACCOUNTD) /* connections up at once (one per instance) */
#define WATCHED (ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED |                   \
                 ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |     \
                 ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)

struct zmq_link {
    const struct config *cfg;
    char *const *endpoints;
    const char *what;
    void *sock, *monitor;
    struct event *monitor_ev, *retry_ev;
    char *up[UP_MAX]; /* endpoints (as reported) whose handshake succeeded */
    size_t n_up;
    bool retry[CONFIG_MAX_ACCOUNTD];
    int64_t last_warn_ms;
    zmq_link_cb cb;
    void *arg;
};

/* Which configured endpoint ep spells; -1 for none. */
static int instance_of(const struct zmq_link *l, const char *ep)
{
    for (size_t i = 0; i < l->cfg->accountd.n_accountd; i++)
        if (strcmp(l->endpoints[i], ep) == 0)
            return (int)i;
    return -1;
}

/* Is a tcp:// endpoint's host a name (resolved anew by libzmq)? */
static bool by_name(const char *ep)
{
    char host[256];
    const char *h = ep + 6, *colon = strrchr(h, ':');
    size_t len = colon != NULL ? (size_t)(colon - h) : 0;
    struct in_addr a;
    if (strncmp(ep, "tcp://", 6) != 0 || len == 0 || len >= sizeof(host) || h[0] == '[')
        return false;
    memcpy(host, h, len);
    host[len] = '\0';
    return inet_pton(AF_INET, host, &a) != 1;
}

static void retry_later(struct zmq_link *l, size_t i)
{
    struct timeval tv = {RETRY_MS / 1000, (RETRY_MS % 1000) * 1000};
    l->retry[i] = true;
    if (!event_pending(l->retry_ev, EV_TIMEOUT, NULL) && event_add(l->retry_ev, &tv) != 0)
        log_error("cannot arm the ZeroMQ reconnect timer");
}

static void failed(struct zmq_link *l, const char *ep, uint16_t ev)
{
    bool gives_up = ev != ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
    int64_t now = clock_ms();
    if (now - l->last_warn_ms >= WARN_EVERY_MS) {
        l->last_warn_ms = now;
        log_warn("ZeroMQ %s at %s: handshake failed (%s); %s", l->what, ep,
                 ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ? "accountd refused this proxyd's key"
                 : gives_up ? "the peer speaks another mechanism: not accountd, or curve differs"
                            : "the peer did not prove the server key this proxyd trusts",
                 "connecting again");
    }
    if (!gives_up)
        return;
    int i = instance_of(l, ep);
    for (size_t k = 0; k < l->cfg->accountd.n_accountd; k++)
        if (i >= 0 ? k == (size_t)i : by_name(l->endpoints[k]))
            retry_later(l, k);
}

/* The up set: a handshake adds its endpoint, a disconnection removes it. */
static void apply(struct zmq_link *l, uint16_t ev, const char *ep)
{
    size_t i = 0;
    while (i < l->n_up && strcmp(l->up[i], ep) != 0)
        i++;
    if (ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED && i == l->n_up && l->n_up < UP_MAX) {
        if ((l->up[l->n_up] = strdup(ep)) == NULL) {
            log_error("out of memory noting a connection to accountd");
            return;
        }
        l->n_up++;
        if (l->cb != NULL)
            l->cb(l->arg, true);
    } else if (ev == ZMQ_EVENT_DISCONNECTED && i < l->n_up) {
        free(l->up[i]);
        l->up[i] = l->up[--l->n_up];
        if (l->cb != NULL)
            l->cb(l->arg, false);
    } else if (ev != ZMQ_EVENT_HANDSHAKE_SUCCEEDED && ev != ZMQ_EVENT_DISCONNECTED) {
        failed(l, ep, ev);
    }
}

/* Monitor events: [uint16 event, uint32 value][endpoint]. */
void zmq_link_poll(struct zmq_link *l)
{
    for (;;) {
        int events = 0;
        size_t len = sizeof(events);
        if (zmq_getsockopt(l->monitor, ZMQ_EVENTS, &events, &len) != 0 || !(events & ZMQ_POLLIN))
            return;
        zmq_msg_t head, ep;
        uint16_t ev = 0;
        char addr[512] = "";
        zmq_msg_init(&head);
        zmq_msg_init(&ep);
        if (zmq_msg_recv(&head, l->monitor, ZMQ_DONTWAIT) >= 2 && zmq_msg_more(&head) &&
            zmq_msg_recv(&ep, l->monitor, ZMQ_DONTWAIT) >= 0 &&
            zmq_msg_size(&ep) < sizeof(addr)) {
            memcpy(&ev, zmq_msg_data(&head), sizeof(ev));
            memcpy(addr, zmq_msg_data(&ep), zmq_msg_size(&ep));
        }
        zmq_msg_close(&head);
        zmq_msg_close(&ep);
        if (addr[0] != '\0')
            apply(l, ev, addr);
    }
}

static void on_monitor(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    zmq_link_poll(arg);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    struct zmq_link *l = arg;
    char err[512];
    (void)fd;
    (void)what;
    for (size_t i = 0; i < l->cfg->accountd.n_accountd; i++) {
        if (!l->retry[i])
            continue;
        if (zmq_disconnect(l->sock, l->endpoints[i]) != 0 && zmq_errno() != ENOENT)
            log_warn("ZeroMQ %s: disconnect %s: %s", l->what, l->endpoints[i],
                     zmq_strerror(zmq_errno()));
        l->retry[i] = false;
        if (curve_connect_instance(l->sock, l->cfg, l->endpoints, i, err, sizeof(err)) < 0) {
            log_error("ZeroMQ %s: %s; trying again", l->what, err);
            retry_later(l, i);
        }
    }
}

static int watch(struct zmq_link *l, struct event_base *base, void *ctx, char *err, size_t errlen)
{
    char addr[64];
    int fd;
    size_t fdlen = sizeof(fd);
    snprintf(addr, sizeof(addr), "inproc://zmq-link-%p", (void *)l);
    if (zmq_socket_monitor(l->sock, addr, WATCHED) != 0 ||
        (l->monitor = zmq_socket(ctx, ZMQ_PAIR)) == NULL || zmq_connect(l->monitor, addr) != 0 ||
        zmq_getsockopt(l->monitor, ZMQ_FD, &fd, &fdlen) != 0) {
        snprintf(err, errlen, "ZeroMQ socket monitor: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    if ((l->monitor_ev = event_new(base, fd, EV_READ | EV_PERSIST, on_monitor, l)) == NULL ||
        event_add(l->monitor_ev, NULL) != 0 ||
        (l->retry_ev = event_new(base, -1, 0, on_retry, l)) == NULL) {
        snprintf(err, errlen, "cannot watch the ZeroMQ monitor");
        return -1;
    }
    return 0;
}

struct zmq_link *zmq_link_open(struct event_base *base, void *ctx, void *sock,
                               const struct config *cfg, char *const *endpoints,
                               const char *what, zmq_link_cb cb, void *arg, char *err,
                               size_t errlen)
{
    struct zmq_link *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    *l = (struct zmq_link){.cfg = cfg, .endpoints = endpoints, .what = what, .sock = sock,
                           .cb = cb, .arg = arg};
    if (watch(l, base, ctx, err, errlen) < 0) {
        zmq_link_close(l);
        return NULL;
    }
    for (size_t i = 0; i < cfg->accountd.n_accountd; i++)
        if (curve_connect_instance(sock, cfg, endpoints, i, err, errlen) < 0) {
            zmq_link_close(l);
            return NULL;
        }
    return l;
}

size_t zmq_link_up(const struct zmq_link *l)
{
    return l->n_up;
}

void zmq_link_close(struct zmq_link *l)
{
    if (l == NULL)
        return;
    if (l->monitor_ev != NULL)
        event_free(l->monitor_ev);
    if (l->retry_ev != NULL)
        event_free(l->retry_ev);
    if (l->monitor != NULL) {
        (void)zmq_socket_monitor(l->sock, NULL, 0); /* stop it; failure changes nothing */
        zmq_close(l->monitor);
    }
    for (size_t i = 0; i < l->n_up; i++)
        free(l->up[i]);
    free(l);
}
