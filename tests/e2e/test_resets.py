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
- in a litellm_settings.timezone other than UTC (Asia/Kolkata, +05:30: its midnight
  is on no whole UTC hour) a "1d" period ends at local midnight and a "1mo" one on
  the local 1st, when the key is made, at a due reset and after missed ones, and
  the new period counts the requests started since that local boundary;
and every invariant holds afterwards (tests/e2e/invariants.py).
Expected boundaries are computed here with zoneinfo, not asked of Tollgate. A test
whose expectations follow "now" (today's midnight, this month's 1st) runs once more
when that local day or month changed while it ran.

Run from the repo root:  python3 -m unittest -v tests/e2e/test_resets.py
"""

import datetime
import os
import subprocess
import sys
import time
import unittest
import uuid
import zoneinfo
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import invariants  # noqa: E402
from harness import MASTER_KEY, wait_for  # noqa: E402

MODEL = "groq/llama-3.1-8b-instant"
UTC = datetime.timezone.utc
KOLKATA = zoneinfo.ZoneInfo("Asia/Kolkata")  # +05:30, no DST
# The README promises a reset within 1 s of budget_reset_at (accountd looks every
# 250 ms); that figure is for an idle machine. This functional test sees the reset
# through a mysql client started every 50 ms, on 2 cores shared by up to 7 test
# workers, maybe under AddressSanitizer, where one poll alone can take a second.
# 5 s (20 looks) holds there and still fails a reset that waits for traffic
# (none is sent) or for a slower loop.
LATE_BOUND_S = 5.0


def utc(t):
    return datetime.datetime.fromtimestamp(t, UTC)


def sql_time(t):
    return utc(t).strftime("%Y-%m-%d %H:%M:%S")


def sql_dt(d):
    return d.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def local_midnight(t, zone, days=0):
    """Midnight starting the local day `days` after t's day in zone, in UTC."""
    d = datetime.datetime.fromtimestamp(t, zone).date() + datetime.timedelta(days=days)
    return datetime.datetime(d.year, d.month, d.day, tzinfo=zone).astimezone(UTC)


def local_first(t, zone, months=0):
    """00:00 of the 1st of the local month `months` after t's month in zone, in UTC."""
    local = datetime.datetime.fromtimestamp(t, zone)
    y, m = divmod(local.year * 12 + local.month - 1 + months, 12)
    return datetime.datetime(y, m + 1, 1, tzinfo=zone).astimezone(UTC)


def next_midnight(t):
    return local_midnight(t, UTC, 1)


class ResetHelpers:
    """Keys, events and rows; for a StackTestCase."""

    def new_key(self, alias, duration=None):
        """A key (made through reportd); returns (key, token, answer)."""
        body = {"key_alias": alias, "user_id": "u-" + alias}
        if duration is not None:
            body["budget_duration"] = duration
        st, _, b = self.stack.report("POST", "/key/generate", body, key=MASTER_KEY)
        self.assertEqual(st, 200, b)
        return b["key"], b["token"], b

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

    def in_one_period(self, body, period_of):
        """Runs body(started) and returns (started, its result), started being
        time.time() before it ran; runs it once more when period_of (a local
        day or month of a Unix time) changed meanwhile, as the expectations
        computed from `started` then moved. A second change within seconds
        cannot happen, so the asserts that follow always run."""
        for _ in range(2):
            started = time.time()
            out = body(started)
            if period_of(time.time()) == period_of(started):
                break
            print("%s: the period changed while it ran; once more" % self.id(), file=sys.stderr)
        return started, out


class ResetTest(ResetHelpers, harness.StackTestCase):
    stack_options = {"accountd_instances": 2,
                     "tollgate": {"proxyd": {"event_resend_ms": 300}}}

    def test_key_reset_on_time_and_exact(self):
        _, token, _ = self.new_key("daily")
        self.send(token, 1000, 1000)
        self.assertGreater(Decimal(self.key_row(token)[0]), 0)
        at = self.due_in(2, where="token = '%s'" % token)
        row, late = self.wait_reset(token, at)
        self.assertLess(late, LATE_BOUND_S, "reset %.2f s late" % late)
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
        _, token, _ = self.new_key("race")
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
        # The pass of the instance that lost the race may still run, and a reset
        # is logged after its commit: stopped (SIGTERM, exit 0), an instance has
        # finished and logged every pass it began. Started again afterwards.
        stopped, logged = [], 0
        try:
            for name in self.stack.accountd_names():
                stopped.append(name)
                self.stack.stop_one(name)
            for name in stopped:
                for line in self.stack.daemon_log(name).read_text().splitlines():
                    if "api_keys: " in line and "reset" in line:
                        logged += int(line.split("api_keys: ")[1].split()[0])
        finally:
            for name in stopped:
                self.stack.restart(name)
        # over the stack's life: every key reset so far, each exactly once
        reset_keys = int(self.stack.sql_value("SELECT COUNT(*) FROM api_keys"
                                              " WHERE budget_period_start IS NOT NULL"))
        self.assertGreaterEqual(reset_keys, 20)
        self.assertEqual(logged, reset_keys)

    def test_shared_budget_resets_its_end_users(self):
        key, token, _ = self.new_key("shared")
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
        late = time.time() - at
        self.assertLess(late, LATE_BOUND_S, "reset %.2f s late" % late)
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
        def missed(now):
            _, token, _ = self.new_key("missed-" + uuid.uuid4().hex[:8])
            self.stack.sql("UPDATE api_keys SET budget_duration = '1d', budget_reset_at = '%s'"
                           " WHERE token = '%s'" % (sql_time(now - 3 * 86400), token))
            return wait_for(lambda: (lambda r: r if r[1] else None)(self.key_row(token)), 10)
        now, row = self.in_one_period(missed, lambda t: utc(t).date())
        self.assertEqual(row[1][:19], sql_dt(local_midnight(now, UTC)), row)
        self.assertEqual(row[2][:19], sql_dt(local_midnight(now, UTC, 1)), row)

    def test_bad_duration_is_refused_loudly(self):
        _, token, _ = self.new_key("baddur")
        self.stack.sql("UPDATE api_keys SET budget_duration = '3 fortnights',"
                       " budget_reset_at = '%s' WHERE token = '%s'"
                       % (sql_time(time.time() - 1), token))
        wait_for(lambda: self.stack.sql_value("SELECT budget_reset_at IS NULL FROM api_keys"
                                              " WHERE token = '%s'" % token) == "1", 5)
        logs = "".join(self.stack.daemon_log(n).read_text() for n in ("accountd", "accountd-2"))
        self.assertIn("'3 fortnights' is not a duration", logs)


class TimeZoneResetTest(ResetHelpers, harness.StackTestCase):
    """Budget periods on the calendar of litellm_settings.timezone: Asia/Kolkata."""
    stack_options = {"extra_config": {"litellm_settings": {"timezone": "Asia/Kolkata"}}}

    def local_day(self, t):
        return datetime.datetime.fromtimestamp(t, KOLKATA).date()

    def local_month(self, t):
        d = self.local_day(t)
        return d.year, d.month

    def assertResetAt(self, token, answer, want):
        """The key's budget_reset_at, in reportd's answer and in its row, is want."""
        self.assertEqual(datetime.datetime.fromisoformat(answer["budget_reset_at"]), want,
                         answer)
        self.assertEqual(self.key_row(token)[2][:19], sql_dt(want))

    def test_new_keys_end_their_period_at_local_midnight_and_on_the_local_1st(self):
        def make(now):
            return self.new_key("tz-day-" + uuid.uuid4().hex[:8], "1d")
        now, (_, token, answer) = self.in_one_period(make, self.local_day)
        self.assertResetAt(token, answer, local_midnight(now, KOLKATA, 1))

        def make_monthly(now):
            return self.new_key("tz-month-" + uuid.uuid4().hex[:8], "1mo")
        now, (_, token, answer) = self.in_one_period(make_monthly, self.local_month)
        self.assertResetAt(token, answer, local_first(now, KOLKATA, 1))

    def test_due_reset_runs_and_the_next_period_ends_at_local_midnight(self):
        _, token, _ = self.new_key("tz-due", "1d")
        self.send(token, 1000, 1000)
        self.assertEqual(Decimal(self.key_row(token)[0]), harness.expected_cost(1000, 1000))
        at = self.due_in(2, where="token = '%s'" % token)
        row, late = self.wait_reset(token, at)
        self.assertLess(late, LATE_BOUND_S, "reset %.2f s late" % late)
        self.assertEqual(Decimal(row[0]), 0)
        self.assertEqual(row[2][:19], sql_dt(local_midnight(at, KOLKATA, 1)), row)
        self.assertEqual(invariants.check(self.stack), [])

    def missed_reset(self, duration, boundary, period_of, ago):
        """A key of `duration` whose reset was missed (due `ago` seconds back),
        with a request started a second before and one a second after the
        boundary of the current period, boundary(now). Returns (now, its row
        after the reset)."""
        def run(now):
            b = boundary(now).timestamp()
            _, token, _ = self.new_key("tz-missed-" + uuid.uuid4().hex[:8], duration)
            self.send(token, 700, 700, start=b - 1)    # the last period's: logs only
            self.send(token, 300, 300, start=b + 1)    # the current period's
            due = sql_time(now - ago)
            self.stack.sql("UPDATE api_keys SET budget_reset_at = '%s' WHERE token = '%s'"
                           % (due, token))
            return wait_for(lambda: (lambda r: r if r[2][:19] != due else None)(
                self.key_row(token)), 10, message="no reset of the key due at " + due)
        return self.in_one_period(run, period_of)

    def test_missed_daily_reset_starts_at_the_last_local_midnight(self):
        now, row = self.missed_reset("1d", lambda t: local_midnight(t, KOLKATA),
                                     self.local_day, 3 * 86400)
        self.assertEqual(row[1][:19], sql_dt(local_midnight(now, KOLKATA)), row)
        self.assertEqual(row[2][:19], sql_dt(local_midnight(now, KOLKATA, 1)), row)
        self.assertEqual(Decimal(row[0]), harness.expected_cost(300, 300), row)
        self.assertEqual(invariants.check(self.stack), [])

    def test_missed_monthly_reset_starts_on_the_local_1st(self):
        now, row = self.missed_reset("1mo", lambda t: local_first(t, KOLKATA),
                                     self.local_month, 70 * 86400)
        self.assertEqual(row[1][:19], sql_dt(local_first(now, KOLKATA)), row)
        self.assertEqual(row[2][:19], sql_dt(local_first(now, KOLKATA, 1)), row)
        self.assertEqual(Decimal(row[0]), harness.expected_cost(300, 300), row)
        self.assertEqual(invariants.check(self.stack), [])


if __name__ == "__main__":
    unittest.main()
