"""test_fake_upstream_extras.py - fake-upstream's mock_usage_raw and mock_answer_fields.

The pricing tests need the fake upstream to report any usage object an
upstream could send (cache writes 5m/1h, reasoning, audio and image tokens,
web searches, ...) and top-level members such as service_tier. This file
starts bin/fake-upstream alone (no MariaDB, no daemons) and checks, on the
wire:

- mock_usage_raw is the answer's "usage", byte for byte, in plain chat and
  legacy completions, embeddings and image generations (whose answer has no
  usage otherwise), and in a stream's usage chunk, which is sent exactly when
  it is without the field (stream_options.include_usage, mock_stream_usage);
- mock_answer_fields' members are at the top level of a plain answer and of
  every chunk of a stream, also one whose chunks are sent after a delay;
- without the fields the answers are what they were (golden texts);
- a bad field is a 400 invalid_request_error saying what is wrong: not an
  object, mock_usage_raw with mock_usage, mock_answer_fields setting id,
  object, choices, usage, model, created or data;
- fake-upstream exits 0 on SIGTERM (under AddressSanitizer: no leak).

Run from the repo root:  python3 tests/e2e/run.py tests/e2e/test_fake_upstream_extras.py
"""

import http.client
import json
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fake_process import FakeUpstream  # noqa: E402

API_KEY = "fake-upstream-extras-key"

# A usage object with every bucket issue 16 prices, and members no upstream
# sends (a null, a boolean, an array, a total that is not the sum), so a
# recomputed or filtered object cannot pass for the verbatim one.
RICH_USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 345,
    "total_tokens": 7,
    "prompt_tokens_details": {"cached_tokens": 1000, "audio_tokens": 12, "image_tokens": 64,
                              "text_tokens": 124},
    "completion_tokens_details": {"reasoning_tokens": 200, "audio_tokens": 7,
                                  "image_tokens": 3, "accepted_prediction_tokens": 0,
                                  "rejected_prediction_tokens": 1},
    "cache_creation_input_tokens": 150,
    "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 50},
    "server_tool_use": {"web_search_requests": 3},
    "x_extra": [1, None, True, "s"],
}
# gpt-image-1's images answer usage.
IMAGE_USAGE = {
    "total_tokens": 4210,
    "input_tokens": 50,
    "output_tokens": 4160,
    "input_tokens_details": {"text_tokens": 40, "image_tokens": 10},
}
FIELDS = {"service_tier": "priority", "system_fingerprint": "fp_extras"}
RESERVED = ("id", "object", "choices", "usage", "model", "created", "data")

# The answers without the new fields, as fake-upstream sent them before
# (created and the id's counter normalised).
GOLDEN_CHAT = (b'{"id":"chatcmpl-fake-N","object":"chat.completion","created":0,'
               b'"model":"m","choices":[{"index":0,"message":{"role":"assistant",'
               b'"content":"This is a fake answer."},"finish_reason":"stop"}],'
               b'"usage":{"prompt_tokens":10,"completion_tokens":20,"total_tokens":30}}')
GOLDEN_IMAGES = (b'{"created":0,"data":[{"url":"https://example.invalid/fake-image-1.png",'
                 b'"revised_prompt":"a cat"}]}')
GOLDEN_EMBEDDINGS = (b'{"object":"list","data":[{"object":"embedding","index":0,'
                     b'"embedding":"zczMPc3MTD6amZk+"}],"model":"m","usage":'
                     b'{"prompt_tokens":10,"total_tokens":10}}')


def compact(obj):
    """obj as jansson's compact dump writes it (insertion order kept)."""
    return json.dumps(obj, separators=(",", ":")).encode()


def normalised(raw):
    raw = re.sub(rb'"created":\d+', b'"created":0', raw)
    return re.sub(rb'"id":"(chatcmpl|cmpl)-fake-\d+"', rb'"id":"\1-fake-N"', raw)


class FakeUpstreamExtrasTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fake = FakeUpstream(API_KEY)
        cls.port = cls.fake.port

    @classmethod
    def tearDownClass(cls):
        cls.fake.stop()

    # -- helpers

    def post(self, path, body):
        """POST body (dict, sent as JSON) to fake-upstream; (status, raw bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("POST", path, body=json.dumps(body).encode(),
                         headers={"Authorization": "Bearer " + API_KEY,
                                  "Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def post_json(self, path, body):
        status, raw = self.post(path, body)
        self.assertEqual(status, 200, raw)
        return raw, json.loads(raw)

    def stream(self, path, body):
        """A stream's events: (list of (raw bytes, parsed chunk), saw [DONE])."""
        status, raw = self.post(path, dict(body, stream=True))
        self.assertEqual(status, 200, raw)
        self.assertTrue(raw.endswith(b"\n\n"), raw[-200:])
        chunks, done = [], False
        for event in raw.split(b"\n\n")[:-1]:
            self.assertTrue(event.startswith(b"data: "), event)
            data = event[len(b"data: "):]
            self.assertFalse(done, "an event after [DONE]: %r" % data)
            if data == b"[DONE]":
                done = True
            else:
                chunks.append((data, json.loads(data)))
        self.assertTrue(done, "no [DONE]")
        return chunks

    def assertBadRequest(self, path, body, *needles):
        status, raw = self.post(path, body)
        self.assertEqual(status, 400, raw)
        err = json.loads(raw)["error"]
        self.assertEqual(err["type"], "invalid_request_error", err)
        for needle in needles:
            self.assertIn(needle, err["message"])
        return err["message"]

    def assertVerbatimUsage(self, raw, parsed, usage):
        self.assertEqual(parsed["usage"], usage)
        self.assertIn(b'"usage":' + compact(usage), raw)

    def chat_body(self, **fields):
        return dict({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, **fields)

    # -- plain answers

    def test_chat_plain_carries_raw_usage_and_fields(self):
        raw, ans = self.post_json("/v1/chat/completions",
                                  self.chat_body(mock_usage_raw=RICH_USAGE,
                                                 mock_answer_fields=FIELDS))
        self.assertVerbatimUsage(raw, ans, RICH_USAGE)
        self.assertEqual(ans["service_tier"], "priority")
        self.assertEqual(ans["system_fingerprint"], "fp_extras")
        self.assertEqual(ans["object"], "chat.completion")
        self.assertEqual(ans["model"], "m")
        self.assertEqual(ans["choices"][0]["message"]["content"], "This is a fake answer.")
        self.assertRegex(ans["id"], r"^chatcmpl-fake-\d+$")

    def test_fields_alone_keep_computed_usage(self):
        _, ans = self.post_json("/v1/chat/completions",
                                self.chat_body(mock_usage={"prompt_tokens": 3,
                                                           "completion_tokens": 4},
                                               mock_answer_fields={"service_tier": "flex"}))
        self.assertEqual(ans["usage"], {"prompt_tokens": 3, "completion_tokens": 4,
                                        "total_tokens": 7})
        self.assertEqual(ans["service_tier"], "flex")

    def test_raw_usage_alone_adds_no_member(self):
        raw, ans = self.post_json("/v1/chat/completions",
                                  self.chat_body(mock_usage_raw={"prompt_tokens": 1}))
        self.assertVerbatimUsage(raw, ans, {"prompt_tokens": 1})
        self.assertEqual(set(ans), {"id", "object", "created", "model", "choices", "usage"})

    def test_delayed_reply_carries_extras(self):
        _, ans = self.post_json("/v1/chat/completions",
                                self.chat_body(mock_usage_raw=RICH_USAGE,
                                               mock_answer_fields=FIELDS,
                                               mock_first_byte_delay_ms=50))
        self.assertEqual(ans["usage"], RICH_USAGE)
        self.assertEqual(ans["service_tier"], "priority")

    def test_legacy_completion_plain(self):
        raw, ans = self.post_json("/v1/completions",
                                  {"model": "m", "prompt": "hi", "mock_usage_raw": RICH_USAGE,
                                   "mock_answer_fields": FIELDS})
        self.assertEqual(ans["object"], "text_completion")
        self.assertVerbatimUsage(raw, ans, RICH_USAGE)
        self.assertEqual(ans["service_tier"], "priority")

    def test_embeddings_plain(self):
        usage = {"prompt_tokens": 8, "total_tokens": 8,
                 "prompt_tokens_details": {"image_tokens": 2}}
        raw, ans = self.post_json("/v1/embeddings",
                                  {"model": "m", "input": "hi", "mock_usage_raw": usage,
                                   "mock_answer_fields": {"service_tier": "default"}})
        self.assertVerbatimUsage(raw, ans, usage)
        self.assertEqual(ans["service_tier"], "default")
        self.assertEqual(ans["data"][0]["object"], "embedding")

    def test_images_answer_with_usage(self):
        raw, ans = self.post_json("/v1/images/generations",
                                  {"model": "gpt-image-1", "prompt": "a cat", "n": 2,
                                   "mock_usage_raw": IMAGE_USAGE,
                                   "mock_answer_fields": {"quality": "high",
                                                          "size": "1024x1024"}})
        self.assertVerbatimUsage(raw, ans, IMAGE_USAGE)
        self.assertEqual(len(ans["data"]), 2)
        self.assertEqual(ans["quality"], "high")
        self.assertEqual(ans["size"], "1024x1024")

    def test_azure_path_carries_extras(self):
        raw, ans = self.post_json("/openai/deployments/dep/chat/completions?api-version=1",
                                  {"messages": [], "mock_usage_raw": RICH_USAGE,
                                   "mock_answer_fields": FIELDS})
        self.assertVerbatimUsage(raw, ans, RICH_USAGE)
        self.assertEqual(ans["service_tier"], "priority")

    # -- streams

    def check_stream(self, chunks, usage, fields):
        """Every chunk carries `fields`; only the last carries usage (== usage),
        with empty choices, if usage is not None."""
        self.assertGreaterEqual(len(chunks), 2)
        for data, chunk in chunks:
            for name, value in fields.items():
                self.assertEqual(chunk.get(name), value, data)
        body = chunks[:-1] if usage is not None else chunks
        for data, chunk in body:
            self.assertNotIn("usage", chunk, data)
            self.assertEqual(len(chunk["choices"]), 1, data)
        if usage is not None:
            data, last = chunks[-1]
            self.assertEqual(last["choices"], [], data)
            self.assertEqual(last["usage"], usage)
            self.assertIn(b'"usage":' + compact(usage), data)

    def test_chat_stream_include_usage(self):
        chunks = self.stream("/v1/chat/completions",
                             self.chat_body(stream_options={"include_usage": True},
                                            mock_usage_raw=RICH_USAGE,
                                            mock_answer_fields=FIELDS))
        self.check_stream(chunks, RICH_USAGE, FIELDS)
        # 5 words, the finish chunk, the usage chunk
        self.assertEqual(len(chunks), 7)
        self.assertEqual(chunks[-2][1]["choices"][0]["finish_reason"], "stop")

    def test_chat_stream_without_include_usage_has_no_usage_chunk(self):
        chunks = self.stream("/v1/chat/completions",
                             self.chat_body(mock_usage_raw=RICH_USAGE,
                                            mock_answer_fields=FIELDS))
        self.check_stream(chunks, None, FIELDS)
        self.assertEqual(len(chunks), 6)

    def test_chat_stream_usage_modes(self):
        always = self.stream("/v1/chat/completions",
                             self.chat_body(mock_usage_raw=RICH_USAGE,
                                            mock_stream_usage="always"))
        self.check_stream(always, RICH_USAGE, {})
        never = self.stream("/v1/chat/completions",
                            self.chat_body(stream_options={"include_usage": True},
                                           mock_usage_raw=RICH_USAGE,
                                           mock_stream_usage="never"))
        self.check_stream(never, None, {})
        self.assertEqual((len(always), len(never)), (7, 6))

    def test_stream_with_delays_keeps_extras(self):
        """The chunks go out after the request's body is freed."""
        chunks = self.stream("/v1/chat/completions",
                             self.chat_body(stream_options={"include_usage": True},
                                            mock_usage_raw=RICH_USAGE,
                                            mock_answer_fields=FIELDS,
                                            mock_first_byte_delay_ms=20,
                                            mock_chunk_delay_ms=10))
        self.check_stream(chunks, RICH_USAGE, FIELDS)

    def test_legacy_completion_stream(self):
        chunks = self.stream("/v1/completions",
                             {"model": "m", "prompt": "hi", "mock_content": "one two",
                              "stream_options": {"include_usage": True},
                              "mock_usage_raw": RICH_USAGE, "mock_answer_fields": FIELDS})
        self.check_stream(chunks, RICH_USAGE, FIELDS)
        self.assertEqual(len(chunks), 4)
        self.assertEqual(chunks[0][1]["object"], "text_completion")

    # -- unchanged without the fields

    def test_answers_unchanged_without_the_fields(self):
        _, raw = self.post("/v1/chat/completions", {"model": "m", "messages": []})
        self.assertEqual(normalised(raw), GOLDEN_CHAT)
        _, raw = self.post("/v1/images/generations", {"model": "m", "prompt": "a cat"})
        self.assertEqual(normalised(raw), GOLDEN_IMAGES)
        _, raw = self.post("/v1/embeddings", {"model": "m", "input": "x",
                                              "encoding_format": "base64"})
        self.assertEqual(normalised(raw), GOLDEN_EMBEDDINGS)

    def test_stream_unchanged_without_the_fields(self):
        chunks = self.stream("/v1/chat/completions",
                             self.chat_body(mock_content="a b",
                                            stream_options={"include_usage": True}))
        self.assertEqual([normalised(data) for data, _ in chunks], [
            b'{"id":"chatcmpl-fake-N","object":"chat.completion.chunk","created":0,'
            b'"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"a "},'
            b'"finish_reason":null}]}',
            b'{"id":"chatcmpl-fake-N","object":"chat.completion.chunk","created":0,'
            b'"model":"m","choices":[{"index":0,"delta":{"content":"b"},'
            b'"finish_reason":null}]}',
            b'{"id":"chatcmpl-fake-N","object":"chat.completion.chunk","created":0,'
            b'"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
            b'{"id":"chatcmpl-fake-N","object":"chat.completion.chunk","created":0,'
            b'"model":"m","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":20,'
            b'"total_tokens":30}}',
        ])

    # -- 400s

    def test_raw_usage_with_mock_usage_is_refused(self):
        for path, body in (("/v1/chat/completions", self.chat_body()),
                           ("/v1/images/generations", {"model": "m", "prompt": "p"})):
            self.assertBadRequest(path, dict(body, mock_usage={"prompt_tokens": 1},
                                             mock_usage_raw={"prompt_tokens": 1}),
                                  "mock_usage_raw", "mock_usage ")

    def test_non_objects_are_refused(self):
        for value in ([], "usage", 5, None, True):
            with self.subTest(value=value):
                self.assertBadRequest("/v1/chat/completions",
                                      self.chat_body(mock_usage_raw=value),
                                      "mock_usage_raw must be a JSON object")
                self.assertBadRequest("/v1/embeddings",
                                      {"model": "m", "input": "x",
                                       "mock_answer_fields": value},
                                      "mock_answer_fields must be a JSON object")

    def test_reserved_members_are_refused(self):
        for name in RESERVED:
            with self.subTest(name=name):
                fields = {"service_tier": "priority", name: "x"}
                self.assertBadRequest("/v1/chat/completions",
                                      self.chat_body(mock_answer_fields=fields),
                                      'cannot set "%s"' % name)
                self.assertBadRequest("/v1/images/generations",
                                      {"model": "m", "prompt": "p",
                                       "mock_answer_fields": fields},
                                      'cannot set "%s"' % name)

    def test_refused_stream_sends_no_stream(self):
        status, raw = self.post("/v1/chat/completions",
                                self.chat_body(stream=True, mock_usage_raw=[1]))
        self.assertEqual(status, 400)
        self.assertNotIn(b"data:", raw)


if __name__ == "__main__":
    unittest.main()
