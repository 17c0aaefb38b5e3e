"""test_openai_node.py - the official OpenAI Node client (npm `openai` 4.x,
tests/node/) makes a chat call, a streamed chat call and an embeddings call
through proxyd; every one is in the ledger at the price it was told.

Needs `npm ci` in tests/node (tests/run-all.sh does it).
Run from the repo root:  python3 -m unittest -v tests/e2e/test_openai_node.py
"""

import json
import os
import shutil
import subprocess
import sys
import unittest
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import MASTER_KEY, expected_cost, wait_for  # noqa: E402

NODE_DIR = harness.REPO / "tests" / "node"


@unittest.skipUnless(shutil.which("node"), "node is not installed")
class OpenAINodeClientTest(harness.StackTestCase):
    stack_options = {"fake_args": ["--prompt-tokens", "21", "--completion-tokens", "34"]}

    def test_chat_stream_and_embeddings(self):
        self.assertTrue((NODE_DIR / "node_modules" / "openai").is_dir(),
                        "run `npm ci` in tests/node first")
        _, _, key = self.stack.report("POST", "/key/generate", {"key_alias": "node"}, key=MASTER_KEY)
        p = subprocess.run(["node", "openai_client.mjs",
                            "http://127.0.0.1:%d/v1" % self.stack.proxyd_port, key["key"]],
                           cwd=str(NODE_DIR), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        seen = json.loads(p.stdout.decode().strip().splitlines()[-1], parse_float=Decimal)
        cost = expected_cost(21, 34)

        self.assertEqual(seen["chat"]["content"], "This is a fake answer.")
        self.assertEqual(Decimal(seen["chat"]["cost"]), cost)
        self.assertEqual(seen["stream"]["text"], "This is a fake answer.")
        self.assertEqual(seen["stream"]["usage"]["total_tokens"], 55)
        self.assertEqual(Decimal(str(seen["stream"]["usage"]["cost"])), cost)
        self.assertEqual(seen["embedding"]["dims"], 3)
        self.assertEqual(Decimal(seen["embedding"]["cost"]), expected_cost(21, 0))

        rows = {}
        for call in ("chat", "stream", "embedding"):
            rid = seen[call]["callId"]
            rows[call] = wait_for(lambda rid=rid: self.stack.sql(
                "SELECT spend, call_type, end_user, request_tags FROM spend_logs"
                " WHERE request_id = '%s'" % rid), 5)[0]
        self.assertEqual(Decimal(rows["chat"][0]), cost)
        self.assertEqual(rows["chat"][2], "node-customer")
        self.assertEqual(json.loads(rows["chat"][3]), ["client:node"])
        self.assertEqual(Decimal(rows["stream"][0]), cost)
        self.assertEqual(rows["embedding"][1], "embedding")
        self.assertEqual(Decimal(rows["embedding"][0]), expected_cost(21, 0))
        total = self.stack.sql_value("SELECT spend FROM api_keys WHERE token = '%s'" % key["token"])
        self.assertEqual(Decimal(total), 2 * cost + expected_cost(21, 0))


if __name__ == "__main__":
    unittest.main()
