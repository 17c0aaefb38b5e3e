/*
 * faketime_fix.c - preloaded before Debian's libfaketime (0.9.10) by the
 * tests that run at a faked date (tests/e2e/at_date.py).
 *
 * Those tests fake the wall clock only (FAKETIME_DONT_FAKE_MONOTONIC=1):
 * timeouts, sleeps and waits must keep running on the real monotonic clock.
 * libfaketime 0.9.10 then still shifts the deadline of an absolute
 * clock_nanosleep() on CLOCK_MONOTONIC by the wall-clock offset, which makes
 * it fail with EINVAL (every time.sleep() of Python 3.11 does that). This
 * wrapper hands every clock but CLOCK_REALTIME straight to the kernel and
 * leaves the wall clock to libfaketime.
 */
#include <dlfcn.h>
#include <errno.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

typedef int (*nanosleep_fn)(clockid_t, int, const struct timespec *, struct timespec *);

int clock_nanosleep(clockid_t clock_id, int flags, const struct timespec *req,
                    struct timespec *rem)
{
    if (clock_id != CLOCK_REALTIME) {
        /* The raw system call: neither libfaketime nor glibc in between. */
        long r = syscall(SYS_clock_nanosleep, clock_id, flags, req, rem);
        return r == 0 ? 0 : errno;
    }
    static nanosleep_fn next;
    if (next == NULL) {
        next = (nanosleep_fn)dlsym(RTLD_NEXT, "clock_nanosleep");
        if (next == NULL)
            return ENOSYS;
    }
    return next(clock_id, flags, req, rem);
}
