"""test_hardening_access.py - access rules that other paths used to get around (issue 18):

- a fallback group (router_settings.fallbacks, context_window_fallbacks,
  content_policy_fallbacks, default_fallbacks) the caller's key may not call is skipped,
  as LiteLLM's enforce_fallback_model_access: with none left the client gets the error
  of the group it asked for, and the group it may not call is never sent the request;
- a team's models bind its keys (the asked model, fallbacks and GET /v1/models), as
  LiteLLM's team_model_access_denied;
- reportd refuses a key of a blocked team as proxyd does (same status and words);
- reportd's CSV keeps a cell starting with = + - @, TAB or CR from being run as a
  spreadsheet formula (a leading ').

The deployments that fail live on ErrorUpstream (a server of the test process); the
others on the fake upstream, told apart by the model it answers with.

Run from the repo root:  python3 tests/e2e/run.py tests/e2e/test_hardening_access.py
"""

import csv
import io
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from error_upstream import ALWAYS_FAILING, ErrorUpstream  # noqa: E402
from harness import MASTER_KEY, utc_today, wait_for  # noqa: E402

LEDGER_TIMEOUT = 10.0
SMALL_WINDOW = 50          # max_input_tokens of "small"
BIG = "llama-3.2-3b-preview"    # what the fake upstream answers for group "big"
LLAMA = "llama-3.1-8b-instant"  # ... and for "llama3"

ERRORS = {
    "cw": (400, {"error": {"message": "This model's maximum context length is 50 tokens. However, "
                                      "your messages resulted in 60 tokens.",
                           "type": "invalid_request_error", "param": "messages",
                           "code": "context_length_exceeded"}}),
    "cp": (400, {"error": {"message": "Your request was rejected as a result of our safety "
                                      "system.", "type": "invalid_request_error", "param": None,
                           "code": "content_policy_violation"}}),
    "fail": ALWAYS_FAILING,
}

ERRORS_UPSTREAM = None  # made in setUpClass, before the stack: its port is in the config


def models(stack):
    key = "os.environ/GROQ_API_KEY"

    def on_errors(name, kind, info=None):
        entry = {"model_name": name, "litellm_params": {
            "model": "openai/refusing", "api_key": key,
            "api_base": "http://127.0.0.1:%d/%s/v1" % (ERRORS_UPSTREAM.port, kind)}}
        if info is not None:
            entry["model_info"] = info
        return entry

    return [
        {"model_name": "big", "litellm_params": {
            "model": "groq/llama-3.2-3b-preview", "api_base": stack.upstream_base,
            "api_key": key}, "model_info": {"max_input_tokens": 100000}},
        on_errors("broken", "fail"),
        on_errors("broken-default", "fail"),
        on_errors("small", "cw", info={"max_input_tokens": SMALL_WINDOW}),
        on_errors("guarded", "cp"),
    ]


class HardeningAccessTest(harness.StackTestCase):
    stack_options = {
        "extra_models": models,
        "extra_config": {"router_settings": {
            "model_group_alias": {"big-alias": "big"},
            "fallbacks": [{"broken": ["big", "llama3"]}],
            "context_window_fallbacks": [{"small": ["big"]}],
            "content_policy_fallbacks": [{"guarded": ["big-alias"]}],
            "default_fallbacks": ["big"],
        }},
    }

    @classmethod
    def setUpClass(cls):
        global ERRORS_UPSTREAM
        ERRORS_UPSTREAM = ErrorUpstream(ERRORS, default=(404, {"error": {"message": "no path"}}))
        cls.addClassCleanup(ERRORS_UPSTREAM.stop)
        super().setUpClass()

    def chat(self, model, key, content="hello"):
        body = {"model": model, "messages": [{"role": "user", "content": content}]}
        return self.stack.proxy("POST", "/v1/chat/completions", body, key)

    def new_key(self, **fields):
        st, _, b = self.stack.report("POST", "/key/generate", fields, key=MASTER_KEY)
        self.assertEqual(st, 200, b)
        return b["key"]

    def big_calls(self):
        return sum(1 for r in self.stack.upstream_requests()
                   if r.get("body", {}).get("model") == BIG)

    # ------------------------------------------------- fallbacks and the key's models

    def test_fallback_the_key_may_not_call_is_skipped(self):
        narrow = self.new_key(models=["broken", "llama3"])
        wide = self.new_key(models=["broken", "big", "llama3"])
        before = self.big_calls()
        # "big", first in broken's fallbacks, is not the narrow key's: the next one serves
        st, _, b = self.chat("broken", narrow)
        self.assertEqual((st, b.get("model")), (200, LLAMA), b)
        self.assertEqual(self.big_calls(), before)
        # a key that may call "big" (and the master key) still gets it
        for key in (wide, MASTER_KEY):
            st, _, b = self.chat("broken", key)
            self.assertEqual((st, b.get("model")), (200, BIG), b)
        self.assertEqual(self.big_calls(), before + 2)

    def test_nothing_left_gives_the_original_error(self):
        key = self.new_key(models=["broken-default", "small", "guarded"])
        before = self.big_calls()
        # default_fallbacks: only "big", skipped: the asked group's 500 stands
        st, _, b = self.chat("broken-default", key)
        self.assertEqual(st, 500, b)
        self.assertIn("always failing", b["error"]["message"])
        # context_window_fallbacks after the upstream's context error
        calls = ERRORS_UPSTREAM.count("cw")
        st, _, b = self.chat("small", key)
        self.assertEqual(st, 400, b)
        self.assertIn("maximum context length", b["error"]["message"])
        self.assertEqual(ERRORS_UPSTREAM.count("cw"), calls + 1)
        # a prompt over max_input_tokens: no skip to "big", the group itself answers
        st, _, b = self.chat("small", key, content=" ".join(["word"] * (SMALL_WINDOW * 3)))
        self.assertEqual(st, 400, b)
        self.assertIn("maximum context length", b["error"]["message"])
        self.assertEqual(ERRORS_UPSTREAM.count("cw"), calls + 2)
        # content_policy_fallbacks naming an alias of a group the key may not call
        st, _, b = self.chat("guarded", key)
        self.assertEqual(st, 400, b)
        self.assertIn("safety system", b["error"]["message"])
        self.assertEqual(self.big_calls(), before)
        # the same requests with a key allowed the alias go on to "big"
        alias_key = self.new_key(models=["guarded", "big-alias", "broken-default"])
        st, _, b = self.chat("guarded", alias_key)
        self.assertEqual((st, b.get("model")), (200, BIG), b)
        st, _, b = self.chat("broken-default", alias_key)  # its group "big" is not listed
        self.assertEqual(st, 500, b)
        self.assertEqual(self.big_calls(), before + 1)

    def test_team_models_bind_the_teams_keys(self):
        st, _, b = self.stack.report("POST", "/team/new",
                                     {"team_id": "hard-narrow", "models": ["broken", "llama3"]},
                                     key=MASTER_KEY)
        self.assertEqual(st, 200, b)
        key = self.new_key(team_id="hard-narrow")  # no models of its own: the team's decide
        before = self.big_calls()
        st, _, b = self.chat("big", key)
        self.assertEqual(st, 401, b)
        self.assertEqual(b["error"]["type"], "team_model_access_denied", b)
        self.assertEqual(b["error"]["message"], 'team not allowed to access model. This team can '
                         'only access models=["broken","llama3"]. Tried to access big')
        st, _, b = self.chat("llama3", key)
        self.assertEqual((st, b.get("model")), (200, LLAMA), b)
        # broken's first fallback, "big", is not the team's: "llama3" serves
        st, _, b = self.chat("broken", key)
        self.assertEqual((st, b.get("model")), (200, LLAMA), b)
        self.assertEqual(self.big_calls(), before)
        st, _, b = self.stack.proxy("GET", "/v1/models", None, key)
        self.assertEqual(st, 200, b)
        self.assertEqual(sorted(m["id"] for m in b["data"]), ["broken", "llama3"])

    # ------------------------------------------------------ a blocked team in reportd

    def test_reportd_refuses_a_blocked_teams_key_as_proxyd(self):
        st, _, b = self.stack.report("POST", "/team/new", {"team_id": "hard-blocked"},
                                     key=MASTER_KEY)
        self.assertEqual(st, 200, b)
        key = self.new_key(team_id="hard-blocked", permissions={"get_spend_routes": True})
        path = "/global/spend/report?start_date=%s&end_date=%s" % (utc_today(), utc_today())
        st, _, b = self.stack.report("GET", path, key=key)
        self.assertEqual(st, 200, b)
        st, _, b = self.stack.report("POST", "/team/update",
                                     {"team_id": "hard-blocked", "blocked": True}, key=MASTER_KEY)
        self.assertEqual(st, 200, b)
        rst, _, rb = self.stack.report("GET", path, key=key)
        pst, pb = wait_for(lambda: (lambda r: r if r[0] == 403 else None)(
            self.chat("llama3", key)[::2]), 5.0, message="proxyd never saw the team blocked")
        self.assertEqual((rst, pst), (403, 403), (rb, pb))
        self.assertEqual(rb["error"], pb["error"])
        self.assertEqual(rb["error"]["message"], "Team=hard-blocked is blocked. Update via "
                         "`/team/unblock` if you're an admin.")
        # unblocked: served again
        st, _, b = self.stack.report("POST", "/team/update",
                                     {"team_id": "hard-blocked", "blocked": False}, key=MASTER_KEY)
        self.assertEqual(st, 200, b)
        st, _, b = self.stack.report("GET", path, key=key)
        self.assertEqual(st, 200, b)

    # ---------------------------------------------------------- CSV formula guard

    def test_csv_guards_every_formula_lead(self):
        st, _, b = self.stack.report("POST", "/team/new", {"team_id": "csv-team"}, key=MASTER_KEY)
        self.assertEqual(st, 200, b)
        key = self.new_key(team_id="csv-team")
        st, h, b = self.chat("llama3", key)
        self.assertEqual(st, 200, b)
        wait_for(lambda: self.stack.sql("SELECT 1 FROM spend_logs WHERE request_id = '%s'"
                                        % h["x-litellm-call-id"]), LEDGER_TIMEOUT,
                 message="no ledger row")
        path = ("/global/spend/report?start_date=%s&end_date=%s&format=csv"
                % (utc_today(), utc_today()))
        for alias in ("=1+1", "+1", "-1", "@SUM(A1)", "\tcmd", "\rcmd", "plain", "a=b"):
            sql_alias = alias.replace("\t", "\\t").replace("\r", "\\r")
            self.stack.sql("UPDATE teams SET team_alias = '%s' WHERE team_id = 'csv-team'"
                           % sql_alias)
            st, _, text = self.stack.report("GET", path, key=MASTER_KEY)
            self.assertEqual(st, 200, text)
            cells = {r[1] for r in csv.reader(io.StringIO(text, newline=""))}
            guarded = alias[0] in "=+-@\t\r"
            self.assertIn("'" + alias if guarded else alias, cells, (alias, text))
            if guarded:
                self.assertNotIn(alias, cells, (alias, text))


if __name__ == "__main__":
    unittest.main()
