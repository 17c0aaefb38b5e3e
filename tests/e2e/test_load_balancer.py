"""test_load_balancer.py - two proxyd (one MariaDB, accountd and upstream) behind nginx
with deploy/nginx/tollgate.conf and behind HAProxy with deploy/haproxy/haproxy.cfg, each
balancer a foreground process with its pid, log and temp files in a temp dir.

The shipped files are used as they are but for one documented substitution: the proxyd
addresses 127.0.0.1:4000 and 127.0.0.1:4010 become the test's two proxyd, the listening
port (nginx `listen 80;`, HAProxy `bind :80`) a free loopback port, and HAProxy's `global`
section (process settings: syslog, chroot, user, daemon, stats socket) one for the temp dir;
nginx's file, an http-context file, is included by a main config the test writes (as
Debian's nginx.conf includes conf.d/). `nginx -t` and `haproxy -c` check them first.

Through each balancer: a stream arrives event by event (the events an upstream has sent
reach the client while that upstream still holds the rest back), requests are spread over
both proxyd, x-litellm-response-cost passes through, and every request is in the ledger
exactly once, nothing more (checked once no proxyd has an event left to deliver, so a
request a balancer sent twice would show). With one proxyd stopped every
request is still answered (nginx: the next upstream; HAProxy: a retry elsewhere, then its
check), and HAProxy keeps a proxyd that is up but unready (/health/readiness 503) out.

Run from the repo root:  python3 -m unittest -v tests/e2e/test_load_balancer.py
"""

import csv
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import MASTER_KEY, free_port, wait_for  # noqa: E402
from invariants import list_cost as expected_cost  # noqa: E402  (from the price file)

SHIPPED_NGINX = harness.REPO / "deploy" / "nginx" / "tollgate.conf"
SHIPPED_HAPROXY = harness.REPO / "deploy" / "haproxy" / "haproxy.cfg"
SHIPPED_PROXYD = ("127.0.0.1:4000", "127.0.0.1:4010")
# How long a read waits for stream events that were sent: a balancer that held them back
# (buffering) would hold them until the stalled upstream ends, i.e. forever, so this only
# bounds how long a failure takes; far above any scheduling delay under ASan on 2 cores.
STALLED_READ_TIMEOUT = 30


def program(name):
    """An installed program, also from /usr/sbin when PATH lacks it."""
    return shutil.which(name) or next((p for p in ("/usr/sbin/" + name, "/sbin/" + name)
                                       if os.access(p, os.X_OK)), None)


def substitute(text, pairs):
    """text with each (old, new) replaced; each old must occur exactly once, so a change
    to the shipped file that the substitution no longer fits fails loudly."""
    for old, new in pairs:
        if text.count(old) != 1:
            raise AssertionError("expected %r once in the shipped file, found it %d times"
                                 % (old, text.count(old)))
        text = text.replace(old, new)
    return text


def wait_port(port, proc, log, timeout=15):
    def up():
        if proc.poll() is not None:
            raise AssertionError("exited with %s during startup\n%s"
                                 % (proc.returncode, harness.log_tail(log)))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            return False
    wait_for(up, timeout, message="no listener on %d\n%s" % (port, harness.log_tail(log)))


class Balancer:
    """A balancer process in its own temp dir; port is where clients connect."""

    name = "?"

    def __init__(self, upstream_ports):
        self.dir = Path(tempfile.mkdtemp(prefix="tg-lb-%s-" % self.name))
        self.port = free_port()
        self.log = self.dir / "out.log"
        self.proc = None
        self.pairs = [(SHIPPED_PROXYD[0], "127.0.0.1:%d" % upstream_ports[0]),
                      (SHIPPED_PROXYD[1], "127.0.0.1:%d" % upstream_ports[1])]

    def spawn(self, argv):
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, cwd=str(self.dir),
                                         start_new_session=True,
                                         preexec_fn=harness._pdeathsig)
        wait_port(self.port, self.proc, self.log)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def check(self, argv):
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise AssertionError("%s exited %d:\n%s%s" % (argv, p.returncode, p.stdout, p.stderr))


class Nginx(Balancer):
    name = "nginx"

    def start(self):
        d = self.dir
        conf = substitute(SHIPPED_NGINX.read_text(),
                          self.pairs + [("    listen 80;", "    listen 127.0.0.1:%d;" % self.port)])
        (d / "tollgate.conf").write_text(conf)
        user = "user root;\n" if os.geteuid() == 0 else ""  # workers keep our rights
        (d / "nginx.conf").write_text(
            "daemon off;\nworker_processes 1;\n%spid %s/nginx.pid;\nerror_log %s/error.log info;\n"
            "events { worker_connections 1024; }\nhttp {\n"
            "    log_format lb '$upstream_addr $status';\n"
            "    access_log %s/access.log lb;\n"
            "    client_body_temp_path %s/body; proxy_temp_path %s/proxy;\n"
            "    fastcgi_temp_path %s/fastcgi; uwsgi_temp_path %s/uwsgi; scgi_temp_path %s/scgi;\n"
            "    include %s/tollgate.conf;\n}\n" % ((user,) + (d,) * 9))
        argv = [program("nginx"), "-e", str(d / "error.log"), "-p", str(d), "-c",
                str(d / "nginx.conf")]
        self.check(argv + ["-t"])
        self.spawn(argv)

    def upstreams(self):
        """The proxyd each logged request went to, last one tried (nginx's $upstream_addr
        lists every one tried, comma-separated)."""
        path = self.dir / "access.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return [line.split()[-2] for line in lines]


class HAProxy(Balancer):
    name = "haproxy"

    def start(self):
        d = self.dir
        text = SHIPPED_HAPROXY.read_text()
        head, sep, rest = text.partition("\ndefaults\n")
        self.assertion(sep and "\nglobal\n" in head, "no global/defaults sections")
        glob = ("\nglobal\n    maxconn 2000\n    log stdout format raw local0\n"
                "    stats socket %s/admin.sock mode 600 level admin\n" % d)
        conf = substitute(head[:head.index("\nglobal\n")] + glob + sep + rest,
                          self.pairs + [("    bind :80\n", "    bind 127.0.0.1:%d\n" % self.port)])
        (d / "haproxy.cfg").write_text(conf)
        self.check([program("haproxy"), "-c", "-f", str(d / "haproxy.cfg")])
        self.spawn([program("haproxy"), "-db", "-f", str(d / "haproxy.cfg")])

    @staticmethod
    def assertion(ok, msg):
        if not ok:
            raise AssertionError(msg)

    def command(self, line):
        """One command on the admin socket; its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(self.dir / "admin.sock"))
            s.sendall(line.encode() + b"\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return data.decode()

    def cut_streams(self):
        """Ends every request in progress to the proxyd (HAProxy notices a client that
        left only when it writes to it, which a stalled answer never lets it do)."""
        for server in ("proxyd1", "proxyd2"):
            self.command("shutdown sessions server tollgate_proxyd/" + server)

    def stats(self):
        """show stat, as {server name: row} for the proxyd backend."""
        lines = self.command("show stat").splitlines()
        rows = csv.DictReader([lines[0].lstrip("# ")] + lines[1:])
        return {r["svname"]: r for r in rows if r["pxname"] == "tollgate_proxyd"}


@unittest.skipUnless(program("nginx") and program("haproxy"),
                     "nginx or haproxy not installed (deploy/install-deps.sh --tests)")
class LoadBalancerTest(harness.StackTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        s = cls.stack
        cls.ports = (s.proxyd_port, s.add_proxyd("proxyd-2"))
        cls.nginx, cls.haproxy = Nginx(cls.ports), HAProxy(cls.ports)
        for lb in (cls.nginx, cls.haproxy):
            cls.addClassCleanup(lb.stop)
            lb.start()
        cls.balancers = (cls.nginx, cls.haproxy)

    # -- helpers

    def new_key(self):
        st, _, k = self.stack.report("POST", "/key/generate", {}, key=MASTER_KEY)
        self.assertEqual(st, 200, k)
        return k

    def chat(self, port, key, prompt, completion):
        return self.stack.http("POST", port, "/v1/chat/completions", {
            "model": "llama3", "messages": [{"role": "user", "content": "hi"}],
            "mock_usage": {"prompt_tokens": prompt, "completion_tokens": completion}}, key=key)

    def stream(self, port, body, key):
        """POSTs a stream; returns (status, headers, events, times): times[i] is when event
        i arrived, in seconds after the request was sent."""
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            t0 = time.monotonic()
            conn.request("POST", "/v1/chat/completions", json.dumps(body),
                         {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
            resp = conn.getresponse()
            headers = {k.lower(): v for k, v in resp.getheaders()}
            events, times, buf = [], [], b""
            while True:
                chunk = resp.read1(65536)
                if not chunk:
                    break
                buf += chunk
                while b"\n\n" in buf:
                    ev, buf = buf.split(b"\n\n", 1)
                    events.append(ev.decode())
                    times.append(time.monotonic() - t0)
        finally:
            conn.close()
        return resp.status, headers, events, times

    def stalled_stream(self, port, key, n, cut=None):
        """POSTs a stream whose upstream sends n content events and then nothing more
        until the client leaves; reads until those n arrived (or STALLED_READ_TIMEOUT)
        and leaves (cut: how the balancer is made to notice). Accepts gzip as SDK clients
        do (a balancer compressing the stream would hold events back). Returns the
        contents received once the upstream's stream ended (so least_conn sees no
        connection left open, and proxyd has no stream in flight at its SIGTERM)."""
        body = {"model": "llama3", "stream": True, "messages": [{"role": "user", "content": "x"}],
                "mock_content": "one two three four five", "mock_stall_after_chunks": n}
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=STALLED_READ_TIMEOUT)
        conn.connect()
        sock, resp = conn.sock, None  # http.client may drop conn.sock while resp reads on
        contents, buf = [], b""
        try:
            conn.request("POST", "/v1/chat/completions", json.dumps(body),
                         {"Authorization": "Bearer " + key, "Content-Type": "application/json",
                          "Accept-Encoding": "gzip"})
            resp = conn.getresponse()
            if resp.status != 200:
                self.fail("port %d: %d %r" % (port, resp.status, resp.read(300)))
            self.assertIsNone(resp.getheader("content-encoding"), "port %d: compressed" % port)
            while len(contents) < n:
                chunk = resp.read1(65536)
                self.assertTrue(chunk, "port %d: the stream ended early: %r" % (port, buf))
                buf += chunk
                while b"\n\n" in buf:
                    ev, buf = buf.split(b"\n\n", 1)
                    if ev.startswith(b"data: {"):
                        delta = json.loads(ev[len(b"data: "):])["choices"][0]["delta"]
                        contents.append(delta["content"])
        except socket.timeout:
            self.fail("port %d: %d of the %d events the upstream sent arrived within %d s:"
                      " held back" % (port, len(contents), n, STALLED_READ_TIMEOUT))
        finally:
            if resp is not None:
                resp.close()
            conn.close()
            sock.close()
            if cut is not None:
                cut()
        upstream = self.stack.upstream_port
        wait_for(lambda: self.stack.http("GET", upstream, "/stats")[2]["active_streams"] == 0,
                 15, message="the stalled stream was not cut when its client left (port %d)"
                 % port)
        return contents

    def assert_ledger(self, token, costs):
        """The key's ledger rows are exactly the answers given: costs maps each answer's
        x-litellm-call-id to its cost. Checked once no proxyd has an unacknowledged event
        left: then a request billed without its answer reaching the client (a POST a
        balancer sent twice) is in the ledger too, and fails the check."""
        s = self.stack
        wait_for(lambda: int(s.sql_value("SELECT COUNT(*) FROM spend_logs WHERE api_key = '%s'"
                                         % token)) >= len(costs),
                 timeout=20, message="the ledger did not get every request\n"
                 + s.log_tail("accountd"))

        def pending():
            return {p: s.http("GET", p, "/health/readiness")[2]["unacked_events"]
                    for p in self.ports}
        wait_for(lambda: not any(pending().values()), 20,
                 message="events stay unacknowledged: %s" % pending())
        rows = s.sql("SELECT request_id, spend FROM spend_logs WHERE api_key = '%s'" % token)
        got = {r[0]: Decimal(r[1]) for r in rows}
        self.assertEqual(sorted(set(got) - set(costs)), [], "billed, but no answer had its id")
        self.assertEqual(sorted(set(costs) - set(got)), [], "answered, but not billed")
        self.assertEqual(got, costs)

    # -- tests (numbered: the last stops a proxyd)

    def test_1_streams_arrive_event_by_event(self):
        k = self.new_key()
        costs = {}
        body = {"model": "llama3", "stream": True, "stream_options": {"include_usage": True},
                "messages": [{"role": "user", "content": "x"}],
                "mock_usage": {"prompt_tokens": 30, "completion_tokens": 40},
                "mock_content": "one two three four five", "mock_chunk_delay_ms": 50}
        # the same stream straight from proxyd
        st, h, direct, _ = self.stream(self.ports[0], body, k["key"])
        self.assertEqual(st, 200)
        costs[h["x-litellm-call-id"]] = expected_cost(30, 40)
        # event by event: the upstream sends two words and then nothing until the client
        # leaves, so the two arrive only if nothing holds events back (no wall-clock bound;
        # another key: the cut streams are billed for what they sent)
        cut = self.new_key()["key"]
        self.assertEqual(self.stalled_stream(self.ports[0], cut, 2), ["one ", "two "])
        for lb in self.balancers:
            self.assertEqual(self.stalled_stream(lb.port, cut, 2, getattr(lb, "cut_streams", None)),
                             ["one ", "two "], lb.name)
            st, h, events, times = self.stream(lb.port, body, k["key"])
            self.assertEqual(st, 200, (lb.name, events))
            self.assertTrue(h["content-type"].startswith("text/event-stream"), h)
            self.assertEqual(events[-1], "data: [DONE]", lb.name)
            self.assertEqual(len(events), len(direct), (lb.name, events, direct))
            print("\n  %s: first event after %.3f s, last after %.3f s (%d events)"
                  % (lb.name, times[0], times[-1], len(events)))  # for the eye, not checked
            usage = [json.loads(e[6:], parse_float=Decimal) for e in events
                     if e.startswith("data: {") and '"usage":{' in e]
            self.assertEqual(len(usage), 1, events)
            self.assertEqual(Decimal(str(usage[0]["usage"]["cost"])), expected_cost(30, 40))
            costs[h["x-litellm-call-id"]] = expected_cost(30, 40)
        self.assert_ledger(k["token"], costs)

    def test_2_requests_spread_and_cost_passes_through(self):
        k = self.new_key()
        costs = {}
        before = {name: int(row["hrsp_2xx"]) for name, row in self.haproxy.stats().items()
                  if name.startswith("proxyd")}
        nginx_before = len(self.nginx.upstreams())
        for lb in self.balancers:
            for i in range(12):
                st, h, body = self.chat(lb.port, k["key"], 10 + i, 20)
                self.assertEqual(st, 200, (lb.name, body))
                self.assertEqual(Decimal(h["x-litellm-response-cost"]), expected_cost(10 + i, 20))
                self.assertNotIn(h["x-litellm-call-id"], costs)
                costs[h["x-litellm-call-id"]] = expected_cost(10 + i, 20)
        went = self.nginx.upstreams()[nginx_before:]
        self.assertEqual(len(went), 12, went)
        by_port = {p: sum(1 for a in went if a == "127.0.0.1:%d" % p) for p in self.ports}
        after = {name: int(row["hrsp_2xx"]) for name, row in self.haproxy.stats().items()
                 if name.startswith("proxyd")}
        by_server = {name: after[name] - before[name] for name in after}
        print("\n  nginx: %s; haproxy: %s" % (by_port, by_server))
        for n in list(by_port.values()) + list(by_server.values()):
            self.assertGreaterEqual(n, 3, (by_port, by_server))  # both proxyd get a share
        self.assertEqual(sum(by_server.values()), 12, by_server)
        self.assertEqual(sum(by_port.values()), 12, by_port)
        self.assert_ledger(k["token"], costs)

    def test_3_stopped_or_unready_proxyd_is_taken_out(self):
        s = self.stack
        k = self.new_key()
        costs = {}
        s.stop_one("proxyd-2")  # SIGTERM: it exits; its port refuses connections

        def all_answered(lb, n=8):
            for i in range(n):
                st, h, body = self.chat(lb.port, k["key"], 5, 5 + i)
                self.assertEqual(st, 200, (lb.name, body))
                costs[h["x-litellm-call-id"]] = expected_cost(5, 5 + i)

        for lb in self.balancers:
            all_answered(lb)
        wait_for(lambda: self.haproxy.stats()["proxyd2"]["status"] == "DOWN", 15,
                 message="HAProxy did not mark the stopped proxyd down: %s"
                 % self.haproxy.stats()["proxyd2"])

        # Up again on the same port, but unready: its accountd endpoint leads nowhere.
        s.add_proxyd("proxyd-3", port=self.ports[1], tollgate={
            "accountd": {"events": "tcp://127.0.0.1:%d" % free_port()},
            "proxyd": {"readiness_grace_ms": 200}})
        self.assertEqual(s.http("GET", self.ports[1], "/health/liveliness")[0], 200)
        wait_for(lambda: s.http("GET", self.ports[1], "/health/readiness")[0] == 503, 10,
                 message="proxyd-3 never became unready")

        def checked_unready():
            row = self.haproxy.stats()["proxyd2"]
            return row["check_status"] == "L7STS" and row["check_code"] == "503" and row
        row = wait_for(checked_unready, 15, message="HAProxy's check did not see the 503: %s"
                       % self.haproxy.stats()["proxyd2"])
        self.assertEqual(row["status"], "DOWN", row)
        sent_before = int(row["stot"])
        all_answered(self.haproxy)
        row = self.haproxy.stats()["proxyd2"]
        self.assertEqual(row["status"], "DOWN", row)
        self.assertEqual(int(row["stot"]), sent_before, row)  # nothing went to the unready one
        self.assert_ledger(k["token"], costs)


if __name__ == "__main__":
    unittest.main()
