"""test_usage_api.py - the Usage page's API (issue 8) against the SQL over spend_logs.

A known ledger: requests through proxyd (teams with and without an alias, keys with
aliases, internal users, customers from the body's "user", tags from metadata.tags, two
models, a failed call) and, for more groups and days, event-gen's events over five days
(16 keys, more than 300 customers: so the chart's customer series take reportd's second,
indexed pass, and the key series its first). Every total, series value, top entry and
share of /ui/api/usage, for each group_by, must equal the same sum over spend_logs,
exactly (the API's money is decimal text). Also: /ui/api/budgets (ratio, order,
threshold, reset time), /ui/api/logs (paging, each filter, the count), an internal
user's key seeing only its own spend, the static files (types, CSP, the embedded
Chart.js equal to the pinned package's file), and the refusals (401, 403, 400).

Run from the repo root:  python3 -m unittest -v tests/e2e/test_usage_api.py
"""

import datetime
import hashlib
import json
import os
import random
import subprocess
import sys
import unittest
from decimal import ROUND_HALF_UP, Decimal, localcontext

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))

import harness  # noqa: E402
import invariants  # noqa: E402
from accountd_bench import seed  # noqa: E402
from harness import MASTER_KEY  # noqa: E402

BENCH_KEYS, BENCH_TEAMS = 12, 3
TOP = 10
UI_DIR = harness.REPO / "reportd" / "ui"
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
       " connect-src 'self'; frame-ancestors 'none'")


def extra_models(stack):
    return [{"model_name": "gpt4o-group",
             "litellm_params": {"model": "openai/gpt-4o", "api_base": stack.upstream_base,
                                "api_key": "os.environ/GROQ_API_KEY"}}]


def proxyd_requests():
    """The requests setUpClass sends through proxyd: (key, model group, prompt tokens,
    completion tokens, more body fields)."""
    names = ["a1", "a2", "b", "n"]
    tag_sets = [[], ["t-x"], ["t-x", "t-y"], ["t-z"]]
    for i in range(26):
        body = {"metadata": {"tags": tag_sets[i % 4]}} if i % 4 else {}
        if i % 5:
            body["user"] = "cust-%02d" % (i % 13)
        yield (names[i % 4], "gpt4o-group" if i % 3 == 0 else "llama3", 100 + 7 * i, 20 + 3 * i,
               body)


_PRICED = {"gpt4o-group": "gpt-4o", "llama3": "groq/llama-3.1-8b-instant"}  # group: model


def price(group, prompt, completion):
    """A call's cost from the price map, in Decimal (independent of Tollgate's code)."""
    return invariants.list_cost(prompt, completion, _PRICED[group])


# key a1's part of them, by hand from the list above (its spot check in the usage test)
A1_REQUESTS = sum(1 for r in proxyd_requests() if r[0] == "a1")
A1_SPEND = sum((price(m, pt, ct) for k, m, pt, ct, _ in proxyd_requests() if k == "a1"),
               Decimal(0))


def money(d):
    """Exact decimal text, trailing zeros trimmed: "0.00009", "0", "12"."""
    d = Decimal(d)
    return "0" if d == 0 else format(d.normalize(), "f")


def ratio(num, den):
    """num / den rounded half up to 4 places, as text ("0" when den is 0)."""
    if Decimal(den) == 0:
        return "0"
    with localcontext() as c:
        c.prec = 100
        return money((Decimal(num) / Decimal(den)).quantize(Decimal("1e-4"), ROUND_HALF_UP))


def order(item):
    """Spend highest first, then id (null first), byte-wise."""
    gid, spend = item[0], item[1]
    return (-spend, gid is not None, (gid or "").encode())


def csv_cell(text):
    """A CSV cell as reportd writes it: RFC 4180 quoting, a ' before = + - @."""
    if text[:1] in ("=", "+", "-", "@"):
        text = "'" + text
    if any(c in text for c in ",\"\r\n"):
        text = '"' + text.replace('"', '""') + '"'
    return text


class UsageApiTest(harness.StackTestCase):
    stack_options = {"extra_models": extra_models}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        s = cls.stack

        def ok(path, body):
            st, _, ans = s.report("POST", path, body, key=MASTER_KEY)
            assert st == 200, (path, ans)
            return ans

        seed(s, BENCH_KEYS, BENCH_TEAMS)
        ok("/team/new", {"team_id": "team-a", "team_alias": "Team A"})
        ok("/team/new", {"team_id": "team-b"})  # no alias: named by its id
        ok("/user/new", {"user_id": "ursula", "user_role": "internal_user"})
        ok("/user/new", {"user_id": "victor", "user_role": "internal_user"})
        cls.keys = {
            "a1": ok("/key/generate", {"key_alias": "a-one", "team_id": "team-a",
                                       "user_id": "ursula"}),
            "a2": ok("/key/generate", {"key_alias": "a-two", "team_id": "team-a",
                                       "user_id": "victor"}),
            "b": ok("/key/generate", {"team_id": "team-b", "user_id": "victor"}),
            "n": ok("/key/generate", {"key_alias": "loner", "user_id": "ursula"}),
        }
        cls.reader = ok("/key/generate", {"permissions": {"get_spend_routes": True}})["key"]
        cls.plain = ok("/key/generate", {})["key"]
        sent = 0
        for name, model, prompt, completion, body in proxyd_requests():
            st, _, ans = s.chat(cls.keys[name]["key"], model=model, prompt_tokens=prompt,
                                completion_tokens=completion, **body)
            assert st == 200, ans
            sent += 1
        st, _, ans = s.chat(cls.keys["a2"]["key"], mock_status=500, user="cust-01")
        assert st == 500, ans
        harness.wait_for(lambda: int(s.sql_value("SELECT COUNT(*) FROM spend_logs")) >= sent,
                         30, message="proxyd's requests in the ledger")
        gen_seed = random.randrange(1 << 31)  # in the output, to draw a failing ledger again
        print("\n%s: event-gen --seed %d" % (cls.__name__, gen_seed), file=sys.stderr)
        p = subprocess.run(
            [str(harness.bin_dir() / "event-gen"), "--seed", str(gen_seed),
             "--keys", str(BENCH_KEYS), "--teams",
             str(BENCH_TEAMS), "--end-users", "400", "--tags", "4", "--batch", "50",
             "--days", "5", "--events", "900", "tcp://127.0.0.1:%d" % s.events_port],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        assert p.returncode == 0, p.stderr.decode()
        harness.wait_for(lambda: int(s.sql_value("SELECT COUNT(*) FROM spend_logs"))
                         >= sent + 900, 60, message="event-gen's events in the ledger")
        # the failed call is logged too (no spend, one request)
        harness.wait_for(lambda: s.sql_value(
            "SELECT COUNT(*) FROM spend_logs WHERE status <> 'success' AND api_key = '%s'"
            % cls.keys["a2"]["token"]) == "1", 10, message="the failed call's log row")
        ok("/customer/update", {"user_id": "cust-01", "alias": "Customer One"})
        cls.today = datetime.datetime.now(datetime.timezone.utc).date()
        cls.start = (cls.today - datetime.timedelta(days=6)).isoformat()  # empty days too
        cls.end = cls.today.isoformat()
        cls.days = [(cls.today - datetime.timedelta(days=6 - i)).isoformat() for i in range(7)]
        customers = int(s.sql_value("SELECT COUNT(DISTINCT end_user) FROM spend_logs"))
        assert customers > 300, customers  # past reportd's 256 groups kept in its first pass

    # -- helpers

    def get(self, path, key=MASTER_KEY, status=200):
        st, headers, body = self.stack.report("GET", path, key=key)
        self.assertEqual(st, status, (path, body))
        return body

    def usage(self, group_by=None, key=MASTER_KEY, start=None, end=None):
        q = "start_date=%s&end_date=%s" % (start or self.start, end or self.end)
        return self.get("/ui/api/usage?" + q + ("&group_by=" + group_by if group_by else ""),
                        key=key)

    def range_sql(self, alias="l"):
        return ("%s.start_time >= '%s' AND %s.start_time < '%s' + INTERVAL 1 DAY"
                % (alias, self.start, alias, self.end))

    def names(self):
        s = self.stack
        return {
            "team": {r[0]: r[1] for r in s.sql("SELECT team_id, team_alias FROM teams")},
            "api_key": {r[0]: (r[1], r[2]) for r in
                        s.sql("SELECT token, key_alias, key_name FROM api_keys")},
            "customer": {r[0]: r[1] for r in s.sql("SELECT user_id, alias FROM customers")},
        }

    def groups(self, dim, where=""):
        """{id: [spend, requests, {day: spend}]} of a dimension from spend_logs."""
        col, table = {"team": ("l.team_id", "spend_logs"), "api_key": ("l.api_key", "spend_logs"),
                      "customer": ("l.end_user", "spend_logs"), "model": ("l.model", "spend_logs"),
                      "tag": ("l.tag", invariants.TAGGED_LOGS)}[dim]
        rows = self.stack.sql(
            "SELECT %s, DATE_FORMAT(l.start_time, '%%Y-%%m-%%d'), SUM(l.spend), COUNT(*)"
            " FROM %s l WHERE %s %s GROUP BY 1, 2" % (col, table, self.range_sql(), where))
        out = {}
        for gid, day, spend, n in rows:
            g = out.setdefault(gid, [Decimal(0), 0, {}])
            g[0] += Decimal(spend)
            g[1] += int(n)
            g[2][day] = g[2].get(day, Decimal(0)) + Decimal(spend)
        return out

    def expected(self, group_by, where=""):
        """The whole /ui/api/usage answer, computed from spend_logs."""
        t = self.stack.sql(
            "SELECT COALESCE(SUM(spend), 0), COUNT(*), COALESCE(SUM(prompt_tokens), 0),"
            " COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(total_tokens), 0)"
            " FROM spend_logs l WHERE %s %s" % (self.range_sql(), where))[0]
        total = Decimal(t[0])
        names = self.names()
        top, series = {}, None
        for dim in ("team", "api_key", "customer", "model", "tag"):
            groups = self.groups(dim, where)
            ranked = sorted(((gid, g[0], g[1], g[2]) for gid, g in groups.items()), key=order)
            entries = []
            for gid, spend, n, _ in ranked[:TOP]:
                e = {"id": gid, "spend": money(spend), "requests": n,
                     "share": ratio(spend, total)}
                if dim == "team":
                    e["name"] = "Unassigned" if gid is None else names["team"].get(gid) or gid
                elif dim == "customer":
                    e["name"] = ("No customer" if gid is None
                                 else names["customer"].get(gid) or gid)
                elif dim == "api_key":
                    alias, key_name = names["api_key"].get(gid, (None, None))
                    e["name"], e["key_name"] = alias, key_name
                else:
                    e["name"] = gid
                entries.append(e)
            top[dim] = entries
            if dim == group_by:
                series = []
                for e, (_, spend, _, by_day) in zip(entries, ranked):
                    s = {"id": e["id"], "name": e["name"], "spend": e["spend"],
                         "spend_by_day": [money(by_day.get(d, 0)) for d in self.days]}
                    if "key_name" in e:
                        s["key_name"] = e["key_name"]
                    series.append(s)
                if len(ranked) > TOP:
                    rest = ranked[TOP:]
                    series.append({"id": None, "name": "others",
                                   "spend": money(sum(r[1] for r in rest)),
                                   "spend_by_day": [money(sum(r[3].get(d, 0) for r in rest))
                                                    for d in self.days]})
        return {"start_date": self.start, "end_date": self.end, "group_by": group_by,
                "totals": {"spend": money(total), "requests": int(t[1]),
                           "prompt_tokens": int(t[2]), "completion_tokens": int(t[3]),
                           "total_tokens": int(t[4])},
                "days": self.days, "series": series, "top": top}

    # -- /ui/api/usage

    def test_usage_equals_logs_for_each_group_by(self):
        for group_by in ("team", "api_key", "customer", "model", "tag"):
            with self.subTest(group_by=group_by):
                got, want = self.usage(group_by), self.expected(group_by)
                for part in ("totals", "days", "top", "series"):
                    self.assertEqual(got[part], want[part], (group_by, part))
                self.assertEqual(got, want)
        self.assertEqual(self.usage(), self.usage("team"))  # team by default
        want = self.expected("customer")
        self.assertEqual(len(want["series"]), TOP + 1)  # ten and "others"
        self.assertEqual(self.names()["customer"]["cust-01"], "Customer One")
        # a customer's name is its alias: cust-01 alone, on its own
        got = self.usage("customer", key=self.keys["a2"]["key"])  # victor's key
        self.assertEqual(got, self.expected("customer", "AND l.user = 'victor'"))
        self.assertIn("Customer One", [e["name"] for e in got["top"]["customer"]])
        # the figures the page shows are the ledger's: a few spot checks by hand
        got = self.usage("api_key")
        self.assertNotIn(self.keys["a1"]["key"], json.dumps(got))  # never a raw key
        # a-one in ursula's own view (her two keys, so always both in the top): its name,
        # and its spend and requests as setUpClass sent them, priced here from the price map
        own = self.usage("api_key", key=self.keys["a1"]["key"])["top"]["api_key"]
        a1 = [e for e in own if e["id"] == self.keys["a1"]["token"]]
        self.assertEqual(len(a1), 1, own)
        self.assertEqual((a1[0]["name"], a1[0]["key_name"], a1[0]["spend"], a1[0]["requests"]),
                         ("a-one", self.keys["a1"]["key_name"], money(A1_SPEND), A1_REQUESTS))
        self.assertNotIn(self.keys["a1"]["key"], json.dumps(own))
        spend = Decimal(self.stack.sql_value("SELECT SUM(spend) FROM spend_logs"))
        self.assertEqual(got["totals"]["spend"], money(spend))  # the whole ledger is in range

    def test_usage_over_whole_months_and_the_days_around_them(self):
        """The whole ledger's answer adds usage_rollup's month rows for the range's whole
        months to its day rows for the days before and after them: ranges that start and
        end on a month's edge or within one give the logs' figures all the same."""
        first = self.today.replace(day=1)
        prev = (first - datetime.timedelta(days=1)).replace(day=1)
        last = (first + datetime.timedelta(days=31)).replace(day=1) - datetime.timedelta(days=1)
        ranges = [
            (prev - datetime.timedelta(days=17), self.today),  # days, a whole month, days
            (first, last),                                     # this month, whole
            (prev, first - datetime.timedelta(days=1)),        # last month, whole
            (self.today - datetime.timedelta(days=20), self.today + datetime.timedelta(days=3)),
        ]
        for start, end in ranges:
            n = (end - start).days + 1
            self.start, self.end = start.isoformat(), end.isoformat()
            self.days = [(start + datetime.timedelta(days=i)).isoformat() for i in range(n)]
            try:
                for group_by in ("team", "api_key", "customer", "model", "tag"):
                    with self.subTest(start=self.start, end=self.end, group_by=group_by):
                        self.assertEqual(self.usage(group_by), self.expected(group_by))
            finally:
                del self.start, self.end, self.days

    def expected_csv(self, group_by, where=""):
        """The CSV of /ui/api/usage (format=csv), computed from spend_logs: a line per day
        and group, in day order then by id (none first, byte-wise)."""
        col, table = {"team": ("l.team_id", "spend_logs"), "api_key": ("l.api_key", "spend_logs"),
                      "customer": ("l.end_user", "spend_logs"), "model": ("l.model", "spend_logs"),
                      "tag": ("l.tag", invariants.TAGGED_LOGS)}[group_by]
        rows = self.stack.sql(
            "SELECT DATE_FORMAT(l.start_time, '%%Y-%%m-%%d'), %s, SUM(l.spend), COUNT(*),"
            " SUM(l.prompt_tokens), SUM(l.completion_tokens), SUM(l.total_tokens)"
            " FROM %s l WHERE %s %s GROUP BY 1, 2" % (col, table, self.range_sql(), where))
        rows.sort(key=lambda r: (r[0], r[1] is not None, (r[1] or "").encode()))
        names = self.names()
        header = {"team": "team_id,team_name", "api_key": "api_key,key_alias,key_name",
                  "customer": "customer_id,customer_name", "model": "model", "tag": "tag"}
        lines = ["date,%s,spend,requests,prompt_tokens,completion_tokens,total_tokens"
                 % header[group_by]]
        for day, gid, spend, n, prompt, completion, total in rows:
            cells = [day, gid or ""]
            if group_by == "team":
                cells.append("Unassigned" if gid is None else names["team"].get(gid) or gid)
            elif group_by == "customer":
                cells.append("No customer" if gid is None else names["customer"].get(gid) or gid)
            elif group_by == "api_key":
                alias, key_name = names["api_key"].get(gid, (None, None))
                cells += [alias or "", key_name or ""]
            lines.append(",".join(csv_cell(c) for c in cells) + ",%s,%s,%s,%s,%s"
                         % (money(spend), n, prompt, completion, total))
        return "\r\n".join(lines) + "\r\n"

    def test_usage_csv_equals_logs_for_each_group_by(self):
        """format=csv: every group of the grouping (not only the chart's ten), each day,
        for the whole ledger and for an internal user's own rows; never a raw key."""
        victor = self.keys["a2"]["key"]
        for group_by in ("team", "api_key", "customer", "model", "tag"):
            for key, where in ((MASTER_KEY, ""), (victor, "AND l.user = 'victor'")):
                with self.subTest(group_by=group_by, own=bool(where)):
                    st, headers, body = self.stack.report(
                        "GET", "/ui/api/usage?start_date=%s&end_date=%s&group_by=%s&format=csv"
                        % (self.start, self.end, group_by), key=key)
                    self.assertEqual(st, 200, body)
                    self.assertEqual(headers["content-type"], "text/csv; charset=utf-8")
                    self.assertEqual(headers["content-disposition"],
                                     'attachment; filename="tollgate-spend-by-%s-%s-to-%s.csv"'
                                     % (group_by, self.start, self.end))
                    text = body
                    self.assertEqual(text, self.expected_csv(group_by, where))
                    self.assertNotIn(victor, text)
        lines = self.expected_csv("customer").count("\r\n")
        self.assertGreater(lines, 300)  # far past the chart's ten customers

    def test_usage_of_an_empty_range(self):
        # weeks before the ledger's first day (its five days end on the test's day)
        days = [(self.today - datetime.timedelta(days=40 - i)).isoformat() for i in range(3)]
        self.assertEqual(self.stack.sql_value(
            "SELECT COUNT(*) FROM spend_logs WHERE start_time >= '%s'"
            " AND start_time < '%s' + INTERVAL 1 DAY" % (days[0], days[-1])), "0")
        got = self.usage("tag", start=days[0], end=days[-1])
        self.assertEqual(got["totals"], {"spend": "0", "requests": 0, "prompt_tokens": 0,
                                         "completion_tokens": 0, "total_tokens": 0})
        self.assertEqual(got["days"], days)
        self.assertEqual(got["series"], [])
        self.assertEqual(got["top"], {d: [] for d in ("team", "api_key", "customer", "model",
                                                      "tag")})

    def test_spend_reader_sees_everything_internal_user_its_own(self):
        self.assertEqual(self.usage("customer", key=self.reader), self.usage("customer"))
        for group_by in ("team", "api_key", "tag"):
            got = self.usage(group_by, key=self.keys["a1"]["key"])  # ursula's key
            self.assertEqual(got, self.expected(group_by, "AND l.user = 'ursula'"), group_by)
        self.assertEqual({e["id"] for e in got["top"]["api_key"]},
                         {self.keys["a1"]["token"], self.keys["n"]["token"]})

    # -- /ui/api/budgets

    def expected_budgets(self, threshold, user=None):
        s = self.stack
        fmt = "DATE_FORMAT(%s, '%%Y-%%m-%%dT%%H:%%i:%%s+00:00')"
        parts = [
            ("key", "SELECT token, COALESCE(key_alias, key_name), spend, max_budget, %s"
                    " FROM api_keys WHERE max_budget > 0%s"
             % (fmt % "budget_reset_at", " AND user_id = '%s'" % user if user else "")),
            ("user", "SELECT user_id, COALESCE(user_alias, user_email, user_id), spend,"
                     " max_budget, %s FROM internal_users WHERE max_budget > 0%s"
             % (fmt % "budget_reset_at", " AND user_id = '%s'" % user if user else "")),
        ]
        if user is None:
            parts += [
                ("team", "SELECT team_id, COALESCE(team_alias, team_id), spend, max_budget, %s"
                         " FROM teams WHERE max_budget > 0" % (fmt % "budget_reset_at")),
                ("team_member", "SELECT CONCAT(m.team_id, '/', m.user_id), CONCAT(m.user_id,"
                                " ' in ', COALESCE(t.team_alias, m.team_id)), m.spend,"
                                " b.max_budget, %s FROM team_members m JOIN budgets b"
                                " ON b.budget_id = m.budget_id LEFT JOIN teams t"
                                " ON t.team_id = m.team_id WHERE b.max_budget > 0"
                 % (fmt % "b.budget_reset_at")),
                ("customer", "SELECT c.user_id, COALESCE(c.alias, c.user_id), c.spend,"
                             " b.max_budget, %s FROM customers c JOIN budgets b"
                             " ON b.budget_id = c.budget_id WHERE b.max_budget > 0"
                 % (fmt % "b.budget_reset_at")),
                ("tag", "SELECT tag, tag, spend, max_budget, %s FROM tags WHERE max_budget > 0"
                 % (fmt % "budget_reset_at")),
            ]
        rows = []
        for kind, q in parts:
            for gid, name, spend, mx, reset in s.sql(q):
                with localcontext() as c:
                    c.prec = 100
                    exact = Decimal(spend) / Decimal(mx)
                if exact >= Decimal(threshold):
                    rows.append((exact, kind, gid, {
                        "kind": kind, "id": gid, "name": name, "spend": money(spend),
                        "max_budget": money(mx), "ratio": ratio(spend, mx),
                        "budget_reset_at": reset}))
        rows.sort(key=lambda r: (-r[0], r[1], r[2].encode()))
        return [r[3] for r in rows]

    def test_budgets_near_or_over_their_limit(self):
        s = self.stack
        a1, b = self.keys["a1"]["token"], self.keys["b"]["token"]
        # Reset times weeks after the test's start (one at midnight, one at 12:30:45):
        # these budgets have no budget_duration, and accountd clears a reset time once
        # it has passed, so a fixed date would stop holding one day.
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        key_reset = (now + datetime.timedelta(days=30)).replace(hour=0, minute=0, second=0)
        cust_reset = (now + datetime.timedelta(days=20)).replace(hour=12, minute=30, second=45)
        s.sql("UPDATE api_keys SET max_budget = spend * 1.25,"
              " budget_reset_at = '%s' WHERE token = '%s';"  # exactly 0.8
              "UPDATE api_keys SET max_budget = spend * 2 WHERE token = '%s';"  # 0.5
              "UPDATE api_keys SET max_budget = 0 WHERE token = '%s';"  # a block: not listed
              "UPDATE teams SET max_budget = spend / 2 WHERE team_id = 'team-a';"  # over: 2
              "UPDATE internal_users SET max_budget = spend WHERE user_id = 'ursula';"
              "UPDATE tags SET max_budget = spend * 1.1 WHERE tag = 't-x';"
              "INSERT INTO budgets (budget_id, max_budget, budget_reset_at, created_at,"
              " updated_at) VALUES ('cust-budget', 0.0000001, '%s', NOW(6),"
              " NOW(6)), ('member-budget', 0.3, NULL, NOW(6), NOW(6));"
              "UPDATE customers SET budget_id = 'cust-budget' WHERE user_id = 'cust-01';"
              "UPDATE team_members SET budget_id = 'member-budget'"
              " WHERE user_id = 'bench-user-1';"
              % (key_reset.strftime("%Y-%m-%d %H:%M:%S"), a1, b, self.keys["n"]["token"],
                 cust_reset.strftime("%Y-%m-%d %H:%M:%S")))
        s.sql("UPDATE budgets SET max_budget = (SELECT spend * 1.05 FROM team_members"
              " WHERE user_id = 'bench-user-1') WHERE budget_id = 'member-budget'")
        try:
            for threshold in ("0.8", "0.5", "0", "1", "1.5"):
                got = self.get("/ui/api/budgets?threshold=" + threshold)["budgets"]
                self.assertEqual(got, self.expected_budgets(threshold), threshold)
            got = self.get("/ui/api/budgets")["budgets"]  # 0.8 by default
            self.assertEqual(got, self.expected_budgets("0.8"))
            kinds = {e["kind"] for e in got}
            self.assertEqual(kinds, {"key", "user", "team", "team_member", "customer", "tag"})
            by_id = {e["id"]: e for e in got}
            self.assertEqual((by_id[a1]["ratio"], by_id[a1]["budget_reset_at"]),
                             ("0.8", key_reset.isoformat()))
            self.assertEqual(by_id["team-a"]["ratio"], "2")
            self.assertEqual(got[0]["kind"], "customer")  # the highest ratio first
            self.assertEqual(by_id["cust-01"]["budget_reset_at"], cust_reset.isoformat())
            self.assertNotIn(b, by_id)
            # an internal user's key: its own keys and its own user row
            mine = self.get("/ui/api/budgets?threshold=0", key=self.keys["a1"]["key"])
            self.assertEqual(mine["budgets"], self.expected_budgets("0", user="ursula"))
            self.assertEqual({e["id"] for e in mine["budgets"]}, {a1, "ursula"})
        finally:
            s.sql("UPDATE api_keys SET max_budget = NULL, budget_reset_at = NULL;"
                  "UPDATE teams SET max_budget = NULL; UPDATE internal_users SET max_budget"
                  " = NULL; UPDATE tags SET max_budget = NULL; UPDATE customers SET budget_id"
                  " = NULL; UPDATE team_members SET budget_id = NULL;"
                  " DELETE FROM budgets WHERE budget_id IN ('cust-budget', 'member-budget')")

    # -- /ui/api/logs

    def log_ids(self, where=""):
        return [r[0] for r in self.stack.sql(
            "SELECT request_id FROM spend_logs l WHERE %s %s"
            " ORDER BY start_time DESC, request_id DESC" % (self.range_sql(), where))]

    def pages(self, query, page_size, key=MASTER_KEY):
        """Every page's rows (request ids) and each page's total."""
        ids, totals, page = [], set(), 1
        while True:
            ans = self.get("/ui/api/logs?start_date=%s&end_date=%s&page=%d&page_size=%d%s"
                           % (self.start, self.end, page, page_size, query), key=key)
            self.assertEqual((ans["page"], ans["page_size"]), (page, page_size))
            self.assertLessEqual(len(ans["rows"]), page_size)
            ids += [r["request_id"] for r in ans["rows"]]
            totals.add(ans["total"])
            if not ans["has_more"]:
                self.assertLess(len(ans["rows"]), page_size + 1)
                return ids, totals
            self.assertEqual(len(ans["rows"]), page_size)
            page += 1

    def test_logs_paging_and_count(self):
        want = self.log_ids()
        ids, totals = self.pages("", 250)
        self.assertEqual(ids, want)
        self.assertEqual(totals, {len(want)})
        ans = self.get("/ui/api/logs?start_date=%s&end_date=%s" % (self.start, self.end))
        self.assertEqual((ans["page"], ans["page_size"], len(ans["rows"])), (1, 50, 50))
        past = self.get("/ui/api/logs?start_date=%s&end_date=%s&page=1000"
                        % (self.start, self.end))
        self.assertEqual((past["rows"], past["has_more"], past["total"]), ([], False, len(want)))

    def test_logs_rows_are_the_ledger_rows(self):
        ans = self.get("/ui/api/logs?start_date=%s&end_date=%s&page_size=40&model=gpt4o-group"
                       % (self.start, self.end))
        rows = {r[0]: r for r in self.stack.sql(
            "SELECT l.request_id, DATE_FORMAT(l.start_time, '%Y-%m-%dT%H:%i:%s.%f+00:00'),"
            " l.status, l.call_type, l.model, l.model_group, l.api_key, l.key_alias, k.key_name,"
            " l.team_id, COALESCE(t.team_alias, l.team_id), l.user, l.end_user, l.request_tags,"
            " l.spend, l.prompt_tokens, l.completion_tokens, l.total_tokens FROM spend_logs l"
            " LEFT JOIN api_keys k ON k.token = l.api_key LEFT JOIN teams t"
            " ON t.team_id = l.team_id")}
        self.assertGreater(len(ans["rows"]), 5)
        for got in ans["rows"]:
            r = rows[got["request_id"]]
            self.assertEqual(got, {
                "request_id": r[0], "start_time": r[1], "status": r[2], "call_type": r[3],
                "model": r[4], "model_group": r[5], "api_key": r[6], "key_alias": r[7],
                "key_name": r[8], "team_id": r[9], "team_name": r[10], "user": r[11],
                "end_user": r[12], "tags": json.loads(r[13]), "spend": money(r[14]),
                "prompt_tokens": int(r[15]), "completion_tokens": int(r[16]),
                "total_tokens": int(r[17])})
        self.assertIn("Team A", {r["team_name"] for r in ans["rows"]})
        self.assertIn("sk-...", "".join(str(r["key_name"]) for r in ans["rows"]))

    def test_logs_filters(self):
        a1 = self.keys["a1"]
        one = self.log_ids("AND l.team_id = 'team-a'")[3]
        cases = [  # (query, SQL condition, total counted)
            ("&api_key=" + a1["key"], "AND l.api_key = '%s'" % a1["token"], True),
            ("&api_key=" + a1["token"], "AND l.api_key = '%s'" % a1["token"], True),
            ("&user_id=victor", "AND l.user = 'victor'", True),
            ("&team_id=team-a", "AND l.team_id = 'team-a'", True),
            ("&end_user=cust-01", "AND l.end_user = 'cust-01'", True),
            ("&tag=t-x", "AND JSON_CONTAINS(l.request_tags, '\"t-x\"')", True),
            ("&tag=bench-tag-2&api_key=bench-key-4",
             "AND JSON_CONTAINS(l.request_tags, '\"bench-tag-2\"') AND l.api_key = '%s'"
             % hashlib.sha256(b"bench-key-4").hexdigest(), True),
            ("&model=gpt4o-group", "AND l.model_group = 'gpt4o-group'", True),
            ("&model=openai/gpt-4o", "AND l.model = 'openai/gpt-4o'", True),
            ("&model=groq/llama-3.1-8b-instant&team_id=bench-team-1",
             "AND l.model = 'groq/llama-3.1-8b-instant' AND l.team_id = 'bench-team-1'", True),
            ("&request_id=" + one, "AND l.request_id = '%s'" % one, True),
            ("&tag=t-x&team_id=team-a",
             "AND JSON_CONTAINS(l.request_tags, '\"t-x\"') AND l.team_id = 'team-a'", False),
            ("&end_user=nobody", "AND l.end_user = 'nobody'", True),
        ]
        for query, cond, counted in cases:
            with self.subTest(query=query):
                want = self.log_ids(cond)
                ids, totals = self.pages(query, 9)
                self.assertEqual(ids, want)
                self.assertEqual(totals, {len(want) if counted else None})
        self.assertGreater(len(self.log_ids("AND JSON_CONTAINS(l.request_tags, '\"t-x\"')"
                                            " AND l.team_id = 'team-a'")), 0)

    def test_logs_of_an_internal_user(self):
        key = self.keys["n"]["key"]  # ursula's
        want = self.log_ids("AND l.user = 'ursula'")
        self.assertGreater(len(want), 0)
        self.assertEqual(self.pages("", 5, key=key), (want, {len(want)}))
        self.assertEqual(self.pages("&user_id=ursula", 5, key=key), (want, {len(want)}))
        st, _, body = self.stack.report(
            "GET", "/ui/api/logs?start_date=%s&end_date=%s&user_id=victor"
            % (self.start, self.end), key=key)
        self.assertEqual((st, body["error"]["param"]), (403, "user_id"))
        # a spend reader reads anyone's
        self.assertEqual(self.pages("&user_id=victor", 50, key=self.reader)[0],
                         self.log_ids("AND l.user = 'victor'"))

    # -- the page's files

    def test_static_files(self):
        npm = harness.bin_dir().parent / "reportd" / "ui-npm" / "node_modules" / "chart.js"
        lock = json.loads((UI_DIR / "package-lock.json").read_text())
        self.assertEqual(json.loads((npm / "package.json").read_text())["version"],
                         lock["packages"]["node_modules/chart.js"]["version"])
        self.assertTrue(lock["packages"]["node_modules/chart.js"]["version"].startswith("4."))
        files = {
            "/ui": (UI_DIR / "index.html", "text/html; charset=utf-8", "no-cache"),
            "/ui/": (UI_DIR / "index.html", "text/html; charset=utf-8", "no-cache"),
            "/ui/app.js": (UI_DIR / "app.js", "text/javascript; charset=utf-8", "max-age=3600"),
            "/ui/app.css": (UI_DIR / "app.css", "text/css; charset=utf-8", "max-age=3600"),
            "/ui/chart.umd.js": (npm / "dist" / "chart.umd.js", "text/javascript; charset=utf-8",
                                 "max-age=3600"),
        }
        for path, (src, ctype, cache) in files.items():
            for port, via in ((self.stack.reportd_port, "reportd"),
                              (self.stack.proxyd_port, "proxyd")):
                with self.subTest(path=path, via=via):
                    raw, headers = self.raw_get(port, path)
                    self.assertEqual(hashlib.sha256(raw).hexdigest(),
                                     hashlib.sha256(src.read_bytes()).hexdigest())
                    self.assertEqual(headers["content-type"], ctype)
                    self.assertEqual(headers["cache-control"], cache)
                    self.assertEqual(headers["content-security-policy"], CSP)
                    self.assertEqual(headers["x-content-type-options"], "nosniff")
        self.assertGreater(len(self.raw_get(self.stack.reportd_port, "/ui/chart.umd.js")[0]),
                           100000)
        st, _, body = self.stack.report("GET", "/ui/nope.js")
        self.assertEqual(st, 404, body)
        st, _, body = self.stack.report("POST", "/ui", {})
        self.assertEqual(st, 405, body)

    def raw_get(self, port, path):
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            self.assertEqual(resp.status, 200, path)
            return body, {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()

    # -- refusals

    def test_refusals(self):
        dates = "start_date=%s&end_date=%s" % (self.start, self.end)
        for path in ("/ui/api/usage?" + dates, "/ui/api/budgets", "/ui/api/logs?" + dates):
            for key in (None, "sk-not-a-key"):
                st, _, body = self.stack.report("GET", path, key=key)
                self.assertEqual(st, 401, (path, body))
                self.assertErrorShape(body, 401)
            st, _, body = self.stack.report("GET", path, key=self.plain)
            self.assertEqual(st, 403, (path, body))
            self.assertErrorShape(body, 403, type_="permission_error")
            self.assertEqual(self.stack.report("GET", path, key=self.reader)[0], 200, path)
        bad = [  # (path, the parameter named)
            ("/ui/api/usage?%s&foo=1" % dates, "foo"),
            ("/ui/api/usage?%s&start_date=2026-01-01" % dates, "start_date"),
            ("/ui/api/usage?start_date=2026-02-30&end_date=2026-03-01", "start_date"),
            ("/ui/api/usage?start_date=2026-01-01", "end_date"),
            ("/ui/api/usage?end_date=2026-01-01", "start_date"),
            ("/ui/api/usage?start_date=2026-02-01&end_date=2026-01-01", "start_date"),
            ("/ui/api/usage?start_date=2025-01-01&end_date=2026-01-02", "end_date"),
            ("/ui/api/usage?%s&group_by=user" % dates, "group_by"),
            ("/ui/api/usage?%s&group_by=team&group_by=tag" % dates, "group_by"),
            ("/ui/api/usage?%s&format=xml" % dates, "format"),
            ("/ui/api/budgets?threshold=abc", "threshold"),
            ("/ui/api/budgets?threshold=0.80001", "threshold"),
            ("/ui/api/budgets?threshold=101", "threshold"),
            ("/ui/api/budgets?threshold=-1", "threshold"),
            ("/ui/api/budgets?limit=5", "limit"),
            ("/ui/api/logs?%s&page=0" % dates, "page"),
            ("/ui/api/logs?%s&page_size=501" % dates, "page_size"),
            ("/ui/api/logs?%s&customer=x" % dates, "customer"),
            ("/ui/api/logs?%s&tag=a&tag=b" % dates, "tag"),
            ("/ui/api/logs?%s&request_id=%%C3%%A9" % dates, "request_id"),
            ("/ui/api/logs?page=1", "start_date"),
        ]
        for path, param in bad:
            st, _, body = self.stack.report("GET", path, key=MASTER_KEY)
            self.assertEqual(st, 400, (path, body))
            self.assertErrorShape(body, 400, param, type_="invalid_request_error", msg=path)
        # 366 days is the longest range
        self.get("/ui/api/usage?start_date=2025-01-01&end_date=2026-01-01")


if __name__ == "__main__":
    unittest.main()
