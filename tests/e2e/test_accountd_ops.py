"""test_accountd_ops.py - accountd in operation: its metrics, SIGHUP and SIGTERM.

- GET /metrics parses as Prometheus text, and its counters match what was sent:
  events received = committed = new rows in spend_logs, one batch-size
  observation per committed batch, one ledger-lag observation per event;
- SIGHUP with a changed price file: events committed after the reload are priced
  with the new prices, those before with the old ones (exact decimals);
- SIGHUP with a broken price file or broken YAML: refused with an error line, the
  old prices stay in force, accountd keeps running; a setting only a restart
  applies is logged as such;
- SIGTERM while proxyd sends a steady stream of requests: accountd exits 0, and
  once it is restarted every request proxyd answered is in spend_logs exactly once;
- SIGTERM while a commit waits on a row lock: accountd gives up after
  tollgate.accountd.shutdown_grace_ms without acknowledging it, and after a
  restart nothing is lost or counted twice;
- maximum_spend_logs_retention_period (set by a SIGHUP): the log rows older than
  it are deleted, and the rollups (daily_spend, daily_tag_spend, daily_tag_totals,
  usage_rollup) and the spend counters keep their values: the same rows as before,
  equal to the sums of the logs computed before the deletion.

Run from the repo root:  python3 -m unittest -v tests/e2e/test_accountd_ops.py
"""

import collections
import copy
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))

import harness  # noqa: E402
import invariants  # noqa: E402
from accountd_bench import seed as seed_owners  # noqa: E402  (keys, users, teams)
from harness import MASTER_KEY, wait_for  # noqa: E402
from test_faults import Client  # noqa: E402

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # python3-prometheus-client, seen from a python3 outside the system's
    sys.path.append("/usr/lib/python3/dist-packages")
    from prometheus_client.parser import text_string_to_metric_families

MODEL = "groq/llama-3.1-8b-instant"  # the model group llama3 of the harness
PRICES = harness.REPO / "libtollgate" / "data" / "prices.json"
GRACE_MS = 2000
LEDGER_TIMEOUT = 30.0


def cost(price, prompt, completion):
    return Decimal(price[0]) * prompt + Decimal(price[1]) * completion


class AccountdOpsTest(harness.StackTestCase):
    @classmethod
    def setUpClass(cls):
        # accountd reads a copy of the price map the tests edit
        cls.price_dir = Path(tempfile.mkdtemp(prefix="tg-prices-", dir="/tmp"))
        cls.addClassCleanup(shutil.rmtree, str(cls.price_dir), True)
        cls.price_path = cls.price_dir / "prices.json"
        cls.original_prices = PRICES.read_text()
        cls.price_path.write_text(cls.original_prices)
        m = json.loads(cls.original_prices)["models"][MODEL]
        cls.original = (m["input_cost_per_token"], m["output_cost_per_token"])
        cls.stack_options = {"tollgate": {"price_file": str(cls.price_path),
                                          "accountd": {"shutdown_grace_ms": GRACE_MS}}}
        super().setUpClass()
        cls.original_config = cls.stack.config_path.read_text()

    def tearDown(self):
        # every test leaves the files as they were and accountd running on them
        changed = (self.price_path.read_text() != self.original_prices or
                   self.stack.config_path.read_text() != self.original_config)
        self.price_path.write_text(self.original_prices)
        self.stack.config_path.write_text(self.original_config)
        if changed:
            self.hup("reloaded")

    # -- helpers

    def new_key(self, alias):
        status, _, body = self.stack.report("POST", "/key/generate", {"key_alias": alias},
                                            key=MASTER_KEY)
        self.assertEqual(status, 200, body)
        return body["key"], body["token"]

    def log(self):
        return self.stack.daemon_log("accountd").read_text(errors="replace")

    def hup(self, expect):
        """SIGHUP accountd; waits for the reload's outcome line and returns the
        log written since (expect: "reloaded" or "reload refused")."""
        before = self.log()
        n = before.count("reloaded ") + before.count("reload refused")
        self.stack.daemon("accountd").proc.send_signal(signal.SIGHUP)

        def done():
            text = self.log()
            return text.count("reloaded ") + text.count("reload refused") > n and text

        text = wait_for(done, 10, message="accountd did not log a reload")
        new = text[len(before):]
        self.assertIn(expect, new)
        self.assertIsNone(self.stack.daemon("accountd").proc.poll(), "accountd exited")
        return new

    def set_price(self, price):
        doc = json.loads(self.original_prices)
        doc["models"][MODEL]["input_cost_per_token"] = price[0]
        doc["models"][MODEL]["output_cost_per_token"] = price[1]
        self.price_path.write_text(json.dumps(doc))

    def send(self, key, usages):
        """One request per (prompt, completion); returns [(request id, usage)]."""
        client = Client(self.stack.proxyd_port, key)
        out = []
        try:
            for p, c in usages:
                status, rid, _ = client.chat(p, c)
                self.assertEqual(status, 200)
                out.append((rid, (p, c)))
        finally:
            client.close()
        return out

    def ledger(self, rids):
        """{request id: spend} once every one of rids is in spend_logs."""
        ids = ",".join("'%s'" % r for r in rids)
        query = "SELECT request_id, spend FROM spend_logs WHERE request_id IN (%s)" % ids
        rows = wait_for(lambda: (lambda r: len(r) == len(rids) and r)(self.stack.sql(query)),
                        LEDGER_TIMEOUT, message="not every request reached spend_logs")
        return {r[0]: Decimal(r[1]) for r in rows}

    def assert_priced(self, sent, price):
        spend = self.ledger([rid for rid, _ in sent])
        for rid, (p, c) in sent:
            self.assertEqual(spend[rid], cost(price, p, c), (rid, p, c, price))

    def scrape(self):
        """{(sample name, ((label, value), ...)): value} and the families by name."""
        st, headers, text = self.stack.http("GET", self.stack.metrics_ports[0], "/metrics")
        self.assertEqual(st, 200, text)
        self.assertTrue(headers["content-type"].startswith("text/plain; version=0.0.4"))
        samples, families = {}, {}
        for fam in text_string_to_metric_families(text):
            families[fam.name] = fam
            for s in fam.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return samples, families

    @staticmethod
    def val(samples, name, **labels):
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def assert_histogram(self, samples, families, name):
        """Its buckets are cumulative, ascending and end at +Inf = _count."""
        self.assertEqual(families[name].type, "histogram")
        buckets = sorted((float(dict(k[1])["le"]), v) for k, v in samples.items()
                         if k[0] == name + "_bucket")
        self.assertGreater(len(buckets), 5)
        self.assertEqual(buckets[-1][0], float("inf"))
        counts = [v for _, v in buckets]
        self.assertEqual(counts, sorted(counts), name)
        self.assertEqual(counts[-1], self.val(samples, name + "_count"), name)

    # -- tests

    def test_metrics_match_the_events_sent(self):
        s = self.stack
        key, _ = self.new_key("metrics")
        before, _ = self.scrape()
        rows_before = int(s.sql_value("SELECT COUNT(*) FROM spend_logs"))
        n = 120
        sent = []

        def send_some(t):  # three clients at once, so batches hold several events
            sent.extend(self.send(key, [(10 + i, 5 + t) for i in range(n // 3)]))

        threads = [threading.Thread(target=send_some, args=(t,)) for t in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len(sent), n)
        wait_for(lambda: int(s.sql_value("SELECT COUNT(*) FROM spend_logs")) == rows_before + n,
                 LEDGER_TIMEOUT, message="not every request reached spend_logs")
        name = "tollgate_accountd_events_committed_total"
        wait_for(lambda: self.val(self.scrape()[0], name) - self.val(before, name) == n, 5,
                 message="the committed counter did not reach the rows in spend_logs")
        after, families = self.scrape()

        def delta(metric, **labels):
            return self.val(after, metric, **labels) - self.val(before, metric, **labels)

        rows = int(s.sql_value("SELECT COUNT(*) FROM spend_logs")) - rows_before
        self.assertEqual(rows, n)
        self.assertEqual(delta("tollgate_accountd_events_received_total"), n)
        self.assertEqual(delta("tollgate_accountd_events_committed_total"), n)
        self.assertEqual(delta("tollgate_accountd_log_rows_inserted_total"), n)
        self.assertEqual(delta("tollgate_accountd_duplicate_events_total"), 0)
        batches = delta("tollgate_accountd_batches_committed_total")
        self.assertGreaterEqual(batches, 1)
        self.assertEqual(delta("tollgate_accountd_batch_events_count"), batches)
        self.assertEqual(delta("tollgate_accountd_batch_events_sum"), n)
        self.assertEqual(delta("tollgate_accountd_acks_sent_total"), batches)  # one proxyd
        self.assertEqual(self.val(after, "tollgate_accountd_ack_failures_total"), 0)
        self.assertGreaterEqual(delta("tollgate_accountd_commit_duration_seconds_count"), batches)
        self.assertEqual(delta("tollgate_accountd_ledger_lag_seconds_count"), n)
        lag_sum = delta("tollgate_accountd_ledger_lag_seconds_sum")
        self.assertTrue(0 <= lag_sum / n < 10, lag_sum)
        self.assertTrue(0 <= self.val(after, "tollgate_accountd_last_batch_lag_seconds") < 10)
        self.assertEqual(families["tollgate_accountd_last_batch_lag_seconds"].type, "gauge")
        for counter in ("events_received", "events_committed", "acks_sent",
                        "duplicate_events", "config_reloads", "rejected_events"):
            self.assertEqual(families["tollgate_accountd_" + counter].type, "counter")
        for h in ("batch_events", "commit_duration_seconds", "ledger_lag_seconds"):
            self.assertEqual(delta("tollgate_accountd_%s_bucket" % h, le="+Inf"),
                             delta("tollgate_accountd_%s_count" % h))
            self.assert_histogram(after, families, "tollgate_accountd_" + h)

    def test_sighup_new_prices_apply_to_later_events(self):
        key, _ = self.new_key("reprice")
        old, new = ("0.000001", "0.000002"), ("0.0000003", "0.0000007")
        self.set_price(old)
        self.hup("reloaded")
        first = self.send(key, [(1000, 500), (7, 3), (123, 45)])
        self.assert_priced(first, old)
        self.set_price(new)
        out = self.hup("reloaded")
        self.assertIn(str(self.price_path), out)
        second = self.send(key, [(1000, 500), (7, 3), (123, 45)])
        self.assert_priced(second, new)
        self.assert_priced(first, old)  # committed rows never change
        self.assertNotEqual(cost(old, 7, 3), cost(new, 7, 3))
        samples, _ = self.scrape()
        self.assertGreaterEqual(self.val(samples, "tollgate_accountd_config_reloads_total",
                                         result="ok"), 2)

    def test_sighup_broken_price_file_is_refused(self):
        key, _ = self.new_key("bad-prices")
        price = ("0.000004", "0.000005")
        self.set_price(price)
        self.hup("reloaded")
        samples, _ = self.scrape()
        refused = self.val(samples, "tollgate_accountd_config_reloads_total", result="refused")
        self.price_path.write_text(self.original_prices[:5000])  # cut short: not JSON
        out = self.hup("reload refused")
        self.assertIn("cannot load prices", out)
        self.assertIn("the running configuration and prices stay in force", out)
        self.assert_priced(self.send(key, [(100, 10), (3, 9)]), price)
        doc = json.loads(self.original_prices)  # JSON, but a price that is not a decimal
        doc["models"][MODEL]["input_cost_per_token"] = "cheap"
        self.price_path.write_text(json.dumps(doc))
        out = self.hup("reload refused")
        self.assertIn("input_cost_per_token", out)
        self.assert_priced(self.send(key, [(11, 22)]), price)
        samples, _ = self.scrape()
        self.assertEqual(self.val(samples, "tollgate_accountd_config_reloads_total",
                                  result="refused"), refused + 2)

    def test_sighup_broken_yaml_is_refused(self):
        s = self.stack
        key, _ = self.new_key("bad-yaml")
        price, later = ("0.000006", "0.000007"), ("0.00000001", "0.00000002")
        self.set_price(price)
        self.hup("reloaded")
        # a broken config: neither it nor the price file it names is taken
        self.set_price(later)
        s.config_path.write_text(self.original_config + "model_list: [ {\n")
        out = self.hup("reload refused")
        self.assertIn(str(s.config_path), out)
        self.assert_priced(self.send(key, [(50, 60), (1, 2)]), price)
        # a valid one: its prices apply; what needs a restart is said so, and not applied
        cfg = json.loads(json.dumps(s.config))
        cfg["tollgate"]["accountd"]["writers"] = 1
        cfg["tollgate"]["accountd"]["batch_wait_ms"] = 1
        cfg["general_settings"]["database_url"] = cfg["general_settings"]["database_url"].replace(
            "127.0.0.1", "localhost")
        s.write_config("config.yaml", cfg)
        out = self.hup("reloaded")
        self.assertIn("tollgate.accountd.writers changed; takes effect after a restart", out)
        self.assertIn("general_settings.database_url changed; takes effect after a restart", out)
        self.assertNotIn("batch_wait_ms", out)  # applied
        self.assert_priced(self.send(key, [(50, 60), (1, 2)]), later)

    def test_sigterm_under_load_loses_nothing(self):
        s = self.stack
        key, token = self.new_key("sigterm")
        answered, errors = {}, []
        stop = threading.Event()

        def sender(seed):
            client = Client(s.proxyd_port, key)
            i = 0
            try:
                while not stop.is_set():
                    p, c = seed + i % 30, 1 + i % 7
                    status, rid, header_cost = client.chat(p, c)
                    if status != 200:
                        errors.append(status)
                    else:
                        answered[rid] = (p, c, header_cost)
                    i += 1
            except Exception as e:  # reported below
                errors.append(repr(e))
            finally:
                client.close()

        threads = [threading.Thread(target=sender, args=(k * 100 + 1,)) for k in range(3)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: len(answered) >= 150, 30, message="the stream did not start")
            at_term = len(answered)
            t0 = time.monotonic()
            s.stop_one("accountd")  # SIGTERM: must exit 0 (within 15 s)
            stopped_in = time.monotonic() - t0
            time.sleep(0.5)  # proxyd keeps answering, spooling the events
            s.restart("accountd")
            n = len(answered)
            wait_for(lambda: len(answered) >= n + 100, 30, message="the stream stalled")
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(errors, [])
        self.assertLess(stopped_in, GRACE_MS / 1000 + 3)
        log = self.log()
        self.assertIn("accountd stopping: committed", log)
        committed = int(log.split("accountd stopping: committed ")[1].split()[0])
        self.assertGreater(committed, 0)
        self.assertGreater(len(answered), at_term)
        wait_for(lambda: int(s.sql_value("SELECT COUNT(*) FROM spend_logs WHERE api_key = '%s'"
                                         % token)) >= len(answered), LEDGER_TIMEOUT,
                 message="not every answered request reached spend_logs")
        rows = s.sql("SELECT request_id, spend FROM spend_logs WHERE api_key = '%s'" % token)
        ids = [r[0] for r in rows]
        self.assertEqual(len(ids), len(set(ids)))
        self.assertEqual(set(ids), set(answered))
        # ledger and header each against the tokens times the price file's prices
        expected = {rid: cost(self.original, p, c) for rid, (p, c, _) in answered.items()}
        for rid, spend in rows:
            self.assertEqual(Decimal(spend), expected[rid], ("ledger", rid, answered[rid]))
            self.assertEqual(Decimal(answered[rid][2]), expected[rid],
                             ("header", rid, answered[rid]))
        key_spend = Decimal(s.sql_value("SELECT spend FROM api_keys WHERE token = '%s'" % token))
        self.assertEqual(key_spend, sum(expected.values()))
        self.assertEqual(invariants.check(s), [])

    def test_sigterm_with_a_stuck_commit_gives_up_after_the_grace(self):
        s = self.stack
        key, token = self.new_key("stuck")
        # events flow again (proxyd may still be re-sending to an accountd an earlier
        # test restarted, after a backoff): one request of this key is in the ledger
        self.ledger([rid for rid, _ in self.send(key, [(1, 1)])])
        # hold the key's row: the writer's spend update waits on the lock. The locker
        # takes a named lock once its FOR UPDATE has returned: the name in use proves
        # the row is locked (accountd's own transactions also hold row locks)
        locker = subprocess.Popen(["bash", str(harness.MARIADB_SCRIPT), "sql", str(s.db_dir),
                                   harness.DB_NAME], stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            locker.stdin.write(b"BEGIN; SELECT token FROM api_keys WHERE token = '%s' FOR UPDATE;"
                               b" SELECT GET_LOCK('tg_test_row_locked', 0);\n" % token.encode())
            locker.stdin.flush()
            wait_for(lambda: s.sql_value("SELECT IS_USED_LOCK('tg_test_row_locked')") is not None,
                     10, message="the lock was not taken")
            sent = self.send(key, [(20, 30), (40, 50)])
            wait_for(lambda: int(s.sql_value("SELECT COUNT(*) FROM information_schema.innodb_trx"
                                             " WHERE trx_state = 'LOCK WAIT'")) > 0, 30,
                     message="accountd's commit did not wait on the lock")
            t0 = time.monotonic()
            s.stop_one("accountd")  # exits 0 although a writer is stuck
            stopped_in = time.monotonic() - t0
        finally:
            locker.stdin.write(b"ROLLBACK;\n")
            locker.stdin.close()
            locker.wait(30)
        self.assertGreaterEqual(stopped_in, GRACE_MS / 1000 - 0.2)
        self.assertLess(stopped_in, GRACE_MS / 1000 + 3)
        self.assertIn("still being committed after shutdown_grace_ms", self.log())
        s.restart("accountd")
        spend = self.ledger([rid for rid, _ in sent])
        for rid, (p, c) in sent:
            self.assertEqual(spend[rid], cost(self.original, p, c))
        key_spend = Decimal(s.sql_value("SELECT spend FROM api_keys WHERE token = '%s'" % token))
        self.assertEqual(key_spend, sum(spend.values()) + cost(self.original, 1, 1))
        self.assertEqual(invariants.check(s), [])


# Every row of each rollup and counter table, as text, in a fixed order.
ROLLUPS = {
    "daily_spend": "SELECT day, HEX(group_key), api_key, user, team_id, end_user, model_group,"
                   " model, custom_llm_provider, spend, prompt_tokens, completion_tokens,"
                   " total_tokens, cache_read_input_tokens, cache_creation_input_tokens,"
                   " api_requests, successful_requests, failed_requests FROM daily_spend"
                   " ORDER BY day, group_key",
    "daily_tag_spend": "SELECT day, HEX(group_key), tag, api_key, model_group, model,"
                       " custom_llm_provider, spend, prompt_tokens, completion_tokens,"
                       " total_tokens, cache_read_input_tokens, cache_creation_input_tokens,"
                       " api_requests, successful_requests, failed_requests FROM daily_tag_spend"
                       " ORDER BY day, group_key",
    "daily_tag_totals": "SELECT * FROM daily_tag_totals ORDER BY day, tag",
    "usage_rollup": "SELECT * FROM usage_rollup ORDER BY grain, dim, period, group_id",
}
COUNTERS = {
    "api_keys": "SELECT token, spend FROM api_keys ORDER BY token",
    "internal_users": "SELECT user_id, spend FROM internal_users ORDER BY user_id",
    "teams": "SELECT team_id, spend FROM teams ORDER BY team_id",
    "team_members": "SELECT team_id, user_id, spend FROM team_members ORDER BY team_id, user_id",
    "customers": "SELECT user_id, spend FROM customers ORDER BY user_id",
    "tags": "SELECT tag, spend FROM tags ORDER BY tag",
    "entity_model_spend": "SELECT entity, entity_id, model, spend FROM entity_model_spend"
                          " ORDER BY entity, entity_id, model",
}
RETENTION_HOURS = 60  # half a day from the nearest generated day: no event near the horizon
HISTORY_DAYS = 5  # events start 0-4 whole days ago: 0-2 kept, 3-4 past the retention


class RetentionKeepsRollupsTest(harness.StackTestCase):
    """Its own stack: once old logs are gone, the rollups no longer equal the logs (on
    purpose), so invariants.check, which other tests run, would fail on this ledger."""

    def snapshot(self, queries):
        return {table: self.stack.sql(q) for table, q in queries.items()}

    def log_sums(self):
        """Sums of the log rows, computed here (Decimal) from spend_logs, by the
        groupings the rollups and counters keep."""
        rows = self.stack.sql(
            "SELECT request_id, DATE(start_time), DATE_FORMAT(start_time, '%Y-%m-01'), api_key,"
            " user, team_id, end_user, request_tags, spend, prompt_tokens, completion_tokens,"
            " total_tokens, status FROM spend_logs")
        sums = collections.defaultdict(lambda: collections.defaultdict(
            lambda: [Decimal(0)] * 5))

        def add(kind, group, spend, p, c, t):
            acc = sums[kind][group]
            for i, v in enumerate((spend, p, c, t, 1)):
                acc[i] += v

        for rid, day, month, key, user, team, end_user, tags, spend, p, c, t, status in rows:
            v = (Decimal(spend), int(p), int(c), int(t))
            add("day", day, *v)
            add("key", key, *v)
            add("user", user, *v)
            add("team", team, *v)
            add("end user", end_user, *v)
            add("month team", (month, team or ""), *v)
            add("day key", (day, key or ""), *v)
            for tag in set(json.loads(tags)) - {""}:
                add("day tag", (day, tag), *v)
                add("tag", tag, *v)
        return {kind: dict(groups) for kind, groups in sums.items()}

    def kept_sums(self):
        """The same groupings as log_sums, read from the rollups and counters (the
        counters hold spend only: the other figures of theirs are None)."""
        s = self.stack
        five = ("SUM(spend), SUM(prompt_tokens), SUM(completion_tokens), SUM(total_tokens),"
                " SUM(api_requests)")

        def grouped(q, nkey):
            out = {}
            for r in s.sql(q):
                key = r[0] if nkey == 1 else tuple(r[:nkey])
                out[key] = [Decimal(r[nkey])] + [int(x) for x in r[nkey + 1:]]
            return out

        def spend_only(q):
            return {r[0]: Decimal(r[1]) for r in s.sql(q)}

        return {
            "day": grouped("SELECT day, %s FROM daily_spend GROUP BY day" % five, 1),
            "day tag": grouped("SELECT day, tag, %s FROM daily_tag_totals GROUP BY day, tag"
                               % five, 2),
            "day tag spend": grouped("SELECT day, tag, %s FROM daily_tag_spend"
                                     " GROUP BY day, tag" % five, 2),
            "month team": grouped("SELECT period, group_id, %s FROM usage_rollup"
                                  " WHERE grain = 'm' AND dim = 't' GROUP BY period, group_id"
                                  % five, 2),
            "day key": grouped("SELECT period, group_id, %s FROM usage_rollup"
                               " WHERE grain = 'd' AND dim = 'k' GROUP BY period, group_id"
                               % five, 2),
            "key": spend_only("SELECT token, spend FROM api_keys"),
            "user": spend_only("SELECT user_id, spend FROM internal_users"),
            "team": spend_only("SELECT team_id, spend FROM teams"),
            "end user": spend_only("SELECT user_id, spend FROM customers"),
            "tag": spend_only("SELECT tag, spend FROM tags"),
        }

    def assert_kept_equal_logs(self, kept, logs):
        for kind in ("day", "day tag", "month team", "day key"):
            self.assertEqual(kept[kind], logs[kind], kind)
        self.assertEqual(kept["day tag spend"], logs["day tag"], "daily_tag_spend")
        for kind in ("key", "user", "team", "end user", "tag"):
            self.assertEqual(kept[kind], {g: v[0] for g, v in logs[kind].items()}, kind)

    def test_old_logs_deleted_rollups_and_counters_kept(self):
        s = self.stack
        keys, teams = 4, 2
        seed_owners(s, keys, teams)  # no budget periods: the counters cover every log row
        gen_seed = random.randrange(1 << 31)  # event-gen's days: named when too few are old
        p = subprocess.run(
            [str(harness.bin_dir() / "event-gen"), "--seed", str(gen_seed),
             "--keys", str(keys), "--teams", str(teams),
             "--end-users", "6", "--tags", "3", "--batch", "20", "--window", "200",
             "--events", "600", "--days", str(HISTORY_DAYS), "tcp://127.0.0.1:%d" % s.events_port],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=240)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertEqual(json.loads(p.stdout.decode().splitlines()[-1])["acked"], 600)
        self.assertEqual(invariants.check(s), [])  # rollups and counters = the logs, now

        rollups, counters = self.snapshot(ROLLUPS), self.snapshot(COUNTERS)
        logs = self.log_sums()
        self.assert_kept_equal_logs(self.kept_sums(), logs)
        ids = {r[0] for r in s.sql("SELECT request_id FROM spend_logs")}
        # older than the retention now, so also when accountd applies it (time only grows);
        # event-gen puts events whole days back, so the others are 12 h inside the horizon
        # (a horizon on a generated day failed when accountd's whole-second clock lagged)
        old = {r[0] for r in s.sql("SELECT request_id FROM spend_logs WHERE start_time"
                                   " < UTC_TIMESTAMP(6) - INTERVAL %d HOUR" % RETENTION_HOURS)}
        self.assertTrue(old and old != ids, "%d old of %d log rows: event-gen (--seed %d) spread"
                        " its events over too few days" % (len(old), len(ids), gen_seed))
        for table in ROLLUPS:
            self.assertTrue(rollups[table], table)

        cfg = copy.deepcopy(s.config)
        cfg["general_settings"]["maximum_spend_logs_retention_period"] = "%dh" % RETENTION_HOURS
        s.write_config("config.yaml", cfg)
        log = s.daemon_log("accountd")
        before = log.read_text(errors="replace")
        s.daemon("accountd").proc.send_signal(signal.SIGHUP)  # retention applies at once
        line = "log retention: deleted %d log rows" % len(old)
        wait_for(lambda: line in log.read_text(errors="replace")[len(before):], 30,
                 message="accountd did not log %r\n%s" % (line, s.log_tail("accountd")))

        self.assertEqual({r[0] for r in s.sql("SELECT request_id FROM spend_logs")}, ids - old,
                         "not exactly the rows past the retention were deleted")
        for table in ROLLUPS:
            self.assertEqual(s.sql(ROLLUPS[table]), rollups[table],
                             "%s changed with the log retention" % table)
        for table in COUNTERS:
            self.assertEqual(s.sql(COUNTERS[table]), counters[table],
                             "%s changed with the log retention" % table)
        self.assert_kept_equal_logs(self.kept_sums(), logs)  # the deleted rows' sums too


if __name__ == "__main__":
    unittest.main()
