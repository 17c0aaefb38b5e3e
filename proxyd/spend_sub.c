/* spend_sub.c - receiving accountd's spend updates (see spend_sub.h).
 *
 * A SUB socket connected to tollgate.accountd.updates; every SpendUpdate
 * tells admission.c the committed spend of budget owners, so spend that
 * went through other proxyd instances counts here within milliseconds.
 * ZMQ_FD is edge-triggered, so a short timer drains the socket too.
 */
#include "spend_sub.h"

#include <stdio.h>
#include <stdlib.h>
#include <zmq.h>

#include "events.pb-c.h"
#include "log.h"
#include "zmq_link.h"

#define DRAIN_MS 50

struct spend_sub {
    struct admission *admission;
    void *ctx, *sub;
    struct zmq_link *link; /* to every accountd: each publishes */
    struct event *fd_ev, *timer_ev;
};

static void apply(struct spend_sub *s, const zmq_msg_t *msg)
{
    Tollgate__SpendUpdate *up = tollgate__spend_update__unpack(
        NULL, zmq_msg_size(msg), zmq_msg_data((zmq_msg_t *)msg));
    if (up == NULL) {
        log_warn("ignoring an undecodable spend update");
        return;
    }
    /* The batch is committed: its costs are in the spend below, acked or not. */
    for (size_t i = 0; i < up->n_request_ids; i++)
        admission_acked(s->admission, up->request_ids[i]);
    for (size_t i = 0; i < up->n_owners; i++) {
        money_t m;
        if (money_parse(up->owners[i]->spend, &m) == 0)
            admission_spend_update(s->admission, up->owners[i]->owner, m,
                                   up->owners[i]->has_reset_at_us ? up->owners[i]->reset_at_us : 0);
    }
    tollgate__spend_update__free_unpacked(up, NULL);
}

static void drain(evutil_socket_t fd, short what, void *arg)
{
    struct spend_sub *s = arg;
    (void)fd;
    (void)what;
    if (s->link != NULL)
        zmq_link_poll(s->link); /* its monitor's fd is edge-triggered too */
    for (;;) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, s->sub, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            return;
        }
        apply(s, &msg);
        zmq_msg_close(&msg);
    }
}

struct spend_sub *spend_sub_new(struct event_base *base, const struct config *cfg,
                                struct admission *a, char *err, size_t errlen)
{
    struct spend_sub *s = calloc(1, sizeof(*s));
    int fd, linger = 0;
    size_t fdlen = sizeof(fd);
    struct timeval tv = {0, DRAIN_MS * 1000};
    if (s == NULL || (s->ctx = zmq_ctx_new()) == NULL ||
        (s->sub = zmq_socket(s->ctx, ZMQ_SUB)) == NULL ||
        zmq_setsockopt(s->sub, ZMQ_LINGER, &linger, sizeof(linger)) != 0 ||
        zmq_setsockopt(s->sub, ZMQ_SUBSCRIBE, "", 0) != 0 ||
        zmq_getsockopt(s->sub, ZMQ_FD, &fd, &fdlen) != 0) {
        snprintf(err, errlen, "spend updates: %s", zmq_strerror(zmq_errno()));
        spend_sub_free(s);
        return NULL;
    }
    if ((s->link = zmq_link_open(base, s->ctx, s->sub, cfg, cfg->accountd.updates,
                                 "spend updates", NULL, NULL, err, errlen)) == NULL) {
        spend_sub_free(s);
        return NULL;
    }
    s->admission = a;
    if ((s->fd_ev = event_new(base, fd, EV_READ | EV_PERSIST, drain, s)) == NULL ||
        (s->timer_ev = event_new(base, -1, EV_PERSIST, drain, s)) == NULL ||
        event_add(s->fd_ev, NULL) != 0 || event_add(s->timer_ev, &tv) != 0) {
        snprintf(err, errlen, "cannot watch the spend update socket");
        spend_sub_free(s);
        return NULL;
    }
    return s;
}

void spend_sub_free(struct spend_sub *s)
{
    if (s == NULL)
        return;
    if (s->fd_ev != NULL)
        event_free(s->fd_ev);
    if (s->timer_ev != NULL)
        event_free(s->timer_ev);
    zmq_link_close(s->link);
    if (s->sub != NULL)
        zmq_close(s->sub);
    if (s->ctx != NULL)
        zmq_ctx_term(s->ctx);
    free(s);
}
