"""at_date.py - runs a command with the wall clock set to another date.

    python3 tests/e2e/at_date.py 2027-01-15T12:00:00Z FIX.so -- CMD ARGS...

CMD and every process it starts (the test, MariaDB, the daemons) see the same
wall clock: now shifted by one offset (Debian's libfaketime, FAKETIME="+N"),
so their clocks agree with each other as they do on a real machine whose date
is that day. The monotonic clock is left real (timeouts keep their length);
FIX.so (tests/tools/faketime_fix.c) is preloaded first to mend libfaketime's
absolute monotonic sleeps. Before CMD runs, `date` and Python under the same
environment must both report the target day, or this fails: a test "at a
date" that ran today would prove nothing.

CMD runs under Debian's `faketime` wrapper, not with libfaketime merely
preloaded: the wrapper creates the semaphore and shared memory every
libfaketime process opens (FAKETIME_SHARED) and keeps them until CMD ends.
Preloaded alone, the first process to start creates them for itself, and
when it (or any fork of it that exits, such as a shell's $(...) subshell)
ends they are unlinked; a later process that inherited the name and whose own
pid names a stale semaphore then exits 1 ("sem_open failed and recreation
attempts failed") - seen as a one-in-a-hundred failure of `tr` inside
local-mariadb.sh under CI.
"""

import datetime
import os
import shutil
import subprocess
import sys

LIBFAKETIME = ("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
               "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
               "/usr/lib/faketime/libfaketime.so.1")


def parse_utc(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc)


def faked_env(target, fix):
    """The environment and the command prefix that run a command at target:
    the wrapper appends libfaketime to LD_PRELOAD, after FIX.so."""
    if shutil.which("faketime") is None or not any(os.path.exists(p) for p in LIBFAKETIME):
        sys.exit("at_date.py: libfaketime is not installed (Debian package faketime)")
    offset = int((target - datetime.datetime.now(datetime.timezone.utc)).total_seconds())
    env = dict(os.environ)
    for name in ("FAKETIME", "FAKETIME_SHARED"):
        env.pop(name, None)  # the wrapper warns about, and we want none of, an outer one
    env["LD_PRELOAD"] = " ".join(p for p in (fix, env.get("LD_PRELOAD")) if p)
    env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
    # libfaketime comes before the sanitizer runtime in the preload list.
    asan = env.get("ASAN_OPTIONS", "")
    env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "verify_asan_link_order=0"
    return env, ["faketime", "-f", "%+d" % offset]


def check_clock(env, prefix, target):
    day = target.strftime("%Y-%m-%d")
    seen = {
        "date": subprocess.run(prefix + ["date", "-u", "+%Y-%m-%d"], env=env, check=True,
                               capture_output=True, text=True).stdout.strip(),
        "python": subprocess.run(prefix + [sys.executable, "-c",
                                  "import datetime, time; time.sleep(0.01); print(datetime."
                                  "datetime.now(datetime.timezone.utc).date())"],
                                 env=env, check=True, capture_output=True,
                                 text=True).stdout.strip(),
    }
    wrong = {k: v for k, v in seen.items() if v != day}
    if wrong:
        sys.exit("at_date.py: the faked clock is not at %s: %s" % (day, wrong))


def main(argv):
    if len(argv) < 5 or argv[3] != "--":
        sys.exit("usage: at_date.py YYYY-MM-DDTHH:MM:SSZ FIX.so -- CMD ARGS...")
    target = parse_utc(argv[1])
    env, prefix = faked_env(target, os.path.abspath(argv[2]))  # CMD may change directory
    check_clock(env, prefix, target)
    print("at_date.py: wall clock at %s for: %s" % (argv[1], " ".join(argv[4:])), flush=True)
    return subprocess.run(prefix + argv[4:], env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv))
