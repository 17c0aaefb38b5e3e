"""test_dataplane.py - proxyd's routes, upstream kinds, streaming, routing
(retries, fallbacks, weighted shuffle, cooldown), forwarding to reportd and bad input.

Run from the repo root:  python3 -m unittest -v tests/e2e/test_dataplane.py
"""

import concurrent.futures
import http.client
import json
import math
import os
import socket
import sys
import time
import unittest
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from error_upstream import ErrorUpstream  # noqa: E402
from harness import MASTER_KEY, expected_cost, free_port, wait_for  # noqa: E402

DEAD_PORT = free_port()  # nothing listens here: connect errors
LEDGER_TIMEOUT = 5.0
ALLOWED_FAILS = 2
COOLDOWN_S = 8  # long enough to send a few requests inside it on a slow machine

# The "weighted" group: two deployments on the fake upstream, told apart by the
# model name the upstream receives.
HEAVY, LIGHT = "llama-3.3-70b-versatile", "gemma2-9b-it"
HEAVY_WEIGHT, LIGHT_WEIGHT = 3, 1
# The "cooling" group: a deployment that always fails (weight 9, so it is drawn
# first 9 times in 10 while it is not cooling down) and a healthy one.
COOL_HEALTHY = "llama-3.1-70b-versatile"


FAILING = None  # the ErrorUpstream (always failing) of DataPlaneTest, made in its setUpClass


def binomial_bounds(n, p, tail):
    """(lo, hi): a Binomial(n, p) count falls below lo, or above hi, each with a
    probability under `tail` (exact sums, no normal approximation)."""
    pmf = [math.comb(n, k) * p ** k * (1 - p) ** (n - k) for k in range(n + 1)]
    lo, acc = 0, 0.0
    while acc + pmf[lo] < tail:
        acc += pmf[lo]
        lo += 1
    hi, acc = n, 0.0
    while acc + pmf[hi] < tail:
        acc += pmf[hi]
        hi -= 1
    return lo, hi


def extra_models(stack):
    base = "http://127.0.0.1:%d" % stack.upstream_port
    key = "os.environ/GROQ_API_KEY"
    return [
        {"model_name": "azure-gpt", "litellm_params": {
            "model": "azure/dep1", "api_base": base, "api_key": key, "api_version": "2024-06-01"}},
        {"model_name": "flaky", "litellm_params": {
            "model": "openai/dead", "api_base": "http://127.0.0.1:%d/v1" % DEAD_PORT, "api_key": key}},
        {"model_name": "flaky", "litellm_params": {
            "model": "groq/llama-3.1-8b-instant", "api_base": stack.upstream_base, "api_key": key}},
        {"model_name": "dead", "litellm_params": {
            "model": "openai/dead", "api_base": "http://127.0.0.1:%d/v1" % DEAD_PORT, "api_key": key}},
        {"model_name": "dalle", "litellm_params": {
            "model": "openai/dall-e-3", "api_base": stack.upstream_base, "api_key": key}},
        {"model_name": "weighted", "litellm_params": {
            "model": "groq/" + HEAVY, "api_base": stack.upstream_base, "api_key": key,
            "weight": HEAVY_WEIGHT}},
        {"model_name": "weighted", "litellm_params": {
            "model": "groq/" + LIGHT, "api_base": stack.upstream_base, "api_key": key,
            "weight": LIGHT_WEIGHT}},
        {"model_name": "cooling", "litellm_params": {
            "model": "groq/llama-3.2-3b-preview",
            "api_base": "http://127.0.0.1:%d/v1" % FAILING.port, "api_key": key, "weight": 9}},
        {"model_name": "cooling", "litellm_params": {
            "model": "groq/" + COOL_HEALTHY, "api_base": stack.upstream_base, "api_key": key,
            "weight": 1}},
    ]


class DataPlaneTest(harness.StackTestCase):
    stack_options = {
        "extra_models": extra_models,
        "extra_config": {"router_settings": {"num_retries": 2, "allowed_fails": ALLOWED_FAILS,
                                             "cooldown_time": COOLDOWN_S,
                                             "fallbacks": [{"dead": ["llama3"]}]}},
    }

    @classmethod
    def setUpClass(cls):
        global FAILING
        FAILING = ErrorUpstream()  # before the stack: its port goes into the config
        cls.addClassCleanup(FAILING.stop)
        super().setUpClass()

    def row(self, rid, cols="spend, call_type, prompt_tokens, completion_tokens, model,"
                               " model_group, usage_estimated, http_status"):
        rows = wait_for(lambda: self.stack.sql("SELECT %s FROM spend_logs WHERE request_id = '%s'"
                                               % (cols, rid)), LEDGER_TIMEOUT,
                        message="no ledger row for %s" % rid)
        return rows[0]

    def post(self, path, body, key=MASTER_KEY, **kw):
        return self.stack.proxy("POST", path, body, key, **kw)

    # ---------------------------------------------------------------- routes

    def test_completions_embeddings_images(self):
        for path in ("/v1/completions", "/completions"):
            st, h, b = self.post(path, {"model": "llama3", "prompt": "Say hi",
                                        "mock_usage": {"prompt_tokens": 10, "completion_tokens": 20}})
            self.assertEqual(st, 200, b)
            self.assertEqual(b["object"], "text_completion")
            self.assertEqual(Decimal(h["x-litellm-response-cost"]), expected_cost(10, 20))
            r = self.row(h["x-litellm-call-id"])
            self.assertEqual((r[1], r[2], r[3]), ("text_completion", "10", "20"))
        for path in ("/v1/embeddings", "/embeddings"):
            st, h, b = self.post(path, {"model": "llama3", "input": "embed me",
                                        "mock_usage": {"prompt_tokens": 7}})
            self.assertEqual(st, 200, b)
            self.assertEqual(Decimal(h["x-litellm-response-cost"]), expected_cost(7, 0))
            self.assertEqual(self.row(h["x-litellm-call-id"])[1], "embedding")
        st, h, b = self.post("/v1/images/generations", {"model": "dalle", "prompt": "a cat", "n": 2})
        self.assertEqual(st, 200, b)
        self.assertEqual(len(b["data"]), 2)
        self.assertEqual(self.row(h["x-litellm-call-id"])[1], "image_generation")

    def test_azure_upstream_and_azure_style_clients(self):
        st, h, b = self.post("/v1/chat/completions", {"model": "azure-gpt",
                                                      "messages": [{"role": "user", "content": "x"}]})
        self.assertEqual(st, 200, b)
        sent = self.stack.upstream_requests()[-1]
        self.assertEqual(sent["path"], "/openai/deployments/dep1/chat/completions?api-version=2024-06-01")
        self.assertEqual(sent["headers"].get("api-key"), self.stack.upstream_key)
        self.assertNotIn("authorization", sent["headers"])
        # an Azure SDK pointed at Tollgate: model group in the path, key in api-key
        st, _, b = self.stack.proxy("POST", "/openai/deployments/llama3/chat/completions"
                                    "?api-version=2024-06-01",
                                    {"messages": [{"role": "user", "content": "x"}]},
                                    headers={"api-key": MASTER_KEY})
        self.assertEqual(st, 200, b)
        self.assertEqual(self.stack.upstream_requests()[-1]["body"]["model"], "llama-3.1-8b-instant")

    def test_models_health_and_forwarding(self):
        st, _, b = self.stack.proxy("GET", "/v1/models", key=MASTER_KEY)
        self.assertEqual(st, 200, b)
        self.assertEqual([m["id"] for m in b["data"]],
                         ["llama3", "azure-gpt", "flaky", "dead", "dalle", "weighted", "cooling"])
        st, _, k = self.stack.report("POST", "/key/generate", {"models": ["llama3"]}, key=MASTER_KEY)
        st, _, b = self.stack.proxy("GET", "/models", key=k["key"])
        self.assertEqual([m["id"] for m in b["data"]], ["llama3"])
        st, _, b = self.post("/v1/chat/completions", {"model": "dalle", "messages": []}, key=k["key"])
        self.assertEqual(st, 401, b)
        self.assertEqual(self.stack.proxy("GET", "/health/liveliness")[0], 200)
        st, _, b = self.stack.proxy("GET", "/health/readiness")
        self.assertEqual((st, b["status"]), (200, "healthy"), b)
        # control-plane paths through proxyd's port
        st, _, b = self.post("/team/new", {"team_alias": "via-proxyd"})
        self.assertEqual((st, b["team_alias"]), (200, "via-proxyd"), b)
        st, _, b = self.stack.proxy("GET", "/spend/logs?page_size=1", key=MASTER_KEY)
        self.assertEqual(st, 200, b)
        self.assertIsInstance(b, list)
        st, _, b = self.stack.proxy("GET", "/spend/logs", key=k["key"])
        self.assertEqual(st, 403, b)

    # ------------------------------------------------------------- streaming

    def stream(self, body, key=MASTER_KEY, read_events=None, read_until=None, before_close=None):
        """POSTs a stream; returns (status, headers, events, times) where times[i]
        is when event i arrived (seconds after the request); read_events stops
        reading (and closes) after that many events, read_until(events) once it
        is true; before_close() runs while the connection is still open."""
        conn = http.client.HTTPConnection("127.0.0.1", self.stack.proxyd_port, timeout=30)
        t0 = time.monotonic()
        conn.request("POST", "/v1/chat/completions", json.dumps(body),
                     {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
        resp = conn.getresponse()
        headers = {k.lower(): v for k, v in resp.getheaders()}
        events, times, buf = [], [], b""
        while ((read_events is None or len(events) < read_events) and
               (read_until is None or not read_until(events))):
            chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(1)
            if not chunk:
                break
            buf += chunk
            while b"\n\n" in buf:
                ev, buf = buf.split(b"\n\n", 1)
                events.append(ev.decode())
                times.append(time.monotonic() - t0)
        if before_close is not None:
            before_close()
        conn.close()
        return resp.status, headers, events, times

    def stream_body(self, **kw):
        b = {"model": "llama3", "stream": True, "messages": [{"role": "user", "content": "x"}],
             "mock_usage": {"prompt_tokens": 30, "completion_tokens": 40}}
        b.update(kw)
        return b

    def test_stream_without_client_usage(self):
        st, h, events, _ = self.stream(self.stream_body())
        self.assertEqual(st, 200)
        self.assertTrue(h["content-type"].startswith("text/event-stream"))
        self.assertEqual(events[-1], "data: [DONE]")
        self.assertFalse(any('"usage":{' in e for e in events), events)  # proxyd asked, client did not
        sent = self.stack.upstream_requests()[-1]["body"]
        self.assertEqual(sent["stream_options"], {"include_usage": True})
        r = self.row(h["x-litellm-call-id"])
        self.assertEqual((r[2], r[3], r[6]), ("30", "40", "0"))
        self.assertEqual(Decimal(r[0]), expected_cost(30, 40))

    def test_stream_with_client_usage_carries_cost(self):
        st, h, events, _ = self.stream(self.stream_body(stream_options={"include_usage": True}))
        self.assertEqual(st, 200)
        usage = [json.loads(e[6:], parse_float=Decimal) for e in events
                 if e.startswith("data: {") and '"usage":{' in e]
        self.assertEqual(len(usage), 1, events)
        cost = usage[0]["usage"]["cost"]
        r = self.row(h["x-litellm-call-id"])
        self.assertEqual(Decimal(r[0]), expected_cost(30, 40))
        self.assertEqual(Decimal(str(cost)), Decimal(r[0]))

    def test_stream_is_not_buffered(self):
        # The upstream sends "one", "two", then nothing until the client leaves. A
        # proxyd that held chunks back until the upstream's end would give the client
        # nothing at all here, so getting both words while the upstream still holds
        # the stream open proves chunks are passed on as they come. No wall-time
        # limit: the 30 s socket timeout only ends a broken run.
        def stats():
            return self.stack.http("GET", self.stack.upstream_port, "/stats")[2]

        def content(events):
            return "".join(json.loads(e[6:])["choices"][0]["delta"].get("content") or ""
                           for e in events if e.startswith("data: {") and '"choices":[{' in e)

        before = stats()
        during = {}
        try:
            st, h, events, _ = self.stream(
                self.stream_body(mock_content="one two three four", mock_stall_after_chunks=2),
                read_until=lambda evs: "two" in content(evs),
                before_close=lambda: during.update(stats()))
        except socket.timeout:
            self.fail("no content within 30 s while the upstream held the stream open: "
                      "proxyd buffers the stream")
        self.assertEqual(st, 200)
        self.assertEqual(content(events), "one two ", events)  # nothing after the stall
        self.assertEqual(during["active_streams"], before["active_streams"] + 1, during)
        self.assertEqual(during["cancelled_streams"], before["cancelled_streams"], during)
        wait_for(lambda: stats()["cancelled_streams"] > before["cancelled_streams"], 10,
                 message="upstream stream not cancelled after the client left")

    def test_stream_without_upstream_usage_is_flagged(self):
        st, h, events, _ = self.stream(self.stream_body(mock_stream_usage="never"))
        self.assertEqual(st, 200)
        r = self.row(h["x-litellm-call-id"])
        self.assertEqual(r[6], "1")  # usage_estimated
        # counted by proxyd (cl100k stands in for llama): 3 + "user" + "x" + 3 priming,
        # and "This is a fake answer." = This| is| a| fake| answer|.
        self.assertEqual((r[2], r[3]), ("8", "6"))
        self.assertEqual(Decimal(r[0]), expected_cost(8, 6))

    def test_client_leaving_mid_stream_cancels_upstream(self):
        before = self.stack.http("GET", self.stack.upstream_port, "/stats")[2]["cancelled_streams"]
        st, h, events, _ = self.stream(self.stream_body(mock_stall_after_chunks=2), read_events=2)
        self.assertEqual(st, 200)
        wait_for(lambda: self.stack.http("GET", self.stack.upstream_port, "/stats")[2]
                 ["cancelled_streams"] > before, 5, message="upstream transfer not cancelled")
        r = self.row(h["x-litellm-call-id"])  # still accounted
        self.assertEqual(r[7], "200")

    # --------------------------------------------------------------- routing

    def test_retries_and_cooldown(self):
        for _ in range(12):
            st, h, b = self.post("/v1/chat/completions", {"model": "flaky",
                                                          "messages": [{"role": "user", "content": "x"}]})
            self.assertEqual(st, 200, b)
        log = self.stack.daemon("proxyd").log_path.read_text()
        self.assertIn("deployment openai/dead of flaky cools down", log)

    def test_weighted_shuffle(self):
        # weights 3:1 -> the heavy deployment serves 3/4 of the calls. proxyd's draw
        # is seeded from its clock (nothing for the test to seed or print); the bounds
        # (246..349 of 400) hold with probability 1 - 2e-9 for a correct draw; a draw
        # ignoring the weights (half each) passes them with probability 2.4e-6, one
        # always taking the same deployment (400 or 0) never.
        n = 400
        p = HEAVY_WEIGHT / (HEAVY_WEIGHT + LIGHT_WEIGHT)
        lo, hi = binomial_bounds(n, p, 1e-9)
        seen = len(self.stack.upstream_requests())

        def call(_):
            return self.post("/v1/chat/completions", {
                "model": "weighted", "messages": [{"role": "user", "content": "x"}]})[0]

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(call, range(n)))  # re-raises any request's exception
        self.assertEqual(statuses, [200] * n)
        models = [r["body"]["model"] for r in self.stack.upstream_requests()[seen:]]
        heavy, light = models.count(HEAVY), models.count(LIGHT)
        self.assertEqual(heavy + light, n, models)
        self.assertTrue(lo <= heavy <= hi,
                        "weight %d:%d, %d calls: heavy deployment served %d, light %d; "
                        "expected %d..%d" % (HEAVY_WEIGHT, LIGHT_WEIGHT, n, heavy, light, lo, hi))

    def test_cooldown_skips_a_failing_deployment(self):
        # "cooling": a deployment answering 500 (weight 9) and a healthy one (1).
        # Every call still gets a 200 (the retry goes to the healthy one). The
        # failing one cools down after ALLOWED_FAILS failures, for COOLDOWN_S. Times
        # are compared safely for a slow machine: a cooldown starts between the
        # sending and the answer of the call that failed there, so a call answered
        # before (send + COOLDOWN_S) fell inside it; while it is not cooling, the
        # failing one is drawn first 9 times in 10, so each call has a 0.9 chance to
        # show that it was not skipped.
        def call():
            sent = time.monotonic()
            st, _, b = self.post("/v1/chat/completions", {
                "model": "cooling", "messages": [{"role": "user", "content": "x"}]})
            self.assertEqual(st, 200, b)
            return sent, time.monotonic()

        self.assertEqual(FAILING.count(), 0)
        # 1. failures below allowed_fails do not cool it down: after the first
        #    failure it is drawn again before a cooldown could have ended
        calls = 0
        while FAILING.count() < 1:
            calls += 1
            self.assertLessEqual(calls, 40, "the failing deployment was never drawn")
            first_sent, _ = call()
        while FAILING.count() < ALLOWED_FAILS:
            calls += 1
            self.assertLessEqual(calls, 80, "the failing deployment was not drawn again")
            last_sent, done = call()
            self.assertLess(done, first_sent + COOLDOWN_S,
                            "no second attempt on the failing deployment within %d s of its "
                            "first failure: cooled down after 1 < allowed_fails failures?"
                            % COOLDOWN_S)
        self.assertEqual(FAILING.count(), ALLOWED_FAILS)
        # 2. now it cools down: calls answered within COOLDOWN_S of the start of the
        #    call that failed the ALLOWED_FAILS-th time never reach it ...
        inside = 0
        while True:
            _, done = call()
            if FAILING.count() > ALLOWED_FAILS:
                break
            if done < last_sent + COOLDOWN_S:
                inside += 1
            self.assertLess(done, last_sent + COOLDOWN_S + 30,
                            "the failing deployment was never drawn again after its cooldown")
        self.assertGreaterEqual(done, last_sent + COOLDOWN_S,
                                "the failing deployment was drawn %.2f s into its %d s cooldown"
                                % (done - last_sent, COOLDOWN_S))
        # ... and enough of them ran inside it for that to mean something (if it were
        # not cooling, 3 calls would all miss it with probability 0.1^3)
        self.assertGreaterEqual(inside, 3, "only %d calls inside the cooldown" % inside)
        # 3. ... and after it, the failing deployment is drawn again (the loop above
        #    ended on that)
        self.assertEqual(FAILING.count(), ALLOWED_FAILS + 1)

    def test_fallback_to_another_group(self):
        st, h, b = self.post("/v1/chat/completions", {"model": "dead",
                                                      "messages": [{"role": "user", "content": "x"}]})
        self.assertEqual(st, 200, b)
        r = self.row(h["x-litellm-call-id"])
        self.assertEqual(r[4], "groq/llama-3.1-8b-instant")

    def test_upstream_errors_pass_through(self):
        st, h, b = self.post("/v1/chat/completions", {"model": "llama3", "mock_status": 429,
                                                      "messages": [{"role": "user", "content": "x"}]})
        self.assertEqual(st, 429, b)
        self.assertEqual(b["error"]["message"], "mock error")

    # ------------------------------------------------------------- bad input

    def raw(self, body_bytes, path="/v1/chat/completions", key=MASTER_KEY):
        conn = http.client.HTTPConnection("127.0.0.1", self.stack.proxyd_port, timeout=60)
        conn.request("POST", path, body_bytes, {"Authorization": "Bearer " + key,
                                                "Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        try:
            return resp.status, json.loads(data)
        except ValueError:
            return resp.status, data

    def test_bad_input(self):
        cases = [
            (b'{"model": "llama3", "messages": [', 400),
            (b'{"model": 5, "messages": []}', 400),
            (b'{"messages": []}', 400),
            (b'["not", "an", "object"]', 400),
            (b'{"model": "llama3", "stream": "yes", "messages": []}', 400),
            (b'{"model": "llama3", "user": 7, "messages": []}', 400),
            (b'{"model": "llama3", "metadata": {"tags": "x"}, "messages": []}', 400),
            (b'{"model": "ll\xffama3", "messages": []}', 400),
            (b'', 400),
        ]
        for body, want in cases:
            st, b = self.raw(body)
            self.assertEqual(st, want, (body, b))
            self.assertIn("error", b, body)
            self.assertEqual(b["error"]["code"], str(want))
        big = b'{"model": "llama3", "messages": [{"role": "user", "content": "' + \
            b"x" * (20 * 1024 * 1024) + b'"}]}'
        st, b = self.raw(big)
        self.assertEqual(st, 413)
        self.assertEqual(b["error"]["type"], "request_too_large")
        st, b = self.raw(b"{}", path="/v1/no/such/thing")
        self.assertEqual(st, 404)
        self.assertEqual(b["error"]["type"], "not_found_error")
        self.assertEqual(self.stack.proxy("GET", "/health/liveliness")[0], 200)


if __name__ == "__main__":
    unittest.main()
