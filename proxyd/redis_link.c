/* redis_link.c - a kept-up hiredis connection on proxyd's loop (see
 * redis_link.h).
 *
 * States: DOWN (waiting for the backoff), RESOLVING (evdns), CONNECTING
 * (TCP, then AUTH / SELECT / PING queued by hiredis before anything else),
 * UP once the PING is answered. Up is reported then, so a refused AUTH is
 * never reported as up; down is reported once per outage (the first failed
 * attempt after being up, or the first at all), not for every retry.
 *
 * The connection's events are hiredis's libevent adapter done here at the
 * loop's first priority (proxy.h's levels), so an answer from Redis is read
 * before the next client request is: a request waiting on Redis (a rate
 * limit) is not held up behind a busy loop's other callbacks.
 */
#include "redis_link.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "proxy.h"

#define CONNECT_TIMEOUT_MS 2000
#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 10000


enum state { LINK_DOWN, LINK_RESOLVING, LINK_CONNECTING, LINK_UP };

/* hiredis's hooks into the loop: one read and one write event, re-armed by
 * hiredis itself (as its own libevent adapter does). */
struct adapter {
    redisAsyncContext *ac;
    struct event *rev, *wev;
};

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    redisAsyncHandleRead(((struct adapter *)arg)->ac);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    redisAsyncHandleWrite(((struct adapter *)arg)->ac);
}

static void add_read(void *p)
{
    (void)event_add(((struct adapter *)p)->rev, NULL);
}

static void del_read(void *p)
{
    (void)event_del(((struct adapter *)p)->rev);
}

static void add_write(void *p)
{
    (void)event_add(((struct adapter *)p)->wev, NULL);
}

static void del_write(void *p)
{
    (void)event_del(((struct adapter *)p)->wev);
}

static void cleanup(void *p)
{
    struct adapter *a = p;
    event_free(a->rev);
    event_free(a->wev);
    free(a);
}

static int attach(redisAsyncContext *ac, struct event_base *base)
{
    struct adapter *a = calloc(1, sizeof(*a));
    if (a == NULL || ac->ev.data != NULL)
        goto fail;
    a->ac = ac;
    if ((a->rev = event_new(base, ac->c.fd, EV_READ, on_readable, a)) == NULL ||
        (a->wev = event_new(base, ac->c.fd, EV_WRITE, on_writable, a)) == NULL)
        goto fail;
    /* fails only on a base without priorities (tests' own loops): default then */
    (void)event_priority_set(a->rev, PRIO_FIRST);
    (void)event_priority_set(a->wev, PRIO_FIRST);
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    ac->ev.data = a;
    return REDIS_OK;
fail:
    if (a != NULL && a->rev != NULL)
        event_free(a->rev);
    free(a);
    return REDIS_ERR;
}

struct redis_link {
    struct event_base *base;
    struct evdns_base *dns;
    struct evdns_getaddrinfo_request *resolving;
    const struct redis_config *rc;
    redis_link_state_cb on_state;
    void *arg;
    redisAsyncContext *ac;
    enum state state;
    bool reported_down; /* this outage was reported */
    int64_t deadline_ms; /* resolving or connecting: give up then */
    int64_t closing_ms;  /* redis_link_fail's disconnect waits for answers until then (0: none) */
    int64_t retry_at_ms, backoff_ms;
};

/* The attempt failed or the connection went (already detached from l->ac). */
static void link_down(struct redis_link *l, const char *why)
{
    l->state = LINK_DOWN;
    l->closing_ms = 0;
    l->backoff_ms = l->backoff_ms == 0 ? BACKOFF_MIN_MS
                    : l->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : l->backoff_ms * 2;
    l->retry_at_ms = clock_ms() + l->backoff_ms;
    if (!l->reported_down) {
        l->reported_down = true;
        l->on_state(l->arg, false, why);
    }
}

/* Ends the lookup or connection in progress (not from a hiredis callback). */
static void detach(struct redis_link *l)
{
    struct evdns_getaddrinfo_request *req = l->resolving;
    redisAsyncContext *ac = l->ac;
    l->resolving = NULL;
    l->ac = NULL; /* the callbacks hiredis runs while freeing see it is gone */
    if (req != NULL)
        evdns_getaddrinfo_cancel(req);
    if (ac != NULL)
        redisAsyncFree(ac);
}

static void on_connect(const redisAsyncContext *c, int status)
{
    struct redis_link *l = c->data;
    if (l == NULL || c != l->ac || status == REDIS_OK)
        return;
    l->ac = NULL; /* hiredis frees it */
    link_down(l, c->errstr[0] != '\0' ? c->errstr : "cannot connect");
}

static void on_disconnect(const redisAsyncContext *c, int status)
{
    struct redis_link *l = c->data;
    if (l == NULL || c != l->ac)
        return;
    l->ac = NULL; /* hiredis frees it */
    link_down(l, status == REDIS_OK ? "disconnected" : c->errstr);
}

/* AUTH's and SELECT's answers: an error closes the connection. */
static void on_setup(redisAsyncContext *c, void *r, void *arg)
{
    const redisReply *reply = r;
    if (c == ((struct redis_link *)arg)->ac && reply != NULL && reply->type == REDIS_REPLY_ERROR)
        redis_link_fail(arg, c, reply->str);
}

/* The PING after the setup: Redis answers, the link is up. */
static void on_ready(redisAsyncContext *c, void *r, void *arg)
{
    struct redis_link *l = arg;
    const redisReply *reply = r;
    if (c != l->ac || reply == NULL || l->state != LINK_CONNECTING)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        redis_link_fail(l, c, reply->str);
        return;
    }
    l->state = LINK_UP;
    l->backoff_ms = 0;
    l->reported_down = false;
    l->on_state(l->arg, true, NULL);
}

/* Starts the connection to the resolved address ip. */
static void open_to(struct redis_link *l, const char *ip)
{
    const struct redis_config *rc = l->rc;
    redisAsyncContext *ac = redisAsyncConnect(ip, rc->port);
    if (ac == NULL || ac->err) {
        link_down(l, ac != NULL ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        return;
    }
    ac->data = l;
    if (attach(ac, l->base) != REDIS_OK ||
        redisAsyncSetConnectCallback(ac, on_connect) != REDIS_OK ||
        redisAsyncSetDisconnectCallback(ac, on_disconnect) != REDIS_OK) {
        ac->data = NULL;
        redisAsyncFree(ac);
        link_down(l, "cannot watch the connection");
        return;
    }
    l->ac = ac;
    l->state = LINK_CONNECTING;
    /* queued: hiredis sends them once connected, before any other command */
    int rc_ok = REDIS_OK;
    if (rc->password[0] != '\0' && rc->user[0] != '\0')
        rc_ok = redisAsyncCommand(ac, on_setup, l, "AUTH %s %s", rc->user, rc->password);
    else if (rc->password[0] != '\0')
        rc_ok = redisAsyncCommand(ac, on_setup, l, "AUTH %s", rc->password);
    if (rc_ok == REDIS_OK && rc->db != 0)
        rc_ok = redisAsyncCommand(ac, on_setup, l, "SELECT %d", rc->db);
    if (rc_ok != REDIS_OK || redisAsyncCommand(ac, on_ready, l, "PING") != REDIS_OK) {
        detach(l);
        link_down(l, "cannot queue the connection's setup");
    }
}

static void on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
    struct redis_link *l = arg;
    char ip[INET6_ADDRSTRLEN] = "";
    if (result == EVUTIL_EAI_CANCEL)
        return; /* detach: l is being torn down or reset */
    l->resolving = NULL;
    if (result == 0 && res != NULL) {
        const void *addr = res->ai_family == AF_INET6
                               ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
                               : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
        if (evutil_inet_ntop(res->ai_family, addr, ip, sizeof(ip)) == NULL)
            ip[0] = '\0';
    }
    if (res != NULL)
        evutil_freeaddrinfo(res);
    if (ip[0] == '\0') {
        link_down(l, result != 0 ? evutil_gai_strerror(result) : "no address");
        return;
    }
    open_to(l, ip);
}

/* Looks the host up (evdns: the loop never waits), then connects. */
static void link_connect(struct redis_link *l)
{
    struct evutil_addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    l->state = LINK_RESOLVING;
    l->deadline_ms = clock_ms() + CONNECT_TIMEOUT_MS;
    struct evdns_getaddrinfo_request *req =
        evdns_getaddrinfo(l->dns, l->rc->host, NULL, &hints, on_resolved, l);
    if (l->state == LINK_RESOLVING) /* else answered already (an address, /etc/hosts) */
        l->resolving = req;
}

struct redis_link *redis_link_new(struct event_base *base, const struct redis_config *rc,
                                  redis_link_state_cb on_state, void *arg)
{
    struct redis_link *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    *l = (struct redis_link){.base = base, .rc = rc, .on_state = on_state, .arg = arg};
    /* resolv.conf is read once here; without one, only addresses and /etc/hosts resolve */
    if ((l->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS)) == NULL)
        l->dns = evdns_base_new(base, 0);
    if (l->dns == NULL) {
        free(l);
        return NULL;
    }
    link_connect(l);
    return l;
}

void redis_link_free(struct redis_link *l)
{
    if (l == NULL)
        return;
    detach(l);
    evdns_base_free(l->dns, 0);
    free(l);
}

redisAsyncContext *redis_link_ctx(struct redis_link *l)
{
    return l->state == LINK_UP ? l->ac : NULL;
}

void redis_link_tick(struct redis_link *l)
{
    int64_t now = clock_ms();
    if (l->closing_ms != 0 && now >= l->closing_ms) {
        detach(l); /* the answers a failed link's disconnect waited for never came */
        link_down(l, "no answer after an error");
    } else if (l->state == LINK_DOWN && now >= l->retry_at_ms) {
        link_connect(l);
    } else if ((l->state == LINK_RESOLVING || l->state == LINK_CONNECTING) &&
               now >= l->deadline_ms) {
        detach(l);
        link_down(l, "no connection within 2 s");
    }
}

void redis_link_drop(struct redis_link *l, const char *why)
{
    detach(l);
    link_down(l, why);
}

void redis_link_fail(struct redis_link *l, redisAsyncContext *c, const char *why)
{
    if (c != l->ac)
        return;
    if (!l->reported_down) { /* with its reason, not as "disconnected" */
        l->reported_down = true;
        l->on_state(l->arg, false, why);
    }
    l->closing_ms = clock_ms() + CONNECT_TIMEOUT_MS;
    redisAsyncDisconnect(c); /* on_disconnect follows once the answers due are in */
}
