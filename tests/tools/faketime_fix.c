/*
 * faketime_fix.c - preloaded before Debian's libfaketime (0.9.10) by the
 * tests that run at a faked date (tests/e2e/at_date.py).
 *
 * Those tests fake the wall clock only (FAKETIME_DONT_FAKE_MONOTONIC=1):
 * timeouts, sleeps and waits keep running on the real monotonic clock. Yet
 * libfaketime 0.9.10 still moves two kinds of monotonic deadline by the wall
 * clock's offset:
 *   - an absolute clock_nanosleep() on CLOCK_MONOTONIC, which then fails with
 *     EINVAL (every time.sleep() of Python 3.11 is one);
 *   - pthread_cond_timedwait() on a condition variable made for
 *     CLOCK_MONOTONIC (reportd's reload, proxyd's spool sync), which then
 *     times out at once or never.
 * These wrappers hand those to glibc and the kernel unchanged and leave every
 * wall-clock call to libfaketime.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

typedef int (*nanosleep_fn)(clockid_t, int, const struct timespec *, struct timespec *);
typedef int (*cond_init_fn)(pthread_cond_t *, const pthread_condattr_t *);
typedef int (*cond_destroy_fn)(pthread_cond_t *);
typedef int (*cond_wait_fn)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);

int clock_nanosleep(clockid_t clock_id, int flags, const struct timespec *req,
                    struct timespec *rem)
{
    if (clock_id != CLOCK_REALTIME) {
        /* The raw system call: neither libfaketime nor glibc in between. */
        long r = syscall(SYS_clock_nanosleep, clock_id, flags, req, rem);
        return r == 0 ? 0 : errno;
    }
    static nanosleep_fn next;
    if (next == NULL && (next = (nanosleep_fn)dlsym(RTLD_NEXT, "clock_nanosleep")) == NULL)
        return ENOSYS;
    return next(clock_id, flags, req, rem);
}

/* The condition variables made for CLOCK_MONOTONIC: an open-addressing set of
 * their addresses (0: never used, 1: removed). A program with more than this
 * many at once is not one of ours; its extra ones keep libfaketime's wait. */
#define MONO_SLOTS 4096
static uintptr_t mono[MONO_SLOTS];
static pthread_mutex_t mono_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t slot_of(uintptr_t p) { return (p >> 4) % MONO_SLOTS; }

static void mono_set(pthread_cond_t *cond, int add)
{
    uintptr_t p = (uintptr_t)cond;
    pthread_mutex_lock(&mono_lock);
    for (size_t i = 0, s = slot_of(p); i < MONO_SLOTS; i++, s = (s + 1) % MONO_SLOTS) {
        if (mono[s] == p) {
            if (!add)
                mono[s] = 1;
            break;
        }
        if (mono[s] == 0 || (add && mono[s] == 1)) {
            if (add)
                mono[s] = p;
            break;
        }
    }
    pthread_mutex_unlock(&mono_lock);
}

static int mono_has(pthread_cond_t *cond)
{
    uintptr_t p = (uintptr_t)cond;
    int found = 0;
    pthread_mutex_lock(&mono_lock);
    for (size_t i = 0, s = slot_of(p); i < MONO_SLOTS && mono[s] != 0;
         i++, s = (s + 1) % MONO_SLOTS)
        if (mono[s] == p) {
            found = 1;
            break;
        }
    pthread_mutex_unlock(&mono_lock);
    return found;
}

static void *next_versioned(const char *name)
{
    void *f = dlvsym(RTLD_NEXT, name, "GLIBC_2.3.2");
    return f != NULL ? f : dlsym(RTLD_NEXT, name);
}

int pthread_cond_init(pthread_cond_t *cond, const pthread_condattr_t *attr)
{
    static cond_init_fn next;
    if (next == NULL && (next = (cond_init_fn)next_versioned("pthread_cond_init")) == NULL)
        return ENOSYS;
    int rc = next(cond, attr);
    clockid_t clock;
    if (rc == 0) /* a reused address may have been monotonic before */
        mono_set(cond, attr != NULL && pthread_condattr_getclock(attr, &clock) == 0 &&
                           clock == CLOCK_MONOTONIC);
    return rc;
}

int pthread_cond_destroy(pthread_cond_t *cond)
{
    static cond_destroy_fn next;
    if (next == NULL && (next = (cond_destroy_fn)next_versioned("pthread_cond_destroy")) == NULL)
        return ENOSYS;
    mono_set(cond, 0);
    return next(cond);
}

int pthread_cond_timedwait(pthread_cond_t *cond, pthread_mutex_t *mutex,
                           const struct timespec *abstime)
{
    if (mono_has(cond)) /* glibc's own wait on that clock: libfaketime does not wrap it */
        return pthread_cond_clockwait(cond, mutex, CLOCK_MONOTONIC, abstime);
    static cond_wait_fn next;
    if (next == NULL && (next = (cond_wait_fn)next_versioned("pthread_cond_timedwait")) == NULL)
        return ENOSYS;
    return next(cond, mutex, abstime);
}
