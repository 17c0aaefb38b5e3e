"""test_keys.py - key states, and how fast a change in MariaDB reaches proxyd.

A key blocked, expired or deleted, a team blocked, or a budget lowered is
written to MariaDB (by reportd, or here by SQL as reportd does); proxyd keeps
key rows in a cache, and the contract is that every request arriving more
than 2 seconds after the change sees it (key_cache_ttl_ms 1000 + 1 s). Each
case is checked both ways: with the key idle in between (a cached row of
almost 2 s must not answer), and with requests every 50 ms (no request sent
after the bound is answered). A change made through reportd reaches every one
of three proxyd within the bound. Readiness fails once accountd is gone longer
than readiness_grace_ms and recovers when it is back.

The bound is checked against when a request was sent, not when its answer
came: a request sent after (change committed + 2 s) must be refused however
slowly it is served, so the check holds on a loaded machine (ASan, 2 busy
cores) without a margin, and still fails for a proxyd that serves a row older
than the contract allows.

Run from the repo root:  python3 -m unittest -v tests/e2e/test_keys.py
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import MASTER_KEY, wait_for  # noqa: E402

BOUND_S = 2.0         # the contract: a change reaches every proxyd within 2 s
POLL_S = 0.05
GRACE_MS = 500
EXTRA_PROXYD = ("proxyd-2", "proxyd-3")


class KeyStateTest(harness.StackTestCase):
    stack_options = {"tollgate": {"proxyd": {"readiness_grace_ms": GRACE_MS}}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # two more proxyd on the same MariaDB (each with its own key cache)
        cls.proxyd_names = {cls.stack.proxyd_port: "proxyd"}
        for name in EXTRA_PROXYD:
            cls.proxyd_names[cls.stack.add_proxyd(name)] = name
        cls.proxyd_ports = list(cls.proxyd_names)

    def new_key(self, **fields):
        st, _, b = self.stack.report("POST", "/key/generate", fields, key=MASTER_KEY)
        self.assertEqual(st, 200, b)
        return b["key"], b["token"]

    def chat(self, key):
        return self.stack.chat(key)

    def warm(self, key):
        """One request, so proxyd has the key's row cached."""
        st, _, b = self.chat(key)
        self.assertEqual(st, 200, b)

    def change(self, sql):
        """Runs the change; returns a time no earlier than its commit (when the
        SQL client has returned)."""
        self.stack.sql(sql)
        return time.monotonic()

    def assert_sent_in_time(self, sent, t, what="the change"):
        """A request sent at `sent` was answered 200: fine only if it was sent
        before the bound ran out after a change committed no later than t."""
        self.assertLess(sent - t, BOUND_S, "answered 200 to a request sent %.2f s after %s "
                        "had committed (the contract: refused after %.1f s)"
                        % (sent - t, what, BOUND_S))

    def assert_refused(self, out, status, type_, text):
        st, _, b = out
        self.assertEqual(st, status, b)
        self.assertErrorShape(b, status, type_=type_)
        self.assertIn(text, b["error"]["message"])

    def check_idle(self, sql_for, status, type_, text, **key_fields):
        """The key is idle after the change: the first request after the bound is
        refused (the sleep is the point: a cached row just younger than the bound
        is what must not answer)."""
        key, token = self.new_key(**key_fields)
        self.warm(key)
        t = self.change(sql_for(token))
        time.sleep(max(0.0, t + BOUND_S + 0.05 - time.monotonic()))
        self.assert_refused(self.chat(key), status, type_, text)

    def check_busy(self, sql_for, status, type_, text, **key_fields):
        """Requests keep coming: none sent after the bound is answered."""
        key, token = self.new_key(**key_fields)
        self.warm(key)
        t = self.change(sql_for(token))
        while True:
            sent = time.monotonic()
            out = self.chat(key)
            if out[0] != 200:
                break
            self.assert_sent_in_time(sent, t)  # also ends the loop past the bound
            time.sleep(POLL_S)
        self.assert_refused(out, status, type_, text)

    def both(self, sql_for, status, type_, text, **key_fields):
        self.check_idle(sql_for, status, type_, text, **key_fields)
        self.check_busy(sql_for, status, type_, text, **key_fields)

    def test_blocked_key(self):
        self.both(lambda t: "UPDATE api_keys SET blocked = 1 WHERE token = '%s'" % t,
                  403, "permission_error", "Key is blocked")

    def test_expired_key(self):
        self.both(lambda t: "UPDATE api_keys SET expires = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND"
                            " WHERE token = '%s'" % t,
                  401, "auth_error", "Expired Key")

    def test_deleted_key(self):
        self.both(lambda t: "DELETE FROM api_keys WHERE token = '%s'" % t,
                  401, "auth_error", "Invalid proxy server token")

    def test_blocked_team(self):
        st, _, team = self.stack.report("POST", "/team/new", {"team_alias": "to-block"},
                                        key=MASTER_KEY)
        self.assertEqual(st, 200, team)
        tid = team["team_id"]
        self.check_idle(lambda t: "UPDATE teams SET blocked = 1 WHERE team_id = '%s'" % tid,
                        403, "permission_error", "Team=%s is blocked" % tid, team_id=tid)
        self.stack.sql("UPDATE teams SET blocked = 0 WHERE team_id = '%s'" % tid)
        self.check_busy(lambda t: "UPDATE teams SET blocked = 1 WHERE team_id = '%s'" % tid,
                        403, "permission_error", "Team=%s is blocked" % tid, team_id=tid)

    def test_lowered_budget(self):
        # spend 0 and a budget of 0 after the change: refused (spend >= max_budget)
        self.both(lambda t: "UPDATE api_keys SET max_budget = 0 WHERE token = '%s'" % t,
                  400, "budget_exceeded", "Budget has been exceeded!", max_budget=10)

    def chat_at(self, port, key):
        return self.stack.http("POST", port, "/v1/chat/completions",
                               {"model": "llama3", "messages": [{"role": "user", "content": "hi"}]},
                               key)

    def change_everywhere(self, route):
        """A new key, cached by every proxyd, then changed through reportd (its
        answer comes after the commit). Returns (key, a time no earlier than the
        commit)."""
        key, token = self.new_key(max_budget=10)
        for port in self.proxyd_ports:
            st, _, b = self.chat_at(port, key)
            self.assertEqual(st, 200, (port, b))
        path, body = route(key, token)
        st, _, b = self.stack.report("POST", path, body, key=MASTER_KEY)
        self.assertEqual(st, 200, b)
        return key, time.monotonic()

    def test_change_through_reportd_reaches_every_proxyd(self):
        # block, lower the budget, delete: each through reportd's API, each seen by
        # all three proxyd within the bound, with the key idle (rows cached almost
        # 2 s must not answer) and busy (no request sent after the bound answered)
        cases = (
            ("block", lambda key, token: ("/key/block", {"key": key}),
             403, "permission_error", "Key is blocked"),
            ("update", lambda key, token: ("/key/update", {"key": token, "max_budget": 0}),
             400, "budget_exceeded", "Budget has been exceeded!"),
            ("delete", lambda key, token: ("/key/delete", {"keys": [key]}),
             401, "auth_error", "Invalid proxy server token"),
        )
        for name, route, status, type_, text in cases:
            with self.subTest(name, key="idle"):
                key, t = self.change_everywhere(route)
                time.sleep(max(0.0, t + BOUND_S + 0.05 - time.monotonic()))
                for port in self.proxyd_ports:
                    out = self.chat_at(port, key)
                    self.assertNotEqual(out[0], 200, "%s still answered %.2f s after the key's %s"
                                        % (self.proxyd_names[port], time.monotonic() - t, name))
                    self.assert_refused(out, status, type_, text)
            with self.subTest(name, key="busy"):
                key, t = self.change_everywhere(route)
                self.poll_every_proxyd(key, t, name, status, type_, text)

    def poll_every_proxyd(self, key, t, what, status, type_, text):
        """Requests to each proxyd in turn until each has refused one sent after
        the bound: a 200 only for requests sent before it, and once a proxyd has
        refused, it keeps refusing."""
        refused = set()
        after_bound = set()
        while len(after_bound) < len(self.proxyd_ports):
            for port in self.proxyd_ports:
                if port in after_bound:
                    continue
                sent = time.monotonic()
                out = self.chat_at(port, key)
                if out[0] == 200:
                    self.assertNotIn(port, refused, "%s answered 200 again after refusing the "
                                     "key (%s)" % (self.proxyd_names[port], what))
                    self.assert_sent_in_time(sent, t, "the key's %s (%s)"
                                             % (what, self.proxyd_names[port]))
                    continue
                self.assert_refused(out, status, type_, text)
                refused.add(port)
                if sent - t >= BOUND_S:
                    after_bound.add(port)
            time.sleep(POLL_S)

    def test_readiness_follows_accountd(self):
        def ready():
            return self.stack.proxy("GET", "/health/readiness")
        self.assertEqual(ready()[0], 200)
        self.stack.stop_one("accountd")
        try:
            st, _, b = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(ready()),
                                GRACE_MS / 1000 + 5, message="readiness stayed 200")
            self.assertEqual((b["status"], b["accountd"]), ("unhealthy", "unreachable"), b)
            self.assertEqual(b["db"], "connected", b)
        finally:
            self.stack.restart("accountd")
        st, _, b = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(ready()), 10,
                            message="readiness did not recover")
        self.assertEqual(b["accountd"], "connected", b)


if __name__ == "__main__":
    unittest.main()
