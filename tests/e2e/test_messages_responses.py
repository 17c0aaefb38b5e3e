"""test_messages_responses.py - Anthropic's Messages API and OpenAI's Responses
API through proxyd: relayed as the client sent them, each request's
x-litellm-response-cost == its ledger row == the price map's cost, exactly
(cache reads, 5-minute and 1-hour cache writes, reasoning tokens, the >200k
tier), errors in each API's own shape, and response ids that lead back to the
deployment that holds the response.

Run from the repo root:  python3 tests/e2e/run.py tests/e2e/test_messages_responses.py
"""

import hashlib
import http.client
import json
import os
import sys
import time
import unittest
import uuid
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import MASTER_KEY, wait_for  # noqa: E402

# libtollgate/data/prices.json: claude-sonnet-4-20250514 and gpt-4o.
SONNET = {"in": Decimal("0.000003"), "out": Decimal("0.000015"),
          "read": Decimal("0.0000003"), "write5m": Decimal("0.00000375"),
          "write1h": Decimal("0.000006"), "in_200k": Decimal("0.000006"),
          "out_200k": Decimal("0.0000225"), "read_200k": Decimal("0.0000006"),
          "write_200k": Decimal("0.0000075")}
GPT4O = {"in": Decimal("0.0000025"), "out": Decimal("0.00001"), "read": Decimal("0.00000125")}
# gpt-4o-mini-2024-07-18: tokens, and each web search by search_context_size.
MINI = {"in": Decimal("0.00000015"), "out": Decimal("0.0000006"), "low": Decimal("0.025"),
        "medium": Decimal("0.0275")}


def sonnet_cost(inp, out, read=0, w5=0, w1=0):
    """LiteLLM's Anthropic cost: input_tokens excludes the cache; above 200k
    prompt tokens (input + cache) every rate is the tier's."""
    if inp + read + w5 + w1 > 200000:
        return (inp * SONNET["in_200k"] + out * SONNET["out_200k"] + read * SONNET["read_200k"]
                + w5 * SONNET["write_200k"] + w1 * SONNET["write1h"])
    return (inp * SONNET["in"] + out * SONNET["out"] + read * SONNET["read"]
            + w5 * SONNET["write5m"] + w1 * SONNET["write1h"])


def gpt4o_cost(inp, out, cached=0):
    """input_tokens includes the cached ones; reasoning is in output_tokens."""
    return (inp - cached) * GPT4O["in"] + cached * GPT4O["read"] + out * GPT4O["out"]


def sse_events(text):
    """[(event name, data dict)] of an SSE body."""
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data:
            d = "\n".join(data)
            out.append((name, d if d == "[DONE]" else json.loads(d, parse_float=Decimal)))
    return out


DEAD_PORT = harness.free_port()


def models(stack):
    host = stack.upstream_base[:-len("/v1")]
    return harness.protocol_models(stack) + [
        {"model_name": "claude-drop", "litellm_params": {
            "model": "anthropic/claude-sonnet-4-20250514", "api_base": host,
            "api_key": "os.environ/GROQ_API_KEY", "drop_params": True}},
        {"model_name": "gpt-search", "litellm_params": {
            "model": "openai/gpt-4o-mini-2024-07-18", "api_base": stack.upstream_base,
            "api_key": "os.environ/GROQ_API_KEY"}},
        {"model_name": "claude-dead", "litellm_params": {  # nothing listens there
            "model": "anthropic/claude-sonnet-4-20250514",
            "api_base": "http://127.0.0.1:%d" % DEAD_PORT, "api_key": "x"}}]


class MessagesResponsesTest(harness.StackTestCase):
    stack_options = {"extra_models": models, "extra_config": {
        "router_settings": {"fallbacks": [{"claude-dead": ["claude"]}]}}}

    def key(self, **fields):
        body = {"key_alias": "mr-%s" % uuid.uuid4().hex[:12]}
        body.update(fields)
        _, _, k = self.stack.report("POST", "/key/generate", body, key=MASTER_KEY)
        self._keys.append(k["key"])
        return k["key"]

    def setUp(self):
        self._keys = []

    def row(self, rid):
        return wait_for(lambda: self.stack.sql(
            "SELECT spend, call_type, model_group, end_user, prompt_tokens, completion_tokens"
            " FROM spend_logs WHERE request_id = '%s'" % rid), 10)[0]

    def messages(self, key, body, headers=None, path="/v1/messages"):
        h = {"x-api-key": key, "anthropic-version": "2023-06-01"}
        h.update(headers or {})
        return self.stack.proxy("POST", path, body, headers=h)

    def test_messages_priced_with_cache_writes_and_reads(self):
        key = self.key()
        usage = {"input_tokens": 100, "output_tokens": 50, "cache_read_input_tokens": 30,
                 "cache_creation_input_tokens": 30,
                 "cache_creation": {"ephemeral_5m_input_tokens": 20,
                                    "ephemeral_1h_input_tokens": 10}}
        st, h, ans = self.messages(key, {
            "model": "claude", "max_tokens": 64, "mock_usage_raw": usage,
            "messages": [{"role": "user", "content": "hi"}],
            "metadata": {"user_id": "claude-user", "tags": ["team:a"]}},
            headers={"anthropic-beta": "prompt-caching-2024-07-31"})
        self.assertEqual(st, 200, ans)
        self.assertEqual(ans["type"], "message")
        cost = sonnet_cost(100, 50, read=30, w5=20, w1=10)
        self.assertEqual(Decimal(h["x-litellm-response-cost"]), cost)
        row = self.row(h["x-litellm-call-id"])
        self.assertEqual(Decimal(row[0]), cost)
        self.assertEqual(row[1:4], ["anthropic_messages", "claude", "claude-user"])
        self.assertEqual(int(row[4]), 160)  # input + cache reads + cache writes
        sent = [r for r in self.stack.upstream_requests() if "messages" in r.get("path", "")][-1]
        self.assertEqual(sent["body"]["model"], "claude-sonnet-4-20250514")
        self.assertEqual(sent["body"]["metadata"], {"user_id": "claude-user"})
        self.assertEqual(sent["headers"].get("anthropic-version"), "2023-06-01")
        self.assertEqual(sent["headers"].get("anthropic-beta"), "prompt-caching-2024-07-31")

    def test_messages_web_searches_priced(self):
        key = self.key()
        st, h, ans = self.messages(key, {
            "model": "claude", "max_tokens": 64, "messages": [{"role": "user", "content": "news"}],
            "mock_usage_raw": {"input_tokens": 900, "output_tokens": 60,
                               "server_tool_use": {"web_search_requests": 2}}})
        self.assertEqual(st, 200, ans)
        cost = sonnet_cost(900, 60) + 2 * Decimal("0.01")  # search_context_cost_per_query
        self.assertEqual(Decimal(h["x-litellm-response-cost"]), cost)
        self.assertEqual(Decimal(self.row(h["x-litellm-call-id"])[0]), cost)

    def test_response_ids_belong_to_their_user(self):
        alice, alice2, bob = (self.key(user_id="alice-r"), self.key(user_id="alice-r"),
                              self.key(user_id="bob-r"))
        st, _, ans = self.stack.proxy("POST", "/v1/responses", {"model": "gpt", "input": "hi"},
                                      key=alice)
        self.assertEqual(st, 200, ans)
        st, _, err = self.stack.proxy("GET", "/v1/responses/" + ans["id"], key=bob)
        self.assertEqual(st, 403, err)
        self.assertIn("not associated with the user", err["error"]["message"])
        st, _, _ = self.stack.proxy("DELETE", "/v1/responses/" + ans["id"], key=bob)
        self.assertEqual(st, 403)
        for k in (alice2, MASTER_KEY):  # the same user's other key; the master key
            st, _, got = self.stack.proxy("GET", "/v1/responses/" + ans["id"], key=k)
            self.assertEqual((st, got["id"]), (200, ans["id"]))
        # The id is signed: without its owner part (or any other change) it is not ours.
        rid = ans["id"]
        forged = rid[:len("resp_tg") + 8] + rid[len("resp_tg") + 8 + 13:]
        self.assertEqual(rid[len("resp_tg") + 8], "u")
        st, _, _ = self.stack.proxy("GET", "/v1/responses/" + forged, key=bob)
        self.assertEqual(st, 404)
        st, _, _ = self.stack.proxy("GET", "/v1/responses/" + rid[:-1] + "x", key=alice)
        self.assertEqual(st, 404)
        # previous_response_id: to the same deployment, as the upstream's id; the same owner.
        st, _, nxt = self.stack.proxy("POST", "/v1/responses", {
            "model": "gpt", "input": "and then?", "previous_response_id": rid}, key=alice2)
        self.assertEqual(st, 200, nxt)
        sent = [r for r in self.stack.upstream_requests() if r.get("method") == "POST"
                and r.get("path", "").endswith("/responses")][-1]
        self.assertEqual(sent["body"]["previous_response_id"], rid.split("_", 2)[2])
        st, _, err = self.stack.proxy("POST", "/v1/responses", {
            "model": "gpt", "input": "x", "previous_response_id": rid}, key=bob)
        self.assertEqual(st, 403, err)
        st, _, err = self.stack.proxy("POST", "/v1/responses", {
            "model": "gpt-azure", "input": "x", "previous_response_id": rid}, key=alice)
        self.assertEqual(st, 400, err)
        self.assertIn("model group gpt", err["error"]["message"])

    def test_response_ids_work_on_another_proxyd(self):
        key = self.key()
        st, _, ans = self.stack.proxy("POST", "/v1/responses", {"model": "gpt-azure",
                                                               "input": "hi"}, key=key)
        self.assertEqual(st, 200, ans)
        other = self.stack.add_proxyd("proxyd-ids")
        st, _, got = self.stack.http("GET", other, "/v1/responses/" + ans["id"], key=key)
        self.assertEqual((st, got["id"], got["status"]), (200, ans["id"], "completed"))
        sent = [r for r in self.stack.upstream_requests() if r.get("method") == "GET"][-1]
        self.assertIn("/openai/responses/", sent["path"])  # the Azure deployment's path

    def test_messages_above_200k_tier_and_bearer_key(self):
        key = self.key()
        st, h, ans = self.stack.proxy("POST", "/messages", {
            "model": "claude", "max_tokens": 64, "messages": [{"role": "user", "content": "x"}],
            "mock_usage_raw": {"input_tokens": 250000, "output_tokens": 10}}, key=key,
            headers={"anthropic-version": "2023-06-01"})
        self.assertEqual(st, 200, ans)
        cost = sonnet_cost(250000, 10)
        self.assertEqual(Decimal(h["x-litellm-response-cost"]), cost)
        self.assertEqual(Decimal(self.row(h["x-litellm-call-id"])[0]), cost)

    def test_messages_stream_relayed_and_priced(self):
        key = self.key()
        st, h, text = self.messages(key, {
            "model": "claude", "max_tokens": 64, "stream": True,
            "messages": [{"role": "user", "content": "count"}],
            "mock_content": "one two three",
            "mock_usage_raw": {"input_tokens": 40, "output_tokens": 3,
                               "cache_read_input_tokens": 8}})
        self.assertEqual(st, 200, text)
        names = [n for n, _ in sse_events(text)]
        self.assertEqual(names[0], "message_start")
        self.assertEqual(names[-1], "message_stop")
        self.assertIn("message_delta", names)
        self.assertEqual(names.count("content_block_delta"), 3)
        row = self.row(h["x-litellm-call-id"])
        self.assertEqual(Decimal(row[0]), sonnet_cost(40, 3, read=8))
        self.assertEqual(row[4:6], ["48", "3"])
        # message_delta may say null for the counts message_start gave: those stand.
        st, h, text = self.messages(key, {
            "model": "claude", "max_tokens": 64, "stream": True,
            "messages": [{"role": "user", "content": "count"}], "mock_content": "one two three",
            "mock_usage_raw": {"input_tokens": 40, "output_tokens": 1,
                               "cache_read_input_tokens": 8},
            "mock_delta_usage_raw": {"input_tokens": None, "output_tokens": 3,
                                     "cache_read_input_tokens": None}})
        self.assertEqual(st, 200, text)
        self.assertEqual(Decimal(self.row(h["x-litellm-call-id"])[0]), sonnet_cost(40, 3, read=8))

    def test_count_tokens_relayed_never_charged(self):
        key = self.key()
        st, h, ans = self.messages(key, {
            "model": "claude", "messages": [{"role": "user", "content": "hi"}]},
            path="/v1/messages/count_tokens")
        self.assertEqual(st, 200, ans)
        self.assertIn("input_tokens", ans)
        self.assertEqual(self.stack.sql(
            "SELECT COUNT(*) FROM spend_logs WHERE request_id = '%s'"
            % h["x-litellm-call-id"]), [["0"]])

    def test_anthropic_shaped_refusals(self):
        st, _, ans = self.messages("sk-not-a-key", {"model": "claude", "max_tokens": 5,
                                                    "messages": []})
        self.assertEqual(st, 401)
        self.assertEqual(ans["type"], "error")
        self.assertEqual(ans["error"]["type"], "authentication_error")
        key = self.key()
        st, _, ans = self.messages(key, {"model": "nope", "max_tokens": 5,
                                         "messages": [{"role": "user", "content": "x"}]})
        self.assertEqual((st, ans["type"], ans["error"]["type"]),
                         (400, "error", "invalid_request_error"))
        spent = self.key(max_budget=0.000001)
        self.messages(spent, {"model": "claude", "max_tokens": 5,
                              "messages": [{"role": "user", "content": "x"}],
                              "mock_usage_raw": {"input_tokens": 1000, "output_tokens": 10}})
        st, _, ans = wait_for(lambda: (lambda r: r if r[0] == 400 else None)(
            self.messages(spent, {"model": "claude", "max_tokens": 5,
                                  "messages": [{"role": "user", "content": "x"}]})), 10)
        self.assertEqual(ans["type"], "error")
        self.assertIn("Budget has been exceeded", ans["error"]["message"])

    def test_allow_list_refused_on_every_route(self):
        key = self.key(models=["gpt"])
        st, _, ans = self.messages(key, {"model": "claude", "max_tokens": 5,
                                         "messages": [{"role": "user", "content": "x"}]})
        self.assertEqual((st, ans["error"]["type"]), (401, "authentication_error"))
        st, _, ans = self.stack.proxy("POST", "/v1/responses", {"model": "claude", "input": "x"},
                                      key=key)
        self.assertEqual(st, 401)
        st, _, ans = self.stack.chat(key, model="claude")
        self.assertEqual(st, 401)
        st, _, ans = self.messages(key, {"model": "claude", "messages": [
            {"role": "user", "content": "x"}]}, path="/v1/messages/count_tokens")
        self.assertEqual((st, ans["type"]), (401, "error"))
        st, _, _ = self.stack.proxy("POST", "/v1/responses", {"model": "gpt", "input": "x"},
                                    key=key)
        self.assertEqual(st, 200)

    def test_responses_priced_with_cache_and_reasoning(self):
        key = self.key()
        usage = {"input_tokens": 120, "input_tokens_details": {"cached_tokens": 20},
                 "output_tokens": 60, "output_tokens_details": {"reasoning_tokens": 25},
                 "total_tokens": 180}
        st, h, ans = self.stack.proxy("POST", "/v1/responses", {
            "model": "gpt", "input": "hello", "mock_usage_raw": usage,
            "metadata": {"tags": ["team:r"], "purpose": "test"}}, key=key)
        self.assertEqual(st, 200, ans)
        cost = gpt4o_cost(120, 60, cached=20)
        self.assertEqual(Decimal(h["x-litellm-response-cost"]), cost)
        row = self.row(h["x-litellm-call-id"])
        self.assertEqual(Decimal(row[0]), cost)
        self.assertEqual(row[1], "responses")
        sent = [r for r in self.stack.upstream_requests() if r.get("path", "").endswith(
            "/responses")][-1]
        self.assertEqual(sent["body"]["metadata"], {"purpose": "test"})
        # The id leads back to the deployment: retrieve, input_items, delete.
        rid = ans["id"]
        self.assertTrue(rid.startswith("resp_tg"), rid)
        st, _, got = self.stack.proxy("GET", "/v1/responses/" + rid, key=key)
        self.assertEqual((st, got["id"], got["status"]), (200, rid, "completed"))
        st, _, items = self.stack.proxy("GET", "/v1/responses/%s/input_items" % rid, key=key)
        self.assertEqual((st, items["object"]), (200, "list"))
        st, _, gone = self.stack.proxy("DELETE", "/v1/responses/" + rid, key=key)
        self.assertEqual((st, gone["id"], gone["deleted"]), (200, rid, True))
        st, _, _ = self.stack.proxy("GET", "/v1/responses/" + rid, key=key)
        self.assertEqual(st, 404)
        st, _, err = self.stack.proxy("GET", "/v1/responses/resp_unknown", key=key)
        self.assertEqual(st, 404, err)
        only_claude = self.key(models=["claude"])
        st, _, _ = self.stack.proxy("GET", "/v1/responses/" + rid, key=only_claude)
        self.assertEqual(st, 401)

    def test_responses_web_searches_priced(self):
        key = self.key()
        usage = {"input_tokens": 300, "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens": 40, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": 340}
        for size, stream in (("low", False), (None, True)):
            tool = {"type": "web_search_preview"}
            if size:
                tool["search_context_size"] = size
            st, h, ans = self.stack.proxy("POST", "/v1/responses", {
                "model": "gpt-search", "input": "news", "tools": [tool], "stream": stream,
                "mock_web_search_calls": 2, "mock_usage_raw": usage}, key=key)
            self.assertEqual(st, 200, ans)
            cost = 300 * MINI["in"] + 40 * MINI["out"] + 2 * MINI[size or "medium"]
            if not stream:
                self.assertEqual(Decimal(h["x-litellm-response-cost"]), cost)
            self.assertEqual(Decimal(self.row(h["x-litellm-call-id"])[0]), cost)

    def test_background_cancel_billed(self):
        key = self.key()
        usage = {"input_tokens": 50, "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens": 0, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": 50}
        st, h, ans = self.stack.proxy("POST", "/v1/responses", {
            "model": "gpt", "input": "long job", "background": True,
            "mock_background_ms": 60000, "mock_usage_raw": usage}, key=key)
        self.assertEqual((st, ans["status"]), (200, "queued"), ans)
        st, _, got = self.stack.proxy("POST", "/v1/responses/%s/cancel" % ans["id"], key=key)
        self.assertEqual((st, got["status"], got["id"]), (200, "cancelled", ans["id"]), got)
        st, _, again = self.stack.proxy("GET", "/v1/responses/" + ans["id"], key=key)
        self.assertEqual((st, again["status"]), (200, "cancelled"))
        sent = [r for r in self.stack.upstream_requests() if "/cancel" in r.get("path", "")]
        self.assertEqual(len(sent), 1)
        self.assertNotIn("resp_tg", sent[0]["path"])  # the upstream's own id

    def test_responses_stream_on_azure(self):
        key = self.key()
        st, h, text = self.stack.proxy("POST", "/responses", {
            "model": "gpt-azure", "input": "hello", "stream": True, "mock_content": "a b c d",
            "mock_usage_raw": {"input_tokens": 30, "input_tokens_details": {"cached_tokens": 0},
                               "output_tokens": 4, "output_tokens_details":
                               {"reasoning_tokens": 0}, "total_tokens": 34}}, key=key)
        self.assertEqual(st, 200, text)
        events = sse_events(text)
        names = [n for n, _ in events]
        self.assertEqual(names[0], "response.created")
        self.assertEqual(names[-1], "response.completed")
        self.assertEqual(names.count("response.output_text.delta"), 4)
        ids = {d["response"]["id"] for _, d in events if "response" in d}
        self.assertEqual(len(ids), 1)
        self.assertTrue(ids.pop().startswith("resp_tg"))
        row = self.row(h["x-litellm-call-id"])
        self.assertEqual(Decimal(row[0]), gpt4o_cost(30, 4))
        sent = [r for r in self.stack.upstream_requests() if "responses" in r.get("path", "")][-1]
        self.assertIn("/openai/responses", sent["path"])

    def test_chat_to_anthropic_group_translated(self):
        key = self.key()
        tools = [{"type": "function", "function": {
            "name": "get_weather", "description": "Weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
        mocks = {"mock_content": "Let me check.",
                 "mock_tool_use": {"id": "toolu_01", "name": "get_weather",
                                   "input": {"city": "Paris"}},
                 "mock_usage_raw": {"input_tokens": 70, "output_tokens": 20,
                                    "cache_read_input_tokens": 5}}
        chat = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": None, "tool_calls": [{
                    "id": "toolu_00", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}]},
                {"role": "tool", "tool_call_id": "toolu_00", "content": "sunny"}]
        native = [{"role": "user", "content": "Weather in Paris?"}]
        st, _, msg = self.messages(key, dict(model="claude", max_tokens=64, messages=native,
                                             **mocks))
        self.assertEqual(st, 200, msg)
        text = "".join(b["text"] for b in msg["content"] if b["type"] == "text")
        tool = [b for b in msg["content"] if b["type"] == "tool_use"][0]
        st, h, ans = self.stack.chat(key, model="claude", messages=chat, tools=tools, **mocks)
        self.assertEqual(st, 200, ans)
        choice = ans["choices"][0]
        self.assertEqual(choice["message"]["content"], text)
        call = choice["message"]["tool_calls"][0]
        self.assertEqual((call["id"], call["function"]["name"]), (tool["id"], tool["name"]))
        self.assertEqual(json.loads(call["function"]["arguments"]), tool["input"])
        self.assertEqual(choice["finish_reason"], "tool_calls")
        self.assertEqual(ans["usage"]["prompt_tokens"], 75)
        self.assertEqual(ans["usage"]["prompt_tokens_details"]["cached_tokens"], 5)
        cost = sonnet_cost(70, 20, read=5)
        self.assertEqual(Decimal(h["x-litellm-response-cost"]), cost)
        self.assertEqual(Decimal(self.row(h["x-litellm-call-id"])[0]), cost)
        sent = [r for r in self.stack.upstream_requests() if "messages" in r.get("path", "")][-1]
        self.assertEqual(sent["body"]["system"], "Be brief.")
        self.assertEqual(sent["body"]["tools"][0]["name"], "get_weather")
        self.assertEqual(sent["body"]["messages"][-1]["content"][0]["type"], "tool_result")
        # Streamed: the same text and tool call, as chat.completion.chunk events.
        st, h, text_body = self.stack.chat(key, model="claude", messages=chat, tools=tools,
                                           stream=True, stream_options={"include_usage": True},
                                           **mocks)
        self.assertEqual(st, 200, text_body)
        chunks = [d for _, d in sse_events(text_body)]
        self.assertEqual(chunks[-1], "[DONE]")
        chunks = chunks[:-1]
        self.assertTrue(all(c["object"] == "chat.completion.chunk" for c in chunks))
        streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks
                           if c["choices"])
        self.assertEqual(streamed, text)
        args = "".join(tc["function"].get("arguments") or "" for c in chunks if c["choices"]
                       for tc in c["choices"][0]["delta"].get("tool_calls") or [])
        self.assertEqual(json.loads(args), tool["input"])
        self.assertEqual(Decimal(str(chunks[-1]["usage"]["cost"])), cost)
        self.assertEqual(Decimal(self.row(h["x-litellm-call-id"])[0]), cost)
        # OpenAI parameters Anthropic lacks: a 400 naming them, or dropped with drop_params.
        st, _, err = self.stack.chat(key, model="claude", logprobs=True, seed=3)
        self.assertEqual(st, 400, err)
        self.assertIn("logprobs", err["error"]["message"])
        st, _, ans = self.stack.chat(key, model="claude-drop", logprobs=True, seed=3)
        self.assertEqual(st, 200, ans)
        sent = [r for r in self.stack.upstream_requests() if "messages" in r.get("path", "")][-1]
        self.assertNotIn("logprobs", sent["body"])
        self.assertNotIn("seed", sent["body"])

    def test_background_response_billed_once_to_its_creator(self):
        creator_key = self.key(metadata={"k": "v"})
        other_key = self.key()
        usage = {"input_tokens": 500, "input_tokens_details": {"cached_tokens": 100},
                 "output_tokens": 80, "output_tokens_details": {"reasoning_tokens": 30},
                 "total_tokens": 580}
        st, h, ans = self.stack.proxy("POST", "/v1/responses", {
            "model": "gpt", "input": "think", "background": True, "mock_background_ms": 500,
            "mock_usage_raw": usage, "user": "bg-user", "metadata": {"tags": ["bg:tag"]}},
            key=creator_key)
        self.assertEqual((st, ans["status"]), (200, "queued"), ans)
        creator = h["x-litellm-call-id"]
        self.assertEqual(Decimal(self.row(creator)[0]), 0)
        rid = ans["id"]
        st, _, got = self.stack.proxy("GET", "/v1/responses/" + rid, key=other_key)
        self.assertEqual((st, got["status"]), (200, "in_progress"))
        digest = hashlib.sha256(("background:" + creator).encode()).hexdigest()
        billed = "%s-%s-8%s-%s-%s" % (digest[:8], digest[8:12], digest[13:16], digest[16:20],
                                     digest[20:32])
        time.sleep(0.3)
        self.assertEqual(self.stack.sql("SELECT COUNT(*) FROM spend_logs WHERE request_id = '%s'"
                                        % billed), [["0"]])
        time.sleep(0.4)
        for _ in range(3):  # every retrieve shows the end; one row
            st, _, got = self.stack.proxy("GET", "/v1/responses/" + rid, key=other_key)
            self.assertEqual((st, got["status"], got["id"]), (200, "completed", rid))
        row = wait_for(lambda: self.stack.sql(
            "SELECT spend, call_type, api_key, end_user, request_tags, prompt_tokens,"
            " completion_tokens FROM spend_logs WHERE request_id = '%s'" % billed), 10)
        time.sleep(0.5)
        self.assertEqual(len(row), 1)
        creator_row = self.stack.sql("SELECT api_key FROM spend_logs WHERE request_id = '%s'"
                                     % creator)[0]
        cost = gpt4o_cost(500, 80, cached=100)
        self.assertEqual(Decimal(row[0][0]), cost)
        self.assertEqual(row[0][1:4], ["responses", creator_row[0], "bg-user"])
        self.assertEqual(json.loads(row[0][4]), ["bg:tag"])
        self.assertEqual(row[0][5:], ["500", "80"])
        self.assertEqual(self.stack.sql("SELECT COUNT(*) FROM spend_logs WHERE request_id = '%s'"
                                        % billed), [["1"]])

    def test_messages_fall_back_like_chat(self):
        key = self.key()
        st, h, ans = self.messages(key, {
            "model": "claude-dead", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}],
            "mock_usage_raw": {"input_tokens": 11, "output_tokens": 2}})
        self.assertEqual(st, 200, ans)
        self.assertEqual(ans["type"], "message")
        row = self.row(h["x-litellm-call-id"])
        self.assertEqual(Decimal(row[0]), sonnet_cost(11, 2))
        self.assertEqual(row[2], "claude-dead")

    def test_messages_to_openai_group_refused(self):
        key = self.key()
        st, _, ans = self.messages(key, {"model": "gpt", "max_tokens": 5,
                                         "messages": [{"role": "user", "content": "x"}]})
        self.assertEqual((st, ans["type"]), (400, "error"))
        self.assertIn("anthropic/", ans["error"]["message"])


def open_stream(port, path, body, key, deltas, marker):
    """Starts a stream and reads until `deltas` events containing marker
    arrived; returns (connection, call id, text read)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", path, body=json.dumps(body).encode(), headers={
        "Content-Type": "application/json", "Authorization": "Bearer " + key,
        "anthropic-version": "2023-06-01"})
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()
    seen = b""
    while seen.count(marker.encode()) < deltas:
        chunk = resp.read1(65536)
        assert chunk, "stream ended early: %r" % seen
        seen += chunk
    return conn, resp.getheader("x-litellm-call-id"), seen.decode()


class StreamKillTest(harness.StackTestCase):
    """kill -9 of proxyd in the middle of streams: after a restart the ledger
    holds each, cut, with the tokens relayed before the kill, exactly once."""
    stack_options = {"extra_models": models}

    def test_kill_9_mid_streams(self):
        _, _, k = self.stack.report("POST", "/key/generate", {"key_alias": "kill"},
                                    key=MASTER_KEY)
        key, port = k["key"], self.stack.proxyd_port
        words = "alpha beta gamma delta epsilon zeta"
        stall = {"mock_content": words, "mock_stall_after_chunks": 3}
        msg = open_stream(port, "/v1/messages", dict(
            model="claude", max_tokens=64, stream=True,
            messages=[{"role": "user", "content": "count"}],
            mock_usage_raw={"input_tokens": 40, "output_tokens": 6,
                            "cache_read_input_tokens": 8}, **stall),
            key, 3, '"text_delta"')
        resp = open_stream(port, "/v1/responses", dict(
            model="gpt", input="count", stream=True, **stall), key, 3,
            "response.output_text.delta")
        chat = open_stream(port, "/v1/chat/completions", dict(
            model="llama3", messages=[{"role": "user", "content": "count"}], stream=True,
            **stall), key, 3, '"content"')
        time.sleep(0.2)  # proxyd notes a stream's progress at most every 25 ms
        self.stack.crash("proxyd")
        for conn, _, _ in (msg, resp, chat):
            conn.close()
        ids = [msg[1], resp[1], chat[1]]
        self.assertEqual(self.stack.sql("SELECT COUNT(*) FROM spend_logs WHERE request_id IN"
                                        " ('%s')" % "','".join(ids)), [["0"]])
        self.stack.restart("proxyd")
        rows = wait_for(lambda: (lambda r: r if len(r) == 3 else None)(self.stack.sql(
            "SELECT request_id, spend, prompt_tokens, completion_tokens, usage_estimated,"
            " call_type FROM spend_logs WHERE request_id IN ('%s')" % "','".join(ids))), 15)
        got = {r[0]: r[1:] for r in rows}
        # Messages: the prompt as message_start reported it (40 + 8 cache reads), the
        # text relayed: "alpha beta gamma " is 4 tokens (alpha, " beta", " gamma", " ").
        self.assertEqual(got[msg[1]][1:], ["48", "4", "1", "anthropic_messages"])
        self.assertEqual(Decimal(got[msg[1]][0]), sonnet_cost(40, 4, read=8))
        # Responses and chat: no usage before the end; prompt counted locally.
        self.assertEqual(got[resp[1]][2:], ["4", "1", "responses"])
        self.assertGreater(int(got[resp[1]][1]), 0)
        self.assertEqual(got[chat[1]][2:], ["4", "1", "chat_completion"])
        # Exactly once: another restart sends nothing again.
        self.stack.crash("proxyd")
        self.stack.restart("proxyd")
        time.sleep(1.0)
        self.assertEqual(self.stack.sql("SELECT COUNT(*) FROM spend_logs WHERE request_id IN"
                                        " ('%s')" % "','".join(ids)), [["3"]])


if __name__ == "__main__":
    unittest.main()
