"""test_zmq_auth.py - the ZeroMQ wire between proxyd and accountd, tried as an attacker would.

The stack runs with CURVE (harness.curve_settings: accountd's server key, proxyd's client key).
- A peer with an unknown client key, a plain (no CURVE) peer, and a peer with the right client
  key that trusts the wrong server key each send a well-formed EventBatch: nothing is acked,
  nothing reaches the ledger or rejected_events, and accountd counts the refused peers.
- SUB sockets on the updates endpoint: the unknown key and the plain peer receive nothing
  while a peer with proxyd's key receives the committed spend of the same requests.
- An impostor accountd bound on the events endpoint (its own CURVE key, or plain) while the
  real one is down receives nothing from proxyd, so it cannot ack (and make proxyd drop) any
  event; the real accountd, back, commits every request exactly once.
- With a valid key, events whose values cannot be true (a negative custom price, negative
  tokens, a request id of the wrong form, a start in 1999) go to rejected_events with the
  reason, and move no spend.
- A proxyd reaching accountd by host name sees it come back after a restart (libzmq then
  reports the resolved address), and a proxyd refused by accountd's ZAP handler is served
  once accountd lists its key, without a restart of its own.
- Key files: a world-readable secret key, a missing one, and --curve-keygen over an existing
  pair are refused with a message naming the file.
A second class runs `curve: off` on loopback (requests still reach the ledger) and shows the
loader refusing `curve: off` with an endpoint off this host.
"""

import os
import subprocess
import sys
import tempfile
import time
import unittest
import uuid
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import invariants  # noqa: E402
from harness import MASTER_KEY, wait_for  # noqa: E402

try:
    import zmq
except ImportError:  # python3-zmq, seen from a python3 outside the system's
    sys.path.append("/usr/lib/python3/dist-packages")
    import zmq

MODEL = "groq/llama-3.1-8b-instant"
QUIET_S = 3.0  # how long a refused peer is watched for anything at all


def keygen(directory, name):
    """A new pair by accountd --curve-keygen: (secret key file, public key)."""
    prefix = os.path.join(directory, name)
    p = subprocess.run([str(harness.bin_dir() / "accountd"), "--curve-keygen", prefix],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return prefix + ".key", p.stdout.strip()


def secret_of(key_file):
    with open(key_file) as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")][0].encode()


def curve_client(sock, key_file, server_public):
    secret = secret_of(key_file)
    sock.curve_secretkey = secret
    sock.curve_publickey = zmq.curve_public(secret)
    sock.curve_serverkey = server_public.encode()


def metric(stack, name):
    _, _, text = stack.http("GET", stack.metrics_ports[0], "/metrics")
    text = text if isinstance(text, str) else text.decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


class CurveTest(harness.StackTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="tollgate-rogue-")
        cls.rogue_key, cls.rogue_pub = keygen(cls.tmp, "rogue")
        cls.ctx = zmq.Context()

    @classmethod
    def tearDownClass(cls):
        cls.ctx.destroy(linger=0)
        super().tearDownClass()

    def new_key(self, alias):
        st, _, body = self.stack.report("POST", "/key/generate", {"key_alias": alias},
                                        key=MASTER_KEY)
        self.assertEqual(st, 200, body)
        return body["key"], body["token"]

    def send_events(self, rid, token, *extra, env=None, prompt=100, start_ms=None):
        args = [str(harness.bin_dir() / "send-events"),
                "tcp://127.0.0.1:%d" % self.stack.events_port, rid, token, MODEL, str(prompt),
                "50", "1"] + ([str(start_ms)] if start_ms is not None else []) + list(extra)
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env=dict(os.environ, **(env or {})))

    def counts(self):
        return (int(self.stack.sql_value("SELECT COUNT(*) FROM spend_logs")),
                int(self.stack.sql_value("SELECT COUNT(*) FROM rejected_events")))

    def test_forged_peers_get_no_ack_and_move_nothing(self):
        _, token = self.new_key("victim")
        before, refused0 = self.counts(), metric(self.stack, "tollgate_accountd_zmq_peers_refused_total")
        peers = {  # each sends a well-formed event billing the victim's key
            "unknown client key": {"TG_CURVE_SECRET_FILE": self.rogue_key},
            "plain, no CURVE": {"TG_CURVE_SECRET_FILE": ""},
            "wrong server key": {"TG_CURVE_SERVER_KEY": self.rogue_pub},
        }
        procs = {name: self.send_events("forged-" + uuid.uuid4().hex, token, env=env)
                 for name, env in peers.items()}
        for name, p in procs.items():
            out = p.communicate(timeout=60)[0].decode()
            self.assertNotEqual(p.returncode, 0, "%s: %s" % (name, out))
            self.assertIn("acked 0/1", out, name)
        self.assertEqual(self.counts(), before, "a forged peer moved the ledger")
        self.assertEqual(Decimal(self.stack.sql_value(
            "SELECT spend FROM api_keys WHERE token = '%s'" % token)), 0)
        # accountd's ZAP handler refused the unknown key (a plain peer fails the handshake
        # before ZAP, the third never trusted the server)
        self.assertGreaterEqual(
            metric(self.stack, "tollgate_accountd_zmq_peers_refused_total") - refused0, 1)
        self.assertIn("ZeroMQ peer refused", self.stack.daemon_log("accountd").read_text())
        # the same event with proxyd's key is acked and counted: the test can see success
        rid = "real-" + uuid.uuid4().hex
        p = self.send_events(rid, token)
        out = p.communicate(timeout=60)[0].decode()
        self.assertEqual(p.returncode, 0, out)
        self.assertEqual(self.stack.sql_value(
            "SELECT COUNT(*) FROM spend_logs WHERE request_id = '%s'" % rid), "1")

    def test_spend_updates_only_reach_known_keys(self):
        key, _ = self.new_key("reader")
        endpoint = "tcp://127.0.0.1:%d" % self.stack.updates_port
        subs = {}
        for name, setup in (("unknown", lambda s: curve_client(s, self.rogue_key, harness.curve_keys()["accountd"])),
                            ("plain", lambda s: None),
                            ("proxyd's key", lambda s: curve_client(
                                s, os.path.join(harness.curve_keys()["dir"], "proxyd.key"),
                                harness.curve_keys()["accountd"]))):
            s = self.ctx.socket(zmq.SUB)
            s.linger = 0
            setup(s)
            s.setsockopt(zmq.SUBSCRIBE, b"")
            s.connect(endpoint)
            subs[name] = s
        time.sleep(0.5)  # handshakes (and refusals) done before anything is published
        got = {name: 0 for name in subs}
        deadline = time.time() + 15
        while time.time() < deadline and got["proxyd's key"] == 0:
            st, _, body = self.stack.chat(key)
            self.assertEqual(st, 200, body)
            poller = zmq.Poller()
            for s in subs.values():
                poller.register(s, zmq.POLLIN)
            for s, _ in poller.poll(1000):
                name = next(n for n, x in subs.items() if x is s)
                while s.poll(0):
                    s.recv_multipart()
                    got[name] += 1
        end = time.time() + QUIET_S  # keep watching the refused ones a while longer
        while time.time() < end:
            for name in ("unknown", "plain"):
                while subs[name].poll(100):
                    subs[name].recv_multipart()
                    got[name] += 1
        for s in subs.values():
            s.close()
        self.assertGreater(got["proxyd's key"], 0, "the known key saw no update: %s" % got)
        self.assertEqual(got["unknown"], 0, got)
        self.assertEqual(got["plain"], 0, got)

    def impostor(self, curve):
        """A ROUTER bound on accountd's events endpoint: a CURVE server with its own key
        (accepting any client: no ZAP handler), or plain."""
        s = self.ctx.socket(zmq.ROUTER)
        s.linger = 0
        if curve:
            secret = secret_of(self.rogue_key)
            s.curve_server = True
            s.curve_secretkey = secret
            s.curve_publickey = zmq.curve_public(secret)
        endpoint = "tcp://127.0.0.1:%d" % self.stack.events_port

        def bound():  # the previous socket's close releases the port asynchronously
            try:
                s.bind(endpoint)
                return True
            except zmq.ZMQError:
                return False

        wait_for(bound, 10, message="cannot bind the impostor on " + endpoint)
        return s

    def test_impostor_accountd_gets_no_event(self):
        key, token = self.new_key("impostor")
        self.stack.stop_one("accountd")
        rids = []
        try:
            for curve in (True, False):
                s = self.impostor(curve)
                for _ in range(3):
                    st, headers, body = self.stack.chat(key)
                    self.assertEqual(st, 200, body)  # spooled: accountd is away
                    rids.append(headers["x-litellm-call-id"])
                self.assertEqual(s.poll(int(QUIET_S * 1000)), 0,
                                 "proxyd sent events to an impostor (curve=%s)" % curve)
                s.close()
        finally:
            self.stack.restart("accountd")
        wait_for(lambda: int(self.stack.sql_value(
            "SELECT COUNT(*) FROM spend_logs WHERE request_id IN (%s)"
            % ",".join("'%s'" % r for r in rids))) == len(rids), 30,
            message="the spooled events did not reach the real accountd")
        spend = Decimal(self.stack.sql_value("SELECT spend FROM api_keys WHERE token = '%s'" % token))
        self.assertGreater(spend, 0)
        self.assertEqual(spend, Decimal(self.stack.sql_value(
            "SELECT SUM(spend) FROM spend_logs WHERE api_key = '%s'" % token)))
        invariants.check(self.stack)

    def proxyd_metric(self, port, name):
        st, _, text = self.stack.http("GET", port, "/metrics")
        text = text if isinstance(text, str) else text.decode()
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def restart_accountd(self, change=None):
        """Stops accountd, applies change to the stack's config (rewritten), starts it again."""
        self.stack.stop_one("accountd")
        if change is not None:
            change(self.stack.config)
            self.stack.config_path.write_text(harness.dump_yaml(self.stack.config))
        self.stack.restart("accountd")

    def test_host_name_endpoints_come_back_after_a_restart(self):
        # libzmq reports a reconnected endpoint by its resolved address: the
        # proxyd must still see accountd come back (readiness, sends)
        acc = self.stack.config["tollgate"]["accountd"]
        named = {"accountd": {"events": "tcp://localhost:%d" % self.stack.events_port,
                              "updates": "tcp://localhost:%d" % self.stack.updates_port,
                              "metrics": acc["metrics"]}}
        port = self.stack.add_proxyd("proxyd-named", tollgate=named)
        key, _ = self.new_key("named")
        wait_for(lambda: self.proxyd_metric(port, "tollgate_proxyd_accountd_connected") == 1, 10,
                 message="proxyd-named never connected")
        self.restart_accountd()
        wait_for(lambda: self.proxyd_metric(port, "tollgate_proxyd_accountd_connected") == 1, 15,
                 message="proxyd-named did not see accountd come back by its resolved address")
        st, headers, body = self.stack.http("POST", port, "/v1/chat/completions",
                                            {"model": "llama3", "messages": [
                                                {"role": "user", "content": "hi"}]}, key=key)
        self.assertEqual(st, 200, body)
        rid = headers["x-litellm-call-id"]
        wait_for(lambda: self.stack.sql_value(
            "SELECT COUNT(*) FROM spend_logs WHERE request_id = '%s'" % rid) == "1", 15,
            message="proxyd-named's event did not reach the ledger")

    def test_a_refused_proxyd_is_served_once_listed(self):
        # a proxyd whose key accountd does not list (yet) is refused by ZAP; libzmq
        # then gives the endpoint up for good: zmq_link.c connects again, so once
        # accountd lists the key, the spooled events arrive without a proxyd restart
        new_key_file, new_pub = keygen(self.tmp, "late-proxyd")
        port = self.stack.add_proxyd("proxyd-late", tollgate={
            "proxyd": {"curve_secret_key_file": new_key_file}})
        key, token = self.new_key("late")
        st, headers, body = self.stack.http("POST", port, "/v1/chat/completions",
                                            {"model": "llama3", "messages": [
                                                {"role": "user", "content": "hi"}]}, key=key)
        self.assertEqual(st, 200, body)
        rid = headers["x-litellm-call-id"]
        time.sleep(QUIET_S)
        self.assertEqual(self.stack.sql_value(
            "SELECT COUNT(*) FROM spend_logs WHERE request_id = '%s'" % rid), "0")
        self.assertEqual(self.proxyd_metric(port, "tollgate_proxyd_accountd_connected"), 0)
        self.assertIn("accountd refused this proxyd's key",
                      self.stack.daemon_log("proxyd-late").read_text())
        self.restart_accountd(lambda cfg: cfg["tollgate"]["accountd"][
            "curve_client_public_keys"].append(new_pub))
        wait_for(lambda: self.stack.sql_value(
            "SELECT COUNT(*) FROM spend_logs WHERE request_id = '%s'" % rid) == "1", 20,
            message="the listed proxyd's spooled event never arrived")

    def test_untrue_event_values_are_rejected(self):
        _, token = self.new_key("untrue")
        cases = {  # request id -> (args, reason the row must carry)
            "neg-price-" + uuid.uuid4().hex: (dict(extra=["input_cost_per_token=-0.001"]),
                                              "custom price per token is negative"),
            "neg-tokens-" + uuid.uuid4().hex: (dict(prompt=-1000), "prompt_tokens is negative"),
            "bad id " + uuid.uuid4().hex: ({}, "request_id has characters"),
            "old-" + uuid.uuid4().hex: (dict(start_ms=915148800000), "start_time is before 2000"),
        }
        for rid, (kw, _) in cases.items():
            p = self.send_events(rid, token, *kw.get("extra", []), prompt=kw.get("prompt", 100),
                                 start_ms=kw.get("start_ms"))
            out = p.communicate(timeout=60)[0].decode()
            self.assertEqual(p.returncode, 0, out)  # acked: kept in rejected_events, not lost
        for rid, (_, reason) in cases.items():
            err = self.stack.sql_value("SELECT error FROM rejected_events WHERE request_id = '%s'"
                                       % rid)
            self.assertIsNotNone(err, rid)
            self.assertIn(reason, err)
            self.assertEqual(self.stack.sql_value(
                "SELECT COUNT(*) FROM spend_logs WHERE request_id = '%s'" % rid), "0")
        self.assertEqual(Decimal(self.stack.sql_value(
            "SELECT spend FROM api_keys WHERE token = '%s'" % token)), 0)

    def test_key_files_are_checked(self):
        cfg = self.stack.make_config(new_ports=True)
        loose = os.path.join(self.tmp, "loose.key")
        real_key = os.path.join(harness.curve_keys()["dir"], "accountd.key")
        with open(real_key) as f:
            text = f.read()
        with open(loose, "w") as f:
            f.write(text)
        os.chmod(loose, 0o644)
        cfg["tollgate"]["accountd"]["curve_secret_key_file"] = loose
        rc, err = self.stack.run_daemon_once("accountd", self.stack.write_config("loose.yaml", cfg))
        self.assertNotEqual(rc, 0)
        self.assertIn(loose + ": a secret key must be readable by its owner only (mode 0644", err)
        missing = os.path.join(self.tmp, "missing.key")
        cfg["tollgate"]["accountd"]["curve_secret_key_file"] = real_key
        cfg["tollgate"]["proxyd"]["curve_secret_key_file"] = missing
        rc, err = self.stack.run_daemon_once("proxyd", self.stack.write_config("missing.yaml", cfg))
        self.assertNotEqual(rc, 0)
        self.assertIn(missing + ": No such file or directory", err)
        # a second keygen over the same prefix leaves the first pair alone
        before = open(self.rogue_key).read()
        p = subprocess.run([str(harness.bin_dir() / "accountd"), "--curve-keygen",
                            self.rogue_key[:-4]], capture_output=True, text=True, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("File exists", p.stderr)
        self.assertEqual(open(self.rogue_key).read(), before)
        self.assertEqual(os.stat(self.rogue_key).st_mode & 0o777, 0o600)


class CurveOffTest(harness.StackTestCase):
    """`curve: off`: plain ZeroMQ, loopback only."""
    stack_options = {"tollgate": {"curve": "off"}}

    def test_plain_on_loopback_works_and_remote_is_refused(self):
        st, _, body = self.stack.report("POST", "/key/generate", {}, key=MASTER_KEY)
        self.assertEqual(st, 200, body)
        st, headers, body = self.stack.chat(body["key"])
        self.assertEqual(st, 200, body)
        rid = headers["x-litellm-call-id"]
        wait_for(lambda: self.stack.sql_value(
            "SELECT COUNT(*) FROM spend_logs WHERE request_id = '%s'" % rid) == "1", 15,
            message="the request did not reach the ledger with curve: off")
        self.assertIn("tollgate.curve is off", self.stack.daemon_log("accountd").read_text())
        cfg = self.stack.make_config(new_ports=True)
        cfg["tollgate"]["accountd"]["events"] = "tcp://0.0.0.0:%d" % harness.free_port()
        rc, err = self.stack.run_daemon_once("accountd", self.stack.write_config("remote.yaml", cfg))
        self.assertNotEqual(rc, 0)
        self.assertIn("tollgate.curve: off is for a single host, but tcp://0.0.0.0:", err)


if __name__ == "__main__":
    unittest.main()
