#!/usr/bin/env bash
# install-deps.sh - install the Debian 12 packages Tollgate builds and runs with.
# Used by the quickstart and the test runner; safe to run again. The build
# also needs the npm registry (or npm's cache) once, for Chart.js.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  libzmq3-dev libprotobuf-c-dev protobuf-c-compiler libevent-dev libcurl4-openssl-dev
  libmariadb-dev libyaml-dev libssl-dev libjansson-dev zlib1g-dev libpcre2-dev libsystemd-dev
  libhiredis-dev
  mariadb-server mariadb-client python3 curl tzdata systemd
)

# The tests (`install-deps.sh --tests`) also parse /metrics with the
# Prometheus client, run proxyd behind the example nginx and HAProxy configs,
# drive the Usage page (/ui) in Debian's headless Chromium, and run the
# date-sensitive tests again at a later date under libfaketime, and share
# usage-based routing's counts through a throwaway redis-server.
[ "${1:-}" = "--tests" ] && PACKAGES+=(python3-prometheus-client nginx-light haproxy chromium faketime redis-server)
# The ZeroMQ attack tests play hostile peers with pyzmq (CURVE-capable).
[ "${1:-}" = "--tests" ] && PACKAGES+=(python3-zmq)
# The fuzz targets (tests/fuzz/run.sh) build with clang; libclang-rt-14-dev
# holds its libFuzzer and sanitizer runtimes.
[ "${1:-}" = "--tests" ] && PACKAGES+=(clang libclang-rt-14-dev)

# The build runs `npm ci` for the Usage page's Chart.js (reportd/ui, pinned by
# its package-lock.json), and the tests drive proxyd with the official OpenAI
# Node client: Debian's Node.js and npm unless the machine already has both.
command -v node >/dev/null && command -v npm >/dev/null || PACKAGES+=(nodejs npm)

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps.sh: run as root or install sudo" >&2; exit 1; }
  SUDO=(sudo)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps.sh: all packages present"
  exit 0
fi
echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
# Keep the packaged MariaDB service from starting: Tollgate runs its own.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
  "${SUDO[@]}" chmod +x /usr/sbin/policy-rc.d
  trap '"${SUDO[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
fi
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps.sh: done"
