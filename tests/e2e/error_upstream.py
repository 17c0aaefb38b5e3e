"""error_upstream.py - an upstream that answers every POST with an error, on a thread of
the test process: the error of the path's first segment (`answers`), else `default`. It
counts the POSTs per segment before each answer leaves, so a count is up to date when
proxyd's answer reaches the test. Bodies are sent as compact JSON."""

import http.server
import json
import threading

# What an upstream that always fails answers (OpenAI's shape of a 500).
ALWAYS_FAILING = (500, {"error": {"message": "always failing", "type": "server_error",
                                  "param": None, "code": "500"}})


class ErrorUpstream:
    def __init__(self, answers=None, default=ALWAYS_FAILING):
        self.lock = threading.Lock()
        self.hits = {}
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                kind = self.path.strip("/").split("/")[0]
                with owner.lock:
                    owner.hits[kind] = owner.hits.get(kind, 0) + 1
                status, body = (answers or {}).get(kind, default)
                data = json.dumps(body, separators=(",", ":")).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def count(self, kind=None):
        """POSTs to paths whose first segment is kind; every POST when kind is None."""
        with self.lock:
            return sum(self.hits.values()) if kind is None else self.hits.get(kind, 0)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
