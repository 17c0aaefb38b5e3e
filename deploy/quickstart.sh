#!/usr/bin/env bash
# quickstart.sh - set up and run Tollgate on this machine, offline.
#
# Installs the Debian packages, builds, starts a private MariaDB under
# ./var/mariadb (port 3307), applies the schema, then starts the fake
# upstream (:18080) and the three daemons with deploy/config.example.yaml.
# Logs go to ./var/log, pids to ./var/run. `quickstart.sh stop` stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VAR=$ROOT/var
CONFIG=$ROOT/deploy/config.example.yaml
BIN=$ROOT/build/bin
export GROQ_API_KEY=quickstart-fake-key

stop_all() {
  for name in proxyd reportd accountd fake-upstream; do
    pidfile=$VAR/run/$name.pid
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      kill "$(cat "$pidfile")"
      for _ in $(seq 50); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$pidfile"
  done
  bash deploy/local-mariadb.sh stop "$VAR/mariadb"
}

wait_http() { # name port
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$2/" && return 0
    sleep 0.1
  done
  echo "quickstart: $1 did not come up; see $VAR/log/$1.log" >&2
  tail -5 "$VAR/log/$1.log" >&2
  exit 1
}

start() { # name args...
  local name=$1
  shift
  nohup "$@" >"$VAR/log/$name.log" 2>&1 </dev/null &
  echo $! >"$VAR/run/$name.pid"
}

if [ "${1:-}" = stop ]; then
  stop_all
  exit 0
fi

bash deploy/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
echo "quickstart: built build/bin/{proxyd,accountd,reportd,fake-upstream}"

mkdir -p "$VAR/log" "$VAR/run"
stop_all >/dev/null 2>&1 || true
bash deploy/local-mariadb.sh start "$VAR/mariadb" 3307 tollgate tollgate secret
"$BIN/accountd" -c "$CONFIG" --migrate
start fake-upstream "$BIN/fake-upstream" --listen 127.0.0.1:18080 --api-key "$GROQ_API_KEY" \
  --prompt-tokens 1000 --completion-tokens 500
start accountd "$BIN/accountd" -c "$CONFIG"
start reportd "$BIN/reportd" -c "$CONFIG"
start proxyd "$BIN/proxyd" -c "$CONFIG"
wait_http fake-upstream 18080
wait_http reportd 4001
wait_http proxyd 4000

cat <<'MSG'

Tollgate is running: proxyd on :4000, reportd on :4001, accountd, MariaDB on :3307,
and a fake OpenAI-compatible upstream on :18080. Try:

  curl -si http://127.0.0.1:4000/v1/chat/completions -H 'Authorization: Bearer sk-1234' \
    -H 'Content-Type: application/json' \
    -d '{"model": "llama3", "messages": [{"role": "user", "content": "Hello"}]}'

Logs: var/log/. Stop everything: deploy/quickstart.sh stop
MSG
