/* spool_sync.c - the spool's group fsync thread (see spool_sync.h).
 *
 * Design: the event loop writes records and sets `dirty` (an atomic, no
 * lock on the hot path). The thread wakes every period, and when the flag
 * was set it takes a dup of the current segment's fd under the mutex and
 * fdatasyncs that. The dup is what makes it safe for the loop to switch
 * segments and close the old fd at any moment: the thread never touches an
 * fd the loop may close. A failed sync leaves the file dirty, so the next
 * tick tries again.
 */
#include "spool_sync.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

struct spool_sync {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled only to stop */
    int fd;            /* under mu */
    bool stop;         /* under mu */
    atomic_bool dirty;
    int period_ms;
};

/* Syncs the current file once, if it is dirty. */
static void sync_once(struct spool_sync *ss)
{
    if (!atomic_exchange(&ss->dirty, false))
        return;
    pthread_mutex_lock(&ss->mu);
    int fd = ss->fd >= 0 ? dup(ss->fd) : -1;
    int dup_errno = errno;
    bool had_file = ss->fd >= 0;
    pthread_mutex_unlock(&ss->mu);
    if (!had_file)
        return;
    if (fd < 0) {
        log_error("spool: cannot dup the segment for fdatasync: %s", strerror(dup_errno));
        atomic_store(&ss->dirty, true);
        return;
    }
    if (fdatasync(fd) != 0) {
        log_error("spool: fdatasync failed: %s", strerror(errno));
        atomic_store(&ss->dirty, true);
    }
    close(fd);
}

static void *sync_main(void *arg)
{
    struct spool_sync *ss = arg;
    struct timespec at;
    clock_gettime(CLOCK_MONOTONIC, &at);
    pthread_mutex_lock(&ss->mu);
    while (!ss->stop) {
        at.tv_nsec += (long)ss->period_ms * 1000000L;
        at.tv_sec += at.tv_nsec / 1000000000L;
        at.tv_nsec %= 1000000000L;
        while (!ss->stop && pthread_cond_timedwait(&ss->cv, &ss->mu, &at) != ETIMEDOUT)
            ;
        if (ss->stop)
            break;
        pthread_mutex_unlock(&ss->mu);
        sync_once(ss);
        pthread_mutex_lock(&ss->mu);
        clock_gettime(CLOCK_MONOTONIC, &at); /* a slow sync does not make the next one due */
    }
    pthread_mutex_unlock(&ss->mu);
    return NULL;
}

struct spool_sync *spool_sync_start(int period_ms, char *err, size_t errlen)
{
    struct spool_sync *ss = calloc(1, sizeof(*ss));
    pthread_condattr_t ca;
    if (ss == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ss->fd = -1;
    ss->period_ms = period_ms;
    atomic_init(&ss->dirty, false);
    if (pthread_mutex_init(&ss->mu, NULL) != 0) {
        snprintf(err, errlen, "spool: cannot create the sync mutex");
        free(ss);
        return NULL;
    }
    int rc = pthread_condattr_init(&ca);
    if (rc == 0) {
        rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        if (rc == 0)
            rc = pthread_cond_init(&ss->cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    if (rc != 0) {
        snprintf(err, errlen, "spool: cannot create the sync condition: %s", strerror(rc));
        pthread_mutex_destroy(&ss->mu);
        free(ss);
        return NULL;
    }
    if ((rc = pthread_create(&ss->thread, NULL, sync_main, ss)) != 0) {
        snprintf(err, errlen, "spool: cannot start the sync thread: %s", strerror(rc));
        pthread_cond_destroy(&ss->cv);
        pthread_mutex_destroy(&ss->mu);
        free(ss);
        return NULL;
    }
    return ss;
}

void spool_sync_file(struct spool_sync *ss, int fd)
{
    pthread_mutex_lock(&ss->mu);
    ss->fd = fd;
    pthread_mutex_unlock(&ss->mu);
}

void spool_sync_dirty(struct spool_sync *ss)
{
    atomic_store_explicit(&ss->dirty, true, memory_order_release);
}

void spool_sync_stop(struct spool_sync *ss)
{
    if (ss == NULL)
        return;
    pthread_mutex_lock(&ss->mu);
    ss->stop = true;
    pthread_cond_signal(&ss->cv);
    pthread_mutex_unlock(&ss->mu);
    pthread_join(ss->thread, NULL);
    pthread_cond_destroy(&ss->cv);
    pthread_mutex_destroy(&ss->mu);
    free(ss);
}
