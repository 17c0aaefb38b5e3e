"""test_quickstart.py - deploy/quickstart.sh run as a user runs it: start, the curl
line it prints, stop.

The script runs for real with the suite's binaries (TOLLGATE_BIN, so it builds
nothing), its state in a temp dir (QUICKSTART_VAR, removed afterwards) and its seven
ports moved by QUICKSTART_PORT_OFFSET to a block that is free just before the start
(below the kernel's ephemeral range, like the harness's ports; on a clash the run is
stopped and tried again on another block). The request is the printed curl command
itself, run by bash: it must answer 200 with x-litellm-response-cost equal to the
tokens the answer reports times the prices in libtollgate/data/prices.json (Decimal),
and land once in the quickstart's own ledger with that spend. Then `quickstart.sh
stop` must leave no process of the run behind, and no daemon log may hold a
sanitizer report (under ASan the daemons are not our children: their exit status is
unseen, their logs are not).
"""

import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import invariants  # noqa: E402  (prices read from the price file)

QUICKSTART = harness.REPO / "deploy" / "quickstart.sh"
# deploy/config.example.yaml: the model group "llama3" is this one deployment
UPSTREAM_MODEL = "groq/llama-3.1-8b-instant"
# the quickstart's ports (its header), all moved by QUICKSTART_PORT_OFFSET
BASE_PORTS = (3307, 4000, 4001, 4002, 5555, 5556, 18080)
LOWEST_PORT = 10000      # as the harness: clear of the usual service ports
START_TRIES = 3
SCRIPT_TIMEOUT = 240     # start: package check, MariaDB's first start, schema, 4 daemons
SANITIZER = re.compile(r"ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:")


def curl_command(stdout):
    """The curl command the quickstart printed: the line starting with `curl` and the
    lines it continues onto with a trailing backslash, as one shell command."""
    lines, taking = [], False
    for line in stdout.splitlines():
        if line.strip().startswith("curl "):
            taking = True
        if taking:
            lines.append(line)
            if not line.rstrip().endswith("\\"):
                break
    if not lines:
        raise AssertionError("quickstart printed no curl line:\n" + stdout)
    return "\n".join(lines)


def parse_http(raw):
    """(status, {lower-case header: value}, body text) of `curl -si` output."""
    head, _, body = raw.partition("\r\n\r\n")
    status_line, *header_lines = head.split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


class QuickstartTest(unittest.TestCase):
    def setUp(self):
        self.seed = random.randrange(1 << 32)
        self.rng = random.Random(self.seed)
        self.dir = Path(tempfile.mkdtemp(prefix="tg-qs-"))
        self.var = self.dir / "var"
        self.addCleanup(self.cleanup)
        self.env = dict(os.environ, TOLLGATE_BIN=str(harness.bin_dir()),
                        QUICKSTART_VAR=str(self.var))

    def msg(self, text):
        return "%s (seed %d)" % (text, self.seed)

    def script(self, *args, timeout=SCRIPT_TIMEOUT):
        p = subprocess.run(["bash", str(QUICKSTART)] + list(args), env=self.env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")

    def log_paths(self):
        """The run's logs: the daemons' and MariaDB's."""
        paths = sorted((self.var / "log").glob("*.log")) + [self.var / "mariadb" / "mariadbd.log"]
        return [p for p in paths if p.exists()]

    def logs(self):
        """The ends of the run's logs, for failure messages."""
        return "\n".join(harness.log_tail(p, 15) for p in self.log_paths())

    def free_offset(self):
        """An offset that puts every quickstart port in [LOWEST_PORT, ephemeral range)
        on a port nothing listens on now."""
        lo, _ = harness._ephemeral_range()
        first, last = LOWEST_PORT - min(BASE_PORTS), lo - 1 - max(BASE_PORTS)
        for _ in range(100):
            offset = self.rng.randint(first, last)
            if all(harness._bindable(b + offset) for b in BASE_PORTS):
                return offset
        raise AssertionError(self.msg("no free block of quickstart ports"))

    def start(self):
        """quickstart.sh on a free block of ports; tried again on another block when
        a port was taken meanwhile (by a test running beside this one)."""
        for attempt in range(START_TRIES):
            self.env["QUICKSTART_PORT_OFFSET"] = str(self.free_offset())
            rc, out, err = self.script()
            if rc == 0:
                return out
            whole = "\n".join(p.read_text(errors="replace") for p in self.log_paths())
            clash = "is in use" in err or harness.port_clash(err + whole)
            if not clash or attempt == START_TRIES - 1:
                self.fail(self.msg("quickstart.sh exited %d (try %d of %d)\nstdout:\n%s\n"
                                   "stderr:\n%s\n%s" % (rc, attempt + 1, START_TRIES, out, err,
                                                         self.logs())))
            self.script("stop")
            shutil.rmtree(self.var, ignore_errors=True)

    def sql(self, query):
        p = subprocess.run(["bash", str(harness.MARIADB_SCRIPT), "sql", str(self.var / "mariadb"),
                            "tollgate"], input=query.encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))
        return [line.split("\t") for line in p.stdout.decode().splitlines() if line]

    def our_pids(self):
        """Every live process whose command line names the run's temp dir (the daemons'
        -c VAR/config.yaml, mariadbd's --datadir; not fake-upstream's)."""
        return harness._pids_with(str(self.dir).encode())

    def recorded(self):
        """{name: pid} from the run's pid files: the four daemons' and mariadbd's."""
        pids = {f.stem: int(f.read_text()) for f in (self.var / "run").glob("*.pid")}
        db_pid = self.var / "mariadb" / "mysqld.pid"
        if db_pid.exists():
            pids["mariadbd"] = int(db_pid.read_text())
        return pids

    def cleanup(self):
        """Whatever happened: stop the run, kill what is still ours (a process naming
        the temp dir, or one the pid files named with the command line it had), remove
        the temp dir."""
        try:
            if self.var.exists():
                self.script("stop", timeout=120)
        finally:
            for pid, cmd in getattr(self, "started", {}).items():
                if harness._alive(pid) and harness._cmdline(pid) == cmd:
                    harness._kill(pid)
            for pid in self.our_pids():
                harness._kill(pid)
            if os.environ.get("TOLLGATE_KEEP_TMP") == "1":
                print("test_quickstart: keeping %s" % self.dir)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)

    def wait(self, predicate, timeout):
        """Polls predicate() until true or timeout s; returns its last value."""
        deadline = time.monotonic() + timeout
        while not predicate() and time.monotonic() < deadline:
            time.sleep(0.1)
        return predicate()

    def test_start_request_stop(self):
        out = self.start()
        pids = self.recorded()
        self.started = {pid: harness._cmdline(pid) for pid in pids.values()}  # for cleanup

        # the request, exactly as printed
        cmd = curl_command(out)
        self.assertIn("127.0.0.1:%d/" % (4000 + int(self.env["QUICKSTART_PORT_OFFSET"])), cmd,
                      self.msg("the curl line names another port than proxyd's"))
        p = subprocess.run(["bash", "-c", cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        self.assertEqual(p.returncode, 0, self.msg("curl failed: %s" % p.stderr.decode()))
        status, headers, body = parse_http(p.stdout.decode(errors="replace"))
        self.assertEqual(status, 200, self.msg("%s\n%s" % (headers, body)))
        usage = json.loads(body)["usage"]
        prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]
        self.assertGreater(prompt * completion, 0, self.msg(body))
        expected = invariants.list_cost(prompt, completion, UPSTREAM_MODEL)
        self.assertIn("x-litellm-response-cost", headers, self.msg(headers))
        self.assertEqual(Decimal(headers["x-litellm-response-cost"]), expected, self.msg(headers))
        call_id = headers["x-litellm-call-id"]

        # in the quickstart's ledger, once; accountd commits it shortly after the answer
        # (30 s: a bound for an event, not a timing check)
        self.assertTrue(self.wait(lambda: self.sql("SELECT COUNT(*) FROM spend_logs") != [["0"]],
                                  30), self.msg("no ledger row within 30 s\n" + self.logs()))
        rows = self.sql("SELECT request_id, model, spend, prompt_tokens, completion_tokens"
                        " FROM spend_logs")
        self.assertEqual(rows, [[call_id, UPSTREAM_MODEL, rows[0][2], str(prompt),
                                 str(completion)]], self.msg("ledger rows"))
        self.assertEqual(Decimal(rows[0][2]), expected, self.msg("ledger spend"))

        # stop: nothing of the run may be left
        self.assertEqual(set(pids), {"proxyd", "accountd", "reportd", "fake-upstream",
                                     "mariadbd"}, self.msg("pid files"))
        self.assertEqual([n for n, pid in pids.items() if not harness._alive(pid)], [],
                         self.msg("daemons not running before the stop"))
        self.assertLessEqual(set(self.our_pids()), set(pids.values()),
                             self.msg("processes of the run that no pid file names"))
        rc, out, err = self.script("stop", timeout=120)
        self.assertEqual(rc, 0, self.msg("quickstart.sh stop exited %d\n%s\n%s" % (rc, out, err)))
        # the script waited for each to exit; only the reaping of an orphan may lag
        self.wait(lambda: not any(harness._alive(p) for p in pids.values()), 10)
        self.assertEqual({n: harness._cmdline(p) for n, p in pids.items() if harness._alive(p)},
                         {}, self.msg("still running after quickstart.sh stop"))
        self.assertEqual(self.our_pids(), [], self.msg("processes naming the run's directory"))
        self.assertEqual(list((self.var / "run").glob("*.pid")), [], self.msg("pid files left"))
        for log in (self.var / "log").glob("*.log"):
            text = log.read_text(errors="replace")
            self.assertIsNone(SANITIZER.search(text), self.msg("%s:\n%s" % (log, text[-4000:])))


if __name__ == "__main__":
    unittest.main()
