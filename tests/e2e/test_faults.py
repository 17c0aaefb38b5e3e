"""test_faults.py - crashes do not lose or double-count a billable request.

- kill -9 accountd in the middle of 1,000 requests, restart it later;
- kill -9 proxyd while events wait in its spool (accountd down), restart both;
- accountd stalled (SIGSTOP) with its connection up: proxyd re-sends what got no
  ack, and accountd, continued, gets every event twice or more but counts it once;
- accountd down until proxyd's spool reaches its cap: proxyd serves, warns near
  the cap, then refuses new requests (503) and reports it in readiness; when
  accountd is back everything answered is delivered and requests are accepted;
- two accountd instances share one proxyd's events, one is killed midway and
  comes back: nothing lost, nothing twice, and both committed events;
- MariaDB killed (kill -9) under load and started again 20 s later: proxyd keeps
  answering what needs no database, refuses (503, saying why) a key whose rows it
  must read, and serves it again once MariaDB is back; a load thread's exception
  fails the test; accountd retries until MariaDB is back, and the ledger, counters
  and rollups are complete and exact;
in every case every request that got a 2xx is in spend_logs exactly once, its
spend and its x-litellm-response-cost both equal its tokens times the prices of
libtollgate/data/prices.json (Decimal, computed here), and the key's spend equals
the sum of its log rows to the last digit.

Run from the repo root:  python3 -m unittest -v tests/e2e/test_faults.py
"""

import http.client
import json
import os
import re
import signal
import sys
import threading
import time
import unittest
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import invariants  # noqa: E402
from harness import MASTER_KEY, wait_for  # noqa: E402

DELIVERY_TIMEOUT = 30.0
SPOOL_MAX = 1 << 20


class Client:
    """One keep-alive HTTP/1.1 connection to proxyd."""

    def __init__(self, port, key):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.key = key
        self.body = b""  # of the last answer

    def chat(self, prompt, completion, **fields):
        body = json.dumps(dict({"model": "llama3", "messages": [{"role": "user", "content": "x"}],
                                "mock_usage": {"prompt_tokens": prompt,
                                               "completion_tokens": completion}}, **fields))
        self.conn.request("POST", "/v1/chat/completions", body,
                          {"Authorization": "Bearer " + self.key,
                           "Content-Type": "application/json"})
        resp = self.conn.getresponse()
        self.body = resp.read()
        return resp.status, resp.getheader("x-litellm-call-id"), resp.getheader(
            "x-litellm-response-cost")

    def error_message(self):
        """The message of the last answer's OpenAI-shaped error ("" if it has none)."""
        try:
            return json.loads(self.body)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            return ""

    def close(self):
        self.conn.close()


class LedgerChecks:
    def new_key(self, alias):
        status, _, body = self.stack.report("POST", "/key/generate", {"key_alias": alias},
                                            key=MASTER_KEY)
        self.assertEqual(status, 200, body)
        return body["key"], body["token"]

    def assert_ledger(self, token, answered):
        """answered: {request id: (prompt tokens, completion tokens, header cost)} of
        every 2xx. Ledger and header are each checked against the price file."""
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
        expected = {rid: invariants.list_cost(p, c) for rid, (p, c, _) in answered.items()}
        for rid, spend in rows:
            self.assertEqual(Decimal(spend), expected[rid], ("ledger", rid, answered[rid]))
            self.assertEqual(Decimal(answered[rid][2]), expected[rid],
                             ("header", rid, answered[rid]))
        total = s.sql_value("SELECT SUM(spend) FROM spend_logs WHERE api_key = '%s'" % token)
        key_spend = s.sql_value("SELECT spend FROM api_keys WHERE token = '%s'" % token)
        self.assertEqual(Decimal(key_spend), Decimal(total))
        self.assertEqual(Decimal(total), sum(expected.values()))
        self.assertEqual(invariants.check(s), [])


class FaultTest(LedgerChecks, harness.StackTestCase):
    # quick resends so the tests do not wait on the default 2 s; a small spool to fill
    stack_options = {"tollgate": {"proxyd": {"event_resend_ms": 300,
                                             "spool_max_bytes": SPOOL_MAX,
                                             "spool_segment_bytes": SPOOL_MAX // 16}}}

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
                p, c = i % 50 + 1, i % 17 + 1
                status, rid, cost = client.chat(p, c)
                self.assertEqual(status, 200)
                answered[rid] = (p, c, cost)
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
                p, c = i % 40 + 1, i % 13 + 1
                status, rid, cost = client.chat(p, c)
                self.assertEqual(status, 200)  # proxyd keeps serving
                answered[rid] = (p, c, cost)
            # no ack can come: past the resend timeout (300 ms) proxyd sends them again
            wait_for(lambda: log.read_text(errors="replace").count(
                "usage events without an ack") > resends_before, 10,
                message="proxyd did not re-send the unacknowledged events")
            time.sleep(1.0)  # and again, with backoff
        finally:
            os.kill(pid, signal.SIGCONT)
            client.close()
        self.assert_ledger(token, answered)

    def test_spool_cap_with_accountd_down(self):
        key, token = self.new_key("spool-cap")
        s = self.stack
        self.stack.stop_one("accountd")
        usage = (17, 4)
        body = {"model": "llama3", "messages": [{"role": "user", "content": "x"}],
                "mock_usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1]},
                "metadata": {"note": "n" * 4000}}  # ~4 KB events: the cap after ~250
        answered, refusal = {}, None
        try:
            for _ in range(2000):
                st, h, b = s.proxy("POST", "/v1/chat/completions", body, key)
                if st != 200:
                    refusal = (st, b)
                    break
                answered[h["x-litellm-call-id"]] = usage + (h["x-litellm-response-cost"],)
            self.assertIsNotNone(refusal, "the spool never reached its cap")
            self.assertEqual(refusal[0], 503, refusal)
            self.assertErrorShape(refusal[1], 503, type_="service_unavailable")
            self.assertIn("spool is full", refusal[1]["error"]["message"])
            self.assertGreater(len(answered), 100)
            log = s.daemon_log("proxyd").read_text(errors="replace")
            self.assertIn("accountd is not keeping up or is unreachable", log)
            st, _, ready = s.proxy("GET", "/health/readiness")
            self.assertEqual(st, 503, ready)
            self.assertGreaterEqual(ready["spool_bytes"], SPOOL_MAX)
            self.assertEqual(ready["unacked_events"], len(answered))
        finally:
            s.restart("accountd")
        self.assert_ledger(token, answered)
        wait_for(lambda: s.proxy("GET", "/health/readiness")[0] == 200, 10,
                 message="readiness did not recover after the spool drained")
        st, _, b = s.proxy("POST", "/v1/chat/completions", body, key)
        self.assertEqual(st, 200, b)

    def test_mariadb_down_20s_under_load(self):
        key, token = self.new_key("db-outage")
        s = self.stack
        stop = threading.Event()
        answered = {}  # request id -> (prompt, completion, header cost) of every 2xx
        refused = []   # (client, status, phase, error message) of every other answer
        errors = []    # what a load thread raised: reported below, never lost with the thread
        served = {"master": 0, "tagged": 0}  # 2xx per client
        phase = ["up"]  # "up", then "down" once MariaDB is killed, "back" once it started

        def load(name, k):
            c = Client(s.proxyd_port, k)
            i = 0
            try:
                while not stop.is_set():
                    i += 1
                    extra = {"user": "outage-cust-%d" % (i % 5),
                             "metadata": {"tags": ["outage-%d" % (i % 3)]}} \
                        if name == "tagged" else {}
                    p, comp = i % 40 + 1, i % 9 + 1
                    at = phase[0]
                    st, rid, cost = c.chat(p, comp, **extra)
                    if st == 200:
                        answered[rid] = (p, comp, cost)
                        served[name] += 1
                    else:
                        refused.append((name, st, at, c.error_message()))
                    time.sleep(0.005)  # a steady load, not a flood
            except Exception as e:  # e.g. proxyd closed the connection
                errors.append("%s client, request %d, phase %s: %r" % (name, i, phase[0], e))
            finally:
                c.close()

        def served_again(name, n):
            def check():
                if errors:  # a dead load thread would make this wait in vain
                    raise AssertionError("load thread failed: %s" % errors)
                return served[name] > n
            return check

        # the master key needs no database; the virtual key with an end user and tags
        # needs rows the database serves, so it is refused (503) while MariaDB is away
        # (its cached rows are trusted for key_cache_ttl_ms + 1 s, then fetched again).
        # accountd cannot commit meanwhile: the small spool of this class may fill, and
        # then every request is refused for that (503 too, another message)
        threads = [threading.Thread(target=load, args=("master", MASTER_KEY)),
                   threading.Thread(target=load, args=("tagged", key))]
        for t in threads:
            t.start()
        try:
            for name in served:  # both clients are being served (rows cached) before the crash
                wait_for(served_again(name, 50), 30, message="%s client not served" % name)
            s.crash_mariadb()
            phase[0] = "down"
            during = served["master"]
            time.sleep(20)  # the outage: its length is what this test is about
            served_while_down = served["master"] - during
            s.start_mariadb()
            phase[0] = "back"
            # the virtual key is served again once its rows can be read
            tagged_back = served["tagged"]
            wait_for(served_again("tagged", tagged_back), 2 * DELIVERY_TIMEOUT,
                     message="the virtual key was not served again after MariaDB came back: %s"
                     % refused[-5:])
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(errors, [], "a load thread raised")
        self.assertGreater(served_while_down, 100, "proxyd stopped serving without MariaDB")
        self.assertEqual({r[1] for r in refused}, {503}, refused[:20])  # they happened, all 503
        for_db = [r for r in refused if "database cannot be reached" in r[3]]
        self.assertTrue([r for r in for_db if r[0] == "tagged" and r[2] == "down"],
                        "the key that needs the database was never refused for it while MariaDB"
                        " was down: %s" % sorted({r[3] for r in refused}))
        self.assertEqual([r for r in for_db if r[0] == "master"], [],
                         "the master key was refused for the database")
        self.assertEqual([r for r in refused if r not in for_db and "spool is full" not in r[3]],
                         [], "refused for another reason")
        wait_for(lambda: int(s.sql_value("SELECT COUNT(*) FROM spend_logs WHERE request_id IN (%s)"
                                         % ",".join("'%s'" % r for r in answered))) == len(answered),
                 DELIVERY_TIMEOUT, message="not every answered request reached the ledger")
        rows = s.sql("SELECT request_id, spend FROM spend_logs WHERE request_id IN (%s)"
                     % ",".join("'%s'" % r for r in answered))
        self.assertEqual(sorted(r[0] for r in rows), sorted(answered))
        for rid, spend in rows:  # each priced from its tokens and the price file
            p, comp, header = answered[rid]
            self.assertEqual(Decimal(spend), invariants.list_cost(p, comp), (rid, p, comp))
            self.assertEqual(Decimal(header), invariants.list_cost(p, comp), (rid, p, comp))
        self.assertEqual(invariants.check(s), [])
        log = s.daemon_log("accountd").read_text(errors="replace")
        self.assertIn("cannot commit a batch", log)
        self.assertIn("MariaDB writes work again", log)

    def test_proxyd_killed_with_events_in_its_spool(self):
        key, token = self.new_key("kill-proxyd")
        self.stack.stop_one("accountd")  # events can only wait in the spool now
        client = Client(self.stack.proxyd_port, key)
        answered = {}
        try:
            for i in range(50):
                status, rid, cost = client.chat(100 + i, 10)
                self.assertEqual(status, 200)
                answered[rid] = (100 + i, 10, cost)
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


class TwoAccountdTest(LedgerChecks, harness.StackTestCase):
    stack_options = {"accountd_instances": 2, "tollgate": {"proxyd": {"event_resend_ms": 300}}}

    def committed(self, name):
        """Events the accountd instance `name` committed since it started (its /metrics)."""
        port = self.stack.metrics_ports[self.stack.accountd_names().index(name)]
        _, _, text = self.stack.http("GET", port, "/metrics")
        m = re.search(r"^tollgate_accountd_events_committed_total (\d+)$", text, re.M)
        return int(m.group(1))

    def test_two_instances_share_events_and_one_is_killed(self):
        key, token = self.new_key("two-accountd")
        s = self.stack
        client = Client(s.proxyd_port, key)
        answered = {}
        try:
            for i in range(600):
                if i == 200:
                    s.crash("accountd-2")
                if i == 400:
                    s.restart("accountd-2")
                p, c = i % 30 + 1, i % 11 + 1
                status, rid, cost = client.chat(p, c)
                self.assertEqual(status, 200)
                answered[rid] = (p, c, cost)
            # proxyd reconnects to the restarted instance with ZeroMQ's backoff: go on
            # (10 s at most) until it has committed events of its own
            deadline = time.monotonic() + 10
            while self.committed("accountd-2") == 0 and time.monotonic() < deadline:
                status, rid, cost = client.chat(5, 5)
                self.assertEqual(status, 200)
                answered[rid] = (5, 5, cost)
        finally:
            client.close()
        self.assert_ledger(token, answered)
        # both instances committed events of their own (a clean stop logs how many)
        for name in ("accountd", "accountd-2"):
            s.stop_one(name)
            counts = re.findall(r"committed (\d+) events", s.daemon_log(name).read_text())
            self.assertTrue(counts and int(counts[-1]) > 0, "%s committed nothing: %s"
                            % (name, counts))


if __name__ == "__main__":
    unittest.main()
