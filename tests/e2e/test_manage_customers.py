"""test_manage_customers.py - reportd's end-user (customer) and budget routes:
/customer/new|info|update|delete|block|unblock (and /end_user/*), /budget/new|update|
delete|info|list in LiteLLM's shapes, checked field by field against the database rows;
every refusal names its parameter; only the master key may call them; and what proxyd
does with the rows they write (end-user budgets and blocks).

Run from the repo root:  python3 -m unittest -v tests/e2e/test_manage_customers.py
"""

import datetime
import os
import sys
import unittest
import uuid
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import MASTER_KEY, expected_cost, wait_for  # noqa: E402

UTC = datetime.timezone.utc
STATE_S = 2.5  # a row change reaches proxyd within key_cache_ttl_ms + 1 s (2 s)
PROMPT, COMPLETION = 100, 500
COST = expected_cost(PROMPT, COMPLETION)
RFC = "'%Y-%m-%dT%H:%i:%s.%f+00:00'"
BUDGET_SQL = ("SELECT budget_id, max_budget, soft_budget, budget_duration,"
              " DATE_FORMAT(budget_reset_at, {f}), tpm_limit, rpm_limit,"
              " DATE_FORMAT(created_at, {f}), DATE_FORMAT(updated_at, {f}),"
              " budget_period_start, budget_reset_at FROM budgets").format(f=RFC)


def money(v):
    return None if v is None else Decimal(v)


def integer(v):
    return None if v is None else int(v)


def db_time(v):
    return datetime.datetime.strptime(v, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)


def chat_body(user):
    return {"model": "llama3", "max_tokens": COMPLETION, "user": user,
            "messages": [{"role": "user", "content": "customer test " + "x" * 150}],
            "mock_usage": {"prompt_tokens": PROMPT, "completion_tokens": COMPLETION}}


class ManageCustomersTest(harness.StackTestCase):

    # -- helpers

    def post(self, path, body, key=MASTER_KEY):
        return self.stack.report("POST", path, body, key=key)

    def get(self, path, key=MASTER_KEY):
        return self.stack.report("GET", path, key=key)

    def ok(self, path, body):
        st, _, out = self.post(path, body)
        self.assertEqual(st, 200, out)
        return out

    def refused(self, path, body, status, param, type_="invalid_request_error"):
        st, _, out = self.post(path, body) if isinstance(body, (dict, list, str)) \
            else self.get(path)
        self.assertEqual(st, status, (path, body, out))
        return self.assertErrorShape(out, status, param, type_, msg=(path, body, out))

    def budget_rows(self, where=""):
        return self.stack.sql(BUDGET_SQL + where)

    def expected_budget(self, budget_id):
        """A budget as the routes must answer it, from its row."""
        rows = self.budget_rows(" WHERE budget_id = '%s'" % budget_id)
        self.assertEqual(len(rows), 1, budget_id)
        return self.budget_json(rows[0])

    @staticmethod
    def budget_json(r):
        return {"budget_id": r[0], "max_budget": money(r[1]), "soft_budget": money(r[2]),
                "budget_duration": r[3], "budget_reset_at": r[4], "tpm_limit": integer(r[5]),
                "rpm_limit": integer(r[6]), "created_at": r[7], "updated_at": r[8]}

    def expected_customer(self, user_id):
        rows = self.stack.sql("SELECT user_id, alias, spend, blocked, budget_id FROM customers"
                              " WHERE user_id = '%s'" % user_id)
        self.assertEqual(len(rows), 1, user_id)
        r = rows[0]
        return {"user_id": r[0], "alias": r[1], "spend": money(r[2]), "blocked": r[3] == "1",
                "budget_id": r[4],
                "litellm_budget_table": self.expected_budget(r[4]) if r[4] else None}

    def count(self, table, where="1"):
        return int(self.stack.sql_value("SELECT COUNT(*) FROM %s WHERE %s" % (table, where)))

    def assert_new_period(self, budget_id, before, next_end):
        """budget_period_start = now (whole seconds, as key_times) and budget_reset_at =
        next_end(start)."""
        r = self.budget_rows(" WHERE budget_id = '%s'" % budget_id)[0]
        start, reset = db_time(r[9]), db_time(r[10])
        self.assertEqual(start.microsecond, 0)
        self.assertLessEqual(before.replace(microsecond=0), start)
        self.assertLess(start, datetime.datetime.now(UTC) + datetime.timedelta(seconds=1))
        self.assertEqual(reset, next_end(start))
        return start

    def chat(self, user, key):
        return self.stack.http("POST", self.stack.proxyd_port, "/v1/chat/completions",
                               chat_body(user), key)

    def until_refused(self, user, key, limit=20):
        for ok in range(limit):
            st, _, out = self.chat(user, key)
            if st != 200:
                return ok, (st, out)
        return limit, None

    def virtual_key(self, **fields):
        return self.ok("/key/generate", fields)["key"]

    # -- /customer/new

    def test_new_with_inline_budget(self):
        before = datetime.datetime.now(UTC)
        out = self.ok("/customer/new", {
            "user_id": "cust-inline", "alias": "Acme Corp", "max_budget": 12.5,
            "soft_budget": 10, "budget_duration": "1d", "tpm_limit": 1000, "rpm_limit": 10})
        self.assertEqual(out, self.expected_customer("cust-inline"))
        bid = out["budget_id"]
        self.assertEqual(str(uuid.UUID(bid)), bid)
        self.assertEqual((out["alias"], out["blocked"], out["spend"]), ("Acme Corp", False, 0))
        b = out["litellm_budget_table"]
        self.assertEqual((b["max_budget"], b["soft_budget"], b["budget_duration"],
                          b["tpm_limit"], b["rpm_limit"]),
                         (Decimal("12.5"), 10, "1d", 1000, 10))
        start = self.assert_new_period(bid, before, lambda s: datetime.datetime.combine(
            s.date() + datetime.timedelta(days=1), datetime.time(), UTC))
        self.assertEqual(b["budget_reset_at"][:19], datetime.datetime.combine(
            start.date() + datetime.timedelta(days=1), datetime.time()).strftime(
                "%Y-%m-%dT%H:%M:%S"))

        # the alias route; no budget fields: no budget row
        n = self.count("budgets")
        out = self.ok("/end_user/new", {"user_id": "cust-plain", "blocked": True})
        self.assertEqual(out, {"user_id": "cust-plain", "alias": None, "spend": 0,
                               "blocked": True, "budget_id": None,
                               "litellm_budget_table": None})
        self.assertEqual(out, self.expected_customer("cust-plain"))
        self.assertEqual(self.count("budgets"), n)

        # a duration alone is a budget too (as LiteLLM), with no max
        out = self.ok("/customer/new", {"user_id": "cust-duration", "budget_duration": "2w"})
        self.assertEqual(out, self.expected_customer("cust-duration"))
        self.assertIsNone(out["litellm_budget_table"]["max_budget"])

    def test_new_with_budget_id(self):
        self.ok("/budget/new", {"budget_id": "tier-shared", "max_budget": 3})
        n = self.count("budgets")
        out = self.ok("/customer/new", {"user_id": "cust-tier", "budget_id": "tier-shared"})
        self.assertEqual(out, self.expected_customer("cust-tier"))
        self.assertEqual(out["litellm_budget_table"]["budget_id"], "tier-shared")
        self.assertEqual(self.count("budgets"), n)

    def test_new_refusals(self):
        self.ok("/budget/new", {"budget_id": "tier-r", "max_budget": 1})
        n_budgets = self.count("budgets")
        # both a budget_id and inline budget fields: which would it be?
        for field, value in (("max_budget", 5), ("soft_budget", 1), ("budget_duration", "1d"),
                             ("tpm_limit", 5), ("rpm_limit", 5)):
            self.refused("/customer/new", {"user_id": "cust-r", "budget_id": "tier-r",
                                           field: value}, 422, field)
        self.refused("/customer/new", {"user_id": "cust-r", "budget_id": "no-such-budget"},
                     400, "budget_id")
        self.refused("/customer/new", {"alias": "x"}, 400, "user_id")
        self.refused("/customer/new", {}, 400, "user_id")
        self.assertEqual(self.count("customers", "user_id = 'cust-r'"), 0)

        # an existing customer, made here or by accountd on first use; the inline
        # budget of a refused create is not left behind
        self.ok("/customer/new", {"user_id": "cust-dup"})
        self.stack.sql("INSERT INTO customers (user_id, created_at, updated_at)"
                       " VALUES ('cust-seen', NOW(6), NOW(6))")
        for uid in ("cust-dup", "cust-seen"):
            err = self.refused("/customer/new", {"user_id": uid, "max_budget": 2}, 400,
                               "user_id")
            self.assertIn(uid, err["message"])
        self.assertEqual(self.count("budgets"), n_budgets)

        bad = [("user_id", 5), ("user_id", ""), ("user_id", "u" * 256), ("alias", 7),
               ("alias", "a" * 256), ("blocked", "yes"), ("blocked", 1), ("budget_id", ["x"]),
               ("budget_id", "b" * 256), ("max_budget", -1), ("max_budget", "5"),
               ("max_budget", 1e30), ("max_budget", 1e-21), ("max_budget", True),
               ("soft_budget", -0.5), ("soft_budget", {}), ("budget_duration", "3x"),
               ("budget_duration", 5), ("budget_duration", "0d"), ("budget_duration", "1" * 20),
               ("tpm_limit", 1.5), ("tpm_limit", -1), ("tpm_limit", "10"), ("tpm_limit", True),
               ("rpm_limit", 2 ** 53), ("rpm_limit", -3), ("rpm_limit", 2.0)]
        for field, value in bad:
            body = {"user_id": "cust-bad", field: value}
            self.refused("/customer/new", body, 400, field)
        self.assertEqual(self.count("customers", "user_id = 'cust-bad'"), 0)
        # NaN is not JSON: the body itself is refused
        st, _, out = self.post("/customer/new", '{"user_id": "cust-bad", "max_budget": NaN}')
        self.assertEqual(st, 400, out)
        self.assertErrorShape(out, 400)
        st, _, out = self.post("/customer/new", ["cust-bad"])
        self.assertEqual(st, 400, out)
        self.assertEqual(self.count("customers", "user_id = 'cust-bad'"), 0)
        self.assertEqual(self.count("budgets"), n_budgets)

    # -- /customer/info

    def test_info(self):
        self.ok("/customer/new", {"user_id": "cust-info", "alias": "Info", "max_budget": 7})
        self.stack.sql("UPDATE customers SET spend = 1.25 WHERE user_id = 'cust-info'")
        for route in ("/customer/info", "/end_user/info"):
            st, _, out = self.get(route + "?end_user_id=cust-info")
            self.assertEqual(st, 200, out)
            self.assertEqual(out, self.expected_customer("cust-info"))
            self.assertEqual(out["spend"], Decimal("1.25"))
        self.refused("/customer/info?end_user_id=nobody", None, 404, "end_user_id",
                     "not_found_error")
        self.refused("/customer/info", None, 400, "end_user_id")
        self.refused("/customer/info?end_user_id=" + "x" * 256, None, 400, "end_user_id")

    # -- /customer/update

    def test_update_fields_and_own_budget(self):
        self.ok("/customer/new", {"user_id": "cust-upd", "alias": "Old"})
        created = self.stack.sql_value("SELECT created_at FROM customers"
                                       " WHERE user_id = 'cust-upd'")
        out = self.ok("/customer/update", {"user_id": "cust-upd", "alias": "New"})
        self.assertEqual(out, self.expected_customer("cust-upd"))
        self.assertEqual((out["alias"], out["blocked"], out["budget_id"]), ("New", False, None))

        # max_budget without a budget: its own budget is created
        out = self.ok("/customer/update", {"user_id": "cust-upd", "max_budget": 4})
        self.assertEqual(out, self.expected_customer("cust-upd"))
        own = out["budget_id"]
        self.assertIsNotNone(own)
        self.assertEqual((out["alias"], out["litellm_budget_table"]["max_budget"]), ("New", 4))

        # then that budget changes in place; a duration starts a new period now
        self.stack.sql("UPDATE customers SET spend = 3 WHERE user_id = 'cust-upd'")
        before = datetime.datetime.now(UTC)
        updated = self.expected_budget(own)["updated_at"]
        out = self.ok("/customer/update", {"user_id": "cust-upd", "max_budget": 6,
                                           "budget_duration": "1h", "blocked": True})
        self.assertEqual(out, self.expected_customer("cust-upd"))
        b = out["litellm_budget_table"]
        self.assertEqual((out["budget_id"], out["blocked"], b["max_budget"],
                          b["budget_duration"], b["tpm_limit"]), (own, True, 6, "1h", None))
        self.assertNotEqual(b["updated_at"], updated)
        self.assert_new_period(own, before, lambda s: s.replace(minute=0, second=0)
                               + datetime.timedelta(hours=1))
        # the new period's spend: the logs since its start (none), as at a reset
        self.assertEqual(out["spend"], 0)
        self.assertEqual(self.stack.sql_value("SELECT created_at FROM customers"
                                              " WHERE user_id = 'cust-upd'"), created)

        # relink to a shared budget; the old row stays (budgets are deleted explicitly)
        self.ok("/budget/new", {"budget_id": "tier-u", "max_budget": 9})
        out = self.ok("/customer/update", {"user_id": "cust-upd", "budget_id": "tier-u"})
        self.assertEqual(out, self.expected_customer("cust-upd"))
        self.assertEqual((out["budget_id"], out["alias"], out["blocked"]), ("tier-u", "New", True))
        self.assertEqual(self.count("budgets", "budget_id = '%s'" % own), 1)

        # a budget only this customer uses is its own: changed in place ...
        out = self.ok("/customer/update", {"user_id": "cust-upd", "rpm_limit": 3})
        self.assertEqual(out["litellm_budget_table"]["rpm_limit"], 3)
        self.assertEqual(out["budget_id"], "tier-u")
        # ... a shared one is not changed for everybody through one customer
        self.ok("/customer/new", {"user_id": "cust-upd-2", "budget_id": "tier-u"})
        self.refused("/customer/update", {"user_id": "cust-upd", "max_budget": 100}, 400,
                     "max_budget")
        self.assertEqual(self.expected_budget("tier-u")["max_budget"], 9)

    def test_update_refusals(self):
        self.ok("/customer/new", {"user_id": "cust-ur", "alias": "keep"})
        self.refused("/customer/update", {"user_id": "nobody", "alias": "x"}, 404, "user_id",
                     "not_found_error")
        self.refused("/customer/update", {"alias": "x"}, 400, "user_id")
        self.refused("/customer/update", {"user_id": "cust-ur", "budget_id": "x",
                                          "max_budget": 1}, 422, "max_budget")
        self.refused("/customer/update", {"user_id": "cust-ur", "budget_id": "no-such"}, 400,
                     "budget_id")
        for field, value in (("alias", 1), ("blocked", "no"), ("max_budget", -2),
                             ("tpm_limit", "x"), ("budget_duration", "forever"),
                             ("budget_id", 3)):
            self.refused("/customer/update", {"user_id": "cust-ur", field: value}, 400, field)
        self.assertEqual(self.expected_customer("cust-ur"), {
            "user_id": "cust-ur", "alias": "keep", "spend": 0, "blocked": False,
            "budget_id": None, "litellm_budget_table": None})

    # -- /customer/delete, /customer/block, /customer/unblock

    def test_delete_keeps_logs_and_rollups(self):
        key = self.virtual_key()
        self.ok("/customer/new", {"user_id": "cust-del-1", "max_budget": 5})
        self.ok("/customer/new", {"user_id": "cust-del-2"})
        self.assertEqual(self.chat("cust-del-1", key)[0], 200)
        wait_for(lambda: self.count("spend_logs", "end_user = 'cust-del-1'") == 1 and
                 self.count("daily_spend", "end_user = 'cust-del-1'") == 1, 10)
        st, _, out = self.post("/customer/delete", {"user_ids": ["cust-del-1", "nobody"]})
        self.assertErrorShape(out, 404, "user_ids", "not_found_error")
        self.assertIn("nobody", out["error"]["message"])
        self.assertEqual(self.count("customers", "user_id LIKE 'cust-del-%'"), 2)

        out = self.ok("/end_user/delete", {"user_ids": ["cust-del-1", "cust-del-2"]})
        self.assertEqual(out, {"deleted_customers": 2, "message":
                               'Successfully deleted customers with ids: '
                               '["cust-del-1","cust-del-2"]'})
        self.assertEqual(self.count("customers", "user_id LIKE 'cust-del-%'"), 0)
        self.assertEqual(self.count("spend_logs", "end_user = 'cust-del-1'"), 1)
        self.assertEqual(self.count("daily_spend", "end_user = 'cust-del-1'"), 1)
        self.refused("/customer/info?end_user_id=cust-del-1", None, 404, "end_user_id",
                     "not_found_error")
        for body in ({}, {"user_ids": "cust-x"}, {"user_ids": []}, {"user_ids": [1]},
                     {"user_ids": ["x" * 256]}, {"user_ids": ["a"] * 1001}):
            self.refused("/customer/delete", body, 400, "user_ids")

    def test_block_and_unblock(self):
        self.ok("/customer/new", {"user_id": "cust-blk", "alias": "B"})
        out = self.ok("/customer/block", {"user_ids": ["cust-blk", "cust-not-yet-seen"]})
        self.assertEqual(out, {"blocked_users": [self.expected_customer("cust-blk"),
                                                 self.expected_customer("cust-not-yet-seen")]})
        self.assertEqual([c["blocked"] for c in out["blocked_users"]], [True, True])
        self.assertEqual(out["blocked_users"][0]["alias"], "B")
        out = self.ok("/customer/unblock", {"user_ids": ["cust-not-yet-seen", "cust-blk"]})
        self.assertEqual(out, {"unblocked_users": [self.expected_customer("cust-blk"),
                                                   self.expected_customer("cust-not-yet-seen")]})
        self.assertEqual([c["blocked"] for c in out["unblocked_users"]], [False, False])
        self.refused("/customer/unblock", {"user_ids": ["cust-blk", "nobody"]}, 404,
                     "user_ids", "not_found_error")
        for route in ("/customer/block", "/customer/unblock"):
            self.refused(route, {"user_ids": "cust-blk"}, 400, "user_ids")
            self.refused(route, {}, 400, "user_ids")

    # -- /budget/*

    def test_budget_new_update_info(self):
        before = datetime.datetime.now(UTC)
        out = self.ok("/budget/new", {"budget_id": "b-full", "max_budget": 100,
                                      "soft_budget": 80.5, "budget_duration": "30d",
                                      "tpm_limit": 1000, "rpm_limit": 50})
        self.assertEqual(out, self.expected_budget("b-full"))
        self.assertEqual((out["max_budget"], out["soft_budget"], out["budget_duration"],
                          out["tpm_limit"], out["rpm_limit"]),
                         (100, Decimal("80.5"), "30d", 1000, 50))

        def first_of_next_month(s):
            return datetime.datetime(s.year + s.month // 12, s.month % 12 + 1, 1, tzinfo=UTC)
        self.assert_new_period("b-full", before, first_of_next_month)

        gen = self.ok("/budget/new", {})
        self.assertEqual(gen, self.expected_budget(gen["budget_id"]))
        self.assertEqual(str(uuid.UUID(gen["budget_id"])), gen["budget_id"])
        self.assertEqual([gen[k] for k in ("max_budget", "soft_budget", "budget_duration",
                                           "budget_reset_at", "tpm_limit", "rpm_limit")],
                         [None] * 6)
        self.refused("/budget/new", {"budget_id": "b-full"}, 400, "budget_id")

        # only the fields given change
        period = self.budget_rows(" WHERE budget_id = 'b-full'")[0][9:]
        out = self.ok("/budget/update", {"budget_id": "b-full", "max_budget": 120})
        self.assertEqual(out, self.expected_budget("b-full"))
        self.assertEqual((out["max_budget"], out["soft_budget"], out["budget_duration"],
                          out["tpm_limit"]), (120, Decimal("80.5"), "30d", 1000))
        self.assertEqual(self.budget_rows(" WHERE budget_id = 'b-full'")[0][9:], period)

        # a duration starts a new period now, and the spend of its end users restarts
        self.ok("/customer/new", {"user_id": "cust-b-full", "budget_id": "b-full"})
        self.stack.sql("UPDATE customers SET spend = 2 WHERE user_id = 'cust-b-full'")
        before = datetime.datetime.now(UTC)
        out = self.ok("/budget/update", {"budget_id": "b-full", "budget_duration": "6h"})
        self.assertEqual(out, self.expected_budget("b-full"))
        self.assert_new_period("b-full", before, lambda s: s.replace(
            hour=s.hour - s.hour % 6, minute=0, second=0) + datetime.timedelta(hours=6))
        self.assertEqual(self.expected_customer("cust-b-full")["spend"], 0)

        self.refused("/budget/update", {"max_budget": 1}, 400, "budget_id")
        self.refused("/budget/update", {"budget_id": "nope", "max_budget": 1}, 404, "budget_id",
                     "not_found_error")
        for field, value in (("max_budget", -1), ("soft_budget", "1"), ("tpm_limit", 0.5),
                             ("rpm_limit", -1), ("budget_duration", ""), ("budget_id", 9)):
            self.refused("/budget/update", {"budget_id": "b-full", field: value}, 400, field)
            self.refused("/budget/new", {field: value}, 400, field)
        self.assertEqual(self.expected_budget("b-full")["max_budget"], 120)

        out = self.ok("/budget/info", {"budgets": ["b-full", "nope", gen["budget_id"]]})
        self.assertEqual(out, sorted([self.expected_budget("b-full"),
                                      self.expected_budget(gen["budget_id"])],
                                     key=lambda b: b["budget_id"]))
        self.assertEqual(self.ok("/budget/info", {"budgets": ["nope"]}), [])
        for body in ({}, {"budgets": []}, {"budgets": "b-full"}, {"budgets": [None]}):
            self.refused("/budget/info", body, 400, "budgets")

    def test_budget_list_is_paginated(self):
        for i in range(3):
            self.ok("/budget/new", {"budget_id": "b-list-%d" % i, "max_budget": i})
        rows = self.budget_rows(" ORDER BY created_at, budget_id")
        st, _, page1 = self.get("/budget/list?size=2")
        self.assertEqual(st, 200, page1)
        self.assertEqual(page1, [self.budget_json(r) for r in rows[:2]])
        seen, page = [], 1
        while True:
            st, _, out = self.get("/budget/list?size=2&page=%d" % page)
            self.assertEqual(st, 200, out)
            self.assertLessEqual(len(out), 2)
            seen += out
            if len(out) < 2:
                break
            page += 1
        self.assertEqual(seen, [self.budget_json(r) for r in rows])
        self.refused("/budget/list?size=5000", None, 400, "size")
        self.refused("/budget/list?page=0", None, 400, "page")

    def test_budget_delete_refused_while_in_use(self):
        self.ok("/budget/new", {"budget_id": "b-used", "max_budget": 1})
        self.ok("/customer/new", {"user_id": "cust-b-used", "budget_id": "b-used"})
        err = self.refused("/budget/delete", {"id": "b-used"}, 400, "id")
        self.assertIn("1 customer", err["message"])
        self.ok("/budget/new", {"budget_id": "b-other"})
        self.ok("/customer/update", {"user_id": "cust-b-used", "budget_id": "b-other"})
        self.stack.sql("INSERT INTO team_members (team_id, user_id, budget_id, created_at,"
                       " updated_at) VALUES ('t-b', 'u-b', 'b-used', NOW(6), NOW(6))")
        err = self.refused("/budget/delete", {"id": "b-used"}, 400, "id")
        self.assertIn("1 team member", err["message"])
        self.stack.sql("DELETE FROM team_members WHERE team_id = 't-b'")

        row = self.expected_budget("b-used")
        self.assertEqual(self.ok("/budget/delete", {"id": "b-used"}), row)
        self.assertEqual(self.count("budgets", "budget_id = 'b-used'"), 0)
        self.refused("/budget/delete", {"id": "b-used"}, 404, "id", "not_found_error")
        self.refused("/budget/delete", {}, 400, "id")
        self.refused("/budget/delete", {"id": ["b"]}, 400, "id")

    # -- who may call

    def test_master_key_only(self):
        key = self.virtual_key(permissions={"get_spend_routes": True})
        routes = [("POST", "/customer/new", {"user_id": "cust-auth"}),
                  ("POST", "/end_user/new", {"user_id": "cust-auth"}),
                  ("GET", "/customer/info?end_user_id=cust-auth", None),
                  ("POST", "/customer/update", {"user_id": "cust-auth", "alias": "x"}),
                  ("POST", "/customer/delete", {"user_ids": ["cust-auth"]}),
                  ("POST", "/customer/block", {"user_ids": ["cust-auth"]}),
                  ("POST", "/customer/unblock", {"user_ids": ["cust-auth"]}),
                  ("POST", "/budget/new", {"budget_id": "b-auth"}),
                  ("POST", "/budget/update", {"budget_id": "b-auth", "max_budget": 1}),
                  ("POST", "/budget/delete", {"id": "b-auth"}),
                  ("POST", "/budget/info", {"budgets": ["b-auth"]}),
                  ("GET", "/budget/list", None)]
        for method, path, body in routes:
            st, _, out = self.stack.report(method, path, body, key=key)
            self.assertErrorShape(out, 403, msg=(path, out))
            self.assertEqual(st, 403, path)
            st, _, out = self.stack.report(method, path, body)
            self.assertErrorShape(out, 401, msg=(path, out))
            self.assertEqual(st, 401, path)
        self.assertEqual(self.count("customers", "user_id = 'cust-auth'"), 0)
        self.assertEqual(self.count("budgets", "budget_id = 'b-auth'"), 0)

    # -- what proxyd does with the rows

    def test_budget_from_the_api_is_enforced_by_proxyd(self):
        key = self.virtual_key()
        self.ok("/customer/new", {"user_id": "cust-spender", "max_budget": float(COST * 2)})
        ok, refusal = self.until_refused("cust-spender", key)
        self.assertEqual(ok, 2)
        self.assertIsNotNone(refusal)
        st, out = refusal
        self.assertEqual((st, out["error"]["type"]), (400, "budget_exceeded"), out)
        self.assertEqual(out["error"]["message"],
                         "ExceededBudget: End User=cust-spender over budget. Spend=%s, Budget=%s"
                         % ((COST * 2).normalize(), (COST * 2).normalize()))
        # a higher max_budget (its own budget, changed in place) lets it spend again
        self.ok("/customer/update", {"user_id": "cust-spender", "max_budget": float(COST * 3)})
        wait_for(lambda: self.chat("cust-spender", key)[0] == 200, STATE_S,
                 message="proxyd kept refusing after the budget was raised")

        # a shared budget: each of its end users has its own spend against it
        self.ok("/budget/new", {"budget_id": "tier-one-call", "max_budget": float(COST)})
        for uid in ("cust-tier-a", "cust-tier-b"):
            self.ok("/customer/new", {"user_id": uid, "budget_id": "tier-one-call"})
        for uid in ("cust-tier-a", "cust-tier-b"):
            ok, refusal = self.until_refused(uid, key)
            self.assertEqual(ok, 1, uid)
            self.assertEqual(refusal[1]["error"]["type"], "budget_exceeded")

    def test_block_reaches_proxyd(self):
        key = self.virtual_key()
        self.ok("/customer/new", {"user_id": "cust-gate"})
        self.assertEqual(self.chat("cust-gate", key)[0], 200)
        self.ok("/customer/block", {"user_ids": ["cust-gate"]})
        wait_for(lambda: self.chat("cust-gate", key)[0] == 403, STATE_S,
                 message="proxyd kept serving a blocked end user")
        st, _, out = self.chat("cust-gate", key)
        self.assertEqual(st, 403, out)
        self.assertIn("cust-gate", out["error"]["message"])
        self.ok("/customer/unblock", {"user_ids": ["cust-gate"]})
        wait_for(lambda: self.chat("cust-gate", key)[0] == 200, STATE_S,
                 message="proxyd kept refusing an unblocked end user")
        # blocked through /customer/update too
        self.ok("/customer/update", {"user_id": "cust-gate", "blocked": True})
        wait_for(lambda: self.chat("cust-gate", key)[0] == 403, STATE_S,
                 message="proxyd kept serving an end user blocked by /customer/update")


if __name__ == "__main__":
    unittest.main()
