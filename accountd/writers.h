/* writers.h - the ledger writer threads of one accountd: each commits one
 * batch at a time on its own MariaDB connection, while the main thread
 * keeps receiving the next batch and acknowledging finished ones. */
#ifndef ACCOUNTD_WRITERS_H
#define ACCOUNTD_WRITERS_H

#include <stddef.h>

#include "config.h"
#include "intake.h"
#include "ledger.h"
#include "settings.h"

struct writers;

/* One writer, as the main thread sees it. */
struct writer {
    struct intake_batch batch; /* the batch it commits (swapped in by writers_submit) */
    struct settings *gen;      /* the prices and settings it commits with (a reference) */
    struct ledger *ledger;     /* its own; ledger->spent after a commit */
    int rc;                    /* ledger_commit's result, once done */
};

/* Starts n writers, each with its own ledger (and connection to db). *stop
 * ends a commit that keeps failing (see ledger_commit). NULL on error (err). */
struct writers *writers_new(size_t n, const struct db_config *db, struct ledger_shared *shared,
                            volatile const int *stop, char *err, size_t errlen);

/* Waits for the commits in hand, stops the threads, frees everything. Not
 * while writers_busy: a commit stuck on MariaDB would never be joined. */
void writers_free(struct writers *ws);

/* Readable when a writer has finished a batch (poll it with the intake). */
int writers_fd(const struct writers *ws);

/* A writer with nothing to do, or NULL when all are busy or done. */
struct writer *writers_idle(struct writers *ws);

/* Hands *b to idle writer w, which starts committing it with gen's prices
 * and settings (w takes a reference until writers_release); *b gets w's
 * previous (empty) batch in exchange, so its memory is reused. */
void writers_submit(struct writers *ws, struct writer *w, struct intake_batch *b,
                    struct settings *gen);

/* A writer that has finished its batch (w->rc, w->batch, w->ledger->spent
 * stay put until writers_release), or NULL. */
struct writer *writers_done(struct writers *ws);

/* The main thread is done with w's result: w becomes idle. */
void writers_release(struct writers *ws, struct writer *w);

/* Is any writer busy with a batch (not yet done)? */
bool writers_busy(struct writers *ws);

#endif
