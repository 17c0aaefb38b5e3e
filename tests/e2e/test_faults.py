"""test_faults.py - crashes do not lose or double-count a billable request.

- kill -9 accountd in the middle of 1,000 requests, restart it later;
- kill -9 proxyd while events wait in its spool (accountd down), restart both;
- accountd stalled (SIGSTOP) with its connection up: proxyd re-sends what got no
  ack, and accountd, continued, gets every event twice or more but counts it once;
in every case every request that got a 2xx is in spend_logs exactly once and
the key's spend equals the sum of its log rows to the last digit.

Run from the repo root:  python3 -m unittest -v tests/e2e/test_faults.py
"""

import http.client
import json
import os
import signal
import sys
import time
import unittest
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import MASTER_KEY, wait_for  # noqa: E402

DELIVERY_TIMEOUT = 30.0


class Client:
    """One keep-alive HTTP/1.1 connection to proxyd."""

    def __init__(self, port, key):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.key = key

    def chat(self, prompt, completion):
        body = json.dumps({"model": "llama3", "messages": [{"role": "user", "content": "x"}],
                           "mock_usage": {"prompt_tokens": prompt, "completion_tokens": completion}})
        self.conn.request("POST", "/v1/chat/completions", body,
                          {"Authorization": "Bearer " + self.key,
                           "Content-Type": "application/json"})
        resp = self.conn.getresponse()
        resp.read()
        return resp.status, resp.getheader("x-litellm-call-id"), resp.getheader(
            "x-litellm-response-cost")

    def close(self):
        self.conn.close()


class FaultTest(harness.StackTestCase):
    # quick resends so the tests do not wait on the default 2 s
    stack_options = {"tollgate": {"proxyd": {"event_resend_ms": 300}}}

    def new_key(self, alias):
        status, _, body = self.stack.report("POST", "/key/generate", {"key_alias": alias},
                                            key=MASTER_KEY)
        self.assertEqual(status, 200, body)
        return body["key"], body["token"]

    def assert_ledger(self, token, answered):
        """answered: {request id: header cost} of every 2xx."""
        s = self.stack

        def all_there():
            n = int(s.sql_value("SELECT COUNT(*) FROM spend_logs WHERE api_key = '%s'" % token))
            return n >= len(answered)

        wait_for(all_there, DELIVERY_TIMEOUT,
                 message="not every answered request reached the ledger")
        rows = s.sql("SELECT request_id, spend FROM spend_logs WHERE api_key = '%s'" % token)
        ids = [r[0] for r in rows]
        self.assertEqual(len(ids), len(set(ids)))
        self.assertEqual(set(ids), set(answered), "ledger rows != answered requests")
        for rid, spend in rows:
            self.assertEqual(Decimal(spend), Decimal(answered[rid]), rid)
        total = s.sql_value("SELECT SUM(spend) FROM spend_logs WHERE api_key = '%s'" % token)
        key_spend = s.sql_value("SELECT spend FROM api_keys WHERE token = '%s'" % token)
        self.assertEqual(Decimal(key_spend), Decimal(total))
        self.assertEqual(Decimal(total), sum(Decimal(c) for c in answered.values()))

    def test_accountd_killed_during_1000_requests(self):
        key, token = self.new_key("kill-accountd")
        client = Client(self.stack.proxyd_port, key)
        answered = {}
        try:
            for i in range(1000):
                if i == 300:
                    self.stack.crash("accountd")
                if i == 700:
                    self.stack.restart("accountd")
                status, rid, cost = client.chat(i % 50 + 1, i % 17 + 1)
                self.assertEqual(status, 200)
                answered[rid] = cost
        finally:
            client.close()
        self.assertEqual(len(answered), 1000)
        self.assert_ledger(token, answered)

    def test_accountd_stalled_gets_resends_and_counts_once(self):
        key, token = self.new_key("stall-accountd")
        pid = self.stack.daemon("accountd").proc.pid
        log = self.stack.daemon_log("proxyd")
        resends_before = log.read_text(errors="replace").count("usage events without an ack")
        client = Client(self.stack.proxyd_port, key)
        answered = {}
        os.kill(pid, signal.SIGSTOP)
        try:
            for i in range(200):
                status, rid, cost = client.chat(i % 40 + 1, i % 13 + 1)
                self.assertEqual(status, 200)  # proxyd keeps serving
                answered[rid] = cost
            # no ack can come: past the resend timeout (300 ms) proxyd sends them again
            wait_for(lambda: log.read_text(errors="replace").count(
                "usage events without an ack") > resends_before, 10,
                message="proxyd did not re-send the unacknowledged events")
            time.sleep(1.0)  # and again, with backoff
        finally:
            os.kill(pid, signal.SIGCONT)
            client.close()
        self.assert_ledger(token, answered)

    def test_proxyd_killed_with_events_in_its_spool(self):
        key, token = self.new_key("kill-proxyd")
        self.stack.stop_one("accountd")  # events can only wait in the spool now
        client = Client(self.stack.proxyd_port, key)
        answered = {}
        try:
            for i in range(50):
                status, rid, cost = client.chat(100 + i, 10)
                self.assertEqual(status, 200)
                answered[rid] = cost
        finally:
            client.close()
        spool = self.stack.dir / "spool"
        self.assertTrue(any(f.stat().st_size > 0 for f in spool.glob("*.spool")))
        self.stack.crash("proxyd")
        self.stack.restart("accountd")
        self.assertEqual(self.stack.sql_value(
            "SELECT COUNT(*) FROM spend_logs WHERE api_key = '%s'" % token), "0")
        self.stack.restart("proxyd")
        self.assert_ledger(token, answered)
        # once delivered and acked, the segments written before the crash go away;
        # only the segment proxyd appends to now remains
        wait_for(lambda: len(list(spool.glob("*.spool"))) == 1, 10,
                 message="acked segments stayed in the spool: %s" % list(spool.glob("*")))


if __name__ == "__main__":
    unittest.main()
