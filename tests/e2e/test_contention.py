"""test_contention.py - two accountd instances writing the same budget owners at once.

Four event generators (tests/bench/event_gen.c, proxyd's side of the ZeroMQ protocol),
two on each accountd instance, send events of one small population: 6 keys (with their
internal users and team memberships) in 2 teams, 12 end users and 3 tags, so nearly
every transaction of one instance wants the rows the other is writing. Half the keys
and both teams have budget periods, so the period-checked adds run too. Small batches
make thousands of competing transactions.

Checked: every event acknowledged and in the ledger once; every invariant of
tests/e2e/invariants.py (counters and rollups equal the logs, exactly); each instance
committed exactly the events sent to it, in batches of its own (its /metrics), so both
wrote at once; the instances did wait for each other's row locks (else nothing was
tested); and InnoDB saw no deadlock (the writers take row locks in one global order: a
deadlock would still be retried, but it would mean the order is broken).

Run from the repo root:  python3 -m unittest -v tests/e2e/test_contention.py
"""

import json
import os
import random
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))

import harness  # noqa: E402
import invariants  # noqa: E402
from accountd_bench import seed  # noqa: E402  (keys, users, teams, memberships)

KEYS, TEAMS, END_USERS, TAGS = 6, 2, 12, 3
EVENTS_PER_GENERATOR = 6000
GENERATORS_PER_INSTANCE = 2


class ContentionTest(harness.StackTestCase):
    stack_options = {"accountd_instances": 2,
                     "tollgate": {"accountd": {"batch_max_events": 200, "batch_wait_ms": 2}}}

    def status(self, name):
        return int(self.stack.sql("SHOW GLOBAL STATUS LIKE '%s'" % name)[0][1])

    def counters(self, i):
        """accountd instance i's counters since it started ({name: value}, its /metrics)."""
        st, _, text = self.stack.http("GET", self.stack.metrics_ports[i], "/metrics")
        self.assertEqual(st, 200, text)
        return {m.group(1): int(float(m.group(2))) for m in re.finditer(
            r"^tollgate_accountd_(\w+_total) (\S+)$", text, re.M)}

    def test_two_instances_same_owners(self):
        s = self.stack
        seed(s, KEYS, TEAMS)
        s.sql("UPDATE api_keys SET budget_duration = '30d',"
              " budget_period_start = UTC_TIMESTAMP(6) - INTERVAL 1 HOUR,"
              " budget_reset_at = UTC_TIMESTAMP(6) + INTERVAL 1 DAY"
              " WHERE user_id IN ('bench-user-0', 'bench-user-2', 'bench-user-4')")
        s.sql("UPDATE teams SET budget_duration = '30d',"
              " budget_period_start = UTC_TIMESTAMP(6) - INTERVAL 1 HOUR,"
              " budget_reset_at = UTC_TIMESTAMP(6) + INTERVAL 1 DAY")
        deadlocks0, waits0 = self.status("Innodb_deadlocks"), self.status("Innodb_row_lock_waits")
        gen = str(harness.bin_dir() / "event-gen")
        procs = []
        gen_seed = random.randrange(1 << 31)  # generator i draws from gen_seed + i
        print("\nevent-gen --seed %d + i" % gen_seed, file=sys.stderr)
        # each generator talks to one instance; proxyd sends nothing (no requests)
        for port in s.events_ports:
            for _ in range(GENERATORS_PER_INSTANCE):
                procs.append(subprocess.Popen(
                    [gen, "--seed", str(gen_seed + len(procs)), "--keys", str(KEYS), "--teams", str(TEAMS), "--end-users",
                     str(END_USERS), "--tags", str(TAGS), "--batch", "20", "--window", "400",
                     "--events", str(EVENTS_PER_GENERATOR), "tcp://127.0.0.1:%d" % port],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        results, outputs = [], []
        try:
            for p in procs:
                outputs.append(p.communicate(timeout=240) + (p.returncode,))
        finally:
            for p in procs:  # none left behind when one fails
                if p.poll() is None:
                    p.kill()
                    p.communicate()
        for out, err, rc in outputs:
            self.assertEqual(rc, 0, err.decode())
            results.append(json.loads(out.decode().strip().splitlines()[-1]))
        sent = sum(r["sent"] for r in results)
        self.assertEqual(sent, EVENTS_PER_GENERATOR * len(procs))
        self.assertEqual(sum(r["acked"] for r in results), sent)
        self.assertEqual(int(s.sql_value("SELECT COUNT(*) FROM spend_logs")), sent)
        self.assertEqual(invariants.check(s), [])
        self.assertGreater(self.status("Innodb_row_lock_waits") - waits0, 0,
                           "the instances never waited for each other: no contention tested")
        self.assertEqual(self.status("Innodb_deadlocks") - deadlocks0, 0,
                         "the writers' lock order allowed a deadlock")
        # both instances did their share: each committed (and wrote as new rows)
        # exactly what its generators sent it, in batches of its own
        per_instance = EVENTS_PER_GENERATOR * GENERATORS_PER_INSTANCE
        for i, name in enumerate(s.accountd_names()):
            c = self.counters(i)
            self.assertEqual(c.get("events_committed_total"), per_instance, (name, c))
            self.assertEqual(c.get("log_rows_inserted_total"), per_instance, (name, c))
            self.assertEqual(c.get("duplicate_events_total"), 0, (name, c))
            self.assertGreater(c.get("batches_committed_total", 0), 0, (name, c))


if __name__ == "__main__":
    unittest.main()
