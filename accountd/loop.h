/* loop.h - accountd's main loop: batches in, commits out, acks back. */
#ifndef ACCOUNTD_LOOP_H
#define ACCOUNTD_LOOP_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "intake.h"
#include "ledger.h"
#include "metrics.h"
#include "settings.h"
#include "updates.h"
#include "writers.h"

/* The daemon's context, built in main.c. */
struct accountd {
    const struct config *cfg;   /* as started: what only a restart changes */
    struct settings *gen;       /* the current generation (main thread only) */
    bool budgets_synced;        /* gen's config budgets are in config_budgets */
    size_t instance;            /* index in tollgate.accountd.events */
    void *zmq_ctx;              /* of in and up, with its ZAP handler zap */
    struct zap *zap;
    struct intake *in;
    struct updates *up;
    struct writers *writers;
    struct ledger *chores;      /* resets and retention, on a connection of their own */
    struct metrics *metrics;
    int m_received, m_events, m_batches, m_batch_size, m_acks, m_ack_failures, m_resets,
        m_reloads;
    volatile const int *stop;   /* set by SIGTERM/SIGINT */
    volatile sig_atomic_t *reload; /* set by SIGHUP */
    size_t committed, batches;  /* events and transactions committed so far */
};

/* Declares the loop's metrics in a->metrics. -1 on ENOMEM. */
int loop_declare_metrics(struct accountd *a);

/* Runs until *a->stop: gathers events from the intake into a batch, hands
 * it to an idle writer when it is full or batch_wait_ms old, acks and
 * publishes what the writers committed, resets due budgets and deletes
 * expired log rows on their ticks, and reloads the settings on *a->reload.
 * At stop, waits up to shutdown_grace_ms for the commits in hand and acks
 * them; events not yet handed to a writer are not acked (proxyd resends
 * them). Returns false when a commit was still running at the deadline:
 * then the writers must not be joined (it is not acked either). */
bool loop_run(struct accountd *a);

#endif
