"""test_manage_limits.py - the rate limits reportd's management routes store for
proxyd (issue 19): tpm_limit and rpm_limit of internal users, teams and team
members (the member's private budget row), and a key's tpm_limit, rpm_limit and
max_parallel_requests. Each route sets, shows and clears them (null on an
update), checked against the rows; bad values are refused 400 naming the field.

Run from the repo root:  python3 -m unittest -v tests/e2e/test_manage_limits.py
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import MASTER_KEY  # noqa: E402

LIMIT_MAX = 10 ** 12  # /key/generate's bound, shared by every limit field
BAD_VALUES = (-1, 1.5, "60", LIMIT_MAX + 1)


class LimitsTest(harness.StackTestCase):

    def setUp(self):
        for table in ("api_keys", "team_members", "teams", "internal_users", "budgets"):
            self.stack.sql("DELETE FROM %s" % table)

    def ok(self, method, path, body=None):
        st, _, answer = self.stack.report(method, path, body, key=MASTER_KEY)
        self.assertEqual(st, 200, (path, body, answer))
        return answer

    def refused(self, path, body, param):
        st, _, answer = self.stack.report("POST", path, body, key=MASTER_KEY)
        self.assertEqual(st, 400, (path, body, answer))
        self.assertEqual(answer["error"]["param"], param, (path, body, answer))
        self.assertIn(param, answer["error"]["message"], answer)

    def row(self, sql):
        rows = self.stack.sql(sql)
        self.assertEqual(len(rows), 1, (sql, rows))
        return tuple(rows[0])

    @staticmethod
    def limits(obj):
        return obj["tpm_limit"], obj["rpm_limit"]

    def member_budget(self, team_id, user_id):
        """(budget_id, max_budget, tpm_limit, rpm_limit) of a membership's row."""
        return self.row("SELECT m.budget_id, b.max_budget, b.tpm_limit, b.rpm_limit"
                        " FROM team_members m LEFT JOIN budgets b ON b.budget_id = m.budget_id"
                        " WHERE m.team_id = '%s' AND m.user_id = '%s'" % (team_id, user_id))

    def info_members(self, team_id):
        """user_id -> (tpm_limit, rpm_limit) of /team/info's memberships (None: no budget)."""
        info = self.ok("GET", "/team/info?team_id=" + team_id)
        return {m["user_id"]: (m["litellm_budget_table"] and
                               self.limits(m["litellm_budget_table"]))
                for m in info["team_memberships"]}

    def test_user_limits_set_shown_cleared(self):
        u = self.ok("POST", "/user/new", {"user_id": "u1", "tpm_limit": 1000, "rpm_limit": 60})
        self.assertEqual(self.limits(u), (1000, 60))
        self.assertEqual(self.row("SELECT tpm_limit, rpm_limit FROM internal_users"
                                  " WHERE user_id = 'u1'"), ("1000", "60"))
        info = self.ok("GET", "/user/info?user_id=u1")["user_info"]
        self.assertEqual(self.limits(info), (1000, 60))
        # update changes only what it names; null clears; the bound itself is taken
        u = self.ok("POST", "/user/update", {"user_id": "u1", "tpm_limit": LIMIT_MAX})
        self.assertEqual(self.limits(u), (LIMIT_MAX, 60))
        u = self.ok("POST", "/user/update", {"user_id": "u1", "rpm_limit": None})
        self.assertEqual(self.limits(u), (LIMIT_MAX, None))
        self.assertEqual(self.row("SELECT tpm_limit, rpm_limit FROM internal_users"
                                  " WHERE user_id = 'u1'"), (str(LIMIT_MAX), None))
        u = self.ok("POST", "/user/update", {"user_id": "u1", "tpm_limit": None, "rpm_limit": 0})
        self.assertEqual(self.limits(u), (None, 0))
        self.assertEqual(self.limits(self.ok("GET", "/user/info?user_id=u1")["user_info"]),
                         (None, 0))
        plain = self.ok("POST", "/user/new", {"user_id": "u2"})
        self.assertEqual(self.limits(plain), (None, None))
        self.assertEqual(self.row("SELECT tpm_limit, rpm_limit FROM internal_users"
                                  " WHERE user_id = 'u2'"), (None, None))

    def test_team_limits_set_shown_cleared(self):
        t = self.ok("POST", "/team/new", {"team_id": "t1", "tpm_limit": 5000, "rpm_limit": 100})
        self.assertEqual(self.limits(t), (5000, 100))
        self.assertEqual(self.row("SELECT tpm_limit, rpm_limit FROM teams WHERE team_id = 't1'"),
                         ("5000", "100"))
        info = self.ok("GET", "/team/info?team_id=t1")["team_info"]
        self.assertEqual(self.limits(info), (5000, 100))
        t = self.ok("POST", "/team/update", {"team_id": "t1", "rpm_limit": 7})
        self.assertEqual(self.limits(t), (5000, 7))
        t = self.ok("POST", "/team/update", {"team_id": "t1", "tpm_limit": None})
        self.assertEqual(self.limits(t), (None, 7))
        self.assertEqual(self.row("SELECT tpm_limit, rpm_limit FROM teams WHERE team_id = 't1'"),
                         (None, "7"))
        self.assertEqual(self.limits(self.ok("GET", "/team/info?team_id=t1")["team_info"]),
                         (None, 7))
        plain = self.ok("POST", "/team/new", {"team_id": "t2"})
        self.assertEqual(self.limits(plain), (None, None))

    def test_member_add_gives_each_member_one_row(self):
        self.ok("POST", "/team/new", {"team_id": "t"})
        self.ok("POST", "/team/member_add", {
            "team_id": "t", "member": [{"user_id": "a"}, {"user_id": "b", "role": "admin"}],
            "max_budget_in_team": 5, "tpm_limit": 300, "rpm_limit": 30})
        a, b = self.member_budget("t", "a"), self.member_budget("t", "b")
        self.assertEqual(a[1:], ("5.00000000000000000000", "300", "30"))
        self.assertEqual(b[1:], a[1:])
        self.assertNotEqual(a[0], b[0])  # private rows, one per member, budget and limits in it
        self.assertEqual(self.stack.sql_value("SELECT COUNT(*) FROM budgets"), "2")
        # limits alone make the row too; no budget nor limit: none
        self.ok("POST", "/team/member_add", {"team_id": "t", "member": {"user_id": "c"},
                                             "rpm_limit": 3})
        self.ok("POST", "/team/member_add", {"team_id": "t", "member": {"user_id": "d"}})
        self.assertEqual(self.member_budget("t", "c")[1:], (None, None, "3"))
        self.assertEqual(self.member_budget("t", "d"), (None, None, None, None))
        self.assertEqual(self.info_members("t"), {"a": (300, 30), "b": (300, 30),
                                                  "c": (None, 3), "d": None})

    def test_member_update_sets_and_clears_in_one_row(self):
        self.ok("POST", "/team/new", {"team_id": "t", "members": [{"user_id": "a"},
                                                                  {"user_id": "b"}]})
        # only nulls for a member without a budget: nothing to make
        self.ok("POST", "/team/member_update", {"team_id": "t", "user_id": "b",
                                                "tpm_limit": None})
        self.assertEqual(self.member_budget("t", "b"), (None, None, None, None))
        t = self.ok("POST", "/team/member_update", {"team_id": "t", "user_id": "a",
                                                    "tpm_limit": 40})
        first = self.member_budget("t", "a")
        self.assertEqual(first[1:], (None, "40", None))
        self.assertIsNotNone(first[0])
        self.assertEqual(t["team_id"], "t")
        self.ok("POST", "/team/member_update", {"team_id": "t", "user_id": "a",
                                                "max_budget_in_team": 2, "rpm_limit": 4})
        self.assertEqual(self.member_budget("t", "a"),
                         (first[0], "2.00000000000000000000", "40", "4"))
        self.ok("POST", "/team/member_update", {"team_id": "t", "user_id": "a",
                                                "tpm_limit": None})
        self.assertEqual(self.member_budget("t", "a"),
                         (first[0], "2.00000000000000000000", None, "4"))
        self.assertEqual(self.stack.sql_value("SELECT COUNT(*) FROM budgets"), "1")
        self.assertEqual(self.info_members("t"), {"a": (None, 4), "b": None})

    def test_key_limits_set_shown_cleared(self):
        k = self.ok("POST", "/key/generate", {"tpm_limit": 900, "rpm_limit": 9,
                                              "max_parallel_requests": 3})
        info = self.ok("GET", "/key/info?key=" + k["token"])["info"]
        self.assertEqual((info["tpm_limit"], info["rpm_limit"], info["max_parallel_requests"]),
                         (900, 9, 3))
        sql = ("SELECT tpm_limit, rpm_limit, max_parallel_requests FROM api_keys"
               " WHERE token = '%s'" % k["token"])
        info = self.ok("POST", "/key/update", {"key": k["token"], "rpm_limit": 10})["info"]
        self.assertEqual((info["tpm_limit"], info["rpm_limit"], info["max_parallel_requests"]),
                         (900, 10, 3))
        self.assertEqual(self.row(sql), ("900", "10", "3"))
        info = self.ok("POST", "/key/update", {"key": k["token"], "tpm_limit": None,
                                               "max_parallel_requests": None})["info"]
        self.assertEqual((info["tpm_limit"], info["rpm_limit"], info["max_parallel_requests"]),
                         (None, 10, None))
        self.assertEqual(self.row(sql), (None, "10", None))
        full = self.ok("GET", "/key/list?return_full_object=true")["keys"]
        self.assertTrue(all(isinstance(o, dict) for o in full), full)
        self.assertEqual([(o["token"], o["tpm_limit"], o["rpm_limit"],
                           o["max_parallel_requests"]) for o in full],
                         [(k["token"], None, 10, None)])
        self.assertEqual(self.ok("GET", "/key/list")["keys"], [k["token"]])

    def test_bad_values_refused_naming_the_field(self):
        self.ok("POST", "/user/new", {"user_id": "u", "tpm_limit": 1, "rpm_limit": 1})
        self.ok("POST", "/team/new", {"team_id": "t", "tpm_limit": 1, "rpm_limit": 1})
        self.ok("POST", "/team/member_add", {"team_id": "t", "member": {"user_id": "m"},
                                             "tpm_limit": 1, "rpm_limit": 1})
        k = self.ok("POST", "/key/generate", {"tpm_limit": 1, "rpm_limit": 1,
                                              "max_parallel_requests": 1})
        routes = (("/user/new", {"user_id": "new-u"}), ("/user/update", {"user_id": "u"}),
                  ("/team/new", {"team_id": "new-t"}), ("/team/update", {"team_id": "t"}),
                  ("/team/member_add", {"team_id": "t", "member": {"user_id": "new-m"}}),
                  ("/team/member_update", {"team_id": "t", "user_id": "m"}),
                  ("/key/generate", {}), ("/key/update", {"key": k["token"]}))
        for path, base in routes:
            fields = ["tpm_limit", "rpm_limit"]
            if path.startswith("/key/"):
                fields.append("max_parallel_requests")
            for field in fields:
                for bad in BAD_VALUES:
                    self.refused(path, dict(base, **{field: bad}), field)
        # nothing was made or changed
        self.assertEqual(self.stack.sql("SELECT user_id, tpm_limit, rpm_limit"
                                        " FROM internal_users ORDER BY user_id"),
                         [["m", None, None], ["u", "1", "1"]])
        self.assertEqual(self.stack.sql("SELECT team_id, tpm_limit, rpm_limit FROM teams"),
                         [["t", "1", "1"]])
        self.assertEqual(self.stack.sql("SELECT m.user_id, b.tpm_limit, b.rpm_limit"
                                        " FROM team_members m JOIN budgets b"
                                        " ON b.budget_id = m.budget_id"),
                         [["m", "1", "1"]])
        self.assertEqual(self.stack.sql("SELECT tpm_limit, rpm_limit, max_parallel_requests"
                                        " FROM api_keys"), [["1", "1", "1"]])


if __name__ == "__main__":
    unittest.main()
