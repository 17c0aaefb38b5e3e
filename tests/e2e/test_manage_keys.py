"""test_manage_keys.py - reportd's key routes: /key/info, /key/list, /key/block,
/key/unblock, /key/delete (LiteLLM's shapes), who may call them, and what proxyd does
with a blocked or deleted key.

Run from the repo root:  python3 -m unittest -v tests/e2e/test_manage_keys.py
"""

import datetime
import hashlib
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import MASTER_KEY, wait_for  # noqa: E402

KEY_STATE_S = 2.5  # a key change reaches proxyd within key_cache_ttl_ms + 1 s (2 s)


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc)


def next_month(t):
    """00:00 UTC on the 1st of the month after t's."""
    return datetime.datetime(t.year + t.month // 12, t.month % 12 + 1, 1,
                             tzinfo=datetime.timezone.utc)


class ManageKeysTest(harness.StackTestCase):

    def post(self, path, body, key=MASTER_KEY):
        return self.stack.report("POST", path, body, key=key)

    def get(self, path, key=MASTER_KEY):
        return self.stack.report("GET", path, key=key)

    def new_key(self, **fields):
        st, _, k = self.post("/key/generate", fields)
        self.assertEqual(st, 200, k)
        return k

    def test_info_by_raw_key_or_hash_never_shows_the_raw_key(self):
        k = self.new_key(key_alias="info-key", max_budget=12.5, metadata={"team": "x"})
        for name in (k["key"], k["token"]):
            st, _, body = self.get("/key/info?key=" + name)
            self.assertEqual(st, 200, body)
            self.assertEqual(body["key"], k["token"])
            info = body["info"]
            self.assertEqual((info["token"], info["key_alias"], info["key_name"], info["blocked"]),
                             (k["token"], "info-key", k["key_name"], False))
            self.assertEqual((info["max_budget"], info["spend"], info["metadata"]),
                             (12.5, 0, {"team": "x"}))
            self.assertNotIn(k["key"], json.dumps(body, default=str))
        st, _, body = self.get("/key/info?key=sk-no-such-key")
        self.assertEqual((st, body["error"]["type"], body["error"]["param"]),
                         (404, "not_found_error", "key"))
        st, _, body = self.get("/key/info")
        self.assertEqual((st, body["error"]["param"]), (400, "key"))

    def test_list_is_paginated(self):
        for i in range(3):
            self.new_key(key_alias="list-%d" % i)
        total = int(self.stack.sql_value("SELECT COUNT(*) FROM api_keys"))
        st, _, body = self.get("/key/list?size=2")
        self.assertEqual(st, 200, body)
        self.assertEqual((len(body["keys"]), body["total_count"], body["current_page"],
                          body["total_pages"]), (2, total, 1, (total + 1) // 2))
        seen = []
        for page in range(1, body["total_pages"] + 1):
            seen += self.get("/key/list?size=2&page=%d" % page)[2]["keys"]
        self.assertEqual(sorted(seen), sorted(r[0] for r in self.stack.sql(
            "SELECT token FROM api_keys")))
        st, _, body = self.get("/key/list?size=5000")
        self.assertEqual((st, body["error"]["param"]), (400, "size"))

    def test_block_unblock_reach_proxyd(self):
        k = self.new_key(key_alias="block-me")
        self.assertEqual(self.stack.chat(k["key"])[0], 200)
        st, _, body = self.post("/key/block", {"key": k["key"]})
        self.assertEqual((st, body["info"]["blocked"]), (200, True))
        wait_for(lambda: self.stack.chat(k["key"])[0] == 403, KEY_STATE_S,
                 message="proxyd kept serving a blocked key")
        st, _, body = self.post("/key/unblock", {"key": k["token"]})
        self.assertEqual((st, body["info"]["blocked"]), (200, False))
        wait_for(lambda: self.stack.chat(k["key"])[0] == 200, KEY_STATE_S,
                 message="proxyd kept refusing an unblocked key")
        st, _, body = self.post("/key/block", {})
        self.assertEqual((st, body["error"]["param"]), (400, "key"))

    def test_delete_by_keys_and_aliases(self):
        a, b, c = (self.new_key(key_alias="del-%d" % i) for i in range(3))
        self.assertEqual(self.stack.chat(a["key"])[0], 200)
        st, _, body = self.post("/key/delete", {"keys": [a["key"], b["token"], "sk-gone"]})
        self.assertEqual((st, body), (200, {"deleted_keys": [a["key"], b["token"]]}))
        st, _, body = self.post("/key/delete", {"key_aliases": ["del-2"]})
        self.assertEqual((st, body), (200, {"deleted_keys": ["del-2"]}))
        for k in (a, b, c):
            self.assertEqual(self.get("/key/info?key=" + k["token"])[0], 404)
        wait_for(lambda: self.stack.chat(a["key"])[0] == 401, KEY_STATE_S,
                 message="proxyd kept serving a deleted key")
        # the deleted key's requests stay in the ledger
        wait_for(lambda: self.stack.sql(
            "SELECT 1 FROM spend_logs WHERE api_key = '%s'" % a["token"]), 10)
        st, _, body = self.post("/key/delete", {"keys": "not-a-list"})
        self.assertEqual((st, body["error"]["param"]), (400, "keys"))
        st, _, body = self.post("/key/delete", {})
        self.assertEqual((st, body["error"]["param"]), (400, "keys"))

    def test_generate_with_durations_custom_key_and_blocked(self):
        before = now_utc()
        k = self.new_key(budget_duration="1d", duration="1h", max_budget=5)
        after = now_utc()
        # 1d resets at the next UTC midnight: the one after `before`, or after `after`
        # when the key was made across midnight
        midnights = {datetime.datetime.combine(t.date() + datetime.timedelta(days=1),
                                               datetime.time(), datetime.timezone.utc)
                     for t in (before, after)}
        self.assertEqual(k["budget_duration"], "1d")
        midnight = datetime.datetime.fromisoformat(k["budget_reset_at"])
        self.assertIn(midnight, midnights)
        # an hour after it was made (the answer has whole seconds, or finer)
        expires = datetime.datetime.fromisoformat(k["expires"])
        hour = datetime.timedelta(hours=1)
        self.assertTrue(before.replace(microsecond=0) + hour <= expires <= after + hour,
                        (before, expires, after))
        row = self.stack.sql("SELECT budget_duration, budget_reset_at, budget_period_start,"
                             " expires FROM api_keys WHERE token = '%s'" % k["token"])[0]
        self.assertEqual(row[:2], ["1d", midnight.strftime("%Y-%m-%d %H:%M:%S.000000")])
        self.assertIsNotNone(row[2])
        info = self.get("/key/info?key=" + k["token"])[2]["info"]
        self.assertEqual((info["budget_duration"], info["budget_reset_at"][:19]),
                         ("1d", midnight.strftime("%Y-%m-%dT%H:%M:%S")))

        custom = self.new_key(key="sk-my-custom-key-0001")
        self.assertEqual(custom["key"], "sk-my-custom-key-0001")
        self.assertEqual(custom["token"], hashlib.sha256(b"sk-my-custom-key-0001").hexdigest())
        self.assertEqual(self.stack.chat(custom["key"])[0], 200)
        st, _, body = self.post("/key/generate", {"key": "sk-my-custom-key-0001"})
        self.assertEqual((st, body["error"]["param"]), (400, "key"))

        blocked = self.new_key(blocked=True)
        self.assertTrue(blocked["blocked"])
        self.assertEqual(self.stack.chat(blocked["key"])[0], 403)

        for field, value in (("budget_duration", "3x"), ("duration", "0d"), ("key", "nope"),
                             ("blocked", "yes"), ("budget_duration", 7)):
            st, _, body = self.post("/key/generate", {field: value})
            self.assertEqual((st, body["error"]["param"]), (400, field), (field, value))

    def test_update(self):
        k = self.new_key(key_alias="upd", max_budget=1)
        st, _, team = self.post("/team/new", {"team_id": "upd-team"})
        self.assertEqual(st, 200, team)
        before = now_utc()
        st, _, body = self.post("/key/update", {
            "key": k["key"], "key_alias": "upd-2", "max_budget": 7.5, "spend": 0.25,
            "team_id": "upd-team", "user_id": "upd-user", "models": ["llama3"],
            "metadata": {"cost_center": "42"}, "budget_duration": "1mo"})
        after = now_utc()
        self.assertEqual(st, 200, body)
        info = body["info"]
        self.assertEqual((info["key_alias"], info["max_budget"], info["spend"], info["team_id"],
                          info["user_id"], info["models"], info["metadata"]),
                         ("upd-2", 7.5, 0.25, "upd-team", "upd-user", ["llama3"],
                          {"cost_center": "42"}))
        # 1mo resets on the 1st of next month (UTC): of the month of `before`, or of
        # `after` when the update ran across a month's end
        firsts = {next_month(t) for t in (before, after)}
        self.assertEqual(info["budget_duration"], "1mo")
        self.assertIn(datetime.datetime.fromisoformat(info["budget_reset_at"]), firsts)
        self.assertEqual(self.stack.sql_value("SELECT COUNT(*) FROM internal_users"
                                              " WHERE user_id = 'upd-user'"), "1")
        # only what is given changes
        st, _, body = self.post("/key/update", {"key": k["token"], "blocked": True})
        self.assertEqual((st, body["info"]["blocked"], body["info"]["key_alias"]),
                         (200, True, "upd-2"))
        for fields, param, status in (({"key": "sk-none", "blocked": True}, "key", 404),
                                      ({"blocked": True}, "key", 400),
                                      ({"key": k["token"], "team_id": "no-team"}, "team_id", 400),
                                      ({"key": k["token"], "spend": -1}, "spend", 400),
                                      ({"key": k["token"], "budget_duration": "1y"},
                                       "budget_duration", 400)):
            st, _, body = self.post("/key/update", fields)
            self.assertEqual((st, body["error"]["param"]), (status, param), fields)
        other = self.new_key(key_alias="taken")
        st, _, body = self.post("/key/update", {"key": other["key"], "key_alias": "upd-2"})
        self.assertEqual((st, body["error"]["param"]), (400, "key_alias"))

    def test_only_the_master_key(self):
        reader = self.new_key(permissions={"get_spend_routes": True})
        for method, path, body in (("GET", "/key/info?key=x", None), ("GET", "/key/list", None),
                                   ("POST", "/key/block", {"key": "x"}),
                                   ("POST", "/key/update", {"key": "x"}),
                                   ("POST", "/key/unblock", {"key": "x"}),
                                   ("POST", "/key/delete", {"keys": ["x"]})):
            self.assertEqual(self.stack.report(method, path, body)[0], 401, path)
            st, _, out = self.stack.report(method, path, body, key=reader["key"])
            self.assertEqual((st, out["error"]["type"]), (403, "permission_error"), path)


if __name__ == "__main__":
    unittest.main()
