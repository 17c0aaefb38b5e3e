"""test_report_documents.py - the exact JSON of each /global/spend/report shape for a
small known ledger, written out by hand: the contract's team form (with "Prod Team" and
"Unassigned Team"), the customer form (with "palantir"), the api_key form, and the
api_key= and internal_user_id= forms, plus the CSV of the team form.

Run from the repo root:  python3 -m unittest -v tests/e2e/test_report_documents.py
"""

import os
import sys
import unittest
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import MASTER_KEY, expected_cost, wait_for  # noqa: E402

MODEL = "groq/llama-3.1-8b-instant"  # the llama3 group's deployment


def money(d):
    """reportd writes amounts as JSON numbers; the harness parses them as Decimal."""
    return Decimal(str(float(d)))


class ReportDocumentsTest(harness.StackTestCase):

    @classmethod
    def setUpClass(cls):
        # The documents are one UTC day's (its requests could be on two days if midnight
        # passed while they were written: then once more).
        day = cls.start_with_ledger(cls.write_ledger)
        cls.day = day.isoformat()

    @classmethod
    def write_ledger(cls):
        s = cls.stack

        def ok(path, body):
            st, _, b = s.report("POST", path, body, key=MASTER_KEY)
            assert st == 200, (path, b)
            return b

        ok("/team/new", {"team_id": "prod-team", "team_alias": "Prod Team"})
        cls.a = ok("/key/generate", {"user_id": "alice", "team_id": "prod-team"})
        cls.b = ok("/key/generate", {"user_id": "bob"})
        # (key, prompt, completion, end user)
        cls.requests = [(cls.a, 1000, 500, "palantir"), (cls.a, 200, 100, None),
                        (cls.b, 300, 0, "palantir")]
        for k, p, c, user in cls.requests:
            extra = {"user": user} if user else {}
            st, _, body = s.chat(k["key"], prompt_tokens=p, completion_tokens=c, **extra)
            assert st == 200, body
        wait_for(lambda: s.sql_value("SELECT COUNT(*) FROM spend_logs") == "3", 30,
                 message="3 log rows")

    def report(self, query):
        st, _, body = self.stack.report(
            "GET", "/global/spend/report?start_date=%s&end_date=%s%s"
            % (self.day, self.day, query), key=MASTER_KEY)
        self.assertEqual(st, 200, body)
        return body

    def cost(self, *which):
        return sum((expected_cost(self.requests[i][1], self.requests[i][2]) for i in which),
                   Decimal(0))

    def test_team_form(self):
        ta, tb = self.a["token"], self.b["token"]
        self.assertEqual(self.report(""), [{
            "group_by_day": self.day + "T00:00:00+00:00",
            "teams": [
                {"team_name": "Prod Team", "total_spend": money(self.cost(0, 1)),
                 "metadata": [{"model": MODEL, "spend": money(self.cost(0, 1)),
                               "total_tokens": 1800, "api_key": ta}]},
                {"team_name": "Unassigned Team", "total_spend": money(self.cost(2)),
                 "metadata": [{"model": MODEL, "spend": money(self.cost(2)),
                               "total_tokens": 300, "api_key": tb}]}]}])
        self.assertEqual(self.report("&group_by=team"), self.report(""))

    def test_customer_form(self):
        ta, tb = self.a["token"], self.b["token"]
        entries = sorted([(ta, self.cost(0), 1500), (tb, self.cost(2), 300)])
        doc = self.report("&group_by=customer")
        self.assertEqual(doc, [{
            "group_by_day": self.day + "T00:00:00+00:00",
            "customers": [  # requests without an end user: customer null, sorted first
                {"customer": None, "total_spend": money(self.cost(1)),
                 "metadata": [{"model": MODEL, "spend": money(self.cost(1)),
                               "total_tokens": 300, "api_key": ta}]},
                {"customer": "palantir", "total_spend": money(self.cost(0, 2)),
                 "metadata": [{"model": MODEL, "spend": money(c), "total_tokens": t,
                               "api_key": k} for k, c, t in entries]}]}])

    def key_doc(self, k, which):
        return {"api_key": k["token"], "total_cost": money(self.cost(*which)),
                "total_input_tokens": sum(self.requests[i][1] for i in which),
                "total_output_tokens": sum(self.requests[i][2] for i in which),
                "model_details": [{"model": MODEL, "total_cost": money(self.cost(*which)),
                                   "total_input_tokens": sum(self.requests[i][1] for i in which),
                                   "total_output_tokens": sum(self.requests[i][2]
                                                              for i in which)}]}

    def test_api_key_forms(self):
        a, b = self.key_doc(self.a, (0, 1)), self.key_doc(self.b, (2,))
        self.assertGreater(self.cost(0, 1), self.cost(2))  # by total_cost descending
        self.assertEqual(self.report("&group_by=api_key"), [a, b])
        self.assertEqual(self.report("&api_key=" + self.a["key"]), [a])
        self.assertEqual(self.report("&api_key=" + self.b["token"]), [b])
        self.assertEqual(self.report("&internal_user_id=bob"), [b])
        self.assertEqual(self.report("&internal_user_id=alice&group_by=customer"), [a])
        self.assertEqual(self.report("&api_key=sk-unknown"), [])

    def test_filters_of_the_day_forms(self):
        self.assertEqual([t["team_name"] for t in self.report("&team_id=prod-team")[0]["teams"]],
                         ["Prod Team"])
        self.assertEqual([c["customer"] for c in
                          self.report("&group_by=customer&customer_id=palantir")[0]["customers"]],
                         ["palantir"])

    def test_team_csv(self):
        st, headers, text = self.stack.report(
            "GET", "/global/spend/report?start_date=%s&end_date=%s&format=csv"
            % (self.day, self.day), key=MASTER_KEY)
        self.assertEqual(st, 200, text)
        self.assertTrue(headers["content-type"].startswith("text/csv"), headers)
        lines = text.strip().splitlines()
        self.assertEqual(len(lines), 3, text)  # header + one row per day x team x model
        self.assertIn("Prod Team", lines[1])
        self.assertIn("Unassigned Team", lines[2])
        self.assertNotIn(self.a["key"], text)


if __name__ == "__main__":
    unittest.main()
