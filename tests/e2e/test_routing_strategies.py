"""test_routing_strategies.py - LiteLLM's routing strategies and deployment concurrency
caps in proxyd (router_settings.routing_strategy, routing_strategy_args,
litellm_params.max_parallel_requests, router_settings.default_max_parallel_requests).

One stack; each test reloads proxyd (SIGHUP: a new config generation, so fresh counts)
with a model group "pool" whose deployments are pool_upstream.py instances, one each,
that differ in delay (latency), in the streams they hold open (load), in their
rpm / tpm (usage) and in their custom prices (cost), and shows the strategy's choice:

- latency-based-routing: the unmeasured deployments are tried first (one request
  each), then >= 90% of the requests go to the fast one;
- least-busy: no request goes to a deployment holding a stalled stream while another
  holds none;
- usage-based-routing-v2: fewest tokens this minute, and a deployment over its tpm or
  rpm this minute gets nothing more; with every deployment over, a 429 in the API's
  error shape with LiteLLM's words;
- cost-based-routing: the deployment cheapest for the request's prompt and max
  tokens (a long prompt and a long answer choose differently), and a retry after its
  failure goes to the next cheapest;
- max_parallel_requests / default_max_parallel_requests: a second stream goes to
  the other deployment while the first holds one's only slot; with both held, a 429.

Run from the repo root:  python3 tests/e2e/run.py tests/e2e/test_routing_strategies.py
"""

import http.client
import json
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import MASTER_KEY, StackTestCase, dump_yaml, wait_for  # noqa: E402
from pool_upstream import PoolUpstream  # noqa: E402

CHAT = "/v1/chat/completions"
NO_DEPLOYMENT = "No deployments available for selected model"


class RoutingStrategies(StackTestCase):

    @classmethod
    def setUpClass(cls):
        cls.ups = [PoolUpstream(name) for name in "abc"]
        cls.addClassCleanup(lambda: [u.stop() for u in cls.ups])
        super().setUpClass()

    # ---------------------------------------------------------------- helpers

    def proxyd_log(self):
        return self.stack.daemon_log("proxyd").read_text(errors="replace")

    def use(self, router_settings, params, delays=(0, 0, 0), extra_models=()):
        """Reloads proxyd with group "pool": one deployment per item of params (its
        litellm_params beyond model and api_base) on upstream a, b, c in turn."""
        config = json.loads(json.dumps(self.stack.config))
        pool = [{"model_name": "pool", "litellm_params": dict(
            {"model": "openai/gpt-4o-mini", "api_base": u.base, "api_key": "sk-pool"}, **p)}
            for u, p in zip(self.ups, params)]
        config["model_list"] = config["model_list"][:1] + pool + list(extra_models)
        config["router_settings"] = router_settings
        for u, delay in zip(self.ups, delays):
            u.reset(delay)
        before = len(self.proxyd_log())
        self.stack.config_path.write_text(dump_yaml(config))
        os.kill(self.stack.daemon("proxyd").proc.pid, signal.SIGHUP)
        wait_for(lambda: "reloaded" in self.proxyd_log()[before:], 10,
                 message="proxyd did not reload:\n%s" % self.proxyd_log()[before:])

    def chat(self, model="pool", **fields):
        body = {"model": model, "messages": [{"role": "user", "content": "hello"}]}
        body.update(fields)
        return self.stack.proxy("POST", CHAT, body, MASTER_KEY)

    def chat_to(self, **fields):
        """One chat to pool; the name of the upstream that answered it."""
        before = [u.count() for u in self.ups]
        st, _, b = self.chat(**fields)
        self.assertEqual(st, 200, b)
        hit = [u.name for u, n in zip(self.ups, before) if u.count() > n]
        self.assertEqual(len(hit), 1, hit)
        return hit[0]

    def open_stall(self):
        """A stalled stream to pool; (connection, response, name of its upstream)."""
        before = [u.stalled for u in self.ups]
        conn = http.client.HTTPConnection("127.0.0.1", self.stack.proxyd_port, timeout=60)
        conn.request("POST", CHAT, json.dumps({
            "model": "pool", "stream": True, "mock_stall": True,
            "messages": [{"role": "user", "content": "hello"}]}),
            {"Authorization": "Bearer " + MASTER_KEY, "Content-Type": "application/json"})
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        wait_for(lambda: sum(u.stalled for u in self.ups) > sum(before), 10,
                 message="no upstream holds the stream")
        held = [u.name for u, n in zip(self.ups, before) if u.stalled > n]
        return conn, resp, held[0]

    def end_stalls(self, streams):
        for u in self.ups:
            u.release()
        for conn, resp, _ in streams:
            self.assertIn(b"data: [DONE]", resp.read())
            conn.close()

    # ---------------------------------------------------------------- strategies

    def test_latency_based_tries_unmeasured_then_keeps_to_the_fast_one(self):
        self.use({"routing_strategy": "latency-based-routing",
                  "routing_strategy_args": {"ttl": 600}}, [{}, {}, {}], delays=(0, 0.15, 0.3))
        first = [self.chat_to() for _ in range(3)]
        self.assertEqual(sorted(first), ["a", "b", "c"], "each unmeasured one first")
        picks = [self.chat_to() for _ in range(20)]
        self.assertGreaterEqual(picks.count("a"), 18, picks)

    def test_least_busy_avoids_the_deployments_holding_streams(self):
        self.use({"routing_strategy": "least-busy"}, [{}, {}, {}])
        streams = [self.open_stall()]
        try:
            busy = streams[0][2]
            picks = [self.chat_to() for _ in range(9)]
            self.assertNotIn(busy, picks)
            streams.append(self.open_stall())
            self.assertNotEqual(streams[1][2], busy, "the second stream goes elsewhere too")
            idle = ({"a", "b", "c"} - {busy, streams[1][2]}).pop()
            picks = [self.chat_to() for _ in range(6)]
            self.assertEqual(picks, [idle] * 6)
        finally:
            self.end_stalls(streams)

    def test_usage_based_chooses_fewest_tokens_within_rpm_and_tpm(self):
        solo = {"model_name": "solo", "litellm_params": {
            "model": "openai/gpt-4o-mini", "api_base": self.ups[2].base, "api_key": "sk-pool",
            "rpm": 1}}
        self.use({"routing_strategy": "usage-based-routing-v2"},
                 [{"tpm": 150}, {"rpm": 3}, {}], extra_models=[solo])
        while time.time() % 60 > 40:  # the counts are the minute's: stay within one
            time.sleep(1)
        usage = {"prompt_tokens": 10, "completion_tokens": 90}
        picks = [self.chat_to(mock_usage=usage) for _ in range(12)]
        # rounds of one each while all are at equal tokens; a is out at 200 tokens
        # (+ the prompt's > tpm 150), b after 3 requests (rpm 3); c takes the rest
        self.assertEqual(sorted(picks[:3]), ["a", "b", "c"], picks)
        self.assertEqual(sorted(picks[3:6]), ["a", "b", "c"], picks)
        self.assertEqual((picks.count("a"), picks.count("b"), picks.count("c")), (2, 3, 7),
                         picks)
        st, _, b = self.chat(model="solo")
        self.assertEqual(st, 200, b)
        st, _, b = self.chat(model="solo")
        err = self.assertErrorShape(b, 429, type_="rate_limit_error")
        self.assertTrue(err["message"].startswith(NO_DEPLOYMENT), err)
        self.assertIn("Passed model=solo", err["message"])

    def test_cost_based_chooses_cheapest_for_the_requests_tokens(self):
        self.use({"routing_strategy": "cost-based-routing", "num_retries": 2}, [
            {"input_cost_per_token": "0.0000001", "output_cost_per_token": "0.00001"},
            {"input_cost_per_token": "0.00001", "output_cost_per_token": "0.0000001"},
            {"input_cost_per_token": "0.00002", "output_cost_per_token": "0.00002"}])
        long_prompt = {"messages": [{"role": "user", "content": "word " * 2000}],
                       "max_tokens": 5}
        picks = [self.chat_to(**long_prompt) for _ in range(5)]
        self.assertEqual(picks, ["a"] * 5, "cheap input for a long prompt and a short answer")
        picks = [self.chat_to(max_tokens=1) for _ in range(3)]
        self.assertEqual(picks, ["a"] * 3, "a short prompt with max_tokens 1: still a")
        picks = [self.chat_to(max_tokens=2000) for _ in range(5)]
        picks += [self.chat_to() for _ in range(5)]  # no max_tokens: a default answer length
        self.assertEqual(picks, ["b"] * 10, "cheap output for a short prompt")
        # retries work as with any strategy: a fails, the next cheapest (b) answers
        self.ups[0].fail_status = 500
        before = [u.count() for u in self.ups]
        st, _, b = self.chat(**long_prompt)
        self.assertEqual(st, 200, b)
        self.assertEqual([u.count() - n for u, n in zip(self.ups, before)], [1, 1, 0])

    def test_max_parallel_requests_reroutes_then_refuses(self):
        # a: its own max_parallel_requests 1; b: default_max_parallel_requests 1
        self.use({"routing_strategy": "simple-shuffle", "default_max_parallel_requests": 1},
                 [{"max_parallel_requests": 1}, {}])
        for _ in range(3):
            streams = [self.open_stall()]
            try:
                streams.append(self.open_stall())
                self.assertEqual(sorted(s[2] for s in streams), ["a", "b"])
                st, _, b = self.chat()
                err = self.assertErrorShape(b, 429, type_="rate_limit_error")
                self.assertTrue(err["message"].startswith(NO_DEPLOYMENT), err)
            finally:
                self.end_stalls(streams)
            # the slots are free again once the streams ended
            wait_for(lambda: self.chat()[0] == 200, 10, message="the slots stayed taken")


if __name__ == "__main__":
    unittest.main()
