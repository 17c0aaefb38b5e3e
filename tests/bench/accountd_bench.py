#!/usr/bin/env python3
"""accountd_bench.py - how many usage events one accountd commits per second, and
how long an event waits for its commit at a steady 1,000 events/s.

Starts one private stack with tests/e2e/harness.py, seeds MariaDB with --keys keys
(each with its own internal user, in one of --teams teams, and a team membership),
then drives accountd with event-gen (tests/bench/event_gen.c), which speaks proxyd's
ZeroMQ protocol: events of those keys, --end-users end users and --tags tags.

  1. throughput: --events events as fast as accountd acknowledges them (at most
     --window unacknowledged), with full durability (InnoDB flushes its log at every
     commit, the MariaDB default, and accountd acks only after the commit): committed
     events per second = the spend_logs rows the run added (SQL COUNT(*) before and
     after) / event-gen's timed window (its first send to its last ack), and the CPU
     accountd and MariaDB used per committed row. No row can commit outside that
     window when every event was acked (nothing is sent before it; an ack follows its
     commit), so a run with a missing ack, or with fewer rows than acks, is INVALID;
  2. lag: --rate events/s for --lag-seconds: the time from sending an event to its
     ack, p50 and p99 (the ack leaves right after the COMMIT returns); INVALID as
     above when an ack is missing;
  3. the ledger afterwards: one row per acknowledged event, and every invariant of
     tests/e2e/invariants.py (counters and rollups equal the logs, exactly).

Run (after building, see tests/bench/README.md):   tests/bench/accountd_bench.py
Binaries come from TOLLGATE_BIN or <repo>/build/bin. Exit 0 when it ran (--strict:
1 when a target is missed), 2 when it could not run, 3 when a run is INVALID (a
missing ack, or committed rows that do not match the acks).
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "e2e"))
import harness  # noqa: E402  (tests/e2e/harness.py)
import invariants  # noqa: E402
from procstat import CLK_TCK, proc_ticks  # noqa: E402
from stackstat import ledger_rows, mariadb_pid  # noqa: E402

TARGET_EVENTS_PER_S = 50000
TARGET_LAG_P99_MS = 250
SEED_CHUNK = 500


def die(msg, code=2):
    print("accountd_bench: " + msg, file=sys.stderr)
    sys.exit(code)


def seed(stack, keys, teams):
    """Keys bench-key-I (token = SHA-256 of that), users bench-user-I, teams
    bench-team-(I mod teams), and each user a member of its key's team."""
    stack.sql("INSERT INTO teams (team_id, team_alias, created_at, updated_at) VALUES "
              + ", ".join("('bench-team-%d', 'Bench team %d', NOW(6), NOW(6))" % (t, t)
                          for t in range(teams)))
    for start in range(0, keys, SEED_CHUNK):
        ids = range(start, min(keys, start + SEED_CHUNK))
        stack.sql(
            "INSERT INTO internal_users (user_id, created_at, updated_at) VALUES "
            + ", ".join("('bench-user-%d', NOW(6), NOW(6))" % i for i in ids) + ";"
            "INSERT INTO team_members (team_id, user_id, created_at, updated_at) VALUES "
            + ", ".join("('bench-team-%d', 'bench-user-%d', NOW(6), NOW(6))" % (i % teams, i)
                        for i in ids) + ";"
            "INSERT INTO api_keys (token, key_name, user_id, team_id, created_at, updated_at)"
            " VALUES " + ", ".join(
                "('%s', 'sk-...%04d', 'bench-user-%d', 'bench-team-%d', NOW(6), NOW(6))"
                % (hashlib.sha256(b"bench-key-%d" % i).hexdigest(), i % 10000, i, i % teams)
                for i in ids))


def event_gen(stack, args, extra):
    cmd = [str(harness.bin_dir() / "event-gen"), "--keys", str(args.keys), "--teams",
           str(args.teams), "--end-users", str(args.end_users), "--tags", str(args.tags),
           "--batch", str(args.batch)] + extra + ["tcp://127.0.0.1:%d" % stack.events_port]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=1800)
    if p.returncode not in (0, 1) or not p.stdout.strip():
        raise RuntimeError("event-gen failed (%d): %s" % (p.returncode, p.stderr.decode()))
    return json.loads(p.stdout.decode().strip().splitlines()[-1])


def cpu_of(pids):
    return {n: proc_ticks(p) for n, p in pids.items()}


def run(args):
    accountd = {"batch_max_events": args.accountd_batch} if args.accountd_batch else {}
    if args.writers:
        accountd["writers"] = args.writers
    opts = {"tollgate": {"accountd": accountd}}
    if args.plain:  # the cost of CURVE: the same run without it
        opts["tollgate"]["curve"] = "off"
    return measure(args, opts)


def measure(args, opts):
    with harness.Stack(**opts) as s:
        seed(s, args.keys, args.teams)
        pids = {"accountd": s.daemon("accountd").proc.pid, "mariadbd": mariadb_pid(s)}
        rows0 = ledger_rows(s)
        print("throughput: %d events, batches of %d, window %d ..."
              % (args.events, args.batch, args.window), flush=True)
        c0 = cpu_of(pids)
        thr = event_gen(s, args, ["--events", str(args.events), "--window", str(args.window)])
        c1 = cpu_of(pids)
        rows1 = ledger_rows(s)
        # committed rows (SQL), not acks, over event-gen's window: see the docstring
        thr["committed"] = rows1 - rows0
        thr["committed_per_s"] = thr["committed"] / thr["seconds"]
        cpu_us = {n: (c1[n] - c0[n]) / CLK_TCK * 1e6 / max(1, thr["committed"]) for n in pids}
        print("  %.0f events/s committed (%d rows in %.1f s; %d of %d events acked); CPU per"
              " row: accountd %.1f us, mariadbd %.1f us"
              % (thr["committed_per_s"], thr["committed"], thr["seconds"], thr["acked"],
                 thr["sent"], cpu_us["accountd"], cpu_us["mariadbd"]), flush=True)
        print("lag: %d events/s for %d s ..." % (args.rate, args.lag_seconds), flush=True)
        lag = event_gen(s, args, ["--rate", str(args.rate), "--seconds", str(args.lag_seconds)])
        lag["committed"] = ledger_rows(s) - rows1
        print("  ack after commit: p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d of %d acked, %d rows"
              " committed)" % (lag["lag_p50_ms"], lag["lag_p99_ms"], lag["lag_max_ms"],
                               lag["acked"], lag["sent"], lag["committed"]), flush=True)
        rows = ledger_rows(s) - rows0
        t0 = time.monotonic()
        problems = invariants.check(s, timeout=1800)
        checked_s = time.monotonic() - t0
    return thr, lag, cpu_us, rows, problems, checked_s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=300000, help="throughput run (300000)")
    ap.add_argument("--batch", type=int, default=500, help="events per ZeroMQ message (500)")
    ap.add_argument("--window", type=int, default=100000,
                    help="unacknowledged at most (100000; a proxyd with a backlog has more)")
    ap.add_argument("--accountd-batch", type=int, default=0,
                    help="accountd's batch_max_events: events per transaction at most"
                         " (default: accountd's own, 20000)")
    ap.add_argument("--writers", type=int, default=0,
                    help="accountd's writer threads (default: accountd's own, 2)")
    ap.add_argument("--rate", type=int, default=1000, help="lag run, events/s (1000)")
    ap.add_argument("--lag-seconds", type=int, default=20, help="lag run length (20)")
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--teams", type=int, default=50)
    ap.add_argument("--end-users", type=int, default=5000)
    ap.add_argument("--tags", type=int, default=10)
    ap.add_argument("--plain", action="store_true",
                    help="ZeroMQ without CURVE (tollgate.curve: off), to measure what CURVE costs")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args()
    if not os.access(harness.bin_dir() / "event-gen", os.X_OK):
        die("event-gen not found in %s: build first" % harness.bin_dir())
    try:
        thr, lag, cpu_us, rows, problems, checked_s = run(args)
    except harness.HarnessError as e:
        die("the stack failed: %s" % e)
    acked = thr["acked"] + lag["acked"]
    # A figure stands only when every event sent was acked and committed exactly once.
    invalid = ["%s: %d of %d events acked, %d rows committed" % (name, r["acked"], want,
                                                               r["committed"])
               for name, r, want in (("throughput", thr, args.events),
                                     ("lag", lag, args.rate * args.lag_seconds))
               if not r["acked"] == r["sent"] == want == r["committed"]]
    ok_rate = thr["committed_per_s"] >= TARGET_EVENTS_PER_S
    ok_lag = lag["lag_p99_ms"] <= TARGET_LAG_P99_MS
    ok_ledger = rows == acked and not problems and acked == thr["sent"] + lag["sent"]
    print()
    print("accountd benchmark (%d CPUs; %d keys, %d teams, %d end users, %d tags)"
          % (os.cpu_count(), args.keys, args.teams, args.end_users, args.tags))
    bad_thr = any(v.startswith("throughput") for v in invalid)
    bad_lag = any(v.startswith("lag") for v in invalid)
    print("  committed events/s, one accountd, full durability (spend_logs rows / window): %.0f"
          "  (target >= %d)  %s" % (thr["committed_per_s"], TARGET_EVENTS_PER_S,
                                   "INVALID" if bad_thr else "PASS" if ok_rate else "MISS"))
    print("  CPU per committed row: accountd %.1f us, mariadbd %.1f us"
          % (cpu_us["accountd"], cpu_us["mariadbd"]))
    print("  event -> committed at %d events/s: p50 %.1f ms, p99 %.1f ms  (target p99 <= %d ms)"
          "  %s" % (args.rate, lag["lag_p50_ms"], lag["lag_p99_ms"], TARGET_LAG_P99_MS,
                    "INVALID" if bad_lag else "PASS" if ok_lag else "MISS"))
    for v in invalid:
        print("   ! INVALID: " + v)
    print("  ledger: %d new rows for %d acknowledged events; invariants: %s (checked in %.1f s)"
          "  %s" % (rows, acked, "all hold" if not problems else "%d violated" % len(problems),
                    checked_s, "PASS" if ok_ledger else "MISS"))
    for p in problems[:10]:
        print("   ! " + p)
    if args.json:
        Path(args.json).write_text(json.dumps({"throughput": thr, "lag": lag, "cpu_us": cpu_us,
                                               "rows": rows, "problems": problems[:50],
                                               "invalid": invalid}, indent=1))
    sys.exit(3 if invalid else 1 if args.strict and not (ok_rate and ok_lag and ok_ledger)
             else 0)


if __name__ == "__main__":
    main()
