"""test_reportd_ops.py - reportd in operation (issue 7): /metrics, the access
log, draining on SIGTERM, reloading on SIGHUP, and the read replica.

- GET /metrics (no key) parses as Prometheus text; its request counters and
  latency histogram grow by exactly the requests sent, per route pattern and
  status (401, 404 as route="other", 405 under the route's pattern);
- every request has one access line with its request id (the client's
  x-request-id, or a new one, echoed back) and never a key or query string;
- SIGTERM while a big answer is being written to a slow client: the client
  gets all of it, new connections are refused meanwhile, and reportd exits 0
  right after; a client that stops reading is cut at the end of the grace
  (shutdown_grace_ms, changed by a SIGHUP) and reportd still exits 0; idle
  keep-alive connections (or a half-sent request) do not hold the stop;
- SIGHUP with a new master key and price file: the old key is refused, the
  new one and the new price work, on the same keep-alive connection; a new
  time zone and log format take effect; a broken config or an unreadable
  price file is refused with one log line and the old config stays; a
  restart-only setting is logged as such;
- tollgate.reportd.read_database_url: the spend report reads the replica
  (a second database on the same MariaDB, with other spend), /key/generate
  still writes to the primary; a replica without the schema stops the start.

Run from the repo root:  python3 -m unittest -v tests/e2e/test_reportd_ops.py
"""

import copy
import http.client
import json
import os
import re
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import MASTER_KEY  # noqa: E402

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # a python3 other than the system's, without the Debian package
    sys.path.append("/usr/lib/python3/dist-packages")
    from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

NEW_MASTER = "sk-reloaded-master-5678"
BIG_DAY0, BIG_DAYS, BIG_TEAMS = "2024-01-01", 300, 200  # the big report: 60,000 rollup rows
ACCESS = re.compile(r"^ts=\S+ daemon=reportd level=info request_id=(\S+|\"[^\"]*\") "
                    r"method=(\S+) route=(\S+) status=(\d+) duration_ms=([0-9.]+) msg=\"request\"$")


def scrape(port):
    """GET /metrics without a key: {(sample name, sorted labels): value}."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        text = resp.read().decode()
        ctype = resp.getheader("Content-Type")
    finally:
        conn.close()
    if resp.status != 200:
        raise AssertionError("/metrics answered %d: %s" % (resp.status, text[:300]))
    out, types = {}, {}
    for fam in text_string_to_metric_families(text):
        types[fam.name] = fam.type
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out, types, ctype


TCP_LISTEN = "0A"  # the state column of /proc/net/tcp


def tcp_sockets(port):
    """The IPv4 TCP sockets whose local port is port, from /proc/net/tcp:
    [(state, remote port, receive queue)]. A listening socket's receive queue
    is its accept queue: connections the daemon has not accepted yet."""
    out = []
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            cols = line.split()
            if int(cols[1].rsplit(":", 1)[1], 16) == port:
                out.append((cols[3], int(cols[2].rsplit(":", 1)[1], 16),
                            int(cols[4].split(":")[1], 16)))
    return out


def delta(before, after, name):
    """The samples of name that changed: {labels dict as tuple: increase}."""
    return {labels: v - before.get((n, labels), 0) for (n, labels), v in after.items()
            if n == name and v != before.get((n, labels), 0)}


class ReportdOpsTest(harness.StackTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        s = cls.stack
        cls.base_config = copy.deepcopy(s.config)
        # the big report: one rollup row per day and team, each naming a key
        s.sql("INSERT INTO daily_spend (day, group_key, api_key, team_id, model_group, model,"
              " spend, total_tokens, api_requests) SELECT DATE('%s') + INTERVAL (seq DIV %d) DAY,"
              " UNHEX(MD5(seq)), SHA2(seq, 256), CONCAT('big-team-', seq MOD %d), 'llama3',"
              " 'groq/llama-3.1-8b-instant', 0.000123, 100, 1 FROM seq_0_to_%d"
              % (BIG_DAY0, BIG_TEAMS, BIG_TEAMS, BIG_DAYS * BIG_TEAMS - 1))

    # -- helpers

    def log(self):
        return self.stack.daemon_log("reportd").read_text(errors="replace")

    def write_config(self, **changes):
        """The base config with changes (dotted paths -> value; None deletes)
        written over the stack's config file, which reportd reads."""
        cfg = copy.deepcopy(self.base_config)
        for path, value in changes.items():
            node, keys = cfg, path.split(".")
            for k in keys[:-1]:
                node = node.setdefault(k, {})
            if value is None:
                node.pop(keys[-1], None)
            else:
                node[keys[-1]] = value
        self.stack.config_path.write_text(harness.dump_yaml(cfg))

    def sighup(self, needle):
        """SIGHUP reportd and wait for a new log line containing needle."""
        before = self.log().count(needle)
        self.stack.daemon("reportd").proc.send_signal(signal.SIGHUP)
        harness.wait_for(lambda: self.log().count(needle) > before, timeout=10,
                         message="reportd did not log %r after SIGHUP" % needle)

    def restore_config(self):
        self.stack.config_path.write_text(harness.dump_yaml(self.base_config))
        if self.stack.daemon("reportd").proc.poll() is None:
            self.sighup("config reloaded")

    def ensure_running(self):
        """After a test that stopped reportd: start it again with the base config."""
        self.stack.config_path.write_text(harness.dump_yaml(self.base_config))
        try:
            d = self.stack.daemon("reportd")
        except KeyError:  # stopped with stop_one
            d = None
        if d is not None and d.proc.poll() is None:
            return
        if d is not None:
            self.stack.daemons.remove(d)
        self.stack.restart("reportd")

    def restart_with_base_config(self):
        """Back to the primary alone: the replica's URL is read only at start."""
        self.ensure_running()
        self.stack.stop_one("reportd")
        self.stack.restart("reportd")

    def get(self, conn, path, key=MASTER_KEY, headers=None):
        h = dict(headers or {})
        if key is not None:
            h["Authorization"] = "Bearer " + key
        conn.request("GET", path, headers=h)
        resp = conn.getresponse()
        return resp.status, resp.read(), resp

    def access_lines(self):
        return [m for m in (ACCESS.match(line) for line in self.log().splitlines()) if m]

    # -- /metrics

    def test_metrics_count_requests(self):
        port = self.stack.reportd_port
        before, types, ctype = scrape(port)
        self.assertTrue(ctype.startswith("text/plain"), ctype)
        self.assertEqual(types.get("tollgate_reportd_requests"), "counter", types)
        self.assertEqual(types.get("tollgate_reportd_request_duration_seconds"), "histogram")
        sent = {("/global/spend/keys", "200"): 3, ("/global/spend/keys", "401"): 2,
                ("other", "404"): 2, ("/global/spend/keys", "405"): 1,
                ("/key/info", "404"): 1, ("/metrics", "405"): 1, ("/metrics", "200"): 1}
        for _ in range(3):
            st, _, ans = self.stack.report("GET", "/global/spend/keys?limit=2", key=MASTER_KEY)
            self.assertEqual(st, 200, ans)
        for key in (None, "sk-wrong-key-for-metrics"):
            st, _, ans = self.stack.report("GET", "/global/spend/keys", key=key)
            self.assertEqual(st, 401, ans)
        for path in ("/no/such/route", "/global/spend/keys/" + "x" * 300):
            st, _, ans = self.stack.report("GET", path + "?key=sk-in-query", key=MASTER_KEY)
            self.assertEqual(st, 404, ans)
        st, _, ans = self.stack.report("POST", "/global/spend/keys", {}, key=MASTER_KEY)
        self.assertEqual(st, 405, ans)
        st, _, ans = self.stack.report("GET", "/key/info?key=sk-not-a-key", key=MASTER_KEY)
        self.assertEqual(st, 404, ans)
        st, _, ans = self.stack.report("POST", "/metrics", {})  # GET only; no key needed
        self.assertEqual(st, 405, ans)
        after, _, _ = scrape(port)  # the first scrape counts here (/metrics 200)

        got = delta(before, after, "tollgate_reportd_requests_total")
        self.assertEqual({(dict(k)["route"], dict(k)["status"]): v for k, v in got.items()},
                         {k: float(v) for k, v in sent.items()})
        per_route = {}
        for (route, _), n in sent.items():
            per_route[route] = per_route.get(route, 0) + n
        counts = delta(before, after, "tollgate_reportd_request_duration_seconds_count")
        self.assertEqual({dict(k)["route"]: v for k, v in counts.items()},
                         {k: float(v) for k, v in per_route.items()})
        for route, n in per_route.items():
            labels = (("route", route),)
            inf = after[("tollgate_reportd_request_duration_seconds_bucket",
                         tuple(sorted({"route": route, "le": "+Inf"}.items())))]
            self.assertEqual(inf, after[("tollgate_reportd_request_duration_seconds_count",
                                         labels)])
            self.assertGreater(after[("tollgate_reportd_request_duration_seconds_sum", labels)],
                               before.get(("tollgate_reportd_request_duration_seconds_sum",
                                           labels), 0))
            buckets = sorted((float(dict(k)["le"]), v) for (nm, k), v in after.items()
                             if nm == "tollgate_reportd_request_duration_seconds_bucket" and
                             dict(k)["route"] == route)
            self.assertEqual([v for _, v in buckets], sorted(v for _, v in buckets), route)
        # no raw path became a label
        self.assertFalse([k for k in after if "x" * 50 in str(k) or "/no/such" in str(k)])
        self.assertEqual(after[("tollgate_reportd_db_errors_total",
                                (("database", "primary"),))], 0)

    # -- the access log

    def test_access_log_has_request_ids_and_no_keys(self):
        st, _, k = self.stack.report("POST", "/key/generate", {"key_alias": "log-test"},
                                     key=MASTER_KEY)
        self.assertEqual(st, 200, k)
        raw = k["key"]
        conn = http.client.HTTPConnection("127.0.0.1", self.stack.reportd_port, timeout=30)
        try:
            st, body, resp = self.get(conn, "/key/info?key=" + raw,
                                      headers={"x-request-id": "ops-test-rid-1"})
            self.assertEqual(st, 200, body)
            self.assertEqual(resp.getheader("x-request-id"), "ops-test-rid-1")
            st, body, resp = self.get(conn, "/global/spend/keys?limit=1", key=raw,
                                      headers={"x-request-id": "y" * 129})
            self.assertEqual(st, 403, body)  # a key without spend rights
            new_id = resp.getheader("x-request-id")
            self.assertRegex(new_id, r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-"
                                     r"[0-9a-f]{12}$")
            st, body, resp = self.get(conn, "/no-route?api_key=" + raw, key=None)
            self.assertEqual(st, 404, body)
            plain_id = resp.getheader("x-request-id")
        finally:
            conn.close()
        harness.wait_for(lambda: any(m.group(1) == plain_id for m in self.access_lines()),
                         timeout=5, message="no access line for the last request")
        lines = {m.group(1): m.groups()[1:] for m in self.access_lines()}
        self.assertEqual(lines["ops-test-rid-1"][:3], ("GET", "/key/info", "200"))
        self.assertEqual(lines[new_id][:3], ("GET", "/global/spend/keys", "403"))
        self.assertEqual(lines[plain_id][:3], ("GET", "other", "404"))
        self.assertGreater(float(lines["ops-test-rid-1"][3]), 0)
        self.assertNotIn("y" * 129, self.log())
        log = self.log()
        for secret in (raw, MASTER_KEY, NEW_MASTER, "api_key=", "?key="):
            self.assertNotIn(secret, log)
        # one access line per request: the request ids seen are unique
        ids = [m.group(1) for m in self.access_lines()]
        self.assertEqual(len(ids), len(set(ids)))

    # -- SIGTERM

    def slow_big_report(self):
        """A socket with a small receive window that asked for the big report
        and read its first bytes: the handler has answered, megabytes are
        still to be written. Returns (socket, first bytes)."""
        path = ("/global/spend/report?start_date=%s&end_date=2024-12-31" % BIG_DAY0)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(60)
        s.connect(("127.0.0.1", self.stack.reportd_port))
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                   % (path, MASTER_KEY)).encode())
        first = s.recv(1024)
        self.assertTrue(first.startswith(b"HTTP/1.1 200"), first[:200])
        return s, first

    @staticmethod
    def read_rest(s, first):
        """Reads to EOF: (declared Content-Length, body bytes received)."""
        data = [first]
        try:
            while True:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                data.append(chunk)
        except ConnectionResetError:
            pass
        head, _, body = b"".join(data).partition(b"\r\n\r\n")
        return int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1)), body

    def wait_listener_closed(self):
        """Waits until reportd's listening socket is gone (each worker closes its
        copy when it starts draining)."""
        port = self.stack.reportd_port
        harness.wait_for(lambda: not [t for t in tcp_sockets(port) if t[0] == TCP_LISTEN], 10,
                         message="reportd still listens on %d after SIGTERM" % port)

    def test_sigterm_delivers_a_big_answer_in_flight(self):
        self.addCleanup(self.ensure_running)
        d = self.stack.daemon("reportd")
        s, first = self.slow_big_report()
        d.proc.send_signal(signal.SIGTERM)
        self.wait_listener_closed()
        # the client reads nothing more until below: megabytes are still to be written
        self.assertIsNone(d.proc.poll(), "reportd exited with an answer still being written")
        with self.assertRaises(ConnectionRefusedError):  # no new connections while draining
            socket.create_connection(("127.0.0.1", self.stack.reportd_port), timeout=2).close()
        length, body = self.read_rest(s, first)
        done = time.monotonic()
        self.assertGreater(length, 8 << 20, "the answer is too small to be still in flight")
        self.assertEqual(len(body), length, "the answer was cut")
        days = json.loads(body)
        self.assertEqual(len(days), BIG_DAYS)
        self.assertEqual(sum(len(x["teams"]) for x in days), BIG_DAYS * BIG_TEAMS)
        rc = d.proc.wait(60)
        self.assertEqual(rc, 0, self.stack.log_tail("reportd"))
        # the grace is 30 s (the default): a reportd that waited it out would take that
        # long; one that stops after its last answer is gone well within 10 s, even under
        # ASan (its leak check at exit) on 2 busy cores
        self.assertLess(time.monotonic() - done, 10.0, "reportd lingered after the answer")

    def test_sigterm_grace_ends_a_stuck_answer(self):
        self.addCleanup(self.ensure_running)
        self.write_config(**{"tollgate.reportd.shutdown_grace_ms": 500})  # reloadable
        self.sighup("config reloaded")
        d = self.stack.daemon("reportd")
        s, first = self.slow_big_report()  # and never read on
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        rc = d.proc.wait(60)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, self.stack.log_tail("reportd"))
        self.assertGreater(took, 0.45, "reportd did not wait for the answer in flight")
        # this client never reads on: without the grace reportd would wait on it for ever;
        # 10 s is the 0.5 s grace plus ASan's leak check at exit on 2 busy cores, with room
        self.assertLess(took, 10.0, "reportd waited past the grace")
        self.assertIn("1 answers still being written when the shutdown grace ended", self.log())
        length, body = self.read_rest(s, first)
        self.assertLess(len(body), length)

    def test_sigterm_idle_connections_do_not_hold_the_stop(self):
        self.addCleanup(self.ensure_running)
        d = self.stack.daemon("reportd")
        port = self.stack.reportd_port
        keepalive = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        st, body, resp = self.get(keepalive, "/global/spend/keys?limit=1")
        self.assertEqual(st, 200, body)
        self.assertNotEqual((resp.getheader("Connection") or "").lower(), "close")
        silent = socket.create_connection(("127.0.0.1", port))
        half = socket.create_connection(("127.0.0.1", port))
        half.sendall(b"GET /global/spend/keys HTTP/1.1\r\nHost: x\r\n")
        half_port = half.getsockname()[1]

        def taken():
            """reportd accepted both (its accept queue is empty) and read the half request
            (its end of that connection has nothing left to read)."""
            socks = tcp_sockets(port)
            listening = [t for t in socks if t[0] == TCP_LISTEN]
            return (listening and all(t[2] == 0 for t in listening) and
                    [t for t in socks if t[1] == half_port and t[2] == 0])
        harness.wait_for(taken, 10, message="reportd did not take the idle connections: %r"
                         % tcp_sockets(port))
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        rc = d.proc.wait(60)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, self.stack.log_tail("reportd"))
        # the grace is 30 s (the default): connections that held the stop would hold it
        # that long; without them reportd is gone well within 10 s even under ASan on 2
        # busy cores
        self.assertLess(took, 10.0, "idle connections held the stop for %.1f s" % took)
        keepalive.sock.settimeout(5)
        self.assertEqual(keepalive.sock.recv(100), b"")  # closed by reportd
        keepalive.close()
        silent.close()
        half.close()

    # -- SIGHUP

    def test_sighup_new_master_key_and_prices(self):
        self.addCleanup(self.restore_config)
        prices = json.loads((harness.REPO / "libtollgate" / "data" / "prices.json").read_text())
        prices["models"]["tg-reload-model"] = {"mode": "chat", "provider": "openai",
                                               "input_cost_per_token": "0.001",
                                               "output_cost_per_token": "0.002"}
        price_file = self.stack.dir / "prices-reload.json"
        price_file.write_text(json.dumps(prices))
        calc = {"completion_response": {"model": "tg-reload-model",
                                        "usage": {"prompt_tokens": 10, "completion_tokens": 5}}}
        st, _, ans = self.stack.report("POST", "/spend/calculate", calc, key=MASTER_KEY)
        self.assertEqual(st, 400, ans)  # not in the built-in map

        conn = http.client.HTTPConnection("127.0.0.1", self.stack.reportd_port, timeout=30)
        self.addCleanup(conn.close)
        st, body, _ = self.get(conn, "/global/spend/keys?limit=1")
        self.assertEqual(st, 200, body)
        local = conn.sock.getsockname()
        self.write_config(**{"general_settings.master_key": NEW_MASTER,
                             "tollgate.price_file": str(price_file)})
        self.sighup("config reloaded")
        st, body, _ = self.get(conn, "/global/spend/keys?limit=1")
        self.assertEqual(st, 401, body)
        st, body, resp = self.get(conn, "/global/spend/keys?limit=1", key=NEW_MASTER)
        self.assertEqual(st, 200, body)
        self.assertEqual(conn.sock.getsockname(), local, "the keep-alive connection was dropped")
        st, _, ans = self.stack.report("POST", "/spend/calculate", calc, key=NEW_MASTER)
        self.assertEqual(st, 200, ans)
        self.assertEqual(str(ans["cost"]), "0.02")

        # a new time zone and log format (the workers are parked for these)
        self.write_config(**{"general_settings.master_key": NEW_MASTER,
                             "litellm_settings": {"timezone": "Europe/Berlin"},
                             "tollgate.log_format": "json"})
        self.sighup("config reloaded")
        st, body, _ = self.get(conn, "/global/spend/keys?limit=1", key=NEW_MASTER,
                               headers={"x-request-id": "json-line-1"})
        self.assertEqual(st, 200, body)
        self.assertEqual(conn.sock.getsockname(), local)

        def json_line():
            for line in self.log().splitlines():
                if line.startswith("{") and '"json-line-1"' in line:
                    return json.loads(line)
        obj = harness.wait_for(json_line, timeout=5, message="no JSON access line")
        self.assertEqual((obj["route"], obj["status"], obj["method"]),
                         ("/global/spend/keys", "200", "GET"))
        st, _, ans = self.stack.report("POST", "/key/generate", {"budget_duration": "1d"},
                                       key=NEW_MASTER)
        self.assertEqual(st, 200, ans)
        # 1d resets at the next midnight in Berlin: 22:00 or 23:00 UTC
        self.assertRegex(ans["budget_reset_at"], r"T2[23]:00:00")

    def test_sighup_refuses_a_broken_config(self):
        self.addCleanup(self.restore_config)
        before, _, _ = scrape(self.stack.reportd_port)
        conn = http.client.HTTPConnection("127.0.0.1", self.stack.reportd_port, timeout=30)
        self.addCleanup(conn.close)
        st, body, _ = self.get(conn, "/global/spend/keys?limit=1")
        self.assertEqual(st, 200, body)
        local = conn.sock.getsockname()
        needle = "config reload refused"
        # not YAML
        self.stack.config_path.write_text("general_settings: {master_key: " + NEW_MASTER +
                                          "\nmodel_list: [\n")
        self.sighup(needle)
        # valid YAML, a bad value
        self.write_config(**{"general_settings.master_key": NEW_MASTER,
                             "tollgate.reportd.workers": "many"})
        self.sighup(needle)
        # an unreadable price file
        self.write_config(**{"general_settings.master_key": NEW_MASTER,
                             "tollgate.price_file": str(self.stack.dir / "no-such-prices.json")})
        self.sighup(needle)
        refusals = [line for line in self.log().splitlines() if needle in line]
        self.assertEqual(len(refusals), 3, refusals)
        self.assertIn("workers", refusals[1])
        self.assertIn("no-such-prices.json", refusals[2])
        for line in refusals:
            self.assertIn("level=error", line)
            self.assertNotIn(NEW_MASTER, line)
        st, body, _ = self.get(conn, "/global/spend/keys?limit=1")
        self.assertEqual(st, 200, body)  # the old master key still works
        st, body, _ = self.get(conn, "/global/spend/keys?limit=1", key=NEW_MASTER)
        self.assertEqual(st, 401, body)
        self.assertEqual(conn.sock.getsockname(), local)
        after, _, _ = scrape(self.stack.reportd_port)
        self.assertEqual(delta(before, after, "tollgate_reportd_config_reloads_total"),
                         {(("result", "refused"),): 3.0})

        # a restart-only setting: applied reload, the setting logged as waiting
        self.write_config(**{"tollgate.reportd.workers": 2})
        self.sighup("config reloaded")
        self.assertIn("tollgate.reportd.workers changed; takes effect after a restart",
                      self.log())

    # -- the read replica

    def test_read_replica(self):
        s = self.stack
        self.addCleanup(self.restart_with_base_config)
        s.sql("CREATE DATABASE tollgate_replica; CREATE DATABASE tollgate_empty;"
              " GRANT ALL ON tollgate_replica.* TO 'tollgate'@'127.0.0.1';"
              " GRANT ALL ON tollgate_empty.* TO 'tollgate'@'127.0.0.1';", db=None)
        replica_cfg = s.write_config("replica.yaml", s.make_config(database="tollgate_replica"))
        rc, err = s.run_daemon_once("accountd", config_path=replica_cfg, args=["--migrate"],
                                    timeout=60)
        self.assertEqual(rc, 0, err)
        row = ("INSERT INTO daily_spend (day, group_key, api_key, team_id, model_group, model,"
               " spend, total_tokens) VALUES ('2026-03-02', UNHEX(MD5('%s')), '', '%s',"
               " 'llama3', 'groq/llama-3.1-8b-instant', %s, 10)")
        s.sql(row % ("p", "primary-team", "1.5"))
        s.sql(row % ("r", "replica-team", "7.25"), db="tollgate_replica")
        url = "mysql://%s:%s@127.0.0.1:%d/%%s" % (harness.DB_USER, harness.DB_PASSWORD,
                                                   s.db_port)

        # a replica without the schema: reportd does not start
        self.write_config(**{"tollgate.reportd.read_database_url": url % "tollgate_empty"})
        s.stop_one("reportd")
        rc, err = s.run_daemon_once("reportd", timeout=30)
        self.assertEqual(rc, 1, err)  # (under ASan, a leak on this path would make it 23)
        self.assertIn("read replica", err)
        self.assertIn("--migrate", err)

        self.write_config(**{"tollgate.reportd.read_database_url": url % "tollgate_replica"})
        s.restart("reportd")
        st, _, days = s.report("GET", "/global/spend/report?start_date=2026-03-01"
                               "&end_date=2026-03-31", key=MASTER_KEY)
        self.assertEqual(st, 200, days)
        teams = [t["team_name"] for day in days for t in day["teams"]]
        self.assertEqual(teams, ["replica-team"])
        self.assertEqual(str(days[0]["teams"][0]["total_spend"]), "7.25")
        st, _, k = s.report("POST", "/key/generate", {"key_alias": "on-primary"},
                            key=MASTER_KEY)
        self.assertEqual(st, 200, k)
        self.assertEqual(s.sql_value("SELECT COUNT(*) FROM api_keys WHERE key_alias ="
                                     " 'on-primary'"), "1")
        self.assertEqual(s.sql_value("SELECT COUNT(*) FROM api_keys WHERE key_alias ="
                                     " 'on-primary'", db="tollgate_replica"), "0")
        st, _, info = s.report("GET", "/key/info?key=" + k["key"], key=MASTER_KEY)
        self.assertEqual(st, 200, info)  # read-after-write: the primary
        # the new key is known at once (authorization reads the primary: on the
        # replica it would be unknown, a 401); its user-less role may not read
        st, _, info = s.report("GET", "/key/info?key=" + k["key"], key=k["key"])
        self.assertEqual(st, 403, info)
        after, _, _ = scrape(s.reportd_port)
        self.assertEqual(after[("tollgate_reportd_db_errors_total", (("database", "replica"),))],
                         0)


if __name__ == "__main__":
    unittest.main()
