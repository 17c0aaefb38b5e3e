#!/usr/bin/env python3
"""proxy_bench.py - what proxyd costs on the request path, measured on loopback.

Starts one private Tollgate stack with tests/e2e/harness.py (MariaDB, fake-upstream,
accountd, reportd, proxyd), creates a virtual key through reportd's /key/generate,
and in one run measures, side by side:

  1. wrk POSTs of a small chat completion straight to fake-upstream ("direct") and
     through proxyd (virtual key, master key, and a virtual key with an rpm_limit,
     tpm_limit and max_parallel_requests too high to refuse anything: what the rate
     limits' bookkeeping costs; that key again through a second proxyd that shares
     the limits through a private redis-server: what Redis costs), at 32
     connections and, in
     --rounds rounds, at 1 connection: req/s, p50 and p99 latency (wrk --latency;
     a generated Lua script sends the body and headers, counts non-2xx answers and
     collects proxyd's x-litellm-overhead-duration-ms in its `response` hook).
     req/s counts 2xx answers only; any non-2xx answer or socket error in any run
     makes the run INVALID (exit 3) unless --allow-failures.
  2. proxyd's added latency = through proxyd - direct (p50, p99), at 1 connection:
     the median over the rounds of each round's difference; and proxyd's own time
     per request from that header.
  3. proxyd's peak RSS (VmHWM in /proc/PID/status) over the wrk runs.
  4. whether accountd keeps up: the spend_logs backlog when each proxyd run ends,
     and after the last one the wait (bounded by --catchup-timeout) until there is
     one row per answer proxyd gave, with both counts, the time it took, and
     how many events proxyd re-sent, and MariaDB's statement counters.
  5. streaming (run first, on a quiet stack): proxyd's VmHWM while --streams
     (1,000) slow-reading clients hold concurrent SSE streams (each about 4.6 s:
     20 one-word chunks 200 ms apart); the RSS verdict stands only when the streams
     were proven open at once: every stream's first byte came before any stream's
     end (client side) and proxyd's calls in flight or fake-upstream's open
     streams, sampled every 0.1 s, reached --streams (else INVALID, exit 3).
     And for three kinds of stream (stream_cases.py: chat completions, Anthropic
     Messages, OpenAI Responses): the time to the first SSE event, direct vs
     through proxyd, p50 and p99 over --ttfb-samples pairs of sequential streams
     whose order alternates = streaming's added TTFB; proxyd's CPU time per
     streamed request (/proc, utime+stime) over a --stream-cpu-seconds wrk run
     of each kind; and that every stream of each kind is one ledger row of its
     own virtual key and call type.

The helpers live beside it: load.py (wrk and the stream clients), stream_cases.py
(the three kinds of stream), procstat.py (/proc), stackstat.py (the stack's
counters), proxy_report.py (the printout).

It also prints the CPU each process used during every wrk run (utime+stime
deltas from /proc/PID/stat; wrk's from its rusage) and per request, because
everything shares the machine's cores and that is what bounds the figures; and
names any foreign process that took CPU meanwhile. Targets are printed next to
the figures as PASS/MISS.

Run (after building, see tests/bench/README.md):

    ulimit -n 65536 2>/dev/null; tests/bench/proxy_bench.py     # about 4 min
    tests/bench/proxy_bench.py --seconds 3 --streams 200      # a quick look

Needs wrk (`apt-get install -y wrk`) and python3 (standard library only).
Binaries come from TOLLGATE_BIN or <repo>/build/bin, as for the e2e tests.
Exit status: 0 when the benchmark ran (targets missed or not; --strict makes a
MISS exit 1), 2 when it could not run, 3 when a figure is INVALID (it would not
measure what it says: non-2xx answers, streams cut short or socket errors in a
wrk run, streams not proven concurrent, a stream that failed).
"""

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "e2e"))
import harness  # noqa: E402  (tests/e2e/harness.py)
from load import (Sampler, many_slow_streams, max_overlap, run_wrk,  # noqa: E402
                  ttfb_pairs, write_lua)
from procstat import (CLK_TCK, all_ticks, busy_between, busy_processes,  # noqa: E402
                      proc_status_kb, proc_ticks, raise_nofile, reset_hwm, system_cpu)
from proxy_report import report  # noqa: E402
from stackstat import db_status, ledger_rows, mariadb_pid, upstream_stats, wait_ledger  # noqa: E402
from stream_cases import CHAT_MESSAGES, extra_models, ledger_by_case, stream_cases  # noqa: E402
from redis_server import RedisServer  # noqa: E402  (tests/e2e/redis_server.py)

UPSTREAM_MODEL = "llama-3.1-8b-instant"  # what proxyd sends upstream for model group llama3
QUIET_PCT = 5.0        # before a run, wait until no process uses this much of a core


def die(msg, code=2):
    print("proxy_bench: " + msg, file=sys.stderr)
    sys.exit(code)


def bearer(key):
    return {"Authorization": "Bearer " + key}


# a limited key's limits: every request is counted in its windows, none is refused
LIMITS = {"rpm_limit": 10 ** 11, "tpm_limit": 10 ** 12, "max_parallel_requests": 10 ** 6}


def new_key(s, alias, **fields):
    """A virtual key, created through reportd's /key/generate."""
    st, _, body = s.report("POST", "/key/generate", dict(fields, key_alias=alias),
                           key=harness.MASTER_KEY)
    if st != 200 or not isinstance(body, dict) or "key" not in body:
        raise RuntimeError("/key/generate answered %s: %r" % (st, body))
    return body["key"]


def redis_rtt(s, port):
    """The mean of proxyd's Redis round trips for rate limits, from its /metrics."""
    st, _, text = s.http("GET", port, "/metrics")
    vals = {}
    for line in (text if st == 200 and isinstance(text, str) else "").splitlines():
        for name in ("sum", "count"):
            if line.startswith("tollgate_proxyd_ratelimit_redis_seconds_%s " % name):
                vals[name] = float(line.split()[1])
    if not vals.get("count"):
        return "not measured"
    return "%.0f us mean over %d checks, proxyd's clock" % (
        vals["sum"] / vals["count"] * 1e6, vals["count"])


# ------------------------------------------------------------------ the benchmark


class Bench:
    def __init__(self, args):
        self.a = args
        self.runs = []      # wrk runs: label, target, conns, wrk result, cpu, ledger
        self.expected = 0   # ledger rows there should be: one per answer proxyd gave
        self.wrk_2xx = 0    # 2xx answers wrk counted through proxyd
        self.other_2xx = 0  # 2xx answers through proxyd outside wrk (smoke, TTFB, streams)
        self.failed = []    # wrk runs with non-2xx answers, streams cut short or socket
        #                     errors: (label, c, non2xx, errs, incomplete)
        self.cases = stream_cases(UPSTREAM_MODEL)
        self.ttfb, self.stream_cpu = {}, {}   # by case name
        self.answered = {c.name: 0 for c in self.cases}  # streams proxyd answered, by case

    def pids(self, s, target=None):
        """The processes whose CPU a run counts; in the runs through Redis, "proxyd" is
        the proxyd that shares its limits there, and redis-server is counted too."""
        p = {name: s.daemon(name).proc.pid for name in
             ("fake-upstream", "proxyd", "accountd", "reportd")}
        p["mariadbd"] = mariadb_pid(s)
        if target == "proxyd-redis":
            p["proxyd"] = s.daemon("proxyd-redis").proc.pid
        if self.redis is not None and self.redis.proc is not None:
            p["redis-server"] = self.redis.proc.pid
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

    def quiesce(self):
        """Waits (at most --quiet-timeout s) until no process uses QUIET_PCT of a core:
        after the ledger rows are written MariaDB still flushes and purges for a while,
        and a run started meanwhile measures that. Returns the seconds waited, None on
        timeout."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < self.a.quiet_timeout:
            if not busy_processes(0.5, QUIET_PCT):
                return time.monotonic() - t0
        return None

    def one_run(self, s, label, target, conns, url, lua, seconds, warmup=False, settle=None,
                round_=0):
        pids = self.pids(s, target)
        perf = None
        if self.a.perf and target == "proxyd-vkey" and conns == self.a.connections and not warmup:
            perf = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "999", "-g",
                                     "-o", self.a.perf, "-p",
                                     ",".join(str(p) for p in pids.values() if p)],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            time.sleep(0.5)
        quiet = None if warmup else self.quiesce()
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
        # Throughput is complete 2xx answers only: an error answered fast is not a request
        # served, nor is a stream cut short.
        ok2xx = res["requests"] - res["non2xx"] - res["incomplete"]
        errs = sum(res[k] for k in ("err_connect", "err_read", "err_write", "err_timeout"))
        if res["non2xx"] or errs or res["incomplete"]:
            self.failed.append((label + (" (warm-up)" if warmup else ""), conns, res["non2xx"],
                                errs, res["incomplete"]))
        ticks = {n: after[n] - before[n]
                 for n in before if before[n] is not None and after.get(n) is not None}
        cpu = {n: t / CLK_TCK / wall * 100 for n, t in ticks.items()}
        cpu["wrk"] = wrk_cpu / wall * 100
        span = max(1, sys1[2] - sys0[2]) / os.cpu_count() / 100
        cpu["all"] = (sys1[0] - sys0[0]) / span
        cpu["irq"] = (sys1[1] - sys0[1]) / span
        cpu["other"] = max(0.0, cpu["all"] - sum(v for k, v in cpu.items() if k != "all"))
        run = {"label": label, "target": target, "conns": conns, "round": round_, "quiet": quiet,
               "seconds": elapsed,
               "wrk": res, "ok2xx": ok2xx, "rps": ok2xx / elapsed, "cpu": cpu,
               "cpu_s": {n: t / CLK_TCK for n, t in ticks.items()},
               "warmup": warmup,
               "foreign": foreign}
        note = ""
        if proxied:
            time.sleep(0.3)  # requests wrk dropped at its stop still go upstream
            run["forwarded"] = upstream_stats(s)["requests"] - st0["requests"]
            self.expected += run["forwarded"]
            if warmup:
                self.other_2xx += ok2xx
            else:
                self.wrk_2xx += ok2xx
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
            if quiet is None:
                note += ("  (started busy: the machine was not quiet within %d s)"
                         % self.a.quiet_timeout)
        print("  %-22s c=%-3d %8.0f 2xx/s  p50 %6d us  p99 %6d us  non2xx %d  socket errors %d%s"
              % (label, conns, run["rps"], res["p50_us"], res["p99_us"], res["non2xx"], errs,
                 note), flush=True)
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
        self.redis = None if a.no_limited or a.no_redis else RedisServer().start()
        try:
            with harness.Stack(extra_models=extra_models, **options) as s:
                self.measure(s)
        finally:
            if self.redis is not None:
                self.redis.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)
            if spool:
                shutil.rmtree(spool, ignore_errors=True)

    def stream_kinds(self, s):
        """For each kind of stream: the time to its first event, direct and through
        proxyd (alternating pairs), then proxyd's CPU per streamed request over a wrk
        run. Each kind has its own virtual key, so that its ledger rows can be counted."""
        a = self.a
        pid = s.daemon("proxyd").proc.pid
        keys = {c.name: new_key(s, c.key_alias) for c in self.cases}
        self.stream_rss_kb = [("before", proc_status_kb(pid, "VmRSS"))]
        quiet = self.quiesce()
        print("streaming TTFB (%d pairs of sequential streams, direct and through proxyd, "
              "alternating; each kind)%s ..." % (a.ttfb_samples, "" if quiet is not None else
                                                  " (the machine was not quiet)"), flush=True)
        for c in self.cases:
            direct = (s.upstream_port, c.path, c.body(True), c.headers(s.upstream_key), c.marker)
            proxied = (s.proxyd_port, c.path, c.body(False), c.headers(keys[c.name]), c.marker)
            self.ttfb[c.name], sent = ttfb_pairs(direct, proxied, a.ttfb_samples)
            self.ttfb[c.name]["quiet"] = quiet
            self.answered[c.name] += sent
            self.expected += sent
            self.other_2xx += sent
        self.stream_rss_kb.append(("after the TTFB pairs", proc_status_kb(pid, "VmRSS")))
        print("streamed requests through proxyd for its CPU time (wrk, %d s each):"
              % a.stream_cpu_seconds, flush=True)
        for c in self.cases:
            label = "stream-" + c.name
            lua = write_lua(self.tmp, label, c.body(False), c.headers(keys[c.name]), c.marker)
            run = self.one_run(s, label, label, a.stream_cpu_connections,
                               "http://127.0.0.1:%d%s" % (s.proxyd_port, c.path), lua,
                               a.stream_cpu_seconds, settle=a.settle_timeout)
            self.answered[c.name] += run["forwarded"]
            self.stream_cpu[c.name] = {"requests": run["forwarded"], "complete": run["ok2xx"],
                                       "conns": run["conns"], "cpu_s": run["cpu_s"],
                                       "seconds": run["seconds"], "foreign": run["foreign"],
                                       "quiet": run["quiet"]}
            self.stream_rss_kb.append(("after the %s run" % c.name,
                                       proc_status_kb(pid, "VmRSS")))

    def measure(self, s):
        a = self.a
        t_start = time.monotonic()
        proxyd_pid = s.daemon("proxyd").proc.pid
        vkey = new_key(s, "bench")
        lkey = new_key(s, "bench-limited", **LIMITS)
        redis_port = None
        if self.redis is not None:  # a second proxyd, sharing the limits through Redis
            redis_port = s.add_proxyd("proxyd-redis", config={"router_settings": {
                "redis_host": "127.0.0.1", "redis_port": self.redis.port}})
            st, h, b = s.http("POST", redis_port, "/v1/chat/completions",
                              {"model": "llama3", "messages": CHAT_MESSAGES}, key=lkey)
            if st != 200 or self.redis.command("KEYS", "tg:rl2:*") == []:
                raise RuntimeError("the Redis proxyd answered %d without counting in Redis: %r"
                                   % (st, b))
        chat = {"model": "llama3", "messages": CHAT_MESSAGES}
        direct_body = {"model": UPSTREAM_MODEL, "messages": CHAT_MESSAGES}
        # one request each way: the stack answers as expected
        st, _, b = s.http("POST", s.upstream_port, "/v1/chat/completions", direct_body,
                          key=s.upstream_key)
        if st != 200:
            raise RuntimeError("fake-upstream answered %d: %r" % (st, b))
        for key in (vkey, harness.MASTER_KEY, lkey):
            st, h, b = s.proxy("POST", "/v1/chat/completions", chat, key=key)
            if st != 200:
                raise RuntimeError("proxyd answered %d: %r" % (st, b))
        if "x-ratelimit-remaining-requests" not in h:
            raise RuntimeError("the limited key's answer has no x-ratelimit headers: %r" % h)
        self.expected = self.other_2xx = 3 + (redis_port is not None)

        up_url = "http://127.0.0.1:%d/v1/chat/completions" % s.upstream_port
        px_url = "http://127.0.0.1:%d/v1/chat/completions" % s.proxyd_port
        lua = {"direct": write_lua(self.tmp, "direct", direct_body, bearer(s.upstream_key)),
               "proxyd-vkey": write_lua(self.tmp, "proxyd-vkey", chat, bearer(vkey)),
               "proxyd-master": write_lua(self.tmp, "proxyd-master", chat,
                                          bearer(harness.MASTER_KEY)),
               "proxyd-limited": write_lua(self.tmp, "proxyd-limited", chat, bearer(lkey))}
        url = {"direct": up_url, "proxyd-vkey": px_url, "proxyd-master": px_url,
               "proxyd-limited": px_url}
        if redis_port is not None:
            lua["proxyd-redis"] = lua["proxyd-limited"]
            url["proxyd-redis"] = "http://127.0.0.1:%d/v1/chat/completions" % redis_port

        print("warm-up:", flush=True)
        self.one_run(s, "direct", "direct", 32, up_url, lua["direct"], 1, warmup=True)
        self.one_run(s, "proxyd", "proxyd-vkey", 32, px_url, lua["proxyd-vkey"], 1, warmup=True,
                     settle=a.settle_timeout)

        # Streaming first, on a quiet stack: neither the RSS nor the TTFB should carry the
        # wrk runs' ledger backlog (proxyd keeps every unacknowledged event in memory). The
        # 1,000 streams before the kinds of stream: their ~30,000 requests raise proxyd's
        # RSS by several MB, which the RSS at 1,000 streams should not carry either.
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
        spans = res["spans"]
        self.streams = {"ok": res["ok"], "errors": res["errors"], "wall": time.monotonic() - t0,
                        "max_overlap": max_overlap(spans),
                        # every stream's first byte before any stream's end: all open at once
                        "last_start": max(a for a, _ in spans) - t0 if spans else None,
                        "first_end": min(b for _, b in spans) - t0 if spans else None,
                        "median_duration": statistics.median(res["durations"])
                        if res["durations"] else 0,
                        "hwm_kb": proc_status_kb(proxyd_pid, "VmHWM"), "reset_ok": reset_ok,
                        "rss_before_kb": rss_before,
                        "rss_after_kb": proc_status_kb(proxyd_pid, "VmRSS"),
                        "sampled_max_rss_kb": sampler.max_rss, "max_fds": sampler.max_fds,
                        "max_upstream_active": sampler.max_active,
                        "max_proxyd_in_flight": sampler.max_in_flight,
                        "samples": sampler.samples, "sample_errors": sampler.errors}
        self.settle(s, a.settle_timeout)
        self.stream_kinds(s)

        print("wrk runs (%d s each, wrk -t%d):" % (a.seconds, a.wrk_threads), flush=True)
        self.db0 = db_status(s)
        self.rss_before_wrk_kb = proc_status_kb(proxyd_pid, "VmRSS")
        self.hwm_reset = reset_hwm(proxyd_pid)
        # --connections first, while the ledger is small (MariaDB's cost per row grows with
        # it); then at 1 connection --rounds rounds of direct and proxyd, each run --seconds
        # long, so that a disturbed run (the machine is shared) moves a median, not the figure
        proxied = ["proxyd-vkey"] + ([] if a.no_master else ["proxyd-master"]) + \
            ([] if a.no_limited else ["proxyd-limited"]) + \
            ([] if redis_port is None else ["proxyd-redis"])
        # At --connections too, --rounds-high rounds whose order of targets alternates: the
        # keys' figures are compared round by round (the same minute), then as a median.
        plan = [(t, a.connections, r) for r in range(a.rounds_high)
                for t in ["direct"] + (proxied if r % 2 == 0 else proxied[::-1])]
        plan += [(t, 1, r) for r in range(a.rounds) for t in ["direct"] + proxied]
        for i, (t, c, r) in enumerate(plan):
            last = i == len(plan) - 1
            label = t if (a.rounds_high if c > 1 else a.rounds) == 1 else "%s #%d" % (t, r + 1)
            self.one_run(s, label, t, c, url[t], lua[t], a.seconds, round_=r,
                         settle=None if last or t == "direct" else a.settle_timeout)
        self.t_end = time.monotonic()
        self.redis_rtt = redis_rtt(s, redis_port) if redis_port is not None else "-"
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
        self.stream_ledger = ledger_by_case(s, self.cases, self.answered)
        resent = sum(int(line.split("re-sent ")[1].split()[0]) for line in
                     s.daemon_log("proxyd").read_text(errors="replace").splitlines()
                     if "re-sent " in line)
        self.ledger = {"expected": self.expected, "rows_at_end": rows_end, "rows": rows,
                       "rows_2xx": ok2xx, "waited": waited, "caught_up": ok,
                       "wrk_2xx": self.wrk_2xx, "other_2xx": self.other_2xx, "resent": resent}
        print("ledger: %d rows (%d with a 2xx status) for %d answers proxyd gave, %.1f s after "
              "the last run" % (rows, ok2xx, self.expected, waited), flush=True)
        self.elapsed = time.monotonic() - t_start


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=10, help="duration of each wrk run (10)")
    ap.add_argument("--connections", type=int, default=32, help="the high-concurrency run (32)")
    ap.add_argument("--wrk-threads", type=int, default=1,
                    help="wrk threads (1: wrk shares the 2 cores with everything else)")
    ap.add_argument("--no-master", action="store_true", help="skip the master-key runs")
    ap.add_argument("--no-limited", action="store_true",
                    help="skip the runs of the key with rate limits")
    ap.add_argument("--no-redis", action="store_true",
                    help="skip the runs of that key through a proxyd sharing limits via Redis")
    ap.add_argument("--rounds-high", type=int, default=3,
                    help="rounds of the runs at --connections, the order of the proxyd runs "
                         "alternating; req/s is over all of them, and the keys are compared "
                         "round by round (3)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds of direct and proxyd runs at 1 connection; latencies are the "
                         "median over the rounds (3)")
    ap.add_argument("--streams", type=int, default=1000, help="concurrent streams (1000)")
    ap.add_argument("--stream-chunks", type=int, default=20, help="content chunks a stream (20)")
    ap.add_argument("--stream-chunk-delay-ms", type=int, default=200,
                    help="upstream delay between stream events (200)")
    ap.add_argument("--stream-read-bytes", type=int, default=512,
                    help="a slow client reads at most this much at a time (512)")
    ap.add_argument("--stream-read-delay-ms", type=int, default=100,
                    help="and then sleeps this long (100)")
    ap.add_argument("--ttfb-samples", type=int, default=200,
                    help="pairs of sequential streams (direct, through proxyd) of each kind for "
                         "the time to first event (200)")
    ap.add_argument("--stream-cpu-seconds", type=int, default=5,
                    help="the wrk run of each kind of stream that measures proxyd's CPU per "
                         "streamed request, s (5)")
    ap.add_argument("--stream-cpu-connections", type=int, default=1,
                    help="its connections (1)")
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
    ap.add_argument("--quiet-timeout", type=float, default=30,
                    help="before each run, wait at most this long for the machine to be quiet, "
                         "s (30)")
    ap.add_argument("--allow-failures", action="store_true",
                    help="report non-2xx answers and socket errors of the wrk runs but do not "
                         "exit 3 for them (they never count as req/s)")
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
    misses, invalid = report(b, args)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "runs": b.runs, "ledger": b.ledger, "hwm_wrk_kb": b.hwm_wrk_kb,
            "streams": dict(b.streams, errors=b.streams["errors"][:20]), "ttfb": b.ttfb,
            "stream_cpu": b.stream_cpu, "stream_ledger": b.stream_ledger,
            "stream_rss_kb": b.stream_rss_kb,
            "failed_runs": b.failed, "misses": misses, "invalid": invalid}, indent=1))
    sys.exit(3 if invalid else 1 if misses and args.strict else 0)


if __name__ == "__main__":
    main()
