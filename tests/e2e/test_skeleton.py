"""test_skeleton.py - end-to-end tests of Tollgate's walking skeleton.

Run from the repo root:  python3 -m unittest -v tests/e2e/test_skeleton.py
(TOLLGATE_BIN=/path/to/bin selects another build, e.g. the sanitizer one).

One Stack (MariaDB, fake-upstream, accountd, reportd, proxyd) serves the whole
class. Test names are numbered so the seed flow runs first: it asserts that the
day's report holds its request alone. Every other test uses its own keys.
"""

import datetime
import hashlib
import json
import os
import re
import sys
import unittest
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import MASTER_KEY, expected_cost, wait_for  # noqa: E402

LEDGER_TIMEOUT = float(os.environ.get("TOLLGATE_LEDGER_TIMEOUT", "5"))  # eventually consistent
# request ids are time-ordered UUIDs (version 7)
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
EXACT_DECIMAL_RE = re.compile(r"0|[1-9][0-9]*|[0-9]+\.[0-9]*[1-9]")  # no float noise, no trailing 0
SQL_TIME = "%Y-%m-%d %H:%M:%S.%f"

SPEND_LOG_COLUMNS = [
    "request_id", "call_type", "api_key", "key_alias", "spend", "pricing", "prompt_tokens",
    "completion_tokens", "total_tokens", "cache_read_input_tokens",
    "cache_creation_input_tokens", "start_time", "end_time", "model", "model_group",
    "custom_llm_provider", "api_base", "user", "team_id", "end_user", "request_tags", "metadata",
    "status", "http_status", "committed_at",
]


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


def sql_str(s):
    """A SQL string literal (test data only)."""
    return "'" + s.replace("\\", "\\\\").replace("'", "''") + "'"


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


class SkeletonTest(harness.StackTestCase):

    # ------------------------------------------------------------ helpers

    def spend_log(self, request_id):
        """The spend_logs row of request_id as a dict, or None."""
        rows = self.stack.sql("SELECT %s FROM spend_logs WHERE request_id = %s"
                              % (", ".join("`%s`" % c for c in SPEND_LOG_COLUMNS),
                                 sql_str(request_id)))
        return dict(zip(SPEND_LOG_COLUMNS, rows[0])) if rows else None

    def wait_spend_log(self, request_id):
        return wait_for(lambda: self.spend_log(request_id), LEDGER_TIMEOUT,
                        message="no spend_logs row for request %s within %.0f s\n%s" % (
                            request_id, LEDGER_TIMEOUT, self.stack.log_tail("accountd")))

    def spends(self, token=None, user_id=None, team_id=None):
        """Decimal spend of the key / user / team rows named."""
        out = []
        if token is not None:
            out.append(self.stack.sql_value("SELECT spend FROM api_keys WHERE token = %s"
                                            % sql_str(token)))
        if user_id is not None:
            out.append(self.stack.sql_value("SELECT spend FROM internal_users WHERE user_id = %s"
                                            % sql_str(user_id)))
        if team_id is not None:
            out.append(self.stack.sql_value("SELECT spend FROM teams WHERE team_id = %s"
                                            % sql_str(team_id)))
        return [Decimal(x) for x in out]

    def new_key(self, **fields):
        status, _, body = self.stack.report("POST", "/key/generate", fields, MASTER_KEY)
        self.assertEqual(status, 200, body)
        return body

    def new_team(self, **fields):
        status, _, body = self.stack.report("POST", "/team/new", fields, MASTER_KEY)
        self.assertEqual(status, 200, body)
        return body

    def assertCostHeader(self, headers, expected):
        cost = headers.get("x-litellm-response-cost")
        self.assertIsNotNone(cost, headers)
        self.assertRegex(cost, EXACT_DECIMAL_RE, "cost header is not exact decimal text")
        self.assertEqual(Decimal(cost), expected)
        return Decimal(cost)

    # ---------------------------------------------------------- 1. seed flow

    def test_1_seed_flow(self):
        s = self.stack
        # -- team
        status, _, team = s.report("POST", "/team/new", {
            "team_id": "prod-team", "team_alias": "Prod Team", "max_budget": 100}, MASTER_KEY)
        self.assertEqual(status, 200, team)
        self.assertRegex(team.pop("created_at"), r"^\d{4}-\d\d-\d\dT.*\+00:00$")
        self.assertRegex(team.pop("updated_at"), r"^\d{4}-\d\d-\d\dT.*\+00:00$")
        self.assertEqual(team, {
            "team_id": "prod-team", "team_alias": "Prod Team", "max_budget": 100, "spend": 0,
            "models": [], "metadata": {}, "blocked": False, "members_with_roles": [],
            "budget_duration": None, "budget_reset_at": None, "tpm_limit": None,
            "rpm_limit": None})
        self.assertEqual(s.sql("SELECT team_alias, max_budget, spend FROM teams"
                               " WHERE team_id = 'prod-team'"),
                         [["Prod Team", "100.00000000000000000000", "0.00000000000000000000"]])
        # -- user
        status, _, user = s.report("POST", "/user/new", {"user_id": "alice", "max_budget": 50},
                                   MASTER_KEY)
        self.assertEqual(status, 200, user)
        self.assertRegex(user.pop("created_at"), r"^\d{4}-\d\d-\d\dT.*\+00:00$")
        self.assertRegex(user.pop("updated_at"), r"^\d{4}-\d\d-\d\dT.*\+00:00$")
        self.assertEqual(user, {
            "user_id": "alice", "user_email": None, "user_alias": None,
            "user_role": "internal_user", "max_budget": 50, "spend": 0, "models": [],
            "teams": [], "metadata": {}, "budget_duration": None, "budget_reset_at": None,
            "tpm_limit": None, "rpm_limit": None})
        # -- key
        key_req = {"key_alias": "alice-prod", "user_id": "alice", "team_id": "prod-team",
                   "max_budget": 10, "permissions": {"get_spend_routes": True},
                   "metadata": {"owner": "alice", "purpose": "e2e"}}
        status, _, k = s.report("POST", "/key/generate", key_req, MASTER_KEY)
        self.assertEqual(status, 200, k)
        raw, token = k["key"], k["token"]
        self.assertTrue(raw.startswith("sk-"), raw)
        self.assertGreaterEqual(len(raw), 20)
        self.assertEqual(token, sha256(raw))
        self.assertEqual(k["key_name"], "sk-..." + raw[-4:])
        for field in ("key_alias", "user_id", "team_id", "permissions", "metadata"):
            self.assertEqual(k[field], key_req[field], field)
        self.assertEqual(k["max_budget"], 10)
        self.assertEqual(k["spend"], 0)
        self.assertEqual(k["models"], [])
        self.assertIsNone(k["expires"])
        self.assertIs(k["blocked"], False)
        self.assertRegex(k["created_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$")
        # The database keeps the hash only.
        self.assertEqual(s.sql("SELECT token, key_name, key_alias, user_id, team_id, max_budget,"
                               " DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%s.%f+00:00')"
                               " FROM api_keys WHERE key_alias = 'alice-prod'"),
                         [[token, k["key_name"], "alice-prod", "alice", "prod-team",
                           "10.00000000000000000000", k["created_at"]]])
        for row in s.sql("SELECT * FROM api_keys"):
            self.assertNotIn(raw, "\t".join(c or "" for c in row))
        self.assertEqual(json.loads(s.sql_value(
            "SELECT permissions FROM api_keys WHERE token = %s" % sql_str(token))),
            {"get_spend_routes": True})

        # -- the seed request
        tags = ["jobID:214590dsff09fds", "taskName:run_page_classification"]
        n_upstream = len(s.upstream_requests())
        before = utcnow()
        status, headers, answer = s.proxy("POST", "/v1/chat/completions", {
            "model": "llama3",
            "messages": [{"role": "user", "content": "classify this page"}],
            "user": "palantir",
            "metadata": {"tags": tags, "trace": "t1"},
            "mock_usage": {"prompt_tokens": 1000, "completion_tokens": 500},
        }, raw)
        after = utcnow()
        self.assertEqual(status, 200, answer)
        self.assertEqual(headers.get("x-litellm-response-cost"), "0.00009")
        cost = self.assertCostHeader(headers, expected_cost(1000, 500))
        self.assertEqual(cost, Decimal("0.00009"))
        call_id = headers.get("x-litellm-call-id")
        self.assertRegex(call_id or "", UUID_RE)
        self.assertEqual(answer["usage"], {"prompt_tokens": 1000, "completion_tokens": 500,
                                           "total_tokens": 1500})
        self.assertEqual(answer["choices"][0]["message"]["content"], "This is a fake answer.")

        # -- what the upstream received
        sent = s.upstream_requests()
        self.assertEqual(len(sent), n_upstream + 1, sent[n_upstream:])
        up = sent[-1]
        self.assertEqual(up["path"], "/v1/chat/completions")
        self.assertEqual(up["headers"].get("authorization"), "Bearer " + s.upstream_key)
        self.assertEqual(up["body"]["model"], "llama-3.1-8b-instant")
        self.assertNotIn("metadata", up["body"])
        self.assertEqual(up["body"]["user"], "palantir")
        self.assertEqual(up["body"]["messages"],
                         [{"role": "user", "content": "classify this page"}])
        self.assertNotIn(raw, json.dumps(up), "the virtual key leaked to the upstream")

        # -- the ledger row
        row = self.wait_spend_log(call_id)
        self.assertEqual(row["request_id"], call_id)
        self.assertEqual(row["call_type"], "chat_completion")
        self.assertEqual(row["api_key"], token)
        self.assertEqual(row["key_alias"], "alice-prod")
        self.assertEqual(Decimal(row["spend"]), cost)
        self.assertEqual(row["pricing"], "priced")
        self.assertEqual((row["prompt_tokens"], row["completion_tokens"], row["total_tokens"],
                          row["cache_read_input_tokens"], row["cache_creation_input_tokens"]),
                         ("1000", "500", "1500", "0", "0"))
        self.assertEqual(row["model"], "groq/llama-3.1-8b-instant")
        self.assertEqual(row["model_group"], "llama3")
        self.assertEqual(row["custom_llm_provider"], "groq")
        self.assertEqual(row["api_base"], s.upstream_base)
        self.assertEqual(row["user"], "alice")
        self.assertEqual(row["team_id"], "prod-team")
        self.assertEqual(row["end_user"], "palantir")
        self.assertEqual(json.loads(row["request_tags"]), tags)
        self.assertEqual(json.loads(row["metadata"]), {"trace": "t1"})
        self.assertEqual(row["status"], "success")
        self.assertEqual(row["http_status"], "200")
        start = datetime.datetime.strptime(row["start_time"], SQL_TIME)
        end = datetime.datetime.strptime(row["end_time"], SQL_TIME)
        committed = datetime.datetime.strptime(row["committed_at"], SQL_TIME)
        slack = datetime.timedelta(seconds=2)
        self.assertLessEqual(start, end)
        self.assertLessEqual(before - slack, start, "start_time is not UTC wall time")
        self.assertLessEqual(end, after + slack, "end_time is not UTC wall time")
        self.assertLessEqual(start, committed)
        day = start.date().isoformat()

        # -- counters, exactly the cost
        self.assertEqual(self.spends(token=token, user_id="alice", team_id="prod-team"),
                         [cost, cost, cost])
        # the end user and the tags, created on first use
        self.assertEqual(Decimal(s.sql_value("SELECT spend FROM customers"
                                             " WHERE user_id = 'palantir'")), cost)
        self.assertEqual(sorted((t, Decimal(v)) for t, v in s.sql("SELECT tag, spend FROM tags")),
                         sorted((t, cost) for t in tags))

        # -- /spend/logs
        expected_log = {
            "request_id": call_id, "call_type": "chat_completion", "api_key": token,
            "spend": cost, "total_tokens": 1500, "prompt_tokens": 1000,
            "completion_tokens": 500,
            "startTime": start.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00"),
            "endTime": end.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00"),
            "model": "groq/llama-3.1-8b-instant", "model_group": "llama3",
            "api_base": s.upstream_base, "user": "alice", "team_id": "prod-team",
            "end_user": "palantir", "key_alias": "alice-prod", "request_tags": tags,
            "status": "success", "metadata": {"trace": "t1"}, "cache_read_input_tokens": 0,
            "pricing": "priced",
        }
        status, _, logs = s.report("GET", "/spend/logs", key=MASTER_KEY)
        self.assertEqual(status, 200, logs)
        self.assertEqual([x for x in logs if x["request_id"] == call_id], [expected_log])
        queries = ["api_key=" + raw, "api_key=" + token, "request_id=" + call_id,
                   "user_id=alice", "start_date=%s&end_date=%s" % (day, day)]
        for q in queries:
            for who in (MASTER_KEY, raw):
                status, _, logs = s.report("GET", "/spend/logs?" + q, key=who)
                self.assertEqual(status, 200, (q, logs))
                self.assertEqual(logs, [expected_log], q)
        status, _, logs = s.report("GET", "/spend/logs?request_id=no-such-id", key=MASTER_KEY)
        self.assertEqual((status, logs), (200, []))

        # -- /global/spend/report, today (UTC)
        self.assertIn(day, {before.date().isoformat(), after.date().isoformat()})
        metadata = [{"model": "groq/llama-3.1-8b-instant", "spend": cost, "total_tokens": 1500,
                     "api_key": token}]
        for who in (MASTER_KEY, raw):
            status, _, rep = s.report(
                "GET", "/global/spend/report?start_date=%s&end_date=%s" % (day, day), key=who)
            self.assertEqual(status, 200, rep)
            self.assertEqual(rep, [{"group_by_day": day + "T00:00:00+00:00", "teams": [
                {"team_name": "Prod Team", "total_spend": Decimal("0.00009"),
                 "metadata": metadata}]}])
            status, _, rep = s.report(
                "GET", "/global/spend/report?start_date=%s&end_date=%s&group_by=customer"
                % (day, day), key=who)
            self.assertEqual(status, 200, rep)
            self.assertEqual(rep, [{"group_by_day": day + "T00:00:00+00:00", "customers": [
                {"customer": "palantir", "total_spend": Decimal("0.00009"),
                 "metadata": metadata}]}])
        # A day range without requests is empty.
        status, _, rep = s.report(
            "GET", "/global/spend/report?start_date=2001-01-01&end_date=2001-01-31", key=MASTER_KEY)
        self.assertEqual((status, rep), (200, []))

        # -- the raw key is never logged by any daemon
        for d in s.daemons:
            self.assertNotIn(raw, d.log_path.read_text(errors="replace"), d.name)

    # ------------------------------------------------------- 2. 100 requests

    def test_2_hundred_requests_sum_exactly(self):
        s = self.stack
        self.new_team(team_id="batch-team", team_alias="Batch Team")
        k = self.new_key(key_alias="batch-key", user_id="bob", team_id="batch-team")
        raw, token = k["key"], k["token"]
        cost_by_id, usage_by_id = {}, {}
        for i in range(100):
            p, c = i * 7 + 1, i * 3
            status, headers, answer = s.chat(raw, prompt_tokens=p, completion_tokens=c)
            self.assertEqual(status, 200, (i, answer))
            call_id = headers["x-litellm-call-id"]
            self.assertNotIn(call_id, cost_by_id)
            cost_by_id[call_id] = self.assertCostHeader(headers, expected_cost(p, c))
            usage_by_id[call_id] = (p, c)

        count_sql = "SELECT COUNT(*) FROM spend_logs WHERE api_key = %s" % sql_str(token)
        wait_for(lambda: int(s.sql_value(count_sql)) >= 100, LEDGER_TIMEOUT,
                 message="fewer than 100 rows for the key within %.0f s (%s)\n%s" % (
                     LEDGER_TIMEOUT, s.sql_value(count_sql), s.log_tail("accountd")))
        rows = s.sql("SELECT request_id, spend, prompt_tokens, completion_tokens, total_tokens,"
                     " status, http_status, user, team_id FROM spend_logs WHERE api_key = %s"
                     % sql_str(token))
        self.assertEqual(len(rows), 100)
        self.assertEqual({r[0] for r in rows}, set(cost_by_id))
        for rid, spend, pt, ct, tt, status, http_status, user, team in rows:
            p, c = usage_by_id[rid]
            self.assertEqual(Decimal(spend), cost_by_id[rid], rid)
            self.assertEqual(Decimal(spend), expected_cost(p, c), rid)
            self.assertEqual((int(pt), int(ct), int(tt)), (p, c, p + c), rid)
            self.assertEqual((status, http_status, user, team),
                             ("success", "200", "bob", "batch-team"), rid)

        header_total = sum(cost_by_id.values(), Decimal(0))
        self.assertEqual(header_total, sum((expected_cost(i * 7 + 1, i * 3) for i in range(100)),
                                           Decimal(0)))
        log_sum, key_spend, user_spend, team_spend = s.sql(
            "SELECT (SELECT SUM(spend) FROM spend_logs WHERE api_key = %(t)s),"
            " (SELECT spend FROM api_keys WHERE token = %(t)s),"
            " (SELECT spend FROM internal_users WHERE user_id = 'bob'),"
            " (SELECT spend FROM teams WHERE team_id = 'batch-team')" % {"t": sql_str(token)})[0]
        # The ledger rows are exact; every counter must equal their sum to the last
        # digit (same DECIMAL(38,20) text), i.e. the sum of the header costs.
        self.assertEqual(Decimal(log_sum), header_total)
        with self.subTest("spend counters == SUM(spend_logs.spend)"):
            self.assertEqual({"api_keys.spend": key_spend, "internal_users.spend": user_spend,
                              "teams.spend": team_spend},
                             {"api_keys.spend": log_sum, "internal_users.spend": log_sum,
                              "teams.spend": log_sum},
                             "spend counters differ from SUM(spend_logs.spend) = %s" % log_sum)
            self.assertEqual(Decimal(key_spend), header_total)

        # The day's report adds up to the same exact total for the team.
        day = s.sql_value("SELECT DATE(MIN(start_time)) FROM spend_logs WHERE api_key = %s"
                          % sql_str(token))
        day_end = s.sql_value("SELECT DATE(MAX(start_time)) FROM spend_logs WHERE api_key = %s"
                              % sql_str(token))
        status, _, rep = s.report("GET", "/global/spend/report?start_date=%s&end_date=%s"
                                  % (day, day_end), key=MASTER_KEY)
        self.assertEqual(status, 200, rep)
        batch = [t for d in rep for t in d["teams"] if t["team_name"] == "Batch Team"]
        self.assertEqual(sum((t["total_spend"] for t in batch), Decimal(0)), header_total)
        self.assertEqual(sum(m["total_tokens"] for t in batch for m in t["metadata"]),
                         sum(p + c for p, c in usage_by_id.values()))

    # -------------------------------------------------- 3. proxyd behaviour

    def test_3_proxyd_master_key_and_errors(self):
        s = self.stack
        # Master key: works, logged with api_key ''.
        status, headers, answer = s.chat(MASTER_KEY, prompt_tokens=10, completion_tokens=20)
        self.assertEqual(status, 200, answer)
        cost = self.assertCostHeader(headers, expected_cost(10, 20))
        row = self.wait_spend_log(headers["x-litellm-call-id"])
        self.assertEqual(row["api_key"], "")
        self.assertEqual((row["key_alias"], row["user"], row["team_id"], row["end_user"]),
                         (None, None, None, None))
        self.assertEqual(Decimal(row["spend"]), cost)
        self.assertEqual((row["status"], row["http_status"]), ("success", "200"))

        k = self.new_key(key_alias="errors-key")
        raw, token = k["key"], k["token"]
        chat_body = {"model": "llama3", "messages": [{"role": "user", "content": "hi"}]}

        # Unknown key, no key, a non-Bearer Authorization.
        status, _, body = s.proxy("POST", "/v1/chat/completions", chat_body, "sk-no-such-key")
        self.assertEqual(status, 401, body)
        self.assertErrorShape(body, 401, type_="auth_error")
        status, _, body = s.proxy("POST", "/v1/chat/completions", chat_body)
        self.assertEqual(status, 401, body)
        self.assertErrorShape(body, 401, type_="auth_error")
        status, _, body = s.proxy("POST", "/chat/completions", chat_body,
                                  headers={"Authorization": "Basic " + raw})
        self.assertEqual(status, 401, body)
        self.assertErrorShape(body, 401, type_="auth_error")

        # Unknown model: 400 naming the model groups there are.
        status, _, body = s.chat(raw, model="no-such-model")
        self.assertEqual(status, 400, body)
        err = self.assertErrorShape(body, 400, param="model", type_="invalid_request_error")
        self.assertIn("llama3", err["message"])
        self.assertIn("no-such-model", err["message"])

        # Malformed JSON, a non-object body, a missing model.
        for bad in ('{"model": "llama3", "messages": [', "", "[1, 2]", "not json"):
            status, _, body = s.proxy("POST", "/v1/chat/completions", bad, raw)
            self.assertEqual(status, 400, (bad, body))
            self.assertErrorShape(body, 400, type_="invalid_request_error")
        status, _, body = s.proxy("POST", "/v1/chat/completions",
                                  {"messages": [{"role": "user", "content": "hi"}]}, raw)
        self.assertEqual(status, 400, body)
        self.assertErrorShape(body, 400, param="model", type_="invalid_request_error")

        # Upstream failure: its status and body pass through; logged as a failure, cost 0.
        status, headers, body = s.chat(raw, mock_status=500)
        self.assertEqual(status, 500, body)
        self.assertEqual(body, {"error": {"message": "mock error", "type": "server_error",
                                          "param": None, "code": "500"}})
        self.assertNotIn("x-litellm-response-cost", headers)
        fail_id = headers.get("x-litellm-call-id")
        self.assertRegex(fail_id or "", UUID_RE)
        row = self.wait_spend_log(fail_id)
        self.assertEqual((row["status"], row["http_status"]), ("failure", "500"))
        self.assertEqual(Decimal(row["spend"]), 0)
        self.assertEqual((row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]),
                         ("0", "0", "0"))
        self.assertEqual(row["api_key"], token)
        self.assertEqual(self.spends(token=token), [Decimal(0)])
        # Refused requests leave no ledger rows: the failure is the key's only one.
        self.assertEqual(s.sql("SELECT request_id FROM spend_logs WHERE api_key = %s"
                               % sql_str(token)), [[fail_id]])

        # Unknown route, wrong method.
        status, _, body = s.proxy("GET", "/no/such/route", key=raw)
        self.assertEqual(status, 404, body)
        self.assertErrorShape(body, 404, type_="not_found_error")
        status, _, body = s.proxy("POST", "/v1/audio/speech", chat_body, raw)
        self.assertEqual(status, 404, body)
        self.assertErrorShape(body, 404)
        status, _, body = s.proxy("GET", "/v1/chat/completions", key=raw)
        self.assertEqual(status, 405, body)
        self.assertErrorShape(body, 405)

        # After all that, proxyd still answers.
        status, _, body = s.proxy("GET", "/health/liveliness")
        self.assertEqual((status, body), (200, "I'm alive!"))
        status, headers, body = s.chat(raw, prompt_tokens=3, completion_tokens=4)
        self.assertEqual(status, 200, body)
        cost = self.assertCostHeader(headers, expected_cost(3, 4))
        self.wait_spend_log(headers["x-litellm-call-id"])
        self.assertEqual(self.spends(token=token), [cost])

    # ------------------------------------------------- 4. reportd refusals

    def test_4_reportd_refusals(self):
        s = self.stack
        noperm = self.new_key(key_alias="no-perm-key")["key"]
        reader = self.new_key(key_alias="reader-key",
                              permissions={"get_spend_routes": True})["key"]

        def refused(method, path, body, key, status, param=..., type_=None):
            got, _, answer = s.report(method, path, body, key)
            self.assertEqual(got, status, (method, path, answer))
            return self.assertErrorShape(answer, status, param=param, type_=type_,
                                         msg=(method, path, answer))

        # Who may call what.
        for method, path, body in (("GET", "/spend/logs", None),
                                   ("GET", "/global/spend/report?start_date=2024-01-01"
                                           "&end_date=2024-01-02", None),
                                   ("POST", "/team/new", {"team_alias": "x"}),
                                   ("POST", "/key/generate", {})):
            refused(method, path, body, None, 401, type_="auth_error")
            refused(method, path, body, "sk-unknown-key", 401, type_="auth_error")
        refused("GET", "/spend/logs", None, noperm, 403, type_="permission_error")
        refused("GET", "/global/spend/report?start_date=2024-01-01&end_date=2024-01-02", None,
                noperm, 403, type_="permission_error")
        for path, body in (("/team/new", {"team_alias": "sneaky"}),
                           ("/user/new", {"user_id": "sneaky"}),
                           ("/key/generate", {"key_alias": "sneaky"})):
            refused("POST", path, body, reader, 403, type_="permission_error")
            refused("POST", path, body, noperm, 403, type_="permission_error")
        self.assertEqual(s.sql("SELECT team_id FROM teams WHERE team_alias = 'sneaky'"), [])
        self.assertEqual(s.sql("SELECT user_id FROM internal_users WHERE user_id = 'sneaky'"), [])
        self.assertEqual(s.sql("SELECT token FROM api_keys WHERE key_alias = 'sneaky'"), [])
        # The reader key may read.
        status, _, body = s.report("GET", "/spend/logs?page_size=1", key=reader)
        self.assertEqual(status, 200, body)

        # Bad dates and parameters, each naming its parameter.
        for path, param in (
                ("/spend/logs?start_date=2024-13-01&end_date=2024-12-31", "start_date"),
                ("/spend/logs?start_date=2024-02-01&end_date=2024-01-01", "start_date"),
                ("/spend/logs?start_date=2024-01-01", "end_date"),
                ("/spend/logs?page=0", "page"),
                ("/spend/logs?page_size=100000", "page_size"),
                ("/global/spend/report?start_date=2024-13-01&end_date=2024-12-31", "start_date"),
                ("/global/spend/report?start_date=2024-01-01&end_date=2024-13-01", "end_date"),
                ("/global/spend/report?start_date=2024-02-30&end_date=2024-03-01", "start_date"),
                ("/global/spend/report?start_date=2024-02-01&end_date=2024-01-01", "start_date"),
                ("/global/spend/report?end_date=2024-01-01", "start_date"),
                ("/global/spend/report", "start_date"),
                ("/global/spend/report?start_date=2024-01-01&end_date=2024-01-02"
                 "&group_by=bogus", "group_by")):
            refused("GET", path, None, MASTER_KEY, 400, param=param,
                    type_="invalid_request_error")

        # Management input errors.
        self.new_team(team_id="dup-team", team_alias="Dup")
        err = refused("POST", "/team/new", {"team_id": "dup-team", "team_alias": "Dup 2"},
                      MASTER_KEY, 400, param="team_id", type_="invalid_request_error")
        self.assertIn("dup-team", err["message"])
        self.assertEqual(s.sql("SELECT team_alias FROM teams WHERE team_id = 'dup-team'"),
                         [["Dup"]])
        refused("POST", "/key/generate", {"key_alias": "orphan", "team_id": "no-such-team"},
                MASTER_KEY, 400, param="team_id", type_="invalid_request_error")
        self.assertEqual(s.sql("SELECT token FROM api_keys WHERE key_alias = 'orphan'"), [])
        for path, body in (("/team/new", {"team_id": "neg-team", "max_budget": -1}),
                           ("/user/new", {"user_id": "neg-user", "max_budget": -0.5}),
                           ("/key/generate", {"key_alias": "neg-key", "max_budget": -10})):
            refused("POST", path, body, MASTER_KEY, 400, param="max_budget",
                    type_="invalid_request_error")
        self.assertEqual(s.sql("SELECT team_id FROM teams WHERE team_id = 'neg-team'"), [])
        self.assertEqual(s.sql("SELECT user_id FROM internal_users WHERE user_id = 'neg-user'"),
                         [])
        self.assertEqual(s.sql("SELECT token FROM api_keys WHERE key_alias = 'neg-key'"), [])
        refused("POST", "/user/new", {"user_id": "dup-user"}, None, 401)
        self.assertEqual(s.report("POST", "/user/new", {"user_id": "dup-user"}, MASTER_KEY)[0],
                         200)
        refused("POST", "/user/new", {"user_id": "dup-user"}, MASTER_KEY, 400, param="user_id",
                type_="invalid_request_error")
        self.new_key(key_alias="dup-alias")
        refused("POST", "/key/generate", {"key_alias": "dup-alias"}, MASTER_KEY, 400,
                param="key_alias", type_="invalid_request_error")
        self.assertEqual(s.sql_value("SELECT COUNT(*) FROM api_keys WHERE key_alias = 'dup-alias'"),
                         "1")
        refused("POST", "/team/new", "{not json", MASTER_KEY, 400, type_="invalid_request_error")
        refused("POST", "/user/new", {"user_id": "r", "user_role": "emperor"}, MASTER_KEY, 400,
                param="user_role")

        # Unknown route, wrong method.
        refused("GET", "/no/such/route", None, MASTER_KEY, 404, type_="not_found_error")
        refused("GET", "/team/new", None, MASTER_KEY, 405)

    # ------------------------------------------------------- 5. migrations

    def test_5_migrations(self):
        s = self.stack
        rc, err = s.run_daemon_once("accountd", args=["--migrate"])
        self.assertEqual(rc, 0, err)
        self.assertIn("0 migrations applied", err)

        # A database that was never migrated: every daemon refuses to start.
        s.sql("CREATE DATABASE IF NOT EXISTS tg_fresh;"
              " GRANT ALL PRIVILEGES ON tg_fresh.* TO 'tollgate'@'127.0.0.1';"
              " GRANT ALL PRIVILEGES ON tg_fresh.* TO 'tollgate'@'localhost';", db=None)
        fresh = s.write_config("fresh.yaml", s.make_config(database="tg_fresh", new_ports=True))
        tables = ("SELECT COUNT(*) FROM information_schema.tables"
                  " WHERE table_schema = 'tg_fresh'")
        for name in ("proxyd", "reportd", "accountd"):
            rc, err = s.run_daemon_once(name, fresh, timeout=20)
            self.assertEqual(rc, 1, "%s started on an unmigrated database:\n%s" % (name, err))
            self.assertIn("--migrate", err, name)
            self.assertRegex(err, r"daemon=%s level=error msg=\"[^\"]*--migrate" % name)
        self.assertEqual(s.sql_value(tables), "0", "a refusing daemon created tables")

        # Migrating it works once, then there is nothing left to apply.
        rc, err = s.run_daemon_once("accountd", fresh, ["--migrate"])
        self.assertEqual(rc, 0, err)
        migrations = sorted(harness.REPO.glob("schema/[0-9][0-9][0-9]_*.sql"))
        self.assertIn("schema at version %d (%d migration%s applied)"
                      % (int(migrations[-1].name[:3]), len(migrations),
                         "" if len(migrations) == 1 else "s"), err)
        self.assertEqual(
            sorted(r[0] for r in s.sql("SELECT table_name FROM information_schema.tables"
                                       " WHERE table_schema = 'tg_fresh'")),
            ["api_keys", "budget_manager_model_cost", "budget_manager_users", "budgets",
             "config_budgets", "customers", "daily_spend", "daily_tag_spend", "daily_tag_totals",
             "entity_model_spend", "internal_users", "rejected_events",
             "schema_migrations", "spend_logs", "tags", "team_members", "teams",
             "usage_rollup"])
        rc, err = s.run_daemon_once("accountd", fresh, ["--migrate"])
        self.assertEqual(rc, 0, err)
        self.assertIn("0 migrations applied", err)
        self.check_tag_totals_migration()
        self.check_usage_rollup_migration()

    def check_tag_totals_migration(self):
        """008 fills daily_tag_totals from the daily_tag_spend already there:
        per (day, tag), every sum exact, tags compared byte for byte."""
        s = self.stack
        s.sql("DROP TABLE daily_tag_totals;"
              " INSERT INTO daily_tag_spend (day, group_key, tag, api_key, model_group, model,"
              " custom_llm_provider, spend, prompt_tokens, completion_tokens, total_tokens,"
              " cache_read_input_tokens, cache_creation_input_tokens, api_requests,"
              " successful_requests, failed_requests) VALUES"
              " ('2025-01-01', UNHEX(MD5('1')), 'a', 'k1', 'g', 'm1', 'p', 0.1, 1, 2, 3, 0, 0,"
              "  1, 1, 0),"
              " ('2025-01-01', UNHEX(MD5('2')), 'a', 'k2', 'g', 'm2', 'p',"
              "  0.20000000000000000001, 10, 20, 30, 5, 5, 2, 1, 1),"
              " ('2025-01-01', UNHEX(MD5('3')), 'A', 'k1', 'g', 'm1', 'p', 7, 4, 5, 9, 0, 0,"
              "  3, 3, 0),"
              " ('2025-01-02', UNHEX(MD5('4')), 'a', 'k1', 'g', 'm1', 'p', 0.5, 1, 1, 2, 0, 0,"
              "  1, 0, 1);", db="tg_fresh")
        s.sql((harness.REPO / "schema/008_daily_tag_totals.sql").read_text(), db="tg_fresh")
        self.assertEqual(
            s.sql("SELECT day, tag, spend, prompt_tokens, completion_tokens, total_tokens,"
                  " api_requests, successful_requests, failed_requests FROM daily_tag_totals"
                  " ORDER BY day, tag", db="tg_fresh"),
            [["2025-01-01", "A", "7.00000000000000000000", "4", "5", "9", "3", "3", "0"],
             ["2025-01-01", "a", "0.30000000000000000001", "11", "22", "33", "3", "2", "1"],
             ["2025-01-02", "a", "0.50000000000000000000", "1", "1", "2", "1", "0", "1"]])

    def check_usage_rollup_migration(self):
        """010 fills usage_rollup from daily_spend and daily_tag_totals (left by the check
        above): per day and per month, each dimension alone, none as '', ids byte-wise."""
        s = self.stack
        s.sql("DROP TABLE usage_rollup;"
              " INSERT INTO daily_spend (day, group_key, api_key, user, team_id, end_user,"
              " model_group, model, custom_llm_provider, spend, prompt_tokens,"
              " completion_tokens, total_tokens, api_requests) VALUES"
              " ('2025-01-01', UNHEX(MD5('1')), 'k1', 'u', 't1', NULL, 'g', 'm1', 'p', 0.1, 1, 2,"
              "  3, 1),"
              " ('2025-01-31', UNHEX(MD5('2')), '', NULL, NULL, 'c', 'g', 'm1', 'p',"
              "  0.20000000000000000001, 10, 20, 30, 2),"
              " ('2025-02-01', UNHEX(MD5('3')), 'k1', 'u', 'T1', 'c', 'g', 'm2', 'p', 7, 4, 5, 9,"
              "  3);", db="tg_fresh")
        s.sql((harness.REPO / "schema/010_usage_rollup.sql").read_text(), db="tg_fresh")
        got = s.sql("SELECT grain, dim, period, group_id, spend, prompt_tokens,"
                    " completion_tokens, total_tokens, api_requests FROM usage_rollup"
                    " WHERE period < '2025-03-01' ORDER BY grain, dim, period, group_id",
                    db="tg_fresh")
        z = "00000000000000000"

        def row(grain, dim, period, gid, spend, p, c, t, n):
            return [grain, dim, period, gid, spend, str(p), str(c), str(t), str(n)]
        d1, d31, f1 = "2025-01-01", "2025-01-31", "2025-02-01"
        want = [
            row("d", "c", d1, "", "0.100" + z, 1, 2, 3, 1),
            row("d", "c", d31, "c", "0.20000000000000000001", 10, 20, 30, 2),
            row("d", "c", f1, "c", "7.000" + z, 4, 5, 9, 3),
            row("d", "g", d1, "A", "7.000" + z, 4, 5, 9, 3),
            row("d", "g", d1, "a", "0.30000000000000000001", 11, 22, 33, 3),
            row("d", "g", "2025-01-02", "a", "0.500" + z, 1, 1, 2, 1),
            row("d", "k", d1, "k1", "0.100" + z, 1, 2, 3, 1),
            row("d", "k", d31, "", "0.20000000000000000001", 10, 20, 30, 2),
            row("d", "k", f1, "k1", "7.000" + z, 4, 5, 9, 3),
            row("d", "m", d1, "m1", "0.100" + z, 1, 2, 3, 1),
            row("d", "m", d31, "m1", "0.20000000000000000001", 10, 20, 30, 2),
            row("d", "m", f1, "m2", "7.000" + z, 4, 5, 9, 3),
            row("d", "t", d1, "t1", "0.100" + z, 1, 2, 3, 1),
            row("d", "t", d31, "", "0.20000000000000000001", 10, 20, 30, 2),
            row("d", "t", f1, "T1", "7.000" + z, 4, 5, 9, 3),
            row("m", "c", d1, "", "0.100" + z, 1, 2, 3, 1),
            row("m", "c", d1, "c", "0.20000000000000000001", 10, 20, 30, 2),
            row("m", "c", f1, "c", "7.000" + z, 4, 5, 9, 3),
            row("m", "g", d1, "A", "7.000" + z, 4, 5, 9, 3),
            row("m", "g", d1, "a", "0.80000000000000000001", 12, 23, 35, 4),
            row("m", "k", d1, "", "0.20000000000000000001", 10, 20, 30, 2),
            row("m", "k", d1, "k1", "0.100" + z, 1, 2, 3, 1),
            row("m", "k", f1, "k1", "7.000" + z, 4, 5, 9, 3),
            row("m", "m", d1, "m1", "0.30000000000000000001", 11, 22, 33, 3),
            row("m", "m", f1, "m2", "7.000" + z, 4, 5, 9, 3),
            row("m", "t", d1, "", "0.20000000000000000001", 10, 20, 30, 2),
            row("m", "t", d1, "t1", "0.100" + z, 1, 2, 3, 1),
            row("m", "t", f1, "T1", "7.000" + z, 4, 5, 9, 3),
        ]
        self.assertEqual(got, want)

    # ------------------------------------------------------ 6. bad configs

    BASE_CONFIG = [
        "model_list:",                                                        # 1
        "  - model_name: llama3",                                             # 2
        "    litellm_params:",                                                # 3
        "      model: groq/llama-3.1-8b-instant",                             # 4
        "      api_base: {upstream}",                                         # 5
        "      api_key: os.environ/GROQ_API_KEY",                             # 6
        "  - model_name: llama3-b",                                           # 7
        "    litellm_params:",                                                # 8
        "      model: groq/llama-3.1-8b-instant",                             # 9
        "      api_base: {upstream}",                                         # 10
        "general_settings:",                                                  # 11
        "  master_key: sk-1234",                                              # 12
        "  database_url: mysql://tollgate:secret@127.0.0.1:{db}/tollgate",    # 13
        "tollgate:",                                                          # 14
        "  proxyd:   {{ listen: \"127.0.0.1:{pp}\", spool_dir: \"{spool}\" }}",  # 15
        "  reportd:  {{ listen: \"127.0.0.1:{rp}\" }}",                       # 16
        "  accountd: {{ events: \"tcp://127.0.0.1:{ep}\", updates: \"tcp://127.0.0.1:{up}\" }}",
        "  curve: off",                                                       # 18
    ]

    def config_text(self, line=None, new=None):
        """BASE_CONFIG (fresh ports), with line number `line` replaced by `new`."""
        s = self.stack
        lines = list(self.BASE_CONFIG)
        if line is not None:
            lines[line - 1] = new
        return "\n".join(lines).format(
            upstream=s.upstream_base, db=s.db_port, spool=s.dir / "spool-bad",
            pp=harness.free_port(), rp=harness.free_port(), ep=harness.free_port(),
            up=harness.free_port()) + "\n"

    def assertConfigError(self, name, path, rc, err, line, key, problem):
        self.assertEqual(rc, 1, "%s accepted %s:\n%s" % (name, path, err))
        prefix = "%s:%d: %s: " % (path, line, key) if key else "%s:%d: " % (path, line)
        self.assertIn(prefix + problem, err)
        self.assertRegex(err, r'daemon=%s level=error msg="%s' % (re.escape(name),
                                                                  re.escape(prefix)))
        self.assertEqual(err.count("level=error"), 1, err)

    def test_6_bad_configs(self):
        s = self.stack
        # The base config is valid (so each failure below is the broken line's).
        good = s.dir / "good.yaml"
        good.write_text(self.config_text())
        rc, err = s.run_daemon_once("accountd", good, ["--migrate"])
        self.assertEqual(rc, 0, err)

        # Missing file.
        missing = s.dir / "no-such-config.yaml"
        for name in ("proxyd", "accountd"):
            rc, err = s.run_daemon_once(name, missing)
            self.assertEqual(rc, 1, err)
            self.assertIn(str(missing), err)
            self.assertIn("cannot open", err)

        cases = [
            # (file, line broken, new text, key path, problem)
            ("syntax.yaml", 5, "      api_base: http://a: b", None, "YAML syntax error"),
            ("no-model-name.yaml", 7, "  - model_info: {{}}",
             "model_list[1].model_name", "missing"),
            ("provider.yaml", 4, "      model: foo/bar",
             "model_list[0].litellm_params.model", "unknown provider prefix 'foo/'"),
            ("api-base.yaml", 10, "      api_base: not a url",
             "model_list[1].litellm_params.api_base",
             "'not a url' is not an http:// or https:// URL"),
            ("env.yaml", 6, "      api_key: os.environ/TG_DEFINITELY_UNSET",
             "model_list[0].litellm_params.api_key",
             "environment variable TG_DEFINITELY_UNSET is not set"),
        ]
        env = s.env(unset=["TG_DEFINITELY_UNSET"])
        for fname, line, new, key, problem in cases:
            path = s.dir / fname
            path.write_text(self.config_text(line, new))
            daemons = ("proxyd", "accountd") if fname in ("env.yaml", "provider.yaml") \
                else ("proxyd",)
            for name in daemons:
                with self.subTest(config=fname, daemon=name):
                    rc, err = s.run_daemon_once(name, path, env=env, timeout=20)
                    self.assertConfigError(name, path, rc, err, line, key, problem)


if __name__ == "__main__":
    unittest.main(verbosity=2)
