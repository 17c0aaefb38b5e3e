"""test_reports.py - reports agree with the raw logs.

/global/spend/report reads the daily rollups accountd keeps; here a random ledger
(event-gen's population of keys, teams, end users and tags, plus events that started on
earlier days) is written through accountd, and every figure of the report, in each
group_by form, is compared with the SQL sum over spend_logs for the same day, group, model
and key, exactly (DECIMAL against DECIMAL).

Run from the repo root:  python3 -m unittest -v tests/e2e/test_reports.py
"""

import csv
import datetime
import hashlib
import io
import os
import random
import subprocess
import sys
import time
import unittest
import uuid
from decimal import ROUND_HALF_UP, Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))

import harness  # noqa: E402
import invariants  # noqa: E402
from accountd_bench import seed  # noqa: E402
from harness import MASTER_KEY  # noqa: E402

KEYS, TEAMS = 12, 4
DAY_S = 86400
# the ledger's sizes and old requests are drawn from this seed, and event-gen's draws
SEED = int(os.environ.get("TOLLGATE_TEST_SEED") or time.time())


def as_json_money(d):
    """An exact amount as reportd writes it: rounded half up to 10 decimals, %.15g."""
    return Decimal("%.15g" % float(d.quantize(Decimal("1e-10"), rounding=ROUND_HALF_UP)))


class SeededFailure(AssertionError):
    """A failed check that names the seed of the ledger it was made on."""

    def __str__(self):
        return "%s\n(ledger seed %d: TOLLGATE_TEST_SEED=%d draws the same ledger)" % (
            super().__str__(), SEED, SEED)


class ReportTest(harness.StackTestCase):
    failureException = SeededFailure

    @classmethod
    def setUpClass(cls):
        # The ledger spans today and the three days before it (again when midnight passed
        # meanwhile).
        today = cls.start_with_ledger(lambda: cls.write_ledger(random.Random(SEED)))
        cls.today = today
        cls.start = (today - datetime.timedelta(days=3)).isoformat()
        cls.end = today.isoformat()

    @classmethod
    def write_ledger(cls, rnd):
        """event-gen's population and events (now), and four requests of a key without
        team that started 1, 1, 2 and 3 days ago."""
        s = cls.stack
        seed(s, KEYS, TEAMS)
        s.sql("UPDATE teams SET team_alias = NULL WHERE team_id = 'bench-team-3'")  # id as name
        p = subprocess.run(
            [str(harness.bin_dir() / "event-gen"), "--seed", str(SEED),
             "--keys", str(KEYS), "--teams", str(TEAMS),
             "--end-users", str(rnd.randint(20, 40)), "--tags", "4", "--batch", "50",
             "--events", str(rnd.randint(1500, 2500)), "tcp://127.0.0.1:%d" % s.events_port],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        assert p.returncode == 0, "seed %d: %s" % (SEED, p.stderr.decode())
        token = s.sql_value("SELECT token FROM api_keys LIMIT 1")
        for days_ago in (1, 1, 2, 3):  # requests that started on earlier days (no team)
            start_ms = int((time.time() - days_ago * DAY_S) * 1000)
            p = subprocess.run(
                [str(harness.bin_dir() / "send-events"), "tcp://127.0.0.1:%d" % s.events_port,
                 "old-" + uuid.uuid4().hex, token, "groq/llama-3.1-8b-instant",
                 str(rnd.randint(1, 5000)), str(rnd.randint(1, 5000)), "1", str(start_ms)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
            assert p.returncode == 0, "seed %d: %s" % (SEED, p.stdout + p.stderr)

    def report(self, group_by):
        st, _, body = self.stack.report(
            "GET", "/global/spend/report?start_date=%s&end_date=%s&group_by=%s"
            % (self.start, self.end, group_by), key=MASTER_KEY)
        self.assertEqual(st, 200, body)
        return body

    def logs_by(self, group_sql, join="", table="spend_logs"):
        """{(day, group, model, api_key): (spend, total_tokens)} from spend_logs."""
        rows = self.stack.sql(
            "SELECT DATE_FORMAT(l.start_time, '%%Y-%%m-%%dT00:00:00+00:00'), %s, l.model,"
            " l.api_key, SUM(l.spend), SUM(l.total_tokens) FROM %s l %s"
            " WHERE l.start_time >= '%s' AND l.start_time < '%s' + INTERVAL 1 DAY"
            " GROUP BY 1, 2, 3, 4" % (group_sql, table, join, self.start, self.end))
        return {(r[0], r[1], r[2], r[3]): (Decimal(r[4]), int(r[5])) for r in rows}

    def check(self, form, list_key, item_key, expected):
        seen, days = {}, self.report(form)
        self.assertEqual([d["group_by_day"] for d in days],
                         sorted({k[0] for k in expected}))
        for day in days:
            for group in day[list_key]:
                total = Decimal(0)
                for m in group["metadata"]:
                    seen[(day["group_by_day"], group[item_key], m["model"], m["api_key"])] = (
                        m["spend"], m["total_tokens"])
                    total += m["spend"]
                # the group's total is the exact sum of its lines (both rounded to JSON)
                self.assertAlmostEqual(group["total_spend"], total, delta=Decimal("1e-9"))
        self.assertEqual(set(seen), set(expected))
        for k, (spend, tokens) in expected.items():
            self.assertEqual(seen[k][1], tokens, k)
            self.assertEqual(seen[k][0], as_json_money(spend), k)

    def test_team_report_equals_logs(self):
        expected = self.logs_by("COALESCE(t.team_alias, l.team_id, 'Unassigned Team')",
                                "LEFT JOIN teams t ON t.team_id = l.team_id")
        self.assertEqual(len({k[0] for k in expected}), 4, "the ledger spans 4 days")
        self.check("team", "teams", "team_name", expected)

    def test_customer_report_equals_logs(self):
        self.check("customer", "customers", "customer", self.logs_by("l.end_user"))

    def test_tag_model_user_reports_equal_logs(self):
        self.check("tag", "tags", "tag", self.logs_by("l.tag", table=invariants.TAGGED_LOGS))
        self.check("model", "models", "model", self.logs_by("l.model"))
        self.check("user", "users", "user", self.logs_by("l.user"))

    def test_csv_report(self):
        # a name a spreadsheet would run as a formula, with a comma and quotes to escape
        self.stack.sql("UPDATE teams SET team_alias = '=SUM(A1),\\\"x\\\"'"
                       " WHERE team_id = 'bench-team-2'")
        st, headers, text = self.stack.report(
            "GET", "/global/spend/report?start_date=%s&end_date=%s&format=csv"
            % (self.start, self.end), key=MASTER_KEY)
        self.assertEqual(st, 200, text)
        self.assertTrue(headers["content-type"].startswith("text/csv"))
        self.assertIn("attachment", headers["content-disposition"])
        rows = list(csv.reader(io.StringIO(text)))
        self.assertEqual(rows[0], ["date", "team", "model", "spend", "total_tokens"])
        want = {}
        for (day, team, model, _key), (spend, tokens) in self.logs_by(
                "COALESCE(t.team_alias, l.team_id, 'Unassigned Team')",
                "LEFT JOIN teams t ON t.team_id = l.team_id").items():
            team = "'" + team if team[0] in "=+-@" else team  # shown, never run
            w = want.setdefault((day[:10], team, model), [Decimal(0), 0])
            w[0] += spend
            w[1] += tokens
        got = {(r[0], r[1], r[2]): (Decimal(r[3]), int(r[4])) for r in rows[1:]}
        self.assertEqual(got, {k: (v[0].quantize(Decimal("1e-10"), rounding=ROUND_HALF_UP),
                                   v[1]) for k, v in want.items()})
        self.assertEqual(len(rows) - 1, len(got))  # one row per day, team and model
        self.assertIn("'=SUM(A1),\"x\"", {r[1] for r in rows})
        st, _, body = self.stack.report(
            "GET", "/global/spend/report?start_date=%s&end_date=%s&format=xml"
            % (self.start, self.end), key=MASTER_KEY)
        self.assertEqual((st, body["error"]["param"]), (400, "format"))

    def key_form(self, query):
        st, _, body = self.stack.report(
            "GET", "/global/spend/report?start_date=%s&end_date=%s&%s"
            % (self.start, self.end, query), key=MASTER_KEY)
        self.assertEqual(st, 200, body)
        return body

    def check_key_form(self, body, where=""):
        rows = self.stack.sql(
            "SELECT api_key, model, SUM(spend), SUM(prompt_tokens), SUM(completion_tokens)"
            " FROM spend_logs WHERE start_time >= '%s' AND start_time < '%s' + INTERVAL 1 DAY %s"
            " GROUP BY api_key, model" % (self.start, self.end, where))
        want = {}
        for key, model, spend, pin, pout in rows:
            k = want.setdefault(key, {"cost": Decimal(0), "in": 0, "out": 0, "models": {}})
            k["cost"] += Decimal(spend)
            k["in"] += int(pin)
            k["out"] += int(pout)
            k["models"][model] = (as_json_money(Decimal(spend)), int(pin), int(pout))
        self.assertEqual([k["api_key"] for k in body],
                         sorted(want, key=lambda k: (-want[k]["cost"], k)))  # highest cost first
        for k in body:
            w = want[k["api_key"]]
            self.assertEqual((k["total_cost"], k["total_input_tokens"], k["total_output_tokens"]),
                             (as_json_money(w["cost"]), w["in"], w["out"]))
            self.assertEqual({m["model"]: (m["total_cost"], m["total_input_tokens"],
                                           m["total_output_tokens"]) for m in k["model_details"]},
                             w["models"])
        return want

    def test_api_key_forms_equal_logs(self):
        self.assertEqual(len(self.check_key_form(self.key_form("group_by=api_key"))), KEYS)
        token = hashlib.sha256(b"bench-key-3").hexdigest()
        # a raw key is hashed first; the hash works as well; precedence: api_key first
        for q in ("api_key=bench-key-3", "api_key=" + token,
                  "api_key=bench-key-3&internal_user_id=bench-user-5&team_id=bench-team-0"
                  "&group_by=customer"):
            body = self.key_form(q)
            self.assertEqual([k["api_key"] for k in body], [token], q)
            self.check_key_form(body, "AND api_key = '%s'" % token)
        # internal_user_id: that user's keys (before team_id / customer_id)
        body = self.key_form("internal_user_id=bench-user-5&team_id=bench-team-0")
        self.check_key_form(body, "AND user = 'bench-user-5'")
        self.assertEqual(len(body), 1)

    def test_team_and_customer_filters(self):
        # team_id (before group_by): the team form, that team only
        body = self.key_form("team_id=bench-team-1&group_by=customer")
        names = {t["team_name"] for d in body for t in d["teams"]}
        self.assertEqual(names, {"Bench team 1"})
        total = sum(t["total_spend"] for d in body for t in d["teams"])
        self.assertAlmostEqual(total, Decimal(self.stack.sql_value(
            "SELECT SUM(spend) FROM spend_logs WHERE team_id = 'bench-team-1'")),
            delta=Decimal("1e-8"))
        customer = self.stack.sql_value("SELECT end_user FROM spend_logs"
                                        " WHERE end_user IS NOT NULL LIMIT 1")
        body = self.key_form("customer_id=" + customer)
        self.assertEqual({c["customer"] for d in body for c in d["customers"]}, {customer})

    def test_bad_group_by_names_it(self):
        st, _, body = self.stack.report(
            "GET", "/global/spend/report?start_date=%s&end_date=%s&group_by=nope"
            % (self.start, self.end), key=MASTER_KEY)
        self.assertEqual(st, 400, body)
        self.assertEqual(body["error"]["param"], "group_by")

    def get(self, path, key=MASTER_KEY):
        st, _, body = self.stack.report("GET", path, key=key)
        self.assertEqual(st, 200, body)
        return body

    def test_global_spend_keys(self):
        body = self.get("/global/spend/keys?limit=5")
        rows = self.stack.sql("SELECT token, key_name, spend FROM api_keys"
                              " ORDER BY spend DESC, token LIMIT 5")
        self.assertEqual([(k["api_key"], k["key_name"], k["total_spend"]) for k in body],
                         [(r[0], r[1], as_json_money(Decimal(r[2]))) for r in rows])
        self.assertEqual(len(self.get("/global/spend/keys")), KEYS)  # default limit 100

    def test_global_spend_models(self):
        body = self.get("/global/spend/models")
        rows = self.stack.sql("SELECT model, SUM(spend) FROM spend_logs GROUP BY model")
        self.assertEqual({m["model"]: m["total_spend"] for m in body},
                         {r[0]: as_json_money(Decimal(r[1])) for r in rows})

    def tag_logs(self, dated, only=None):
        rows = self.stack.sql(  # each tag once per request, as accountd counts it
            "SELECT l.tag, SUM(l.spend), COUNT(*) FROM %s l WHERE 1 = 1 %s GROUP BY l.tag"
            % (invariants.TAGGED_LOGS,
               "AND l.start_time >= '%s' AND l.start_time < '%s' + INTERVAL 1 DAY"
               % (self.start, self.end) if dated else ""))
        return {r[0]: (as_json_money(Decimal(r[1])), int(r[2])) for r in rows
                if only is None or r[0] in only}

    def test_tag_summaries(self):
        dates = "start_date=%s&end_date=%s" % (self.start, self.end)
        body = self.get("/global/spend/tags?" + dates)
        self.assertEqual({t["name"]: (t["spend"], t["log_count"]) for t in body["spend_per_tag"]},
                         self.tag_logs(True))
        self.assertGreater(len(body["spend_per_tag"]), 1)
        only = [t["name"] for t in body["spend_per_tag"]][:2]
        body = self.get("/global/spend/tags?%s&tags=%s" % (dates, ",".join(only)))
        self.assertEqual({t["name"]: (t["spend"], t["log_count"]) for t in body["spend_per_tag"]},
                         self.tag_logs(True, only))
        body = self.get("/spend/tags")
        self.assertEqual({t["individual_request_tag"]: (t["total_spend"], t["log_count"])
                          for t in body}, self.tag_logs(False))

    def test_spend_route_refusals(self):
        st, _, gen = self.stack.report("POST", "/key/generate", {}, key=MASTER_KEY)
        self.assertEqual(st, 200, gen)
        st, _, reader = self.stack.report("POST", "/key/generate",
                                          {"permissions": {"get_spend_routes": True}},
                                          key=MASTER_KEY)
        self.assertEqual(st, 200, reader)
        for path in ("/global/spend/keys", "/global/spend/models", "/global/spend/tags",
                     "/spend/tags"):
            self.assertEqual(self.stack.report("GET", path)[0], 401, path)
            self.assertEqual(self.stack.report("GET", path, key="sk-bad")[0], 401, path)
            st, _, body = self.stack.report("GET", path, key=gen["key"])
            self.assertEqual((st, body["error"]["type"]), (403, "permission_error"), path)
            self.assertEqual(self.stack.report("GET", path, key=reader["key"])[0], 200, path)
        # the reset is the master key's alone, whatever a key's permissions
        st, _, body = self.stack.report("POST", "/global/spend/reset", key=reader["key"])
        self.assertEqual((st, body["error"]["type"]), (403, "permission_error"))
        self.assertEqual(self.stack.report("GET", "/global/spend/keys?limit=0")[0], 401)
        st, _, body = self.stack.report("GET", "/global/spend/keys?limit=0", key=MASTER_KEY)
        self.assertEqual((st, body["error"]["param"]), (400, "limit"))

    def test_ledger_invariants(self):
        self.assertEqual(invariants.check(self.stack), [])
        # daily_tag_totals' check sees a drift in any of its sums (restored after)
        s = self.stack
        day, tag = s.sql("SELECT day, tag FROM daily_tag_totals ORDER BY day, tag LIMIT 1")[0]
        where = " WHERE day = '%s' AND tag = '%s'" % (day, tag)
        for change in ("spend = spend + 0.00000000000000000001", "total_tokens = total_tokens + 1",
                       "failed_requests = failed_requests + 1"):
            s.sql("UPDATE daily_tag_totals SET %s%s" % (change, where))
            try:
                self.assertEqual([p for p in invariants.check(s) if "daily_tag_totals" in p],
                                 ["daily_tag_totals != the logs | %s | %s" % (day, tag)], change)
            finally:
                s.sql("UPDATE daily_tag_totals SET %s%s"
                      % (change.replace("+", "-"), where))
        self.assertEqual(invariants.check(s), [])


class SpendResetTest(harness.StackTestCase):
    """/global/spend/reset zeroes keys and teams (LiteLLM's scope) and keeps the logs."""

    def test_reset(self):
        s = self.stack
        st, _, team = s.report("POST", "/team/new", {"team_id": "reset-team"}, key=MASTER_KEY)
        self.assertEqual(st, 200, team)
        st, _, k = s.report("POST", "/key/generate", {"team_id": "reset-team"}, key=MASTER_KEY)
        self.assertEqual(st, 200, k)
        st, headers, body = s.chat(k["key"], prompt_tokens=100, completion_tokens=100)
        self.assertEqual(st, 200, body)
        harness.wait_for(lambda: Decimal(s.sql_value(
            "SELECT spend FROM teams WHERE team_id = 'reset-team'")) > 0, 10)
        st, _, body = s.report("POST", "/global/spend/reset", key=MASTER_KEY)
        self.assertEqual((st, body), (200, {"message": "Spend for all API Keys and Teams reset"
                                                       " successfully", "status": "success"}))
        self.assertEqual(s.sql("SELECT spend FROM api_keys UNION ALL SELECT spend FROM teams"),
                         [["0.00000000000000000000"]] * 2)
        self.assertEqual(s.sql_value("SELECT COUNT(*) FROM spend_logs"), "1")  # logs kept


if __name__ == "__main__":
    unittest.main()
