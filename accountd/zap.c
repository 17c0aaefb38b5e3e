/* zap.c - accountd's ZAP handler (ZeroMQ RFC 27): libzmq asks it, for each
 * peer that completes a CURVE handshake on one of accountd's sockets,
 * whether that peer's public key may talk. Only the keys of
 * tollgate.accountd.curve_client_public_keys may: an events endpoint open
 * to anyone would let anyone bill any key, and the updates endpoint would
 * show anyone every key's spend.
 *
 * One thread per ZeroMQ context, blocking on a REP socket; zmq_ctx_term
 * wakes it with ETERM, and it closes its socket and ends.
 */
#include "zap.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "clock.h"
#include "curve.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "runtime.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01" /* fixed by RFC 27 */
#define ZAP_FRAMES 7                          /* a CURVE request: 6 frames and the key */
#define KEY_BYTES 32

struct zap {
    void *rep;
    pthread_t thread;
    uint8_t (*keys)[KEY_BYTES];
    size_t n_keys;
    struct metrics *metrics;
    int m_denied;
    int64_t last_log_ms;
};

/* One request's frames; frames beyond ZAP_FRAMES are read and dropped. */
struct request {
    zmq_msg_t f[ZAP_FRAMES];
    size_t n;
};

static bool frame_is(const zmq_msg_t *m, const char *s)
{
    return zmq_msg_size((zmq_msg_t *)m) == strlen(s) &&
           memcmp(zmq_msg_data((zmq_msg_t *)m), s, strlen(s)) == 0;
}

/* The request's verdict: NULL accepted, else why not. */
static const char *judge(const struct zap *z, struct request *r)
{
    /* version, request id, domain, address, routing id, mechanism, key */
    if (r->n != ZAP_FRAMES || !frame_is(&r->f[0], "1.0"))
        return "malformed ZAP request";
    if (!frame_is(&r->f[5], "CURVE"))
        return "not CURVE";
    if (zmq_msg_size(&r->f[6]) != KEY_BYTES)
        return "malformed key";
    for (size_t i = 0; i < z->n_keys; i++)
        if (memcmp(zmq_msg_data(&r->f[6]), z->keys[i], KEY_BYTES) == 0)
            return NULL;
    return "public key not in tollgate.accountd.curve_client_public_keys";
}

static void note_denied(struct zap *z, struct request *r, const char *why)
{
    char key[CURVE_Z85_LEN + 1] = "-", addr[64] = "?";
    if (z->metrics != NULL)
        metrics_add(z->metrics, z->m_denied, NULL, 1);
    int64_t now = clock_ms();
    if (now - z->last_log_ms < 1000) /* a hostile peer must not flood the log */
        return;
    z->last_log_ms = now;
    if (r->n == ZAP_FRAMES && zmq_msg_size(&r->f[6]) == KEY_BYTES)
        zmq_z85_encode(key, zmq_msg_data(&r->f[6]), KEY_BYTES); /* a public key: not secret */
    if (r->n >= 4)
        snprintf(addr, sizeof(addr), "%.*s", (int)zmq_msg_size(&r->f[3]),
                 (const char *)zmq_msg_data(&r->f[3]));
    log_warn("ZeroMQ peer refused: %s (address %s, key %s)", why, addr, key);
}

static void release(struct request *r)
{
    for (size_t i = 0; i < r->n; i++)
        zmq_msg_close(&r->f[i]);
    r->n = 0;
}

/* Reads one request; -1 when the context is ending (ETERM) or the socket
 * fails otherwise. A signal (EINTR) is not an end: the thread blocks
 * signals, but a libzmq call may still return EINTR. */
static int receive(void *rep, struct request *r)
{
    int more = 1;
    r->n = 0;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        while (zmq_msg_recv(&m, rep, 0) < 0) {
            if (zmq_errno() != EINTR) {
                zmq_msg_close(&m);
                release(r);
                return -1;
            }
        }
        more = zmq_msg_more(&m);
        if (r->n < ZAP_FRAMES) {
            zmq_msg_init(&r->f[r->n]);
            zmq_msg_move(&r->f[r->n++], &m);
        }
        zmq_msg_close(&m);
    }
    return 0;
}

static int send_frame(void *rep, const void *data, size_t len, bool more)
{
    return zmq_send(rep, data, len, more ? ZMQ_SNDMORE : 0) < 0 ? -1 : 0;
}

/* version, request id, status code, status text, user id, metadata */
static int reply(void *rep, struct request *r, const char *why)
{
    const void *rid = r->n >= 2 ? zmq_msg_data(&r->f[1]) : "";
    size_t rid_len = r->n >= 2 ? zmq_msg_size(&r->f[1]) : 0;
    const char *code = why == NULL ? "200" : "400", *text = why == NULL ? "OK" : why;
    return send_frame(rep, "1.0", 3, true) < 0 || send_frame(rep, rid, rid_len, true) < 0 ||
                   send_frame(rep, code, 3, true) < 0 ||
                   send_frame(rep, text, strlen(text), true) < 0 ||
                   send_frame(rep, "", 0, true) < 0 || send_frame(rep, "", 0, false) < 0
               ? -1
               : 0;
}

/* Until the context ends. Any other end would leave the sockets without a
 * ZAP handler; they then refuse every client (ZMQ_ZAP_ENFORCE_DOMAIN), so
 * accountd is useless, and it exits to be restarted rather than run deaf. */
static void *serve(void *arg)
{
    struct zap *z = arg;
    struct request r;
    while (receive(z->rep, &r) == 0) {
        const char *why = judge(z, &r);
        if (why != NULL)
            note_denied(z, &r, why);
        int rc = reply(z->rep, &r, why);
        release(&r);
        if (rc < 0 && zmq_errno() == ETERM)
            break;
        if (rc < 0) /* that peer's handshake fails; the next request is read anyway */
            log_error("ZAP handler: cannot reply: %s", zmq_strerror(zmq_errno()));
    }
    if (zmq_errno() != ETERM) {
        log_error("ZAP handler ended: %s; accountd stops (refusing every peer otherwise)",
                  zmq_strerror(zmq_errno()));
        _exit(1);
    }
    zmq_close(z->rep);
    return NULL;
}

static int decode_keys(struct zap *z, const struct curve_config *c, char *err, size_t errlen)
{
    if ((z->keys = calloc(c->n_client_public_keys ? c->n_client_public_keys : 1,
                          sizeof(*z->keys))) == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < c->n_client_public_keys; i++)
        if (zmq_z85_decode(z->keys[i], c->client_public_keys[i]) == NULL) {
            snprintf(err, errlen, "tollgate.accountd.curve_client_public_keys: entry %zu is not "
                     "a Z85 key", i + 1);
            return -1;
        }
    z->n_keys = c->n_client_public_keys;
    return 0;
}

struct zap *zap_start(void *ctx, const struct curve_config *c, struct metrics *m, char *err,
                      size_t errlen)
{
    struct zap *z = calloc(1, sizeof(*z));
    if (z == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    z->metrics = m;
    if (m != NULL &&
        (z->m_denied = metrics_counter(m, "tollgate_accountd_zmq_peers_refused_total",
                                       "ZeroMQ peers refused by the ZAP handler (unknown CURVE "
                                       "key or no CURVE)", NULL)) < 0) {
        snprintf(err, errlen, "out of memory");
        free(z);
        return NULL;
    }
    if (decode_keys(z, c, err, errlen) < 0) {
        free(z->keys);
        free(z);
        return NULL;
    }
    /* Bound here, then handed to the thread: pthread_create is the full
     * memory barrier ZeroMQ asks for when a socket changes threads. */
    if ((z->rep = zmq_socket(ctx, ZMQ_REP)) == NULL || zmq_bind(z->rep, ZAP_ENDPOINT) != 0 ||
        runtime_thread_start(&z->thread, serve, z) != 0) {
        snprintf(err, errlen, "ZAP handler: %s", zmq_strerror(zmq_errno()));
        if (z->rep != NULL)
            zmq_close(z->rep);
        free(z->keys);
        free(z);
        return NULL;
    }
    return z;
}

void zap_join(struct zap *z)
{
    if (z == NULL)
        return;
    pthread_join(z->thread, NULL);
    free(z->keys);
    free(z);
}
