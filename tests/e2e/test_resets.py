"""test_resets.py - budget-duration resets: on time, exactly once, and exact.

A budget's budget_reset_at is set (by SQL, as reportd's management routes will)
to a moment a second or two ahead; then the test watches accountd reset it:
- within 1 second of budget_reset_at, spend becomes what the requests started in the
  new period cost, budget_period_start the boundary, budget_reset_at the next one;
- an event whose request started before the boundary but arrives after the reset
  is in the logs and lifetime figures, not in the new period's spend;
- one committed after the boundary but before the reset ran stays counted;
- with two accountd instances each budget is reset once;
- shared budgets reset their end users; missed resets (accountd was down) start the
  period at the last boundary; a bad budget_duration stops resetting, loudly;
and every invariant holds afterwards (tests/e2e/invariants.py).

Run from the repo root:  python3 -m unittest -v tests/e2e/test_resets.py
"""

import datetime
import os
import subprocess
import sys
import time
import unittest
import uuid
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import invariants  # noqa: E402
from harness import MASTER_KEY, wait_for  # noqa: E402

MODEL = "groq/llama-3.1-8b-instant"
RESET_BOUND_S = 1.0  # the contract: a reset within 1 s of budget_reset_at


def utc(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc)


def sql_time(t):
    return utc(t).strftime("%Y-%m-%d %H:%M:%S")


def next_midnight(t):
    d = utc(t).date() + datetime.timedelta(days=1)
    return datetime.datetime(d.year, d.month, d.day, tzinfo=datetime.timezone.utc)


class ResetTest(harness.StackTestCase):
    stack_options = {"accountd_instances": 2,
                     "tollgate": {"proxyd": {"event_resend_ms": 300}}}

    def new_key(self, alias):
        st, _, b = self.stack.report("POST", "/key/generate", {"key_alias": alias,
                                                              "user_id": "u-" + alias},
                                     key=MASTER_KEY)
        self.assertEqual(st, 200, b)
        return b["key"], b["token"]

    def send(self, token, prompt, completion, start=None):
        """One event through the ZeroMQ protocol; start: when its request started."""
        args = [str(harness.bin_dir() / "send-events"),
                "tcp://127.0.0.1:%d" % self.stack.events_port, "ev-" + uuid.uuid4().hex, token,
                MODEL, str(prompt), str(completion), "1"]
        if start is not None:
            args.append(str(int(start * 1000)))
        p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def key_row(self, token):
        return self.stack.sql("SELECT spend, budget_period_start, budget_reset_at FROM api_keys"
                              " WHERE token = '%s'" % token)[0]

    def due_in(self, seconds, table="api_keys", where=None, duration="1d"):
        """Sets budget_reset_at to a whole second `seconds` or more ahead; returns it."""
        at = int(time.time() + seconds) + 1
        self.stack.sql("UPDATE %s SET budget_duration = '%s', budget_reset_at = '%s' WHERE %s"
                       % (table, duration, sql_time(at), where))
        return at

    def wait_reset(self, token, at):
        """Waits for the reset of at; returns (row, seconds after at it was seen)."""
        def done():
            row = self.key_row(token)
            return row if row[1] is not None and row[1].startswith(sql_time(at)) else None
        row = wait_for(done, at - time.time() + 10, interval=0.05,
                       message="no reset of %s" % sql_time(at))
        return row, time.time() - at

    def test_key_reset_on_time_and_exact(self):
        _, token = self.new_key("daily")
        self.send(token, 1000, 1000)
        self.assertGreater(Decimal(self.key_row(token)[0]), 0)
        at = self.due_in(2, where="token = '%s'" % token)
        row, late = self.wait_reset(token, at)
        self.assertLess(late, RESET_BOUND_S + 0.1, "reset %.2f s late" % late)
        self.assertEqual(Decimal(row[0]), 0)
        self.assertEqual(row[2][:19], next_midnight(at).strftime("%Y-%m-%d %H:%M:%S"))
        # a request that started in the old period, arriving late: logs only
        self.send(token, 500, 500, start=at - 5)
        self.assertEqual(Decimal(self.key_row(token)[0]), 0)
        # one that started in the new period counts
        self.send(token, 100, 100)
        self.assertEqual(Decimal(self.key_row(token)[0]), harness.expected_cost(100, 100))
        n = self.stack.sql_value("SELECT COUNT(*) FROM spend_logs WHERE api_key = '%s'" % token)
        self.assertEqual(n, "3")
        self.assertEqual(invariants.check(self.stack), [])

    def test_event_committed_before_the_reset_ran_stays(self):
        _, token = self.new_key("race")
        at = self.due_in(2, where="token = '%s'" % token)
        # started after the boundary, committed before accountd's next look (250 ms)
        time.sleep(max(0.0, at - time.time()))
        self.send(token, 300, 300, start=at + 0.001)
        row, _ = self.wait_reset(token, at)
        self.assertEqual(Decimal(row[0]), harness.expected_cost(300, 300))
        self.assertEqual(invariants.check(self.stack), [])

    def test_each_budget_reset_once_by_two_instances(self):
        tokens = [self.new_key("once-%d" % i)[1] for i in range(20)]
        at = self.due_in(2, where="token IN (%s)" % ",".join("'%s'" % t for t in tokens))
        for t in tokens:
            self.wait_reset(t, at)
        time.sleep(0.5)  # a second reset, were there one, would have happened by now
        logged = 0
        for name in ("accountd", "accountd-2"):
            for line in self.stack.daemon_log(name).read_text().splitlines():
                if "api_keys: " in line and "reset" in line:
                    logged += int(line.split("api_keys: ")[1].split()[0])
        # over the stack's life: every key reset so far, each exactly once
        reset_keys = int(self.stack.sql_value("SELECT COUNT(*) FROM api_keys"
                                              " WHERE budget_period_start IS NOT NULL"))
        self.assertGreaterEqual(reset_keys, 20)
        self.assertEqual(logged, reset_keys)

    def test_shared_budget_resets_its_end_users(self):
        key, token = self.new_key("shared")
        s = self.stack
        s.sql("INSERT INTO budgets (budget_id, max_budget, created_at, updated_at)"
              " VALUES ('monthly-b', 100, NOW(6), NOW(6));"
              "INSERT INTO customers (user_id, budget_id, created_at, updated_at)"
              " VALUES ('cust-shared', 'monthly-b', NOW(6), NOW(6))")
        st, _, b = s.chat(key, prompt_tokens=40, completion_tokens=40, user="cust-shared")
        self.assertEqual(st, 200, b)
        wait_for(lambda: Decimal(s.sql_value(
            "SELECT spend FROM customers WHERE user_id = 'cust-shared'")) > 0, 10)
        at = self.due_in(2, table="budgets", where="budget_id = 'monthly-b'", duration="1mo")
        wait_for(lambda: (s.sql_value("SELECT budget_period_start FROM budgets"
                                      " WHERE budget_id = 'monthly-b'") or "")
                 .startswith(sql_time(at)), 10, interval=0.05)
        self.assertLess(time.time() - at, RESET_BOUND_S + 0.5)
        self.assertEqual(Decimal(s.sql_value(
            "SELECT spend FROM customers WHERE user_id = 'cust-shared'")), 0)
        d = next_midnight(at)
        first = (d.replace(day=1) if d.day == 1 else
                 (d.replace(day=1) + datetime.timedelta(days=32)).replace(day=1))
        self.assertTrue(s.sql_value("SELECT budget_reset_at FROM budgets"
                                    " WHERE budget_id = 'monthly-b'")
                        .startswith(first.strftime("%Y-%m-%d 00:00:00")))
        self.assertEqual(invariants.check(s), [])

    def test_missed_resets_start_at_the_last_boundary(self):
        _, token = self.new_key("missed")
        now = time.time()
        self.stack.sql("UPDATE api_keys SET budget_duration = '1d', budget_reset_at = '%s'"
                       " WHERE token = '%s'" % (sql_time(now - 3 * 86400), token))
        midnight = next_midnight(now) - datetime.timedelta(days=1)
        row = wait_for(lambda: (lambda r: r if r[1] else None)(self.key_row(token)), 5)
        self.assertTrue(row[1].startswith(midnight.strftime("%Y-%m-%d %H:%M:%S")), row)
        self.assertTrue(row[2].startswith(next_midnight(now).strftime("%Y-%m-%d %H:%M:%S")), row)

    def test_bad_duration_is_refused_loudly(self):
        _, token = self.new_key("baddur")
        self.stack.sql("UPDATE api_keys SET budget_duration = '3 fortnights',"
                       " budget_reset_at = '%s' WHERE token = '%s'"
                       % (sql_time(time.time() - 1), token))
        wait_for(lambda: self.stack.sql_value("SELECT budget_reset_at IS NULL FROM api_keys"
                                              " WHERE token = '%s'" % token) == "1", 5)
        logs = "".join(self.stack.daemon_log(n).read_text() for n in ("accountd", "accountd-2"))
        self.assertIn("'3 fortnights' is not a duration", logs)


if __name__ == "__main__":
    unittest.main()
