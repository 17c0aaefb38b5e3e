/* writers.c - accountd's ledger writer threads (see writers.h).
 *
 * Design: with one writer, accountd and MariaDB took turns: accountd priced
 * and summed a batch while MariaDB waited, then waited while MariaDB wrote
 * it. With two, one writer prices and sums while MariaDB works on the
 * other's transaction, and MariaDB inserts two batches' log rows at once.
 * Each writer is a whole ledger (ledger.c) with its own connection, and its
 * batch is its own transaction: the exactly-once rules hold between writers
 * as between accountd instances (row locks in one global order; a request
 * id in two batches at once is inserted by one and counted once).
 *
 * A writer is idle, busy (committing) or done (its result waits for the
 * main thread, which acks and publishes it and then releases the writer).
 * The main thread owns every ZeroMQ socket; a writer only touches its
 * batch and its ledger, and says "done" through a pipe the main thread
 * polls together with the intake socket.
 */
#include "writers.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "runtime.h"

enum state { IDLE, BUSY, DONE };

struct slot {
    struct writer w;
    struct writers *ws;
    pthread_t thread;
    bool started;
    enum state state; /* guarded by ws->lock */
};

struct writers {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* a slot became BUSY, or quit */
    bool quit;
    int pipe[2];         /* [0] polled by the main thread */
    volatile const int *stop;
    struct slot *slots;
    size_t n;
};

static void *run(void *arg)
{
    struct slot *s = arg;
    struct writers *ws = s->ws;
    pthread_mutex_lock(&ws->lock);
    for (;;) {
        while (s->state != BUSY && !ws->quit)
            pthread_cond_wait(&ws->cond, &ws->lock);
        if (s->state != BUSY)
            break;
        pthread_mutex_unlock(&ws->lock);
        const struct settings *gen = s->w.gen; /* held by the main thread until released */
        s->w.rc = ledger_commit(s->w.ledger, gen->cfg, gen->prices, gen->cfg->log_retention_s,
                                s->w.batch.events, s->w.batch.n_events, ws->stop);
        pthread_mutex_lock(&ws->lock);
        s->state = DONE;
        ssize_t k;
        do /* the pipe only wakes the main thread: a full one is awake already */
            k = write(ws->pipe[1], "d", 1);
        while (k < 0 && errno == EINTR);
    }
    pthread_mutex_unlock(&ws->lock);
    return NULL;
}

struct writers *writers_new(size_t n, const struct db_config *db, struct ledger_shared *shared,
                            volatile const int *stop, char *err, size_t errlen)
{
    struct writers *ws = calloc(1, sizeof(*ws));
    if (ws == NULL || (ws->slots = calloc(n, sizeof(*ws->slots))) == NULL) {
        free(ws);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ws->pipe[0] = ws->pipe[1] = -1;
    ws->stop = stop;
    if (pthread_mutex_init(&ws->lock, NULL) != 0 || pthread_cond_init(&ws->cond, NULL) != 0 ||
        pipe2(ws->pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        snprintf(err, errlen, "writers: %s", strerror(errno));
        writers_free(ws);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        struct slot *s = &ws->slots[i];
        s->ws = ws;
        ws->n = i + 1;
        if ((s->w.ledger = ledger_new(db, shared, err, errlen)) == NULL) {
            writers_free(ws);
            return NULL;
        }
        if (runtime_thread_start(&s->thread, run, s) != 0) {
            snprintf(err, errlen, "writers: cannot start a thread");
            writers_free(ws);
            return NULL;
        }
        s->started = true;
    }
    return ws;
}

void writers_free(struct writers *ws)
{
    if (ws == NULL)
        return;
    pthread_mutex_lock(&ws->lock);
    ws->quit = true; /* a BUSY writer finishes its commit first */
    pthread_cond_broadcast(&ws->cond);
    pthread_mutex_unlock(&ws->lock);
    for (size_t i = 0; i < ws->n; i++) {
        struct slot *s = &ws->slots[i];
        if (s->started)
            pthread_join(s->thread, NULL);
        intake_batch_free(&s->w.batch);
        settings_unref(s->w.gen);
        ledger_free(s->w.ledger);
    }
    for (int k = 0; k < 2; k++)
        if (ws->pipe[k] >= 0)
            close(ws->pipe[k]);
    pthread_cond_destroy(&ws->cond);
    pthread_mutex_destroy(&ws->lock);
    free(ws->slots);
    free(ws);
}

int writers_fd(const struct writers *ws)
{
    return ws->pipe[0];
}

/* The first slot in state st, or NULL. */
static struct writer *find(struct writers *ws, enum state st)
{
    struct writer *w = NULL;
    pthread_mutex_lock(&ws->lock);
    for (size_t i = 0; w == NULL && i < ws->n; i++)
        if (ws->slots[i].state == st)
            w = &ws->slots[i].w;
    pthread_mutex_unlock(&ws->lock);
    return w;
}

struct writer *writers_idle(struct writers *ws)
{
    return find(ws, IDLE);
}

bool writers_busy(struct writers *ws)
{
    return find(ws, BUSY) != NULL;
}

struct writer *writers_done(struct writers *ws)
{
    char buf[64];
    while (read(ws->pipe[0], buf, sizeof(buf)) > 0) /* drained: DONE states say the rest */
        ;
    return find(ws, DONE);
}

void writers_submit(struct writers *ws, struct writer *w, struct intake_batch *b,
                    struct settings *gen)
{
    struct slot *s = (struct slot *)w; /* w is the first member */
    struct intake_batch spare = w->batch;
    pthread_mutex_lock(&ws->lock);
    w->batch = *b;
    w->gen = settings_ref(gen);
    s->state = BUSY;
    pthread_cond_broadcast(&ws->cond);
    pthread_mutex_unlock(&ws->lock);
    *b = spare;
}

void writers_release(struct writers *ws, struct writer *w)
{
    struct slot *s = (struct slot *)w;
    intake_batch_clear(&w->batch);
    settings_unref(w->gen);
    w->gen = NULL;
    pthread_mutex_lock(&ws->lock);
    s->state = IDLE;
    pthread_mutex_unlock(&ws->lock);
}
