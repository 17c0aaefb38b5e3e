"""test_config_budgets.py - the budgets and the limit LiteLLM's config sets itself:

- a deployment's litellm_params.max_budget: once spent, the router passes the deployment
  over for the group's others; when none is left the request gets LiteLLM's 429
  "No deployments available - crossed budget"; with budget_duration it resets on time;
- router_settings.provider_budget_config: the same for every deployment of a provider, and
  its time_period resets it on time;
- litellm_settings.max_budget with budget_duration: the proxy-wide budget refuses every
  request once spent (400, LiteLLM's words, x-tollgate-budget-reset-at) and resets on time;
- litellm_settings.max_end_user_budget: the budget of end users without their own;
- general_settings.global_max_parallel_requests: requests beyond it get 429 while others
  are in flight;
and each config budget's spend in config_budgets equals the sum of the log rows of its
period (spend_logs.model_id names the deployment), exactly.

Run from the repo root:  python3 -m unittest -v tests/e2e/test_config_budgets.py
"""

import os
import sys
import threading
import time
import unittest
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import invariants  # noqa: E402
from harness import MASTER_KEY, expected_cost, wait_for  # noqa: E402

P, C = 1000, 1000                 # tokens of every request here
COST = expected_cost(P, C)        # 0.00013 on groq/llama-3.1-8b-instant
# A budget three requests fit under: the 4th sees 3 x COST >= it.
THREE = COST * 3 - Decimal("0.00000001")


def models(stack):
    base = stack.upstream_base
    groq = {"model": "groq/llama-3.1-8b-instant", "api_base": base,
            "api_key": "os.environ/GROQ_API_KEY"}
    return [
        # "shared": a budgeted deployment and a free one
        {"model_name": "shared", "litellm_params": dict(groq, max_budget=str(THREE)),
         "model_info": {"id": "dep-budgeted"}},
        {"model_name": "shared", "litellm_params": dict(groq), "model_info": {"id": "dep-free"}},
        # "lonely": one deployment with a budget that resets every 4 s
        {"model_name": "lonely",
         "litellm_params": dict(groq, max_budget=str(THREE), budget_duration="4s"),
         "model_info": {"id": "dep-lonely"}},
        # "prov": the only deployment of provider openai (its budget is the provider's)
        {"model_name": "prov", "litellm_params": {
            "model": "openai/llama-3.1-8b-instant-prov", "api_base": base,
            "api_key": "os.environ/GROQ_API_KEY",
            "input_cost_per_token": "0.00000005", "output_cost_per_token": "0.00000008"}},
    ]


class ConfigBudgets(harness.StackTestCase):
    stack_options = {
        "extra_models": models,
        "extra_config": {
            "router_settings": {"provider_budget_config": {
                "openai": {"budget_limit": str(THREE), "time_period": "10s"}}},
            "general_settings": {"global_max_parallel_requests": 2},
            "litellm_settings": {"max_end_user_budget": str(THREE)}},
    }

    def send(self, model):
        return self.stack.chat(MASTER_KEY, model=model, prompt_tokens=P, completion_tokens=C)

    def acked(self):
        """Waits until accountd committed every request proxyd answered."""
        s = self.stack
        wait_for(lambda: s.sql_value("SELECT COUNT(*) FROM spend_logs") == str(self.sent),
                 timeout=30, message="every request in spend_logs")

    def setUp(self):
        self.sent = int(self.stack.sql_value("SELECT COUNT(*) FROM spend_logs"))

    def spend_until_refused(self, model, limit=12):
        """Sends until a refusal; returns (answers that went through, the refusal)."""
        ok = 0
        for _ in range(limit):
            status, headers, body = self.send(model)
            if status != 200:
                return ok, (status, headers, body)
            ok += 1
            self.sent += 1
        self.fail("%s: no refusal after %d requests" % (model, limit))

    def row_matches_logs(self, budget_key, where):
        """config_budgets' spend equals the sum of its period's log rows."""
        s = self.stack
        spend, start = s.sql("SELECT spend, budget_period_start FROM config_budgets"
                             " WHERE budget_key = '%s'" % budget_key)[0]
        logs = s.sql_value("SELECT COALESCE(SUM(spend), 0) FROM spend_logs WHERE %s AND"
                           " start_time >= '%s'" % (where, start))
        self.assertEqual(Decimal(spend), Decimal(logs), budget_key)
        return Decimal(spend)

    def test_deployment_budget_routes_around_the_spent_deployment(self):
        s = self.stack
        for _ in range(12):
            status, _, body = self.send("shared")
            self.assertEqual(status, 200, body)
            self.sent += 1
        self.acked()
        used = dict(s.sql("SELECT model_id, COUNT(*) FROM spend_logs WHERE model_group = 'shared'"
                          " GROUP BY model_id"))
        # the budgeted one served at most the three its budget holds; the rest went free
        self.assertLessEqual(int(used.get("dep-budgeted", "0")), 3, used)
        self.assertGreaterEqual(int(used["dep-free"]), 9, used)
        spend = self.row_matches_logs("deployment:dep-budgeted", "model_id = 'dep-budgeted'")
        self.assertEqual(spend, COST * int(used.get("dep-budgeted", "0")))

    def test_deployment_budget_alone_refuses_and_resets_on_time(self):
        s = self.stack
        ok, (status, _, body) = self.spend_until_refused("lonely")
        self.assertGreaterEqual(ok, 1)
        self.assertEqual(status, 429, body)
        err = self.assertErrorShape(body, 429, param=None)
        self.assertIn("No deployments available - crossed budget: Exceeded budget for deployment"
                      " model_name: lonely, litellm_params.model: groq/llama-3.1-8b-instant,"
                      " model_id: dep-lonely:", err["message"])
        self.acked()
        self.row_matches_logs("deployment:dep-lonely", "model_id = 'dep-lonely'")
        reset_at = s.sql_value("SELECT UNIX_TIMESTAMP(budget_reset_at) FROM config_budgets"
                               " WHERE budget_key = 'deployment:dep-lonely'")
        # the period ends within its 4 s; then the deployment serves again
        self.assertLessEqual(float(reset_at) - time.time(), 4.5)
        wait_for(lambda: self.send("lonely")[0] == 200, timeout=20, interval=0.25,
                 message="the deployment budget reset")
        self.sent += 1
        self.acked()
        self.row_matches_logs("deployment:dep-lonely", "model_id = 'dep-lonely'")

    def test_end_users_without_a_budget_get_max_end_user_budget(self):
        ok = 0
        for _ in range(12):
            status, _, body = self.stack.chat(MASTER_KEY, prompt_tokens=P, completion_tokens=C,
                                              user="eu-default")
            if status != 200:
                break
            ok += 1
            self.sent += 1
        self.assertEqual(ok, 3)
        err = self.assertErrorShape(body, 400, type_="budget_exceeded")
        self.assertEqual(err["message"], "ExceededBudget: End User=eu-default over budget."
                         " Spend=0.00039, Budget=%s" % THREE)
        # an end user with a budget of its own keeps it
        s = self.stack
        st, _, b = s.report("POST", "/customer/new", {"user_id": "eu-own", "max_budget": 1},
                            key=MASTER_KEY)
        self.assertEqual(st, 200, b)
        for _ in range(4):
            self.assertEqual(s.chat(MASTER_KEY, prompt_tokens=P, completion_tokens=C,
                                    user="eu-own")[0], 200)
            self.sent += 1

    def test_provider_budget_refuses_once_spent_and_resets_on_time(self):
        s = self.stack
        key = "WHERE budget_key = 'provider:openai'"
        # start just after a boundary of its 10 s periods: the spending below fits in one
        wait_for(lambda: s.sql(f"SELECT 1 FROM config_budgets {key}"), timeout=10)
        ends = float(s.sql_value(f"SELECT UNIX_TIMESTAMP(budget_reset_at) FROM config_budgets {key}"))
        if ends - time.time() < 5:
            wait_for(lambda: s.sql_value(f"SELECT UNIX_TIMESTAMP(budget_reset_at) > {ends}"
                                         f" FROM config_budgets {key}") == "1",
                     timeout=20, interval=0.1, message="the provider budget's period ended")
        ok, (status, _, body) = self.spend_until_refused("prov")
        self.assertEqual(ok, 3)
        err = self.assertErrorShape(body, 429, param=None)
        self.assertIn("crossed budget: Exceeded budget for provider openai:", err["message"])
        self.acked()
        spend = self.row_matches_logs("provider:openai", "custom_llm_provider = 'openai'")
        self.assertEqual(spend, COST * 3)
        # other providers are not affected
        self.assertEqual(self.send("llama3")[0], 200)
        self.sent += 1
        # the next period serves again
        wait_for(lambda: self.send("prov")[0] == 200, timeout=30, interval=0.25,
                 message="the provider budget reset")
        self.sent += 1
        self.acked()
        self.assertEqual(invariants.check(self.stack), [])

    def test_global_max_parallel_requests(self):
        s = self.stack
        results = []

        def stalled():
            # the fake upstream holds the answer for 1.5 s
            results.append(s.chat(MASTER_KEY, mock_first_byte_delay_ms=1500)[0])

        threads = [threading.Thread(target=stalled) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        status, _, body = s.chat(MASTER_KEY)
        # counted after the key check, as LiteLLM's hook: a bad key is told so, not 429
        bad_key_status = s.chat("sk-not-a-key")[0]
        for t in threads:
            t.join()
        self.assertEqual(status, 429, body)
        err = self.assertErrorShape(body, 429)
        self.assertIn("Max parallel request limit reached Hit Global Limit: Limit=2",
                      err["message"])
        self.assertNotIn(429, results)
        self.assertEqual(bad_key_status, 401)
        self.sent += 2


class ProxyBudget(harness.StackTestCase):
    stack_options = {"extra_config": {
        "litellm_settings": {"max_budget": str(THREE), "budget_duration": "5s"}},
        "accountd_instances": 2}  # both write the budget and look for its reset

    def test_proxy_budget_refuses_then_resets(self):
        s = self.stack
        refused = None
        answered = [int(s.sql_value("SELECT COUNT(*) FROM spend_logs"))]

        def send():
            out = s.chat(MASTER_KEY, prompt_tokens=P, completion_tokens=C)
            answered[0] += out[0] == 200  # a refused request has no log row
            return out

        for _ in range(12):
            status, headers, body = send()
            if status != 200:
                refused = (status, headers, body)
                break
        self.assertIsNotNone(refused, "the proxy budget never refused")
        status, headers, body = refused
        err = self.assertErrorShape(body, 400, type_="budget_exceeded")
        self.assertRegex(err["message"], r"^Budget has been exceeded! Current cost: [0-9.]+, "
                         r"Max budget: 0\.000389")
        self.assertIn("x-tollgate-budget-reset-at", headers)
        wait_for(lambda: send()[0] == 200, timeout=20, interval=0.25,
                 message="the proxy budget reset")
        wait_for(lambda: s.sql_value("SELECT COUNT(*) FROM spend_logs") == str(answered[0]),
                 timeout=30, message="every answered request in spend_logs")
        spend, start = s.sql("SELECT spend, budget_period_start FROM config_budgets"
                             " WHERE budget_key = 'proxy'")[0]
        logs = s.sql_value("SELECT COALESCE(SUM(spend), 0) FROM spend_logs WHERE start_time >= '%s'"
                           % start)
        self.assertEqual(Decimal(spend), Decimal(logs))
        self.assertEqual(invariants.check(s), [])


def mixed_models(stack):
    common = {"model": "openai/some-model", "api_base": stack.upstream_base,
              "api_key": "os.environ/GROQ_API_KEY"}
    return [
        {"model_name": "mixed", "litellm_params": dict(common, weight="0.001",
         input_cost_per_token="0.000000001", output_cost_per_token="0.000000001")},
        {"model_name": "mixed", "litellm_params": dict(common, weight="1000",
         input_cost_per_token="0.00001", output_cost_per_token="0.00001")},
    ]


class Reservation(harness.StackTestCase):
    """The worst case reserved is the group's dearest deployment, whatever num_retries
    (the reservation's walk visits every member, not num_retries + 1 of them)."""
    stack_options = {"extra_models": mixed_models,
                     "extra_config": {"router_settings": {"num_retries": 0},
                                      "litellm_settings": {"max_budget": "0.015"}}}

    def test_concurrent_requests_overshoot_by_one_at_most(self):
        s = self.stack
        out = []

        def one():  # 1010 tokens on the dear deployment: 0.0101 each, reserved the same
            out.append(s.chat(MASTER_KEY, model="mixed", prompt_tokens=10, completion_tokens=1000,
                              max_tokens=1000, mock_first_byte_delay_ms=1500)[0])

        threads = [threading.Thread(target=one) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # 0 + 0.0101 < 0.015 admits a second; 0.0202 >= 0.015 refuses the rest
        self.assertEqual(sorted(out), [200, 200, 400, 400, 400], out)


if __name__ == "__main__":
    unittest.main()
