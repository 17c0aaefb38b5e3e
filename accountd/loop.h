/* loop.h - accountd's main loop: batches in, commits out, acks back. */
#ifndef ACCOUNTD_LOOP_H
#define ACCOUNTD_LOOP_H

#include <stddef.h>

#include "config.h"
#include "intake.h"
#include "ledger.h"
#include "metrics.h"
#include "updates.h"
#include "writers.h"

/* The daemon's context, built in main.c. */
struct accountd {
    const struct config *cfg;
    struct intake *in;
    struct updates *up;
    struct writers *writers;
    struct ledger *chores;      /* resets and retention, on a connection of their own */
    struct metrics *metrics;
    int m_events, m_batches, m_resets;
    volatile const int *stop;   /* set by SIGTERM/SIGINT */
    size_t committed, batches;  /* events and transactions committed so far */
};

/* Declares the loop's counters in a->metrics. -1 on ENOMEM. */
int loop_declare_metrics(struct accountd *a);

/* Runs until *a->stop: gathers events from the intake into a batch, hands
 * it to an idle writer when it is full or batch_wait_ms old, acks and
 * publishes what the writers committed, and resets due budgets and deletes
 * expired log rows on their ticks. At stop, waits for the commits in hand
 * and acks them; events not yet handed over are not acked (resent). */
void loop_run(struct accountd *a);

#endif
