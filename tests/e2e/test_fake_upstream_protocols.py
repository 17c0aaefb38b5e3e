"""test_fake_upstream_protocols.py - fake-upstream's Anthropic Messages API and
OpenAI Responses API.

The gateway's Anthropic and Responses tests need a mock that speaks both wire
formats as the real services do. This file starts bin/fake-upstream alone
(no MariaDB, no daemons) and checks, over real HTTP:

Anthropic (POST /v1/messages, /messages, /v1/messages/count_tokens):
- x-api-key is required with --api-key (401 authentication_error, Anthropic's
  error shape; a Bearer key is not enough), anthropic-version too, and the body
  needs model, a positive max_tokens and a non-empty messages (400
  invalid_request_error);
- the answer's shape, mock_usage's Anthropic names (cache_creation and
  server_tool_use included), mock_usage_raw verbatim, mock_status with the
  error type of each status, mock_tool_use (with and without text);
- streams: the event sequence (event: lines matching each data's type),
  one word per text_delta, the tool input in >= 2 input_json_delta pieces,
  message_delta's cumulative usage, mock_stream_error, a stall that never
  sends message_delta, first-byte and chunk delays;
- count_tokens, the --log line with the anthropic-version and anthropic-beta
  headers, --fail-first answered Anthropic's way.

Responses (POST /v1/responses, /responses, Azure /openai/responses?api-version):
- the response object, its validation, mock_usage's names, mock_usage_raw,
  mock_status, mock_web_search_calls;
- streams: the event sequence, sequence numbers, no [DONE], the stall;
- stored responses: GET, DELETE, cancel (400 once completed), input_items
  (newest first unless order=asc), store: false, 404s; background responses
  queued -> in_progress -> completed after mock_background_ms, or cancelled
  for good; the same on Azure's paths with api-key; the store's bound;
- GET and DELETE requests are in the --log with their method.

fake-upstream exits 0 on SIGTERM (under AddressSanitizer: no leak).

Run from the repo root:  python3 tests/e2e/run.py tests/e2e/test_fake_upstream_protocols.py
"""

import http.client
import json
import os
import re
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fake_process import FakeUpstream  # noqa: E402
from harness import wait_for  # noqa: E402

API_KEY = "fake-upstream-protocols-key"
VERSION = "2023-06-01"
STORE_MAX = 10000

ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                   403: "permission_error", 404: "not_found_error", 429: "rate_limit_error",
                   500: "api_error", 529: "overloaded_error"}
ANTHROPIC_USAGE = {"input_tokens": 10, "output_tokens": 20, "cache_creation_input_tokens": 0,
                   "cache_read_input_tokens": 0}
RESPONSES_USAGE = {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0},
                   "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 0},
                   "total_tokens": 30}
# Members no upstream sends, so a recomputed object cannot pass for it.
RAW_USAGE = {"input_tokens": 5, "output_tokens": 6, "cache_read_input_tokens": 1,
             "x_extra": [1, None, True, "s"]}


def sse_events(test, raw):
    """[(event name, parsed data)] of an "event: X\\ndata: {...}" stream,
    checking that each name is its data's type."""
    test.assertTrue(raw.endswith(b"\n\n"), raw[-200:])
    events = []
    for block in raw.split(b"\n\n")[:-1]:
        m = re.fullmatch(rb"event: ([a-z_.]+)\ndata: (\{.*\})", block, re.S)
        test.assertIsNotNone(m, block)
        data = json.loads(m.group(2))
        test.assertEqual(data["type"], m.group(1).decode(), block)
        events.append((m.group(1).decode(), data))
    return events


class Base(unittest.TestCase):
    fake_args = ()

    @classmethod
    def setUpClass(cls):
        cls.fake = FakeUpstream(API_KEY, *cls.fake_args)

    @classmethod
    def tearDownClass(cls):
        cls.fake.stop()

    def stats(self):
        return json.loads(self.fake.request("GET", "/stats")[2])

    def stall(self, path, body, headers, until, seconds=0.4):
        """Open a stream over a raw socket, read until `until` occurrences of
        b"_delta" (Anthropic) or b".delta\"" (Responses) are in, check that
        nothing more comes for `seconds`, leave; the bytes read."""
        data = json.dumps(body).encode()
        head = ["POST %s HTTP/1.1" % path, "Host: 127.0.0.1", "Content-Type: application/json",
                "Content-Length: %d" % len(data)] + ["%s: %s" % kv for kv in headers.items()]
        before = self.stats()["cancelled_streams"]
        sock = socket.create_connection(("127.0.0.1", self.fake.port), timeout=10)
        try:
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + data)
            got = b""
            while got.count(until[0]) < until[1]:
                chunk = sock.recv(65536)
                self.assertTrue(chunk, "the stream ended early: %r" % got[-300:])
                got += chunk
            time.sleep(seconds)
            sock.settimeout(0.05)
            try:
                more = sock.recv(65536)
            except socket.timeout:
                more = b""
            got += more
        finally:
            sock.close()
        wait_for(lambda: self.stats()["cancelled_streams"] == before + 1, 10,
                 message="fake-upstream did not notice the client leaving")
        return got


# ------------------------------------------------------------------ Anthropic

class AnthropicTest(Base):
    HEADERS = {"x-api-key": API_KEY, "anthropic-version": VERSION,
               "content-type": "application/json"}

    def body(self, **fields):
        return dict({"model": "claude-sonnet-4-5", "max_tokens": 100,
                     "messages": [{"role": "user", "content": "hi"}]}, **fields)

    def post(self, body, path="/v1/messages", headers=None):
        h = dict(self.HEADERS) if headers is None else headers
        return self.fake.request("POST", path, body, h)

    def answer(self, body, path="/v1/messages"):
        status, headers, raw = self.post(body, path)
        self.assertEqual(status, 200, raw)
        self.assertEqual(headers["content-type"], "application/json")
        return raw, json.loads(raw)

    def assertError(self, status, raw, code, *needles):
        self.assertEqual(status, code, raw)
        err = json.loads(raw)
        self.assertEqual(set(err), {"type", "error"}, err)
        self.assertEqual(err["type"], "error")
        self.assertEqual(err["error"]["type"], ANTHROPIC_TYPES[code], err)
        for needle in needles:
            self.assertIn(needle, err["error"]["message"])

    def stream(self, body):
        status, headers, raw = self.post(dict(body, stream=True))
        self.assertEqual(status, 200, raw)
        self.assertEqual(headers["content-type"], "text/event-stream")
        self.assertNotIn(b"[DONE]", raw)
        return sse_events(self, raw)

    # -- plain answers

    def test_answer_shape(self):
        for path in ("/v1/messages", "/messages"):
            with self.subTest(path=path):
                _, ans = self.answer(self.body(), path)
                self.assertRegex(ans.pop("id"), r"^msg_[0-9a-f]{16,}$")
                self.assertEqual(ans, {
                    "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                    "content": [{"type": "text", "text": "This is a fake answer."}],
                    "stop_reason": "end_turn", "stop_sequence": None,
                    "usage": ANTHROPIC_USAGE})

    def test_ids_differ(self):
        ids = {self.answer(self.body())[1]["id"] for _ in range(5)}
        self.assertEqual(len(ids), 5)

    def test_content_and_chunks(self):
        _, ans = self.answer(self.body(mock_content="ab ", mock_chunks=3))
        self.assertEqual(ans["content"], [{"type": "text", "text": "ab ab ab "}])

    def test_key_is_required(self):
        for headers in ({"anthropic-version": VERSION},
                        {"anthropic-version": VERSION, "x-api-key": "wrong"},
                        {"anthropic-version": VERSION, "authorization": "Bearer " + API_KEY},
                        {"anthropic-version": VERSION, "api-key": API_KEY}):
            with self.subTest(headers=headers):
                status, _, raw = self.post(self.body(), headers=headers)
                self.assertError(status, raw, 401)

    def test_version_is_required(self):
        status, _, raw = self.post(self.body(), headers={"x-api-key": API_KEY})
        self.assertError(status, raw, 400, "anthropic-version")
        status, _, raw = self.post(self.body(), "/v1/messages/count_tokens",
                                   headers={"x-api-key": API_KEY})
        self.assertError(status, raw, 400, "anthropic-version")

    def test_body_is_checked(self):
        base = self.body()
        cases = [("model", None), ("model", 5), ("max_tokens", None), ("max_tokens", 0),
                 ("max_tokens", -1), ("max_tokens", "100"), ("max_tokens", 1.5),
                 ("messages", None), ("messages", []), ("messages", "hi")]
        for key, value in cases:
            with self.subTest(key=key, value=value):
                body = dict(base)
                if value is None:
                    del body[key]
                else:
                    body[key] = value
                status, _, raw = self.post(body)
                self.assertError(status, raw, 400, key)
        status, _, raw = self.post(b"{not json")
        self.assertError(status, raw, 400)

    def test_mock_usage_names(self):
        usage = {"input_tokens": 1200, "output_tokens": 345, "cache_read_input_tokens": 1000,
                 "cache_creation_input_tokens": 150,
                 "cache_creation": {"ephemeral_5m_input_tokens": 100,
                                    "ephemeral_1h_input_tokens": 50},
                 "server_tool_use": {"web_search_requests": 3}}
        _, ans = self.answer(self.body(mock_usage=usage))
        self.assertEqual(ans["usage"], usage)
        # cache_creation_input_tokens defaults to the sum of cache_creation's
        _, ans = self.answer(self.body(mock_usage={
            "input_tokens": 7, "cache_creation": {"ephemeral_5m_input_tokens": 2,
                                                  "ephemeral_1h_input_tokens": 3}}))
        self.assertEqual(ans["usage"]["cache_creation_input_tokens"], 5)
        self.assertEqual(ans["usage"]["input_tokens"], 7)
        self.assertEqual(ans["usage"]["output_tokens"], 20)
        for bad in ({"input_tokens": -1}, {"output_tokens": "2"}, {"cache_creation": 5},
                    {"server_tool_use": {"web_search_requests": 1.5}}, []):
            with self.subTest(bad=bad):
                status, _, raw = self.post(self.body(mock_usage=bad))
                self.assertError(status, raw, 400, "mock_usage")

    def test_mock_usage_raw_is_verbatim(self):
        raw, ans = self.answer(self.body(mock_usage_raw=RAW_USAGE))
        self.assertEqual(ans["usage"], RAW_USAGE)
        self.assertIn(b'"usage":' + json.dumps(RAW_USAGE, separators=(",", ":")).encode(), raw)

    def test_mock_status_types(self):
        for code in ANTHROPIC_TYPES:
            with self.subTest(status=code):
                status, _, raw = self.post(self.body(mock_status=code))
                self.assertError(status, raw, code)
        status, _, raw = self.post(self.body(mock_status=529, stream=True))
        self.assertError(status, raw, 529)

    def test_tool_use(self):
        tool = {"name": "get_weather", "input": {"location": "Paris", "unit": "c"}}
        _, ans = self.answer(self.body(mock_tool_use=tool))
        self.assertEqual(ans["stop_reason"], "tool_use")
        self.assertEqual(len(ans["content"]), 1)
        block = ans["content"][0]
        self.assertRegex(block.pop("id"), r"^toolu_[0-9a-f]+$")
        self.assertEqual(block, dict(tool, type="tool_use"))
        _, ans = self.answer(self.body(mock_content="Let me look.",
                                       mock_tool_use=dict(tool, id="toolu_given")))
        self.assertEqual(ans["content"], [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_given", "name": "get_weather",
             "input": tool["input"]}])
        for bad in ({"input": {}}, {"name": 5}, {"name": "f", "input": []},
                    {"name": "f", "id": 1}, "f"):
            with self.subTest(bad=bad):
                status, _, raw = self.post(self.body(mock_tool_use=bad))
                self.assertError(status, raw, 400, "mock_tool_use")

    def test_first_byte_delay(self):
        start = time.monotonic()
        self.answer(self.body(mock_first_byte_delay_ms=300))
        self.assertGreaterEqual(time.monotonic() - start, 0.3)

    # -- streams

    def test_stream_events(self):
        events = self.stream(self.body(mock_content="one two three",
                                       mock_usage={"input_tokens": 40, "output_tokens": 9,
                                                   "cache_read_input_tokens": 30}))
        self.assertEqual([name for name, _ in events], [
            "message_start", "content_block_start", "ping", "content_block_delta",
            "content_block_delta", "content_block_delta", "content_block_stop",
            "message_delta", "message_stop"])
        start = events[0][1]["message"]
        self.assertRegex(start.pop("id"), r"^msg_[0-9a-f]+$")
        self.assertEqual(start, {
            "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 40, "output_tokens": 1,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 30}})
        self.assertEqual(events[1][1], {"type": "content_block_start", "index": 0,
                                        "content_block": {"type": "text", "text": ""}})
        deltas = [d for _, d in events[3:6]]
        self.assertEqual([d["delta"] for d in deltas],
                         [{"type": "text_delta", "text": t} for t in ("one ", "two ", "three")])
        self.assertEqual({d["index"] for d in deltas}, {0})
        self.assertEqual(events[6][1], {"type": "content_block_stop", "index": 0})
        self.assertEqual(events[7][1], {
            "type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"input_tokens": 40, "output_tokens": 9, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 30}})
        self.assertEqual(events[8][1], {"type": "message_stop"})

    def test_stream_tool_use(self):
        tool_input = {"location": "San Francisco, CA", "unit": "fahrenheit", "days": [1, 2]}
        events = self.stream(self.body(mock_content="Checking.", mock_tool_use={
            "id": "toolu_s", "name": "get_weather", "input": tool_input}))
        names = [name for name, _ in events]
        self.assertEqual(names[:7], ["message_start", "content_block_start", "ping",
                                     "content_block_delta", "content_block_stop",
                                     "content_block_start", "content_block_delta"])
        self.assertEqual(names[-4:], ["content_block_delta", "content_block_stop",
                                      "message_delta", "message_stop"])
        self.assertEqual(events[5][1]["content_block"],
                         {"type": "tool_use", "id": "toolu_s", "name": "get_weather",
                          "input": {}})
        self.assertEqual(events[5][1]["index"], 1)
        pieces = [d for _, d in events[6:-3]]
        self.assertGreaterEqual(len(pieces), 2)
        for d in pieces:
            self.assertEqual(d["index"], 1)
            self.assertEqual(d["delta"]["type"], "input_json_delta")
        self.assertEqual(json.loads("".join(d["delta"]["partial_json"] for d in pieces)),
                         tool_input)
        self.assertEqual(events[-2][1]["delta"]["stop_reason"], "tool_use")

    def test_stream_tool_use_without_text(self):
        events = self.stream(self.body(mock_tool_use={"name": "noop"}))
        self.assertEqual([name for name, _ in events], [
            "message_start", "content_block_start", "ping", "content_block_delta",
            "content_block_delta", "content_block_stop", "message_delta", "message_stop"])
        self.assertEqual(events[1][1]["index"], 0)
        self.assertEqual(events[1][1]["content_block"]["type"], "tool_use")
        self.assertEqual("".join(d["delta"]["partial_json"] for _, d in events[3:5]), "{}")

    def test_stream_usage_raw(self):
        events = self.stream(self.body(mock_usage_raw=RAW_USAGE))
        self.assertEqual(events[0][1]["message"]["usage"], RAW_USAGE)
        self.assertEqual(events[-2][1]["usage"], RAW_USAGE)

    def test_stream_error(self):
        events = self.stream(self.body(mock_content="a b", mock_stream_error="overloaded_error"))
        self.assertEqual([name for name, _ in events], [
            "message_start", "content_block_start", "ping", "content_block_delta",
            "content_block_delta", "error"])
        self.assertEqual(events[-1][1], {"type": "error", "error": {
            "type": "overloaded_error", "message": "Overloaded"}})
        status, _, raw = self.post(self.body(stream=True, mock_stream_error=5))
        self.assertError(status, raw, 400, "mock_stream_error")

    def test_stream_chunk_delay(self):
        start = time.monotonic()
        events = self.stream(self.body(mock_content="a b c d", mock_chunk_delay_ms=50,
                                       mock_first_byte_delay_ms=100))
        # 100 ms, then 10 events 50 ms apart
        self.assertGreaterEqual(time.monotonic() - start, 0.1 + 9 * 0.05)
        self.assertEqual(len(events), 10)

    def test_stream_stall(self):
        got = self.stall("/v1/messages",
                         self.body(stream=True, mock_content="a b c d e",
                                   mock_stall_after_chunks=2),
                         {"x-api-key": API_KEY, "anthropic-version": VERSION},
                         (b"text_delta", 2))
        self.assertEqual(got.count(b"text_delta"), 2)
        self.assertIn(b"event: ping", got)
        self.assertNotIn(b"message_delta", got)
        self.assertNotIn(b"content_block_stop", got)

    # -- count_tokens, the log

    def test_count_tokens(self):
        body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}
        for path in ("/v1/messages/count_tokens", "/messages/count_tokens"):
            with self.subTest(path=path):
                status, _, raw = self.post(body, path)
                self.assertEqual((status, json.loads(raw)), (200, {"input_tokens": 10}))
        status, _, raw = self.post(dict(body, mock_usage={"input_tokens": 77}),
                                   "/v1/messages/count_tokens")
        self.assertEqual((status, json.loads(raw)), (200, {"input_tokens": 77}))
        status, _, raw = self.post(dict(body, messages=[]), "/v1/messages/count_tokens")
        self.assertError(status, raw, 400, "messages")
        status, _, raw = self.post(body, "/v1/messages/count_tokens",
                                   headers={"anthropic-version": VERSION})
        self.assertError(status, raw, 401)

    def test_log_has_the_anthropic_headers(self):
        headers = dict(self.HEADERS, **{"anthropic-beta": "prompt-caching-2024-07-31"})
        status, _, raw = self.post(self.body(marker="log-1"), headers=headers)
        self.assertEqual(status, 200, raw)
        entry = [e for e in self.fake.log() if (e["body"] or {}).get("marker") == "log-1"][-1]
        self.assertEqual(entry["path"], "/v1/messages")
        self.assertEqual(entry["method"], "POST")
        self.assertEqual(entry["headers"]["anthropic-version"], VERSION)
        self.assertEqual(entry["headers"]["anthropic-beta"], "prompt-caching-2024-07-31")
        self.assertEqual(entry["headers"]["x-api-key"], API_KEY)
        self.assertEqual(entry["body"], self.body(marker="log-1"))


class AnthropicFailFirstTest(Base):
    fake_args = ("--fail-first", "1")

    def test_forced_failure_is_anthropic_shaped(self):
        body = {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}
        status, _, raw = self.fake.request("POST", "/v1/messages", body,
                                           AnthropicTest.HEADERS)
        self.assertEqual(status, 500, raw)
        self.assertEqual(json.loads(raw)["error"]["type"], "api_error")
        status, _, raw = self.fake.request("POST", "/v1/messages", body,
                                           AnthropicTest.HEADERS)
        self.assertEqual(status, 200, raw)


# ------------------------------------------------------------------ Responses

class ResponsesTest(Base):
    HEADERS = {"authorization": "Bearer " + API_KEY, "content-type": "application/json"}
    AZURE = "?api-version=2025-04-01-preview"

    def body(self, **fields):
        return dict({"model": "gpt-4.1", "input": "Hello"}, **fields)

    def call(self, method, path, body=None, headers=None):
        status, _, raw = self.fake.request(method, path, body, headers or self.HEADERS)
        return status, json.loads(raw) if raw else None

    def create(self, path="/v1/responses", headers=None, **fields):
        status, ans = self.call("POST", path, self.body(**fields), headers)
        self.assertEqual(status, 200, ans)
        return ans

    def assertOpenAIError(self, status, ans, code, *needles):
        self.assertEqual(status, code, ans)
        self.assertEqual(set(ans), {"error"}, ans)
        self.assertEqual(set(ans["error"]), {"message", "type", "param", "code"}, ans)
        for needle in needles:
            self.assertIn(needle, ans["error"]["message"])

    def stream(self, **fields):
        status, headers, raw = self.fake.request("POST", "/v1/responses",
                                                 self.body(stream=True, **fields), self.HEADERS)
        self.assertEqual(status, 200, raw)
        self.assertEqual(headers["content-type"], "text/event-stream")
        self.assertNotIn(b"[DONE]", raw)
        return sse_events(self, raw)

    # -- plain answers

    def test_response_object(self):
        before = int(time.time())
        ans = self.create(instructions="be brief", metadata={"k": "v"})
        self.assertRegex(ans["id"], r"^resp_[0-9a-f]{16,}$")
        self.assertEqual(ans["object"], "response")
        self.assertTrue(before - 1 <= ans["created_at"] <= time.time() + 1)
        self.assertEqual(ans["status"], "completed")
        self.assertEqual(ans["model"], "gpt-4.1")
        self.assertEqual(len(ans["output"]), 1)
        msg = ans["output"][0]
        self.assertRegex(msg.pop("id"), r"^msg_[0-9a-f]+$")
        self.assertEqual(msg, {"type": "message", "status": "completed", "role": "assistant",
                               "content": [{"type": "output_text",
                                            "text": "This is a fake answer.",
                                            "annotations": []}]})
        self.assertEqual(ans["usage"], RESPONSES_USAGE)
        self.assertIs(ans["background"], False)
        self.assertIsNone(ans["error"])
        self.assertIsNone(ans["incomplete_details"])
        self.assertEqual(ans["instructions"], "be brief")
        self.assertEqual(ans["metadata"], {"k": "v"})
        for key in ("previous_response_id", "store", "tools", "temperature", "top_p"):
            self.assertIn(key, ans)
        self.assertEqual(self.create(path="/responses")["object"], "response")

    def test_body_is_checked(self):
        for body in ({"input": "x"}, {"model": 5, "input": "x"}, {"model": "m"},
                     {"model": "m", "input": 5}, {"model": "m", "input": ["x"]}):
            with self.subTest(body=body):
                status, ans = self.call("POST", "/v1/responses", body)
                self.assertOpenAIError(status, ans, 400)
                self.assertEqual(ans["error"]["type"], "invalid_request_error")

    def test_mock_fields(self):
        ans = self.create(mock_content="x ", mock_chunks=2,
                          mock_usage={"input_tokens": 100, "cached_tokens": 60,
                                      "output_tokens": 50, "reasoning_tokens": 30})
        self.assertEqual(ans["output"][0]["content"][0]["text"], "x x ")
        self.assertEqual(ans["usage"], {"input_tokens": 100,
                                        "input_tokens_details": {"cached_tokens": 60},
                                        "output_tokens": 50,
                                        "output_tokens_details": {"reasoning_tokens": 30},
                                        "total_tokens": 150})
        ans = self.create(mock_usage_raw=RAW_USAGE)
        self.assertEqual(ans["usage"], RAW_USAGE)
        status, ans = self.call("POST", "/v1/responses", self.body(mock_status=429))
        self.assertOpenAIError(status, ans, 429)
        status, ans = self.call("POST", "/v1/responses", self.body(mock_usage={"input_tokens": -1}))
        self.assertOpenAIError(status, ans, 400, "mock_usage")

    def test_web_search_calls(self):
        ans = self.create(mock_web_search_calls=2)
        self.assertEqual([o["type"] for o in ans["output"]],
                         ["web_search_call", "web_search_call", "message"])
        for call in ans["output"][:2]:
            self.assertRegex(call.pop("id"), r"^ws_[0-9a-f]+$")
            self.assertEqual(call, {"type": "web_search_call", "status": "completed",
                                    "action": {"type": "search", "query": "q"}})

    def test_first_byte_delay(self):
        start = time.monotonic()
        self.create(mock_first_byte_delay_ms=300)
        self.assertGreaterEqual(time.monotonic() - start, 0.3)

    # -- streams

    def test_stream_events(self):
        events = self.stream(mock_content="one two", mock_web_search_calls=1,
                             mock_usage={"input_tokens": 3, "output_tokens": 4})
        self.assertEqual([name for name, _ in events], [
            "response.created", "response.in_progress", "response.output_item.added",
            "response.output_item.done", "response.output_item.added",
            "response.content_part.added", "response.output_text.delta",
            "response.output_text.delta", "response.output_text.done",
            "response.content_part.done", "response.output_item.done", "response.completed"])
        self.assertEqual([d["sequence_number"] for _, d in events], list(range(len(events))))
        created = events[0][1]["response"]
        self.assertEqual((created["status"], created["output"], created["usage"]),
                         ("in_progress", [], None))
        final = events[-1][1]["response"]
        self.assertEqual(final["id"], created["id"])
        self.assertEqual(final["status"], "completed")
        self.assertEqual(final["usage"]["total_tokens"], 7)
        self.assertEqual([o["type"] for o in final["output"]], ["web_search_call", "message"])
        message = final["output"][1]
        self.assertEqual(events[4][1]["output_index"], 1)
        self.assertEqual(events[4][1]["item"]["status"], "in_progress")
        deltas = [d for _, d in events[6:8]]
        self.assertEqual([d["delta"] for d in deltas], ["one ", "two"])
        for d in deltas:
            self.assertEqual((d["item_id"], d["output_index"], d["content_index"]),
                             (message["id"], 1, 0))
        self.assertEqual(events[8][1]["text"], "one two")
        self.assertEqual(events[9][1]["part"], message["content"][0])
        self.assertEqual(events[10][1]["item"], message)
        # the streamed response is stored, completed
        status, got = self.call("GET", "/v1/responses/" + final["id"])
        self.assertEqual((status, got), (200, final))

    def test_stream_stall(self):
        got = self.stall("/v1/responses",
                         self.body(stream=True, mock_content="a b c d",
                                   mock_stall_after_chunks=3),
                         {"authorization": "Bearer " + API_KEY},
                         (b"event: response.output_text.delta", 3))
        self.assertEqual(got.count(b"event: response.output_text.delta"), 3)
        self.assertNotIn(b"response.output_text.done", got)
        self.assertNotIn(b"response.completed", got)

    # -- stored responses

    def test_retrieve_delete(self):
        ans = self.create()
        rid = ans["id"]
        self.assertEqual(self.call("GET", "/v1/responses/" + rid), (200, ans))
        self.assertEqual(self.call("GET", "/responses/" + rid), (200, ans))
        status, got = self.call("DELETE", "/v1/responses/" + rid)
        self.assertEqual((status, got), (200, {"id": rid, "object": "response", "deleted": True}))
        for method, suffix in (("GET", ""), ("DELETE", ""), ("POST", "/cancel"),
                               ("GET", "/input_items")):
            with self.subTest(method=method, suffix=suffix):
                status, got = self.call(method, "/v1/responses/" + rid + suffix)
                self.assertOpenAIError(status, got, 404, rid)

    def test_unknown_routes(self):
        rid = self.create()["id"]
        for method, path in (("GET", "/v1/responses/%s/nope" % rid),
                             ("POST", "/v1/responses/" + rid), ("GET", "/v1/responses/"),
                             ("PUT", "/v1/responses/" + rid)):
            with self.subTest(method=method, path=path):
                status, got = self.call(method, path)
                self.assertOpenAIError(status, got, 404)

    def test_cancel_completed_is_refused(self):
        rid = self.create()["id"]
        status, got = self.call("POST", "/v1/responses/%s/cancel" % rid)
        self.assertOpenAIError(status, got, 400, "Cannot cancel a completed response")
        self.assertEqual(self.call("GET", "/v1/responses/" + rid)[1]["status"], "completed")

    def test_input_items(self):
        items = [{"role": "user", "content": "first"},
                 {"role": "assistant", "content": "second"},
                 {"type": "message", "role": "user",
                  "content": [{"type": "input_text", "text": "third"}]},
                 {"type": "function_call_output", "call_id": "call_1", "output": "{}"}]
        rid = self.create(input=items)["id"]
        status, desc = self.call("GET", "/v1/responses/%s/input_items" % rid)
        self.assertEqual(status, 200, desc)
        status, asc = self.call("GET", "/v1/responses/%s/input_items?order=asc" % rid)
        self.assertEqual(status, 200, asc)
        self.assertEqual(asc["data"], list(reversed(desc["data"])))
        self.assertEqual(set(asc), {"object", "data", "first_id", "last_id", "has_more"})
        self.assertEqual((asc["object"], asc["has_more"]), ("list", False))
        self.assertEqual((asc["first_id"], asc["last_id"]),
                         (asc["data"][0]["id"], asc["data"][-1]["id"]))
        self.assertEqual((desc["first_id"], desc["last_id"]), (asc["last_id"], asc["first_id"]))
        data = asc["data"]
        self.assertEqual(len({d["id"] for d in data}), 4)
        self.assertEqual([(d["type"], d.get("role")) for d in data],
                         [("message", "user"), ("message", "assistant"), ("message", "user"),
                          ("function_call_output", None)])
        self.assertEqual(data[0]["content"], [{"type": "input_text", "text": "first"}])
        self.assertEqual(data[1]["content"], [{"type": "output_text", "text": "second"}])
        self.assertEqual(data[2]["content"], items[2]["content"])
        self.assertEqual(data[3]["output"], "{}")
        rid = self.create(input="just this")["id"]
        data = self.call("GET", "/v1/responses/%s/input_items" % rid)[1]["data"]
        self.assertEqual([(d["type"], d["role"], d["content"]) for d in data],
                         [("message", "user", [{"type": "input_text", "text": "just this"}])])

    def test_store_false_is_not_kept(self):
        rid = self.create(store=False)["id"]
        status, got = self.call("GET", "/v1/responses/" + rid)
        self.assertOpenAIError(status, got, 404)

    def test_background_completes(self):
        ans = self.create(background=True, mock_background_ms=1500, mock_content="later")
        rid = ans["id"]
        self.assertEqual((ans["status"], ans["output"], ans["usage"], ans["background"]),
                         ("queued", [], None, True))
        got = self.call("GET", "/v1/responses/" + rid)[1]
        self.assertEqual((got["status"], got["output"], got["usage"]), ("in_progress", [], None))
        done = wait_for(lambda: (lambda g: g if g["status"] == "completed" else None)(
            self.call("GET", "/v1/responses/" + rid)[1]), 10, interval=0.1)
        self.assertEqual(done["usage"], RESPONSES_USAGE)
        self.assertEqual(done["output"][0]["content"][0]["text"], "later")
        status, got = self.call("POST", "/v1/responses/%s/cancel" % rid)
        self.assertOpenAIError(status, got, 400)

    def test_background_default_delay(self):
        rid = self.create(background=True)["id"]
        wait_for(lambda: self.call("GET", "/v1/responses/" + rid)[1]["status"] == "completed",
                 5, interval=0.05)

    def test_background_cancel(self):
        rid = self.create(background=True, mock_background_ms=300)["id"]
        status, got = self.call("POST", "/v1/responses/%s/cancel" % rid)
        self.assertEqual(status, 200, got)
        self.assertEqual((got["id"], got["status"], got["usage"], got["output"]),
                         (rid, "cancelled", None, []))
        time.sleep(0.5)
        got = self.call("GET", "/v1/responses/" + rid)[1]
        self.assertEqual((got["status"], got["usage"], got["output"]), ("cancelled", None, []))
        status, again = self.call("POST", "/v1/responses/%s/cancel" % rid)
        self.assertEqual((status, again["status"]), (200, "cancelled"))

    # -- Azure

    def test_azure_paths(self):
        azure = {"api-key": API_KEY, "content-type": "application/json"}
        ans = self.create("/openai/responses" + self.AZURE, azure)
        rid = ans["id"]
        base = "/openai/responses/" + rid
        self.assertEqual(self.call("GET", base + self.AZURE, headers=azure), (200, ans))
        status, items = self.call("GET", base + "/input_items" + self.AZURE, headers=azure)
        self.assertEqual((status, len(items["data"])), (200, 1))
        status, got = self.call("POST", base + "/cancel" + self.AZURE, headers=azure)
        self.assertOpenAIError(status, got, 400)
        for method, path in (("POST", "/openai/responses"), ("GET", base),
                             ("DELETE", base)):
            with self.subTest(method=method, path=path):
                status, got = self.call(method, path, self.body(), azure)
                self.assertOpenAIError(status, got, 400, "api-version")
        status, got = self.call("GET", base + self.AZURE,
                                headers={"api-key": "wrong"})
        self.assertOpenAIError(status, got, 401)
        status, got = self.call("DELETE", base + self.AZURE, headers=azure)
        self.assertEqual((status, got["deleted"]), (200, True))
        status, got = self.call("GET", "/v1/responses/" + rid)
        self.assertOpenAIError(status, got, 404)

    def test_gets_are_logged(self):
        rid = self.create()["id"]
        self.call("GET", "/v1/responses/" + rid)
        self.call("DELETE", "/v1/responses/" + rid)
        self.call("GET", "/openai/responses/%s%s" % (rid, self.AZURE),
                  headers={"api-key": API_KEY})
        self.fake.request("GET", "/health")
        self.fake.request("GET", "/stats")
        log = self.fake.log()
        mine = [(e["method"], e["path"]) for e in log if rid in e["path"]]
        self.assertEqual(mine, [("GET", "/v1/responses/" + rid),
                                ("DELETE", "/v1/responses/" + rid),
                                ("GET", "/openai/responses/%s%s" % (rid, self.AZURE))])
        self.assertIsNone(log[-1]["body"])
        self.assertFalse([e for e in log if e["path"] in ("/health", "/stats")])

    def test_store_keeps_the_last_ten_thousand(self):
        """Fills the store over one keep-alive connection: the oldest goes."""
        first = self.create()["id"]
        conn = http.client.HTTPConnection("127.0.0.1", self.fake.port, timeout=30)
        data = json.dumps(self.body()).encode()
        last = None
        try:
            for _ in range(STORE_MAX):
                conn.request("POST", "/v1/responses", body=data, headers=self.HEADERS)
                resp = conn.getresponse()
                raw = resp.read()
                self.assertEqual(resp.status, 200, raw)
                last = json.loads(raw)["id"]
        finally:
            conn.close()
        self.assertEqual(self.call("GET", "/v1/responses/" + first)[0], 404)
        self.assertEqual(self.call("GET", "/v1/responses/" + last)[0], 200)


if __name__ == "__main__":
    unittest.main()
