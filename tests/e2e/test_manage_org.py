"""test_manage_org.py - reportd's team, internal-user and role rules, the rest of the
key fields and /key/regenerate: LiteLLM's shapes checked against the rows, the
refusals named, and what proxyd does with a regenerated key.

Run from the repo root:  python3 -m unittest -v tests/e2e/test_manage_org.py
"""

import hashlib
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import MASTER_KEY, wait_for  # noqa: E402

KEY_STATE_S = 2.5  # a key change reaches proxyd within key_cache_ttl_ms + 1 s (2 s)


class OrgTest(harness.StackTestCase):

    def setUp(self):
        # one stack per class: each test starts from empty management tables
        for table in ("api_keys", "team_members", "teams", "internal_users", "budgets",
                      "spend_logs", "daily_spend", "daily_tag_spend", "daily_tag_totals", "tags"):
            self.stack.sql("DELETE FROM %s" % table)

    def post(self, path, body, key=MASTER_KEY):
        return self.stack.report("POST", path, body, key=key)

    def get(self, path, key=MASTER_KEY):
        return self.stack.report("GET", path, key=key)

    def ok(self, method, path, body=None, key=MASTER_KEY):
        st, _, answer = self.stack.report(method, path, body, key=key)
        self.assertEqual(st, 200, (path, answer))
        return answer

    def refused(self, method, path, body, status, param=None, key=MASTER_KEY):
        st, _, answer = self.stack.report(method, path, body, key=key)
        self.assertEqual(st, status, (path, body, answer))
        self.assertEqual(answer["error"]["code"], str(status), answer)
        if param is not None:
            self.assertEqual(answer["error"]["param"], param, answer)
        return answer["error"]

    def budget_row(self, budget_id):
        self.stack.sql("INSERT INTO budgets (budget_id, max_budget, created_at, updated_at)"
                       " VALUES ('%s', 3, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))" % budget_id)

    # -- keys: the rest of /key/generate's fields

    def test_key_limits_tags_soft_budget_and_shared_budget(self):
        self.budget_row("shared-b")
        k = self.ok("POST", "/key/generate", {
            "key_alias": "limits", "soft_budget": 2.5, "tags": ["prod", "chat"],
            "budget_id": "shared-b", "tpm_limit": 1000, "rpm_limit": 60,
            "max_parallel_requests": 4})
        self.assertEqual((k["soft_budget"], k["tags"], k["budget_id"], k["tpm_limit"],
                          k["rpm_limit"], k["max_parallel_requests"]),
                         (2.5, ["prod", "chat"], "shared-b", 1000, 60, 4))
        info = self.ok("GET", "/key/info?key=" + k["token"])["info"]
        self.assertEqual((info["soft_budget"], info["tags"], info["budget_id"], info["tpm_limit"],
                          info["rpm_limit"], info["max_parallel_requests"]),
                         (2.5, ["prod", "chat"], "shared-b", 1000, 60, 4))
        self.assertEqual(self.stack.sql(
            "SELECT soft_budget, tags, budget_id, tpm_limit FROM api_keys WHERE token = '%s'"
            % k["token"]), [["2.50000000000000000000", '["prod","chat"]', "shared-b", "1000"]])
        # update changes only what it names
        self.ok("POST", "/key/update", {"key": k["key"], "rpm_limit": 0, "tags": []})
        info = self.ok("GET", "/key/info?key=" + k["token"])["info"]
        self.assertEqual((info["soft_budget"], info["tags"], info["tpm_limit"],
                          info["rpm_limit"], info["max_parallel_requests"]),
                         (2.5, [], 1000, 0, 4))
        plain = self.ok("POST", "/key/generate", {})
        self.assertEqual((plain["soft_budget"], plain["tags"], plain["budget_id"],
                          plain["tpm_limit"]), (None, [], None, None))

    def test_key_tags_are_request_tags(self):
        """A key's tags join every request's metadata.tags (LiteLLM), budgets included."""
        s = self.stack
        k = self.ok("POST", "/key/generate", {"tags": ["from-key", "shared"]})
        self.assertEqual(s.chat(k["key"], metadata={"tags": ["shared", "from-body"]})[0], 200)
        self.assertEqual(s.chat(k["key"])[0], 200)
        wait_for(lambda: s.sql_value("SELECT COUNT(*) FROM spend_logs") == "2", 20,
                 message="2 log rows")
        self.assertEqual(sorted(json.loads(r[0]) for r in s.sql(
            "SELECT request_tags FROM spend_logs")),
            [["from-key", "shared"], ["shared", "from-body", "from-key"]])
        s.sql("UPDATE tags SET max_budget = 0 WHERE tag = 'from-key'")
        wait_for(lambda: s.chat(k["key"])[0] == 400, 5, message="the key tag's budget refuses")
        status, _, body = s.chat(k["key"])
        self.assertIn("Tag=from-key", body["error"]["message"])
        many = ["t%d" % i for i in range(31)]
        status, _, body = s.chat(k["key"], metadata={"tags": many})
        self.assertEqual((status, body["error"]["param"]), (400, "metadata.tags"))

    def test_key_field_refusals_name_the_field(self):
        for body, param in (({"budget_id": "no-such-budget"}, "budget_id"),
                            ({"tpm_limit": -1}, "tpm_limit"), ({"rpm_limit": "60"}, "rpm_limit"),
                            ({"max_parallel_requests": 1.5}, "max_parallel_requests"),
                            ({"tpm_limit": 10 ** 15}, "tpm_limit"),
                            ({"soft_budget": -0.01}, "soft_budget"), ({"tags": "prod"}, "tags"),
                            ({"tags": [1]}, "tags"), ({"spend": 5}, "spend")):
            self.refused("POST", "/key/generate", body, 400, param)
        self.assertEqual(self.stack.sql_value("SELECT COUNT(*) FROM api_keys"), "0")

    def test_a_new_period_recounts_spend_from_the_logs(self):
        """budget_duration on update starts a period now: spend = logs since then (none)."""
        s = self.stack
        k = self.ok("POST", "/key/generate", {"user_id": "per-user"})
        self.ok("POST", "/team/new", {"team_id": "per-team"})
        s.sql("UPDATE api_keys SET spend = 3"); s.sql("UPDATE teams SET spend = 4")
        s.sql("UPDATE internal_users SET spend = 5")
        self.assertEqual(self.ok("POST", "/key/update", {"key": k["token"],
                                                         "budget_duration": "1d"}
                                 )["info"]["spend"], 0)
        self.assertEqual(self.ok("POST", "/team/update", {"team_id": "per-team",
                                                          "budget_duration": "7d"})["spend"], 0)
        self.assertEqual(self.ok("POST", "/user/update", {"user_id": "per-user",
                                                          "budget_duration": "1h"})["spend"], 0)
        # an explicit spend wins over the recount
        self.assertEqual(self.ok("POST", "/key/update", {"key": k["token"], "spend": 2,
                                                         "budget_duration": "1d"}
                                 )["info"]["spend"], 2)

    # -- /key/regenerate

    def test_regenerate_keeps_the_row_and_retires_the_old_key(self):
        s = self.stack
        k = self.ok("POST", "/key/generate", {"key_alias": "rotate-me", "max_budget": 5})
        st, _, _ = s.chat(k["key"])
        self.assertEqual(st, 200)
        wait_for(lambda: s.sql_value("SELECT spend > 0 FROM api_keys WHERE token = '%s'"
                                     % k["token"]) == "1", 20, message="spend of the first request")
        spend = s.sql_value("SELECT spend FROM api_keys WHERE token = '%s'" % k["token"])
        new = self.ok("POST", "/key/regenerate", {"key": k["key"]})
        self.assertNotEqual(new["key"], k["key"])
        self.assertTrue(new["key"].startswith("sk-"))
        self.assertEqual(new["token"], hashlib.sha256(new["key"].encode()).hexdigest())
        self.assertEqual((new["key_alias"], new["max_budget"], new["key_name"]),
                         ("rotate-me", 5, "sk-..." + new["key"][-4:]))
        self.assertEqual(s.sql("SELECT token, spend FROM api_keys WHERE key_alias = 'rotate-me'"),
                         [[new["token"], spend]])
        wait_for(lambda: s.chat(k["key"])[0] == 401, KEY_STATE_S + 5, message="old key refused")
        self.assertEqual(s.chat(new["key"])[0], 200)
        # a custom new key, by hash; bad values and unknown keys named
        custom = self.ok("POST", "/key/regenerate", {"key": new["token"],
                                                     "new_key": "sk-rotated-by-hand"})
        self.assertEqual(custom["key"], "sk-rotated-by-hand")
        self.refused("POST", "/key/regenerate", {"key": custom["token"], "new_key": "pk-123456"},
                     400, "new_key")
        self.refused("POST", "/key/regenerate", {"key": k["key"]}, 404, "key")
        self.refused("POST", "/key/regenerate", {}, 400, "key")

    # -- teams and members

    def test_team_lifecycle_members_and_budgets_in_team(self):
        s = self.stack
        team = self.ok("POST", "/team/new", {
            "team_id": "t-org", "team_alias": "Org Team", "max_budget": 50,
            "budget_duration": "30d", "members_with_roles": [
                {"user_id": "ann", "role": "admin"}, {"user_id": "bob"}]})
        self.assertEqual(team["budget_duration"], "30d")
        self.assertIsNotNone(team["budget_reset_at"])
        self.assertEqual(team["members_with_roles"], [{"user_id": "ann", "role": "admin"},
                                                      {"user_id": "bob", "role": "user"}])
        self.assertEqual(s.sql("SELECT user_id FROM internal_users ORDER BY user_id"),
                         [["ann"], ["bob"]])
        # member_add with a budget in the team: a budget row of its own
        team = self.ok("POST", "/team/member_add", {
            "team_id": "t-org", "member": {"user_id": "cy", "role": "user"},
            "max_budget_in_team": 7.5})
        self.assertIn({"user_id": "cy", "role": "user"}, team["members_with_roles"])
        cy_budget = s.sql_value("SELECT b.max_budget FROM team_members m JOIN budgets b"
                                " ON b.budget_id = m.budget_id WHERE m.user_id = 'cy'")
        self.assertEqual(cy_budget, "7.50000000000000000000")
        self.refused("POST", "/team/member_add", {"team_id": "t-org", "member": {"user_id": "cy"}},
                     400, "member")
        self.refused("POST", "/team/member_add", {"team_id": "nope", "member": {"user_id": "x"}},
                     404, "team_id")
        self.refused("POST", "/team/member_add", {"team_id": "t-org",
                                                  "member": {"user_id": "x", "role": "owner"}},
                     400, "member")
        # member_update: budget changed in place; bob gets a budget row
        self.ok("POST", "/team/member_update", {"team_id": "t-org", "user_id": "cy",
                                                "max_budget_in_team": 9})
        self.ok("POST", "/team/member_update", {"team_id": "t-org", "user_id": "bob",
                                                "max_budget_in_team": 1, "role": "admin"})
        self.assertEqual(s.sql("SELECT m.user_id, m.role, b.max_budget FROM team_members m"
                               " LEFT JOIN budgets b ON b.budget_id = m.budget_id"
                               " ORDER BY m.user_id"),
                         [["ann", "admin", None], ["bob", "admin", "1.00000000000000000000"],
                          ["cy", "user", "9.00000000000000000000"]])
        self.refused("POST", "/team/member_update", {"team_id": "t-org", "user_id": "zed"},
                     404, "user_id")
        # keys in the team; info lists them (never raw) and the memberships
        k_cy = self.ok("POST", "/key/generate", {"team_id": "t-org", "user_id": "cy"})
        k_ann = self.ok("POST", "/key/generate", {"team_id": "t-org", "user_id": "ann"})
        info = self.ok("GET", "/team/info?team_id=t-org")
        self.assertEqual((info["team_id"], info["team_info"]["team_alias"],
                          info["team_info"]["max_budget"]), ("t-org", "Org Team", 50))
        self.assertEqual(sorted(k["token"] for k in info["keys"]),
                         sorted([k_cy["token"], k_ann["token"]]))
        self.assertNotIn(k_cy["key"], json.dumps(info, default=str))
        members = {m["user_id"]: m for m in info["team_memberships"]}
        self.assertEqual(members["cy"]["litellm_budget_table"]["max_budget"], 9)
        self.assertIsNone(members["ann"]["litellm_budget_table"])
        # update: only what is named
        team = self.ok("POST", "/team/update", {"team_id": "t-org", "max_budget": 60,
                                                "blocked": True})
        self.assertEqual((team["max_budget"], team["team_alias"], team["blocked"],
                          team["budget_duration"]), (60, "Org Team", True, "30d"))
        self.refused("POST", "/team/update", {"team_id": "nope", "max_budget": 1}, 404, "team_id")
        self.refused("POST", "/team/update", {"max_budget": 1}, 400, "team_id")
        # member_delete: membership, its private budget and cy's keys in the team go
        self.ok("POST", "/team/member_delete", {"team_id": "t-org", "user_id": "cy"})
        self.assertEqual(s.sql_value("SELECT COUNT(*) FROM team_members WHERE user_id = 'cy'"),
                         "0")
        self.assertEqual(s.sql_value("SELECT COUNT(*) FROM api_keys WHERE token = '%s'"
                                     % k_cy["token"]), "0")
        self.assertEqual(s.sql_value("SELECT COUNT(*) FROM budgets"), "1")  # bob's
        self.refused("POST", "/team/member_delete", {"team_id": "t-org", "user_id": "cy"},
                     404, "user_id")
        # delete: the team, its keys and memberships; users stay
        body = self.ok("POST", "/team/delete", {"team_ids": ["t-org", "never-was"]})
        self.assertEqual(body, {"deleted_teams": ["t-org"]})
        self.assertEqual(s.sql("SELECT (SELECT COUNT(*) FROM teams), (SELECT COUNT(*) FROM"
                               " team_members), (SELECT COUNT(*) FROM api_keys), (SELECT COUNT(*)"
                               " FROM budgets), (SELECT COUNT(*) FROM internal_users)"),
                         [["0", "0", "0", "0", "3"]])
        self.refused("GET", "/team/info?team_id=t-org", None, 404, "team_id")
        self.refused("GET", "/team/info", None, 400, "team_id")
        self.refused("POST", "/team/delete", {"team_ids": []}, 400, "team_ids")
        self.refused("POST", "/team/delete", {"team_ids": "t-org"}, 400, "team_ids")

    def test_team_refusals(self):
        self.ok("POST", "/team/new", {"team_id": "dup"})
        self.refused("POST", "/team/new", {"team_id": "dup"}, 400, "team_id")
        for body, param in (({"budget_duration": "fortnight"}, "budget_duration"),
                            ({"members": [{"role": "user"}]}, "members"),
                            ({"members": ["ann"]}, "members"),
                            ({"members_with_roles": {"user_id": "a", "role": "x"}},
                             "members_with_roles"),
                            ({"max_budget": 1e300}, "max_budget"),
                            ({"team_alias": "x" * 256}, "team_alias")):
            self.refused("POST", "/team/new", body, 400, param)
        self.assertEqual(self.stack.sql_value("SELECT COUNT(*) FROM teams"), "1")

    # -- internal users

    def test_user_lifecycle(self):
        s = self.stack
        self.ok("POST", "/team/new", {"team_id": "u-team", "team_alias": "U Team"})
        self.refused("POST", "/user/new", {"user_id": "dan", "teams": ["u-team", "ghost"]},
                     400, "teams")
        self.assertEqual(s.sql_value("SELECT COUNT(*) FROM internal_users"), "0")
        user = self.ok("POST", "/user/new", {"user_id": "dan", "user_email": "dan@example.com",
                                             "user_role": "internal_user_viewer",
                                             "max_budget": 4, "budget_duration": "1d",
                                             "teams": ["u-team"]})
        self.assertEqual((user["teams"], user["user_role"], user["max_budget"],
                          user["budget_duration"]),
                         (["u-team"], "internal_user_viewer", 4, "1d"))
        self.assertEqual(user["budget_reset_at"][11:], "00:00:00.000000+00:00")
        k = self.ok("POST", "/key/generate", {"user_id": "dan", "team_id": "u-team"})
        user = self.ok("POST", "/user/update", {"user_id": "dan", "user_alias": "Dan",
                                                "spend": 1.25})
        self.assertEqual((user["user_alias"], user["spend"], user["user_email"]),
                         ("Dan", 1.25, "dan@example.com"))
        info = self.ok("GET", "/user/info?user_id=dan")
        self.assertEqual((info["user_id"], info["user_info"]["user_alias"],
                          [x["token"] for x in info["keys"]],
                          [t["team_id"] for t in info["teams"]]),
                         ("dan", "Dan", [k["token"]], ["u-team"]))
        self.refused("POST", "/user/update", {"user_id": "nobody", "user_alias": "x"},
                     404, "user_id")
        self.refused("POST", "/user/update", {"user_id": "dan", "user_role": "root"},
                     400, "user_role")
        self.refused("GET", "/user/info?user_id=nobody", None, 404, "user_id")
        self.refused("POST", "/user/new", {"user_id": "dan"}, 400, "user_id")
        body = self.ok("POST", "/user/delete", {"user_ids": ["dan", "nobody"]})
        self.assertEqual(body, {"deleted_users": ["dan"]})
        self.assertEqual(s.sql("SELECT (SELECT COUNT(*) FROM internal_users), (SELECT COUNT(*)"
                               " FROM api_keys), (SELECT COUNT(*) FROM team_members),"
                               " (SELECT COUNT(*) FROM teams)"), [["0", "0", "0", "1"]])
        self.assertEqual(s.chat(k["key"])[0], 401)

    # -- roles

    def key_of(self, user_id, role, **fields):
        self.ok("POST", "/user/new", {"user_id": user_id, "user_role": role})
        return self.ok("POST", "/key/generate", dict(user_id=user_id, **fields))["key"]

    def test_roles(self):
        admin = self.key_of("adm", "proxy_admin")
        viewer = self.key_of("view", "proxy_admin_viewer")
        mine = self.key_of("me", "internal_user")
        other = self.ok("POST", "/key/generate", {"user_id": "someone-else"})
        own_second = self.ok("POST", "/key/generate", {"user_id": "me", "key_alias": "me-2"})
        # proxy_admin: writes, but never the global reset
        self.ok("POST", "/team/new", {"team_id": "by-admin"}, key=admin)
        self.refused("POST", "/global/spend/reset", {}, 403, key=admin)
        # proxy_admin_viewer: reads everything, writes nothing
        self.ok("GET", "/team/info?team_id=by-admin", key=viewer)
        self.ok("GET", "/key/info?key=" + other["token"], key=viewer)
        self.ok("GET", "/global/spend/report?start_date=2026-01-01&end_date=2026-01-02",
                key=viewer)
        self.refused("POST", "/team/new", {"team_id": "by-viewer"}, 403, key=viewer)
        self.refused("POST", "/key/generate", {}, 403, key=viewer)
        # internal user: its own keys and user only
        self.assertEqual(self.ok("GET", "/key/info", key=mine)["info"]["user_id"], "me")
        self.ok("GET", "/key/info?key=" + own_second["token"], key=mine)
        self.refused("GET", "/key/info?key=" + other["token"], None, 403, "key", key=mine)
        listed = self.ok("GET", "/key/list", key=mine)
        self.assertEqual((listed["total_count"], sorted(listed["keys"])),
                         (2, sorted([hashlib.sha256(mine.encode()).hexdigest(),
                                     own_second["token"]])))
        self.refused("GET", "/key/list?user_id=adm", None, 403, "user_id", key=mine)
        self.assertEqual(self.ok("GET", "/user/info", key=mine)["user_id"], "me")
        self.refused("GET", "/user/info?user_id=adm", None, 403, "user_id", key=mine)
        self.refused("GET", "/team/info?team_id=by-admin", None, 403, key=mine)
        self.refused("POST", "/key/generate", {}, 403, key=mine)
        self.refused("GET", "/global/spend/report?start_date=2026-01-01&end_date=2026-01-02",
                     None, 403, key=mine)
        # its own spend: logs and daily activity limited to its user
        s = self.stack
        for key in (mine, other["key"], admin):
            self.assertEqual(s.chat(key)[0], 200)
        wait_for(lambda: s.sql_value("SELECT COUNT(*) FROM spend_logs") == "3", 20,
                 message="3 log rows")
        logs = self.ok("GET", "/spend/logs", key=mine)
        self.assertEqual([(r["user"], r["api_key"]) for r in logs],
                         [("me", hashlib.sha256(mine.encode()).hexdigest())])
        self.assertEqual(len(self.ok("GET", "/spend/logs", key=viewer)), 3)
        self.refused("GET", "/spend/logs?user_id=adm", None, 403, "user_id", key=mine)
        day = s.sql_value("SELECT DATE(MIN(start_time)) FROM spend_logs")
        act = self.ok("GET", "/user/daily/activity?start_date=%s&end_date=%s" % (day, day),
                      key=mine)
        self.assertEqual(list(act["results"][0]["breakdown"]["entities"]), ["me"])
        self.assertEqual(act["metadata"]["total_api_requests"], 1)
        self.refused("GET", "/user/daily/activity?start_date=%s&end_date=%s&user_id=adm"
                     % (day, day), None, 403, "user_id", key=mine)
        self.refused("GET", "/team/daily/activity?start_date=%s&end_date=%s" % (day, day),
                     None, 403, key=mine)
        # a key without a user is no internal user: it reads nothing of this kind
        nouser = self.ok("POST", "/key/generate", {})
        self.refused("GET", "/key/info", None, 403, key=nouser["key"])
        self.refused("GET", "/key/info", None, 401, key="sk-not-a-key")
        self.refused("GET", "/key/info", None, 401, key=None)


if __name__ == "__main__":
    unittest.main()
