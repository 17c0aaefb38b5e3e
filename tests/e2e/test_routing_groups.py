"""test_routing_groups.py - what besides the model name decides where a request goes, as
LiteLLM's Router: router_settings.model_group_alias (plain and hidden), tag routing
(enable_tag_filtering, deployments' tags, the request's and its key's tags, the "default"
tag), context_window_fallbacks (a prompt over max_input_tokens skips the group before any
upstream call; an upstream's context-length error switches too), content_policy_fallbacks
and default_fallbacks.

The deployments that fail live on ErrorUpstream, a server of the test process that answers
each path prefix with one provider error and counts the calls; the others on the fake
upstream, told apart by the model it answers with.

Run from the repo root:  python3 tests/e2e/run.py tests/e2e/test_routing_groups.py
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from error_upstream import ALWAYS_FAILING, ErrorUpstream  # noqa: E402
from harness import MASTER_KEY, wait_for  # noqa: E402

LEDGER_TIMEOUT = 10.0
SMALL_WINDOW = 50  # max_input_tokens of the "small" groups

# ErrorUpstream's answers, by the first segment of the path: (status, body), as the
# providers word them (OpenAI's context_length_exceeded and content_policy_violation,
# Azure's content filter, Anthropic's "prompt is too long").
ERRORS = {
    "cw": (400, {"error": {"message": "This model's maximum context length is 50 tokens. However, "
                                      "your messages resulted in 60 tokens.",
                           "type": "invalid_request_error", "param": "messages",
                           "code": "context_length_exceeded"}}),
    "cw-anthropic": (400, {"type": "error", "error": {
        "type": "invalid_request_error", "message": "prompt is too long: 60 tokens > 50 maximum"}}),
    "cp": (400, {"error": {"message": "Your request was rejected as a result of our safety "
                                      "system.", "type": "invalid_request_error", "param": None,
                           "code": "content_policy_violation"}}),
    "cp-azure": (400, {"error": {"message": "The response was filtered due to the prompt "
                                            "triggering Azure OpenAI's content management policy.",
                                 "type": None, "param": "prompt", "code": "content_filter",
                                 "status": 400}}),
    "fail": ALWAYS_FAILING,
}


ERRORS_UPSTREAM = None  # made in setUpClass, before the stack: its port is in the config


def models(stack):
    key = "os.environ/GROQ_API_KEY"
    err = "http://127.0.0.1:%d" % ERRORS_UPSTREAM.port

    def on_fake(name, model, **params):
        return {"model_name": name, "litellm_params": dict(
            {"model": model, "api_base": stack.upstream_base, "api_key": key}, **params)}

    def on_errors(name, kind, model="openai/refusing", info=None):
        entry = {"model_name": name, "litellm_params": {
            "model": model, "api_base": "%s/%s/v1" % (err, kind), "api_key": key}}
        if info is not None:
            entry["model_info"] = info
        return entry

    return [
        on_fake("tiered", "groq/mixtral-8x7b-32768", tags=["free"]),
        on_fake("tiered", "groq/gemma2-9b-it", tags=["paid"]),
        on_fake("tiered", "groq/llama-3.3-70b-versatile", tags=["default"]),
        on_fake("strict", "groq/llama-3.1-70b-versatile", tags=["a"]),
        {"model_name": "open", "litellm_params": {
            "model": "groq/llama-3.1-70b-versatile", "api_base": stack.upstream_base,
            "api_key": key, "tags": ["x"]}, "model_info": {"enable_tag_filtering": False}},
        {"model_name": "big", "litellm_params": {
            "model": "groq/llama-3.2-3b-preview", "api_base": stack.upstream_base,
            "api_key": key}, "model_info": {"max_input_tokens": 100000}},
        on_errors("small", "cw", info={"max_input_tokens": SMALL_WINDOW}),
        on_errors("small-claude", "cw-anthropic", model="anthropic/claude-3-haiku-20240307"),
        on_errors("small-alone", "cw"),
        on_errors("guarded", "cp"),
        on_errors("guarded-azure", "cp-azure"),
        on_errors("broken", "fail"),
        on_errors("broken-own", "fail"),
    ]


class RoutingGroupsTest(harness.StackTestCase):
    stack_options = {
        "extra_models": models,
        "extra_config": {"router_settings": {
            "enable_tag_filtering": True,
            "model_group_alias": {"fast": "llama3",
                                  "secret": {"model": "llama3", "hidden": True}},
            "context_window_fallbacks": [{"small": ["big"]}, {"small-claude": ["big"]}],
            "content_policy_fallbacks": [{"guarded": ["llama3"]}, {"guarded-azure": ["big"]}],
            "default_fallbacks": ["llama3"],
            "fallbacks": [{"broken-own": ["big"]}],
        }},
    }

    @classmethod
    def setUpClass(cls):
        global ERRORS_UPSTREAM
        ERRORS_UPSTREAM = ErrorUpstream(ERRORS, default=(404, {"error": {"message": "no such path"}}))
        cls.addClassCleanup(ERRORS_UPSTREAM.stop)
        super().setUpClass()

    def chat(self, model, key=MASTER_KEY, content="hello", **fields):
        body = dict({"model": model, "messages": [{"role": "user", "content": content}]}, **fields)
        return self.stack.proxy("POST", "/v1/chat/completions", body, key)

    def served_by(self, model, **kw):
        """The model the upstream that answered was sent (200 expected)."""
        st, _, b = self.chat(model, **kw)
        self.assertEqual(st, 200, b)
        return b["model"]

    def row(self, rid, cols):
        rows = wait_for(lambda: self.stack.sql("SELECT %s FROM spend_logs WHERE request_id = '%s'"
                                               % (cols, rid)), LEDGER_TIMEOUT,
                        message="no ledger row for %s" % rid)
        return rows[0]

    def new_key(self, **fields):
        st, _, b = self.stack.report("POST", "/key/generate", fields, key=MASTER_KEY)
        self.assertEqual(st, 200, b)
        return b["key"]

    def listed(self, key=MASTER_KEY):
        st, _, b = self.stack.proxy("GET", "/v1/models", key=key)
        self.assertEqual(st, 200, b)
        return [m["id"] for m in b["data"]]

    # ------------------------------------------------------------- aliases

    def test_alias_served_listed_and_logged(self):
        st, h, b = self.chat("fast")
        self.assertEqual(st, 200, b)
        self.assertEqual(b["model"], "llama-3.1-8b-instant")
        self.assertEqual(h["x-litellm-model-group"], "fast")
        # LiteLLM's spend log keeps the name asked for (metadata.model_group)
        self.assertEqual(self.row(h["x-litellm-call-id"], "model_group, model"),
                         ["fast", "groq/llama-3.1-8b-instant"])
        names = self.listed()
        self.assertIn("fast", names)
        self.assertIn("llama3", names)
        self.assertNotIn("secret", names)  # hidden: served, not listed
        self.assertEqual(self.served_by("secret"), "llama-3.1-8b-instant")

    def test_alias_and_key_allow_list(self):
        group_key = self.new_key(models=["llama3"])
        self.assertEqual(self.chat("fast", key=group_key)[0], 200)  # the alias's group allowed
        alias_key = self.new_key(models=["fast"])
        self.assertEqual(self.chat("fast", key=alias_key)[0], 200)  # the alias itself allowed
        st, _, b = self.chat("llama3", key=alias_key)  # ... not its group under its own name
        self.assertEqual(st, 401, b)
        self.assertEqual(self.listed(alias_key), ["fast"])
        other_key = self.new_key(models=["big"])
        for name in ("fast", "secret"):  # an alias never widens a key's models
            st, _, b = self.chat(name, key=other_key)
            self.assertEqual(st, 401, b)
            self.assertIn("not allowed to access model", b["error"]["message"])

    # ---------------------------------------------------------------- tags

    def test_tags_reach_only_matching_deployments(self):
        for _ in range(6):
            self.assertEqual(self.served_by("tiered", metadata={"tags": ["free"]}),
                             "mixtral-8x7b-32768")
            self.assertEqual(self.served_by("tiered", metadata={"tags": ["paid", "other"]}),
                             "gemma2-9b-it")
            # untagged, or tags no deployment has: the "default" ones
            self.assertEqual(self.served_by("tiered"), "llama-3.3-70b-versatile")
            self.assertEqual(self.served_by("tiered", metadata={"tags": ["nobody"]}),
                             "llama-3.3-70b-versatile")

    def test_key_tags_route(self):
        paid = self.new_key(tags=["paid"])
        for _ in range(4):
            self.assertEqual(self.served_by("tiered", key=paid), "gemma2-9b-it")

    def test_no_matching_deployment_is_refused(self):
        for model, tags in (("strict", ["zzz"]), ("llama3", ["free"])):
            st, _, b = self.chat(model, metadata={"tags": tags})
            self.assertEqual(st, 401, b)
            self.assertErrorShape(b, 401, param="model")
            self.assertEqual(b["error"]["message"],
                             "Not allowed to access model due to tags configuration. "
                             "Passed model=%s and tags=['%s']" % (model, tags[0]))
        # untagged: no "default" deployment, so any
        self.assertEqual(self.served_by("strict"), "llama-3.1-70b-versatile")
        # model_info.enable_tag_filtering: false turns it off for its group
        self.assertEqual(self.served_by("open", metadata={"tags": ["zzz"]}),
                         "llama-3.1-70b-versatile")

    def test_pinned_response_keeps_to_tags(self):
        """previous_response_id sends a request to the deployment that made the response,
        unless the request's tags may not reach that one."""
        def responses(tags, prev=None):
            body = {"model": "tiered", "input": "hi", "metadata": {"tags": tags}}
            if prev is not None:
                body["previous_response_id"] = prev
            st, _, b = self.stack.proxy("POST", "/v1/responses", body, MASTER_KEY)
            self.assertEqual(st, 200, b)
            sent = [r for r in self.stack.upstream_requests()
                    if r.get("path", "").endswith("/responses")][-1]["body"]
            return b["id"], sent["model"], sent.get("previous_response_id")
        rid, model, _ = responses(["free"])
        self.assertEqual(model, "mixtral-8x7b-32768")
        for _ in range(3):
            _, model, prev = responses(["free"], rid)
            self.assertEqual((model, prev), ("mixtral-8x7b-32768", rid.split("_", 2)[2]))
            self.assertEqual(responses(["paid"], rid)[1], "gemma2-9b-it")

    # ------------------------------------------------------------ fallbacks

    def test_long_prompt_skips_to_context_window_fallback(self):
        before = ERRORS_UPSTREAM.count("cw")
        long_prompt = " ".join(["word"] * (SMALL_WINDOW * 3))
        st, h, b = self.chat("small", content=long_prompt)
        self.assertEqual(st, 200, b)
        self.assertEqual(b["model"], "llama-3.2-3b-preview")
        self.assertEqual(ERRORS_UPSTREAM.count("cw"), before)  # "small" was never called
        self.assertEqual(self.row(h["x-litellm-call-id"], "model_group, model"),
                         ["small", "groq/llama-3.2-3b-preview"])

    def test_context_window_error_falls_back(self):
        for model, kind in (("small", "cw"), ("small-claude", "cw-anthropic")):
            before = ERRORS_UPSTREAM.count(kind)
            self.assertEqual(self.served_by(model), "llama-3.2-3b-preview")  # a short prompt
            self.assertEqual(ERRORS_UPSTREAM.count(kind), before + 1)
        # a stream too: the error comes before any event, so it switches alike
        before = ERRORS_UPSTREAM.count("cw")
        st, _, b = self.chat("small", stream=True)
        self.assertEqual(st, 200, b)
        self.assertIn('"model":"llama-3.2-3b-preview"', b.replace(" ", ""))
        self.assertEqual(ERRORS_UPSTREAM.count("cw"), before + 1)
        # without context_window_fallbacks of its own the error stands (not default_fallbacks)
        st, _, b = self.chat("small-alone")
        self.assertEqual(st, 400, b)
        self.assertIn("maximum context length", b["error"]["message"])

    def test_content_policy_error_falls_back(self):
        before = ERRORS_UPSTREAM.count("cp")
        self.assertEqual(self.served_by("guarded"), "llama-3.1-8b-instant")
        self.assertEqual(ERRORS_UPSTREAM.count("cp"), before + 1)
        self.assertEqual(self.served_by("guarded-azure"), "llama-3.2-3b-preview")

    def test_default_fallbacks(self):
        # no fallbacks of its own: default_fallbacks
        self.assertEqual(self.served_by("broken"), "llama-3.1-8b-instant")
        # its own fallbacks win over the default ones
        self.assertEqual(self.served_by("broken-own"), "llama-3.2-3b-preview")


if __name__ == "__main__":
    unittest.main()
