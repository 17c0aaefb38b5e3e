/* intake.c - accountd's ZeroMQ side: a ROUTER socket that proxyd DEALERs
 * connect to. Each message is [routing id][EventBatch]; events of several
 * messages are committed together and each message is acked to its sender
 * with the request ids it carried, only after the commit.
 */
#include "intake.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "clock.h"
#include "curve.h"
#include "grow.h"
#include "log.h"

#define MAX_MESSAGE_BYTES (64 * 1024 * 1024) /* ZMQ_MAXMSGSIZE: bigger peers are cut off */
#define LINGER_MS 2000                       /* time to flush acks at shutdown */

struct intake {
    void *router;
    int batch_max;
};

struct intake *intake_new(void *ctx, const char *endpoint, int batch_max,
                          const struct curve_keypair *server, char *err, size_t errlen)
{
    struct intake *in = calloc(1, sizeof(*in));
    int64_t maxmsg = MAX_MESSAGE_BYTES;
    int linger = LINGER_MS;
    if (in == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    in->batch_max = batch_max;
    if ((in->router = zmq_socket(ctx, ZMQ_ROUTER)) == NULL ||
        zmq_setsockopt(in->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg)) != 0 ||
        zmq_setsockopt(in->router, ZMQ_LINGER, &linger, sizeof(linger)) != 0) {
        snprintf(err, errlen, "ZeroMQ events socket: %s", zmq_strerror(zmq_errno()));
        intake_free(in);
        return NULL;
    }
    if (curve_bind(in->router, server, endpoint, err, errlen) < 0) {
        intake_free(in);
        return NULL;
    }
    return in;
}

void intake_free(struct intake *in)
{
    if (in == NULL)
        return;
    if (in->router != NULL)
        zmq_close(in->router);
    free(in);
}

/* Adds a decoded message and its events to the batch. -1 on ENOMEM. */
static int batch_add(struct intake_batch *b, zmq_msg_t *id, Tollgate__EventBatch *eb)
{
    struct intake_msg *msgs = grow_array(b->msgs, &b->cap_msgs, b->n_msgs + 1, sizeof(*b->msgs), 16);
    if (msgs == NULL)
        return -1;
    b->msgs = msgs;
    Tollgate__UsageEvent **events = grow_array(b->events, &b->cap_events,
                                               b->n_events + eb->n_events, sizeof(*b->events), 16);
    if (events == NULL)
        return -1;
    b->events = events;
    struct intake_msg *m = &b->msgs[b->n_msgs++];
    m->identity_len = zmq_msg_size(id);
    memcpy(m->identity, zmq_msg_data(id), m->identity_len);
    m->batch = eb;
    for (size_t i = 0; i < eb->n_events; i++)
        b->events[b->n_events++] = eb->events[i];
    return 0;
}

/* Receives one [id][payload] message without blocking. 1 added, 0 none, -1 dropped. */
static int receive_one(struct intake *in, struct intake_batch *b)
{
    zmq_msg_t id, payload;
    int more = 0, rc = -1;
    size_t more_len = sizeof(more);
    zmq_msg_init(&id);
    zmq_msg_init(&payload);
    if (zmq_msg_recv(&id, in->router, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&id);
        zmq_msg_close(&payload);
        return 0;
    }
    if (zmq_msg_size(&id) > sizeof(b->msgs[0].identity) || !zmq_msg_more(&id) ||
        zmq_msg_recv(&payload, in->router, 0) < 0) {
        log_warn("dropping a malformed ZeroMQ message (bad routing frame)");
        goto out;
    }
    zmq_getsockopt(in->router, ZMQ_RCVMORE, &more, &more_len);
    while (more) { /* extra frames: not ours; drain them */
        zmq_msg_t extra;
        zmq_msg_init(&extra);
        zmq_msg_recv(&extra, in->router, 0);
        more = zmq_msg_more(&extra);
        zmq_msg_close(&extra);
        rc = -2;
    }
    Tollgate__EventBatch *eb = rc == -2 ? NULL
        : tollgate__event_batch__unpack(NULL, zmq_msg_size(&payload), zmq_msg_data(&payload));
    if (eb == NULL) {
        log_warn("dropping an undecodable event batch of %zu bytes", zmq_msg_size(&payload));
        rc = -1;
        goto out;
    }
    if (batch_add(b, &id, eb) < 0) {
        log_error("out of memory receiving a batch; the sender will resend it");
        tollgate__event_batch__free_unpacked(eb, NULL);
        goto out;
    }
    rc = 1;
out:
    zmq_msg_close(&id);
    zmq_msg_close(&payload);
    return rc;
}

bool intake_full(const struct intake *in, const struct intake_batch *b)
{
    return b->n_events >= (size_t)in->batch_max;
}

void intake_set_batch_max(struct intake *in, int batch_max)
{
    in->batch_max = batch_max;
}

size_t intake_collect(struct intake *in, struct intake_batch *b, int timeout_ms, int wake_fd)
{
    zmq_pollitem_t items[2];
    int n = 0;
    bool listen = !intake_full(in, b); /* a full batch leaves messages waiting in ZeroMQ */
    size_t before = b->n_events;
    if (listen)
        items[n++] = (zmq_pollitem_t){in->router, 0, ZMQ_POLLIN, 0};
    if (wake_fd >= 0)
        items[n++] = (zmq_pollitem_t){NULL, wake_fd, ZMQ_POLLIN, 0};
    /* no items: zmq_poll sleeps for the timeout; < 0: EINTR, the caller's flag */
    if (zmq_poll(items, n, timeout_ms) <= 0 || !listen || !(items[0].revents & ZMQ_POLLIN))
        return 0;
    while (!intake_full(in, b) && receive_one(in, b) != 0)
        ;
    return b->n_events - before;
}

static bool same_sender(const struct intake_msg *a, const struct intake_msg *b)
{
    return a->identity_len == b->identity_len &&
           memcmp(a->identity, b->identity, a->identity_len) == 0;
}

/* One ack for every message of the batch from the sender of msgs[first]: a
 * proxyd sends a message a millisecond, and one ack per commit instead of
 * one per message spares it most of its wake-ups. 0 sent, -1 not. */
static int ack_sender(struct intake *in, const struct intake_batch *b, size_t first,
                      bool *done)
{
    const struct intake_msg *m0 = &b->msgs[first];
    Tollgate__EventAck ack = TOLLGATE__EVENT_ACK__INIT;
    char **ids = malloc((b->n_events ? b->n_events : 1) * sizeof(*ids));
    int rc = -1;
    if (ids == NULL) {
        log_error("out of memory acking; the sender will resend");
        return -1;
    }
    for (size_t i = first; i < b->n_msgs; i++) {
        const struct intake_msg *m = &b->msgs[i];
        if (done[i] || !same_sender(m0, m))
            continue;
        done[i] = true;
        for (size_t k = 0; k < m->batch->n_events; k++)
            ids[ack.n_request_ids++] = m->batch->events[k]->request_id;
    }
    ack.request_ids = ids;
    size_t len = tollgate__event_ack__get_packed_size(&ack);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf != NULL) {
        tollgate__event_ack__pack(&ack, buf);
        if (zmq_send(in->router, m0->identity, m0->identity_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
            zmq_send(in->router, buf, len, ZMQ_DONTWAIT) < 0)
            log_warn("cannot ack %zu events: %s (the sender will resend)", ack.n_request_ids,
                     zmq_strerror(zmq_errno()));
        else
            rc = 0;
    }
    free(buf);
    free(ids);
    return rc;
}

size_t intake_ack(struct intake *in, const struct intake_batch *b, size_t *failed)
{
    size_t sent = 0;
    bool *done = calloc(b->n_msgs ? b->n_msgs : 1, sizeof(*done));
    *failed = 0;
    if (done == NULL) {
        log_error("out of memory acking; the senders will resend");
        *failed = 1;
        return 0;
    }
    for (size_t i = 0; i < b->n_msgs; i++) {
        if (done[i])
            continue;
        if (ack_sender(in, b, i, done) == 0)
            sent++;
        else
            (*failed)++;
    }
    free(done);
    return sent;
}

void intake_batch_clear(struct intake_batch *b)
{
    for (size_t i = 0; i < b->n_msgs; i++)
        tollgate__event_batch__free_unpacked(b->msgs[i].batch, NULL);
    b->n_msgs = 0;
    b->n_events = 0;
}

void intake_batch_free(struct intake_batch *b)
{
    intake_batch_clear(b);
    free(b->msgs);
    free(b->events);
}
