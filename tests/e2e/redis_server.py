"""redis_server.py - a throwaway redis-server for the e2e tests (Debian's
redis-server, `deploy/install-deps.sh --tests`): on a free loopback port, no
persistence (no RDB snapshot, no AOF), its files in a temp dir removed by stop().
command() speaks RESP over a plain socket, so the tests need no Redis client.
"""

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from harness import HarnessError, free_port, wait_for


class RedisServer:
    def __init__(self, password=None):
        self.password = password
        self.dir = Path(tempfile.mkdtemp(prefix="tg-redis-", dir="/tmp"))
        self.port = None
        self.proc = None

    def start(self):
        """Starts redis-server on a free port (the same port again after stop_server)."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise HarnessError("redis-server not found (deploy/install-deps.sh --tests)")
        self.port = self.port or free_port()
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.dir), "--daemonize", "no",
                "--logfile", str(self.dir / "redis.log")]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for(self._answers, 10, message="redis-server did not answer on %d" % self.port)
        return self

    def _answers(self):
        if self.proc.poll() is not None:
            raise HarnessError("redis-server exited %s" % self.proc.returncode)
        try:
            return self.command("PING") == "PONG"
        except OSError:
            return False

    def stop_server(self):
        """Stops the server (its port is kept for start())."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def stop(self):
        self.stop_server()
        shutil.rmtree(self.dir, ignore_errors=True)

    def command(self, *args):
        """One command; its answer (str, int, None or a list of them)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            f = s.makefile("rb")
            if self.password:
                s.sendall(_encode(("AUTH", self.password)))
                _read(f)
            s.sendall(_encode(args))
            return _read(f)


def _encode(args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def _read(f):
    line = f.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise HarnessError("redis: " + rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2].decode()
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read(f) for _ in range(n)]
    raise HarnessError("redis: unexpected answer %r" % line)


def minute_key(model_id, kind, at=None):
    """LiteLLM's key of a deployment's count this UTC minute."""
    return "%s:%s:%s" % (model_id, kind, time.strftime("%H-%M", time.gmtime(at)))
