"""pool_upstream.py - small OpenAI chat upstreams that differ per instance, for the
routing-strategy tests: one per deployment of a model group, each with its own delay
before it answers, and each counting what it was sent (fake-upstream is one process
whose behaviour the request decides; a strategy test needs deployments that differ
whatever the request).

An instance answers POST .../chat/completions (whole or streamed) with the request's
mock_usage {prompt_tokens, completion_tokens} (default 10 and 20), or with the error
status fail_status when that is set. A streamed request
with "mock_stall": true gets its headers and a first chunk, then nothing until
release() (or STALL_MAX_S): a stream held open, i.e. a request in flight. Threads serve
requests in parallel, so a slow instance does not hold the others back.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STALL_MAX_S = 60.0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # a stream ends when the connection does

    def log_message(self, fmt, *args):  # quiet: the test reports what matters
        pass

    def do_POST(self):
        up = self.server.upstream
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        up.note(body)
        if up.delay_s:
            time.sleep(up.delay_s)
        if up.fail_status:
            out = b'{"error": {"message": "pool upstream fails", "type": "server_error"}}'
            self.send_response(up.fail_status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
            return
        usage = body.get("mock_usage") or {}
        p, c = int(usage.get("prompt_tokens", 10)), int(usage.get("completion_tokens", 20))
        usage = {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
        try:
            if body.get("stream"):
                self._stream(up, body, usage)
            else:
                self._whole(body, usage)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _whole(self, body, usage):
        out = json.dumps({
            "id": "chatcmpl-pool", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "?"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "hello there"}}],
            "usage": usage}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def _event(self, body, choices, usage=None):
        chunk = {"id": "chatcmpl-pool", "object": "chat.completion.chunk",
                 "created": int(time.time()), "model": body.get("model", "?"), "choices": choices}
        if usage is not None:
            chunk["usage"] = usage
        self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        self.wfile.flush()

    def _stream(self, up, body, usage):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self._event(body, [{"index": 0, "delta": {"role": "assistant", "content": "hello"},
                            "finish_reason": None}])
        if body.get("mock_stall"):
            up.stall()
        self._event(body, [{"index": 0, "delta": {}, "finish_reason": "stop"}])
        self._event(body, [], usage)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


class PoolUpstream:
    """One upstream on a free loopback port: base is its api_base."""

    def __init__(self, name, delay_s=0.0):
        self.name = name
        self.delay_s = delay_s
        self.fail_status = 0    # answer every request with this HTTP status (0: don't)
        self.lock = threading.Lock()
        self.requests = []      # bodies, in arrival order
        self.stalled = 0        # streams held open now
        self._release = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.upstream = self
        self.base = "http://127.0.0.1:%d/v1" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def note(self, body):
        with self.lock:
            self.requests.append(body)

    def stall(self):
        with self.lock:
            self.stalled += 1
        self._release.wait(STALL_MAX_S)
        with self.lock:
            self.stalled -= 1

    def release(self):
        """Lets every held stream end; later ones are held again."""
        self._release.set()
        deadline = time.monotonic() + 10
        while self.stalled and time.monotonic() < deadline:
            time.sleep(0.01)
        self._release.clear()

    def reset(self, delay_s=0.0):
        with self.lock:
            self.requests = []
        self.delay_s = delay_s
        self.fail_status = 0

    def count(self):
        with self.lock:
            return len(self.requests)

    def stop(self):
        self._release.set()
        self.server.shutdown()
        self.server.server_close()
