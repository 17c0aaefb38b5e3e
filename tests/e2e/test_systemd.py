"""test_systemd.py - the daemons under systemd: the units in deploy/systemd pass
`systemd-analyze verify`, and each daemon tells a NOTIFY_SOCKET READY=1 once it serves,
pings the watchdog when WATCHDOG_USEC is set, and says STOPPING=1 when it stops.

Run from the repo root:  python3 -m unittest -v tests/e2e/test_systemd.py
"""

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

UNITS = ("tollgate-proxyd.service", "tollgate-reportd.service", "tollgate-accountd@.service")
DAEMONS = ("accountd", "reportd", "proxyd")
RELOADING = ("proxyd", "reportd", "accountd")  # the daemons that reload on SIGHUP


class UnitFilesTest(unittest.TestCase):

    @unittest.skipIf(shutil.which("systemd-analyze") is None, "systemd-analyze not installed")
    def test_units_verify(self):
        with tempfile.TemporaryDirectory(prefix="tg-units-") as tmp:
            paths = []
            for unit in UNITS:
                text = (harness.REPO / "deploy" / "systemd" / (unit + ".in")).read_text()
                text = text.replace("@TG_BINDIR@", str(harness.bin_dir()))
                text = text.replace("@TG_CONFDIR@", tmp)
                self.assertNotIn("@TG_", text, unit)
                path = Path(tmp) / unit.replace("@.service", "@1.service")
                if "@" in unit:  # a template is verified through an instance of it
                    (Path(tmp) / unit).write_text(text)
                path.write_text(text)
                paths.append(str(path))
            p = subprocess.run(["systemd-analyze", "verify", "--man=no"] + paths,
                               capture_output=True, text=True, cwd=tmp, timeout=60)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertEqual(p.stderr.strip(), "", p.stderr)
            for unit in paths:
                text = Path(unit).read_text()
                for line in ("Type=notify", "Restart=on-failure", "User=tollgate",
                             "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
                             "PrivateTmp=yes", "CapabilityBoundingSet=\n",
                             "SystemCallFilter=@system-service", "ConfigurationDirectory="):
                    self.assertIn(line, text, unit)
            self.assertIn("StateDirectory=tollgate/proxyd",
                          (Path(tmp) / "tollgate-proxyd.service").read_text())


class NotifyTest(unittest.TestCase):
    """One stack whose daemons (not MariaDB) get NOTIFY_SOCKET and WATCHDOG_USEC (2 s: a
    ping a second); a thread reads the socket all along, as systemd does (a full socket
    would block the senders), with SO_PASSCRED, so each message names its sender."""

    @classmethod
    def setUpClass(cls):
        cls.sock_dir = tempfile.mkdtemp(prefix="tg-notify-")
        cls.addClassCleanup(shutil.rmtree, cls.sock_dir, True)
        path = os.path.join(cls.sock_dir, "notify")
        cls.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        cls.addClassCleanup(cls.sock.close)
        cls.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        cls.sock.bind(path)
        cls.sock.settimeout(0.1)
        cls.messages, cls.reading = [], True  # (pid, text)
        cls.reader = threading.Thread(target=cls.read, daemon=True)
        cls.reader.start()
        cls.addClassCleanup(cls.reader.join)
        cls.addClassCleanup(setattr, cls, "reading", False)
        cls.stack = harness.Stack()
        cls.addClassCleanup(cls.stack.stop)
        daemons_env = cls.stack.env
        cls.stack.env = lambda extra=None, unset=(): daemons_env(
            dict({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"}, **(extra or {})), unset)
        cls.stack.start()

    @classmethod
    def read(cls):
        while cls.reading:
            try:
                data, anc, _, _ = cls.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except (socket.timeout, OSError):
                continue
            pid = None
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", payload[:12])[0]
            cls.messages.append((pid, data.decode(errors="replace")))

    def said(self, name, what):
        pid = self.stack.daemon(name).proc.pid
        return [t for p, t in self.messages if p == pid and what in t]

    def test_ready_watchdog_stopping(self):
        for name in DAEMONS:
            # WATCHDOG_USEC=2 s asks for a ping a second: two come within 30 s even under
            # ASan on busy cores, none ever from a daemon that does not ping
            harness.wait_for(lambda: len(self.said(name, "WATCHDOG=1")) >= 2, 30,
                             message="%s: fewer than 2 WATCHDOG=1: %r" % (name, self.messages))
            ready = self.said(name, "READY=1")
            self.assertEqual(len(ready), 1, (name, self.messages))
            self.assertIn("STATUS=", ready[0])
        # they serve once they say so
        st, _, _ = self.stack.report("GET", "/key/list", key=harness.MASTER_KEY)
        self.assertEqual(st, 200)
        st, _, _ = self.stack.http("GET", self.stack.proxyd_port, "/health/liveliness")
        self.assertEqual(st, 200)
        # a reload: RELOADING=1 (with the monotonic time systemd asks for), then READY=1
        for name in RELOADING:
            os.kill(self.stack.daemon(name).proc.pid, signal.SIGHUP)
            harness.wait_for(lambda: len(self.said(name, "READY=1")) == 2, 10,
                             message="%s: no READY=1 after SIGHUP: %r" % (name, self.messages))
            reloading = self.said(name, "RELOADING=1")
            self.assertEqual(len(reloading), 1, (name, self.messages))
            self.assertRegex(reloading[0], r"MONOTONIC_USEC=\d+")
        pids = {name: self.stack.daemon(name).proc.pid for name in DAEMONS}
        self.stack.stop()  # SIGTERM each; every daemon must exit 0
        self.assertEqual(self.stack.failures, [])
        # each said it before it exited; the reader thread may still have it to read
        for name, pid in pids.items():
            harness.wait_for(lambda: [t for p, t in self.messages
                                      if p == pid and "STOPPING=1" in t], 10,
                             message="%s: no STOPPING=1: %r" % (name, self.messages))


if __name__ == "__main__":
    unittest.main()
