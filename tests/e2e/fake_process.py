"""fake_process.py - one fake-upstream process of its own (no stack around it), on a
free port, with its request log: for the tests of fake-upstream itself."""

import http.client
import json
import re
import signal
import subprocess
import tempfile
from pathlib import Path

import harness
from harness import wait_for

START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0


class FakeUpstream:
    """One fake-upstream process with a log, on a free port."""

    def __init__(self, api_key, *args):
        self.tmp = tempfile.TemporaryDirectory(prefix="tollgate-fake-protocols-")
        d = Path(self.tmp.name)
        self.out_path, self.err_path = d / "out", d / "err"
        self.log_path = d / "requests.jsonl"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [str(harness.bin_dir() / "fake-upstream"), "--listen", "127.0.0.1:0",
                 "--api-key", api_key, "--log", str(self.log_path)] + list(args),
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
        try:
            self.port = wait_for(self._listening, START_TIMEOUT,
                                 message="fake-upstream did not print its port")
        except BaseException:
            self.proc.kill()
            self.proc.wait()
            self.tmp.cleanup()
            raise

    def _listening(self):
        if self.proc.poll() is not None:
            raise AssertionError("fake-upstream exited with %d:\n%s"
                                 % (self.proc.returncode, self.err_path.read_text()))
        m = re.search(r"fake-upstream listening on [^\s:]+:(\d+)", self.out_path.read_text())
        return int(m.group(1)) if m else None

    def stop(self):
        """SIGTERM; an AssertionError unless it exits 0."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = "none (killed)"
        stderr = self.err_path.read_text(errors="replace")
        self.tmp.cleanup()
        if code != 0:
            raise AssertionError("fake-upstream exit code %s on SIGTERM; stderr:\n%s"
                                 % (code, stderr[-4000:]))

    def log(self):
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line]

    def request(self, method, path, body=None, headers=None):
        """(status, headers dict, raw bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
            conn.request(method, path, body=data, headers=dict(headers or {}))
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()
