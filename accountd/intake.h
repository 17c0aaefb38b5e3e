/* intake.h - receiving event batches from proxyd over ZeroMQ and acking them. */
#ifndef ACCOUNTD_INTAKE_H
#define ACCOUNTD_INTAKE_H

#include <stdbool.h>
#include <stddef.h>

#include "events.pb-c.h"

struct intake;

/* One sender's message inside a batch being committed. */
struct intake_msg {
    unsigned char identity[256]; /* the ROUTER routing id of the proxyd */
    size_t identity_len;
    Tollgate__EventBatch *batch;
};

/* Events gathered from one or more messages, committed together. */
struct intake_batch {
    struct intake_msg *msgs;
    size_t n_msgs, cap_msgs;
    Tollgate__UsageEvent **events;
    size_t n_events, cap_events;
};

struct curve_keypair;

/* Binds a ROUTER socket of ZeroMQ context ctx at endpoint, a CURVE server
 * with key pair server (NULL: plain, `curve: off`). NULL on error (err). */
struct intake *intake_new(void *ctx, const char *endpoint, int batch_max,
                          const struct curve_keypair *server, char *err, size_t errlen);
void intake_free(struct intake *in);

/* Waits up to timeout_ms for a message (not when b holds batch_max events
 * already) or for wake_fd (-1: none) to become readable, then adds to b
 * every message that is there, without waiting, up to batch_max events.
 * Returns how many events it added (0 on timeout, wake-up or signal).
 * Malformed messages are logged and dropped. */
size_t intake_collect(struct intake *in, struct intake_batch *b, int timeout_ms, int wake_fd);

/* Does b hold batch_max events (so it takes no more)? */
bool intake_full(const struct intake *in, const struct intake_batch *b);

/* A reloaded tollgate.accountd.batch_max_events. */
void intake_set_batch_max(struct intake *in, int batch_max);

/* Acknowledges the events of b to their senders (after the commit), one
 * ack per sender. Returns how many acks were sent; *failed counts those
 * that could not be (their senders resend). */
size_t intake_ack(struct intake *in, const struct intake_batch *b, size_t *failed);

/* Frees the decoded messages; b can be reused. */
void intake_batch_clear(struct intake_batch *b);
void intake_batch_free(struct intake_batch *b);

#endif
