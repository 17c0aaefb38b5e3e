"""test_api_input.py - reportd's input handling, route by route (issue 5).

Table-driven from ROUTES below, which mirrors the ROUTES table of
reportd/api.c (test_route_list_mirrors_api_c fails when api.c has a route the
list lacks, so a new route cannot skip these checks). For every route:

- every string parameter (query string and JSON body) gets SQL metacharacters,
  quotes, NUL bytes, LIKE wildcards, over-long and non-UTF-8 values, and wrong
  JSON types: the answer is a 2xx whose stored or echoed value round-trips byte
  for byte, or a 4xx in the error shape naming the parameter; never a 500, a
  dropped connection, SQL text, a key hash or a raw key; afterwards no table is
  lost, no row that was there is gone, new rows are only those the test made,
  and reportd still answers;
- numbers (negative, huge, -0, fractional, booleans), dates and enums are
  checked and the refusal names the parameter;
- bodies that are not JSON objects, too large, duplicate and unknown query
  parameters;
- unknown routes answer 404 and a wrong method 405, both in the error shape;
- no key and a bad key answer 401, a key without the route's rights 403, as
  the route's access level in api.c says (an OPEN route, /metrics, answers
  without a key, whatever key is sent).

Run from the repo root:  python3 -m unittest -v tests/e2e/test_api_input.py
"""

import hashlib
import http.client
import json
import os
import re
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import MASTER_KEY  # noqa: E402

API_C = harness.REPO / "reportd" / "api.c"

# Field kinds. S: a string that may legitimately be an odd id; E: a string
# with a closed set of values (enum, date, duration), so every payload is a
# 4xx; QI: a query integer; M: money; I: a JSON integer; B: a boolean;
# L: a list of strings; O: an object; MEMBER: a team member object or list.
S, E, QI, M, I, B, L, O, MEMBER = "S", "E", "QI", "M", "I", "B", "L", "O", "MEMBER"

# Fixtures every base request may name (made once per class).
TEAM, USER, MEMBER_USER, BUDGET, CUSTOMER, ALIAS = (
    "fx-team", "fx-user", "fx-member", "fx-budget", "fx-customer", "fx-alias")
DATES = {"start_date": "2026-01-01", "end_date": "2026-01-31"}
# The hosted BudgetManager's fixtures: a project with a user, and a project
# set whole. "@bmuser" is a user made in BM_PROJECT for each request, so the
# costs one test adds are never echoed to another, and a reset removes no
# row that was there before.
BM_PROJECT, BM_USER, BM_SET = "fx-bm", "fx-bm-user", "fx-bm-set"

BUDGET_FIELDS = {"max_budget": M, "soft_budget": M, "budget_duration": E, "tpm_limit": I,
                 "rpm_limit": I}
KEY_FIELDS = {"key_alias": S, "user_id": S, "team_id": S, "budget_id": S, "max_budget": M,
              "soft_budget": M, "tpm_limit": I, "rpm_limit": I, "max_parallel_requests": I,
              "models": L, "tags": L, "metadata": O, "permissions": O, "blocked": B,
              "duration": E, "budget_duration": E}
TEAM_FIELDS = {"team_id": S, "team_alias": S, "max_budget": M, "blocked": B, "models": L,
               "metadata": O, "budget_duration": E}
USER_FIELDS = {"user_id": S, "user_email": S, "user_alias": S, "user_role": E,
               "max_budget": M, "spend": M, "models": L, "metadata": O, "budget_duration": E}
CUSTOMER_FIELDS = dict({"user_id": S, "alias": S, "blocked": B, "budget_id": S},
                       **BUDGET_FIELDS)


class Route:
    """One reportd route: its access level, its query and body parameters
    (name -> kind) and a base request that is valid apart from the parameter
    under test. store: body parameter -> (table, column) where a 2xx keeps
    it, read back byte for byte."""

    def __init__(self, method, path, access, query=None, body=None, base_query=None,
                 base_body=None, store=None, fresh_key=False, alt=None, strict=False):
        self.method, self.path, self.access = method, path, access
        self.query, self.body = query or {}, body or {}
        self.base_query, self.base_body = base_query or {}, base_body or {}
        self.store = store or {}
        # param -> other params a 4xx may name: a team the test made earlier
        # under that odd id exists, so the member is what is not found
        self.alt = alt or {}
        self.fresh_key = fresh_key  # base_body["key"] is a key made for each request
        self.strict = strict  # an unknown query parameter is a 400 naming it (else ignored)

    def __repr__(self):
        return "%s %s" % (self.method, self.path)


def R(*a, **kw):
    return Route(*a, **kw)


ROUTES = [
    R("POST", "/team/new", "ADMIN", body=dict(TEAM_FIELDS, members=MEMBER),
      store={"team_id": ("teams", "team_id"), "team_alias": ("teams", "team_alias")}),
    R("POST", "/team/update", "ADMIN", body=TEAM_FIELDS, base_body={"team_id": TEAM}),
    R("POST", "/team/delete", "ADMIN", body={"team_ids": L}, base_body={"team_ids": ["nope"]}),
    R("GET", "/team/info", "ADMIN_READ", query={"team_id": S}, base_query={"team_id": TEAM}),
    R("POST", "/team/member_add", "ADMIN",
      body={"team_id": S, "member": MEMBER, "max_budget_in_team": M},
      base_body={"team_id": TEAM, "member": {"user_id": "@uniq"}}),
    R("POST", "/team/member_update", "ADMIN",
      body={"team_id": S, "user_id": S, "role": E, "max_budget_in_team": M},
      base_body={"team_id": TEAM, "user_id": MEMBER_USER}, alt={"team_id": ("user_id",)}),
    R("POST", "/team/member_delete", "ADMIN", body={"team_id": S, "user_id": S},
      base_body={"team_id": TEAM, "user_id": "not-a-member"}, alt={"team_id": ("user_id",)}),
    R("POST", "/user/new", "ADMIN", body=dict(USER_FIELDS, teams=L),
      store={"user_id": ("internal_users", "user_id"),
             "user_email": ("internal_users", "user_email"),
             "user_alias": ("internal_users", "user_alias")}),
    R("POST", "/user/update", "ADMIN", body=USER_FIELDS, base_body={"user_id": USER}),
    R("POST", "/user/delete", "ADMIN", body={"user_ids": L}, base_body={"user_ids": ["nope"]}),
    R("GET", "/user/info", "SELF_READ", query={"user_id": S}, base_query={"user_id": USER}),
    R("POST", "/key/generate", "ADMIN", body=dict(KEY_FIELDS, key=S),
      store={"key_alias": ("api_keys", "key_alias")}),
    R("POST", "/key/update", "ADMIN", body=dict(KEY_FIELDS, key=S), fresh_key=True),
    R("POST", "/key/regenerate", "ADMIN", body={"key": S, "new_key": S}, fresh_key=True),
    R("GET", "/key/info", "SELF_READ", query={"key": S}, base_query={"key": "@fxkey"}),
    R("GET", "/key/list", "SELF_READ",
      query={"page": QI, "size": QI, "user_id": S, "team_id": S}),
    R("POST", "/key/block", "ADMIN", body={"key": S}, fresh_key=True),
    R("POST", "/key/unblock", "ADMIN", body={"key": S}, fresh_key=True),
    R("POST", "/key/delete", "ADMIN", body={"keys": L, "key_aliases": L},
      base_body={"keys": ["sk-not-a-key"]}),
    R("GET", "/spend/logs", "SPEND_SELF",
      query={"api_key": S, "user_id": S, "request_id": S, "start_date": E, "end_date": E,
             "page": QI, "page_size": QI}),
    R("GET", "/global/spend/report", "SPEND_READ",
      query={"start_date": E, "end_date": E, "group_by": E, "format": E, "api_key": S,
             "internal_user_id": S, "team_id": S, "customer_id": S}, base_query=DATES),
    R("GET", "/global/spend/keys", "SPEND_READ", query={"limit": QI}),
    R("GET", "/global/spend/models", "SPEND_READ", query={"limit": QI}),
    R("GET", "/global/spend/tags", "SPEND_READ",
      query={"start_date": E, "end_date": E, "tags": S}),
    R("GET", "/spend/tags", "SPEND_READ", query={"start_date": E, "end_date": E}),
    R("POST", "/global/spend/reset", "MASTER_ONLY"),
    R("GET", "/user/daily/activity", "SPEND_SELF",
      query={"start_date": E, "end_date": E, "page": QI, "page_size": QI, "user_id": S,
             "model": S, "api_key": S}, base_query=DATES),
    R("GET", "/team/daily/activity", "SPEND_READ",
      query={"start_date": E, "end_date": E, "page": QI, "page_size": QI, "team_ids": S,
             "exclude_team_ids": S, "model": S, "api_key": S}, base_query=DATES),
    R("GET", "/tag/daily/activity", "SPEND_READ",
      query={"start_date": E, "end_date": E, "page": QI, "page_size": QI, "tags": S,
             "model": S, "api_key": S}, base_query=DATES),
    R("POST", "/global/spend/end_users", "SPEND_READ",
      body={"api_key": S, "startTime": E, "endTime": E, "limit": I}),
    R("POST", "/spend/calculate", "SPEND_READ", body={"model": S, "completion_response": O},
      base_body={"model": "llama3", "messages": [{"role": "user", "content": "hi"}]}),
    R("POST", "/customer/new", "ADMIN", body=CUSTOMER_FIELDS, base_body={"user_id": "@uniq"},
      store={"user_id": ("customers", "user_id"), "alias": ("customers", "alias")}),
    R("POST", "/end_user/new", "ADMIN", body=CUSTOMER_FIELDS, base_body={"user_id": "@uniq"},
      store={"user_id": ("customers", "user_id"), "alias": ("customers", "alias")}),
    R("GET", "/customer/info", "ADMIN_READ", query={"end_user_id": S},
      base_query={"end_user_id": CUSTOMER}),
    R("GET", "/end_user/info", "ADMIN_READ", query={"end_user_id": S},
      base_query={"end_user_id": CUSTOMER}),
    R("POST", "/customer/update", "ADMIN", body=CUSTOMER_FIELDS,
      base_body={"user_id": CUSTOMER}),
    R("POST", "/end_user/update", "ADMIN", body=CUSTOMER_FIELDS,
      base_body={"user_id": CUSTOMER}),
    R("POST", "/customer/delete", "ADMIN", body={"user_ids": L}, base_body={"user_ids": ["nope"]}),
    R("POST", "/end_user/delete", "ADMIN", body={"user_ids": L}, base_body={"user_ids": ["nope"]}),
    R("POST", "/customer/block", "ADMIN", body={"user_ids": L}, base_body={"user_ids": ["nope"]}),
    R("POST", "/end_user/block", "ADMIN", body={"user_ids": L}, base_body={"user_ids": ["nope"]}),
    R("POST", "/customer/unblock", "ADMIN", body={"user_ids": L},
      base_body={"user_ids": ["nope"]}),
    R("POST", "/end_user/unblock", "ADMIN", body={"user_ids": L},
      base_body={"user_ids": ["nope"]}),
    R("POST", "/budget/new", "ADMIN", body=dict(BUDGET_FIELDS, budget_id=S),
      store={"budget_id": ("budgets", "budget_id")}),
    R("POST", "/budget/update", "ADMIN", body=dict(BUDGET_FIELDS, budget_id=S),
      base_body={"budget_id": BUDGET}),
    R("POST", "/budget/delete", "ADMIN", body={"id": S}, base_body={"id": "nope"}),
    R("POST", "/budget/info", "ADMIN_READ", body={"budgets": L}, base_body={"budgets": [BUDGET]}),
    R("GET", "/budget/list", "ADMIN_READ", query={"page": QI, "size": QI}),
    R("POST", "/get_budget", "BUDGET_MANAGER", body={"project_name": S},
      base_body={"project_name": BM_PROJECT}),
    R("POST", "/set_budget", "BUDGET_MANAGER", body={"project_name": S, "user_dict": O},
      base_body={"project_name": BM_SET, "user_dict": {"fx-bm-set-user": {"total_budget": 1}}},
      store={"project_name": ("budget_manager_users", "project")}),
    R("POST", "/budget_manager/create_budget", "BUDGET_MANAGER",
      body={"project_name": S, "user": S, "total_budget": M, "duration": E, "created_at": M},
      base_body={"project_name": BM_PROJECT, "user": BM_USER, "total_budget": 5},
      store={"project_name": ("budget_manager_users", "project"),
             "user": ("budget_manager_users", "user")}),
    R("POST", "/budget_manager/update_cost", "BUDGET_MANAGER",
      body={"project_name": S, "user": S, "model": S, "cost": M},
      base_body={"project_name": BM_PROJECT, "user": "@bmuser", "model": "m", "cost": 0.5},
      store={"model": ("budget_manager_model_cost", "model")},
      alt={"project_name": ("user",)}),
    R("POST", "/budget_manager/reset_cost", "BUDGET_MANAGER",
      body={"project_name": S, "user": S, "if_last_updated_at": M},
      base_body={"project_name": BM_PROJECT, "user": "@bmuser"},
      alt={"project_name": ("user",)}),
    R("GET", "/metrics", "OPEN"),
    R("GET", "/ui", "OPEN"),
    R("GET", "/ui/", "OPEN"),
    R("GET", "/ui/app.js", "OPEN"),
    R("GET", "/ui/app.css", "OPEN"),
    R("GET", "/ui/chart.umd.js", "OPEN"),
    R("GET", "/ui/api/usage", "SPEND_SELF",
      query={"start_date": E, "end_date": E, "group_by": E}, base_query=DATES, strict=True),
    R("GET", "/ui/api/budgets", "SPEND_SELF", query={"threshold": E}, strict=True),
    R("GET", "/ui/api/logs", "SPEND_SELF",
      query={"start_date": E, "end_date": E, "page": QI, "page_size": QI, "api_key": S,
             "user_id": S, "request_id": S, "team_id": S, "end_user": S, "tag": S, "model": S},
      base_query=DATES, strict=True),
]

# String payloads: SQL metacharacters, quotes, LIKE wildcards, escapes.
SQLISH = ["' OR '1'='1", '"; DROP TABLE spend_logs; --', "\\", "\\\\", "%", "_", "%_%",
          "' UNION SELECT token FROM api_keys --", "1; DELETE FROM api_keys", "`teams`",
          "sk-'\"; DROP TABLE api_keys; --", "caf\u00e9 \u2603 \U0001F600", " padded "]
NUL_VALUES = ["a\u0000b", "\u0000", "sk-1234\u0000' OR 1=1 --"]
LONG_VALUES = ["x" * 256, "y" * 300, "\u00e9" * 200]  # the last: 200 chars, 400 bytes
WRONG_TYPES = [1, -1.5, {}, {"a": "b"}, [], ["a"], True, False]
PAYLOADS = set(SQLISH + NUL_VALUES + LONG_VALUES)

# SQL a server might leak: its own statements or the database's messages.
SQL_LEAK = re.compile(r"(?i:SQL syntax|MariaDB|MySQL|mysql_|Duplicate entry|Incorrect string "
                      r"value|Data too long|Illegal mix of collations|Unknown column)|"
                      r"\bER_[A-Z_]+|\bSELECT\b[^\n]*\bFROM\b|\bINSERT\s+INTO\b|"
                      r"\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b|\bWHERE\b|\bVALUES\s*\(")


def qs(params):
    """A query string from name -> str|bytes (percent-encoded; bytes as is)."""
    out = []
    for k, v in params.items():
        if isinstance(v, (list, tuple)):
            out.extend("%s=%s" % (k, urllib.parse.quote(x, safe="")) for x in v)
        else:
            out.append("%s=%s" % (k, urllib.parse.quote(v, safe="")))
    return "&".join(out)


def allowed(access, role, spend_perm):
    """api.c's rule: may a key whose user has `role` call a route of `access`?"""
    admin = role == "proxy_admin"
    reader = admin or role == "proxy_admin_viewer"
    internal = role in ("internal_user", "internal_user_viewer")
    spend = reader or spend_perm
    return {"OPEN": True, "MASTER_ONLY": False, "ADMIN": admin, "ADMIN_READ": reader,
            "SELF_READ": reader or internal, "SPEND_READ": spend,
            "SPEND_SELF": spend or internal,
            "BUDGET_MANAGER": False}[access]  # no caller here has permissions.budget_manager


class InputTest(harness.StackTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.errors = []      # (what, answer text) of every error answer
        cls.raw_keys = {MASTER_KEY}
        s = cls.stack

        def ok(path, body):
            st, _, ans = s.report("POST", path, body, key=MASTER_KEY)
            if st != 200:
                raise AssertionError((path, st, ans))
            return ans
        ok("/team/new", {"team_id": TEAM})
        ok("/user/new", {"user_id": USER})
        ok("/team/member_add", {"team_id": TEAM, "member": {"user_id": MEMBER_USER}})
        ok("/budget/new", {"budget_id": BUDGET, "max_budget": 5})
        ok("/customer/new", {"user_id": CUSTOMER})
        ok("/budget_manager/create_budget",
           {"project_name": BM_PROJECT, "user": BM_USER, "total_budget": 5})
        k = ok("/key/generate", {"key_alias": ALIAS, "user_id": USER, "team_id": TEAM})
        cls.raw_keys.add(k["key"])
        cls.fx_token = k["token"]
        cls.uniq = 0
        # a few spend rows and rollups, so read routes have something to hide
        for i in range(3):
            st, _, ans = s.chat(k["key"], prompt_tokens=10 + i, completion_tokens=5)
            if st != 200:
                raise AssertionError(("chat", st, ans))
        harness.wait_for(lambda: s.sql_value("SELECT COUNT(*) FROM spend_logs") == "3",
                         timeout=15, message="spend logs not written")

    # -- helpers

    def send(self, method, path, body=None, key=MASTER_KEY, headers=None):
        """One request; a dropped connection or a 5xx fails; the answer is
        scanned for SQL text. Returns (status, headers, parsed answer, text)."""
        h = {"Connection": "close"}
        if body is not None:
            h["Content-Type"] = "application/json"
            if not isinstance(body, (bytes, str)):
                body = json.dumps(body)
            if isinstance(body, str):
                body = body.encode()
        if key is not None:
            h["Authorization"] = "Bearer " + key
        h.update(headers or {})
        conn = http.client.HTTPConnection("127.0.0.1", self.stack.reportd_port, timeout=30)
        what = "%s %s %r" % (method, path[:300], body[:300] if body else body)
        try:
            conn.request(method, path, body=body, headers=h)
            resp = conn.getresponse()
            raw = resp.read()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
        except (OSError, http.client.HTTPException) as e:
            self.fail("connection dropped: %s: %r" % (what, e))
        finally:
            conn.close()
        text = raw.decode(errors="replace")
        self.assertLess(resp.status, 500, (what, text))
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if resp.status >= 400:
            self.errors.append((what, text))
        elif isinstance(parsed, dict) and isinstance(parsed.get("key"), str) and \
                parsed["key"].startswith("sk-") and parsed["key"] not in PAYLOADS:
            self.raw_keys.add(parsed["key"])  # a key reportd made: never to be logged
        return resp.status, hdrs, parsed, text

    def check_leak(self, what, text, payloads=()):
        """No SQL text in an answer (what the client itself sent aside)."""
        for p in sorted((p for p in payloads if isinstance(p, str) and p), key=len,
                        reverse=True):
            text = text.replace(p, "").replace(json.dumps(p)[1:-1], "")
        m = SQL_LEAK.search(text)
        self.assertIsNone(m, "SQL text in the answer to %s: %s" % (what, text[:500]))

    def assert_error(self, status, parsed, text, what, param=...):
        self.assertGreaterEqual(status, 400, (what, text))
        self.assertLess(status, 500, (what, text))
        self.assertIsNotNone(parsed, "not JSON: %s: %s" % (what, text[:300]))
        return self.assertErrorShape(parsed, status, param, msg=(what, text[:500]))

    def base_request(self, route):
        def fill(v):
            if isinstance(v, dict):
                return {k: fill(x) for k, x in v.items()}
            if v == "@uniq":
                InputTest.uniq += 1
                return "uniq-%d" % InputTest.uniq
            if v == "@bmuser":
                InputTest.uniq += 1
                user = "bm-uniq-%d" % InputTest.uniq
                st, _, ans, text = self.send("POST", "/budget_manager/create_budget", {
                    "project_name": BM_PROJECT, "user": user, "total_budget": 5})
                self.assertEqual(st, 200, text)
                return user
            return self.fx_token if v == "@fxkey" else v
        query, body = fill(route.base_query), fill(route.base_body)
        if route.fresh_key:
            st, _, k, text = self.send("POST", "/key/generate", {})
            self.assertEqual(st, 200, text)
            self.raw_keys.add(k["key"])
            body["key"] = k["key"]
        return query, body

    def table_rows(self):
        """Every table's primary keys, hex-encoded: {table: set(row)}."""
        tables = [r[0] for r in self.stack.sql("SHOW TABLES")]
        out = {}
        for t in tables:
            cols = [r[0] for r in self.stack.sql(
                "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE"
                " TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '%s' AND CONSTRAINT_NAME ="
                " 'PRIMARY' ORDER BY ORDINAL_POSITION" % t)]
            expr = "CONCAT_WS(',', %s)" % ", ".join("HEX(`%s`)" % c for c in cols) \
                if cols else "MD5(CONCAT_WS(',', *))"
            out[t] = {r[0] for r in self.stack.sql("SELECT %s FROM `%s`" % (expr, t))}
        return out

    def stored(self, table, column, value):
        hexed = value.encode().hex()
        return int(self.stack.sql_value(
            "SELECT COUNT(*) FROM `%s` WHERE `%s` = X'%s'" % (table, column, hexed)))

    def expect_2xx_or_named(self, route, param, sent, status, parsed, text, what,
                            may_succeed=True):
        """A 2xx (its echo of the value byte-exact) or a 4xx naming param."""
        if 200 <= status < 300 and may_succeed:
            if isinstance(sent, str) and isinstance(parsed, dict):
                for obj in (parsed, parsed.get("info")):
                    if isinstance(obj, dict) and isinstance(obj.get(param), str) \
                            and param not in ("key",):
                        self.assertEqual(obj[param], sent, (what, text[:500]))
            return True
        self.assert_error(status, parsed, text, what, param)
        return False

    def alive(self):
        st, _, ans, text = self.send("GET", "/global/spend/keys?limit=1")
        self.assertEqual(st, 200, text)
        self.assertIsInstance(ans, list)

    def tearDown(self):
        # every test: reportd still answers, and no answer of it carried a key
        self.alive()
        tokens = {r[0] for r in self.stack.sql("SELECT token FROM api_keys")}
        secrets = tokens | {k for k in self.raw_keys if len(k) >= 7} | {
            hashlib.sha256(k.encode()).hexdigest() for k in self.raw_keys}
        for what, text in self.errors:
            for s in secrets:
                self.assertNotIn(s, text, "a key or key hash in the error answer to %s" % what)
        log = self.stack.daemon_log("reportd").read_text(errors="replace")
        for k in self.raw_keys:
            if len(k) >= 7:
                self.assertTrue(k not in log, "a raw key in reportd's log: %s" % k)
        for what, text in self.errors:
            self.assertNotRegex(text, r"(?i)sql syntax", what)

    # -- the route list

    def test_route_list_mirrors_api_c(self):
        text = API_C.read_text()
        table = re.search(r"static const struct route ROUTES\[\] = \{(.*?)\n\};", text, re.S)
        self.assertIsNotNone(table, "no ROUTES table in reportd/api.c")
        found = re.findall(r'\{\{EVHTTP_REQ_([A-Z]+), "([^"]+)"\}, ([A-Z_]+), \w+, '
                           r'(?:PRIMARY|REPLICA)\}', table.group(1))
        self.assertGreater(len(found), 0, "no routes parsed from reportd/api.c")
        entries = [line.strip() for line in table.group(1).splitlines()
                   if line.strip().startswith("{{")]
        self.assertEqual(len(entries), len(found),
                         "route lines of api.c this test cannot parse: %r" % entries)
        in_api = {(m, p): a for m, p, a in found}
        in_test = {(r.method, r.path): r.access for r in ROUTES}
        missing = sorted(set(in_api) - set(in_test))
        self.assertEqual(missing, [], "routes in reportd/api.c missing from ROUTES of "
                         "tests/e2e/test_api_input.py (add them with their parameters)")
        self.assertEqual(sorted(set(in_test) - set(in_api)), [],
                         "routes in this test that api.c no longer has")
        self.assertEqual(in_test, in_api, "access levels differ from api.c")

    # -- string parameters

    def string_payloads(self):
        return SQLISH + NUL_VALUES + LONG_VALUES

    def test_query_string_parameters(self):
        before = self.table_rows()
        n = 0
        for route in ROUTES:
            for param, kind in route.query.items():
                values = [urllib.parse.quote(v, safe="") for v in self.string_payloads()]
                values += ["%FF%FE", "abc%C3", "%ED%A0%80", "%C0%AE", "a%00b", "%00",
                           "a%2500", "a+b", "%2B%26%3D"]
                for enc in values:
                    query, _ = self.base_request(route)
                    query.pop(param, None)
                    path = route.path + "?" + "&".join(
                        [qs(query)] * bool(query) + ["%s=%s" % (param, enc)])
                    what = "%s %s" % (route.method, path[:300])
                    body = {} if route.method == "POST" else None
                    st, _, ans, text = self.send(route.method, path, body)
                    n += 1
                    self.check_leak(what, text, self.string_payloads())
                    if kind in (E, QI):
                        self.assert_error(st, ans, text, what, param)
                    else:
                        self.expect_2xx_or_named(route, param, None, st, ans, text, what)
                    if "%00" in enc or len(urllib.parse.unquote(enc)) > 255:
                        # a NUL byte or an over-long value is never silently cut
                        self.assert_error(st, ans, text, what, param)
        self.assertGreater(n, 100)
        self.check_tables(before)

    def test_body_string_parameters(self):
        before = self.table_rows()
        created = 0
        for route in ROUTES:
            for param, kind in route.body.items():
                if kind not in (S, E):
                    continue
                for value in self.string_payloads() + WRONG_TYPES + [None]:
                    query, body = self.base_request(route)
                    body[param] = value
                    path = route.path + ("?" + qs(query) if query else "")
                    st, _, ans, text = self.send(route.method, path, body)
                    what = "%s %s" % (route, json.dumps(body)[:300])
                    self.check_leak(what, text, self.string_payloads())
                    bad = (kind == E and value is not None) or \
                        not isinstance(value, (str, type(None))) or \
                        (isinstance(value, str) and ("\u0000" in value or value == "" or
                                                    len(value.encode()) > 255))
                    if bad:
                        self.assert_error(st, ans, text, what, param)
                        continue
                    if st == 404 and ans["error"]["param"] in route.alt.get(param, ()):
                        continue
                    if self.expect_2xx_or_named(route, param, value, st, ans, text, what) \
                            and isinstance(value, str) and param in route.store:
                        table, column = route.store[param]
                        self.assertGreaterEqual(self.stored(table, column, value), 1,
                                                "%s: %r not stored as sent" % (what, value))
                        created += 1
        self.assertGreater(created, 10, "no odd id was ever accepted and stored")
        self.check_tables(before)

    def test_body_string_lists_and_members(self):
        before = self.table_rows()
        for route in ROUTES:
            for param, kind in route.body.items():
                if kind not in (L, MEMBER):
                    continue
                cases = [[v] for v in self.string_payloads()] + \
                    [[v] for v in WRONG_TYPES if not isinstance(v, str)] + \
                    [v for v in WRONG_TYPES if not isinstance(v, list)]
                if kind == MEMBER:
                    cases = [{"user_id": v} for v in self.string_payloads() + WRONG_TYPES] + \
                        [{"user_id": "m-role", "role": v} for v in SQLISH + NUL_VALUES] + \
                        [[{"user_id": v}] for v in SQLISH + NUL_VALUES] + WRONG_TYPES[:2]
                for value in cases:
                    query, body = self.base_request(route)
                    body[param] = value
                    st, _, ans, text = self.send(route.method, route.path, body)
                    what = "%s %s" % (route, json.dumps(body)[:300])
                    self.check_leak(what, text, self.string_payloads())
                    items = value if isinstance(value, list) else [value]
                    strings = [x.get("user_id") if isinstance(x, dict) else x for x in items]
                    bad = any(not isinstance(x, str) or "\u0000" in x or
                              len(x.encode()) > 255 for x in strings) or \
                        (kind == MEMBER and isinstance(value, dict) and "role" in value)
                    if bad:
                        err = self.assert_error(st, ans, text, what)
                        # a member's own field may be named instead of the list
                        self.assertIn(err["param"], (param, "user_id", "role") if kind == MEMBER
                                      else (param,), what)
                    elif kind == MEMBER and 200 <= st < 300:
                        pass
                    elif kind == MEMBER:
                        err = self.assert_error(st, ans, text, what)
                        self.assertIn(err["param"], (param, "user_id", "role"), what)
                    else:
                        self.expect_2xx_or_named(route, param, None, st, ans, text, what)
        self.check_tables(before)

    def check_tables(self, before):
        """No table lost, no row gone; new rows only where the test makes them."""
        after = self.table_rows()
        self.assertEqual(sorted(after), sorted(before), "tables changed")
        made_here = {"teams", "internal_users", "api_keys", "team_members", "budgets",
                     "customers"}
        made_here |= {"budget_manager_users", "budget_manager_model_cost"}
        for t in before:
            gone = before[t] - after[t]
            self.assertEqual(gone, set(), "rows gone from %s" % t)
            if t not in made_here:
                self.assertEqual(after[t], before[t], "rows added to %s" % t)

    def test_round_trip_of_an_odd_team_id(self):
        odd = "q'\"\\%_; DROP TABLE teams; -- \u00e9"
        st, _, ans, text = self.send("POST", "/team/new", {"team_id": odd, "team_alias": odd})
        self.assertEqual(st, 200, text)
        self.assertEqual((ans["team_id"], ans["team_alias"]), (odd, odd))
        st, _, ans, text = self.send("GET", "/team/info?" + qs({"team_id": odd}))
        self.assertEqual(st, 200, text)
        self.assertEqual(ans["team_id"], odd)
        self.assertEqual(self.stored("teams", "team_id", odd), 1)
        # one byte off is another team
        st, _, ans, text = self.send("GET", "/team/info?" + qs({"team_id": odd[:-1]}))
        self.assert_error(st, ans, text, "team/info", "team_id")
        # a key with quotes in its alias, found by that alias only
        st, _, k, text = self.send("POST", "/key/generate", {"key_alias": odd, "team_id": odd})
        self.assertEqual(st, 200, text)
        self.raw_keys.add(k["key"])
        self.assertEqual(k["key_alias"], odd)
        st, _, ans, text = self.send("GET", "/key/list?" + qs({"team_id": odd}))
        self.assertEqual((st, ans["keys"]), (200, [k["token"]]), text)
        st, _, ans, text = self.send("GET", "/key/list?" + qs({"team_id": "q%"}))  # no LIKE
        self.assertEqual((st, ans["keys"]), (200, []), text)
        st, _, ans, text = self.send("POST", "/key/delete", {"key_aliases": [odd[:-1] + "%"]})
        self.assertEqual((st, ans["deleted_keys"]), (200, []), text)
        st, _, ans, text = self.send("POST", "/key/delete", {"key_aliases": [odd]})
        self.assertEqual((st, ans["deleted_keys"]), (200, [odd]), text)
        # a NUL byte does not cut a key down to another key
        st, _, k2, text = self.send("POST", "/key/generate", {"key": "sk-nul-test-key"})
        self.assertEqual(st, 200, text)
        self.raw_keys.add(k2["key"])
        for path, body in (("/key/delete", {"keys": ["sk-nul-test-key\u0000x"]}),
                           ("/key/delete", {"key_aliases": ["\u0000"]}),
                           ("/key/block", {"key": "sk-nul-test-key\u0000x"})):
            st, _, ans, text = self.send("POST", path, body)
            self.assert_error(st, ans, text, path, list(body)[0])
        st, _, ans, text = self.send("GET", "/key/info?key=sk-nul-test-key%00x")
        self.assert_error(st, ans, text, "key/info NUL", "key")
        self.assertEqual(self.stored("api_keys", "token", k2["token"]), 1)

    # -- numbers, dates, enums

    def test_numbers(self):
        routes_with = [(r, p, k) for r in ROUTES for p, k in r.body.items() if k in (M, I, B)]
        self.assertGreater(len(routes_with), 10)
        raw_cases = ["-1", "-0.01", "1e309", "-1e309", "1e308", "1e30", "123456789012345678901234567890",
                     "NaN", "Infinity", "-Infinity", "true", "false", '"5"', '"NaN"', "[]", "{}",
                     "0.5", "-0", "-0.0", "0", "1", "2.25", "1e2", "100000000000000000000"]
        for route, param, kind in routes_with:
            for raw in raw_cases:
                query, body = self.base_request(route)
                body.pop(param, None)
                text_body = json.dumps(body)
                text_body = text_body[:-1] + (", " if body else "") + \
                    '"%s": %s}' % (param, raw)
                st, _, ans, text = self.send(route.method, route.path, text_body)
                what = "%s %s" % (route, text_body[:300])
                self.check_leak(what, text)
                try:
                    value = json.loads(raw)
                except ValueError:
                    value = "unparsable"
                if raw in ("1e309", "-1e309", "NaN", "Infinity", "-Infinity",
                           "123456789012345678901234567890", "100000000000000000000"):
                    # not a JSON number a parser can hold: the body is refused,
                    # naming the parameter when the number was read
                    self.assert_error(st, ans, text, what)
                    self.assertIn(ans["error"]["param"], (param, None), what)
                    continue
                if kind == B:
                    good = isinstance(value, bool)
                elif kind == I:
                    good = isinstance(value, int) and not isinstance(value, bool) and value >= 0
                else:
                    good = isinstance(value, (int, float)) and not isinstance(value, bool) \
                        and value >= 0 and value < 1e20
                if good:
                    self.expect_2xx_or_named(route, param, None, st, ans, text, what)
                else:
                    self.assert_error(st, ans, text, what, param)

    def test_negative_zero_and_exact_money(self):
        st, _, ans, text = self.send("POST", "/budget/new",
                                     '{"budget_id": "b-zero", "max_budget": -0.0}')
        self.assertEqual(st, 200, text)
        self.assertEqual(self.stack.sql_value(
            "SELECT max_budget FROM budgets WHERE budget_id = 'b-zero'"),
            "0.00000000000000000000")
        st, _, ans, text = self.send("POST", "/budget/new",
                                     '{"budget_id": "b-neg", "max_budget": -0.000001}')
        self.assert_error(st, ans, text, "negative budget", "max_budget")

    def test_query_numbers_dates_and_enums(self):
        ints = ["-1", "0", "1.5", "1e3", "NaN", "inf", "0x10", "99999999999999999999999",
                " 1", "1 ", "+1", "", "true", "1%00"]
        for route in ROUTES:
            for param, kind in route.query.items():
                if kind != QI:
                    continue
                for v in ints:
                    query, _ = self.base_request(route)
                    query[param] = urllib.parse.unquote(v)
                    path = route.path + "?" + qs(query)
                    st, _, ans, text = self.send(route.method, path)
                    what = "%s %s" % (route.method, path)
                    if v == "":
                        self.assertEqual(st, 200, (what, text))  # absent: the default
                    elif v in ("+1",):
                        self.expect_2xx_or_named(route, param, None, st, ans, text, what)
                    else:
                        self.assert_error(st, ans, text, what, param)
        dates = ["2026-02-30", "2026-13-01", "2026-1-1", "26-01-01", "2026-01-01T00:00:00",
                 "2026/01/01", "' OR 1=1 --", "2026-01-01%00", "0000-00-00", "now", "1e5"]
        for route in ROUTES:
            if "start_date" not in route.query:
                continue
            for bad in dates:
                for param in ("start_date", "end_date"):
                    query = dict(DATES)
                    query[param] = urllib.parse.unquote(bad)
                    path = route.path + "?" + qs(query)
                    st, _, ans, text = self.send("GET", path)
                    self.assert_error(st, ans, text, path, param)
            # together or neither; start not after end
            st, _, ans, text = self.send("GET", route.path + "?start_date=2026-01-01")
            self.assert_error(st, ans, text, route.path, "end_date")
            st, _, ans, text = self.send(
                "GET", route.path + "?start_date=2026-02-01&end_date=2026-01-01")
            self.assert_error(st, ans, text, route.path, "start_date")
        st, _, ans, text = self.send("GET", "/global/spend/report")
        self.assert_error(st, ans, text, "report without dates")
        self.assertIn(ans["error"]["param"], ("start_date", "end_date"))
        for param, bad in (("group_by", "team;"), ("group_by", "TEAM"), ("format", "xml"),
                           ("format", "json%00")):
            path = "/global/spend/report?%s&%s=%s" % (qs(DATES), param, bad)
            st, _, ans, text = self.send("GET", path)
            self.assert_error(st, ans, text, path, param)
        for path, body, param in (
                ("/user/new", {"user_role": "root"}, "user_role"),
                ("/user/new", {"user_role": "proxy_admin "}, "user_role"),
                ("/team/member_update", {"team_id": TEAM, "user_id": MEMBER_USER,
                                         "role": "owner"}, "role"),
                ("/team/member_add", {"team_id": TEAM, "member": {"user_id": "r1",
                                                                  "role": "owner"}}, "member"),
                ("/key/generate", {"duration": "1y"}, "duration"),
                ("/key/generate", {"duration": "-1d"}, "duration"),
                ("/key/generate", {"budget_duration": "0d"}, "budget_duration"),
                ("/budget/new", {"budget_duration": "30"}, "budget_duration"),
                ("/key/generate", {"tpm_limit": 1.5}, "tpm_limit"),
                ("/key/generate", {"rpm_limit": True}, "rpm_limit"),
                ("/key/generate", {"max_budget": "10"}, "max_budget"),
                ("/key/generate", {"team_id": "no-such-team"}, "team_id"),
                ("/key/generate", {"spend": 1}, "spend")):
            st, _, ans, text = self.send("POST", path, body)
            self.assert_error(st, ans, text, "%s %s" % (path, body), param)

    # -- bodies and query strings as a whole

    def test_bodies_that_are_not_json_objects(self):
        bad_bodies = [b"", b"not json", b"{", b"[]", b"[1, 2]", b'"team"', b"1", b"null",
                      b"true", b'{"a": 1,}', b"{'team_id': 'x'}", b'{"team_id": "\xff\xfe"}',
                      b'{"team_id": "\\ud800"}', b'{"team_id": "a"}garbage', b"\x00",
                      b'{"team_id": "' + b"a" * 10 + b'\x00"}']
        for route in ROUTES:
            if route.method != "POST" or not route.body:
                continue
            for body in bad_bodies:
                if body == b"" and route.path == "/global/spend/end_users":
                    continue  # LiteLLM's body there is optional: no body = defaults
                st, _, ans, text = self.send("POST", route.path, body)
                self.assert_error(st, ans, text, "%s %r" % (route, body))
                self.assertEqual(st, 400, (route, body, text))

    def test_body_over_the_size_limit(self):
        for route in ROUTES:
            if route.method != "POST" or not route.body:
                continue
            field = next(p for p, k in route.body.items() if k in (S, L, O, E))
            for size in (1024 * 1024 + 1, 3 * 1024 * 1024):
                body = json.dumps({field: "z" * size}).encode()
                st, _, ans, text = self.send("POST", route.path, body)
                self.assert_error(st, ans, text, "%s %d bytes" % (route, size))
                self.assertIn(st, (400, 413), (route, text[:300]))
        # a big body where one is not read is no trouble either
        st, _, ans, text = self.send("GET", "/budget/list", b"x" * (512 * 1024))
        self.assertEqual(st, 200, text[:300])

    def test_duplicate_and_unknown_query_parameters(self):
        for route in ROUTES:
            if route.method != "GET":
                continue
            query, _ = self.base_request(route)
            st0, _, ans0, text0 = self.send("GET", route.path + ("?" + qs(query) if query else ""))
            self.assertEqual(st0, 200, (route, text0))  # the base request is a good one
            # unknown parameters are ignored, or refused by name where the route says so
            extra = dict(query, unknown_param="' OR 1=1", limit2="5", user_idx="x")
            st, _, ans, text = self.send("GET", route.path + "?" + qs(extra))
            if route.strict:
                self.assert_error(st, ans, text, route, "unknown_param")
                self.assertEqual(st, 400, text)
            else:
                self.assertEqual((st, ans), (st0, ans0), route)
            for param, kind in route.query.items():
                if kind != S:
                    continue
                # the same parameter twice: refused, naming it
                first = query.get(param, "a")
                path = route.path + "?" + "&".join(
                    [qs({k: v for k, v in query.items() if k != param})] * (len(query) > 1) +
                    [qs({param: [first, "' OR '1'='1"]})])
                st, _, ans, text = self.send("GET", path)
                self.assert_error(st, ans, text, path, param)
                self.assertEqual(st, 400, text)
        # a malformed query string
        for path in ("/key/list?page=1&&size=2", "/key/list?=x", "/key/list?%zz=1",
                     "/key/list?page=%zz"):
            st, _, ans, text = self.send("GET", path)
            if st != 200:
                self.assert_error(st, ans, text, path)
        st, _, ans, text = self.send("GET", "/key/list?" + "a=b&" * 3000)
        self.assert_error(st, ans, text, "long query string")

    # -- routes and methods

    def test_unknown_routes_404(self):
        for method, path in (("GET", "/"), ("GET", "/nope"), ("POST", "/team/new/"),
                             ("GET", "/team/info/"), ("GET", "/TEAM/INFO"),
                             ("GET", "/team/info%00"), ("POST", "/team/new%2f"),
                             ("GET", "/../etc/passwd"), ("GET", "/key/" + "x" * 4000),
                             ("DELETE", "/nope"), ("GET", "/v1/chat/completions")):
            st, _, ans, text = self.send(method, path, {} if method == "POST" else None)
            self.assertEqual(st, 404, (method, path, text))
            self.assert_error(st, ans, text, path, None)
        st, _, ans, text = self.send("GET", "/nope", key=None)
        self.assertEqual(st, 404, text)
        self.assert_error(st, ans, text, "/nope without a key")

    def test_wrong_method_405(self):
        methods = {}
        for r in ROUTES:
            methods.setdefault(r.path, set()).add(r.method)
        for path, ok in methods.items():
            for m in ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
                if m in ok:
                    continue
                st, hdrs, ans, text = self.send(m, path, {} if m in ("POST", "PUT", "PATCH")
                                                else None)
                self.assertEqual(st, 405, (m, path, text))
                err = self.assert_error(st, ans, text, "%s %s" % (m, path), None)
                self.assertIn(path, err["message"])
                for allowed_method in ok:
                    self.assertIn(allowed_method, err["message"])
                    self.assertIn(allowed_method, hdrs.get("allow", ""), (m, path))

    # -- who may call what

    def test_route_refusals(self):
        def key_for(role, perms=None):
            body = {}
            if role is not None:
                uid = "acl-%s-%s" % (role, "spend" if perms else "plain")
                st, _, ans, text = self.send("POST", "/user/new",
                                             {"user_id": uid, "user_role": role})
                self.assertEqual(st, 200, text)
                body["user_id"] = uid
            if perms:
                body["permissions"] = perms
            st, _, k, text = self.send("POST", "/key/generate", body)
            self.assertEqual(st, 200, text)
            self.raw_keys.add(k["key"])
            return k["key"]
        spend = {"get_spend_routes": True}
        callers = [(role, bool(perms), key_for(role, perms)) for role, perms in (
            ("proxy_admin", None), ("proxy_admin", spend), ("proxy_admin_viewer", None),
            ("internal_user", None), ("internal_user_viewer", None), ("internal_user", spend),
            (None, spend), (None, None))]
        st, _, blocked, text = self.send("POST", "/key/generate",
                                         {"blocked": True, "permissions": spend})
        self.raw_keys.add(blocked["key"])
        for route in ROUTES:
            body = {} if route.method == "POST" else None
            if route.access == "OPEN":  # any caller, any key or none
                for key in (None, "sk-not-a-real-key", blocked["key"], callers[-1][2]):
                    st, _, ans, text = self.send(route.method, route.path, body, key=key)
                    self.assertEqual(st, 200, (route, key, text))
                continue
            for key, headers in ((None, None), ("sk-not-a-real-key", None),
                                 (None, {"Authorization": "Basic " + MASTER_KEY}),
                                 (None, {"Authorization": "Bearer "}),
                                 ("'; DROP TABLE api_keys; --", None),
                                 (hashlib.sha256(MASTER_KEY.encode()).hexdigest(), None),
                                 (None, {"x-litellm-api-key": "sk-bad"})):
                st, _, ans, text = self.send(route.method, route.path, body, key=key,
                                             headers=headers)
                self.assertEqual(st, 401, (route, key, headers, text))
                self.assert_error(st, ans, text, route, None)
            st, _, ans, text = self.send(route.method, route.path, body, key=blocked["key"])
            self.assertEqual(st, 403, (route, "blocked", text))
            for role, perm, key in callers:
                st, _, ans, text = self.send(route.method, route.path, body, key=key)
                what = (route, role, perm, text)
                if allowed(route.access, role, perm):
                    self.assertNotIn(st, (401, 405), what)
                    if st == 403:  # only a handler's own-rows rule, which names the param
                        self.assertIsNotNone(ans["error"]["param"], what)
                else:
                    self.assertEqual(st, 403, what)
                    self.assert_error(st, ans, text, what, None)
        # the global reset: the master key alone, whatever the key's rights
        st, _, ans, text = self.send("POST", "/global/spend/reset", {}, key=callers[1][2])
        self.assertEqual(st, 403, text)
        self.assertIn("master key", ans["error"]["message"])


if __name__ == "__main__":
    unittest.main()
