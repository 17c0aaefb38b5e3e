#!/usr/bin/env python3
"""proxy_bench.py - what proxyd costs on the request path, measured on loopback.

Starts one private Tollgate stack with tests/e2e/harness.py (MariaDB, fake-upstream,
accountd, reportd, proxyd), creates a virtual key through reportd's /key/generate,
and in one run measures, side by side:

  1. wrk POSTs of a small chat completion straight to fake-upstream ("direct") and
     through proxyd (virtual key, and master key), at 1 and at 32 connections:
     req/s, p50 and p99 latency (wrk --latency; a generated Lua script sends the
     body and headers and counts non-2xx answers in its `response` hook).
  2. proxyd's added latency = through proxyd - direct (p50, p99), at 1 connection.
  3. proxyd's peak RSS (VmHWM in /proc/PID/status) over the wrk runs.
  4. whether accountd keeps up: the spend_logs backlog when each proxyd run ends,
     and after the last one the wait (bounded by --catchup-timeout) until there is
     one row per answer proxyd gave, with both counts, the time it took, and
     MariaDB's statement counters (redelivered events, prepares per execute).
  5. streaming (run first, on a quiet stack): proxyd's VmHWM while --streams
     (1,000) slow-reading clients hold concurrent SSE streams (each about 4.6 s:
     20 one-word chunks 200 ms apart), and the time to the first SSE event,
     direct vs through proxyd (p50 over --ttfb-samples sequential streams) =
     streaming's added TTFB.

It also prints the CPU each process used during every wrk run (utime+stime
deltas from /proc/PID/stat; wrk's from its rusage) and per request, because
everything shares the machine's cores and that is what bounds the figures; and
names any foreign process that took CPU meanwhile. Targets are printed next to
the figures as PASS/MISS.

Run (after building, see tests/bench/README.md):

    ulimit -n 65536 2>/dev/null; tests/bench/proxy_bench.py     # about 2.5 min
    tests/bench/proxy_bench.py --seconds 3 --streams 200      # a quick look

Needs wrk (`apt-get install -y wrk`) and python3 (standard library only).
Binaries come from TOLLGATE_BIN or <repo>/build/bin, as for the e2e tests.
Exit status: 0 when the benchmark ran (targets missed or not; --strict makes a
MISS exit 1), 2 when it could not run.
"""

import argparse
import asyncio
import http.client
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "e2e"))
import harness  # noqa: E402  (tests/e2e/harness.py)

CLK_TCK = os.sysconf("SC_CLK_TCK")
UPSTREAM_MODEL = "llama-3.1-8b-instant"  # what proxyd sends upstream for model group llama3
CHAT_MESSAGES = [{"role": "user", "content": "hello"}]

# Targets (figure name -> (comparison, limit, unit)).
TARGET_ADDED_P50_US = 50
TARGET_ADDED_P99_US = 250
TARGET_RPS_32 = 10000
TARGET_STREAM_RSS_MB = 50
TARGET_STREAM_TTFB_ADDED_MS = 1.0


def die(msg, code=2):
    print("proxy_bench: " + msg, file=sys.stderr)
    sys.exit(code)


# ------------------------------------------------------------------ /proc

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


def mariadb_pid(stack):
    try:
        return int((stack.db_dir / "mysqld.pid").read_text().strip())
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------ wrk

LUA_TEMPLATE = r"""-- generated by tests/bench/proxy_bench.py
wrk.method = "POST"
wrk.body = [==[%(body)s]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"

non2xx = 0            -- a global of each thread's Lua state, read back in done()
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do
    bad = bad + t:get("non2xx")
  end
  local e = summary.errors
  io.write(string.format(
    'PROXY_BENCH {"requests": %%d, "duration_us": %%d, "non2xx": %%d, "p50_us": %%d, ' ..
    '"p90_us": %%d, "p99_us": %%d, "p999_us": %%d, "max_us": %%d, "mean_us": %%.1f, ' ..
    '"err_connect": %%d, "err_read": %%d, "err_write": %%d, "err_timeout": %%d, "err_status": %%d}\n',
    summary.requests, summary.duration, bad, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean,
    e.connect, e.read, e.write, e.timeout, e.status))
end
"""


def write_lua(directory, name, body, key):
    path = Path(directory) / (name + ".lua")
    path.write_text(LUA_TEMPLATE % {"body": json.dumps(body, separators=(",", ":")), "key": key})
    return path


def run_wrk(url, lua, conns, threads, seconds, out_dir, label):
    """Runs wrk; returns (parsed PROXY_BENCH dict, wrk's CPU seconds, wall seconds)."""
    threads = max(1, min(threads, conns))
    cmd = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds, "--latency",
           "--timeout", "5s", "-s", str(lua), url]
    out_path = Path(out_dir) / ("wrk-%s.out" % label)
    t0 = time.monotonic()
    with open(out_path, "wb") as out:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        try:
            _, status, ru = os.wait4(p.pid, 0)
        except BaseException:
            p.kill()
            p.wait()
            raise
        p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - t0
    text = out_path.read_text(errors="replace")
    result = None
    for line in text.splitlines():
        if line.startswith("PROXY_BENCH "):
            result = json.loads(line[len("PROXY_BENCH "):])
    if p.returncode != 0 or result is None:
        raise RuntimeError("wrk failed (exit %s): %s\n%s" % (p.returncode, " ".join(cmd), text))
    return result, ru.ru_utime + ru.ru_stime, wall


# ------------------------------------------------------------------ streams

def stream_request_bytes(port, key, body, close):
    data = json.dumps(body).encode()
    head = ("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
            "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\n%s\r\n" % (port, key, len(data),
                                              "Connection: close\r\n" if close else ""))
    return head.encode() + data


def ttfb_samples(port, key, body, n, warmup=5):
    """n sequential streams on one keep-alive connection; for each, seconds to the
    response headers and to the first SSE data event."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    data = json.dumps(body)
    headers = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
    first_event, first_header = [], []
    try:
        for i in range(n + warmup):
            t0 = time.perf_counter()
            conn.request("POST", "/v1/chat/completions", data, headers)
            resp = conn.getresponse()
            t_head = time.perf_counter()
            if resp.status != 200:
                raise RuntimeError("stream answered %d: %r" % (resp.status, resp.read()[:300]))
            buf = b""
            t_event = None
            while True:
                chunk = resp.read1(65536)
                if not chunk:
                    break
                buf += chunk
                if t_event is None and b"data:" in buf:
                    t_event = time.perf_counter()
            if t_event is None or b"[DONE]" not in buf:
                raise RuntimeError("stream without data events: %r" % buf[:300])
            if i >= warmup:
                first_header.append(t_head - t0)
                first_event.append(t_event - t0)
    finally:
        conn.close()
    return first_header, first_event


async def one_slow_stream(port, request, read_bytes, read_delay, result):
    t0 = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as e:
        result["errors"].append("connect: %s" % e)
        return
    try:
        writer.write(request)
        await writer.drain()
        buf = bytearray()
        t_first = None
        while True:
            chunk = await asyncio.wait_for(reader.read(read_bytes), 60)
            if not chunk:
                break
            if t_first is None:
                t_first = time.monotonic()
            buf += chunk
            await asyncio.sleep(read_delay)  # a slow reader
        t_end = time.monotonic()
        ok = buf.startswith(b"HTTP/1.1 200") and b"[DONE]" in buf and buf.endswith(b"0\r\n\r\n")
        if ok:
            result["ok"] += 1
            result["spans"].append((t_first, t_end))
            result["durations"].append(t_end - t0)
        else:
            result["errors"].append("bad stream: %r" % bytes(buf[:200]))
    except (OSError, asyncio.TimeoutError) as e:
        result["errors"].append("%s: %s" % (type(e).__name__, e))
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


async def many_slow_streams(port, key, body, n, read_bytes, read_delay, batch=100, gap=0.02):
    request = stream_request_bytes(port, key, body, close=True)
    result = {"ok": 0, "errors": [], "spans": [], "durations": []}
    tasks = []
    for i in range(n):
        tasks.append(asyncio.ensure_future(
            one_slow_stream(port, request, read_bytes, read_delay, result)))
        if (i + 1) % batch == 0:
            await asyncio.sleep(gap)  # stay under the listen backlog
    await asyncio.gather(*tasks)
    return result


def max_overlap(spans):
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans],
                    key=lambda e: (e[0], e[1]))
    cur = best = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


class Sampler(threading.Thread):
    """Samples proxyd's RSS and fd count and fake-upstream's active streams."""

    def __init__(self, stack, pid, interval=0.2):
        super().__init__(daemon=True)
        self.stack, self.pid, self.interval = stack, pid, interval
        self.stop_ev = threading.Event()
        self.max_rss = self.max_fds = self.max_active = 0

    def run(self):
        while not self.stop_ev.is_set():
            self.max_rss = max(self.max_rss, proc_status_kb(self.pid, "VmRSS") or 0)
            self.max_fds = max(self.max_fds, fd_count(self.pid) or 0)
            try:
                st = upstream_stats(self.stack)
                self.max_active = max(self.max_active, st["active_streams"])
            except Exception:
                pass
            self.stop_ev.wait(self.interval)

    def stop(self):
        self.stop_ev.set()
        self.join()


# ------------------------------------------------------------------ stack helpers

def upstream_stats(stack):
    st, _, body = stack.http("GET", stack.upstream_port, "/stats")
    if st != 200:
        raise RuntimeError("fake-upstream /stats answered %d" % st)
    return {k: int(v) for k, v in body.items()}


def ledger_rows(stack):
    return int(stack.sql_value("SELECT COUNT(*) FROM spend_logs"))


def wait_ledger(stack, expected, timeout):
    """Polls spend_logs until it holds `expected` rows; returns (rows, seconds, caught_up)."""
    t0 = time.monotonic()
    while True:
        rows = ledger_rows(stack)
        waited = time.monotonic() - t0
        if rows >= expected or waited >= timeout:
            return rows, waited, rows >= expected
        time.sleep(0.5)


DB_COUNTERS = ("Com_insert", "Com_update", "Com_stmt_prepare", "Com_stmt_execute", "Com_commit")


def db_status(stack):
    """MariaDB's global statement counters (SHOW GLOBAL STATUS) as ints."""
    rows = stack.sql("SHOW GLOBAL STATUS WHERE Variable_name IN (%s)"
                     % ", ".join("'%s'" % c for c in DB_COUNTERS))
    return {name: int(value) for name, value in rows}


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for new in ((max(want, soft), max(want, hard)), (min(max(want, soft), hard), hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, new)
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# ------------------------------------------------------------------ the benchmark

class Bench:
    def __init__(self, args):
        self.a = args
        self.runs = []      # wrk runs: label, target, conns, wrk result, cpu, ledger
        self.expected = 0   # ledger rows there should be: one per answer proxyd gave
        self.wrk_2xx = 0    # 2xx answers wrk counted through proxyd
        self.other_2xx = 0  # 2xx answers through proxyd outside wrk (smoke, TTFB, streams)

    def pids(self, s):
        p = {name: s.daemon(name).proc.pid for name in
             ("fake-upstream", "proxyd", "accountd", "reportd")}
        p["mariadbd"] = mariadb_pid(s)
        return p

    def through_proxyd(self, s, fn):
        """Runs fn(); what fake-upstream answered meanwhile came through proxyd and is
        one more ledger row each."""
        st0 = upstream_stats(s)
        try:
            return fn()
        finally:
            time.sleep(0.3)  # requests a client dropped at its end still go upstream
            self.expected += upstream_stats(s)["requests"] - st0["requests"]

    def settle(self, s, timeout):
        """Waits (at most timeout s) for accountd to write every row owed so far."""
        return wait_ledger(s, self.expected, timeout)

    def one_run(self, s, label, target, conns, url, lua, seconds, warmup=False, settle=None):
        pids = self.pids(s)
        perf = None
        if self.a.perf and target == "proxyd-vkey" and conns == self.a.connections and not warmup:
            perf = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "999", "-g",
                                     "-o", self.a.perf, "-p",
                                     ",".join(str(p) for p in pids.values() if p)],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            time.sleep(0.5)
        proxied = target != "direct"
        st0 = upstream_stats(s) if proxied else None
        rows0 = ledger_rows(s) if proxied else None
        every0 = all_ticks()
        before = {n: proc_ticks(p) for n, p in pids.items() if p}
        sys0, t0 = system_cpu(), time.monotonic()
        res, wrk_cpu, _ = run_wrk(url, lua, conns, self.a.wrk_threads, seconds, self.tmp,
                                  label.replace(" ", "_"))
        sys1, wall = system_cpu(), time.monotonic() - t0
        after = {n: proc_ticks(p) for n, p in pids.items() if p}
        rows1 = ledger_rows(s) if proxied else None
        foreign = busy_between(every0, all_ticks(), wall,
                               exclude=set(pids.values()) | {os.getpid()} |
                               ({perf.pid} if perf is not None else set()))
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait(60)
        elapsed = res["duration_us"] / 1e6
        cpu = {n: (after[n] - before[n]) / CLK_TCK / wall * 100
               for n in before if before[n] is not None and after.get(n) is not None}
        cpu["wrk"] = wrk_cpu / wall * 100
        span = max(1, sys1[2] - sys0[2]) / os.cpu_count() / 100
        cpu["all"] = (sys1[0] - sys0[0]) / span
        cpu["irq"] = (sys1[1] - sys0[1]) / span
        cpu["other"] = max(0.0, cpu["all"] - sum(v for k, v in cpu.items() if k != "all"))
        run = {"label": label, "target": target, "conns": conns, "seconds": elapsed,
               "wrk": res, "rps": res["requests"] / elapsed, "cpu": cpu, "warmup": warmup,
               "foreign": foreign}
        note = ""
        if proxied:
            time.sleep(0.3)  # requests wrk dropped at its stop still go upstream
            run["forwarded"] = upstream_stats(s)["requests"] - st0["requests"]
            self.expected += run["forwarded"]
            if warmup:
                self.other_2xx += res["requests"] - res["non2xx"]
            else:
                self.wrk_2xx += res["requests"] - res["non2xx"]
            L = run["ledger"] = {"expected": self.expected, "rows_at_start": rows0,
                                 "rows_at_end": rows1, "settle_s": None}
            note = "  ledger backlog at the end %d" % (self.expected - rows1)
            if settle:
                rows, waited, ok = self.settle(s, settle)
                L.update(settle_s=waited, settled=ok, rows_after_settle=rows)
                note += (", written %.1f s later" % waited if ok else
                         ", still %d after %.0f s" % (self.expected - rows, waited))
        if not warmup:
            self.runs.append(run)
        print("  %-22s c=%-3d %8.0f req/s  p50 %6d us  p99 %6d us  non2xx %d%s" % (
            label, conns, run["rps"], res["p50_us"], res["p99_us"], res["non2xx"], note),
            flush=True)
        return run

    def run(self):
        a = self.a
        nofile = raise_nofile(max(65536, 4 * a.streams + 1024))
        if nofile[0] < 2 * a.streams + 512:
            die("open file limit %d is too low for %d streams (proxyd needs 2 per stream): "
                "run `ulimit -n 65536` first or pass a smaller --streams" % (nofile[0], a.streams))
        self.nofile = nofile
        self.busy_before = busy_processes()
        for pct, pid, comm in self.busy_before:
            print("proxy_bench: WARNING: the machine is not idle: %s (pid %d) uses %.0f%% of a "
                  "core; the figures will be lower" % (comm, pid, pct), file=sys.stderr)
        self.tmp = tempfile.mkdtemp(prefix="tg-bench-")
        spool = None
        options = {}
        if a.spool_dir:
            spool = tempfile.mkdtemp(prefix="tg-bench-spool-", dir=a.spool_dir)
            options["tollgate"] = {"proxyd": {"spool_dir": spool}}
        try:
            with harness.Stack(**options) as s:
                self.measure(s)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
            if spool:
                shutil.rmtree(spool, ignore_errors=True)

    def measure(self, s):
        a = self.a
        t_start = time.monotonic()
        proxyd_pid = s.daemon("proxyd").proc.pid
        st, _, body = s.report("POST", "/key/generate", {"key_alias": "bench"},
                               key=harness.MASTER_KEY)
        if st != 200 or not isinstance(body, dict) or "key" not in body:
            raise RuntimeError("/key/generate answered %s: %r" % (st, body))
        vkey = body["key"]
        chat = {"model": "llama3", "messages": CHAT_MESSAGES}
        direct_body = {"model": UPSTREAM_MODEL, "messages": CHAT_MESSAGES}
        # one request each way: the stack answers as expected
        st, _, b = s.http("POST", s.upstream_port, "/v1/chat/completions", direct_body,
                          key=s.upstream_key)
        if st != 200:
            raise RuntimeError("fake-upstream answered %d: %r" % (st, b))
        for key in (vkey, harness.MASTER_KEY):
            st, _, b = s.proxy("POST", "/v1/chat/completions", chat, key=key)
            if st != 200:
                raise RuntimeError("proxyd answered %d: %r" % (st, b))
        self.expected = self.other_2xx = 2

        up_url = "http://127.0.0.1:%d/v1/chat/completions" % s.upstream_port
        px_url = "http://127.0.0.1:%d/v1/chat/completions" % s.proxyd_port
        lua = {"direct": write_lua(self.tmp, "direct", direct_body, s.upstream_key),
               "proxyd-vkey": write_lua(self.tmp, "proxyd-vkey", chat, vkey),
               "proxyd-master": write_lua(self.tmp, "proxyd-master", chat, harness.MASTER_KEY)}
        url = {"direct": up_url, "proxyd-vkey": px_url, "proxyd-master": px_url}

        print("warm-up:", flush=True)
        self.one_run(s, "direct", "direct", 32, up_url, lua["direct"], 1, warmup=True)
        self.one_run(s, "proxyd", "proxyd-vkey", 32, px_url, lua["proxyd-vkey"], 1, warmup=True,
                     settle=a.settle_timeout)

        # Streaming first, on a quiet stack: neither the TTFB nor the RSS should carry the
        # wrk runs' ledger backlog (proxyd keeps every unacknowledged event in memory).
        tbody_direct = {"model": UPSTREAM_MODEL, "stream": True, "messages": CHAT_MESSAGES,
                        "mock_content": "token", "mock_chunks": 3}
        tbody_proxy = dict(tbody_direct, model="llama3")
        print("streaming TTFB (%d sequential streams each way) ..." % a.ttfb_samples, flush=True)
        d_head, d_event = ttfb_samples(s.upstream_port, s.upstream_key, tbody_direct,
                                       a.ttfb_samples)
        p_head, p_event = self.through_proxyd(
            s, lambda: ttfb_samples(s.proxyd_port, vkey, tbody_proxy, a.ttfb_samples))
        self.other_2xx += len(p_event) + 5  # + the warm-up streams
        self.ttfb = {"direct_event": d_event, "proxyd_event": p_event,
                     "direct_head": d_head, "proxyd_head": p_head}

        sbody = {"model": "llama3", "stream": True, "messages": CHAT_MESSAGES,
                 "mock_content": "token", "mock_chunks": a.stream_chunks,
                 "mock_chunk_delay_ms": a.stream_chunk_delay_ms}
        print("%d concurrent streams (%d chunks, %d ms apart) ..."
              % (a.streams, a.stream_chunks, a.stream_chunk_delay_ms), flush=True)
        rss_before = proc_status_kb(proxyd_pid, "VmRSS")
        reset_ok = reset_hwm(proxyd_pid)
        sampler = Sampler(s, proxyd_pid)
        sampler.start()
        t0 = time.monotonic()
        try:
            res = self.through_proxyd(s, lambda: asyncio.run(many_slow_streams(
                s.proxyd_port, vkey, sbody, a.streams, a.stream_read_bytes,
                a.stream_read_delay_ms / 1000.0)))
        finally:
            sampler.stop()
        self.other_2xx += res["ok"]
        self.streams = {"ok": res["ok"], "errors": res["errors"], "wall": time.monotonic() - t0,
                        "max_overlap": max_overlap(res["spans"]),
                        "median_duration": statistics.median(res["durations"])
                        if res["durations"] else 0,
                        "hwm_kb": proc_status_kb(proxyd_pid, "VmHWM"), "reset_ok": reset_ok,
                        "rss_before_kb": rss_before,
                        "rss_after_kb": proc_status_kb(proxyd_pid, "VmRSS"),
                        "sampled_max_rss_kb": sampler.max_rss, "max_fds": sampler.max_fds,
                        "max_upstream_active": sampler.max_active}
        self.settle(s, a.settle_timeout)

        # wrk: the direct runs first, so no ledger work of a proxyd run lands in them
        print("wrk runs (%d s each, wrk -t%d):" % (a.seconds, a.wrk_threads), flush=True)
        self.db0 = db_status(s)
        self.rss_before_wrk_kb = proc_status_kb(proxyd_pid, "VmRSS")
        self.hwm_reset = reset_hwm(proxyd_pid)
        plan = [("direct", 1), ("direct", a.connections)]
        for c in (1, a.connections):
            plan += [("proxyd-vkey", c)] + ([] if a.no_master else [("proxyd-master", c)])
        for i, (t, c) in enumerate(plan):
            last = i == len(plan) - 1
            self.one_run(s, t, t, c, url[t], lua[t], a.seconds,
                         settle=None if last or t == "direct" else a.settle_timeout)
        self.t_end = time.monotonic()
        self.hwm_wrk_kb = proc_status_kb(proxyd_pid, "VmHWM")
        self.rss_after_wrk_kb = proc_status_kb(proxyd_pid, "VmRSS")

        # accountd keeping up: every answer proxyd gave must become one ledger row
        rows_end = ledger_rows(s)
        _, waited, ok = self.settle(s, a.catchup_timeout)
        self.db1 = db_status(s)
        rows, ok2xx = (int(v) for v in s.sql(
            "SELECT COUNT(*), COALESCE(SUM(http_status BETWEEN 200 AND 299), 0) "
            "FROM spend_logs")[0])
        ok = ok and rows >= self.expected
        self.ledger = {"expected": self.expected, "rows_at_end": rows_end, "rows": rows,
                       "rows_2xx": ok2xx, "waited": waited, "caught_up": ok,
                       "wrk_2xx": self.wrk_2xx, "other_2xx": self.other_2xx}
        print("ledger: %d rows (%d with a 2xx status) for %d answers proxyd gave, %.1f s after "
              "the last run" % (rows, ok2xx, self.expected, waited), flush=True)
        self.elapsed = time.monotonic() - t_start


# ------------------------------------------------------------------ report

def verdict(ok):
    return "PASS" if ok else "MISS"


def fmt_ms(seconds):
    return "%.3f ms" % (seconds * 1000)


def report(b, args):
    a = args
    misses = []
    by = {(r["target"], r["conns"]): r for r in b.runs}
    targets = ["direct", "proxyd-vkey"] + ([] if a.no_master else ["proxyd-master"])
    names = {"direct": "direct (fake-upstream)", "proxyd-vkey": "proxyd, virtual key",
             "proxyd-master": "proxyd, master key"}

    print()
    print("=" * 100)
    print("Tollgate proxy benchmark  (%d CPUs, wrk -t%d, %d s per run, RLIMIT_NOFILE %d%s)"
          % (os.cpu_count(), a.wrk_threads, a.seconds, b.nofile[0],
             ", spool under " + a.spool_dir if a.spool_dir else ""))
    print("=" * 100)
    print()
    print("1. Throughput and latency (non-streaming POST /v1/chat/completions)")
    hdr = "   %-24s" % ""
    for c in (1, a.connections):
        hdr += " | %-31s" % ("%d connection%s" % (c, "s" if c > 1 else ""))
    print(hdr)
    print("   %-24s" % "" + (" | %9s %10s %10s" % ("req/s", "p50", "p99")) * 2)
    for t in targets:
        line = "   %-24s" % names[t]
        for c in (1, a.connections):
            r = by[(t, c)]
            line += " | %9.0f %7d us %7d us" % (r["rps"], r["wrk"]["p50_us"], r["wrk"]["p99_us"])
        print(line)
    for t in targets:
        for c in (1, a.connections):
            w = by[(t, c)]["wrk"]
            errs = sum(w[k] for k in ("err_connect", "err_read", "err_write", "err_timeout"))
            if w["non2xx"] or errs:
                print("   ! %s c=%d: %d non-2xx answers, %d socket errors"
                      % (names[t], c, w["non2xx"], errs))

    print()
    print("2. proxyd's added latency at 1 connection (through proxyd - direct)")
    for t in targets[1:]:
        d, p = by[("direct", 1)]["wrk"], by[(t, 1)]["wrk"]
        a50, a99 = p["p50_us"] - d["p50_us"], p["p99_us"] - d["p99_us"]
        ok50, ok99 = a50 <= TARGET_ADDED_P50_US, a99 <= TARGET_ADDED_P99_US
        print("   %-24s p50 %+6d us  (target <= %d us)  %s     p99 %+6d us  (target <= %d us)  %s"
              % (names[t], a50, TARGET_ADDED_P50_US, verdict(ok50), a99, TARGET_ADDED_P99_US,
                 verdict(ok99)))
        if t == "proxyd-vkey":
            misses += [] if ok50 else ["added p50"]
            misses += [] if ok99 else ["added p99"]
    r32 = by[("proxyd-vkey", a.connections)]
    ok = r32["rps"] >= TARGET_RPS_32
    misses += [] if ok else ["req/s"]
    print("   throughput through proxyd (virtual key, accounting on) at %d connections: "
          "%.0f req/s  (target >= %d)  %s" % (a.connections, r32["rps"], TARGET_RPS_32,
                                              verdict(ok)))

    print()
    print("3. proxyd peak RSS (VmHWM) over the wrk runs: %.1f MB  (RSS %.1f MB before them, "
          "%.1f MB after%s)" % (b.hwm_wrk_kb / 1024, b.rss_before_wrk_kb / 1024,
                                b.rss_after_wrk_kb / 1024,
                                "" if b.hwm_reset else "; VmHWM not reset: peak since start"))

    print()
    print("4. accountd keeping up (spend_logs rows vs answers proxyd gave)")
    print("   %-24s %5s %10s %10s %12s %14s" % ("run", "conns", "2xx (wrk)", "forwarded",
                                              "backlog@end", "then written"))
    for r in b.runs:
        if "ledger" not in r:
            continue
        L = r["ledger"]
        if L["settle_s"] is None:
            then = "(final wait)"
        elif L["settled"]:
            then = "in %.1f s" % L["settle_s"]
        else:
            then = "%d left @%.0fs" % (L["expected"] - L["rows_after_settle"], L["settle_s"])
        print("   %-24s %5d %10d %10d %12d %14s" % (
            names[r["target"]], r["conns"], r["wrk"]["requests"] - r["wrk"]["non2xx"],
            r["forwarded"], L["expected"] - L["rows_at_end"], then))
    L = b.ledger
    print("   after the last run: %d rows missing; %s"
          % (L["expected"] - L["rows_at_end"],
             "all written %.1f s later" % L["waited"] if L["caught_up"] else
             "still %d missing after %.0f s" % (L["expected"] - L["rows"], L["waited"])))
    print("   total: %d ledger rows (%d with a 2xx status) for %d answers proxyd gave: wrk counted "
          "%d 2xx, the warm-up/smoke/TTFB/stream requests %d, the rest were in flight when wrk stopped "
          "(proxyd answered and billed them)  %s"
          % (L["rows"], L["rows_2xx"], L["expected"], L["wrk_2xx"], L["other_2xx"],
             verdict(L["caught_up"] and L["rows"] == L["expected"])))
    d = {k: b.db1[k] - b.db0[k] for k in b.db0}
    starts = [r["ledger"]["rows_at_start"] for r in b.runs if "ledger" in r]
    new_rows = L["rows"] - min(starts) if starts else 0
    if new_rows > 0:
        print("   MariaDB during the wrk runs and the wait: %d INSERTs for %d new rows (%d "
              "redelivered events), %d UPDATEs, %d statements prepared for %d executed, %d commits"
              % (d["Com_insert"], new_rows, d["Com_insert"] - new_rows, d["Com_update"],
                 d["Com_stmt_prepare"], d["Com_stmt_execute"], d["Com_commit"]))
    if not (L["caught_up"] and L["rows"] == L["expected"]):
        misses.append("ledger")

    print()
    print("5. Streaming")
    S = b.streams
    mb = S["hwm_kb"] / 1024
    ok = mb <= TARGET_STREAM_RSS_MB and S["ok"] == a.streams
    misses += [] if ok else ["stream RSS"]
    print("   %d concurrent streams: %d completed, %d failed; at most %d open at once (client "
          "side), %d at the upstream; median stream %.1f s"
          % (a.streams, S["ok"], len(S["errors"]), S["max_overlap"], S["max_upstream_active"],
             S["median_duration"]))
    print("   proxyd VmHWM during the streams: %.1f MB  (target <= %d MB)  %s   [RSS before %.1f MB, "
          "after %.1f MB, %d fds at peak%s]"
          % (mb, TARGET_STREAM_RSS_MB, verdict(ok), S["rss_before_kb"] / 1024,
             S["rss_after_kb"] / 1024, S["max_fds"],
             "" if S["reset_ok"] else "; VmHWM could not be reset: peak since start"))
    for e in S["errors"][:5]:
        print("   ! " + e)
    T = b.ttfb
    dm, pm = statistics.median(T["direct_event"]), statistics.median(T["proxyd_event"])
    ok = pm - dm < TARGET_STREAM_TTFB_ADDED_MS / 1000
    misses += [] if ok else ["stream TTFB"]
    print("   time to first SSE event, p50 of %d: direct %s, through proxyd %s -> added %s  "
          "(target < %.0f ms)  %s" % (len(T["direct_event"]), fmt_ms(dm), fmt_ms(pm),
                                      fmt_ms(pm - dm), TARGET_STREAM_TTFB_ADDED_MS, verdict(ok)))
    print("   (time to response headers, p50: direct %s, through proxyd %s)"
          % (fmt_ms(statistics.median(T["direct_head"])),
             fmt_ms(statistics.median(T["proxyd_head"]))))

    print()
    print("CPU during each wrk run, %% of one core (%d cores = %d%%):" % (os.cpu_count(),
                                                                       100 * os.cpu_count()))
    procs = ["wrk", "fake-upstream", "proxyd", "accountd", "mariadbd", "reportd", "irq", "other",
             "all"]
    print("   %-24s %5s" % ("run", "conns") + "".join(" %8s" % p[:8] for p in procs))
    for r in b.runs:
        print("   %-24s %5d" % (names[r["target"]], r["conns"]) +
              "".join(" %7.0f%%" % r["cpu"].get(p, 0) for p in procs))
    print("   (irq = hard and soft interrupts, mostly loopback TCP; other = kernel threads, this "
          "script, any foreign process;\n    all = busy time from /proc/stat)")
    for r in b.runs:
        if r["foreign"]:
            print("   ! %s c=%d shared the machine with: %s" % (
                names[r["target"]], r["conns"], ", ".join(
                    "%s (pid %d) %.0f%%" % (c, p, pct) for pct, p, c in r["foreign"][:4])))

    print()
    print("CPU per request in us (accountd, mariadbd: per ledger row committed during the run);")
    print("ceiling = %d cores / total: the req/s this machine could carry if nothing else ran:"
          % os.cpu_count())
    parts = ["proxyd", "accountd", "mariadbd", "fake-upstream", "wrk", "irq"]
    print("   %-24s %5s" % ("run", "conns") + "".join(" %9s" % n[:9] for n in parts) +
          " %9s %9s" % ("total", "ceiling"))
    for r in b.runs:
        if r["rps"] <= 0:
            continue
        rows_rate = 0
        if "ledger" in r:
            L = r["ledger"]
            rows_rate = (L["rows_at_end"] - L["rows_at_start"]) / r["seconds"]
        us = []
        for n in parts:
            rate = rows_rate if n in ("accountd", "mariadbd") else r["rps"]
            us.append(r["cpu"].get(n, 0) / 100 * 1e6 / rate if rate > 0 else 0)
        print("   %-24s %5d" % (names[r["target"]], r["conns"]) +
              "".join(" %9.0f" % u for u in us) +
              " %9.0f %9.0f" % (sum(us), os.cpu_count() * 1e6 / sum(us)))

    print()
    if b.busy_before:
        print("WARNING: busy before the start: " + ", ".join(
            "%s (pid %d) %.0f%%" % (c, p, pct) for pct, p, c in b.busy_before))
    print("Targets: %s   (benchmark took %.0f s)" % (
        "all PASS" if not misses else "MISS: " + ", ".join(misses), b.elapsed))
    return misses


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=10, help="duration of each wrk run (10)")
    ap.add_argument("--connections", type=int, default=32, help="the high-concurrency run (32)")
    ap.add_argument("--wrk-threads", type=int, default=1,
                    help="wrk threads (1: wrk shares the 2 cores with everything else)")
    ap.add_argument("--no-master", action="store_true", help="skip the master-key runs")
    ap.add_argument("--streams", type=int, default=1000, help="concurrent streams (1000)")
    ap.add_argument("--stream-chunks", type=int, default=20, help="content chunks a stream (20)")
    ap.add_argument("--stream-chunk-delay-ms", type=int, default=200,
                    help="upstream delay between stream events (200)")
    ap.add_argument("--stream-read-bytes", type=int, default=512,
                    help="a slow client reads at most this much at a time (512)")
    ap.add_argument("--stream-read-delay-ms", type=int, default=100,
                    help="and then sleeps this long (100)")
    ap.add_argument("--ttfb-samples", type=int, default=50, help="sequential streams each way (50)")
    ap.add_argument("--catchup-timeout", type=int, default=60,
                    help="longest wait after the last run for the ledger to catch up, s (60)")
    ap.add_argument("--settle-timeout", type=int, default=10,
                    help="longest wait for the ledger between proxyd runs, s (10)")
    ap.add_argument("--perf", metavar="FILE",
                    help="perf record -e cpu-clock -g the daemons and MariaDB during the proxyd "
                         "virtual-key run at --connections (then: perf report -i FILE)")
    ap.add_argument("--spool-dir", metavar="DIR",
                    help="put proxyd's event spool in a fresh directory under DIR (e.g. /dev/shm, "
                         "to see what the spool's fdatasync on the real disk costs)")
    ap.add_argument("--json", metavar="FILE", help="also write the raw figures as JSON")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args()

    if shutil.which("wrk") is None:
        die("wrk not found: install it with `apt-get install -y wrk` (Debian package wrk)")
    b = Bench(args)
    try:
        b.run()
    except harness.HarnessError as e:
        die("the stack failed: %s" % e)
    misses = report(b, args)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "runs": b.runs, "ledger": b.ledger, "hwm_wrk_kb": b.hwm_wrk_kb,
            "streams": dict(b.streams, errors=b.streams["errors"][:20]), "ttfb": b.ttfb,
            "misses": misses}, indent=1))
    sys.exit(1 if misses and args.strict else 0)


if __name__ == "__main__":
    main()
