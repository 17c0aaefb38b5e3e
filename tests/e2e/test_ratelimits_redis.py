"""test_ratelimits_redis.py - rate limits shared exactly by four proxyd through
one Redis (router_settings.redis_*; issue 19; proxyd/ratelimit_redis.c), behind
the shipped HAProxy config (deploy/haproxy/haproxy.cfg, two more server lines).

- rpm_limit 600, 4 clients x 300 requests in 30 s through HAProxy: exactly 600
  relayed (the fake upstream and the ledger see 600), every proxyd served some;
  the same for a user's, a team's, an end user's and a per-model limit.
- max_parallel_requests 2 across the four: the fake upstream never has more
  than 2 at once.
- A proxyd killed with -9 holding 2 parallel slots: the others refuse until
  the slots expire (ratelimit_slot_ttl_ms), then serve.
- Redis stopped under load: nothing but 200s and 429s, each proxyd logs the
  fallback once and limits at limit / ratelimit_instances (local), or not at
  all (ratelimit_fallback: open); Redis back: shared again, counting exact.

Run from the repo root:  python3 tests/e2e/run.py tests/e2e/test_ratelimits_redis.py
"""

import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import MASTER_KEY, wait_for  # noqa: E402
from redis_server import RedisServer  # noqa: E402
from test_load_balancer import HAProxy, program  # noqa: E402
from test_ratelimits import check_tpm_settles  # noqa: E402

REDIS_PASSWORD = "pw-limits"
SLOT_TTL_MS = 4000
INSTANCES = 4


class HAProxy4(HAProxy):
    """The shipped HAProxy config over four proxyd (two server lines added)."""

    def __init__(self, ports):
        super().__init__(ports[:2])
        extra = "".join("    server proxyd%d 127.0.0.1:%d\n" % (i + 3, p)
                        for i, p in enumerate(ports[2:]))
        self.pairs[1] = ("    server proxyd2 127.0.0.1:4010\n",
                         "    server proxyd2 127.0.0.1:%d\n%s" % (ports[1], extra))


@unittest.skipUnless(program("haproxy"), "haproxy not installed (deploy/install-deps.sh --tests)")
class RedisLimitsTest(harness.StackTestCase):

    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer(password=REDIS_PASSWORD).start()
        cls.addClassCleanup(cls.redis.stop)
        cls.stack_options = {
            "extra_config": {"router_settings": {
                "redis_host": "127.0.0.1", "redis_port": cls.redis.port,
                "redis_password": REDIS_PASSWORD}},
            "tollgate": {"proxyd": {"ratelimit_instances": INSTANCES,
                                    "ratelimit_slot_ttl_ms": SLOT_TTL_MS}}}
        super().setUpClass()
        s = cls.stack
        cls.ports = [s.proxyd_port] + [s.add_proxyd("proxyd-%d" % i) for i in (2, 3, 4)]
        cls.haproxy = HAProxy4(cls.ports)
        cls.addClassCleanup(cls.haproxy.stop)
        cls.haproxy.start()
        for name in ["proxyd"] + ["proxyd-%d" % i for i in (2, 3, 4)]:
            wait_for(lambda n=name: "shared through redis" in
                     s.daemon_log(n).read_text(errors="replace"), 10,
                     message="%s does not share its rate limits through Redis" % name)
        time.sleep(4.5)  # HAProxy's health checks (2 s apart, rise 2) see all four up

    def new_key(self, **fields):
        st, _, b = self.stack.report("POST", "/key/generate", fields, key=MASTER_KEY)
        self.assertEqual(st, 200, b)
        return b["key"], b["token"]

    def slots_in_use(self, token):
        """The parallel slots Redis counts for the key (ratelimit_lua.h's "c")."""
        return int(self.redis.command("HGET", "tg:rl2:api_key:%s:w" % token, "c") or 0)

    def relayed(self, marker):
        return sum(1 for r in self.stack.upstream_requests()
                   if (r.get("body") or {}).get("mock_content") == marker)

    def clients(self, port, keys, each, seconds, marker, **body):
        """len(keys) clients, client i sending `each` chats with keys[i] spaced over
        `seconds`; returns every status."""
        out, lock = [], threading.Lock()

        def client(key):
            start = time.monotonic()
            for j in range(each):
                delay = start + j * seconds / each - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                st = self.stack.http("POST", port, "/v1/chat/completions",
                                     dict({"model": "llama3", "mock_content": marker,
                                           "messages": [{"role": "user", "content": "hi"}]},
                                          **body), key=key)[0]
                with lock:
                    out.append(st)
        threads = [threading.Thread(target=client, args=(k,)) for k in keys]
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + 120)
        return out

    def served_by_each(self):
        return {name: int(r["stot"]) for name, r in self.haproxy.stats().items()
                if name.startswith("proxyd")}

    def test_1_rpm_exact_across_four_proxyd(self):
        key, token = self.new_key(rpm_limit=600)
        before = self.served_by_each()
        got = self.clients(self.haproxy.port, [key] * 4, 300, 30, "rpm-600")
        self.assertEqual((got.count(200), got.count(429), len(got)), (600, 600, 1200))
        self.assertEqual(self.relayed("rpm-600"), 600)
        # counted in Redis (each proxyd's own share of 600 / 4 would also make 600 in all
        # when HAProxy spreads evenly), and full for every proxyd
        self.assertEqual(self.redis.command("HGET", "tg:rl2:api_key:%s:w" % token, "r"), "600")
        for port in self.ports:
            self.assertEqual(self.stack.http("POST", port, "/v1/chat/completions",
                                             {"model": "llama3", "messages": []}, key=key)[0], 429)
        after = self.served_by_each()
        self.assertTrue(all(after[n] - before.get(n, 0) > 50 for n in after), (before, after))
        wait_for(lambda: self.stack.sql_value(
            "SELECT COUNT(*) FROM spend_logs WHERE api_key = '%s'" % token) == "600", 30,
            message="the ledger does not hold exactly the 600 relayed requests")

    def test_1b_tpm_settles_in_redis(self):
        # one proxyd: a request's end reaches Redis before the next one's admission
        check_tpm_settles(self)
        self.assertEqual(self.stack.chat(self.new_key(tpm_limit=1000)[0], max_tokens=5000)[0],
                         429)

    def test_2_owner_limits_across_four_proxyd(self):
        s = self.stack
        for path, body in (("/team/new", {"team_id": "rr-team", "rpm_limit": 30}),
                           ("/user/new", {"user_id": "rr-user", "rpm_limit": 40}),
                           ("/customer/new", {"user_id": "rr-eu", "rpm_limit": 20})):
            st, _, b = s.report("POST", path, body, key=MASTER_KEY)
            self.assertEqual(st, 200, b)
        cases = [
            ("user", [self.new_key(user_id="rr-user")[0] for _ in range(4)], {}, 40),
            ("team", [self.new_key(team_id="rr-team")[0] for _ in range(4)], {}, 30),
            ("end user", [self.new_key()[0] for _ in range(4)], {"user": "rr-eu"}, 20),
            ("model", [self.new_key(metadata={"model_rpm_limit": {"llama3": 25}})[0]] * 4, {},
             25),
        ]
        for what, keys, body, limit in cases:
            got = self.clients(self.haproxy.port, keys, 20, 4, "owner-" + what, **body)
            self.assertEqual(got.count(200), limit, what)
            self.assertEqual(got.count(429), 80 - limit, what)

    def test_3_parallel_across_four_proxyd(self):
        key, _ = self.new_key(max_parallel_requests=2)
        st, _, _ = self.stack.http("GET", self.stack.upstream_port, "/stats/reset")
        self.assertEqual(st, 200)
        got = self.clients(self.haproxy.port, [key] * 10, 1, 0.01, "par",
                           mock_first_byte_delay_ms=1500)
        self.assertEqual(sorted(got), [200, 200] + [429] * 8)
        st, _, b = self.stack.http("GET", self.stack.upstream_port, "/stats")
        self.assertEqual(b["calls_max"], 2)
        token = self.stack.sql_value("SELECT token FROM api_keys WHERE max_parallel_requests = 2"
                                     " ORDER BY created_at DESC LIMIT 1")
        # given back at once (not when they expire, SLOT_TTL_MS later)
        wait_for(lambda: self.slots_in_use(token) == 0, 1,
                 message="the slots were not given back in Redis")
        got = self.clients(self.haproxy.port, [key] * 2, 1, 0.01, "par-2",
                           mock_first_byte_delay_ms=200)
        self.assertEqual(got, [200, 200])
        # Redis forgets its scripts (SCRIPT FLUSH): takes and ends load them again
        self.assertEqual(self.redis.command("SCRIPT", "FLUSH"), "OK")
        for _ in range(3):
            got = self.clients(self.haproxy.port, [key] * 2, 1, 0.01, "par-3",
                               mock_first_byte_delay_ms=200)
            self.assertEqual(got, [200, 200])
            wait_for(lambda: self.slots_in_use(token) == 0, 1,
                     message="the slots were not given back after SCRIPT FLUSH")

    def test_4_slots_of_a_killed_proxyd_expire(self):
        s = self.stack
        key, _ = self.new_key(max_parallel_requests=2)
        port = s.add_proxyd("proxyd-doomed")
        wait_for(lambda: "shared through redis" in
                 s.daemon_log("proxyd-doomed").read_text(errors="replace"), 10)
        time.sleep(0.5)
        body = {"model": "llama3", "stream": True, "mock_stall_after_chunks": 1,
                "messages": [{"role": "user", "content": "x"}]}
        saved = s.proxyd_port
        s.proxyd_port = port  # held_stream talks to proxyd_port
        try:
            held = [s.held_stream(key, body)[0] for _ in range(2)]
        finally:
            s.proxyd_port = saved
        s.crash("proxyd-doomed")
        killed = time.monotonic()
        for conn in held:
            conn.close()
        self.assertEqual(s.chat(key)[0], 429)  # the dead proxyd's slots are still taken
        wait_for(lambda: s.chat(key)[0] == 200, SLOT_TTL_MS / 1000 + 5,
                 message="the killed proxyd's slots did not expire")
        took = time.monotonic() - killed
        self.assertLess(took, SLOT_TTL_MS / 1000 + 5)
        print("\nslots of a proxyd killed with -9 came back after %.1f s (ttl %.1f s)"
              % (took, SLOT_TTL_MS / 1000), file=sys.stderr)

    def test_5_redis_down_falls_back_and_recovers(self):
        s = self.stack
        open_port = s.add_proxyd("proxyd-open", tollgate={"proxyd": {"ratelimit_fallback": "open"}})
        key, _ = self.new_key(rpm_limit=40)
        stop, statuses = threading.Event(), []

        def load():  # requests keep coming while Redis goes away
            while not stop.is_set():
                statuses.append(s.http("POST", self.haproxy.port, "/v1/chat/completions",
                                       {"model": "llama3", "messages": []}, key=key)[0])
                time.sleep(0.02)
        t = threading.Thread(target=load)
        t.start()
        time.sleep(0.5)
        self.redis.stop_server()
        for name in ["proxyd", "proxyd-2", "proxyd-open"]:
            wait_for(lambda n=name: "rate limits fall back" in
                     s.daemon_log(n).read_text(errors="replace"), 10,
                     message="%s did not log the fallback" % name)
        time.sleep(1)
        stop.set()
        t.join(30)
        self.assertEqual(sorted(set(statuses) - {200, 429}), [], statuses)
        # local: each proxyd limits at 40 / 4 = 10 on its own
        key2, _ = self.new_key(rpm_limit=40)
        got = [s.http("POST", self.ports[1], "/v1/chat/completions",
                      {"model": "llama3", "messages": []}, key=key2)[0] for _ in range(15)]
        self.assertEqual(got.count(200), 10, got)
        # open: everything passes
        got = [s.http("POST", open_port, "/v1/chat/completions",
                      {"model": "llama3", "messages": []}, key=key2)[0] for _ in range(15)]
        self.assertEqual(got.count(200), 15, got)
        st, _, text = s.http("GET", self.ports[1], "/metrics")
        self.assertIn("tollgate_proxyd_ratelimit_redis_up 0", text)
        log = s.daemon_log("proxyd-2").read_text(errors="replace")
        self.assertEqual(log.count("rate limits fall back"), 1, "one log line per outage")
        self.redis.start()
        for name in ["proxyd", "proxyd-2", "proxyd-3", "proxyd-4", "proxyd-open"]:  # once each
            wait_for(lambda n=name: "shared through it again" in
                     s.daemon_log(n).read_text(errors="replace"), 20,
                     message="%s did not share again" % name)
        key3, _ = self.new_key(rpm_limit=12)
        got = self.clients(self.haproxy.port, [key3] * 4, 10, 3, "after-redis")
        self.assertEqual(got.count(200), 12, got)
        st, _, text = s.http("GET", self.ports[1], "/metrics")
        self.assertIn("tollgate_proxyd_ratelimit_redis_up 1", text)


if __name__ == "__main__":
    unittest.main()
