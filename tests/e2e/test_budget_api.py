"""test_budget_api.py - reportd's hosted BudgetManager (issue 6): LiteLLM's
POST /get_budget and /set_budget (a project's whole user dict) and Tollgate's
atomic per-user routes /budget_manager/create_budget, /update_cost and
/reset_cost; who may call them; what they refuse.

Run from the repo root:  python3 -m unittest -v tests/e2e/test_budget_api.py
"""

import os
import random
import sys
import threading
import time
import unittest
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import MASTER_KEY  # noqa: E402

ENTRY_KEYS = {"total_budget", "duration", "created_at", "last_updated_at", "current_cost",
              "model_cost"}
HEADER = "x-tollgate-budget-manager"


class BudgetApiTest(harness.StackTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        st, _, k = cls.stack.report("POST", "/key/generate",
                                    {"permissions": {"budget_manager": True}}, key=MASTER_KEY)
        if st != 200:
            raise AssertionError(k)
        cls.bm_key = k["key"]

    def call(self, path, body, key=MASTER_KEY, status=200):
        st, hdrs, ans = self.stack.report("POST", path, body, key=key)
        self.assertEqual(st, status, (path, body, ans))
        self.assertEqual(hdrs.get(HEADER), "1", (path, st, hdrs))
        return ans

    def refused(self, path, body, param, status=400):
        ans = self.call(path, body, status=status)
        self.assertErrorShape(ans, status, param, msg=(path, body))
        return ans["error"]["message"]

    def get(self, project, key=MASTER_KEY):
        ans = self.call("/get_budget", {"project_name": project}, key=key)
        self.assertEqual(set(ans), {"status", "data"}, ans)
        self.assertEqual(ans["status"], "success")
        for entry in ans["data"].values():
            self.assertEqual(set(entry), ENTRY_KEYS, entry)
        return ans["data"]

    def create(self, project, user, total, duration=None, **extra):
        body = dict({"project_name": project, "user": user, "total_budget": total,
                     "duration": duration}, **extra)
        ans = self.call("/budget_manager/create_budget", body)
        self.assertEqual((set(ans), ans["status"]), ({"status", "data"}, "success"), ans)
        self.assertEqual(set(ans["data"]), ENTRY_KEYS, ans)
        return ans["data"]

    def update(self, project, user, model, cost, key=MASTER_KEY):
        return self.call("/budget_manager/update_cost",
                         {"project_name": project, "user": user, "model": model, "cost": cost},
                         key=key)["data"]

    def reset(self, project, user, **extra):
        ans = self.call("/budget_manager/reset_cost",
                        dict({"project_name": project, "user": user}, **extra))
        self.assertEqual((set(ans), ans["status"]), ({"status", "data", "reset"}, "success"), ans)
        return ans["reset"], ans["data"]

    def sql_entry(self, project, user):
        hexp, hexu = project.encode().hex(), user.encode().hex()
        rows = self.stack.sql(
            "SELECT total_budget, duration, created_at, last_updated_at, current_cost FROM"
            " budget_manager_users WHERE project = X'%s' AND user = X'%s'" % (hexp, hexu))
        models = self.stack.sql(
            "SELECT model, cost FROM budget_manager_model_cost WHERE project = X'%s' AND"
            " user = X'%s'" % (hexp, hexu))
        return rows, {m: Decimal(c) for m, c in models}

    # -- LiteLLM's whole-dict routes

    def test_set_then_get_round_trips_litellm_shapes(self):
        self.assertEqual(self.get("rt-empty"), {})  # unknown project: no users, not an error
        user_dict = {
            "alice": {"total_budget": 10.0, "duration": "monthly", "created_at": 1733100000.123,
                      "last_updated_at": 1733200000.5, "current_cost": 0.0123,
                      "model_cost": {"gpt-4o": 0.0123}},
            "bob": {"total_budget": 2.5},  # LiteLLM's create_budget without a duration
            "carol \u2603 'q\"": {"total_budget": 0, "duration": None, "current_cost": 1.25,
                                 "model_cost": {"gpt-4o": 1, "claude-3-5-sonnet": 0.25}},
        }
        before = time.time()
        ans = self.call("/set_budget", {"project_name": "rt", "user_dict": user_dict})
        self.assertEqual(ans, {"status": "success"})
        data = self.get("rt")
        self.assertEqual(set(data), set(user_dict))
        self.assertEqual(data["alice"], {
            "total_budget": Decimal("10.0"), "duration": "monthly",
            "created_at": Decimal("1733100000.123"), "last_updated_at": Decimal("1733200000.5"),
            "current_cost": Decimal("0.0123"), "model_cost": {"gpt-4o": Decimal("0.0123")}})
        bob = data["bob"]
        self.assertEqual((bob["total_budget"], bob["duration"], bob["current_cost"],
                          bob["model_cost"]), (Decimal("2.5"), None, 0, {}))
        # no times given: the time of the call, the same for both
        self.assertEqual(bob["created_at"], bob["last_updated_at"])
        self.assertTrue(before - 1 <= bob["created_at"] <= time.time() + 1, bob)
        carol = data["carol \u2603 'q\""]
        self.assertEqual((carol["total_budget"], carol["current_cost"], carol["model_cost"]),
                         (0, Decimal("1.25"), {"gpt-4o": 1, "claude-3-5-sonnet": Decimal("0.25")}))
        rows, models = self.sql_entry("rt", "alice")
        self.assertEqual(rows, [["10.00000000000000000000", "monthly", "1733100000.123000",
                                 "1733200000.500000", "0.01230000000000000000"]])
        self.assertEqual(models, {"gpt-4o": Decimal("0.0123")})
        # what get_budget answered, set again, reads back the same (a client's save_data)
        self.call("/set_budget", {"project_name": "rt", "user_dict": {
            u: {k: (float(v) if isinstance(v, Decimal) else v) for k, v in e.items()
                if k != "model_cost"} | {"model_cost": {m: float(c) for m, c in
                                                         e["model_cost"].items()}}
            for u, e in data.items()}})
        self.assertEqual(self.get("rt"), data)
        # the users become exactly the new dict: the others and their costs are gone
        self.call("/set_budget", {"project_name": "rt", "user_dict": {"bob": {"total_budget": 3}}})
        self.assertEqual(set(self.get("rt")), {"bob"})
        self.assertEqual(self.stack.sql_value(
            "SELECT COUNT(*) FROM budget_manager_model_cost WHERE project = 'rt'"), "0")
        self.call("/set_budget", {"project_name": "rt", "user_dict": {}})
        self.assertEqual(self.get("rt"), {})

    def test_projects_are_isolated(self):
        for p in ("iso-a", "iso-b", "iso-a "):
            self.call("/set_budget", {"project_name": p, "user_dict": {
                "u": {"total_budget": 5}, "u ": {"total_budget": 6}}})
        self.update("iso-a", "u", "m", 1.5)
        self.create("iso-a", "only-a", 1)
        a, b, a_sp = self.get("iso-a"), self.get("iso-b"), self.get("iso-a ")
        self.assertEqual(set(a), {"u", "u ", "only-a"})
        self.assertEqual((a["u"]["current_cost"], a["u"]["model_cost"]),
                         (Decimal("1.5"), {"m": Decimal("1.5")}))
        for other in (b, a_sp):  # another project, and one that differs by a trailing space
            self.assertEqual(set(other), {"u", "u "})
            self.assertEqual((other["u"]["current_cost"], other["u"]["model_cost"]), (0, {}))
            self.assertEqual(other["u "]["total_budget"], 6)
        # set_budget of one project leaves the others alone
        self.call("/set_budget", {"project_name": "iso-b", "user_dict": {}})
        self.assertEqual(set(self.get("iso-a")), {"u", "u ", "only-a"})
        self.refused("/budget_manager/update_cost",
                     {"project_name": "iso-b", "user": "u", "model": "m", "cost": 1}, "user", 404)

    # -- Tollgate's per-user routes

    def test_create_update_reset(self):
        e = self.create("cur", "dave", 10, "daily", created_at=1733100000.25)
        self.assertEqual(e, {"total_budget": 10, "duration": "daily",
                             "created_at": Decimal("1733100000.25"),
                             "last_updated_at": Decimal("1733100000.25"), "current_cost": 0,
                             "model_cost": {}})
        t0 = time.time()
        e = self.update("cur", "dave", "gpt-4o", 0.0000025)
        e = self.update("cur", "dave", "gpt-4o", 0.1)
        e = self.update("cur", "dave", "gpt-4o-mini", 0.2)
        self.assertEqual((e["current_cost"], e["model_cost"]),
                         (Decimal("0.3000025"), {"gpt-4o": Decimal("0.1000025"),
                                                 "gpt-4o-mini": Decimal("0.2")}))
        self.assertTrue(t0 - 1 <= e["last_updated_at"] <= time.time() + 1, e)
        self.assertEqual(e["created_at"], Decimal("1733100000.25"))
        rows, models = self.sql_entry("cur", "dave")
        self.assertEqual(rows[0][4], "0.30000250000000000000")
        # create again: the budget is replaced, the costs stay
        e2 = self.create("cur", "dave", 20.5, "weekly")
        self.assertEqual((e2["total_budget"], e2["duration"], e2["current_cost"],
                          e2["model_cost"], e2["last_updated_at"]),
                         (Decimal("20.5"), "weekly", e["current_cost"], e["model_cost"],
                          e["last_updated_at"]))
        self.assertGreater(e2["created_at"], t0 - 1)
        # a stale if_last_updated_at: nothing changes
        did, e3 = self.reset("cur", "dave", if_last_updated_at=float(e["last_updated_at"]) - 1)
        self.assertFalse(did)
        self.assertEqual(e3, e2)
        rows, models_after = self.sql_entry("cur", "dave")
        self.assertEqual((rows[0][4], models_after), ("0.30000250000000000000", models))
        # the value it was shown: reset
        did, e4 = self.reset("cur", "dave", if_last_updated_at=float(e2["last_updated_at"]))
        self.assertTrue(did)
        self.assertEqual((e4["current_cost"], e4["model_cost"], e4["total_budget"]),
                         (0, {}, Decimal("20.5")))
        self.assertGreaterEqual(e4["last_updated_at"], e2["last_updated_at"])
        self.assertEqual(self.sql_entry("cur", "dave")[1], {})
        # that value again is now stale; no condition resets anyway
        self.update("cur", "dave", "gpt-4o", 1)
        did, e5 = self.reset("cur", "dave", if_last_updated_at=float(e2["last_updated_at"]))
        self.assertEqual((did, e5["current_cost"]), (False, 1))
        did, e6 = self.reset("cur", "dave")
        self.assertEqual((did, e6["current_cost"], e6["model_cost"]), (True, 0, {}))
        # an unknown user, here and in another project
        for path, extra in (("/budget_manager/update_cost", {"model": "m", "cost": 1}),
                            ("/budget_manager/reset_cost", {})):
            for project, user in (("cur", "nobody"), ("cur2", "dave"), ("cur", "Dave"),
                                  ("cur", "dave ")):
                self.refused(path, dict({"project_name": project, "user": user}, **extra),
                             "user", 404)
        # a zero cost is a cost too: it names the model
        e7 = self.update("cur", "dave", "free-model", 0)
        self.assertEqual((e7["current_cost"], e7["model_cost"]), (0, {"free-model": 0}))

    def test_update_cost_is_atomic_under_concurrency(self):
        self.create("conc", "eve", 1000)
        self.create("conc", "other", 1000)
        rng = random.Random(6)
        threads, per = 8, 100
        models = ["gpt-4o", "gpt-4o-mini", "claude \u00e9"]
        plan = [[(rng.choice(models), Decimal(rng.randint(1, 10 ** 8)) / Decimal(10 ** 10))
                 for _ in range(per)] for _ in range(threads)]
        errors = []

        def worker(items):
            for model, cost in items:
                st, hdrs, ans = self.stack.report(
                    "POST", "/budget_manager/update_cost",
                    {"project_name": "conc", "user": "eve", "model": model, "cost": float(cost)},
                    key=self.bm_key)
                if st != 200 or hdrs.get(HEADER) != "1":
                    errors.append((st, ans))
        ts = [threading.Thread(target=worker, args=(p,)) for p in plan]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(errors, [])
        total = sum(c for p in plan for _, c in p)
        by_model = {}
        for p in plan:
            for m, c in p:
                by_model[m] = by_model.get(m, 0) + c
        e = self.get("conc")["eve"]
        self.assertEqual(e["current_cost"], total)
        self.assertEqual(e["model_cost"], by_model)
        rows, sql_models = self.sql_entry("conc", "eve")
        self.assertEqual(Decimal(rows[0][4]), total)
        self.assertEqual(sql_models, by_model)
        self.assertEqual(self.get("conc")["other"]["current_cost"], 0)

    def test_many_users(self):
        n = 3000
        user_dict = {"user-%05d" % i: {"total_budget": i, "current_cost": i / 100,
                                       "model_cost": {"m": i / 100}} for i in range(n)}
        self.call("/set_budget", {"project_name": "many", "user_dict": user_dict})
        data = self.get("many")
        self.assertEqual(len(data), n)
        self.assertEqual(data["user-02999"]["model_cost"], {"m": Decimal("29.99")})
        self.assertEqual(self.stack.sql_value(
            "SELECT SUM(cost) FROM budget_manager_model_cost WHERE project = 'many'"),
            "%s" % (Decimal(sum(range(n))) / 100).quantize(Decimal(10) ** -20))
        # more users than one answer may hold: refused, naming the dict
        big = {str(i): {"total_budget": 0} for i in range(100001)}
        msg = self.refused("/set_budget", {"project_name": "many", "user_dict": big}, "user_dict")
        self.assertIn("100000", msg)
        self.assertEqual(len(self.get("many")), n)  # unchanged
        # a project grown past that one user at a time: its whole dict is refused too
        self.stack.sql("INSERT INTO budget_manager_users (project, user, total_budget,"
                       " created_at, last_updated_at) SELECT 'huge', seq, 1, 0, 0"
                       " FROM seq_1_to_100001")
        msg = self.refused("/get_budget", {"project_name": "huge"}, "project_name")
        self.assertIn("100000", msg)
        self.stack.sql("DELETE FROM budget_manager_users WHERE project = 'huge' AND user = '1'")
        self.assertEqual(len(self.get("huge")), 100000)

    # -- refusals

    def test_every_refusal_names_the_param(self):
        self.create("val", "u", 1)
        base = {
            "/get_budget": {"project_name": "val"},
            "/set_budget": {"project_name": "val", "user_dict": {"u": {"total_budget": 1}}},
            "/budget_manager/create_budget": {"project_name": "val", "user": "u",
                                              "total_budget": 1},
            "/budget_manager/update_cost": {"project_name": "val", "user": "u", "model": "m",
                                            "cost": 1},
            "/budget_manager/reset_cost": {"project_name": "val", "user": "u"},
        }
        bad_ids = [None, "", "x" * 256, "\u00e9" * 128, 1, True, [], {}, ["a"]]
        bad_money = [None, -1, -0.000001, "1", True, [], {}, 1e30]
        bad_times = [-1, "1733100000", True, [], {}, 1e12]
        bad_durations = ["monthly ", "MONTHLY", "28d", 28, "", True, {}]
        cases = []
        for path, body in base.items():
            for param in ("project_name", "user", "model"):
                if param in body:
                    cases += [(path, param, v) for v in bad_ids]
            for param in ("total_budget", "cost"):
                if param in body and path != "/set_budget":
                    cases += [(path, param, v) for v in bad_money]
        cases += [("/budget_manager/create_budget", "duration", v) for v in bad_durations]
        cases += [("/budget_manager/create_budget", "created_at", v) for v in bad_times]
        cases += [("/budget_manager/reset_cost", "if_last_updated_at", v) for v in bad_times]
        for path, param, value in cases:
            body = dict(base[path])
            if value is None:
                body.pop(param)
            else:
                body[param] = value
            self.refused(path, body, param)
        # user_dict and its entries: the param is user_dict, the message says what
        entry_cases = [
            None, [], "x", {"u": []}, {"u": {}}, {"u": {"total_budget": -1}},
            {"u": {"total_budget": "1"}}, {"u": {"total_budget": 1, "duration": 28}},
            {"u": {"total_budget": 1, "duration": "fortnightly"}},
            {"u": {"total_budget": 1, "created_at": -5}},
            {"u": {"total_budget": 1, "last_updated_at": "now"}},
            {"u": {"total_budget": 1, "current_cost": -0.5}},
            {"u": {"total_budget": 1, "model_cost": []}},
            {"u": {"total_budget": 1, "model_cost": {"m": -1}}},
            {"u": {"total_budget": 1, "model_cost": {"m": "1"}}},
            {"u": {"total_budget": 1, "model_cost": {"": 1}}},
            {"u": {"total_budget": 1, "model_cost": {"m" * 256: 1}}},
            {"": {"total_budget": 1}}, {"x" * 256: {"total_budget": 1}},
            {"good": {"total_budget": 1}, "bad": {"total_budget": 1e30}},
        ]
        for ud in entry_cases:
            body = {"project_name": "val"}
            if ud is not None:
                body["user_dict"] = ud
            self.refused("/set_budget", body, "user_dict")
        # nothing of a refused request was stored
        self.assertEqual(set(self.get("val")), {"u"})
        # a cost that would overflow DECIMAL(38,20)
        self.call("/budget_manager/update_cost",
                  {"project_name": "val", "user": "u", "model": "m", "cost": 9e17})
        self.refused("/budget_manager/update_cost",
                     {"project_name": "val", "user": "u", "model": "m", "cost": 9e17}, "cost")
        self.assertEqual(self.get("val")["u"]["current_cost"], Decimal("9e17"))
        # not JSON objects
        for path in base:
            for raw in (b"", b"[]", b"nope", b'{"project_name": "a"'):
                st, hdrs, ans = self.stack.report("POST", path, raw, key=MASTER_KEY)
                self.assertEqual((st, hdrs.get(HEADER)), (400, "1"), (path, raw, ans))
                self.assertErrorShape(ans, 400)

    # -- who may call

    def test_auth(self):
        def key(body):
            st, _, k = self.stack.report("POST", "/key/generate", body, key=MASTER_KEY)
            self.assertEqual(st, 200, k)
            return k["key"]
        st, _, u = self.stack.report("POST", "/user/new",
                                     {"user_id": "bm-admin", "user_role": "proxy_admin"},
                                     key=MASTER_KEY)
        self.assertEqual(st, 200, u)
        admin = key({"user_id": "bm-admin"})
        spend = key({"permissions": {"get_spend_routes": True}})
        plain = key({})
        falsy = key({"permissions": {"budget_manager": "true"}})
        blocked = key({"permissions": {"budget_manager": True}, "blocked": True})
        admin_bm = key({"user_id": "bm-admin", "permissions": {"budget_manager": True}})
        self.create("auth", "u", 1)
        bodies = {
            "/get_budget": {"project_name": "auth"},
            "/set_budget": {"project_name": "auth", "user_dict": {"u": {"total_budget": 1}}},
            "/budget_manager/create_budget": {"project_name": "auth", "user": "u",
                                              "total_budget": 1},
            "/budget_manager/update_cost": {"project_name": "auth", "user": "u", "model": "m",
                                            "cost": 0.5},
            "/budget_manager/reset_cost": {"project_name": "auth", "user": "u"},
        }
        for path, body in bodies.items():
            for k in (MASTER_KEY, self.bm_key, admin_bm):
                self.call(path, body, key=k)
            for k in (admin, spend, plain, falsy, blocked):
                ans = self.call(path, body, key=k, status=403)
                self.assertErrorShape(ans, 403, None, "permission_error")
            for k in (None, "sk-not-a-key"):
                ans = self.call(path, body, key=k, status=401)
                self.assertErrorShape(ans, 401, None)
        # the budget-manager key opens nothing else
        for method, path in (("GET", "/key/list"), ("GET", "/global/spend/keys"),
                             ("POST", "/key/generate")):
            st, hdrs, ans = self.stack.report(method, path, {} if method == "POST" else None,
                                              key=self.bm_key)
            self.assertEqual(st, 403, (path, ans))
            self.assertNotIn(HEADER, hdrs)
        # GET is not these routes' method
        st, hdrs, ans = self.stack.report("GET", "/get_budget", key=MASTER_KEY)
        self.assertEqual(st, 405, ans)


if __name__ == "__main__":
    unittest.main()
