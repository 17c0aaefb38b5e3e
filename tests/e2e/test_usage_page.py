"""test_usage_page.py - the Usage page (reportd's /ui) in a real browser.

Makes a known ledger through proxyd (three teams, an unassigned key, an internal
user's key, three models, three customers, four tags, 66 requests), puts a key near its
budget and a team over it, writes a calendar quarter of older rollups (the three months
before this one, tests/bench/report_gen.py,
ending before this month, so the month's figures stay the ledger's), computes from SQL
over spend_logs what the page must show, then runs tests/node/usage_page.mjs: Debian's
headless Chromium driven by npm playwright-core (tests/node, `npm ci` there first).
It checks sign-in (a wrong key shows the API's error), the default range (this month),
the totals and the top team, the chart's datasets per grouping, the log table's paging and
filter, the CSV downloads against the CSVs computed here from spend_logs (per UTC day and
group, summed with Decimal), and an internal user's own view. It prints the load times (the
README's figures) without judging them: timing is the benchmarks' matter (report_bench.py).

A month's end while the ledger is written makes the setup run once more on a fresh stack;
one while the browser runs is allowed for by the script (tests/node/usage_page.mjs).

Artifacts (kept after the run): TOLLGATE_BIN/../test-artifacts/usage-desktop.png,
usage-phone.png (375 px), usage-quarter.png and the downloaded CSVs, e.g.
build/test-artifacts/ for TOLLGATE_BIN=build/bin.
TOLLGATE_UI_QUARTER_ROWS: log rows of the quarter (default 100000; 0: no quarter).

Run from the repo root:  python3 -m unittest -v tests/e2e/test_usage_page.py
"""

import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import unittest
from decimal import ROUND_HALF_UP, Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))

import harness  # noqa: E402
import report_gen  # noqa: E402
from harness import MASTER_KEY, wait_for  # noqa: E402

NODE_DIR = harness.REPO / "tests" / "node"
CHROMIUM = "/usr/bin/chromium"
PAGE_SIZE = 50  # the page's log page size (app.js LOG_PAGE_SIZE)
QUARTER_ROWS = int(os.environ.get("TOLLGATE_UI_QUARTER_ROWS", "100000"))

TEAMS = [("ui-team-platform", "Platform"), ("ui-team-research", "Research"),
         ("ui-team-ops", None)]
ANALYST = "ui-analyst"  # an internal user: sees only its own key's spend
# key alias -> (team, owner)
KEYS = {"platform-prod": ("ui-team-platform", None), "platform-dev": ("ui-team-platform", None),
        "analyst": ("ui-team-research", ANALYST), "ops": ("ui-team-ops", None),
        "sandbox": (None, None)}
# (key alias, model, customer, tags, prompt tokens, completion tokens, requests)
LEDGER = [
    ("platform-prod", "gpt4o-group", "acme", ["project:alpha"], 1000, 200, 20),
    ("platform-prod", "llama3", "globex", [], 500, 100, 6),
    ("platform-dev", "finetune", "acme", ["project:beta", "env:dev"], 300, 50, 10),
    ("analyst", "gpt4o-group", "initech", ["project:alpha", "env:prod"], 700, 300, 12),
    ("ops", "llama3", None, ["env:prod"], 2000, 500, 8),
    ("sandbox", "llama3", "globex", [], 40, 10, 10),
]


def extra_models(stack):
    def dep(name, model, **params):
        return {"model_name": name, "litellm_params": dict(
            {"model": model, "api_base": stack.upstream_base,
             "api_key": "os.environ/GROQ_API_KEY"}, **params)}
    return [dep("gpt4o-group", "openai/gpt-4o"),
            dep("finetune", "openai/my-finetune", input_cost_per_token="0.000006",
                output_cost_per_token="0.00003")]


def exact(d):
    """A DECIMAL as the API writes money: exact, no trailing zeros ("0" for zero)."""
    d = Decimal(d)
    if d == 0:
        return "0"
    s = format(d, "f")
    return s.rstrip("0").rstrip(".") if "." in s else s


def shown(d):
    """The page's money format, written again here: $ and 2 decimals (half up) from
    $0.01, else 3 significant digits (half up), never $0.00 for a non-zero amount."""
    d = Decimal(d)
    if d == 0:
        return "$0.00"
    if abs(d) >= Decimal("0.01"):
        return ("-" if d < 0 else "") + "${:,}".format(abs(d).quantize(Decimal("0.01"),
                                                                         ROUND_HALF_UP))
    q = Decimal(1).scaleb(abs(d).adjusted() - 2)  # 3 significant digits
    return ("-" if d < 0 else "") + "$" + exact(abs(d).quantize(q, ROUND_HALF_UP))


def csv_cell(text):
    """A CSV cell as reportd writes text: in quotes (doubled inside) when it holds a comma,
    quote, CR or LF; a leading = + - or @ shown with ' so a spreadsheet never runs it."""
    quoted = any(c in text for c in ',"\r\n')
    text = ("'" if text[:1] in ("=", "+", "-", "@") else "") + text.replace('"', '""')
    return '"%s"' % text if quoted else text


def artifacts_dir():
    d = (harness.bin_dir() / ".." / "test-artifacts").resolve()
    d.mkdir(parents=True, exist_ok=True)
    return d


@unittest.skipUnless(shutil.which("node"), "node is not installed")
@unittest.skipUnless(os.access(CHROMIUM, os.X_OK), "chromium is not installed")
class UsagePageTest(harness.StackTestCase):
    stack_options = {"extra_models": extra_models}

    @classmethod
    def setUpClass(cls):
        # The page's default range is this month (UTC) and the ledger must be in it (again
        # when a month ended while it was written).
        def write():
            t0 = time.monotonic()
            cls.write_ledger()
            cls.ledger_s = time.monotonic() - t0

        month_start = cls.start_with_ledger(write, harness.utc_month, "UTC month")
        next_month = (month_start + datetime.timedelta(days=32)).replace(day=1)
        cls.month = (month_start.isoformat(), (next_month - datetime.timedelta(days=1)).isoformat())

        cls.quarter, cls.quarter_s = None, 0.0
        if QUARTER_ROWS > 0:
            t0 = time.monotonic()
            cls.quarter = cls.write_quarter(month_start)
            cls.quarter_s = time.monotonic() - t0

    @classmethod
    def write_ledger(cls):
        """The teams, the internal user, the keys, LEDGER's requests through proxyd (now), a
        key near its budget and a team over it."""
        s = cls.stack
        for team_id, alias in TEAMS:
            body = {"team_id": team_id}
            if alias:
                body["team_alias"] = alias
            cls.ok(s.report("POST", "/team/new", body, key=MASTER_KEY))
        cls.ok(s.report("POST", "/user/new", {"user_id": ANALYST, "user_role": "internal_user"},
                        key=MASTER_KEY))
        cls.keys = {}
        for alias, (team, user) in KEYS.items():
            body = {"key_alias": alias}
            if team:
                body["team_id"] = team
            if user:
                body["user_id"] = user
            cls.keys[alias] = cls.ok(s.report("POST", "/key/generate", body, key=MASTER_KEY))
        n = 0
        for alias, model, customer, tags, pt, ct, count in LEDGER:
            fields = {}
            if customer:
                fields["user"] = customer
            if tags:
                fields["metadata"] = {"tags": tags}
            for _ in range(count):
                cls.ok(s.chat(cls.keys[alias]["key"], model=model, prompt_tokens=pt,
                              completion_tokens=ct, **fields))
                n += 1
        wait_for(lambda: int(s.sql_value("SELECT COUNT(*) FROM spend_logs")) == n, 20,
                 message="the ledger has every request")
        # a key near its budget (~91 %) and a team over it
        dev = cls.keys["platform-dev"]
        dev_spend = Decimal(wait_for(lambda: s.sql_value(
            "SELECT spend FROM api_keys WHERE token = '%s' AND spend > 0" % dev["token"]), 10))
        cls.ok(s.report("POST", "/key/update", {"key": dev["key"], "max_budget": float(
            (dev_spend * Decimal("1.1")).quantize(Decimal("1e-6")))}, key=MASTER_KEY))
        cls.ok(s.report("POST", "/team/update", {"team_id": "ui-team-research",
                                                 "max_budget": 0.05}, key=MASTER_KEY))

    @staticmethod
    def ok(answer):
        st, _, body = answer
        assert st == 200, "%d %s" % (st, body)
        return body

    @classmethod
    def write_quarter(cls, end):
        """A calendar quarter of logs and their rollups: the three months before `end`, the
        first of this month (report_gen's population:
        keys bench-key-K, teams team-T, customers customer-C, tags tag-N), as accountd
        would have written them; the counters are left alone (the page reads the rollups,
        and the ledger's own keys and customers already have theirs)."""
        s = cls.stack
        first = end
        for _ in range(3):
            first = (first - datetime.timedelta(days=1)).replace(day=1)
        plan = report_gen.Plan(rows=QUARTER_ROWS, days=(end - first).days, keys=500, teams=40,
                               users=200, customers=3000, tags=10, end=end)

        def sql(text, timeout):  # big enough for the INSERT ... SELECTs' temporary tables in
            # memory (on disk, some runs here failed with "Error on delete of /tmp/#sql-temptable")
            return s.sql("SET SESSION tmp_table_size = 1073741824,"
                         " max_heap_table_size = 1073741824;\n" + text)
        sql(report_gen.population_sql(plan), 600)
        for first in range(1, plan.rows + 1, report_gen.CHUNK):
            sql(report_gen.SESSION + report_gen.logs_sql(
                plan, first, min(plan.rows, first + report_gen.CHUNK - 1)), 600)
        sql(report_gen.SESSION + "".join(report_gen.rollup_day_sql(
            plan.start + datetime.timedelta(days=d)) for d in range(plan.days)), 600)
        sql(report_gen.SESSION + report_gen.usage_rollup_sql(plan.start, plan.end), 600)
        sql("ANALYZE TABLE spend_logs, daily_spend, daily_tag_spend, daily_tag_totals,"
            " usage_rollup;", 600)
        return plan

    # -- what the page must show, from spend_logs

    def logs_in(self, start, end, where="1 = 1", what="SUM(spend), COUNT(*), SUM(total_tokens)"):
        return self.stack.sql(
            "SELECT %s FROM spend_logs WHERE start_time >= '%s' AND start_time < '%s'"
            " + INTERVAL 1 DAY AND %s" % (what, start, end, where))

    def usage_csv(self, group, where="1 = 1"):
        """The CSV of the month's view by group (team, api_key or tag), from spend_logs and
        what this test made: a line per UTC day and group (ids byte-wise, none first) with
        the exact spend (summed here with Decimal), requests and tokens. The log rows are
        read one by one (no GROUP BY: no temporary table in the shared /tmp) and a request
        counts once in each of its distinct tags."""
        start, end = self.month
        rows = self.stack.sql(
            "SELECT DATE_FORMAT(l.start_time, '%%Y-%%m-%%d'), COALESCE(l.team_id, ''), l.api_key,"
            " l.request_tags, l.spend, l.prompt_tokens, l.completion_tokens, l.total_tokens"
            " FROM spend_logs l WHERE l.start_time >= '%s' AND l.start_time < '%s'"
            " + INTERVAL 1 DAY AND %s" % (start, end, where))
        sums = {}
        for day, team, key, tags, spend, *tokens in rows:
            gids = {"team": [team], "api_key": [key],
                    "tag": sorted({t for t in json.loads(tags or "[]") if t})}[group]
            for gid in gids:
                acc = sums.setdefault((day, gid), [Decimal(0), 0, 0, 0, 0])
                for i, v in enumerate([Decimal(spend), 1] + [int(t) for t in tokens]):
                    acc[i] += v
        teams = dict(TEAMS)
        keys = {hashlib.sha256(k["key"].encode()).hexdigest(): [alias, "sk-..." + k["key"][-4:]]
                for alias, k in self.keys.items()}
        header, names = {
            "team": ("team_id,team_name",
                     lambda gid: [teams[gid] or gid] if gid else ["Unassigned"]),
            "api_key": ("api_key,key_alias,key_name", lambda gid: keys[gid]),
            "tag": ("tag", lambda gid: [])}[group]
        lines = ["date,%s,spend,requests,prompt_tokens,completion_tokens,total_tokens" % header]
        for day, gid in sorted(sums, key=lambda k: (k[0], k[1].encode())):
            spend, *counts = sums[(day, gid)]
            lines.append(",".join([day] + [csv_cell(c) for c in [gid] + names(gid)]
                                  + [exact(spend)] + [str(c) for c in counts]))
        return "".join(line + "\r\n" for line in lines)

    def expected(self):
        s, (start, end) = self.stack, self.month
        spend, requests, tokens = self.logs_in(start, end)[0]
        teams = s.sql(
            "SELECT COALESCE(t.team_alias, l.team_id, 'Unassigned'), l.team_id, SUM(l.spend)"
            " FROM spend_logs l LEFT JOIN teams t ON t.team_id = l.team_id"
            " WHERE l.start_time >= '%s' AND l.start_time < '%s' + INTERVAL 1 DAY"
            " GROUP BY l.team_id ORDER BY SUM(l.spend) DESC" % (start, end))
        keys = self.logs_in(start, end, what="api_key, SUM(spend)",
                            where="1 = 1 GROUP BY api_key ORDER BY SUM(spend) LIMIT 1")
        ispend, ireq, _ = self.logs_in(start, end, "user = '%s'" % ANALYST)[0]
        ikey_days = self.logs_in(start, end, "user = '%s'" % ANALYST,
                                 what="COUNT(DISTINCT DATE(start_time), api_key)")[0][0]
        iteams = s.sql("SELECT DISTINCT COALESCE(t.team_alias, l.team_id) FROM spend_logs l"
                       " LEFT JOIN teams t ON t.team_id = l.team_id WHERE l.user = '%s'"
                       " AND l.start_time >= '%s'" % (ANALYST, start))
        ids = [r[0] for r in self.logs_in(start, end, what="request_id")]
        ops = self.logs_in(start, end, "team_id = 'ui-team-ops'", what="COUNT(*)")[0][0]
        self.assertEqual(int(requests), 66)
        self.assertLessEqual(int(requests), 2 * PAGE_SIZE)  # the script pages 1 and 2
        st, _, err = s.report("GET", "/ui/api/usage?start_date=%s&end_date=%s" % (start, end),
                              key="sk-not-a-key")
        self.assertEqual(st, 401, err)
        too_long = "2000-01-01"  # more than the API's 366 days to the month's end
        st, _, long_err = s.report("GET", "/ui/api/usage?start_date=%s&end_date=%s"
                                   % (too_long, end), key=MASTER_KEY)
        self.assertEqual(st, 400, long_err)
        return {
            "totals": {"spend": exact(spend), "spend_text": shown(spend),
                       "requests": int(requests), "total_tokens": int(tokens)},
            "top_team": {"name": teams[0][0], "spend": exact(teams[0][2]),
                         "spend_text": shown(teams[0][2])},
            "smallest_key": {"spend": exact(keys[0][1]), "spend_text": shown(keys[0][1])},
            "budgets": [
                {"kind": "key", "id": self.keys["platform-dev"]["token"], "over": False},
                {"kind": "team", "id": "ui-team-research", "over": True}],
            "logs": {"total": int(requests), "page_size": PAGE_SIZE, "request_ids": ids,
                     "filter_team": {"id": "ui-team-ops", "total": int(ops),
                                     "shown": ["ui-team-ops"]}},
            "internal": {"spend": exact(ispend), "requests": int(ireq), "key_days": int(ikey_days),
                         "teams": [r[0] for r in iteams]},
            "wrong_key_error": err["error"]["message"],
            "too_long": {"start": too_long, "error": long_err["error"]["message"]},
            "empty": {"end": "2000-01-31"},
            "team_names": sorted(r[0] for r in teams),
            "models": sorted(r[0] for r in self.logs_in(start, end, what="DISTINCT model")),
            "customers": sorted(r[0] or "No customer"
                                for r in self.logs_in(start, end, what="DISTINCT end_user")),
            "csv": {"tag": self.usage_csv("tag"), "api_key": self.usage_csv("api_key"),
                    "team": self.usage_csv("team"),
                    "internal": self.usage_csv("api_key", "l.user = '%s'" % ANALYST)},
        }

    def test_usage_page(self):
        self.assertTrue((NODE_DIR / "node_modules" / "playwright-core").is_dir(),
                        "run `npm ci` in tests/node first")
        self.assertEqual(shown("0.0000028"), "$0.0000028")  # the formatter of the checks
        self.assertEqual(shown("1234.565"), "$1,234.57")
        self.assertEqual(shown("0.0099999"), "$0.01")
        expected = self.expected()
        art = artifacts_dir()
        cfg = {"url": "http://127.0.0.1:%d" % self.stack.reportd_port,
               "master_key": MASTER_KEY, "internal_key": self.keys["analyst"]["key"],
               "wrong_key": "sk-not-a-key", "artifacts": str(art),
               "month": {"start": self.month[0], "end": self.month[1]}, "expected": expected,
               "quarter": None if self.quarter is None else {
                   "start": self.quarter.start.isoformat(),
                   "end": self.quarter.last_day.isoformat()}}
        cfg_path = self.stack.dir / "usage_page.json"
        cfg_path.write_text(json.dumps(cfg))
        t0 = time.monotonic()
        p = subprocess.run(["node", "usage_page.mjs", str(cfg_path)], cwd=str(NODE_DIR),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=180)
        browser_s = time.monotonic() - t0
        lines = p.stdout.decode().strip().splitlines()
        seen = json.loads(lines[-1]) if lines else {}
        self.assertEqual(p.returncode, 0, "%s\nchecks passed: %s" % (
            p.stderr.decode()[-3000:], seen.get("checks")))

        # the chart's datasets are the groups of the ledger, per grouping
        self.assertEqual(sorted(seen["labels"]["team"]), expected["team_names"])
        self.assertEqual(sorted(seen["labels"]["api_key"]), sorted(KEYS))
        self.assertEqual(sorted(seen["labels"]["model"]), expected["models"])
        self.assertEqual(sorted(seen["labels"]["customer"]), expected["customers"])
        self.assertEqual(sorted(seen["labels"]["tag"]),
                         ["env:dev", "env:prod", "project:alpha", "project:beta"])

        # the load times, printed (the README's figures), not judged: timing is the
        # benchmarks' matter, and a limit here would fail under ASan on 2 busy cores
        load, q = seen["load"], seen.get("quarter")
        summary = {"ledger_s": round(self.ledger_s, 1), "quarter_gen_s": round(self.quarter_s, 1),
                   "browser_s": round(browser_s, 1), "month": self.month,
                   "default_ranges": seen["default_ranges"], "load": load, "quarter": q,
                   "artifacts": str(art)}
        if self.quarter is not None:
            summary["quarter_rollup_rows"] = int(self.stack.sql_value(
                "SELECT COUNT(*) FROM daily_spend WHERE day < '%s'" % self.month[0]))
            summary["quarter_usage_rollup_rows"] = int(self.stack.sql_value(
                "SELECT COUNT(*) FROM usage_rollup WHERE period < '%s'" % self.month[0]))
            t0 = time.monotonic()
            st, _, _ = self.stack.report("GET", "/ui/api/usage?start_date=%s&end_date=%s"
                                         % (self.quarter.start, self.quarter.last_day),
                                         key=MASTER_KEY)
            summary["quarter_api_ms"] = round((time.monotonic() - t0) * 1000)
            self.assertEqual(st, 200)
            # 90 days from mid-month: whole months and ~45 days of day rows around them
            start = self.quarter.start + datetime.timedelta(days=15)
            t0 = time.monotonic()
            st, _, _ = self.stack.report("GET", "/ui/api/usage?start_date=%s&end_date=%s"
                                         % (start, start + datetime.timedelta(days=89)),
                                         key=MASTER_KEY)
            summary["unaligned_90_days_api_ms"] = round((time.monotonic() - t0) * 1000)
            self.assertEqual(st, 200)
        print("\nusage page: %s" % json.dumps(summary), file=sys.stderr)
        if self.quarter is not None:
            spend, requests, _ = self.logs_in(self.quarter.start, self.quarter.last_day)[0]
            self.assertEqual(int(requests), QUARTER_ROWS)
            self.assertEqual((q["spend"], int(q["requests"])), (exact(spend), int(requests)))
        for shot in seen["screenshots"]:
            self.assertGreater(os.path.getsize(shot), 10000, shot)


if __name__ == "__main__":
    unittest.main()
