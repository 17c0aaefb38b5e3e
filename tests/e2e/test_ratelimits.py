"""test_ratelimits.py - a key's rpm_limit, tpm_limit and max_parallel_requests,
enforced exactly by one proxyd with nothing to set up (issue 19;
proxyd/ratelimit.c, call_limits.c).

- rpm_limit 30: of 100 requests sent over 10 s exactly 30 are relayed (the
  fake upstream sees 30, the ledger holds 30) and 70 get LiteLLM's 429 with
  retry-after; 60 s after the first, 100 more give exactly 30 again (release
  build; ASan stops after the first minute). The x-ratelimit-* headers count
  down.
- tpm_limit: a request takes its estimate (prompt and max_tokens) at
  admission and settles to the answer's real usage, streamed or not: the
  remaining tokens fall by the real usage; past the limit, a 429 naming
  tokens; a request whose estimate alone is over the limit is told so.
- max_parallel_requests 2: of 10 concurrent slow requests the fake upstream
  never has more than 2; the slots come back after client disconnects,
  upstream errors and upstream timeouts.
- Owners: a user's, team's, team member's budget's and end user's limits
  are shared by their keys; a key's budget_id (a tier) gives each of its
  keys the budget's limits as its own.

Run from the repo root:  python3 tests/e2e/run.py tests/e2e/test_ratelimits.py
"""

import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import MASTER_KEY, wait_for  # noqa: E402


def extra_models(stack):
    """A group with a 1 s timeout, and an Anthropic one (Messages' error shape)."""
    return [{"model_name": "llama3-1s", "litellm_params": {
        "model": "groq/llama-3.1-8b-instant", "api_base": stack.upstream_base,
        "api_key": "os.environ/GROQ_API_KEY", "timeout": 1}},
            {"model_name": "claude-rl", "litellm_params": {
                "model": "anthropic/claude-sonnet-4-20250514",
                "api_base": stack.upstream_base[:-len("/v1")],
                "api_key": "os.environ/GROQ_API_KEY"}}]


def tpm_round(test, key, stream):
    """Chats with max_tokens 300 answered 100 tokens each until one is refused;
    returns the remaining-token headers of the admitted ones and the refusal."""
    body = {"max_tokens": 300, "mock_usage": {"prompt_tokens": 40, "completion_tokens": 60}}
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    left = []
    for _ in range(20):
        st, h, b = test.stack.chat(key, **body)
        if st != 200:
            return left, (st, h, b)
        if stream:
            test.assertIn('"total_tokens":100', b.replace(" ", ""))
        left.append(int(h["x-ratelimit-remaining-tokens"]))
    test.fail("tpm_limit 1000 never refused")


def check_tpm_settles(test):
    """tpm_limit 1000, streamed and not: each admitted request counts its real 100
    tokens once it ends, not its estimate (prompt and max_tokens)."""
    for stream in (False, True):
        key, token = test.new_key(tpm_limit=1000)
        left, (st, h, b) = tpm_round(test, key, stream)
        estimate = 1000 - left[0]
        test.assertGreater(estimate, 300)  # the prompt and max_tokens
        test.assertEqual(left, [1000 - estimate - 100 * i for i in range(len(left))],
                         "stream" if stream else "whole")
        test.assertEqual(len(left), (1000 - estimate) // 100 + 1)
        test.assertEqual(st, 429, b)
        test.assertIn("Limit type: tokens. Current limit: 1000, Remaining: %d."
                      % (1000 - 100 * len(left)), b["error"]["message"])
        test.assertEqual(h["rate_limit_type"], "tokens")
    return key


class RateLimitsTest(harness.StackTestCase):
    stack_options = {"extra_models": extra_models,
                     "extra_config": {"router_settings": {"num_retries": 0}}}

    def new_key(self, **limits):
        st, _, b = self.stack.report("POST", "/key/generate", limits, key=MASTER_KEY)
        self.assertEqual(st, 200, b)
        return b["key"], b["token"]

    def upstream(self, path):
        st, _, b = self.stack.http("GET", self.stack.upstream_port, path)
        self.assertEqual(st, 200, b)
        return b

    def relayed(self, marker):
        return sum(1 for r in self.stack.upstream_requests()
                   if (r.get("body") or {}).get("mock_content") == marker)

    def send_spaced(self, key, marker, count, seconds):
        """count chats spaced evenly over seconds; returns [(status, headers, body)]."""
        out, start = [], time.monotonic()
        for i in range(count):
            delay = start + i * seconds / count - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            out.append(self.stack.chat(key, mock_content=marker))
        return out

    def test_rpm_exactly_the_limit_in_any_minute(self):
        key, token = self.new_key(rpm_limit=30)
        first = time.monotonic()
        one = self.send_spaced(key, "rpm-1", 100, 10)
        ok = [h for st, h, _ in one if st == 200]
        refused = [(h, b) for st, h, b in one if st == 429]
        self.assertEqual((len(ok), len(refused)), (30, 70), [st for st, _, _ in one])
        self.assertEqual([int(h["x-ratelimit-remaining-requests"]) for h in ok],
                         list(range(29, -1, -1)))
        for h in ok:
            self.assertEqual(h["x-ratelimit-limit-requests"], "30")
            self.assertEqual(h["x-ratelimit-api_key-limit-requests"], "30")
            self.assertEqual(h["x-ratelimit-api_key-remaining-requests"],
                             h["x-ratelimit-remaining-requests"])
            self.assertRegex(h["x-ratelimit-reset-requests"], r"^(\d+(\.\d+)?s|\d+ms|1m0s)$")
        h, b = refused[0]
        self.assertEqual(b["error"]["type"], "rate_limit_error")
        self.assertEqual(b["error"]["code"], "429")
        self.assertTrue(b["error"]["message"].startswith(
            "Rate limit exceeded for api_key: %s. Limit type: requests. Current limit: 30, "
            "Remaining: 0. Limit resets at: " % token), b["error"]["message"])
        self.assertTrue(1 <= int(h["retry-after"]) <= 60, h)
        self.assertEqual(h["x-ratelimit-remaining-requests"], "0")
        self.assertEqual(self.relayed("rpm-1"), 30)
        if harness.is_asan():  # the window's later minutes: the release run and test_ratelimit.c
            return     # (under ASan too); a minute of waiting adds no memory check
        # the 30 leave the window 60 s after they were admitted (all in the first 3 s)
        time.sleep(max(0.0, first + 60.5 - time.monotonic()))
        two = self.send_spaced(key, "rpm-2", 100, 10)
        self.assertEqual(sum(1 for st, _, _ in two if st == 200), 30,
                         [st for st, _, _ in two])
        self.assertEqual(self.relayed("rpm-2"), 30)
        wait_for(lambda: self.stack.sql_value(
            "SELECT COUNT(*) FROM spend_logs WHERE api_key = '%s'" % token) == "60", 30,
            message="the ledger does not hold exactly the 60 relayed requests")

    def test_tpm_settles_to_real_usage(self):
        key = check_tpm_settles(self)
        st, h, b = self.stack.chat(key, max_tokens=5000)
        self.assertEqual(st, 429, b)
        self.assertIn("more than the limit", b["error"]["message"])
        self.assertNotIn("retry-after", h)

    def concurrent(self, key, n, **body):
        """n chats at once; returns their statuses."""
        out = [None] * n

        def one(i):
            out[i] = self.stack.chat(key, **body)[0]
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        return out

    def test_parallel_slots_held_and_given_back(self):
        key, _ = self.new_key(max_parallel_requests=2)
        self.upstream("/stats/reset")
        got = self.concurrent(key, 10, mock_first_byte_delay_ms=1500)
        self.assertEqual(sorted(got), [200, 200] + [429] * 8, got)
        self.assertEqual(self.upstream("/stats")["calls_max"], 2)
        self.assertEqual(self.concurrent(key, 2, mock_first_byte_delay_ms=200), [200, 200])
        # client disconnects: two held streams closed
        held = [self.stack.held_stream(key, {"model": "llama3", "stream": True,
                                             "messages": [{"role": "user", "content": "x"}],
                                             "mock_stall_after_chunks": 1})[0]
                for _ in range(2)]
        self.assertEqual(self.stack.chat(key)[0], 429)
        for conn in held:
            conn.close()
        wait_for(lambda: self.stack.chat(key)[0] == 200, 10,
                 message="the slots of two closed streams did not come back")
        # upstream errors, then an upstream timeout (llama3-1s: 1 s, asked to wait 3)
        self.assertEqual(self.concurrent(key, 2, mock_status=500), [500, 500])
        self.assertEqual(self.concurrent(key, 2, mock_first_byte_delay_ms=200), [200, 200])
        timed = self.concurrent(key, 2, model="llama3-1s", mock_first_byte_delay_ms=3000)
        self.assertTrue(all(s in (408, 504) for s in timed), timed)
        self.assertEqual(self.concurrent(key, 2, mock_first_byte_delay_ms=200), [200, 200])


    def test_messages_refusal_in_anthropic_shape(self):
        key, token = self.new_key(rpm_limit=1)
        body = {"model": "claude-rl", "max_tokens": 10,
                "messages": [{"role": "user", "content": "hi"}]}
        h = {"x-api-key": key, "anthropic-version": "2023-06-01"}
        st, hd, b = self.stack.proxy("POST", "/v1/messages", body, headers=h)
        self.assertEqual(st, 200, b)
        self.assertEqual(hd["x-ratelimit-remaining-requests"], "0")
        st, hd, b = self.stack.proxy("POST", "/v1/messages", body, headers=h)
        self.assertEqual(st, 429, b)
        self.assertEqual((b["type"], b["error"]["type"]), ("error", "rate_limit_error"), b)
        self.assertTrue(b["error"]["message"].startswith(
            "Rate limit exceeded for api_key: %s. Limit type: requests." % token), b)
        self.assertIn("retry-after", hd)

    def admitted(self, keys, n, descriptor, value, **body):
        """n chats round-robin over keys; returns how many were relayed, and checks
        the first refusal names the descriptor and value."""
        got = [self.stack.chat(keys[i % len(keys)], **body) for i in range(n)]
        refused = [b for st, _, b in got if st == 429]
        if refused:
            self.assertTrue(refused[0]["error"]["message"].startswith(
                "Rate limit exceeded for %s: %s. Limit type: requests." % (descriptor, value)),
                refused[0]["error"]["message"])
        self.assertEqual(sorted({st for st, _, _ in got} - {200, 429}), [])
        return sum(1 for st, _, _ in got if st == 200)

    def test_owners_limits_are_shared_by_their_keys(self):
        s = self.stack
        self.assertEqual(s.report("POST", "/team/new", {"team_id": "rl-team"},
                                  key=MASTER_KEY)[0], 200)
        self.assertEqual(s.report("POST", "/team/new", {"team_id": "rl-team2"},
                                  key=MASTER_KEY)[0], 200)
        for user in ("rl-user", "rl-member"):
            self.assertEqual(s.report("POST", "/user/new", {"user_id": user},
                                      key=MASTER_KEY)[0], 200)
        self.assertEqual(s.report("POST", "/team/member_add", {
            "team_id": "rl-team2", "member": {"user_id": "rl-member", "role": "user"},
            "max_budget_in_team": 100}, key=MASTER_KEY)[0], 200)
        s.sql("UPDATE internal_users SET rpm_limit = 5 WHERE user_id = 'rl-user';"
              " UPDATE teams SET rpm_limit = 4 WHERE team_id = 'rl-team';"
              " UPDATE budgets b JOIN team_members m ON m.budget_id = b.budget_id"
              " SET b.rpm_limit = 3 WHERE m.team_id = 'rl-team2' AND m.user_id = 'rl-member'")
        user_keys = [self.new_key(user_id="rl-user")[0] for _ in range(2)]
        self.assertEqual(self.admitted(user_keys, 10, "user", "rl-user"), 5)
        team_keys = [self.new_key(team_id="rl-team")[0] for _ in range(2)]
        self.assertEqual(self.admitted(team_keys, 10, "team", "rl-team"), 4)
        member_keys = [self.new_key(team_id="rl-team2", user_id="rl-member")[0]
                       for _ in range(2)]
        self.assertEqual(self.admitted(member_keys, 10, "team_member", "rl-team2:rl-member"), 3)
        # another key of the team, not the member's: not limited by the member's budget
        self.assertEqual(self.admitted([self.new_key(team_id="rl-team2")[0]], 5,
                                       "team", "rl-team2"), 5)

    def test_tier_limits_are_each_keys_own(self):
        """A key's budget_id is a tier (LiteLLM's rate-limit tiers): the budget's
        rpm_limit is the key's own, counted per key, in place of the key's."""
        s = self.stack
        st, _, b = s.report("POST", "/budget/new", {"budget_id": "rl-tier", "rpm_limit": 2},
                            key=MASTER_KEY)
        self.assertEqual(st, 200, b)
        for own in ({}, {"rpm_limit": 10}):
            key, token = self.new_key(budget_id="rl-tier", **own)
            self.assertEqual(self.admitted([key], 5, "api_key", token), 2)
        st, _, b = s.report("GET", "/key/info?key=" + token, key=MASTER_KEY)
        self.assertEqual((st, b["info"]["rpm_limit"], b["info"]["litellm_budget_table"]["rpm_limit"]),
                         (200, 10, 2), b)
        key, token = self.new_key(rpm_limit=3)  # no tier: its own
        st, h, _ = s.chat(key)
        self.assertEqual((st, h["x-ratelimit-api_key-limit-requests"]), (200, "3"))
        st, _, b = s.report("POST", "/budget/new", {"budget_id": "rl-tier-tpm", "tpm_limit": 1000},
                            key=MASTER_KEY)
        self.assertEqual(st, 200, b)
        key, token = self.new_key(budget_id="rl-tier-tpm", tpm_limit=100000)
        st, h, b = s.chat(key, max_tokens=10)
        self.assertEqual(st, 200, b)
        self.assertEqual(h.get("x-ratelimit-api_key-limit-tokens"), "1000", h)
        self.assertNotIn("x-ratelimit-api_key-limit-requests", h)

    def test_end_user_and_model_limits(self):
        s = self.stack
        st, _, b = s.report("POST", "/customer/new", {"user_id": "rl-eu", "rpm_limit": 2},
                            key=MASTER_KEY)
        self.assertEqual(st, 200, b)
        keys = [self.new_key()[0] for _ in range(2)]
        self.assertEqual(self.admitted(keys, 6, "end_user", "rl-eu", user="rl-eu"), 2)
        self.assertEqual(self.admitted(keys, 4, "end_user", "rl-other", user="rl-other"), 4)
        key, token = self.new_key(metadata={"model_rpm_limit": {"llama3": 3}})
        self.assertEqual(self.admitted([key], 6, "model_per_key", token + ":llama3"), 3)
        st, h, _ = s.chat(key, model="llama3-1s")
        self.assertEqual(st, 200)  # another model of the same key
        self.assertNotIn("x-ratelimit-model_per_key-limit-requests", h)


if __name__ == "__main__":
    unittest.main()
