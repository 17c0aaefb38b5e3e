"""test_request_shaping.py - what a deployment's litellm_params add to or remove
from the requests proxyd relays, as LiteLLM's router does: generation defaults
(temperature, max_tokens, stop, seed) sent when the request has none of its own,
additional_drop_params removed (top-level names before the chat -> Messages
translation, nested paths such as tools[*].cache_control from what goes
upstream), extra_headers and organization (OpenAI-Organization) sent with every
call, timeout and stream_timeout applied, litellm_settings.drop_params true
dropping even where a deployment says false, and a max_tokens default counted
in the budget reservation. The fake upstream logs the body and headers it got.

Run from the repo root:  python3 tests/e2e/run.py tests/e2e/test_request_shaping.py
"""

import http.client
import json
import os
import sys
import time
import unittest
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import invariants  # noqa: E402
from harness import MASTER_KEY, wait_for  # noqa: E402

LLAMA = invariants.price_entry("groq/llama-3.1-8b-instant")
SHORT = 7  # llama-short's max_tokens default
KEY = "os.environ/GROQ_API_KEY"


def models(stack):
    host = stack.upstream_base[:-len("/v1")]
    return [
        {"model_name": "shaped", "litellm_params": {
            "model": "openai/gpt-4o-mini", "api_base": stack.upstream_base, "api_key": KEY,
            "temperature": Decimal("0.3"), "max_tokens": 20, "stop": "END", "seed": 5,
            "organization": "org-tollgate", "extra_headers": {"X-Team": "search"},
            "additional_drop_params": ["logit_bias", "tools[*].function.strict"]}},
        {"model_name": "claude-shaped", "litellm_params": {
            "model": "anthropic/claude-sonnet-4-20250514", "api_base": host, "api_key": KEY,
            "temperature": Decimal("0.4"), "max_tokens": 33, "extra_headers": {"x-team": "claude"},
            "additional_drop_params": ["top_k", "tools[*].cache_control"]}},
        {"model_name": "claude-chat-path", "litellm_params": {  # an OpenAI-form path
            "model": "anthropic/claude-sonnet-4-20250514", "api_base": host, "api_key": KEY,
            "additional_drop_params": ["tools[*].function.cache_control"]}},
        {"model_name": "claude-nodrop", "litellm_params": {
            "model": "anthropic/claude-sonnet-4-20250514", "api_base": host, "api_key": KEY,
            "drop_params": False}},
        {"model_name": "llama-short", "litellm_params": {
            "model": "groq/llama-3.1-8b-instant", "api_base": stack.upstream_base,
            "api_key": KEY, "max_tokens": SHORT}},
        {"model_name": "slow", "litellm_params": {
            "model": "openai/gpt-4o-mini", "api_base": stack.upstream_base, "api_key": KEY,
            "timeout": 1, "stream_timeout": 1}},
    ]


MESSAGES = [{"role": "user", "content": "hi"}]
TOOL = {"type": "function", "function": {
    "name": "f", "strict": True, "cache_control": {"type": "ephemeral"},
    "parameters": {"type": "object", "properties": {}}}}


class RequestShapingTest(harness.StackTestCase):
    stack_options = {"extra_models": models,
                     "extra_config": {"litellm_settings": {"drop_params": True}}}

    def sent(self, path_part):
        """The last request the fake upstream got on a path containing path_part, its
        body's top-level numbers as floats (jansson writes 0.3 as 0.29999999999999999)."""
        got = [r for r in self.stack.upstream_requests() if path_part in r.get("path", "")]
        self.assertTrue(got, "nothing reached the upstream on %s" % path_part)
        up = got[-1]
        up["body"] = {k: float(v) if isinstance(v, Decimal) else v for k, v in up["body"].items()}
        return up

    def post(self, path, body, headers=None):
        h = {"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"} if "messages" in path \
            else None
        st, _, ans = self.stack.proxy("POST", path, body, key=None if h else MASTER_KEY,
                                      headers=h or headers)
        self.assertEqual(st, 200, ans)
        return ans

    def test_chat_gets_the_defaults_headers_and_drops(self):
        self.post("/v1/chat/completions", {"model": "shaped", "messages": MESSAGES,
                                           "logit_bias": {"50256": -100}, "tools": [TOOL]})
        up = self.sent("chat/completions")
        body = up["body"]
        for k, v in {"temperature": 0.3, "max_tokens": 20, "stop": "END", "seed": 5}.items():
            self.assertEqual(body.get(k), v, body)
        self.assertNotIn("logit_bias", body)
        fn = body["tools"][0]["function"]
        self.assertNotIn("strict", fn)                      # the nested drop
        self.assertEqual(fn["cache_control"], {"type": "ephemeral"})  # the rest stays
        self.assertEqual(up["headers"].get("openai-organization"), "org-tollgate")
        self.assertEqual(up["headers"].get("x-team"), "search")

    def test_the_requests_own_values_win(self):
        self.post("/v1/chat/completions", {"model": "shaped", "messages": MESSAGES,
                                           "temperature": 1.5, "max_tokens": 3,
                                           "stop": ["x"], "seed": 9})
        body = self.sent("chat/completions")["body"]
        self.assertEqual((body["temperature"], body["max_tokens"], body["stop"], body["seed"]),
                         (1.5, 3, ["x"], 9), body)

    def test_completions_responses_embeddings(self):
        self.post("/v1/completions", {"model": "shaped", "prompt": "hi"})
        body = self.sent("/completions")["body"]
        self.assertEqual((body.get("max_tokens"), body.get("stop")), (20, "END"), body)
        self.post("/v1/responses", {"model": "shaped", "input": "hi"})
        up = self.sent("/responses")
        # the Responses API's name for it; no stop or seed there
        self.assertEqual(up["body"].get("max_output_tokens"), 20, up["body"])
        self.assertEqual(up["body"].get("temperature"), 0.3)
        self.assertNotIn("stop", up["body"])
        self.assertNotIn("seed", up["body"])
        self.assertEqual(up["headers"].get("openai-organization"), "org-tollgate")
        self.post("/v1/embeddings", {"model": "shaped", "input": "hi", "logit_bias": {}})
        up = self.sent("/embeddings")
        self.assertEqual(set(up["body"]) & {"temperature", "max_tokens", "logit_bias"}, set(),
                         up["body"])
        self.assertEqual(up["headers"].get("x-team"), "search")

    def test_messages_api_drops_and_defaults(self):
        tool = {"name": "f", "input_schema": {"type": "object"},
                "cache_control": {"type": "ephemeral"}}
        self.post("/v1/messages", {"model": "claude-shaped", "max_tokens": 10, "top_k": 5,
                                   "messages": MESSAGES, "tools": [tool]})
        up = self.sent("/v1/messages")
        body = up["body"]
        self.assertEqual((body.get("max_tokens"), body.get("temperature")),
                         (10, 0.4), body)
        self.assertNotIn("top_k", body)
        self.assertEqual(body["tools"], [{"name": "f", "input_schema": {"type": "object"}}])
        self.assertEqual(up["headers"].get("x-team"), "claude")
        self.assertNotIn("openai-organization", up["headers"])

    def test_chat_translated_to_messages(self):
        """Top-level drops and defaults apply to the chat body; the nested path to the
        Messages body it becomes: function.cache_control turns into the Anthropic tool's
        cache_control, which tools[*].cache_control then removes."""
        self.post("/v1/chat/completions", {"model": "claude-shaped", "messages": MESSAGES,
                                           "top_k": 5, "tools": [TOOL]})
        body = self.sent("/v1/messages")["body"]
        self.assertEqual((body.get("max_tokens"), body.get("temperature")),
                         (33, 0.4), body)  # not the translation's 4096
        self.assertNotIn("top_k", body)
        self.assertEqual(len(body["tools"]), 1, body)
        self.assertEqual(body["tools"][0]["name"], "f")
        self.assertNotIn("cache_control", body["tools"][0])
        # a path in the chat body's form finds nothing in the Messages body (as LiteLLM,
        # which applies nested paths to the provider's parameters only)
        self.post("/v1/chat/completions", {"model": "claude-chat-path", "messages": MESSAGES,
                                           "tools": [TOOL]})
        body = self.sent("/v1/messages")["body"]
        self.assertEqual(body["tools"][0].get("cache_control"), {"type": "ephemeral"}, body)

    def test_global_drop_params_wins_over_a_deployments_false(self):
        """LiteLLM drops when litellm_settings.drop_params or the call's says so
        (utils.py _check_valid_arg): the deployment's false does not undo it."""
        self.post("/v1/chat/completions", {"model": "claude-nodrop", "messages": MESSAGES,
                                           "logprobs": True})
        self.assertNotIn("logprobs", self.sent("/v1/messages")["body"])

    def test_timeout_and_stream_timeout(self):
        t0 = time.monotonic()
        st, _, ans = self.stack.proxy("POST", "/v1/chat/completions", {
            "model": "slow", "messages": MESSAGES, "mock_first_byte_delay_ms": 4000},
            key=MASTER_KEY)
        took = time.monotonic() - t0
        self.assertNotEqual(st, 200, ans)
        self.assertLess(took, 3.5, "timeout: 1 should end the call after about a second")
        # a stream may last; silence longer than stream_timeout ends it
        t0 = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.stack.proxyd_port, timeout=30)
        try:
            conn.request("POST", "/v1/chat/completions", json.dumps({
                "model": "slow", "messages": MESSAGES, "stream": True,
                "mock_stall_after_chunks": 1}),
                {"Authorization": "Bearer " + MASTER_KEY, "Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
        finally:
            conn.close()
        self.assertLess(time.monotonic() - t0, 8, "stream_timeout: 1 should end a stall")

    def test_max_tokens_default_counts_in_the_reservation(self):
        """A request without max_tokens to llama-short reserves its prompt bound (one
        token per body byte) plus the deployment's max_tokens default (7), not the
        model's 8,192: with a budget of exactly that, a second request while it runs is
        refused; with one answer token's price more, admitted."""
        held = {"model": "llama-short", "stream": True, "mock_stall_after_chunks": 1,
                "messages": [{"role": "user", "content": "no max_tokens here"}],
                "mock_usage": {"prompt_tokens": 5, "completion_tokens": 1}}
        small = {"model": "llama-short", "max_tokens": 1, "messages": MESSAGES,
                 "mock_usage": {"prompt_tokens": 5, "completion_tokens": 1}}
        size = len(json.dumps(held).encode())
        reserved = (Decimal(LLAMA["input_cost_per_token"]) * size
                    + Decimal(LLAMA["output_cost_per_token"]) * SHORT)
        one_token = Decimal(LLAMA["output_cost_per_token"])
        self.assertReservation(held, small, reserved, one_token)
        sent = [r["body"] for r in self.stack.upstream_requests()
                if r["body"] and r["body"].get("model") == "llama-3.1-8b-instant"]
        self.assertIn(SHORT, [b.get("max_tokens") for b in sent])


if __name__ == "__main__":
    unittest.main()
