#!/usr/bin/env python3
"""mock_budget_server.py - a stand-in hosted BudgetManager server for
tests/unit/test_budget_manager.c.

  mock_budget_server.py litellm    LiteLLM's hosted API: /get_budget answers the
                                   project's whole user dict ({"status": "error"}
                                   for an unknown project, as LiteLLM's client
                                   expects), /set_budget replaces it.
  mock_budget_server.py tollgate   the same plus the x-tollgate-budget-manager
                                   header and Tollgate's atomic per-user endpoints
                                   (/budget_manager/create_budget, update_cost,
                                   reset_cost), with exact decimal arithmetic.

Every request must carry "Authorization: Bearer sk-mock" (401 otherwise).
POST /_mock/now {"now": t} sets the server's clock (0 = the real one);
POST /_mock/dump {"project_name"} answers the stored dict.
Prints the port it listens on (127.0.0.1) as its first line.
"""
import json
import sys
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE = sys.argv[1] if len(sys.argv) > 1 else "litellm"
LOCK = threading.Lock()
PROJECTS = {}  # project -> {user: entry}, amounts as Decimal
CLOCK = {"now": 0.0}


def now():
    return CLOCK["now"] or round(time.time(), 6)


def to_json(d):
    """Entries with Decimals as floats (JSON numbers)."""
    if isinstance(d, dict):
        return {k: to_json(v) for k, v in d.items()}
    return float(d) if isinstance(d, Decimal) else d


def from_json(d):
    if isinstance(d, dict):
        return {k: from_json(v) for k, v in d.items()}
    return Decimal(repr(d)) if isinstance(d, float) else d


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if MODE == "tollgate":
            self.send_header("x-tollgate-budget-manager", "1")
        self.end_headers()
        self.wfile.write(body)

    def error(self, status, param, message):
        self.answer(status, {"error": {"message": message, "type": "invalid_request_error",
                                       "param": param, "code": str(status)}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        try:
            req = json.loads(self.rfile.read(length) or b"{}", parse_float=Decimal)
        except ValueError:
            return self.error(400, None, "body is not JSON")
        if self.headers.get("Authorization") != "Bearer sk-mock":
            return self.error(401, None, "Authentication Error: no valid key")
        with LOCK:
            self.route(req)

    def route(self, req):
        path = self.path
        if path == "/_mock/now":
            CLOCK["now"] = float(req["now"])
            return self.answer(200, {"status": "success"})
        project = req.get("project_name")
        if not isinstance(project, str) or not project:
            return self.error(400, "project_name", "project_name is required")
        users = PROJECTS.get(project)
        if path in ("/get_budget", "/_mock/dump"):
            if users is None and MODE == "litellm" and path == "/get_budget":
                return self.answer(200, {"status": "error", "message": "no such project"})
            return self.answer(200, {"status": "success", "data": to_json(users or {})})
        if path == "/set_budget":
            PROJECTS[project] = from_json(json.loads(json.dumps(req["user_dict"], default=float)))
            return self.answer(200, {"status": "success"})
        if MODE != "tollgate" or not path.startswith("/budget_manager/"):
            return self.error(404, None, "no such route")
        users = PROJECTS.setdefault(project, {})
        user = req.get("user")
        op = path[len("/budget_manager/"):]
        if op == "create_budget":
            created = req.get("created_at") or Decimal(repr(now()))
            old = users.get(user)
            entry = {"total_budget": req["total_budget"], "duration": req.get("duration"),
                     "created_at": created,
                     "last_updated_at": old["last_updated_at"] if old else created,
                     "current_cost": old["current_cost"] if old else Decimal(0),
                     "model_cost": old["model_cost"] if old else {}}
            users[user] = entry
            return self.answer(200, {"status": "success", "data": to_json(entry)})
        entry = users.get(user)
        if entry is None:
            return self.error(404, "user", "user has no budget")
        if op == "update_cost":
            cost = Decimal(str(req["cost"]))
            entry["current_cost"] += cost
            entry["model_cost"][req["model"]] = entry["model_cost"].get(req["model"], 0) + cost
            entry["last_updated_at"] = Decimal(repr(now()))
            return self.answer(200, {"status": "success", "data": to_json(entry)})
        if op == "reset_cost":
            cond = req.get("if_last_updated_at")
            if cond is not None and Decimal(str(cond)) != Decimal(str(entry["last_updated_at"])):
                return self.answer(200, {"status": "success", "reset": False,
                                         "data": to_json(entry)})
            entry.update(current_cost=Decimal(0), model_cost={},
                         last_updated_at=Decimal(repr(now())))
            return self.answer(200, {"status": "success", "reset": True, "data": to_json(entry)})
        return self.error(404, None, "no such route")


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
