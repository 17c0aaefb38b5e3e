"""test_upstream_tls.py - HTTPS upstreams: proxyd checks the upstream's certificate.

The test makes its own PKI with the openssl CLI (a test CA, a second CA
nobody trusts, a server certificate for 127.0.0.1 from each, and one from the
test CA for another host name) and puts a small TLS-terminating relay (on a
thread of the test) in front of the fake upstream for each certificate; the
models' api_base are https://127.0.0.1:PORT/v1. The relay records every
handshake and why it failed, so a refusal is seen to come from proxyd's
certificate check (the client's alert), not from a dead port.

- proxyd with the system's CA bundle (the default) refuses the test CA's
  certificate: 502, nothing reaches the upstream, nothing is spent.
- proxyd told to trust the test CA (litellm_settings.ssl_verify: the CA's
  path, as LiteLLM; or SSL_CERT_FILE in its environment) relays through the
  test CA's certificate (200, priced, in the ledger), and still refuses the
  other CA's certificate and the certificate for another host name.

Run from the repo root:  python3 -m unittest -v tests/e2e/test_upstream_tls.py
"""

import os
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import unittest
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import MASTER_KEY, expected_cost, wait_for  # noqa: E402

LEDGER_TIMEOUT = 10.0


# --------------------------------------------------------------------- PKI

def openssl(*args, cwd):
    p = subprocess.run(["openssl"] + list(args), cwd=cwd, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    if p.returncode != 0:
        raise AssertionError("openssl %s failed:\n%s" % (" ".join(args),
                                                         p.stdout.decode(errors="replace")))


def make_ca(d, name):
    """A self-signed CA: (cert path, key path). Valid from now for 2 days (the
    certificates are made by each run, so no date can expire under the suite)."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key",
            "-out", name + ".pem", "-days", "2", "-subj", "/CN=Tollgate test " + name,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    return d / (name + ".pem"), d / (name + ".key")


def make_server_cert(d, name, ca, san):
    """A server certificate for `san` (e.g. "IP:127.0.0.1") signed by ca."""
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key",
            "-out", name + ".csr", "-subj", "/CN=" + name, cwd=d)
    (d / (name + ".ext")).write_text("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                                     "extendedKeyUsage=serverAuth\n" % san)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", str(ca[0]), "-CAkey", str(ca[1]),
            "-CAcreateserial", "-out", name + ".pem", "-days", "2",
            "-extfile", name + ".ext", cwd=d)
    return d / (name + ".pem"), d / (name + ".key")


# ------------------------------------------------------------------- relay

class TlsRelay:
    """Terminates TLS with one certificate on 127.0.0.1:port and pipes the bytes
    to the fake upstream (set target_port before the first connection). Counts
    completed handshakes and keeps the reason of each failed one."""

    def __init__(self, cert):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(cert[0]), str(cert[1]))
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.target_port = None
        self.lock = threading.Lock()
        self.handshakes = 0
        self.failures = []
        self.closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def stats(self):
        with self.lock:
            return self.handshakes, list(self.failures)

    def stop(self):
        self.closing = True
        self.sock.close()

    def _accept(self):
        while not self.closing:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(30)
        try:
            tls = self.ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError) as e:
            with self.lock:
                self.failures.append(str(e))
            conn.close()
            return
        with self.lock:
            self.handshakes += 1
        try:
            up = socket.create_connection(("127.0.0.1", self.target_port), timeout=30)
        except OSError:
            tls.close()
            return
        try:
            self._pipe(tls, up)
        except (ssl.SSLError, OSError):
            pass
        finally:
            up.close()
            tls.close()

    @staticmethod
    def _pipe(tls, up):
        while True:
            if tls.pending() == 0:
                ready, _, _ = select.select([tls, up], [], [], 60)
                if not ready:
                    return
            else:
                ready = [tls]
            if tls in ready:
                data = tls.recv(65536)
                if not data:
                    return
                up.sendall(data)
            if up in ready:
                data = up.recv(65536)
                if not data:
                    return
                tls.sendall(data)


# ------------------------------------------------------------------- tests

class TlsFixture:
    """The PKI and one relay per certificate, made before the stack (their ports
    go into its config) and removed after it."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="tg-tls-", dir="/tmp"))
        self.ca = make_ca(self.dir, "ca")
        other_ca = make_ca(self.dir, "other-ca")
        self.relays = {
            "tls-ok": TlsRelay(make_server_cert(self.dir, "ok", self.ca, "IP:127.0.0.1")),
            "tls-other-ca": TlsRelay(make_server_cert(self.dir, "other", other_ca,
                                                      "IP:127.0.0.1")),
            "tls-wrong-host": TlsRelay(make_server_cert(self.dir, "wrong-host", self.ca,
                                                        "DNS:upstream.invalid")),
        }

    def models(self, stack):
        for relay in self.relays.values():
            relay.target_port = stack.upstream_port
        return [{"model_name": name, "litellm_params": {
            "model": "groq/llama-3.1-8b-instant",
            "api_base": "https://127.0.0.1:%d/v1" % relay.port,
            "api_key": "os.environ/GROQ_API_KEY"}} for name, relay in self.relays.items()]

    def close(self):
        for relay in self.relays.values():
            relay.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class TlsTestCase(harness.StackTestCase):
    """Starts the fixture, then the stack (stack_for builds it)."""

    @classmethod
    def stack_for(cls, tls):
        return harness.Stack(extra_models=tls.models)

    @classmethod
    def setUpClass(cls):
        cls.tls = TlsFixture()
        cls.addClassCleanup(cls.tls.close)
        cls.stack = cls.stack_for(cls.tls)
        cls.addClassCleanup(cls.stack.stop)
        cls.stack.start()

    def call(self, model):
        return self.stack.chat(MASTER_KEY, model=model, prompt_tokens=11, completion_tokens=7)

    def ledger_row(self, rid):
        rows = wait_for(lambda: self.stack.sql(
            "SELECT spend, http_status, prompt_tokens, completion_tokens FROM spend_logs"
            " WHERE request_id = '%s'" % rid), LEDGER_TIMEOUT,
            message="no ledger row for %s" % rid)
        return rows[0]

    def assert_relayed(self, model):
        relay = self.tls.relays[model]
        seen = len(self.stack.upstream_requests())
        _, failures = relay.stats()
        st, h, b = self.call(model)
        self.assertEqual(st, 200, b)
        handshakes, failures_after = relay.stats()
        self.assertGreaterEqual(handshakes, 1)  # through the relay (a pooled connection is reused)
        self.assertEqual(failures_after, failures)
        self.assertEqual(len(self.stack.upstream_requests()), seen + 1)
        self.assertEqual(Decimal(h["x-litellm-response-cost"]), expected_cost(11, 7))
        spend, status, pt, ct = self.ledger_row(h["x-litellm-call-id"])
        self.assertEqual((Decimal(spend), status, pt, ct), (expected_cost(11, 7), "200", "11", "7"))

    def assert_refused(self, model, failure=None, words=(), handshake=False):
        """A 502 from proxyd, nothing relayed to the upstream, nothing spent;
        failure: text the relay's failed handshake must show (the client's alert);
        handshake: the TLS handshake itself completed (the chain was accepted)."""
        relay = self.tls.relays[model]
        seen = len(self.stack.upstream_requests())
        handshakes, failures = relay.stats()
        refused = self.ledger_rows(model, 502)
        st, h, b = self.call(model)
        self.assertEqual(st, 502, b)
        err = self.assertErrorShape(b, 502, type_="upstream_error")
        for w in words:
            self.assertIn(w, err["message"])
        self.assertEqual(len(self.stack.upstream_requests()), seen,
                         "the request reached the upstream")
        if handshake:  # the relay's thread may note it just after proxyd answered
            wait_for(lambda: relay.stats()[0] > handshakes, 10,
                     message="no completed handshake at the relay: %r" % (relay.stats(),))
        if failure is not None:
            wait_for(lambda: any(failure in f for f in relay.stats()[1][len(failures):]), 10,
                     message="no failed handshake showing %r at the relay: %r"
                     % (failure, relay.stats()[1][len(failures):]))
        # an error answer carries no call id: the group's ledger rows tell instead
        wait_for(lambda: self.ledger_rows(model, 502) == refused + 1, LEDGER_TIMEOUT,
                 message="the refused call is not in the ledger (status 502)")
        self.assertEqual(Decimal(self.stack.sql_value(
            "SELECT COALESCE(SUM(spend), 0) FROM spend_logs WHERE model_group = '%s'" % model)), 0)
        return err

    def ledger_rows(self, model, status):
        return int(self.stack.sql_value("SELECT COUNT(*) FROM spend_logs WHERE model_group = '%s'"
                                        " AND http_status = %d" % (model, status)))


class UntrustedCaTest(TlsTestCase):
    """proxyd with the system's CA bundle: the test CA is not in it."""

    def test_refuses_a_certificate_from_an_unknown_ca(self):
        self.assert_refused("tls-ok", failure="UNKNOWN_CA", words=("certificate",))
        self.assert_refused("tls-other-ca", failure="UNKNOWN_CA", words=("certificate",))


class TrustedCaTest(TlsTestCase):
    """proxyd trusts the test CA through litellm_settings.ssl_verify (its path)."""

    @classmethod
    def stack_for(cls, tls):
        return harness.Stack(extra_models=tls.models,
                             extra_config={"litellm_settings": {"ssl_verify": str(tls.ca[0])}})

    def test_relays_through_a_trusted_certificate(self):
        self.assert_relayed("tls-ok")
        self.assert_relayed("tls-ok")

    def test_refuses_a_certificate_from_another_ca(self):
        self.assert_refused("tls-other-ca", failure="UNKNOWN_CA", words=("certificate",))

    def test_refuses_a_certificate_for_another_host(self):
        # the chain is good (the handshake completes); the name is not 127.0.0.1
        self.assert_refused("tls-wrong-host", words=("host name", "127.0.0.1"), handshake=True)


class CaFromEnvironmentStack(harness.Stack):
    """A Stack whose daemons get SSL_CERT_FILE (as LiteLLM reads it)."""

    def __init__(self, ca_file, **kw):
        super().__init__(**kw)
        self.ca_file = ca_file

    def env(self, extra=None, unset=()):
        return super().env(dict({"SSL_CERT_FILE": self.ca_file}, **(extra or {})), unset)


class CaFromEnvironmentTest(TlsTestCase):
    """proxyd trusts the test CA through SSL_CERT_FILE."""

    @classmethod
    def stack_for(cls, tls):
        return CaFromEnvironmentStack(str(tls.ca[0]), extra_models=tls.models)

    def test_trusts_the_ca_of_ssl_cert_file(self):
        self.assert_relayed("tls-ok")
        self.assert_refused("tls-other-ca", failure="UNKNOWN_CA", words=("certificate",))
        self.assert_refused("tls-wrong-host", words=("host name", "127.0.0.1"), handshake=True)


if __name__ == "__main__":
    unittest.main()
