"""ctest_results.py - counts a ctest run from its JUnit file (--output-junit).

    python3 tests/ctest_results.py RESULTS.xml [ALLOWLIST]

Prints "passed failed skipped" for tests/run-all.sh's summary line, counted
from what ran (not from what is registered). A skipped ctest test fails the
count under CI=true unless ALLOWLIST names it (exit 1, with its name).
"""

import os
import sys
import xml.etree.ElementTree as ET


def allowed(path):
    if not path or not os.path.exists(path):
        return set()
    with open(path) as f:
        return {line.split("#", 1)[0].strip() for line in f} - {""}


def main(argv):
    if len(argv) not in (2, 3):
        sys.exit("usage: ctest_results.py RESULTS.xml [ALLOWLIST]")
    root = ET.parse(argv[1]).getroot()
    passed, failed, skipped = [], [], []
    for case in root.iter("testcase"):
        name, status = case.get("name"), case.get("status")
        if case.find("failure") is not None or status == "fail":
            failed.append(name)
        elif status == "run":
            passed.append(name)
        else:  # notrun, disabled: a check that did not run
            skipped.append(name)
    print(len(passed), len(failed), len(skipped))
    if os.environ.get("CI") == "true":
        bad = [n for n in skipped if n not in allowed(argv[2] if len(argv) == 3 else None)]
        for n in bad:
            print("ctest_results.py: %s did not run (CI=true, not allow-listed)" % n,
                  file=sys.stderr)
        if bad:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
