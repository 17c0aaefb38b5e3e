"""procstat.py - CPU, memory and file counts of processes, read from /proc
(Linux), for the benchmarks: what each process of the stack used during a run,
and whether anything else shared the machine meanwhile."""

import os
import resource
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_ticks(pid):
    """utime + stime of a process (all its threads), in clock ticks; None if gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


def proc_status_kb(pid, field):
    """A 'kB' line of /proc/PID/status (VmHWM, VmRSS), in kB; None if unreadable."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def reset_hwm(pid):
    """Resets VmHWM to the current RSS (echo 5 > /proc/PID/clear_refs). True if it worked."""
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def system_cpu():
    """(busy, irq+softirq, total) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    idle = vals[3] + vals[4]  # idle + iowait
    total = sum(vals[:8])  # guest time is already in user
    return total - idle, vals[5] + vals[6], total


def all_ticks():
    """{pid: utime+stime} of every process."""
    out = {}
    for e in os.listdir("/proc"):
        if e.isdigit():
            t = proc_ticks(int(e))
            if t is not None:
                out[int(e)] = t
    return out


def busy_between(a, b, seconds, exclude=(), min_pct=10.0):
    """Processes that used at least min_pct of a core between two all_ticks()
    snapshots `seconds` apart, minus `exclude`: [(pct, pid, comm)], busiest first."""
    busy = []
    for pid, t in b.items():
        if pid in exclude or pid not in a:
            continue
        pct = (t - a[pid]) / CLK_TCK / seconds * 100
        if pct >= min_pct:
            try:
                comm = Path("/proc/%d/comm" % pid).read_text().strip()
            except OSError:
                comm = "?"
            busy.append((pct, pid, comm))
    return sorted(busy, reverse=True)


def busy_processes(seconds=1.0, min_pct=10.0):
    """Processes busy right now (over `seconds`), other than this one."""
    a = all_ticks()
    time.sleep(seconds)
    return busy_between(a, all_ticks(), seconds, exclude=(os.getpid(),), min_pct=min_pct)


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for new in ((max(want, soft), max(want, hard)), (min(max(want, soft), hard), hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, new)
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)
