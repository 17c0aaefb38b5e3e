#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS] - builds the libFuzzer targets (clang,
# -DTOLLGATE_FUZZ=ON, in build-fuzz/ or $TOLLGATE_FUZZ_BUILD) and runs each
# for SECONDS (default 8: every target in under two minutes on two cores),
# starting from its seeds (corpus/NAME) and the crashes once found
# (regressions/NAME). What a run adds to a corpus stays in the build
# directory, never in the repository. Prints per target the executions, their
# rate and the coverage at start and end; exits non-zero when any target
# crashed, leaked or timed out (its input is kept, the path is printed: add
# it to regressions/NAME once the parser is fixed).
set -uo pipefail

SECONDS_EACH=${1:-8}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${TOLLGATE_FUZZ_BUILD:-$ROOT/build-fuzz}

case $SECONDS_EACH in
  ''|*[!0-9]*) echo "usage: $0 [seconds-per-target]" >&2; exit 2 ;;
esac
command -v clang >/dev/null || {
  echo "run.sh: clang not found (deploy/install-deps.sh --tests installs it)" >&2; exit 2; }

if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  mkdir -p "$BUILD"
  CC=clang cmake -S "$ROOT" -B "$BUILD" -DTOLLGATE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    >"$BUILD/configure.log" 2>&1 || { cat "$BUILD/configure.log" >&2; exit 2; }
fi
cmake --build "$BUILD" --target fuzz -j2 >"$BUILD/fuzz-build.log" 2>&1 ||
  { tail -40 "$BUILD/fuzz-build.log" >&2; echo "run.sh: build failed" >&2; exit 2; }

mkdir -p "$BUILD/fuzz-corpus" "$BUILD/fuzz-logs" "$BUILD/fuzz-artifacts"
failed=()
n=0
for exe in "$BUILD"/bin/fuzz_*; do
  name=${exe##*/fuzz_}
  work="$BUILD/fuzz-corpus/$name"
  log="$BUILD/fuzz-logs/$name.log"
  mkdir -p "$work"
  dirs=("$work" "$HERE/corpus/$name")
  [ -d "$HERE/regressions/$name" ] && dirs+=("$HERE/regressions/$name")
  # -close_fd_mask=3: the parsers' own warnings stay quiet (the reports do not).
  "$exe" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -close_fd_mask=3 \
    -print_final_stats=1 -artifact_prefix="$BUILD/fuzz-artifacts/$name-" "${dirs[@]}" \
    >"$log" 2>&1
  rc=$?
  n=$((n + 1))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  cov0=$(sed -n 's/.*INITED cov: \([0-9]*\).*/\1/p' "$log" | head -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  if [ $rc -eq 0 ]; then
    verdict=ok
  else
    verdict="FAILED (exit $rc; log $log; $(grep -o "Test unit written to .*" "$log" | head -1))"
    failed+=("$name")
  fi
  printf 'fuzz_%-18s %9s execs %7s/s  cov %5s -> %-5s %s\n' "$name" "${execs:-?}" \
    "${rate:-?}" "${cov0:-?}" "${cov:-?}" "$verdict"
done

if [ $n -eq 0 ]; then
  echo "fuzz: no targets built in $BUILD/bin"
  exit 1
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${#failed[@]} of $n targets FAILED (${failed[*]}), ${SECONDS_EACH}s each"
  exit 1
fi
echo "fuzz: $n targets passed, ${SECONDS_EACH}s each"
