"""test_log_privacy.py - message content and raw keys never reach a log, at any level.

The README promises: "Raw keys, query strings and message content are never
logged." Here every daemon runs at the most verbose level (tollgate.log_level:
debug; each daemon's stdout and stderr go to its log file), and the stack is
driven through chats, streams (with and without upstream usage, one the
client leaves), completions, embeddings, upstream errors, bad JSON, a body
over the size limit, a refused budget and an unknown key. Every message,
prompt and input carries a marker unique to this run, and so do the upstream's
answers, the master key, a custom key, the upstream's API key and an unknown
key; generated keys are used raw in headers and query strings. After the
daemons have stopped (so their shutdown lines are in), no log of proxyd,
accountd (and its --migrate run) or reportd may contain any of them.

The fake upstream's own files are not scanned: it is the test's stand-in
for a provider and logs what it received on purpose (which also proves the
marked content went through proxyd).

Run from the repo root:  python3 -m unittest -v tests/e2e/test_log_privacy.py
"""

import http.client
import json
import os
import secrets
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import wait_for  # noqa: E402

# One marker per run: found anywhere in a log, it is a leak. Its parts say
# where each value came from.
MARK = "tgleak" + secrets.token_hex(8)
MASTER = "sk-master-" + MARK + "-key"
UPSTREAM_KEY = "upstream-" + MARK + "-key"
SCANNED = ("proxyd.log", "accountd.log", "reportd.log", "migrate.log")


def marked(where):
    return "%s-%s" % (MARK, where)


class LogPrivacyTest(harness.StackTestCase):
    stack_options = {"tollgate": {"log_level": "debug"}, "master_key": MASTER,
                     "upstream_key": UPSTREAM_KEY}

    def post(self, path, body, key, **kw):
        return self.stack.proxy("POST", path, body, key, **kw)

    def chat_body(self, where, **fields):
        body = {"model": "llama3", "messages": [
            {"role": "system", "content": marked(where + "-system") + " be brief"},
            {"role": "user", "content": "say " + marked(where + "-user") + " twice"}]}
        body.update(fields)
        return body

    def stream(self, body, key, read_events=None):
        """Streams body; returns the SSE text read (all of it, or read_events events)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.stack.proxyd_port, timeout=30)
        conn.request("POST", "/v1/chat/completions", json.dumps(body),
                     {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        text = b""
        while read_events is None or text.count(b"\n\n") < read_events:
            chunk = resp.read1(65536)
            if not chunk:
                break
            text += chunk
        conn.close()
        return text.decode()

    def raw_post(self, body_bytes, key):
        conn = http.client.HTTPConnection("127.0.0.1", self.stack.proxyd_port, timeout=60)
        conn.request("POST", "/v1/chat/completions", body_bytes,
                     {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        conn.close()
        return resp.status

    def drive(self):
        """Sends every kind of request; returns the raw keys used."""
        s = self.stack
        st, _, k = s.report("POST", "/key/generate", {"key_alias": "privacy"}, key=MASTER)
        self.assertEqual(st, 200, k)
        key = k["key"]
        # a custom key, created through proxyd's forwarding (the raw key in a body)
        custom = "sk-custom-" + MARK + "-key"
        st, _, c = self.post("/key/generate", {"key": custom}, MASTER)
        self.assertEqual((st, c.get("key")), (200, custom), c)
        st, _, poor = s.report("POST", "/key/generate", {"max_budget": 0}, key=MASTER)
        self.assertEqual(st, 200, poor)

        answer = marked("answer") + " from the upstream"
        st, _, b = self.post("/v1/chat/completions",
                             self.chat_body("chat", mock_content=answer), key)
        self.assertEqual(st, 200, b)
        self.assertEqual(b["choices"][0]["message"]["content"], answer)
        st, _, b = self.post("/v1/chat/completions", self.chat_body("custom"), custom)
        self.assertEqual(st, 200, b)
        # Azure-style client: the key in api-key, the model group in the path
        st, _, b = s.proxy("POST", "/openai/deployments/llama3/chat/completions"
                           "?api-version=2024-06-01", self.chat_body("azure"),
                           headers={"api-key": key})
        self.assertEqual(st, 200, b)

        text = self.stream(self.chat_body("stream", stream=True,
                                          stream_options={"include_usage": True},
                                          mock_content=marked("stream-answer") + " done"), key)
        self.assertIn(marked("stream-answer"), text)
        # no usage from the upstream: proxyd counts the tokens of prompt and answer
        text = self.stream(self.chat_body("counted", stream=True, mock_stream_usage="never",
                                          mock_content=marked("counted-answer") + " done"), key)
        self.assertIn(marked("counted-answer"), text)
        # the client leaves mid-stream (accounted for what was produced)
        text = self.stream(self.chat_body("left", stream=True, mock_stall_after_chunks=1,
                                          mock_content=marked("left-answer") + " more words"),
                           key, read_events=1)
        self.assertIn(marked("left-answer"), text)

        st, _, b = self.post("/v1/completions", {"model": "llama3",
                                                 "prompt": marked("prompt") + " go on"}, key)
        self.assertEqual(st, 200, b)
        st, _, b = self.post("/v1/embeddings", {"model": "llama3",
                                                "input": [marked("input") + " embed"]}, key)
        self.assertEqual(st, 200, b)

        # errors: upstream 500 and 429, bad JSON, too large, unknown model, budget, bad key
        for status in (500, 429):
            st, _, b = self.post("/v1/chat/completions",
                                 self.chat_body("upstream-%d" % status, mock_status=status), key)
            self.assertEqual(st, status, b)
        self.assertEqual(self.raw_post(('{"model": "llama3", "messages": [{"role": "user", '
                                        '"content": "%s"' % marked("bad-json")).encode(), key), 400)
        big = ('{"model": "llama3", "messages": [{"role": "user", "content": "%s %s"}]}'
               % (marked("too-large"), "x" * (11 * 1024 * 1024))).encode()
        self.assertEqual(self.raw_post(big, key), 413)
        st, _, b = self.post("/v1/chat/completions",
                             self.chat_body("no-model", model="no-such-group"), key)
        self.assertEqual(st, 400, b)
        st, _, b = self.post("/v1/chat/completions", self.chat_body("budget"), poor["key"])
        self.assertEqual(st, 400, b)
        unknown = "sk-unknown-" + MARK + "-key"
        st, _, b = self.post("/v1/chat/completions", self.chat_body("unknown-key"), unknown)
        self.assertEqual(st, 401, b)

        # raw keys in query strings, through proxyd and on reportd
        for port in (s.proxyd_port, s.reportd_port):
            st, _, b = s.http("GET", port, "/key/info?key=" + key, key=MASTER)
            self.assertEqual(st, 200, b)
            st, _, b = s.http("GET", port, "/spend/logs?api_key=" + custom, key=MASTER)
            self.assertEqual(st, 200, b)
            st, _, b = s.http("GET", port, "/key/info?key=" + unknown, key=MASTER)
            self.assertEqual(st, 404, b)
        return [key, custom, poor["key"], unknown]

    def test_no_content_or_key_in_any_log(self):
        s = self.stack
        keys = self.drive()
        # the content reached the upstream (so it went through proxyd's hands)
        sent = json.dumps([r.get("body") for r in s.upstream_requests()])
        for where in ("chat-user", "stream-system", "prompt", "input"):
            self.assertIn(marked(where), sent)
        # every accepted request is in the ledger before the daemons stop
        wait_for(lambda: int(s.sql_value("SELECT COUNT(*) FROM spend_logs "
                                         "WHERE http_status = 200")) >= 7, 15,
                 message="the ledger did not get the requests")
        for name in ("proxyd", "reportd", "accountd"):
            s.stop_one(name)  # exit 0 after SIGTERM; their shutdown lines are in the logs

        secrets_ = [MARK, MASTER, UPSTREAM_KEY] + keys
        found = []
        scanned = []
        for path in sorted(s.log_dir.iterdir()):
            if path.name.startswith("fake-upstream"):
                continue
            scanned.append(path.name)
            text = path.read_text(errors="replace")
            for value in secrets_:
                at = text.find(value)
                if at >= 0:
                    line = text[text.rfind("\n", 0, at) + 1:text.find("\n", at)]
                    found.append("%s holds %r: %s" % (path.name, value, line[:300]))
        self.assertTrue(set(SCANNED) <= set(scanned), scanned)
        # the logs are where the daemons wrote: proxyd's access line of each request
        self.assertGreaterEqual(s.daemon_log("proxyd").read_text().count('msg="request"'), 15)
        self.assertEqual(len(found), 0, "marker %s: content or raw keys in the logs:\n%s"
                         % (MARK, "\n".join(found)))


if __name__ == "__main__":
    unittest.main()
