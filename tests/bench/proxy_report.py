"""proxy_report.py - prints the proxy benchmark's figures (tests/bench/proxy_bench.py)
next to the targets, with the CPU each process used, and returns the missed targets
and the figures that are INVALID (they would not measure what they say)."""

import os
import statistics

from load import hist_percentile
from procstat import CLK_TCK

TARGET_ADDED_P50_US = 50
TARGET_ADDED_P99_US = 250
TARGET_RPS_32 = 10000
TARGET_STREAM_RSS_MB = 50
TARGET_STREAM_TTFB_ADDED_MS = 1.0


def verdict(ok):
    return "PASS" if ok else "MISS"


NAMES = {"direct": "direct (fake-upstream)", "proxyd-vkey": "proxyd, virtual key",
         "proxyd-master": "proxyd, master key", "proxyd-limited": "proxyd, rate-limited key",
         "proxyd-redis": "proxyd+Redis, limited key",
         "stream-chat": "proxyd, chat stream",
         "stream-messages": "proxyd, Messages stream",
         "stream-responses": "proxyd, Responses stream"}


def run_name(r):
    """A run's row name: its target, and its round when there were several."""
    return NAMES[r["target"]] + (" #%d" % (r["round"] + 1) if r["label"].count("#") else "")


def combine(runs):
    """One figure for the runs of one target and connection count: 2xx answers per
    second over all of them, p50 and p99 the median of the runs' (a run disturbed by
    the shared machine moves a median less than a pooled percentile), error counts
    summed."""
    keys = ("non2xx", "err_connect", "err_read", "err_write", "err_timeout")
    return {"rps": sum(r["ok2xx"] for r in runs) / sum(r["seconds"] for r in runs),
            "p50_us": statistics.median(r["wrk"]["p50_us"] for r in runs),
            "p99_us": statistics.median(r["wrk"]["p99_us"] for r in runs),
            "n": len(runs), **{k: sum(r["wrk"][k] for r in runs) for k in keys}}


def added(b, target, field):
    """proxyd's added latency at 1 connection: the median over the rounds of the
    through-proxyd minus direct figure of the same round."""
    one = [r for r in b.runs if r["conns"] == 1]
    diffs = [p["wrk"][field] - d["wrk"][field] for d in one if d["target"] == "direct"
             for p in one if p["target"] == target and p["round"] == d["round"]]
    return statistics.median(diffs), diffs


def rps(r):
    """A run's 2xx answers per second."""
    return r["ok2xx"] / r["seconds"]


def cpu_us(r):
    """A run's CPU per 2xx answer in us: proxyd's, plus redis-server's (counted in the
    runs through Redis). None without answers."""
    cpu = r["cpu_s"].get("proxyd", 0) + r["cpu_s"].get("redis-server", 0)
    return 1e6 * cpu / r["ok2xx"] if r["ok2xx"] > 0 else None


def paired(b, target, base, conns, value=rps):
    """target's value (req/s unless told) against base's, round by round at conns (the
    two runs of a round are minutes apart at most): the median change in %, and each
    round's."""
    v = {(r["target"], r["round"]): value(r) for r in b.runs if r["conns"] == conns}
    rounds = sorted(k for t, k in v if t == target and v.get((base, k)) and
                    v[(target, k)] is not None)
    each = [100.0 * (v[(target, k)] / v[(base, k)] - 1) for k in rounds]
    return (statistics.median(each) if each else 0.0), each


def cpu_line(b, target, conns):
    """The CPU-per-request comparison of a limited target with the unlimited key: the
    closed loop's req/s moves with every stall of a shared machine; the CPU spent per
    request much less."""
    med, each = paired(b, target, "proxyd-vkey", conns, cpu_us)
    if each:
        us = {t: statistics.median(u for u in (cpu_us(r) for r in b.runs if r["target"] == t
                                                and r["conns"] == conns) if u is not None)
              for t in (target, "proxyd-vkey")}
        print("     CPU per request (proxyd%s) at %d connections: %.0f us against %.0f us "
              "without limits: %+.1f %% (rounds: %s %%)" % (
                  " + redis-server" if target == "proxyd-redis" else "", conns, us[target],
                  us["proxyd-vkey"], med, ", ".join("%+.1f" % x for x in each)))


def spread(b, target, conns):
    """How far one target's req/s strays from its own median over the rounds, in %:
    the run's noise."""
    v = [rps(r) for r in b.runs if r["target"] == target and
         r["conns"] == conns]
    m = statistics.median(v) if v else 0
    return max(abs(100.0 * (x / m - 1)) for x in v) if m else 0.0


def pct(values, p):
    """The nearest-rank p-th percentile: the ceil(p/100 * n)-th smallest."""
    v = sorted(values)
    return v[max(0, -(-len(v) * p // 100) - 1)]


def stream_kinds(b, a):
    """Section 5's streams of each kind: added time to first event, proxyd's CPU per
    streamed request, and their ledger rows. Returns the missed targets."""
    misses = []
    print("   time to first SSE event, direct vs through proxyd (%d pairs of sequential streams, "
          "order alternating; ms):" % a.ttfb_samples)
    print("   %-20s %15s %15s %17s  %-25s %s" % ("", "direct", "through proxyd", "added",
                                                  "", "headers, p50"))
    print("   %-20s" % "" + " %7s %7s" % ("p50", "p99") * 2 + " %8s %8s" % ("p50", "p99") +
          "  %-25s %s" % ("(target p50 < %.0f ms)" % TARGET_STREAM_TTFB_ADDED_MS,
                          "direct / proxyd"))
    for c in b.cases:
        T = b.ttfb[c.name]
        d50, p50 = statistics.median(T["direct_event"]), statistics.median(T["proxyd_event"])
        d99, p99 = pct(T["direct_event"], 99), pct(T["proxyd_event"], 99)
        ok = p50 - d50 < TARGET_STREAM_TTFB_ADDED_MS / 1000
        misses += [] if ok else ["%s stream TTFB" % c.name]
        print("   %-20s %7.3f %7.3f %7.3f %7.3f %+8.3f %+8.3f  %-25s %.3f / %.3f" % (
            c.title, d50 * 1e3, d99 * 1e3, p50 * 1e3, p99 * 1e3, (p50 - d50) * 1e3,
            (p99 - d99) * 1e3, verdict(ok), statistics.median(T["direct_head"]) * 1e3,
            statistics.median(T["proxyd_head"]) * 1e3))
    if any(b.ttfb[c.name].get("quiet", 0) is None for c in b.cases):
        print("   ! the TTFB pairs started while the machine was still busy")

    print("   CPU per streamed request through proxyd, us: a process's utime+stime (/proc) over a "
          "wrk run of each kind\n   (%d s, %d connection%s), divided by the requests proxyd "
          "forwarded in it:" % (a.stream_cpu_seconds, a.stream_cpu_connections,
                                "s" if a.stream_cpu_connections > 1 else ""))
    parts = ["proxyd", "fake-upstream", "accountd", "mariadbd"]
    print("   %-20s %9s" % ("", "requests") + "".join(" %13s" % n for n in parts) +
          "   (proxyd: +/- us, a tick of /proc)")
    for c in b.cases:
        C = b.stream_cpu[c.name]
        n = max(1, C["requests"])
        print("   %-20s %9d" % (c.title, C["requests"]) +
              "".join(" %13.1f" % (C["cpu_s"].get(p, 0) / n * 1e6) for p in parts) +
              "   %.1f" % (1e6 / CLK_TCK / n))
    plain = [r for r in b.runs if r["target"] == "proxyd-vkey"
             and r["conns"] == a.stream_cpu_connections and "proxyd" in r["cpu_s"]]
    n = sum(r["forwarded"] for r in plain)
    if n:
        print("   %-20s %9d" % ("(chat, not streamed)", n) +
              "".join(" %13.1f" % (sum(r["cpu_s"].get(p, 0) for r in plain) / n * 1e6)
                      for p in parts) + "   (the virtual-key wrk runs at %d connection%s)"
              % (a.stream_cpu_connections, "s" if a.stream_cpu_connections > 1 else ""))

    print("   proxyd RSS over these: %s" % ", ".join(
        "%s %.1f MB" % (when, kb / 1024) for when, kb in b.stream_rss_kb if kb is not None))

    bad = [c for c in b.cases if not b.stream_ledger[c.name]["ok"]]
    misses += ["stream ledger"] if bad else []
    print("   ledger rows of each kind's virtual key, call type as sent, for the streams proxyd "
          "answered with it: %s  %s" % (", ".join(
              "%s %d (%d 2xx) for %d%s" % (c.name, L["rows"], L["rows_2xx"], L["answered"],
                                           " + other call types %s" % L["other_call_types"]
                                           if L["other_call_types"] else "")
              for c in b.cases for L in [b.stream_ledger[c.name]]), verdict(not bad)))
    return misses


def report(b, args):
    a = args
    misses, invalid = [], []
    by = {}
    for r in b.runs:
        by.setdefault((r["target"], r["conns"]), []).append(r)
    by = {k: combine(v) for k, v in by.items()}
    targets = ["direct", "proxyd-vkey"] + ([] if a.no_master else ["proxyd-master"]) + \
        ([] if a.no_limited else ["proxyd-limited"]) + \
        ([] if a.no_limited or a.no_redis else ["proxyd-redis"])
    names = NAMES

    print()
    print("=" * 100)
    print("Tollgate proxy benchmark  (%d CPUs, wrk -t%d, %d s per run, RLIMIT_NOFILE %d%s)"
          % (os.cpu_count(), a.wrk_threads, a.seconds, b.nofile[0],
             ", spool under " + a.spool_dir if a.spool_dir else ""))
    print("=" * 100)
    print()
    print("1. Throughput and latency (non-streaming POST /v1/chat/completions; req/s = 2xx "
          "answers per second over %d rounds at %d connections; p50, p99 and at 1 "
          "connection\n   the median of the rounds, %d at 1 connection)"
          % (a.rounds_high, a.connections, a.rounds))
    hdr = "   %-24s" % ""
    for c in (1, a.connections):
        hdr += " | %-31s" % ("%d connection%s" % (c, "s" if c > 1 else ""))
    print(hdr)
    print("   %-24s" % "" + (" | %9s %10s %10s" % ("req/s", "p50", "p99")) * 2)
    for t in targets:
        line = "   %-24s" % names[t]
        for c in (1, a.connections):
            r = by[(t, c)]
            line += " | %9.0f %7d us %7d us" % (r["rps"], r["p50_us"], r["p99_us"])
        print(line)
    for label, c, non2xx, errs, short in b.failed:
        print("   ! %s c=%d: %d non-2xx answers, %d streams cut short, %d socket errors (not "
              "counted as req/s)" % (label, c, non2xx, short, errs))
    if b.failed:
        print("   %s: %d wrk run%s had non-2xx answers, streams cut short or socket errors%s"
              % ("(allowed by --allow-failures)" if a.allow_failures else "INVALID",
                 len(b.failed), "s" if len(b.failed) > 1 else "",
                 "" if a.allow_failures else ": the figures are not those of a working proxy"))
        if not a.allow_failures:
            invalid.append("non-2xx or cut-short answers")
    else:
        print("   every answer of every wrk run was a 2xx (no socket errors)")

    print()
    print("2. proxyd's added latency at 1 connection (through proxyd - direct, the median over "
          "the rounds of each round's difference)")
    for t in targets[1:]:
        a50, d50 = added(b, t, "p50_us")
        a99, d99 = added(b, t, "p99_us")
        ok50, ok99 = a50 <= TARGET_ADDED_P50_US, a99 <= TARGET_ADDED_P99_US
        print("   %-24s p50 %+6d us  (target <= %d us)  %s     p99 %+6d us  (target <= %d us)  %s"
              % (names[t], a50, TARGET_ADDED_P50_US, verdict(ok50), a99, TARGET_ADDED_P99_US,
                 verdict(ok99)))
        if len(d50) > 1:
            print("   %-24s rounds: p50 %s us, p99 %s us" % (
                "", " ".join("%+d" % v for v in d50), " ".join("%+d" % v for v in d99)))
        if t == "proxyd-vkey":
            misses += [] if ok50 else ["added p50"]
            misses += [] if ok99 else ["added p99"]
    floor = [r["wrk"]["p99_us"] for r in b.runs if r["target"] == "direct" and r["conns"] == 1]
    print("   (the floor itself is noisy: direct p99 %s us over the rounds)"
          % " ".join(str(v) for v in floor))
    print("   proxyd's own time per request (x-litellm-overhead-duration-ms: from reading the "
          "request to handing over the answer,\n   minus the upstream wait; proxyd's clock, "
          "5 us steps), virtual key:")
    for c in (1, a.connections):
        hist = [hv for r in b.runs if r["target"] == "proxyd-vkey" and r["conns"] == c
                for hv in r["wrk"].get("overhead_us", [])]
        if hist:
            print("   %-24s p50 %5d us  p99 %5d us  p99.9 %5d us" % (
                "%d connection%s" % (c, "s" if c > 1 else ""), hist_percentile(hist, 50),
                hist_percentile(hist, 99), hist_percentile(hist, 99.9)))
    r32 = by[("proxyd-vkey", a.connections)]
    noise = spread(b, "proxyd-vkey", a.connections)
    rounds = lambda each: ", ".join("%+.1f" % x for x in each)  # noqa: E731
    if not a.no_limited:
        l32 = by[("proxyd-limited", a.connections)]
        l50, _ = added(b, "proxyd-limited", "p50_us")
        v50, _ = added(b, "proxyd-vkey", "p50_us")
        med, each = paired(b, "proxyd-limited", "proxyd-vkey", a.connections)
        print("   rate limits in memory (rpm, tpm and parallel counted, nothing refused): %.0f "
              "req/s at %d connections against %.0f without: %+.1f %% (median of the rounds: "
              "%s %%;\n   the unlimited key's own rounds stray up to %.1f %% from their median; "
              "target: no measurable change)  %s; added p50 at 1 connection %+d us against "
              "%+d us" % (l32["rps"], a.connections, r32["rps"], med, rounds(each), noise,
                          verdict(abs(med) <= noise), l50, v50))
        cpu_line(b, "proxyd-limited", a.connections)
    if not a.no_limited and not a.no_redis:
        x32 = by[("proxyd-redis", a.connections)]
        x50, _ = added(b, "proxyd-redis", "p50_us")
        med, each = paired(b, "proxyd-redis", "proxyd-vkey", a.connections)
        print("   rate limits through Redis (another proxyd, the same key): %.0f req/s at %d "
              "connections against %.0f without limits: %+.1f %% (median of the rounds: %s %%; "
              "target >= -15 %%)  %s;\n   added p50 at 1 connection %+d us against %+d us "
              "(one Redis round trip: %s)"
              % (x32["rps"], a.connections, r32["rps"], med, rounds(each),
                 verdict(med >= -15.0), x50, v50, b.redis_rtt))
        cpu_line(b, "proxyd-redis", a.connections)
    ok = r32["rps"] >= TARGET_RPS_32
    misses += [] if ok else ["req/s"]
    print("   throughput through proxyd (virtual key, accounting on) at %d connections: "
          "%.0f req/s, 2xx answers only  (target >= %d)  %s"
          % (a.connections, r32["rps"], TARGET_RPS_32, verdict(ok)))

    print()
    print("3. proxyd peak RSS (VmHWM) over the wrk runs: %.1f MB  (RSS %.1f MB before them, "
          "%.1f MB after%s)" % (b.hwm_wrk_kb / 1024, b.rss_before_wrk_kb / 1024,
                                b.rss_after_wrk_kb / 1024,
                                "" if b.hwm_reset else "; VmHWM not reset: peak since start"))

    print()
    print("4. accountd keeping up (spend_logs rows vs answers proxyd gave)")
    print("   %-24s %5s %11s %10s %10s %12s %14s" % ("run", "conns", "rows before", "2xx (wrk)",
                                                   "forwarded", "backlog@end", "then written"))
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
        print("   %-24s %5d %11d %10d %10d %12d %14s" % (
            run_name(r), r["conns"], L["rows_at_start"], r["wrk"]["requests"] - r["wrk"]["non2xx"],
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
    print("   proxyd re-sent %d events for want of an ack (accountd counts each once)"
          % L["resent"])
    if new_rows > 0:
        print("   MariaDB during the wrk runs and the wait: %d new rows in %d commits, %d INSERT"
              " and %d UPDATE statements (bulk: many rows each), %d prepared for %d executed"
              % (new_rows, d["Com_commit"], d["Com_insert"], d["Com_update"],
                 d["Com_stmt_prepare"], d["Com_stmt_execute"]))
    if not (L["caught_up"] and L["rows"] == L["expected"]):
        misses.append("ledger")

    print()
    print("5. Streaming")
    S = b.streams
    mb = S["hwm_kb"] / 1024
    # The RSS is "at N concurrent streams" only if the N were open at once: every one
    # completed, every first byte came before any end (client side), and the server side
    # counted N at one instant (proxyd's calls in flight or fake-upstream's open streams).
    server_peak = max(S["max_proxyd_in_flight"], S["max_upstream_active"])
    overlapped = (S["ok"] == a.streams and S["max_overlap"] == a.streams
                  and server_peak >= a.streams)
    print("   %d streams: %d completed, %d failed; median stream %.1f s"
          % (a.streams, S["ok"], len(S["errors"]), S["median_duration"]))
    print("   open at once: %d (client side: the last first byte at %s, the first end at %s); "
          "server side, peak of %d samples: proxyd %d calls in flight, fake-upstream %d streams"
          % (S["max_overlap"], "%.2f s" % S["last_start"] if S["last_start"] is not None else "-",
             "%.2f s" % S["first_end"] if S["first_end"] is not None else "-", S["samples"],
             S["max_proxyd_in_flight"], S["max_upstream_active"]))
    for e in S["sample_errors"]:
        print("   ! sampling: " + e)
    if overlapped:
        ok = mb <= TARGET_STREAM_RSS_MB
        misses += [] if ok else ["stream RSS"]
        v = verdict(ok)
    else:
        invalid.append("stream RSS")
        v = "INVALID (the %d streams were not all open at once)" % a.streams
    print("   proxyd VmHWM during the streams: %.1f MB  (target <= %d MB)  %s   [RSS before %.1f MB, "
          "after %.1f MB, %d fds at peak%s]"
          % (mb, TARGET_STREAM_RSS_MB, v, S["rss_before_kb"] / 1024,
             S["rss_after_kb"] / 1024, S["max_fds"],
             "" if S["reset_ok"] else "; VmHWM could not be reset: peak since start"))
    for e in S["errors"][:5]:
        print("   ! " + e)
    misses += stream_kinds(b, args)

    print()
    print("CPU during each wrk run, %% of one core (%d cores = %d%%):" % (os.cpu_count(),
                                                                       100 * os.cpu_count()))
    procs = ["wrk", "fake-upstream", "proxyd", "accountd", "mariadbd", "reportd", "redis-server",
             "irq", "other", "all"]
    print("   %-24s %5s" % ("run", "conns") + "".join(" %8s" % p[:8] for p in procs))
    for r in b.runs:
        print("   %-24s %5d" % (run_name(r), r["conns"]) +
              "".join(" %7.0f%%" % r["cpu"].get(p, 0) for p in procs))
    print("   (proxyd: in the runs through Redis, the proxyd that shares its limits there; irq = "
          "hard and soft interrupts,\n    mostly loopback TCP; other = kernel threads, this "
          "script, any foreign process; all = busy time from /proc/stat)")
    for r in b.runs:
        if r.get("quiet", 0) is None:
            print("   ! %s c=%d started while the machine was still busy" % (run_name(r), r["conns"]))
        if r["foreign"]:
            print("   ! %s c=%d shared the machine with: %s" % (
                run_name(r), r["conns"], ", ".join(
                    "%s (pid %d) %.0f%%" % (c, p, pct) for pct, p, c in r["foreign"][:4])))

    print()
    print("CPU per request in us (accountd, mariadbd: per ledger row committed during the run);")
    print("ceiling = %d cores / total: the req/s this machine could carry if nothing else ran:"
          % os.cpu_count())
    parts = ["proxyd", "redis-server", "accountd", "mariadbd", "fake-upstream", "wrk", "irq"]
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
        print("   %-24s %5d" % (run_name(r), r["conns"]) +
              "".join(" %9.0f" % u for u in us) +
              " %9.0f %9.0f" % (sum(us), os.cpu_count() * 1e6 / sum(us)))

    print()
    if b.busy_before:
        print("WARNING: busy before the start: " + ", ".join(
            "%s (pid %d) %.0f%%" % (c, p, pct) for pct, p, c in b.busy_before))
    print("Targets: %s%s   (benchmark took %.0f s)" % (
        "all PASS" if not misses else "MISS: " + ", ".join(misses),
        "; INVALID: " + ", ".join(invalid) if invalid else "", b.elapsed))
    return misses, invalid
