"""test_activity.py - daily activity, end users and /spend/calculate.

A random ledger over several UTC days is written through accountd: event-gen --days (keys,
users, teams, end users, tags, some failed requests), send-events rows of another model
without user, team or tags (one a week back), and a few requests through proxyd with cache
reads. Every number of every /user|team|tag/daily/activity answer (each day's metrics,
every breakdown, the metadata totals, page, total_pages, has_more) is compared with the
same sums over spend_logs, exactly (DECIMAL summed with Decimal), for whole ranges,
sub-ranges, each filter and every page of small page sizes; /global/spend/end_users too.
/spend/calculate is compared with costs computed here from libtollgate/data/prices.json
(the stack's price map) and, for prompts, token counts from tests/data/tokenizer_vectors.
Then the refusals: no key, bad key, a key without get_spend_routes, bad parameters named.
Last, with spend_logs renamed away, the answers stay the same: they come from the rollups.

Run from the repo root:  python3 -m unittest -v tests/e2e/test_activity.py
"""

import datetime
import decimal
import hashlib
import json
import os
import random
import subprocess
import sys
import time
import uuid
from decimal import ROUND_HALF_UP, Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))

import harness  # noqa: E402
import invariants  # noqa: E402
from accountd_bench import seed  # noqa: E402
from harness import MASTER_KEY  # noqa: E402

decimal.getcontext().prec = 80  # sums of DECIMAL(38,20) stay exact

KEYS, TEAMS, DAYS = 8, 3, 5
DAY_S = 86400
# the ledger's sizes, keys and tokens are drawn from this seed (event-gen's draws too)
SEED = int(os.environ.get("TOLLGATE_TEST_SEED") or time.time())
METRICS = ("spend", "prompt_tokens", "completion_tokens", "total_tokens", "api_requests",
           "successful_requests", "failed_requests", "cache_read_input_tokens",
           "cache_creation_input_tokens")
TOTALS = ("total_spend", "total_prompt_tokens", "total_completion_tokens", "total_tokens",
          "total_api_requests", "total_successful_requests", "total_failed_requests",
          "total_cache_read_input_tokens", "total_cache_creation_input_tokens")
DIMS = ("models", "model_groups", "providers", "api_keys", "entities")
DATA = os.path.join(harness.REPO, "tests", "data")
with open(os.path.join(harness.REPO, "libtollgate", "data", "prices.json")) as _f:
    PRICES = json.load(_f, parse_float=Decimal)["models"]


def as_json_money(d):
    """An exact amount as reportd writes it: rounded half up to 10 decimals, %.15g."""
    return Decimal("%.15g" % float(d.quantize(Decimal("1e-10"), rounding=ROUND_HALF_UP)))


class SeededFailure(AssertionError):
    """A failed check that names the seed of the ledger it was made on."""

    def __str__(self):
        return "%s\n(ledger seed %d: TOLLGATE_TEST_SEED=%d draws the same ledger)" % (
            super().__str__(), SEED, SEED)


def token(raw):
    return hashlib.sha256(raw.encode()).hexdigest()


def extra_models(stack):
    def dep(name, model, **more):
        params = {"model": model, "api_base": stack.upstream_base,
                  "api_key": "os.environ/GROQ_API_KEY"}
        params.update(more.pop("params", {}))
        return dict({"model_name": name, "litellm_params": params}, **more)
    return [
        dep("gpt4o-group", "openai/gpt-4o"),
        dep("finetune", "openai/my-finetune",
            params={"input_cost_per_token": "0.000006", "output_cost_per_token": "0.00003"}),
        dep("gpt4-by-base", "openai/company-gpt4",
            model_info={"base_model": "azure/gpt-4-1106-preview"}),
        dep("mystery", "openai/tollgate-no-such-model"),
    ]


# route -> (rollup rows' source in spend_logs terms, entity expression, condition)
ROUTES = {
    "user": ("spend_logs", "COALESCE(l.user, 'Unassigned')", ""),
    "team": ("spend_logs", "l.team_id", "AND l.team_id IS NOT NULL"),
    "tag": (invariants.TAGGED_LOGS, "l.tag", ""),
}


class ActivityTest(harness.StackTestCase):
    stack_options = {"extra_models": extra_models}
    failureException = SeededFailure

    @classmethod
    def setUpClass(cls):
        # The ledger's days count back from today (again when midnight passed meanwhile).
        today = cls.start_with_ledger(lambda: cls.write_ledger(random.Random(SEED)))
        s = cls.stack
        cls.today = today
        cls.start = (today - datetime.timedelta(days=9)).isoformat()  # an empty day too
        cls.end = today.isoformat()
        cls.keys_meta = {r[0]: {"key_alias": r[1], "team_id": r[2]}
                         for r in s.sql("SELECT token, key_alias, team_id FROM api_keys")}
        cls.entity_meta = {
            "user": {r[0]: {"user_email": r[1]}
                     for r in s.sql("SELECT user_id, user_email FROM internal_users")},
            "team": {r[0]: {"team_alias": r[1]}
                     for r in s.sql("SELECT team_id, team_alias FROM teams")},
            "tag": {},
        }
        cls.rows = {r: cls.log_rows(r) for r in ROUTES}

    @classmethod
    def write_ledger(cls, rnd):
        """event-gen over the last DAYS days, send-events rows 0, 1, 3, 7 and 7 days back,
        and three requests through proxyd now."""
        s = cls.stack
        seed(s, KEYS, TEAMS)
        s.sql("UPDATE teams SET team_alias = NULL WHERE team_id = 'bench-team-2';"
              "UPDATE internal_users SET user_email = CONCAT(user_id, '@example.com')"
              " WHERE user_id IN ('bench-user-1', 'bench-user-2');"
              "UPDATE api_keys SET key_alias = 'alias-3' WHERE token = '%s'"
              % token("bench-key-3"))
        p = subprocess.run(
            [str(harness.bin_dir() / "event-gen"), "--seed", str(SEED),
             "--keys", str(KEYS), "--teams", str(TEAMS),
             "--end-users", str(rnd.randint(15, 30)), "--tags", "4", "--batch", "50",
             "--days", str(DAYS), "--events", str(rnd.randint(600, 1200)),
             "tcp://127.0.0.1:%d" % s.events_port],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        assert p.returncode == 0, "seed %d: %s" % (SEED, p.stderr.decode())
        # another model, no user/team/tags/end user; one a week back (a gap before it)
        for days_ago in (0, 1, 3, 7, 7):
            p = subprocess.run(
                [str(harness.bin_dir() / "send-events"), "tcp://127.0.0.1:%d" % s.events_port,
                 "old-" + uuid.uuid4().hex, token("bench-key-%d" % rnd.randrange(KEYS)),
                 "gpt-4o", str(rnd.randint(1, 5000)), str(rnd.randint(1, 5000)), "1",
                 str(int((time.time() - days_ago * DAY_S) * 1000))],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
            assert p.returncode == 0, "seed %d: %s" % (SEED, p.stdout + p.stderr)
        # real requests through proxyd, with cache reads (event-gen has none)
        st, _, chatty = s.report("POST", "/key/generate", {
            "user_id": "bench-user-4", "team_id": "bench-team-1", "key_alias": "chatty"},
            key=MASTER_KEY)
        assert st == 200, chatty
        logged = int(s.sql_value("SELECT COUNT(*) FROM spend_logs"))
        for cached in (0, 200, 450):
            st, _, body = s.chat(chatty["key"], model="gpt4o-group", mock_usage={
                "prompt_tokens": 500, "completion_tokens": 50, "cached_tokens": cached})
            assert st == 200, body
        harness.wait_for(lambda: int(s.sql_value("SELECT COUNT(*) FROM spend_logs"))
                         == logged + 3, 10)

    # ---------------------------------------------------------- the logs' side

    @classmethod
    def log_rows(cls, route):
        """[(day, model, model_group, provider, api_key, entity, [9 metrics])] from the logs."""
        src, entity, cond = ROUTES[route]
        rows = cls.stack.sql(
            "SELECT DATE_FORMAT(l.start_time, '%%Y-%%m-%%d'), l.model, l.model_group,"
            " COALESCE(NULLIF(l.custom_llm_provider, ''), 'unknown'), l.api_key, %s,"
            " SUM(l.spend), SUM(l.prompt_tokens), SUM(l.completion_tokens), SUM(l.total_tokens),"
            " COUNT(*), SUM(l.status = 'success'), SUM(l.status <> 'success'),"
            " SUM(l.cache_read_input_tokens), SUM(l.cache_creation_input_tokens)"
            " FROM %s l WHERE l.start_time >= '%s' AND l.start_time < '%s' + INTERVAL 1 DAY %s"
            " GROUP BY 1, 2, 3, 4, 5, 6" % (entity, src, cls.start, cls.end, cond))
        return [(r[0], r[1], r[2], r[3], r[4], r[5],
                 [Decimal(r[6])] + [int(v) for v in r[7:]]) for r in rows]

    def expected(self, route, keep=lambda row: True, start=None, end=None):
        """{day: {"metrics": [...], dim: {name: [...]}}} of the rows keep() keeps."""
        days = {}
        for row in self.rows[route]:
            day, m = row[0], row[6]
            if not keep(row) or (start and day < start) or (end and day > end):
                continue
            d = days.setdefault(day, {"metrics": [0] * 9, **{k: {} for k in DIMS}})
            for dim, name in zip(DIMS, row[1:6]):
                acc = d[dim].setdefault(name, [0] * 9)
                for i in range(9):
                    acc[i] += m[i]
            for i in range(9):
                d["metrics"][i] += m[i]
        return days

    def metrics(self, vec, names=METRICS):
        return {n: (as_json_money(Decimal(v)) if i == 0 else v)
                for i, (n, v) in enumerate(zip(names, vec))}

    def meta_of(self, route, dim, name):
        if dim == "api_keys":
            return self.keys_meta.get(name, {"key_alias": None, "team_id": None})
        if dim == "entities" and route != "tag":
            field = "user_email" if route == "user" else "team_alias"
            return self.entity_meta[route].get(name, {field: None})
        return {}

    def page_answer(self, route, days, page, page_size):
        """The answer LiteLLM's shape requires for that page of days."""
        order = sorted(days, reverse=True)
        chosen = order[(page - 1) * page_size:page * page_size]
        totals = [0] * 9
        results = []
        for day in chosen:
            d = days[day]
            totals = [a + b for a, b in zip(totals, d["metrics"])]
            results.append({
                "date": day, "metrics": self.metrics(d["metrics"]),
                "breakdown": {dim: {name: {"metrics": self.metrics(v),
                                           "metadata": self.meta_of(route, dim, name)}
                                    for name, v in d[dim].items()} for dim in DIMS}})
        meta = self.metrics(totals, TOTALS)
        meta.update({"page": page, "total_pages": -(-len(order) // page_size),
                     "has_more": page * page_size < len(order)})
        return {"results": results, "metadata": meta}

    # ---------------------------------------------------------- the API's side

    def activity(self, route, query, key=MASTER_KEY, status=200):
        st, _, body = self.stack.report("GET", "/%s/daily/activity?%s" % (route, query), key=key)
        self.assertEqual(st, status, body)
        return body

    def check(self, route, query="", keep=lambda row: True, start=None, end=None,
              page_size=1000):
        """Every page of the answer equals the logs' sums; returns the days."""
        days = self.expected(route, keep, start, end)
        dates = "start_date=%s&end_date=%s" % (start or self.start, end or self.end)
        pages = -(-len(days) // page_size)
        for page in range(1, pages + 2):  # and one past the end: empty, zero totals
            body = self.activity(route, "%s&page=%d&page_size=%d%s"
                                 % (dates, page, page_size, query))
            self.assertEqual(body, self.page_answer(route, days, page, page_size),
                             "%s page %d %s" % (route, page, query))
        return days

    # ---------------------------------------------------------- daily activity

    def test_whole_range_every_route(self):
        for route in ROUTES:
            days = self.check(route)
            self.assertGreaterEqual(len(days), DAYS if route != "user" else DAYS + 1, route)
        users = self.expected("user")
        self.assertIn("Unassigned", users[self.end]["entities"])  # send-events rows
        week = (self.today - datetime.timedelta(days=7)).isoformat()
        self.assertIn(week, users)
        self.assertNotIn(week, self.expected("team"))  # no team on those rows
        self.assertTrue(any(v[6] > 0 for d in users.values() for v in d["models"].values()),
                        "some failed requests")
        self.assertEqual(users[self.end]["models"]["openai/gpt-4o"][7], 650)  # cache reads

    def test_pages_of_two_and_three(self):
        for route in ROUTES:
            self.check(route, page_size=2)
        self.check("user", page_size=3)
        self.check("user", page_size=1)

    def test_sub_range_includes_the_end_day(self):
        a = (self.today - datetime.timedelta(days=3)).isoformat()
        b = (self.today - datetime.timedelta(days=1)).isoformat()
        for route in ROUTES:
            days = self.check(route, start=a, end=b)
            self.assertEqual(sorted(days), sorted(d for d in self.expected(route)
                                                  if a <= d <= b))
            self.assertIn(b, days)
        days = self.check("user", start=self.end, end=self.end)  # one day
        self.assertEqual(list(days), [self.end])

    def test_filters(self):
        k2 = token("bench-key-2")
        self.check("user", "&user_id=bench-user-1", lambda r: r[5] == "bench-user-1")
        self.check("user", "&model=gpt-4o", lambda r: r[1] == "gpt-4o")
        for raw in ("bench-key-2", k2):  # a raw key is hashed, a hash taken as is
            self.check("user", "&api_key=" + raw, lambda r: r[4] == k2, page_size=2)
        self.check("user", "&model=groq/llama-3.1-8b-instant&api_key=" + k2,
                   lambda r: r[4] == k2 and r[1] == "groq/llama-3.1-8b-instant")
        self.check("team", "&team_ids=bench-team-0,bench-team-2",
                   lambda r: r[5] in ("bench-team-0", "bench-team-2"))
        self.check("team", "&exclude_team_ids=bench-team-1", lambda r: r[5] != "bench-team-1")
        self.check("team", "&team_ids=bench-team-0,,bench-team-1&exclude_team_ids=bench-team-1",
                   lambda r: r[5] == "bench-team-0", page_size=2)
        self.check("tag", "&tags=bench-tag-0,bench-tag-1", lambda r: r[5] in
                   ("bench-tag-0", "bench-tag-1"))
        self.check("tag", "&tags=bench-tag-3&api_key=" + k2,
                   lambda r: r[5] == "bench-tag-3" and r[4] == k2)
        body = self.activity("team", "start_date=%s&end_date=%s&team_ids=nobody"
                             % (self.start, self.end))
        self.assertEqual(body, self.page_answer("team", {}, 1, 10))

    def test_default_page_sizes(self):
        for route, size in (("user", 50), ("team", 10), ("tag", 10)):
            body = self.activity(route, "start_date=%s&end_date=%s" % (self.start, self.end))
            self.assertEqual(body, self.page_answer(route, self.expected(route), 1, size))

    def test_refusals(self):
        s = self.stack
        st, _, plain = s.report("POST", "/key/generate", {}, key=MASTER_KEY)
        self.assertEqual(st, 200, plain)
        st, _, reader = s.report("POST", "/key/generate",
                                 {"permissions": {"get_spend_routes": True}}, key=MASTER_KEY)
        self.assertEqual(st, 200, reader)
        dates = "start_date=%s&end_date=%s" % (self.start, self.end)
        calls = [("GET", "/%s/daily/activity?%s" % (r, dates), None) for r in ROUTES] + [
            ("POST", "/global/spend/end_users", {}),
            ("POST", "/spend/calculate", {"model": "llama3",
                                          "messages": [{"role": "user", "content": "hi"}]})]
        for method, path, body in calls:
            st, _, b = s.report(method, path, body)
            self.assertErrorShape(b, 401, msg=path)
            st, _, b = s.report(method, path, body, key="sk-not-a-key")
            self.assertEqual(st, 401, path)
            st, _, b = s.report(method, path, body, key=plain["key"])
            self.assertEqual(st, 403, path)
            self.assertErrorShape(b, 403, type_="permission_error", msg=path)
            st, _, b = s.report(method, path, body, key=reader["key"])
            self.assertEqual(st, 200, (path, b))

    def bad_query(self, route, query, param):
        st, _, body = self.stack.report("GET", "/%s/daily/activity?%s" % (route, query),
                                        key=MASTER_KEY)
        self.assertEqual(st, 400, (query, body))
        self.assertErrorShape(body, 400, param=param, msg=query)

    def test_bad_parameters_are_named(self):
        d = "start_date=%s&end_date=%s" % (self.start, self.end)
        many = ",".join("t%d" % i for i in range(101))
        for route in ROUTES:
            self.bad_query(route, "end_date=" + self.end, "start_date")  # required
            self.bad_query(route, "start_date=" + self.start, "end_date")
            self.bad_query(route, "start_date=2024-13-01&end_date=2024-12-31", "start_date")
            self.bad_query(route, "start_date=2024-02-01&end_date=2024-02-30", "end_date")
            self.bad_query(route, "start_date=yesterday&end_date=2024-02-03", "start_date")
            self.bad_query(route, "start_date=2024-03-02&end_date=2024-03-01", "start_date")
            self.bad_query(route, d + "&page=0", "page")
            self.bad_query(route, d + "&page=two", "page")
            self.bad_query(route, d + "&page=1000001", "page")
            self.bad_query(route, d + "&page_size=0", "page_size")
            self.bad_query(route, d + "&page_size=1001", "page_size")
            self.bad_query(route, d + "&page_size=5x", "page_size")
            self.bad_query(route, d + "&model=" + "m" * 256, "model")
            self.bad_query(route, d + "&api_key=" + "k" * 256, "api_key")
        self.bad_query("user", d + "&user_id=" + "u" * 256, "user_id")
        self.bad_query("team", d + "&team_ids=" + many, "team_ids")
        self.bad_query("team", d + "&exclude_team_ids=" + many, "exclude_team_ids")
        self.bad_query("team", d + "&team_ids=" + "t" * 256, "team_ids")
        self.bad_query("tag", d + "&tags=" + many, "tags")

    # ---------------------------------------------------------- end users

    def end_users(self, body):
        st, _, answer = self.stack.report("POST", "/global/spend/end_users", body, key=MASTER_KEY)
        self.assertEqual(st, 200, answer)
        return answer

    def end_users_logs(self, start, end, key=None, limit=100):
        rows = self.stack.sql(
            "SELECT end_user, COUNT(*), SUM(spend) FROM spend_logs WHERE end_user IS NOT NULL"
            " AND start_time >= '%s' AND start_time < '%s' + INTERVAL 1 DAY %s GROUP BY end_user"
            % (start, end, "AND api_key = '%s'" % key if key else ""))
        rows.sort(key=lambda r: (-Decimal(r[2]), r[0]))
        return [{"end_user": r[0], "total_count": int(r[1]),
                 "total_spend": as_json_money(Decimal(r[2]))} for r in rows[:limit]]

    def test_end_users(self):
        month = (self.today - datetime.timedelta(days=30)).isoformat()
        everyone = self.end_users_logs(month, self.end)
        self.assertGreater(len(everyone), 5)
        st, _, answer = self.stack.report("POST", "/global/spend/end_users", None,
                                          key=MASTER_KEY)  # no body: LiteLLM's default
        self.assertEqual((st, answer), (200, everyone))
        self.assertEqual(self.end_users({}), everyone)
        self.assertEqual(self.end_users({"limit": 3}), everyone[:3])
        self.assertEqual(self.end_users({"limit": 3}), self.end_users_logs(month, self.end,
                                                                           limit=3))
        k1 = token("bench-key-1")
        for raw in ("bench-key-1", k1):
            self.assertEqual(self.end_users({"api_key": raw}),
                             self.end_users_logs(month, self.end, k1))
        a = (self.today - datetime.timedelta(days=2)).isoformat()
        b = (self.today - datetime.timedelta(days=1)).isoformat()
        want = self.end_users_logs(a, b)
        self.assertTrue(want)
        self.assertEqual(self.end_users({"startTime": a, "endTime": b}), want)
        # times: their UTC days, whole
        self.assertEqual(self.end_users({"startTime": a + "T23:59:59Z",
                                         "endTime": b + "T00:00:00.000Z"}), want)
        self.assertEqual(self.end_users({"startTime": a + " 10:00:00",
                                         "endTime": b + "T01:02:03+00:00"}), want)
        self.assertEqual(self.end_users({"startTime": "2001-01-01", "endTime": "2001-01-31"}),
                         [])

    def test_end_users_bad_body(self):
        cases = [({"startTime": "yesterday"}, "startTime"), ({"startTime": 20240101}, "startTime"),
                 ({"endTime": "2024-02-30"}, "endTime"),
                 ({"endTime": "2024-02-03T10:00:00+02:00"}, "endTime"),
                 ({"startTime": "2024-03-02", "endTime": "2024-03-01"}, "startTime"),
                 ({"api_key": 5}, "api_key"), ({"api_key": ""}, "api_key"),
                 ({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"limit": "5"}, "limit"),
                 ([], None), ("{not json", None)]
        for body, param in cases:
            st, _, answer = self.stack.report("POST", "/global/spend/end_users", body,
                                              key=MASTER_KEY)
            self.assertEqual(st, 400, (body, answer))
            self.assertErrorShape(answer, 400, param=param, msg=body)

    # ---------------------------------------------------------- /spend/calculate

    VECTORS = {}

    @classmethod
    def tokens(cls, text, enc):
        if not cls.VECTORS:
            with open(os.path.join(DATA, "tokenizer_vectors.jsonl")) as f:
                for line in f:
                    v = json.loads(line)
                    cls.VECTORS[v["text"]] = v
        return len(cls.VECTORS[text][enc])

    def calculate(self, body, status=200):
        st, _, answer = self.stack.report("POST", "/spend/calculate", body, key=MASTER_KEY)
        self.assertEqual(st, status, (body, answer))
        return answer

    def price(self, name, field):
        return Decimal(PRICES[name][field])

    def test_calculate_prompt(self):
        t1, t2, t3 = ("Hello, world!", "this is a test request, write a short poem",
                      "You are a helpful assistant that im using to make a test request to.")
        chat = [{"role": "system", "content": t3},
                {"role": "user", "content": t2, "name": "hello world"}]
        parts = [{"role": "user", "content": [
            {"type": "text", "text": t1}, {"type": "image_url", "image_url": {"url": "x"}},
            {"type": "text", "text": t2}]}, {"role": "assistant", "content": None}]

        def count(messages, enc):  # OpenAI's chat format: 3 a message, 1 a name, 3 to prime
            n = 3
            for m in messages:
                n += 3 + self.tokens(m["role"], enc)
                c = m.get("content")
                if isinstance(c, str):
                    n += self.tokens(c, enc)
                elif isinstance(c, list):
                    n += sum(self.tokens(p["text"], enc) for p in c if p["type"] == "text")
                if "name" in m:
                    n += self.tokens(m["name"], enc) + 1
            return n

        # model -> (encoding OpenAI uses for it, input price per token)
        cases = {
            "llama3": ("cl100k_base",  # a group; not an OpenAI model: cl100k estimates
                       self.price("groq/llama-3.1-8b-instant", "input_cost_per_token")),
            "gpt4o-group": ("o200k_base", self.price("gpt-4o", "input_cost_per_token")),
            "gpt-4o-mini": ("o200k_base", self.price("gpt-4o-mini", "input_cost_per_token")),
            "gpt-3.5-turbo": ("cl100k_base", self.price("gpt-3.5-turbo", "input_cost_per_token")),
            "finetune": ("cl100k_base", Decimal("0.000006")),  # the deployment's own price
            "gpt4-by-base": ("cl100k_base",  # priced and counted as its base_model
                             self.price("azure/gpt-4-1106-preview", "input_cost_per_token")),
        }
        for model, (enc, price) in cases.items():
            for messages in (chat, parts):
                want = as_json_money(count(messages, enc) * price)
                self.assertEqual(self.calculate({"model": model, "messages": messages}),
                                 {"cost": want, "prompt_tokens": count(messages, enc),
                                  "estimated": model in ("llama3", "finetune")}, (model, messages))
        self.assertEqual(count(chat, "cl100k_base"), 3 + 3 + 1 + 15 + 3 + 1 + 10 + 2 + 1)

    def test_calculate_completion_response(self):
        n = 0
        with open(os.path.join(DATA, "cost_cases.jsonl")) as f:
            for line in f:
                case = json.loads(line)
                if "base_model" in case or "input_cost_per_token" in case:
                    continue  # deployment pricing: below, through model groups
                if case.get("family", "base") != "base" or \
                        {"call", "request", "response"} & case.keys():
                    continue  # the other buckets and families: test_price_corpus.py
                resp = {"id": "chatcmpl-1", "object": "chat.completion", "model": case["model"],
                        "choices": [], "usage": case["usage"]}
                got = self.calculate({"completion_response": resp})
                self.assertEqual(got, {"cost": as_json_money(Decimal(case["expected"]))},
                                 case["case"])
                if "input_cost_per_request" not in self.entry(case["model"]):
                    self.assertEqual(got, {"cost": as_json_money(
                        self.usage_cost(case["model"], case["usage"]))}, case["case"])
                n += 1
        self.assertGreaterEqual(n, 6)
        usage = {"prompt_tokens": 1234, "completion_tokens": 567}
        for group, (inp, out) in {
                "llama3": (self.price("groq/llama-3.1-8b-instant", "input_cost_per_token"),
                           self.price("groq/llama-3.1-8b-instant", "output_cost_per_token")),
                "finetune": (Decimal("0.000006"), Decimal("0.00003"))}.items():
            self.assertEqual(self.calculate({"completion_response": {"model": group,
                                                                     "usage": usage}}),
                             {"cost": as_json_money(1234 * inp + 567 * out)}, group)

    @staticmethod
    def entry(model):
        return PRICES.get(model) or PRICES[model.split("/", 1)[1]]

    def usage_cost(self, model, usage):
        """The cost of a usage from the price map: uncached, cache read, cache write, output
        (a per-request fee is not among them: the corpus's own figure covers that case)."""
        p = self.entry(model)
        inp = Decimal(p["input_cost_per_token"])
        read = Decimal(p.get("cache_read_input_token_cost", inp))
        write = Decimal(p.get("cache_creation_input_token_cost", inp))
        out = Decimal(p.get("output_cost_per_token", 0))
        cr = usage.get("cache_read_input_tokens") or \
            usage.get("prompt_tokens_details", {}).get("cached_tokens", 0)
        cw = usage.get("cache_creation_input_tokens", 0)
        return ((usage["prompt_tokens"] - cr - cw) * inp + cr * read + cw * write
                + usage.get("completion_tokens", 0) * out)

    def test_calculate_bad_bodies(self):
        msgs = [{"role": "user", "content": "hi"}]
        resp = {"model": "gpt-4o", "usage": {"prompt_tokens": 1, "completion_tokens": 1}}
        cases = [
            ({}, "model"), ({"model": "no-such-model", "messages": msgs}, "model"),
            ({"model": "mystery", "messages": msgs}, "model"),  # a group without a price
            ({"model": 5, "messages": msgs}, "model"), ({"model": "", "messages": msgs}, "model"),
            ({"model": "llama3"}, "messages"), ({"model": "llama3", "messages": "hi"}, "messages"),
            ({"model": "llama3", "messages": []}, "messages"),
            ({"model": "llama3", "messages": [{"content": "no role"}]}, "messages"),
            ({"model": "llama3", "messages": [{"role": "user", "content": 5}]}, "messages"),
            ({"model": "llama3", "messages": [{"role": "user", "content": ["x"]}]}, "messages"),
            ({"model": "llama3", "messages": ["hi"]}, "messages"),
            ({"completion_response": "x"}, "completion_response"),
            ({"completion_response": {"usage": resp["usage"]}}, "completion_response.model"),
            ({"completion_response": dict(resp, model="no-such-model")},
             "completion_response.model"),
            ({"completion_response": dict(resp, usage=None)}, "completion_response.usage"),
            ({"completion_response": dict(resp, usage={"prompt_tokens": -1})},
             "completion_response.usage"),
            ({"completion_response": dict(resp, usage={"prompt_tokens": 1.5})},
             "completion_response.usage"),
            ({"completion_response": dict(resp, usage={
                "prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 11}})},
             "completion_response.usage"),
            ([], None), ("{", None),
        ]
        for body, param in cases:
            answer = self.calculate(body, 400)
            self.assertErrorShape(answer, 400, param=param, msg=body)

    # ---------------------------------------------------------- the rollups only

    def test_zz_rollups_only(self):
        """With spend_logs out of the way the answers stay the same: the routes read
        the rollups (runs last: it renames the table and puts it back)."""
        s = self.stack
        dates = "start_date=%s&end_date=%s&page_size=1000" % (self.start, self.end)
        before = [self.activity(r, dates) for r in ROUTES] + [self.end_users({})]
        self.assertEqual(invariants.check(s), [])
        s.sql("RENAME TABLE spend_logs TO spend_logs_away")
        try:
            after = [self.activity(r, dates) for r in ROUTES] + [self.end_users({})]
        finally:
            s.sql("RENAME TABLE spend_logs_away TO spend_logs")
        self.assertEqual(after, before)


if __name__ == "__main__":
    import unittest
    unittest.main()
