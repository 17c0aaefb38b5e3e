#!/usr/bin/env python3
"""report_bench.py - how fast reportd answers the spend reports over a quarter of
10 million requests.

Starts one private stack with tests/e2e/harness.py, writes a quarter's ledger straight
into MariaDB (report_gen.py: --rows log rows over --days days, --keys keys in --teams
teams, --customers customers, with the rollups exactly as accountd keeps them), checks
that the rollups equal the logs, then times each route --calls times, one call at a time,
each on a new connection (the whole answer read):

  GET /global/spend/report for the quarter, group_by team, customer, api_key, tag, model
      and user, and the api_key= form (the busiest key);
  GET /spend/logs for the busiest key and one day (the default page of 100 rows);
  GET /global/spend/tags for the quarter.

Prints per route the answer's size, p50 and p95, PASS/MISS against --target-ms (50 ms),
(a p95 needs at least 20 answered calls: with fewer, the slowest call is shown as "max of
N" and judged instead, an upper bound of that sample's p95),
the generation time and the database's size. --profile adds, per route, what MariaDB
spent on the route's statement (its slow log, long_query_time 0) and the statement's
plan (ANALYZE FORMAT=JSON: rows read, indexes, time without sending rows).

Run (after building, see tests/bench/README.md):
  TOLLGATE_DB_BUFFER_POOL=4G TOLLGATE_DB_LOG_FILE=1G tests/bench/report_bench.py
  tests/bench/report_bench.py --rows 200000          # a smoke run, about a minute
Binaries come from TOLLGATE_BIN or <repo>/build/bin. Exit 0 when it ran (--strict: 1
when a target is missed), 2 when it could not run.
"""

import argparse
import datetime
import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "e2e"))
import harness  # noqa: E402  (tests/e2e/harness.py)
import invariants  # noqa: E402
import report_coarse  # noqa: E402
import report_gen  # noqa: E402

GROUPS = ("team", "customer", "api_key", "tag", "model", "user")
# Fewer samples than this have no p95 apart from their maximum (nearest rank: the
# ceil(0.95 N)-th value is the N-th for every N < 20).
MIN_P95_SAMPLES = 20


def die(msg, code=2):
    print("report_bench: " + msg, file=sys.stderr)
    sys.exit(code)


class Db:
    """SQL as MariaDB's admin over the stack's socket, without the harness's 60 s limit."""

    def __init__(self, stack):
        self.stack = stack

    def run(self, text, timeout=600):
        p = subprocess.run(["bash", str(harness.MARIADB_SCRIPT), "sql", str(self.stack.db_dir),
                            harness.DB_NAME], input=text.encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError("SQL failed: %s\n%s" % (p.stderr.decode(errors="replace"),
                                                       text[:2000]))
        return [line.split("\t") for line in p.stdout.decode().split("\n") if line]


def routes(plan):
    q = "start_date=%s&end_date=%s" % (plan.start, plan.last_day)
    busiest = report_gen.key_token(0)
    out = [("report group_by=%s" % g, "/global/spend/report?%s&group_by=%s" % (q, g))
           for g in GROUPS]
    out.append(("report api_key=<busiest>", "/global/spend/report?%s&api_key=%s" % (q, busiest)))
    out.append(("spend/logs key, 1 day", "/spend/logs?api_key=%s&start_date=%s&end_date=%s"
                % (busiest, plan.last_day, plan.last_day)))
    out.append(("global/spend/tags", "/global/spend/tags?%s" % q))
    # the Usage page's calls: the 90 days (whole months and the days around them), the
    # whole months alone, the view's first page of logs
    first = (plan.start - datetime.timedelta(days=1)).replace(day=1)
    first = (first + datetime.timedelta(days=31)).replace(day=1)  # the first whole month
    end = plan.end.replace(day=1) - datetime.timedelta(days=1)      # the last whole month's end
    out.append(("ui/api/usage, the %d days" % plan.days, "/ui/api/usage?%s" % q))
    if first < end:
        out.append(("ui/api/usage, whole months",
                    "/ui/api/usage?start_date=%s&end_date=%s" % (first, end)))
    out.append(("ui/api/logs, first page", "/ui/api/logs?%s" % q))
    if first < end:
        out.append(("ui/api/usage csv, customers", "/ui/api/usage?start_date=%s&end_date=%s"
                    "&group_by=customer&format=csv" % (first, end)))
    # bench-key-0 (the busiest key) is user-0's, an internal user: its own spend only,
    # from daily_spend by user (user-0's keys make ~15 % of the traffic)
    out.append(("ui/api/usage, busiest user", "/ui/api/usage?%s" % q, "bench-key-0"))
    return out


def time_route(stack, path, calls, budget_s, key=None):
    """Times up to `calls` GETs with key (the master key by default; fewer calls when
    they take more than budget_s in all): (seconds of each, answer bytes)."""
    # A fresh connection per call: on a kept-alive one, Linux delays the client's ACK
    # (40 ms) while evhttp's second write waits for it (Nagle: reportd's sockets have
    # no TCP_NODELAY), which added ~40 ms to any answer of more than one segment.
    conn = http.client.HTTPConnection("127.0.0.1", stack.reportd_port, timeout=600)
    hdr = {"Authorization": "Bearer " + (key or stack.master_key), "Connection": "close"}
    times, size, errors, t_start = [], 0, [], time.monotonic()
    try:
        for _ in range(calls):
            t0 = time.perf_counter()
            try:
                conn.request("GET", path, headers=hdr)
                resp = conn.getresponse()
                body = resp.read()
            except (OSError, http.client.HTTPException) as e:  # e.g. reportd's 60 s timeout
                errors.append("no answer after %.1f s: %r" % (time.perf_counter() - t0, e))
                conn.close()
                if time.monotonic() - t_start > budget_s:
                    break
                continue
            conn.close()
            if resp.status == 200:
                times.append(time.perf_counter() - t0)
                size = len(body)
            else:
                errors.append("%d %s" % (resp.status, body[:200].decode(errors="replace")))
            if time.monotonic() - t_start > budget_s:
                break
    finally:
        conn.close()
    return times, size, errors


def pct(values, p):
    """The p-th percentile (integer p) of values by nearest rank: the ceil(p N / 100)-th
    smallest."""
    s = sorted(values)
    rank = -(-p * len(s) // 100)
    return s[max(0, rank - 1)]


def tail_figure(times):
    """(label, ms) of a route's tail: its p95 from MIN_P95_SAMPLES answers or more, else
    the slowest of the few it has ("max of N"); (label, None) when nothing answered."""
    if not times:
        return "no answer", None
    if len(times) >= MIN_P95_SAMPLES:
        return "p95", pct(times, 95) * 1000
    return "max of %d" % len(times), max(times) * 1000


def fmt_ms(ms):
    return "%9.1f ms" % ms if ms is not None else "        - ms"


def passed(r, target_ms):
    """PASS when the route's tail (p95, or max of N) is within the target and no call
    failed."""
    return r["tail_ms"] is not None and r["tail_ms"] <= target_ms and not r["errors"]


def db_size(db):
    rows = db.run("SELECT table_name, table_rows, data_length + index_length FROM"
                  " information_schema.tables WHERE table_schema = DATABASE()"
                  " ORDER BY data_length + index_length DESC")
    return [(n, int(r or 0), int(b or 0)) for n, r, b in rows]


def profile(stack, db, path):
    """One call with MariaDB's slow log on: each statement reportd ran for it, its
    server time and rows, and the ANALYZE of the longest one."""
    db.run("TRUNCATE mysql.slow_log; SET GLOBAL slow_query_log = 1;")
    try:
        t, _, _ = time_route(stack, path, 1, 0)
    finally:
        db.run("SET GLOBAL slow_query_log = 0;")
    stmts = db.run("SELECT TIME_TO_SEC(query_time) * 1000, rows_sent, rows_examined,"
                   " REPLACE(REPLACE(CONVERT(sql_text USING utf8mb4), '\\n', ' '), '\\t', ' ')"
                   " FROM mysql.slow_log WHERE sql_text NOT LIKE 'SET GLOBAL%'"
                   " AND sql_text NOT LIKE '%slow_log%' ORDER BY query_time DESC")
    out = {"http_ms": t[0] * 1000 if t else float("nan"), "statements": [
        {"ms": float(ms), "rows_sent": int(rs), "rows_examined": int(rx), "sql": sql}
        for ms, rs, rx, sql in stmts]}
    if stmts and stmts[0][3].lstrip().upper().startswith("SELECT"):
        plan = json.loads(db.run("ANALYZE FORMAT=JSON " + stmts[0][3], 3600)[0][0]
                          .replace("\\n", "\n").replace("\\t", "\t"))
        out["analyze_ms"] = plan["query_block"].get("r_total_time_ms")
        out["plan"] = plan
    return out


def plan_summary(plan):
    """The tables the plan reads: (table, access, key, rows read)."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if "table_name" in node:
                found.append("%s: %s%s, %s rows" % (
                    node["table_name"], node.get("access_type", "?"),
                    " " + node["key"] if node.get("key") else "",
                    node.get("r_rows", node.get("rows", "?"))))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(plan)
    return found


def prepare(s, args):
    """Generates and verifies the ledger: (plan, generation times, problems, seconds
    the check took, table sizes)."""
    plan = report_gen.Plan(args.rows, args.days, args.keys, args.teams, args.users,
                           args.customers, args.tags)
    db = Db(s)
    # long_query_time is copied into a session when it connects: set before reportd's
    # workers connect (on their first request), so --profile's slow log sees them.
    db.run("SET GLOBAL log_output = 'TABLE', long_query_time = 0, slow_query_log = 0;")
    print("generating %d log rows over %s .. %s ..." % (args.rows, plan.start, plan.last_day),
          flush=True)
    gen = report_gen.generate(plan, db.run, progress=lambda m: print(m, flush=True))
    print("  generated in %.0f s" % gen["total"], flush=True)
    t0 = time.monotonic()
    problems = report_gen.verify(plan, db.run)
    if args.invariants:
        problems += invariants.check(s, timeout=1800)
    checked = time.monotonic() - t0
    print("verified in %.0f s: %s" % (checked, "rollups equal the logs" if not problems
                                      else "%d differences" % len(problems)), flush=True)
    for p in problems[:10]:
        print("   ! " + p)
    return plan, gen, problems, checked, db_size(db)


def measure(s, plan, args):
    """Times every route (and profiles it with --profile)."""
    db = Db(s)
    results = []
    for name, path, *key in routes(plan):
        if args.only and args.only not in name:
            continue
        times, size, errors = time_route(s, path, args.calls, args.route_budget, *key)
        for e in errors[:3]:
            print("  ! %s: %s" % (name, e), flush=True)
        tail, tail_ms = tail_figure(times)
        r = {"route": name, "path": path, "bytes": size, "n": len(times), "errors": errors,
             "p50_ms": statistics.median(times) * 1000 if times else None,
             "p95_ms": tail_ms if tail == "p95" else None, "tail": tail, "tail_ms": tail_ms,
             "max_ms": max(times) * 1000 if times else None}
        if args.profile:
            r["profile"] = profile(s, db, path)
        results.append(r)
        print("  %-26s %12d B  p50 %s  %s %s  (%d answered calls)"
              % (name, size, fmt_ms(r["p50_ms"]), tail, fmt_ms(tail_ms), len(times)), flush=True)
    return results


def print_coarse(counts, rows):
    print()
    print("  coarser rollups (report_coarse.py; MariaDB's time, best of 3 ANALYZE, no rows"
          " sent): %s" % ", ".join("%s %d rows" % kv for kv in counts.items()))
    print("  %-28s %12s %10s %12s %10s" % ("statement", "now ms", "rows", "coarser ms", "rows"))
    for label, a_ms, a_rows, b_ms, b_rows in rows:
        print("  %-28s %12.1f %10d %12.1f %10d" % (label, a_ms, a_rows, b_ms, b_rows))


def run(args):
    with harness.Stack() as s:  # MariaDB's temporary tables: a tmpdir of its own
        plan, gen, problems, checked, sizes = prepare(s, args)
        results = measure(s, plan, args)
        if args.coarser:
            print("building coarser rollups (--coarser) ...", flush=True)
            coarse = report_coarse.estimate(Db(s), plan, report_gen.key_token(0))
            print_coarse(*coarse)
    return plan, gen, problems, checked, sizes, results


def print_table(args, plan, gen, problems, checked, sizes, results):
    print()
    print("reportd benchmark (%d CPUs; %d log rows over %d days, %d keys, %d teams, %d users,"
          " %d customers, %d tags)" % (os.cpu_count(), plan.rows, plan.days, plan.keys,
                                       plan.teams, plan.users, plan.customers, plan.tags))
    print("  generation: %.0f s (log rows %.0f s, their indexes %.0f s, rollups %.0f s,"
          " counters %.0f s); verification %.0f s: %s"
          % (gen["total"], gen["logs"], gen["indexes"], gen["rollups"], gen["counters"], checked,
             "rollups = logs, exactly" if not problems else "%d DIFFERENCES" % len(problems)))
    total = sum(b for _, _, b in sizes)
    print("  database: %.2f GB; %s" % (total / 1e9, ", ".join(
        "%s %.0f MB (~%d rows)" % (n, b / 1e6, r) for n, r, b in sizes[:4])))
    print()
    print("  %-26s %14s %12s %22s  %s" % ("route", "answer bytes", "p50", "p95 (or max of N)",
                                          "target p95 <= %d ms" % args.target_ms))
    for r in results:
        tail = fmt_ms(r["tail_ms"]).strip()
        tail = tail if r["tail"] == "p95" else "%s: %s" % (r["tail"], tail)
        print("  %-26s %14d %s %22s  %s  (%d answered calls%s)"
              % (r["route"], r["bytes"], fmt_ms(r["p50_ms"]), tail,
                 "PASS" if passed(r, args.target_ms) else "MISS", r["n"],
                 ", %d FAILED" % len(r["errors"]) if r["errors"] else ""))
    few = [r["route"] for r in results if r["tail"] != "p95"]
    if few:
        print("  (fewer than %d answered calls, so no p95: %s; their slowest call is judged)"
              % (MIN_P95_SAMPLES, ", ".join(few)))
    if args.profile:
        print()
        print("  where the time goes (one call each; MariaDB's slow log and ANALYZE):")
        for r in results:
            pr = r["profile"]
            st = pr["statements"]
            main = st[0] if st else {"ms": 0, "rows_sent": 0, "rows_examined": 0}
            print("  %-26s http %8.1f ms; SQL %8.1f ms (%d statements), %d rows sent, %d"
                  " examined; ANALYZE %s ms" % (r["route"], pr["http_ms"],
                                                sum(x["ms"] for x in st), len(st),
                                                main["rows_sent"], main["rows_examined"],
                                                "%.1f" % pr["analyze_ms"]
                                                if pr.get("analyze_ms") is not None else "-"))
            for line in plan_summary(pr.get("plan", {})):
                print("      " + line)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10000000, help="log rows (10000000)")
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--teams", type=int, default=50)
    ap.add_argument("--users", type=int, default=250)
    ap.add_argument("--customers", type=int, default=5000)
    ap.add_argument("--tags", type=int, default=10)
    ap.add_argument("--calls", type=int, default=20, help="calls per route (20)")
    ap.add_argument("--route-budget", type=float, default=120,
                    help="stop a route's calls after this many seconds (120)")
    ap.add_argument("--target-ms", type=float, default=50)
    ap.add_argument("--invariants", action="store_true",
                    help="also check every ledger invariant (tests/e2e/invariants.py; slow"
                         " beyond a million rows)")
    ap.add_argument("--profile", action="store_true",
                    help="per route: MariaDB's time for its statement and the plan")
    ap.add_argument("--coarser", action="store_true",
                    help="afterwards, time the reports' statements against coarser rollups"
                         " built ad hoc (report_coarse.py)")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    ap.add_argument("--only", metavar="TEXT", help="time only the routes whose name has TEXT")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args()
    try:
        out = run(args)
    except harness.HarnessError as e:
        die("the stack failed: %s" % e)
    print_table(args, *out)
    plan, gen, problems, checked, sizes, results = out
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": plan.rows, "generation": gen,
                                               "problems": problems[:50], "sizes": sizes,
                                               "results": results}, indent=1, default=str))
    missed = problems or any(not passed(r, args.target_ms) for r in results)
    sys.exit(1 if args.strict and missed else 0)


if __name__ == "__main__":
    main()
