"""test_budget_manager_hosted.py - the BudgetManager library in hosted mode against a real
reportd: it finds Tollgate's atomic endpoints, two processes' updates are all kept, what it
stores is LiteLLM's /get_budget shape, and a calendar reset happens once.

Run from the repo root:  python3 -m unittest -v tests/e2e/test_budget_manager_hosted.py
"""

import os
import subprocess
import sys
import unittest
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import MASTER_KEY  # noqa: E402

COST = Decimal("0.0075")  # gpt-4o, 1000 prompt + 500 completion tokens


class HostedBudgetManagerTest(harness.StackTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        st, _, k = cls.stack.report("POST", "/key/generate",
                                    {"permissions": {"budget_manager": True}}, key=MASTER_KEY)
        assert st == 200, k
        cls.key = k["key"]
        cls.base = "http://127.0.0.1:%d" % cls.stack.reportd_port

    def cli(self, project, *args, key=None):
        return subprocess.run([str(harness.bin_dir() / "bm-cli"), self.base, key or self.key,
                               project] + [str(a) for a in args],
                              capture_output=True, text=True, timeout=120)

    def ok(self, project, *args):
        p = self.cli(project, *args)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.strip()

    def get_budget(self, project):
        st, headers, body = self.stack.report("POST", "/get_budget",
                                              {"project_name": project}, key=self.key)
        self.assertEqual(st, 200, body)
        self.assertEqual(headers.get("x-tollgate-budget-manager"), "1")
        return body["data"]

    def test_two_processes_keep_every_update(self):
        self.ok("p-two", "create", "alice", 100, "monthly")
        procs = [subprocess.Popen([str(harness.bin_dir() / "bm-cli"), self.base, self.key,
                                   "p-two", "update", "alice", "40"],
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        for p in procs:
            _, err = p.communicate(timeout=300)
            self.assertEqual(p.returncode, 0, err)
        entry = self.get_budget("p-two")["alice"]
        self.assertEqual((entry["current_cost"], entry["model_cost"], entry["total_budget"],
                          entry["duration"]), (COST * 80, {"gpt-4o": COST * 80}, 100, "monthly"))
        self.assertEqual(Decimal(self.stack.sql_value(
            "SELECT current_cost FROM budget_manager_users WHERE project = 'p-two'")), COST * 80)
        self.assertEqual(Decimal(self.ok("p-two", "cost", "alice")), COST * 80)

    def reset_answers(self, project):
        """The daily reset check's answers: after an update, after the last update was moved
        to the day before, and once more."""
        self.ok(project, "create", "bob", 10, "daily")
        self.ok(project, "update", "bob", 2)
        answers = [self.ok(project, "reset-on-duration", "bob")]
        self.stack.sql("UPDATE budget_manager_users SET last_updated_at = last_updated_at - 86400"
                       " WHERE project = '%s'" % project)
        return answers + [self.ok(project, "reset-on-duration", "bob") for _ in range(2)]

    def test_calendar_reset_happens_once(self):
        # "kept" means: still the UTC day of the last change. Across midnight a check rightly
        # resets, so a run that midnight passed through runs once more (another project).
        for attempt in (1, 2):
            day, project = harness.utc_today(), "p-reset-%d" % attempt
            answers = self.reset_answers(project)
            if harness.utc_today() == day:
                break
        # the last update was yesterday: the next check resets, the one after keeps
        self.assertEqual(answers, ["kept", "reset", "kept"])
        entry = self.get_budget(project)["bob"]
        self.assertEqual((entry["current_cost"], entry["model_cost"]), (0, {}))

    def test_projects_are_separate_and_keys_checked(self):
        self.ok("p-a", "create", "carol", 5, "none")
        self.ok("p-a", "update", "carol", 1)
        self.assertEqual(self.get_budget("p-b"), {})
        p = self.cli("p-b", "update", "carol", 1)
        self.assertNotEqual(p.returncode, 0)  # no budget for carol in p-b
        p = self.cli("p-a", "cost", "carol", key="sk-not-a-key")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("401", p.stderr)


if __name__ == "__main__":
    unittest.main()
