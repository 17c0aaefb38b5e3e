"""run.py - runs one end-to-end test file for ctest: unittest, verbose.

    python3 tests/e2e/run.py tests/e2e/test_ledger.py

Exits 0 only when every test passed. Under CI (CI=true) a skipped test is a
failure too, unless tests/skip-allowlist.txt names it: on CI's machine
every package a test needs is installed, so a skip there means a check that
did not run, not one that passed.
"""

import os
import sys
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
ALLOWLIST = HERE.parent / "skip-allowlist.txt"


def allowed_skips():
    """Test ids (module.Class.test) the allow-list names, comments dropped."""
    names = set()
    for line in ALLOWLIST.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(line)
    return names


def main(argv):
    if len(argv) != 2 or not argv[1].endswith(".py"):
        sys.exit("usage: run.py tests/e2e/test_NAME.py")
    path = Path(argv[1]).resolve()
    sys.path.insert(0, str(path.parent))
    suite = unittest.defaultTestLoader.loadTestsFromName(path.stem)
    if suite.countTestCases() == 0:
        sys.exit("run.py: %s holds no test" % argv[1])
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    if not result.wasSuccessful():
        return 1
    if os.environ.get("CI") == "true":
        allowed = allowed_skips()
        bad = [(t.id(), why) for t, why in result.skipped
               if t.id() not in allowed and t.id().rsplit(".", 1)[0] not in allowed]
        for test_id, why in bad:
            print("run.py: skipped under CI=true and not in %s: %s (%s)"
                  % (ALLOWLIST.name, test_id, why), file=sys.stderr)
        if bad:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
