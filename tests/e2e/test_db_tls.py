"""test_db_tls.py - the daemons reach MariaDB over TLS when the database URL asks for it
(general_settings.database_url and tollgate.reportd.read_database_url: ssl, sslmode,
sslrootcert; libtollgate/config_db_tls.c and db.c).

The test makes a CA and a server certificate with openssl and runs the stack's MariaDB
with TLS, --require-secure-transport (a TCP connection without TLS is refused) and the
performance schema (to read each session's Ssl_cipher). local-mariadb.sh starts
`mariadbd` found on PATH: a wrapper of that name, first on PATH while the server starts,
adds those options. Then:
- every daemon runs with sslmode=verify-full against the CA: a request is served and
  priced (accountd writes the ledger), reportd answers from the primary and from the
  read_database_url; each of the tollgate user's sessions has a TLS cipher;
- a URL without TLS is refused by the server (so the above is not TLS by chance);
- verify-ca against another CA fails at start, with a clear error naming the mode and
  the CA file.

Run from the repo root:  python3 tests/e2e/run.py tests/e2e/test_db_tls.py
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import MASTER_KEY, wait_for  # noqa: E402

LEDGER_TIMEOUT = 10.0
CERTS = None  # Path of the certificates, made in setUpClass


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True,
                   timeout=60)


def make_certs(d):
    """ca.pem signs server.pem (127.0.0.1 and localhost); other-ca.pem signs nothing."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for name in ("ca", "other-ca"):
        openssl("req", "-x509", *ec, "-keyout", name + ".key", "-out", name + ".pem",
                "-days", "2", "-subj", "/CN=tollgate test %s" % name, cwd=d)
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext", cwd=d)


def mariadbd_wrapper(d):
    """A `mariadbd` that runs the real one with TLS options (after --no-defaults)."""
    real = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
    path = d / "bin" / "mariadbd"
    path.parent.mkdir()
    path.write_text("#!/bin/sh\nexec %s \"$@\" --ssl-ca=%s --ssl-cert=%s --ssl-key=%s"
                    " --require-secure-transport=ON --performance-schema=ON\n"
                    % (real, d / "ca.pem", d / "server.pem", d / "server.key"))
    path.chmod(0o755)
    return path.parent


class TlsStack(harness.Stack):
    """A Stack whose MariaDB speaks TLS and whose URLs ask for it (tls: the query)."""

    def __init__(self, tls, **kw):
        super().__init__(**kw)
        self.tls = tls

    def _run_mariadb_start(self):
        saved = os.environ["PATH"]
        os.environ["PATH"] = "%s:%s" % (CERTS / "bin", saved)
        try:
            return super()._run_mariadb_start()
        finally:
            os.environ["PATH"] = saved

    def make_config(self, database=None, new_ports=False):
        cfg = super().make_config(database, new_ports)
        url = cfg["general_settings"]["database_url"]
        cfg["general_settings"]["database_url"] = url + "?" + self.tls
        cfg["tollgate"]["reportd"]["read_database_url"] = url + "?" + self.tls
        return cfg


class DbTlsTest(harness.StackTestCase):

    @classmethod
    def setUpClass(cls):
        global CERTS
        if shutil.which("openssl") is None:
            raise unittest.SkipTest("openssl not installed")
        CERTS = Path(tempfile.mkdtemp(prefix="tg-tls-", dir="/tmp"))
        cls.addClassCleanup(shutil.rmtree, CERTS, True)
        make_certs(CERTS)
        mariadbd_wrapper(CERTS)
        super().setUpClass()

    @classmethod
    def _start_class_stack(cls):
        cls.stack = TlsStack("sslmode=verify-full&sslrootcert=%s" % (CERTS / "ca.pem"))
        cls.addClassCleanup(cls.stack.stop)
        cls.stack.start()

    def test_daemons_use_tls(self):
        s = self.stack
        st, h, b = s.chat(MASTER_KEY)
        self.assertEqual(st, 200, b)
        rid = h["x-litellm-call-id"]
        wait_for(lambda: s.sql("SELECT 1 FROM spend_logs WHERE request_id = '%s'" % rid),
                 LEDGER_TIMEOUT, message="accountd wrote no ledger row over TLS")
        st, _, b = s.report("GET", "/key/list", key=MASTER_KEY)  # the primary
        self.assertEqual(st, 200, b)
        st, _, b = s.report("GET", "/global/spend/report?start_date=%s&end_date=%s"
                            % (harness.utc_today(), harness.utc_today()), key=MASTER_KEY)
        self.assertEqual(st, 200, b)  # the read_database_url
        rows = s.sql("SELECT t.PROCESSLIST_ID, s.VARIABLE_VALUE"
                     " FROM performance_schema.threads t"
                     " JOIN performance_schema.status_by_thread s USING (THREAD_ID)"
                     " WHERE t.PROCESSLIST_USER = 'tollgate' AND s.VARIABLE_NAME = 'Ssl_cipher'")
        # accountd's ledger, proxyd's keystore and reportd's workers at least
        self.assertGreaterEqual(len(rows), 3, rows)
        for pid, cipher in rows:
            self.assertTrue(cipher, "session %s of tollgate has no TLS cipher" % pid)
        self.assertNotEqual(s.sql_value("SELECT VARIABLE_VALUE FROM information_schema."
                                        "GLOBAL_STATUS WHERE VARIABLE_NAME = 'SSL_ACCEPTS'"), "0")

    def daemon_once(self, name, query, args=()):
        cfg = self.stack.make_config()
        url = cfg["general_settings"]["database_url"].split("?")[0]
        cfg["general_settings"]["database_url"] = url + query
        del cfg["tollgate"]["reportd"]["read_database_url"]
        path = self.stack.write_config("tls-%s.yaml" % name, cfg)
        return self.stack.run_daemon_once(name, path, args=args, timeout=30)

    def test_plain_connection_refused_by_the_server(self):
        # MariaDB words require_secure_transport's refusal as "Access denied"
        rc, err = self.daemon_once("accountd", "", args=["--migrate"])
        self.assertEqual(rc, 1, err)
        self.assertIn("Access denied", err)
        # ssl=true (sslmode=require: encrypted, nothing verified) gets in
        rc, err = self.daemon_once("accountd", "?ssl=true", args=["--migrate"])
        self.assertEqual(rc, 0, err)

    def test_wrong_ca_fails_at_start(self):
        other = CERTS / "other-ca.pem"
        for name, args in (("accountd", ["--migrate"]), ("reportd", [])):
            rc, err = self.daemon_once(name, "?sslmode=verify-ca&sslrootcert=%s" % other, args)
            self.assertEqual(rc, 1, err)  # a start-up failure, not a crash or a leak (ASan: 23)
            self.assertIn("over TLS (sslmode=verify-ca, sslrootcert=%s)" % other, err)
            self.assertIn("certificate", err.lower())
        # the right CA, verify-ca: the same start succeeds
        rc, err = self.daemon_once("accountd", "?sslmode=verify-ca&sslrootcert=%s"
                                   % (CERTS / "ca.pem"), ["--migrate"])
        self.assertEqual(rc, 0, err)


if __name__ == "__main__":
    unittest.main()
