#!/usr/bin/env bash
# run-all.sh - the whole test suite, as CI runs it (.ci/run calls this).
#
# Installs the Debian packages, builds with -Werror, runs every ctest test
# (unit and end-to-end: each e2e test starts its own throwaway MariaDB; as
# many at once as there are cores, but those marked RUN_SERIAL alone),
# then builds again with AddressSanitizer + UndefinedBehaviorSanitizer and
# runs the same tests against the sanitized binaries.
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/install-deps.sh --tests
echo "=== npm ci (tests/node: the official OpenAI and Anthropic clients and playwright-core)"
(cd tests/node && npm ci --no-audit --no-fund --loglevel=error)

run_suite() { # build-dir label cmake-args...
  local dir=$1 label=$2 rc=0 counts
  shift 2
  echo "=== $label: build ($dir)"
  cmake -S . -B "$dir" -DTOLLGATE_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$(nproc)"
  echo "=== $label: tests"
  rm -f "$dir/ctest-results.xml"
  # two at a time on CI's 2 cores (most e2e tests wait more than they compute);
  # tests/CMakeLists.txt names those that run alone (RUN_SERIAL)
  (cd "$dir" && ctest -j"$(nproc)" --output-on-failure --timeout 600 --no-tests=error \
     --output-junit ctest-results.xml) || rc=$?
  # What ran, from ctest's own results (a skipped test fails under CI=true
  # unless tests/skip-allowlist.txt names it).
  counts=$(python3 tests/ctest_results.py "$dir/ctest-results.xml" tests/skip-allowlist.txt) ||
    rc=1
  read -r p f s <<<"$counts"
  echo "=== $label: $p passed, $f failed, $s skipped (ctest exit $rc)"
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
  [ "$rc" -eq 0 ] && [ "$f" -eq 0 ] && [ "$p" -gt 0 ]
}

summary() {
  echo "=== $1 in $(( $(date +%s) - start ))s"
  echo "tests: $passed passed, $failed failed, $skipped skipped"
}

passed=0 failed=0 skipped=0
start=$(date +%s)
run_suite build "release" -DCMAKE_BUILD_TYPE=RelWithDebInfo ||
  { summary "release tests FAILED"; exit 1; }
# Every parser of outside data under libFuzzer for a few seconds each
# (clang, build-fuzz/); its last line is the summary.
echo "=== fuzz: tests/fuzz/run.sh"
tests/fuzz/run.sh || { summary "fuzzing FAILED"; exit 1; }
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=23
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_suite build-asan "asan+ubsan" -DCMAKE_BUILD_TYPE=Debug -DTOLLGATE_SANITIZE=ON ||
  { summary "asan+ubsan tests FAILED"; exit 1; }
summary "all tests passed"
