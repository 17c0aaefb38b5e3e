"""test_sdk_messages_responses.py - the official SDKs against proxyd's
Anthropic Messages API and OpenAI Responses API: @anthropic-ai/sdk's
messages.create, messages.stream and messages.countTokens
(tests/node/anthropic_client.mjs) and the openai client's responses.create,
plain and streamed, and responses.retrieve (tests/node/responses_client.mjs),
both pinned by tests/node/package-lock.json.

Each priced request's x-litellm-response-cost == its ledger row's spend ==
the cost this file computes from the price map's rates
(libtollgate/data/prices.json), exactly: cache reads, 5-minute and 1-hour
cache writes, reasoning tokens, the >200k tier. countTokens is never in the
ledger.

Needs `npm ci` in tests/node (tests/run-all.sh does it).
Run from the repo root:  python3 tests/e2e/run.py tests/e2e/test_sdk_messages_responses.py
"""

import json
import os
import shutil
import subprocess
import sys
import unittest
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import MASTER_KEY, wait_for  # noqa: E402

NODE_DIR = harness.REPO / "tests" / "node"
PRICES = json.loads((harness.REPO / "libtollgate" / "data" / "prices.json").read_text())["models"]
TIER = 200000  # Anthropic's long-context tier: above this many prompt tokens


def rate(model, name, tier_name=None):
    """A price-map rate as a Decimal; tier_name's when given and the map has it."""
    entry = PRICES[model]
    return Decimal(entry[tier_name] if tier_name and tier_name in entry else entry[name])


def anthropic_cost(model, usage):
    """LiteLLM's cost of an Anthropic usage: input_tokens excludes the cache;
    cache writes without a cache_creation split are 5-minute ones; above 200k
    prompt tokens (input + cache) each rate is its tier's where the map has
    one (the 1-hour write has none for Sonnet 4, so it keeps its rate)."""
    inp, out = usage["input_tokens"], usage["output_tokens"]
    read = usage.get("cache_read_input_tokens", 0)
    split = usage.get("cache_creation")
    w1 = split["ephemeral_1h_input_tokens"] if split else 0
    w5 = split["ephemeral_5m_input_tokens"] if split else usage.get(
        "cache_creation_input_tokens", 0)
    above = inp + read + w5 + w1 > TIER

    def r(name, tier_name):
        return rate(model, name, tier_name if above else None)
    return (inp * r("input_cost_per_token", "input_cost_per_token_above_200k_tokens")
            + out * r("output_cost_per_token", "output_cost_per_token_above_200k_tokens")
            + read * r("cache_read_input_token_cost",
                       "cache_read_input_token_cost_above_200k_tokens")
            + w5 * r("cache_creation_input_token_cost",
                     "cache_creation_input_token_cost_above_200k_tokens")
            + w1 * r("cache_creation_input_token_cost_above_1hr",
                     "cache_creation_input_token_cost_above_1hr_above_200k_tokens"))


def responses_cost(model, usage):
    """LiteLLM's cost of a Responses usage: input_tokens includes the cached
    ones; reasoning tokens are in output_tokens, at the output rate."""
    inp, out = usage["input_tokens"], usage["output_tokens"]
    cached = usage.get("input_tokens_details", {}).get("cached_tokens", 0)
    return ((inp - cached) * rate(model, "input_cost_per_token")
            + cached * rate(model, "cache_read_input_token_cost")
            + out * rate(model, "output_cost_per_token"))


SONNET = "claude-sonnet-4-20250514"

# What each Anthropic call's answer reports (fake-upstream's mock_usage_raw).
CACHED = {"input_tokens": 1200, "output_tokens": 300, "cache_read_input_tokens": 4000,
          "cache_creation_input_tokens": 2500,
          "cache_creation": {"ephemeral_5m_input_tokens": 1500,
                             "ephemeral_1h_input_tokens": 1000}}
UNSPLIT = {"input_tokens": 90, "output_tokens": 7, "cache_creation_input_tokens": 64}
ABOVE_200K = {"input_tokens": 250000, "output_tokens": 40, "cache_read_input_tokens": 3000,
              "cache_creation_input_tokens": 700,
              "cache_creation": {"ephemeral_5m_input_tokens": 500,
                                 "ephemeral_1h_input_tokens": 200}}
# Below 200k on input alone, above it with the cache reads: the tier's rates.
ABOVE_BY_CACHE = {"input_tokens": 150000, "output_tokens": 12,
                  "cache_read_input_tokens": 50001}
STREAMED = {"input_tokens": 40, "output_tokens": 4, "cache_read_input_tokens": 8,
            "cache_creation_input_tokens": 16,
            "cache_creation": {"ephemeral_5m_input_tokens": 6, "ephemeral_1h_input_tokens": 10}}

# What each Responses call's answer reports.
PLAIN = {"input_tokens": 5000, "input_tokens_details": {"cached_tokens": 3072},
         "output_tokens": 900, "output_tokens_details": {"reasoning_tokens": 640},
         "total_tokens": 5900}
RESP_STREAMED = {"input_tokens": 2048, "input_tokens_details": {"cached_tokens": 1024},
                 "output_tokens": 333, "output_tokens_details": {"reasoning_tokens": 300},
                 "total_tokens": 2381}


def prompt_tokens(usage):
    """The ledger's prompt_tokens of an Anthropic usage: input and cache."""
    return usage["input_tokens"] + usage.get("cache_read_input_tokens", 0) + usage.get(
        "cache_creation_input_tokens", 0)


@unittest.skipUnless(shutil.which("node"), "node is not installed")
class SDKMessagesResponsesTest(harness.StackTestCase):
    stack_options = {"extra_models": harness.protocol_models}

    def key(self, alias):
        _, _, k = self.stack.report("POST", "/key/generate", {"key_alias": alias},
                                    key=MASTER_KEY)
        return k

    def run_client(self, script, package, base, key, plan):
        self.assertTrue((NODE_DIR / "node_modules" / package).is_dir(),
                        "run `npm ci` in tests/node first")
        p = subprocess.run(["node", script, base, key, json.dumps(plan)], cwd=str(NODE_DIR),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        return json.loads(p.stdout.decode().strip().splitlines()[-1])

    def row(self, rid):
        """(spend, call_type, model_group, prompt_tokens, completion_tokens) of a call."""
        self.assertTrue(rid, "no x-litellm-call-id")
        return wait_for(lambda: self.stack.sql(
            "SELECT spend, call_type, model_group, prompt_tokens, completion_tokens"
            " FROM spend_logs WHERE request_id = '%s'" % rid), 10)[0]

    def key_spend(self, key):
        """The key's spend; its ledger rows are in, and it moves with them."""
        return Decimal(self.stack.sql_value("SELECT spend FROM api_keys WHERE token = '%s'"
                                            % key["token"]))

    def assert_priced(self, call, cost, call_type, group, usage_tokens, header=True):
        """The call's header (when it has one) and ledger row both say cost."""
        if header:
            self.assertEqual(Decimal(call["cost"]), cost, call)
        row = self.row(call["callId"])
        self.assertEqual(Decimal(row[0]), cost, call)
        self.assertEqual(row[1:], [call_type, group] + [str(n) for n in usage_tokens])

    def test_anthropic_sdk_messages(self):
        key = self.key("sdk-anthropic")
        creates = [CACHED, UNSPLIT, ABOVE_200K, ABOVE_BY_CACHE]
        plan = {"creates": [{"mock_usage_raw": u, "mock_content": "Answer %d." % i}
                            for i, u in enumerate(creates)],
                "stream": {"mock_content": "one two three four", "mock_usage_raw": STREAMED}}
        seen = self.run_client("anthropic_client.mjs", "@anthropic-ai/sdk",
                               "http://127.0.0.1:%d" % self.stack.proxyd_port, key["key"], plan)
        total = Decimal(0)
        for i, (usage, call) in enumerate(zip(creates, seen["creates"])):
            self.assertEqual((call["type"], call["text"]), ("message", "Answer %d." % i))
            self.assertEqual(call["usage"]["input_tokens"], usage["input_tokens"])
            cost = anthropic_cost(SONNET, usage)
            self.assert_priced(call, cost, "anthropic_messages", "claude",
                               (prompt_tokens(usage), usage["output_tokens"]))
            total += cost

        stream = seen["stream"]
        self.assertEqual(len(stream["deltas"]), 4)  # one a word, as they came
        self.assertEqual("".join(stream["deltas"]), "one two three four")
        self.assertEqual(stream["finalText"], "one two three four")
        self.assertEqual((stream["events"][0], stream["events"][-1]),
                         ("message_start", "message_stop"))
        self.assertEqual(stream["usage"]["output_tokens"], 4)
        self.assertEqual(stream["usage"]["cache_read_input_tokens"], 8)
        self.assertEqual(stream["usage"]["cache_creation"], STREAMED["cache_creation"])
        cost = anthropic_cost(SONNET, STREAMED)
        self.assert_priced(stream, cost, "anthropic_messages", "claude",
                           (prompt_tokens(STREAMED), 4), header=False)
        total += cost

        # countTokens ran first; every later call's row is in, so its own
        # would be too. Nothing charged for it: no row, the key's spend is the
        # sum of the others.
        counted = seen["countTokens"]
        self.assertIsInstance(counted["answer"]["input_tokens"], int)
        self.assertTrue(counted["callId"])
        self.assertIn(counted["cost"], (None, "0", "0.0"))
        self.assertEqual(self.stack.sql("SELECT COUNT(*) FROM spend_logs WHERE request_id = '%s'"
                                        % counted["callId"]), [["0"]])
        self.assertEqual(self.key_spend(key), total)

    def test_openai_sdk_responses(self):
        key = self.key("sdk-responses")
        plan = {"plain": {"mock_usage_raw": PLAIN, "mock_content": "Plain answer."},
                "stream": {"model": "gpt-azure", "mock_content": "a b c d",
                           "mock_usage_raw": RESP_STREAMED}}
        seen = self.run_client("responses_client.mjs", "openai",
                               "http://127.0.0.1:%d/v1" % self.stack.proxyd_port, key["key"],
                               plan)
        plain = seen["plain"]
        self.assertEqual((plain["status"], plain["text"]), ("completed", "Plain answer."))
        self.assertTrue(plain["id"].startswith("resp_"), plain["id"])
        self.assertEqual(plain["usage"]["output_tokens_details"]["reasoning_tokens"], 640)
        plain_cost = responses_cost("gpt-4o", PLAIN)
        self.assert_priced(plain, plain_cost, "responses", "gpt", (5000, 900))

        stream = seen["stream"]
        self.assertEqual((stream["events"][0], stream["events"][-1]),
                         ("response.created", "response.completed"))
        self.assertEqual(len(stream["deltas"]), 4)
        self.assertEqual("".join(stream["deltas"]), "a b c d")
        done = stream["completed"]
        self.assertEqual(done["status"], "completed")
        self.assertEqual(done["usage"]["input_tokens_details"]["cached_tokens"], 1024)
        stream_cost = responses_cost("azure/gpt-4o", RESP_STREAMED)
        self.assert_priced(stream, stream_cost, "responses", "gpt-azure", (2048, 333),
                           header=False)

        # retrieve: the same responses, from the deployments that hold them,
        # and never charged.
        for got, created in ((seen["retrievePlain"], plain), (seen["retrieveStream"], done)):
            self.assertEqual((got["id"], got["status"]), (created["id"], "completed"))
            self.assertEqual(got["usage"], created["usage"])
        self.assertEqual(self.key_spend(key), plain_cost + stream_cost)


if __name__ == "__main__":
    unittest.main()
