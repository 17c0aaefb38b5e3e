"""test_routing_redis.py - usage-based routing's counts shared among proxyd through
Redis (router_settings redis_host / redis_port / redis_password), as LiteLLM's
lowest_tpm_rpm_v2.py: two proxyd of one stack, a group "pool" of two deployments
(pool_upstream.py a and b, model_info ids dep-a and dep-b), a with tpm 250.

- SharedThroughRedis: requests through proxyd spend a's tpm this minute (3 x 100
  tokens), Redis holds LiteLLM's keys (dep-a:tpm:HH-MM = 300, dep-a:rpm:HH-MM = 3),
  and proxyd-2, which never sent a request to a, sends nothing more to a. Then Redis
  stops: proxyd-2 logs it once and routes on its own counts (a again); Redis back,
  it logs that it shares again. A reload (SIGHUP) connects again for the new
  config generation.
- NotShared: the same without Redis: proxyd-2 counts its own, so it still sends
  to a (the contrast).

Run from the repo root:  python3 tests/e2e/run.py tests/e2e/test_routing_redis.py
"""

import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import MASTER_KEY, StackTestCase, wait_for  # noqa: E402
from pool_upstream import PoolUpstream  # noqa: E402
from redis_server import RedisServer, minute_key  # noqa: E402

CHAT = "/v1/chat/completions"
USAGE = {"prompt_tokens": 10, "completion_tokens": 90}  # 100 tokens an answer
REDIS_PASSWORD = "pw-redis"
DOWN = "usage-based routing counts this proxyd's own requests and tokens until Redis answers"
BACK = "shares its counts again"


class _TwoProxyd(StackTestCase):
    """A stack with a second proxyd; with_redis: both share through a redis-server."""

    with_redis = False
    redis = None

    @classmethod
    def setUpClass(cls):
        cls.ups = [PoolUpstream(name) for name in "ab"]
        cls.addClassCleanup(lambda: [u.stop() for u in cls.ups])
        router = {"routing_strategy": "usage-based-routing-v2"}
        if cls.with_redis:
            cls.redis = RedisServer(password=REDIS_PASSWORD).start()
            cls.addClassCleanup(cls.redis.stop)
            router.update({"redis_host": "127.0.0.1", "redis_port": cls.redis.port,
                           "redis_password": REDIS_PASSWORD})
        pool = [{"model_name": "pool", "model_info": {"id": "dep-" + u.name},
                 "litellm_params": dict({"model": "openai/gpt-4o-mini", "api_base": u.base,
                                         "api_key": "sk-pool"}, **extra)}
                for u, extra in zip(cls.ups, ({"tpm": 250}, {}))]
        cls.stack_options = {"extra_models": pool, "extra_config": {"router_settings": router}}
        super().setUpClass()
        cls.port_2 = cls.stack.add_proxyd("proxyd-2")

    def chat_to(self, port):
        """One chat to pool through the proxyd on port; the upstream that answered."""
        before = [u.count() for u in self.ups]
        body = {"model": "pool", "messages": [{"role": "user", "content": "hello"}],
                "mock_usage": USAGE}
        st, _, b = self.stack.http("POST", port, CHAT, body, key=MASTER_KEY)
        self.assertEqual(st, 200, b)
        hit = [u.name for u, n in zip(self.ups, before) if u.count() > n]
        self.assertEqual(len(hit), 1, hit)
        return hit[0]

    def spend_a_through_proxyd_1(self):
        """Until a answered 3 requests of proxyd (300 tokens: over its tpm 250 with
        any prompt), within one minute; its picks."""
        while time.time() % 60 > 40:  # the counts are the minute's: stay within one
            time.sleep(1)
        picks = []
        while picks.count("a") < 3 and len(picks) < 10:
            picks.append(self.chat_to(self.stack.proxyd_port))
        self.assertEqual(picks.count("a"), 3, picks)
        # proxyd itself now keeps away from a
        self.assertEqual([self.chat_to(self.stack.proxyd_port) for _ in range(2)], ["b", "b"])
        return picks


class SharedThroughRedis(_TwoProxyd):
    with_redis = True

    def proxyd_2_log(self):
        return self.stack.daemon_log("proxyd-2").read_text(errors="replace")

    def test_1_proxyd_2_avoids_what_proxyd_1_spent(self):
        self.spend_a_through_proxyd_1()
        now = time.time()
        self.assertEqual(self.redis.command("GET", minute_key("dep-a", "tpm", now)), "300")
        self.assertEqual(self.redis.command("GET", minute_key("dep-a", "rpm", now)), "3")
        ttl = self.redis.command("TTL", minute_key("dep-a", "tpm", now))
        self.assertTrue(0 < ttl <= 60, ttl)  # routing_strategy_args.ttl (LiteLLM's 60 s)
        time.sleep(1.0)  # proxyd-2 reads Redis every 200 ms
        picks = [self.chat_to(self.port_2) for _ in range(4)]
        self.assertEqual(picks, ["b"] * 4, "proxyd-2 sees a's tokens through Redis")
        self.assertEqual(self.redis.command("GET", minute_key("dep-b", "rpm", now)),
                         str(self.ups[1].count()))

    def test_2_redis_down_own_counts_then_back(self):
        before = len(self.proxyd_2_log())
        self.redis.stop_server()
        wait_for(lambda: DOWN in self.proxyd_2_log()[before:], 10,
                 message="proxyd-2 did not log that Redis is gone")
        time.sleep(3.0)  # several reconnect attempts
        self.assertEqual(self.proxyd_2_log()[before:].count(DOWN), 1, "logged once")
        # on its own counts proxyd-2 never sent a thing to a: a is back in its choice
        picks = [self.chat_to(self.port_2) for _ in range(4)]
        self.assertIn("a", picks)
        self.redis.start()
        wait_for(lambda: BACK in self.proxyd_2_log()[before:], 20,
                 message="proxyd-2 did not reconnect to Redis")
        self.assertEqual(self.chat_to(self.port_2) in ("a", "b"), True)

    def test_3_a_reload_shares_through_its_own_connection(self):
        # a new config generation connects again; the old one's connection goes with it
        before = len(self.proxyd_2_log())
        os.kill(self.stack.daemon("proxyd-2").proc.pid, signal.SIGHUP)
        wait_for(lambda: "reloaded" in self.proxyd_2_log()[before:], 10,
                 message="proxyd-2 did not reload")
        wait_for(lambda: "shares its counts through redis" in self.proxyd_2_log()[before:], 10)
        now = time.time()
        counts = [self.redis.command("GET", minute_key(d, "rpm", now)) for d in ("dep-a", "dep-b")]
        self.chat_to(self.port_2)
        wait_for(lambda: [self.redis.command("GET", minute_key(d, "rpm", now))
                          for d in ("dep-a", "dep-b")] != counts or time.time() // 60 != now // 60,
                 10, message="the reloaded proxyd-2 sent no INCR to Redis")


class NotShared(_TwoProxyd):
    def test_proxyd_2_counts_only_its_own(self):
        self.spend_a_through_proxyd_1()
        picks = [self.chat_to(self.port_2) for _ in range(2)]
        # equal (zero) counts on proxyd-2: one each, a included
        self.assertEqual(sorted(picks), ["a", "b"], picks)


if __name__ == "__main__":
    unittest.main()
