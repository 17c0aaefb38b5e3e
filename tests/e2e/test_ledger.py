"""test_ledger.py - the ledger's promises beyond the seed flow.

- a usage event delivered three times (lost acks) is counted once;
- an event the database refuses is kept whole in rejected_events, acked,
  and accountd goes on;
- a model without a price is logged as unpriced with cost 0, never silently
  free, and warned about;
- per-deployment custom prices and base_model pricing reach header and
  ledger alike.

Run from the repo root:  python3 -m unittest -v tests/e2e/test_ledger.py
"""

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

LEDGER_TIMEOUT = 5.0


def extra_models(stack):
    return [
        {"model_name": "mystery",
         "litellm_params": {"model": "openai/tollgate-no-such-model",
                            "api_base": stack.upstream_base, "api_key": "os.environ/GROQ_API_KEY"}},
        {"model_name": "finetune",
         "litellm_params": {"model": "openai/my-finetune", "api_base": stack.upstream_base,
                            "api_key": "os.environ/GROQ_API_KEY",
                            "input_cost_per_token": "0.000006",
                            "output_cost_per_token": "0.00003"}},
        {"model_name": "gpt4-by-base",
         "litellm_params": {"model": "openai/company-gpt4", "api_base": stack.upstream_base,
                            "api_key": "os.environ/GROQ_API_KEY"},
         "model_info": {"base_model": "azure/gpt-4-1106-preview"}},
    ]


class LedgerTest(harness.StackTestCase):
    stack_options = {"extra_models": extra_models}

    def new_key(self, alias):
        status, _, body = self.stack.report("POST", "/key/generate",
                                            {"key_alias": alias, "user_id": "u-" + alias},
                                            key=MASTER_KEY)
        self.assertEqual(status, 200, body)
        return body["key"], body["token"]

    def send_events(self, request_id, token, model, prompt, completion, times):
        exe = harness.bin_dir() / "send-events"
        p = subprocess.run([str(exe), "tcp://127.0.0.1:%d" % self.stack.events_port, request_id,
                            token, model, str(prompt), str(completion), str(times)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        return p.returncode, p.stdout.decode() + p.stderr.decode()

    def key_spend(self, token):
        return Decimal(self.stack.sql_value("SELECT spend FROM api_keys WHERE token = '%s'" % token))

    def test_duplicate_delivery_counts_once(self):
        _, token = self.new_key("dup")
        rid = "dup-" + uuid.uuid4().hex
        rc, out = self.send_events(rid, token, "groq/llama-3.1-8b-instant", 1000, 500, 3)
        self.assertEqual(rc, 0, out)
        self.assertIn("acked 3/3", out)
        rows = self.stack.sql("SELECT spend FROM spend_logs WHERE request_id = '%s'" % rid)
        self.assertEqual(len(rows), 1)
        self.assertEqual(Decimal(rows[0][0]), Decimal("0.00009"))
        self.assertEqual(self.key_spend(token), Decimal("0.00009"))
        self.assertEqual(invariants.check(self.stack), [])
        # the Usage page's rollup: the key's day and month rows, once
        self.assertEqual(self.stack.sql(
            "SELECT grain, spend, api_requests FROM usage_rollup WHERE dim = 'k'"
            " AND group_id = '%s' ORDER BY grain" % token),
            [["d", "0.00009000000000000000", "1"], ["m", "0.00009000000000000000", "1"]])
        # and the invariants see a usage_rollup row that is off by the least amount
        bump = ("UPDATE usage_rollup SET spend = spend %s 0.00000000000000000001 WHERE grain = 'm'"
                " AND dim = 'k' AND group_id = '%s'")
        self.stack.sql(bump % ("+", token))
        try:
            problems = invariants.check(self.stack)
        finally:
            self.stack.sql(bump % ("-", token))
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("usage_rollup != the logs | m | k", problems[0])
        self.assertEqual(invariants.check(self.stack), [])

    def test_refused_event_is_kept_not_lost(self):
        _, token = self.new_key("poison")
        rid = "poison-" + uuid.uuid4().hex
        long_model = "openai/" + "x" * 400  # longer than spend_logs.model
        rc, out = self.send_events(rid, token, long_model, 10, 10, 1)
        self.assertEqual(rc, 0, out)  # acked: it is safely stored, not retried forever
        self.assertEqual(self.stack.sql(
            "SELECT 1 FROM spend_logs WHERE request_id = '%s'" % rid), [])
        rows = self.stack.sql("SELECT error, LENGTH(payload) FROM rejected_events"
                              " WHERE request_id = '%s'" % rid)
        self.assertEqual(len(rows), 1, rows)
        self.assertIn("model", rows[0][0])
        self.assertGreater(int(rows[0][1]), 400)
        self.assertEqual(self.key_spend(token), 0)
        # every row of rejected_events was counted by accountd's metric
        st, _, text = self.stack.http("GET", self.stack.metrics_ports[0], "/metrics")
        self.assertEqual(st, 200, text)
        self.assertIn('tollgate_accountd_rejected_events_total{reason="invalid"} %s\n'
                      % self.stack.sql_value("SELECT COUNT(*) FROM rejected_events"), text)
        # accountd is unharmed: a normal request still lands
        key, _ = self.new_key("after-poison")
        status, headers, body = self.stack.chat(key, prompt_tokens=10, completion_tokens=10)
        self.assertEqual(status, 200, body)
        wait_for(lambda: self.stack.sql("SELECT 1 FROM spend_logs WHERE request_id = '%s'"
                                        % headers["x-litellm-call-id"]), LEDGER_TIMEOUT)

    def test_unpriced_model_is_flagged(self):
        key, token = self.new_key("unpriced")
        ids = []
        for _ in range(2):
            status, headers, body = self.stack.chat(key, model="mystery", prompt_tokens=100,
                                                    completion_tokens=100)
            self.assertEqual(status, 200, body)
            self.assertEqual(headers["x-litellm-response-cost"], "0")
            ids.append(headers["x-litellm-call-id"])
        for rid in ids:
            row = wait_for(lambda: self.stack.sql(
                "SELECT spend, pricing, model FROM spend_logs WHERE request_id = '%s'" % rid),
                LEDGER_TIMEOUT)
            self.assertEqual(Decimal(row[0][0]), 0)
            self.assertEqual(row[0][1], "unpriced")
            self.assertEqual(row[0][2], "openai/tollgate-no-such-model")
        log = self.stack.daemon("accountd").log_path.read_text()
        self.assertEqual(log.count("model openai/tollgate-no-such-model has no price"), 1, log)
        # the metric counts each unpriced request once, per model
        st, headers, text = self.stack.http("GET", self.stack.metrics_ports[0], "/metrics")
        self.assertEqual(st, 200, text)
        self.assertTrue(headers["content-type"].startswith("text/plain; version=0.0.4"))
        self.assertIn('tollgate_accountd_unpriced_events_total{model="openai/tollgate-no-such-model"}'
                      ' 2\n', text)
        self.assertIn("# TYPE tollgate_accountd_unpriced_events_total counter\n", text)
        plog = self.stack.daemon("proxyd").log_path.read_text()
        self.assertIn("deployment openai/tollgate-no-such-model has no price", plog)

    def check_priced(self, model, prompt, completion, want):
        key, token = self.new_key("priced-" + model)
        status, headers, body = self.stack.chat(key, model=model, prompt_tokens=prompt,
                                                completion_tokens=completion)
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["x-litellm-response-cost"], want)
        rid = headers["x-litellm-call-id"]
        row = wait_for(lambda: self.stack.sql(
            "SELECT spend, pricing FROM spend_logs WHERE request_id = '%s'" % rid), LEDGER_TIMEOUT)
        self.assertEqual(Decimal(row[0][0]), Decimal(want))
        self.assertEqual(row[0][1], "priced")
        self.assertEqual(self.key_spend(token), Decimal(want))

    def test_custom_deployment_prices(self):
        # cost_cases.jsonl: "custom per-token pricing on the deployment"
        self.check_priced("finetune", 100, 200, "0.0066")

    def test_base_model_pricing(self):
        # cost_cases.jsonl: "azure deployment priced by base_model"
        self.check_priced("gpt4-by-base", 9, 28, "0.00093")


class RetentionTest(harness.StackTestCase):
    """maximum_spend_logs_retention_period: old log rows go, rollups stay, and an event
    older than the horizon is not counted again."""
    stack_options = {"extra_config": {"general_settings": {
        "maximum_spend_logs_retention_period": "2d"}}}

    def test_old_rows_deleted_and_old_events_refused(self):
        s = self.stack
        st, _, k = s.report("POST", "/key/generate", {"key_alias": "ret"}, key=MASTER_KEY)
        self.assertEqual(st, 200, k)
        status, headers, body = s.chat(k["key"], prompt_tokens=10, completion_tokens=10)
        self.assertEqual(status, 200, body)
        recent = headers["x-litellm-call-id"]
        wait_for(lambda: s.sql("SELECT 1 FROM spend_logs WHERE request_id = '%s'" % recent),
                 LEDGER_TIMEOUT)
        s.sql("INSERT INTO spend_logs (request_id, call_type, spend, pricing, start_time,"
              " end_time, model, model_group, status, http_status, committed_at) VALUES "
              + ", ".join("('old-%d', 'chat_completion', 0.001, 'priced',"
                          " UTC_TIMESTAMP(6) - INTERVAL 3 DAY, UTC_TIMESTAMP(6) - INTERVAL 3 DAY,"
                          " 'm', 'g', 'success', 200, UTC_TIMESTAMP(6))" % i for i in range(50)))
        s.stop_one("accountd")
        s.restart("accountd")  # retention runs at start, then every minute
        wait_for(lambda: s.sql_value("SELECT COUNT(*) FROM spend_logs"
                                     " WHERE request_id LIKE 'old-%'") == "0", 10,
                 message="old log rows were not deleted")
        self.assertEqual(s.sql_value("SELECT COUNT(*) FROM spend_logs WHERE request_id = '%s'"
                                     % recent), "1")
        self.assertIn("log retention: deleted 50 log rows", s.daemon_log("accountd").read_text())
        spend = s.sql_value("SELECT spend FROM api_keys WHERE token = '%s'" % k["token"])
        rid = "late-" + uuid.uuid4().hex
        p = subprocess.run([str(harness.bin_dir() / "send-events"),
                            "tcp://127.0.0.1:%d" % s.events_port, rid, k["token"],
                            "groq/llama-3.1-8b-instant", "100", "100", "1",
                            str(int((time.time() - 3 * 86400) * 1000))],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)  # acked: kept, not retried
        self.assertEqual(s.sql("SELECT 1 FROM spend_logs WHERE request_id = '%s'" % rid), [])
        why = s.sql_value("SELECT error FROM rejected_events WHERE request_id = '%s'" % rid)
        self.assertIn("retention", why)
        _, _, text = s.http("GET", s.metrics_ports[0], "/metrics")  # since the restart
        self.assertIn('tollgate_accountd_rejected_events_total{reason="retention"} 1\n', text)
        self.assertEqual(s.sql_value("SELECT spend FROM api_keys WHERE token = '%s'" % k["token"]),
                         spend)


if __name__ == "__main__":
    unittest.main()
