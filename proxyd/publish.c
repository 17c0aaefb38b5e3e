/* publish.c - the ZeroMQ DEALER that carries usage events to accountd.
 *
 * Design: every event is first appended to the durable spool (spool.c),
 * then stored in `pending` (request id -> encoded event) and appended to
 * the outgoing batch. The batch leaves BATCH_WAIT_MS after its first event
 * (or when full), so under load one ZeroMQ message, one wake-up of its I/O
 * thread and one ack carry many events. An EventBatch is just its events as
 * length-delimited field 1, so batches are built by concatenation, without
 * re-encoding. accountd acks request ids after its commit; acked events are
 * forgotten.
 *
 * Resends: a timer re-sends what has waited for its ack longer than the
 * resend timeout, so a lost batch or a crashed accountd costs a delay,
 * never an event. The timeout is event_resend_ms, or twice the recent ack
 * latency when that is longer: an accountd working through a backlog is
 * slow, not lost, and re-sending its backlog would only double its work.
 * (The latency is sampled from first sends only, as TCP does, since the
 * ack of a re-sent event may answer either copy.) Each further resend of
 * the same event waits twice as long, up to RESEND_BACKOFF_MAX times, and a
 * new connection to accountd makes everything due at once: what was sent
 * to a peer that went away is lost with it. ZMQ_IMMEDIATE keeps messages
 * off dead peers: with no accountd connected a send fails, and the resend
 * timer tries again later.
 *
 * zmq_link.c watches the connections to accountd (for readiness, and to
 * send again what a peer that left had not acked).
 *
 * libzmq's ZMQ_FD is edge-triggered: after any send or receive we drain
 * incoming acks until ZMQ_EVENTS says there are none.
 */
#include "publish.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "clock.h"
#include "events.pb-c.h"
#include "grow.h"
#include "log.h"
#include "spool.h"
#include "strmap.h"
#include "zmq_link.h"

#define BATCH_MAX_EVENTS 512
#define BATCH_MAX_BYTES (4 * 1024 * 1024)
#define BATCH_WAIT_MS 1        /* a batch leaves at most this long after its first event */
#define RESEND_BACKOFF_MAX 8   /* a re-sent event waits at most 8x the resend timeout */

struct pending {
    uint8_t *data;
    size_t len;
    int64_t sent_ms;           /* 0 = not sent yet */
    int sends;                 /* how often it was handed to ZeroMQ */
    struct spool_segment *seg; /* where it is on disk; NULL if the spool refused it */
};

struct publisher {
    const struct config *cfg;
    void *ctx, *dealer;
    struct zmq_link *link;  /* the connections to every accountd */
    struct event *zmq_ev, *flush_ev, *resend_ev;
    int64_t down_since_ms;  /* when the last accountd went away; 0 while one is up */
    struct strmap *pending; /* request id -> struct pending */
    struct spool *spool;
    void (*ack_cb)(const char *request_id, void *arg);
    void *ack_arg;
    uint8_t *out;           /* outgoing EventBatch being built */
    size_t out_len, out_cap, out_events;
    bool send_failing;      /* logged once per state change */
    int64_t ack_ms;         /* smoothed time from a first send to its ack; 0 = none yet */
};

static void pending_free(void *v)
{
    struct pending *p = v;
    free(p->data);
    free(p);
}

/* Folds one ack latency into the smoothed one (weight 1/8, as TCP's SRTT). */
static void sample_ack(struct publisher *p, const struct pending *pe, int64_t now)
{
    if (pe->sends != 1 || pe->sent_ms == 0)
        return;
    int64_t ms = now - pe->sent_ms;
    p->ack_ms = p->ack_ms == 0 ? ms : p->ack_ms + (ms - p->ack_ms) / 8;
}

static void handle_ack(struct publisher *p, const zmq_msg_t *msg)
{
    Tollgate__EventAck *ack = tollgate__event_ack__unpack(NULL, zmq_msg_size(msg),
                                                          zmq_msg_data((zmq_msg_t *)msg));
    int64_t now = clock_ms();
    if (ack == NULL) {
        log_warn("ignoring an undecodable ack from accountd");
        return;
    }
    for (size_t i = 0; i < ack->n_request_ids; i++) {
        struct pending *pe = strmap_del(p->pending, ack->request_ids[i]);
        if (pe == NULL)
            continue;
        sample_ack(p, pe, now);
        if (pe->seg != NULL)
            spool_ack(p->spool, pe->seg, ack->request_ids[i]);
        pending_free(pe);
        if (p->ack_cb != NULL)
            p->ack_cb(ack->request_ids[i], p->ack_arg);
    }
    spool_flush_acks(p->spool);
    tollgate__event_ack__free_unpacked(ack, NULL);
}

static void drain(struct publisher *p)
{
    for (;;) {
        int events = 0;
        size_t len = sizeof(events);
        if (zmq_getsockopt(p->dealer, ZMQ_EVENTS, &events, &len) != 0 || !(events & ZMQ_POLLIN))
            return;
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, p->dealer, ZMQ_DONTWAIT) >= 0)
            handle_ack(p, &msg);
        zmq_msg_close(&msg);
    }
}

static void on_zmq(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    drain(arg);
}

/* Appends one event as field 1 (length-delimited) of an EventBatch. */
static int out_append(struct publisher *p, const uint8_t *data, size_t len)
{
    uint8_t hdr[11];
    size_t h = 0;
    hdr[h++] = 0x0a; /* field 1, wire type 2 */
    for (size_t v = len; ; v >>= 7) {
        hdr[h++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        if (v <= 0x7f)
            break;
    }
    uint8_t *grown = grow_array(p->out, &p->out_cap, p->out_len + h + len, 1, 64 * 1024);
    if (grown == NULL)
        return -1;
    p->out = grown;
    memcpy(p->out + p->out_len, hdr, h);
    memcpy(p->out + p->out_len + h, data, len);
    p->out_len += h + len;
    p->out_events++;
    return 0;
}

/* Puts a pending event into the outgoing batch. */
static int out_add(struct publisher *p, struct pending *pe, int64_t now)
{
    if (out_append(p, pe->data, pe->len) < 0)
        return -1;
    pe->sent_ms = now;
    pe->sends++;
    return 0;
}

/* Sends the outgoing batch; on failure its events stay pending for resend. */
static void flush(struct publisher *p)
{
    if (p->out_events == 0)
        return;
    int rc = zmq_send(p->dealer, p->out, p->out_len, ZMQ_DONTWAIT);
    if (rc < 0 && !p->send_failing)
        log_warn("cannot reach accountd (%s): %zu events wait for resend",
                 zmq_strerror(zmq_errno()), strmap_count(p->pending));
    else if (rc >= 0 && p->send_failing)
        log_info("accountd reachable again");
    p->send_failing = rc < 0;
    p->out_len = 0;
    p->out_events = 0;
    drain(p);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    flush(arg);
}

/* How long an event handed to ZeroMQ `sends` times waits for its ack. */
static int64_t resend_after_ms(const struct publisher *p, int sends)
{
    int64_t base = p->cfg->proxyd.event_resend_ms;
    if (2 * p->ack_ms > base)
        base = 2 * p->ack_ms;
    int shift = sends > 1 ? sends - 1 : 0;
    return base * (shift >= 3 ? RESEND_BACKOFF_MAX : 1 << shift);
}

/* Re-sends events whose ack is overdue (or whose first send failed). */
static void on_resend(evutil_socket_t fd, short what, void *arg)
{
    struct publisher *p = arg;
    size_t pos = 0, resent = 0;
    const char *id;
    void *v;
    (void)fd;
    (void)what;
    zmq_link_poll(p->link); /* ZMQ_FD is edge-triggered: never rely on it alone */
    drain(p);
    flush(p);
    /* While sends fail, everything is due: nothing went out. */
    bool all = p->send_failing;
    int64_t now = clock_ms();
    while (strmap_next(p->pending, &pos, &id, &v) == 0) {
        struct pending *pe = v;
        if (!all && pe->sent_ms != 0 && now - pe->sent_ms < resend_after_ms(p, pe->sends))
            continue;
        if (out_add(p, pe, now) < 0)
            break;
        resent += pe->sends > 1;
        if (p->out_events >= BATCH_MAX_EVENTS || p->out_len >= BATCH_MAX_BYTES) {
            flush(p);
            if (p->send_failing)
                break; /* accountd cannot take more now: the next tick goes on */
        }
    }
    flush(p);
    if (resent > 0 && !p->send_failing)
        log_info("re-sent %zu usage events without an ack (ack latency %" PRId64 " ms)", resent,
                 p->ack_ms);
}

/* Adds an event to `pending` and to the outgoing batch. */
static int enqueue(struct publisher *p, const char *request_id, const uint8_t *event, size_t len,
                   struct spool_segment *seg)
{
    struct pending *pe = calloc(1, sizeof(*pe));
    int err;
    if (pe == NULL || (pe->data = malloc(len ? len : 1)) == NULL) {
        free(pe);
        return -1;
    }
    memcpy(pe->data, event, len);
    pe->len = len;
    pe->seg = seg;
    struct pending *old = strmap_put(p->pending, request_id, pe, &err);
    if (err < 0) {
        pending_free(pe);
        return -1;
    }
    if (old != NULL)
        pending_free(old);
    (void)out_add(p, pe, clock_ms()); /* on ENOMEM the resend timer sends it */
    if (p->out_events >= BATCH_MAX_EVENTS || p->out_len >= BATCH_MAX_BYTES) {
        flush(p);
    } else if (!evtimer_pending(p->flush_ev, NULL)) {
        struct timeval tv = {0, BATCH_WAIT_MS * 1000};
        if (evtimer_add(p->flush_ev, &tv) != 0)
            flush(p);
    }
    return 0;
}

int publisher_send(struct publisher *p, const char *request_id, const uint8_t *event, size_t len)
{
    struct spool_segment *seg = NULL;
    bool spooled = spool_append(p->spool, request_id, event, len, &seg) == 0;
    if (!spooled)
        log_error("request %s: the spool refused its usage event; it is kept in memory only",
                  request_id);
    if (enqueue(p, request_id, event, len, seg) < 0)
        return -1;
    return spooled ? 0 : 1;
}

/* Events found in the spool at start go out again. */
static void on_recovered(const char *request_id, const uint8_t *event, size_t len,
                         struct spool_segment *seg, void *arg)
{
    if (enqueue(arg, request_id, event, len, seg) < 0)
        log_error("spool: out of memory re-queueing %s; it stays on disk", request_id);
}

void publisher_on_ack(struct publisher *p, void (*cb)(const char *request_id, void *arg),
                      void *arg)
{
    p->ack_cb = cb;
    p->ack_arg = arg;
}

bool publisher_full(const struct publisher *p)
{
    return spool_full(p->spool);
}

bool publisher_has(const struct publisher *p, const char *request_id)
{
    return strmap_get(p->pending, request_id) != NULL;
}

size_t publisher_pending(const struct publisher *p)
{
    return strmap_count(p->pending);
}

uint64_t publisher_spool_bytes(const struct publisher *p)
{
    return spool_bytes(p->spool);
}

void publisher_spool_damage(const struct publisher *p, uint64_t *ranges, uint64_t *bytes)
{
    struct spool_damage d;
    spool_damage(p->spool, &d);
    *ranges = d.ranges;
    *bytes = d.bytes;
}

/* Makes every pending event due for (re)sending. */
static void due_now(struct publisher *p)
{
    size_t pos = 0;
    const char *id;
    void *v;
    while (strmap_next(p->pending, &pos, &id, &v) == 0)
        ((struct pending *)v)->sent_ms = 0;
}

/* An accountd instance completed its handshake, or went away (zmq_link.c). */
static void on_link(void *arg, bool up)
{
    struct publisher *p = arg;
    size_t n = zmq_link_up(p->link);
    if (up && n == 1) {
        p->down_since_ms = 0;
        log_info("connected to accountd");
    } else if (!up && n == 0) {
        p->down_since_ms = clock_ms();
        log_warn("lost the connection to accountd");
    }
    /* what went to a peer that left is lost with it; a new peer takes it now */
    due_now(p);
    event_active(p->resend_ev, EV_TIMEOUT, 0);
}

int64_t publisher_down_ms(struct publisher *p)
{
    zmq_link_poll(p->link); /* current, whatever consumed the monitor's edge */
    return p->down_since_ms == 0 ? 0 : clock_ms() - p->down_since_ms;
}

static int setup_socket(struct publisher *p, char *err, size_t errlen)
{
    int one = 1, linger = 0;
    int64_t maxmsg = 16 * 1024 * 1024;
    int fd;
    size_t fdlen = sizeof(fd);
    if ((p->ctx = zmq_ctx_new()) == NULL || (p->dealer = zmq_socket(p->ctx, ZMQ_DEALER)) == NULL ||
        zmq_setsockopt(p->dealer, ZMQ_IMMEDIATE, &one, sizeof(one)) != 0 ||
        zmq_setsockopt(p->dealer, ZMQ_LINGER, &linger, sizeof(linger)) != 0 ||
        zmq_setsockopt(p->dealer, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg)) != 0 ||
        zmq_getsockopt(p->dealer, ZMQ_FD, &fd, &fdlen) != 0) {
        snprintf(err, errlen, "ZeroMQ to accountd: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    /* One DEALER connected to every accountd: batches go round-robin to the
     * connected ones, so the instances share the load. */
    p->down_since_ms = clock_ms(); /* until the first handshake */
    if ((p->link = zmq_link_open(event_get_base(p->flush_ev), p->ctx, p->dealer, p->cfg,
                                 p->cfg->accountd.events, "events", on_link, p, err,
                                 errlen)) == NULL)
        return -1;
    p->zmq_ev = event_new(event_get_base(p->flush_ev), fd, EV_READ | EV_PERSIST, on_zmq, p);
    if (p->zmq_ev == NULL || event_add(p->zmq_ev, NULL) != 0) {
        snprintf(err, errlen, "cannot watch the ZeroMQ socket");
        return -1;
    }
    return 0;
}

struct publisher *publisher_new(struct event_base *base, const struct config *cfg,
                                char *err, size_t errlen)
{
    struct publisher *p = calloc(1, sizeof(*p));
    if (p == NULL || (p->pending = strmap_new()) == NULL ||
        (p->flush_ev = event_new(base, -1, 0, on_flush, p)) == NULL ||
        (p->resend_ev = event_new(base, -1, EV_PERSIST, on_resend, p)) == NULL) {
        snprintf(err, errlen, "out of memory");
        publisher_free(p);
        return NULL;
    }
    p->cfg = cfg;
    int tick = cfg->proxyd.event_resend_ms / 2;
    struct timeval tv = {tick / 1000, (tick % 1000) * 1000};
    if (setup_socket(p, err, errlen) < 0 || event_add(p->resend_ev, &tv) != 0 ||
        (p->spool = spool_new(cfg, on_recovered, p, err, errlen)) == NULL) {
        publisher_free(p);
        return NULL;
    }
    return p;
}

void publisher_free(struct publisher *p)
{
    if (p == NULL)
        return;
    if (p->pending != NULL && strmap_count(p->pending) > 0)
        log_info("%zu usage events not yet acknowledged stay in the spool for the next start",
                 strmap_count(p->pending));
    if (p->zmq_ev != NULL)
        event_free(p->zmq_ev);
    if (p->flush_ev != NULL)
        event_free(p->flush_ev);
    if (p->resend_ev != NULL)
        event_free(p->resend_ev);
    zmq_link_close(p->link);
    if (p->dealer != NULL)
        zmq_close(p->dealer);
    if (p->ctx != NULL)
        zmq_ctx_term(p->ctx);
    strmap_free(p->pending, pending_free);
    spool_free(p->spool);
    free(p->out);
    free(p);
}
