"""proxyd operations: GET /metrics (Prometheus text, counters equal to the
requests sent; each metric keeps at most 2,000 series, the rest counted under
"other"), access log lines, SIGHUP reloads (a new model group serves, a broken
config is refused) and SIGTERM drains (20 streams in flight all finish and are
in the ledger; past the grace time they are cut and still accounted; a second
SIGTERM cuts at once; with accountd down the events stay in the spool and reach
the ledger exactly once after the restart)."""

import http.client
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest
import zlib
from decimal import Decimal
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import MASTER_KEY, REPO, StackTestCase, dump_yaml, expected_cost, wait_for

CHAT = "/v1/chat/completions"
METRICS_MAX_SERIES = 2000  # README: "each metric keeps at most 2,000 series"
DRAIN_ACK_WAIT_S = 10      # README: after the grace proxyd "waits (<= 10 s) for accountd's acks"


def metrics_of(text):
    """{(sample name, frozenset(labels)): value} of a Prometheus text page."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def sample(m, name, **labels):
    return m.get((name, frozenset(labels.items())), 0.0)


def series_of(m, name):
    """{frozenset(labels): value} of one sample name."""
    return {labels: v for (n, labels), v in m.items() if n == name}


def spool_unacked(spool_dir):
    """The request ids of the events in a proxyd spool that no ack follows, read
    as proxyd/spool.c writes them: segment files NNNNNNNNNNNN.spool in order,
    records [magic FF 54 47 FE][u32 payload length][u32 CRC-32 of the length field
    and the payload][payload] (big-endian), payload [u8 'E' event or 'A'
    ack][u16 id length][request id][event bytes]."""
    unacked = set()
    for path in sorted(Path(spool_dir).glob("*.spool")):
        data, at = path.read_bytes(), 0
        while at + 12 <= len(data) and data[at:at + 4] == b"\xffTG\xfe":
            n, crc = struct.unpack_from(">II", data, at + 4)
            payload = data[at + 12:at + 12 + n]
            if len(payload) < n or n < 3 or \
                    zlib.crc32(payload, zlib.crc32(data[at + 4:at + 8])) != crc:
                break  # a torn last record (test_spool_damage.py covers damage)
            idlen = struct.unpack_from(">H", payload, 1)[0]
            rid = payload[3:3 + idlen].decode()
            if payload[:1] == b"E":
                unacked.add(rid)
            elif payload[:1] == b"A":
                unacked.discard(rid)
            at += 12 + n
    return unacked


class ProxydOps(StackTestCase):
    stack_options = {"tollgate": {"proxyd": {"shutdown_grace_ms": 20000}}}

    # ---------------------------------------------------------------- helpers

    def scrape(self):
        st, h, text = self.stack.proxy("GET", "/metrics")
        self.assertEqual(st, 200, text)
        self.assertTrue(h["content-type"].startswith("text/plain; version=0.0.4"), h)
        return metrics_of(text)

    def proxyd_log(self):
        return self.stack.daemon_log("proxyd").read_text(errors="replace")

    def reload(self, config):
        """Writes config to the stack's config file and SIGHUPs proxyd; returns
        the log's length before, to look for the reload's line after it."""
        before = len(self.proxyd_log())
        self.stack.config_path.write_text(config if isinstance(config, str) else dump_yaml(config))
        os.kill(self.stack.daemon("proxyd").proc.pid, signal.SIGHUP)
        return before

    def wait_log_after(self, offset, needle, timeout=10):
        return wait_for(lambda: needle in self.proxyd_log()[offset:], timeout,
                        message="proxyd did not log %r:\n%s" % (needle, self.proxyd_log()[offset:]))

    def stream_body(self, **kw):
        b = {"model": "llama3", "stream": True, "messages": [{"role": "user", "content": "x"}],
             "mock_usage": {"prompt_tokens": 30, "completion_tokens": 40}}
        b.update(kw)
        return b

    def open_stream(self, body, port=None, key=MASTER_KEY):
        """Starts a streamed chat; returns (connection, response) once the
        headers are in."""
        conn = http.client.HTTPConnection("127.0.0.1", port or self.stack.proxyd_port, timeout=60)
        conn.request("POST", CHAT, json.dumps(body),
                     {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
        resp = conn.getresponse()
        return conn, resp

    @staticmethod
    def read_all(resp):
        """The stream's events until the end (or the connection's)."""
        buf = b""
        while True:
            try:
                chunk = resp.read1(65536)
            except (http.client.IncompleteRead, ConnectionError) as e:
                buf += getattr(e, "partial", b"") or b""
                break
            if not chunk:
                break
            buf += chunk
        return [e.decode() for e in buf.split(b"\n\n") if e.strip()]

    def ledger_rows(self, ids):
        quoted = ",".join("'%s'" % i for i in ids)
        return self.stack.sql("SELECT request_id, http_status, completion_tokens FROM spend_logs "
                              "WHERE request_id IN (%s)" % quoted)

    def restart_proxyd(self, config=None):
        if config is not None:
            self.stack.config_path.write_text(dump_yaml(config))
        if any(d.name == "proxyd" for d in self.stack.daemons):
            self.stack.stop_one("proxyd")
        self.stack.restart("proxyd")
        self.stack._wait_port("proxyd")

    # ---------------------------------------------------------------- metrics

    def test_metrics_count_the_requests_sent(self):
        before = self.scrape()
        st, _, k = self.stack.report("POST", "/key/generate", {"max_budget": 0}, key=MASTER_KEY)
        self.assertEqual(st, 200, k)
        sent = {"200": 0}
        for _ in range(5):
            st, h, b = self.stack.chat(MASTER_KEY, prompt_tokens=3, completion_tokens=4)
            self.assertEqual(st, 200, b)
            sent["200"] += 1
        streams = 3
        for _ in range(streams):
            conn, resp = self.open_stream(self.stream_body())
            self.assertEqual(resp.status, 200)
            self.assertEqual(self.read_all(resp)[-1], "data: [DONE]")
            conn.close()
            sent["200"] += 1
        st, _, b = self.stack.chat("sk-not-a-key")
        self.assertEqual(st, 401, b)
        st, _, b = self.stack.chat(MASTER_KEY, model="no-such-group")
        self.assertEqual(st, 400, b)
        st, _, b = self.stack.chat(k["key"])  # max_budget 0: refused
        self.assertEqual(st, 400, b)
        st, _, b = self.stack.proxy("GET", "/v1/models", key=MASTER_KEY)
        self.assertEqual(st, 200, b)
        st, _, b = self.stack.proxy("GET", "/nowhere")
        self.assertEqual(st, 404, b)
        st, _, b = self.stack.proxy("GET", "/spend/logs?page_size=1", key=MASTER_KEY)
        self.assertEqual(st, 200, b)

        after = self.scrape()

        def delta(name, **labels):
            return sample(after, name, **labels) - sample(before, name, **labels)

        req = "tollgate_proxyd_requests_total"
        self.assertEqual(delta(req, route=CHAT, model="llama3", status="200"), sent["200"])
        self.assertEqual(delta(req, route=CHAT, model="llama3", status="401"), 1)
        self.assertEqual(delta(req, route=CHAT, model="unknown", status="400"), 1)
        self.assertEqual(delta(req, route=CHAT, model="llama3", status="400"), 1)
        self.assertEqual(delta(req, route="/v1/models", model="", status="200"), 1)
        self.assertEqual(delta(req, route="other", model="", status="404"), 1)
        self.assertEqual(delta(req, route="/spend/*", model="", status="200"), 1)
        self.assertEqual(delta("tollgate_proxyd_budget_refusals_total", kind="key"), 1)
        # histograms: one observation per request, streams' first bytes once each
        self.assertEqual(delta("tollgate_proxyd_request_duration_seconds_count", route=CHAT),
                         sent["200"] + 3)
        self.assertEqual(delta("tollgate_proxyd_overhead_seconds_count", route=CHAT), sent["200"])
        self.assertEqual(delta("tollgate_proxyd_stream_ttfb_seconds_count", model="llama3"),
                         streams)
        inf = delta("tollgate_proxyd_request_duration_seconds_bucket", route=CHAT, le="+Inf")
        self.assertEqual(inf, sent["200"] + 3)
        self.assertEqual(sample(after, "tollgate_proxyd_requests_in_flight"), 0)
        self.assertEqual(sample(after, "tollgate_proxyd_accountd_connected"), 1)
        self.assertEqual(sample(after, "tollgate_proxyd_draining"), 0)

        # one access line per request, with its id; never a raw key
        log = self.proxyd_log()
        self.assertNotIn(MASTER_KEY, log)
        self.assertNotIn(k["key"], log)
        self.assertNotIn("sk-not-a-key", log)
        lines = [l for l in log.splitlines() if 'msg="request"' in l and "route=" + CHAT in l
                 and "status=200" in l]
        self.assertGreaterEqual(len(lines), sent["200"])
        for line in lines:
            self.assertRegex(line, r"request_id=[0-9a-f-]{36} ")
            self.assertRegex(line, r" ms=\d+\.\d{3} ")

    def test_json_logs(self):
        config = json.loads(json.dumps(self.stack.config))
        config["tollgate"]["log_format"] = "json"
        self.stack.stop_one("proxyd")
        at = len(self.proxyd_log())  # from its first line on
        self.restart_proxyd(config)
        try:
            st, h, b = self.stack.chat(MASTER_KEY, prompt_tokens=3, completion_tokens=4)
            self.assertEqual(st, 200, b)
            st, _, b = self.stack.chat(MASTER_KEY, model="a \"quoted\"\nname")
            self.assertEqual(st, 400, b)
            lines = self.proxyd_log()[at:].splitlines()
            self.assertGreater(len(lines), 2)
            parsed = [json.loads(l) for l in lines]  # every line is one JSON object
            for p in parsed:
                self.assertEqual(p["daemon"], "proxyd")
                self.assertIn(p["level"], ("debug", "info", "warn", "error"))
                self.assertRegex(p["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            access = [p for p in parsed if p["msg"] == "request" and p.get("route") == CHAT]
            self.assertEqual([(p["request_id"], p["status"], p["model"]) for p in access],
                             [(h["x-litellm-call-id"], "200", "llama3"),
                              (access[1]["request_id"], "400", "unknown")])
            self.assertNotIn(MASTER_KEY, self.proxyd_log())
        finally:
            self.restart_proxyd(self.stack.config)

    def test_upstream_errors_and_retries_are_counted(self):
        before = self.scrape()
        st, _, b = self.stack.chat(MASTER_KEY, mock_status=503)
        self.assertEqual(st, 503, b)
        after = self.scrape()
        attempts = [r for r in self.stack.upstream_requests()
                    if r["body"].get("mock_status") == 503]
        errors = (sample(after, "tollgate_proxyd_upstream_errors_total", model="llama3",
                         reason="http_5xx")
                  - sample(before, "tollgate_proxyd_upstream_errors_total", model="llama3",
                           reason="http_5xx"))
        retries = (sample(after, "tollgate_proxyd_upstream_retries_total", model="llama3")
                   - sample(before, "tollgate_proxyd_upstream_retries_total", model="llama3"))
        self.assertEqual(errors, len(attempts))
        self.assertEqual(retries, len(attempts) - 1)

    def test_metrics_keep_at_most_2000_series_each(self):
        """More configured model groups than a metric keeps series: refused requests
        for each (a key allowed llama3 only gets 401, no upstream call) label
        tollgate_proxyd_requests_total with 2,100 groups; the first 2,000 label
        sets keep their own series, every later one is counted in the one series
        labelled "other", and no request goes uncounted."""
        groups = ["cap-%04d" % i for i in range(METRICS_MAX_SERIES + 100)]
        config = json.loads(json.dumps(self.stack.config))
        config["model_list"] += [{"model_name": g, "litellm_params": {
            "model": "groq/llama-3.1-8b-instant", "api_base": self.stack.upstream_base,
            "api_key": "os.environ/GROQ_API_KEY"}} for g in groups]
        self.restart_proxyd(config)  # and fresh metrics
        try:
            st, _, k = self.stack.report("POST", "/key/generate", {"models": ["llama3"]},
                                         key=MASTER_KEY)
            self.assertEqual(st, 200, k)
            req = "tollgate_proxyd_requests_total"
            self.scrape()
            before = series_of(self.scrape(), req)  # the first scrape's own series is in
            room = METRICS_MAX_SERIES - len(before)
            self.assertGreater(room, 0, before)
            self.assertFalse([l for l in before if dict(l)["model"].startswith("cap-")], before)
            conn = http.client.HTTPConnection("127.0.0.1", self.stack.proxyd_port, timeout=30)
            self.addCleanup(conn.close)

            def refused(group):
                conn.request("POST", CHAT, json.dumps(
                    {"model": group, "messages": [{"role": "user", "content": "x"}]}),
                    {"Authorization": "Bearer " + k["key"], "Content-Type": "application/json"})
                resp = conn.getresponse()
                body = resp.read()
                self.assertEqual(resp.status, 401, (group, body))
                if resp.will_close:
                    conn.close()  # the next request opens a new connection

            for g in groups:
                refused(g)
            other = frozenset({"route": "other", "model": "other", "status": "other"}.items())

            def check(extra_first, extra_other):
                after = series_of(self.scrape(), req)
                self.assertEqual(len(after), METRICS_MAX_SERIES + 1,
                                 "series of %s: %d" % (req, len(after)))
                kept = sorted(dict(l)["model"] for l in after
                              if dict(l)["model"].startswith("cap-"))
                self.assertEqual(kept, groups[:room])  # first come, kept
                for l, v in after.items():
                    if dict(l)["model"].startswith("cap-"):
                        self.assertEqual(dict(l)["route"], CHAT)
                        self.assertEqual(dict(l)["status"], "401")
                        self.assertEqual(v, 1 + (extra_first if dict(l)["model"] == groups[0]
                                                 else 0), l)
                # the rest, each request once, under "other"
                self.assertEqual(after.get(other), len(groups) - room + extra_other)
                for l in before:  # the series from before the cap keep theirs
                    self.assertIn(l, after)

            check(0, 0)
            # past the cap a kept series still counts; a new label set still goes to "other"
            refused(groups[0])
            refused(groups[-1])
            check(1, 1)
        finally:
            self.restart_proxyd(self.stack.config)

    # ---------------------------------------------------------------- SIGHUP

    def test_reload_adds_a_model_group_and_refuses_a_broken_config(self):
        st, _, b = self.stack.chat(MASTER_KEY, model="fresh")
        self.assertEqual(st, 400, b)
        # a keep-alive connection and a stream, both open across the reload
        keep = http.client.HTTPConnection("127.0.0.1", self.stack.proxyd_port, timeout=30)
        keep.request("GET", "/health/liveliness")
        self.assertEqual(keep.getresponse().read(), b'"I\'m alive!"')
        conn, resp = self.open_stream(self.stream_body(mock_chunks=8, mock_chunk_delay_ms=100))
        self.assertEqual(resp.status, 200)

        config = json.loads(json.dumps(self.stack.config))
        config["model_list"].append({"model_name": "fresh", "litellm_params": {
            "model": "openai/fresh-model", "api_base": self.stack.upstream_base,
            "api_key": "os.environ/GROQ_API_KEY",
            "input_cost_per_token": "0.000002", "output_cost_per_token": "0.000003"}})
        at = self.reload(config)
        self.wait_log_after(at, "reloaded")

        events = self.read_all(resp)
        conn.close()
        self.assertEqual(events[-1], "data: [DONE]")  # the stream went on to its end
        st, h, b = self.stack.chat(MASTER_KEY, model="fresh", prompt_tokens=10, completion_tokens=20)
        self.assertEqual(st, 200, b)
        self.assertEqual(Decimal(h["x-litellm-response-cost"]), Decimal("0.00008"))
        rid = h["x-litellm-call-id"]
        wait_for(lambda: self.stack.sql("SELECT spend FROM spend_logs WHERE request_id='%s'" % rid),
                 10, message="the new group's request is not in the ledger")
        self.assertEqual(Decimal(self.stack.sql_value(
            "SELECT spend FROM spend_logs WHERE request_id='%s'" % rid)), Decimal("0.00008"))
        keep.request("GET", "/health/liveliness")  # the old connection still serves
        self.assertEqual(keep.getresponse().status, 200)
        keep.close()
        m = self.scrape()
        self.assertGreaterEqual(sample(m, "tollgate_proxyd_reloads_total", result="ok"), 1)
        generation = sample(m, "tollgate_proxyd_config_generation")

        # a broken file: refused, the running config stays
        at = self.reload("model_list: [\n  - {model_name: broken\n")
        self.wait_log_after(at, "reload refused")
        self.assertIn("level=error", [l for l in self.proxyd_log()[at:].splitlines()
                                      if "reload refused" in l][0])
        st, _, b = self.stack.chat(MASTER_KEY, model="fresh")
        self.assertEqual(st, 200, b)
        # valid YAML whose router does not build (a fallback to no group): refused too
        bad = json.loads(json.dumps(config))
        bad["router_settings"] = {"fallbacks": [{"fresh": ["nowhere"]}]}
        at = self.reload(bad)
        self.wait_log_after(at, "reload refused")
        m = self.scrape()
        self.assertEqual(sample(m, "tollgate_proxyd_config_generation"), generation)
        self.assertGreaterEqual(sample(m, "tollgate_proxyd_reloads_total", result="refused"), 2)
        st, _, b = self.stack.chat(MASTER_KEY, model="fresh")
        self.assertEqual(st, 200, b)
        self.assertIs(self.stack.daemon("proxyd").proc.poll(), None)
        # leave the stack's own config in place for the other tests
        self.stack.config_path.write_text(dump_yaml(self.stack.config))

    def test_reload_reads_the_price_file_again(self):
        prices = json.loads((REPO / "libtollgate" / "data" / "prices.json").read_text())
        path = self.stack.dir / "prices-reload.json"
        path.write_text(json.dumps(prices))
        config = json.loads(json.dumps(self.stack.config))
        config["tollgate"]["price_file"] = str(path)
        at = self.reload(config)
        self.wait_log_after(at, "reloaded")
        try:
            st, h, b = self.stack.chat(MASTER_KEY, prompt_tokens=1000, completion_tokens=500)
            self.assertEqual((st, Decimal(h["x-litellm-response-cost"])), (200, Decimal("0.00009")))
            prices["models"]["groq/llama-3.1-8b-instant"]["input_cost_per_token"] = "0.000001"
            path.write_text(json.dumps(prices))
            at = self.reload(config)
            self.wait_log_after(at, "reloaded")
            st, h, b = self.stack.chat(MASTER_KEY, prompt_tokens=1000, completion_tokens=500)
            self.assertEqual((st, Decimal(h["x-litellm-response-cost"])), (200, Decimal("0.00104")))
            path.write_text("{ not json")
            at = self.reload(config)
            self.wait_log_after(at, "reload refused")
            st, h, b = self.stack.chat(MASTER_KEY, prompt_tokens=1000, completion_tokens=500)
            self.assertEqual((st, Decimal(h["x-litellm-response-cost"])), (200, Decimal("0.00104")))
        finally:
            at = self.reload(self.stack.config)
            self.wait_log_after(at, "reloaded")

    # ---------------------------------------------------------------- SIGTERM

    def run_streams(self, n, body):
        """n streams started concurrently; returns their results (filled as they
        end) and threads, once every stream has its headers."""
        results = [None] * n
        started = threading.Barrier(n + 1, timeout=30)

        def one(i):
            try:
                conn, resp = self.open_stream(body)
                rid = resp.getheader("x-litellm-call-id")
                started.wait()
                results[i] = (resp.status, rid, self.read_all(resp))
                conn.close()
            except Exception as e:  # reported by the test
                results[i] = ("error", repr(e), [])
                try:
                    started.abort()
                except threading.BrokenBarrierError:
                    pass

        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        started.wait()
        return results, threads

    def sigterm_proxyd(self):
        d = self.stack.daemon("proxyd")
        os.kill(d.proc.pid, signal.SIGTERM)
        return d

    def test_sigterm_lets_20_streams_finish_and_accounts_them(self):
        self.restart_proxyd(self.stack.config)  # grace 20 s
        body = self.stream_body(mock_content="one two three four five", mock_chunks=3,
                                mock_chunk_delay_ms=100)  # ~1.5 s per stream
        keep = http.client.HTTPConnection("127.0.0.1", self.stack.proxyd_port, timeout=30)
        keep.request("GET", "/health/readiness")
        r = keep.getresponse()
        r.read()
        self.assertEqual(r.status, 200)
        results, threads = self.run_streams(20, body)
        at = len(self.proxyd_log())
        t0 = time.monotonic()
        d = self.sigterm_proxyd()
        # logged right after the drain closed the listening socket
        self.wait_log_after(at, "draining: 20 requests in flight")
        # no new connections once draining
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", self.stack.proxyd_port), timeout=2).close()
        # an open connection is still answered, told it is the last answer, and not ready
        keep.request("GET", "/health/readiness")
        r = keep.getresponse()
        self.assertEqual((r.status, json.loads(r.read())["status"]), (503, "draining"))
        self.assertEqual(r.getheader("connection"), "close")
        keep.close()
        for t in threads:
            t.join(30)
        rc = d.proc.wait(30)
        took = time.monotonic() - t0
        self.stack.daemons.remove(d)
        self.assertEqual(rc, 0, self.stack.daemon_log("proxyd").read_text()[-3000:])
        for r in results:
            self.assertEqual(r[0], 200, r)
            self.assertEqual(r[2][-1], "data: [DONE]", r)
        ids = [r[1] for r in results]
        rows = self.ledger_rows(ids)  # acked before proxyd exited: in the ledger now
        self.assertEqual(sorted(r[0] for r in rows), sorted(ids))
        self.assertTrue(all(r[1] == "200" and r[2] == "40" for r in rows), rows)
        # the streams need ~1.5 s (a few under ASan on 2 busy cores), the acks a moment:
        # 15 s holds; a drain that waited out its 20 s grace would take longer
        self.assertLess(took, 15, "the drain waited for more than its streams")
        self.assertIn("drain done (every event acknowledged)", self.proxyd_log()[at:])
        self.restart_proxyd()

    def test_sigterm_past_the_grace_time_cuts_and_accounts(self):
        config = json.loads(json.dumps(self.stack.config))
        config["tollgate"]["proxyd"]["shutdown_grace_ms"] = 500
        self.restart_proxyd(config)
        try:
            body = self.stream_body(mock_content="a b c d e f g h i j", mock_chunks=10,
                                    mock_chunk_delay_ms=100)  # ~10 s per stream
            results, threads = self.run_streams(20, body)
            at = len(self.proxyd_log())
            t0 = time.monotonic()
            d = self.sigterm_proxyd()
            rc = d.proc.wait(20)
            took = time.monotonic() - t0
            self.stack.daemons.remove(d)
            for t in threads:
                t.join(10)
            self.assertEqual(rc, 0)
            # the cut comes at 0.5 s and the acks soon after: 8 s holds under ASan on 2 busy
            # cores, while the streams left alone would run for 10 s
            self.assertLess(took, 8, "proxyd did not cut its streams at the grace time")
            for r in results:
                self.assertEqual(r[0], 200, r)
                self.assertNotEqual(r[2][-1:], ["data: [DONE]"], "a 10 s stream ended in %.1f s"
                                    % took)
            ids = [r[1] for r in results]
            rows = self.ledger_rows(ids)
            self.assertEqual(sorted(r[0] for r in rows), sorted(ids))
            # what was sent is accounted: some completion tokens, fewer than the whole answer
            for r in rows:
                self.assertTrue(0 < int(r[2]) < 100, rows)
            log = self.proxyd_log()[at:]  # this stop's lines only
            self.assertEqual(len(re.findall(r"stream cut by the shutdown grace time", log)), 20)
        finally:
            self.restart_proxyd(self.stack.config)

    def readiness(self):
        st, _, body = self.stack.proxy("GET", "/health/readiness")
        self.assertIn(st, (200, 503), body)
        return body

    def test_second_sigterm_cuts_at_once(self):
        config = json.loads(json.dumps(self.stack.config))
        config["tollgate"]["proxyd"]["shutdown_grace_ms"] = 300000  # 5 minutes
        self.restart_proxyd(config)
        conn = None
        try:
            keep = http.client.HTTPConnection("127.0.0.1", self.stack.proxyd_port, timeout=30)
            self.addCleanup(keep.close)
            keep.request("GET", "/health/readiness")
            r = keep.getresponse()
            body = r.read()
            self.assertEqual(r.status, 200, body)
            # a stream whose upstream sends one chunk and then nothing: it never ends alone
            conn, resp = self.open_stream(self.stream_body(
                mock_content="one two three", mock_chunks=1, mock_stall_after_chunks=1))
            self.assertEqual(resp.status, 200)
            rid = resp.getheader("x-litellm-call-id")
            first = b""
            while b"\n\n" not in first:  # the first event, relayed before the stall
                chunk = resp.read1(65536)
                self.assertTrue(chunk, "the stream ended before its first event: %r" % first)
                first += chunk
            self.assertTrue(first.startswith(b"data: "), first)
            at = len(self.proxyd_log())
            d = self.sigterm_proxyd()
            self.wait_log_after(at, "draining: 1 requests in flight")
            # the first SIGTERM's drain waits for the stream: proxyd still answers, draining
            keep.request("GET", "/health/readiness")
            r = keep.getresponse()
            self.assertEqual((r.status, json.loads(r.read())["status"]), (503, "draining"))
            self.assertIsNone(d.proc.poll())
            os.kill(d.proc.pid, signal.SIGTERM)
            # at once: the cut, accountd's ack and the exit take a few seconds under ASan on
            # 2 busy cores; the grace (5 minutes) would hold it far longer than 30 s
            try:
                rc = d.proc.wait(30)
            except subprocess.TimeoutExpired:
                d.proc.kill()
                d.proc.wait()
                self.fail("proxyd still ran 30 s after a second SIGTERM")
            finally:
                self.stack.daemons.remove(d)
            self.assertEqual(rc, 0, self.proxyd_log()[at:][-3000:])
            log = self.proxyd_log()[at:]
            self.assertIn("second stop signal: cutting the 1 requests in flight now", log)
            self.assertEqual(log.count("stream cut by the shutdown grace time"), 1)
            self.assertIn("drain done (every event acknowledged)", log)
            events = self.read_all(resp)
            self.assertNotIn("data: [DONE]", events)  # cut, not finished
            rows = self.ledger_rows([rid])  # acked before proxyd exited: accounted as cut
            self.assertEqual([(r[0], r[1]) for r in rows], [(rid, "200")])
        finally:
            if conn is not None:  # a stream left open would hold proxyd's stop
                conn.close()
            self.restart_proxyd(self.stack.config)

    def test_sigterm_with_accountd_down_keeps_events_in_the_spool(self):
        """accountd is stopped; requests through proxyd are answered, their events
        wait in the spool; SIGTERM: proxyd exits 0 in time with the events still
        in its spool files; accountd and proxyd start again and every request is
        in the ledger once, its key's spend counted once."""
        s = self.stack
        self.restart_proxyd(s.config)
        spool = Path(s.config["tollgate"]["proxyd"]["spool_dir"])
        st, _, k = s.report("POST", "/key/generate", {"key_alias": "spooled"}, key=MASTER_KEY)
        self.assertEqual(st, 200, k)
        wait_for(lambda: self.readiness()["unacked_events"] == 0, 30,
                 message="events of earlier tests are still unacknowledged")
        self.assertEqual(spool_unacked(spool), set())
        s.stop_one("accountd")
        try:
            sent = {}  # request id -> (prompt tokens, completion tokens)
            for i in range(6):
                st, h, b = s.chat(k["key"], prompt_tokens=10 + i, completion_tokens=20 + i)
                self.assertEqual(st, 200, b)
                sent[h["x-litellm-call-id"]] = (10 + i, 20 + i)
            conn, resp = self.open_stream(self.stream_body(), key=k["key"])
            self.assertEqual(resp.status, 200)
            sent[resp.getheader("x-litellm-call-id")] = (30, 40)
            self.assertEqual(self.read_all(resp)[-1], "data: [DONE]")
            conn.close()
            ready = self.readiness()
            self.assertEqual(ready["unacked_events"], len(sent), ready)
            self.assertNotEqual(ready["accountd"], "connected", ready)
            self.assertGreater(ready["spool_bytes"], 0, ready)

            at = len(self.proxyd_log())
            d = self.sigterm_proxyd()
            grace_s = s.config["tollgate"]["proxyd"]["shutdown_grace_ms"] / 1000
            try:  # nothing in flight: the documented bound is the grace plus the acks' wait
                rc = d.proc.wait(grace_s + DRAIN_ACK_WAIT_S)
            except subprocess.TimeoutExpired:
                d.proc.kill()
                d.proc.wait()
                self.fail("proxyd still ran %.0f s after SIGTERM" % (grace_s + DRAIN_ACK_WAIT_S))
            finally:
                s.daemons.remove(d)
            log = self.proxyd_log()[at:]
            self.assertEqual(rc, 0, log[-3000:])
            self.assertRegex(log, r"drain done \([^)]*\): %d usage events unacknowledged, kept "
                             r"in the spool for the next start" % len(sent))
            self.assertEqual(spool_unacked(spool), set(sent))
            self.assertEqual(self.ledger_rows(sent), [])
        finally:
            s.restart("accountd")
        self.restart_proxyd()

        token = k["token"]

        def landed():
            return s.sql("SELECT request_id, spend FROM spend_logs WHERE api_key = '%s'" % token)
        wait_for(lambda: len(landed()) >= len(sent), 60,
                 message="the spooled events did not reach the ledger within 60 s")
        wait_for(lambda: self.readiness()["unacked_events"] == 0, 30,
                 message="proxyd has unacknowledged events left after 30 s")
        rows = landed()
        self.assertEqual(sorted(r[0] for r in rows), sorted(sent))  # each once, none else
        for rid, spend in rows:
            self.assertEqual(Decimal(spend), expected_cost(*sent[rid]), rid)
        total = sum(expected_cost(p, c) for p, c in sent.values())
        self.assertEqual(Decimal(s.sql_value("SELECT spend FROM api_keys WHERE token = '%s'"
                                             % token)), total)  # counted once
        wait_for(lambda: spool_unacked(spool) == set(), 10,
                 message="acknowledged events are still unacknowledged in the spool files")


if __name__ == "__main__":
    unittest.main()
