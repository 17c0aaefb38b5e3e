#!/usr/bin/env bash
# quickstart.sh - set up and run Tollgate on this machine, offline.
#
# Installs the Debian packages, builds, starts a private MariaDB under
# ./var/mariadb (port 3307), applies the schema, then starts the fake
# upstream (:18080) and the three daemons with deploy/config.example.yaml
# (copied to ./var/config.yaml with the ports and the spool directory filled in).
# Logs go to ./var/log, pids to ./var/run. `quickstart.sh stop` stops it all.
#
# Environment (all optional), e.g. for a second copy beside the first, or for
# binaries already built:
#   TOLLGATE_BIN=DIR          run proxyd, accountd, reportd and fake-upstream from DIR
#                             as they are: no build (the packages are still checked)
#   QUICKSTART_VAR=DIR        keep the state (MariaDB, logs, pids, spool, the config)
#                             in DIR instead of ./var; `stop` needs the same DIR
#   QUICKSTART_PORT_OFFSET=N  add N to every port: proxyd 4000, reportd 4001,
#                             accountd's metrics 4002 and ZeroMQ 5555 and 5556,
#                             MariaDB 3307, the fake upstream 18080
set -euo pipefail
# the two directories may be given relative to where the script was started
VAR=$(realpath -m "${QUICKSTART_VAR:-$(dirname "$0")/../var}")
BIN=$(realpath -m "${TOLLGATE_BIN:-$(dirname "$0")/../build/bin}")
cd "$(dirname "$0")/.."
ROOT=$PWD
CONFIG=$VAR/config.yaml
export GROQ_API_KEY=quickstart-fake-key

die() { echo "quickstart: $*" >&2; exit 1; }

OFFSET=${QUICKSTART_PORT_OFFSET:-0}
[[ $OFFSET =~ ^[0-9]+$ ]] && [ "$OFFSET" -le 47000 ] ||
  die "QUICKSTART_PORT_OFFSET must be a number from 0 to 47000, not '$OFFSET'"
P_PROXYD=$((4000 + OFFSET)) P_REPORTD=$((4001 + OFFSET)) P_METRICS=$((4002 + OFFSET))
P_EVENTS=$((5555 + OFFSET)) P_UPDATES=$((5556 + OFFSET)) P_DB=$((3307 + OFFSET))
P_UPSTREAM=$((18080 + OFFSET))

running() { # pid: the process exists and is not a zombie
  [ -r "/proc/$1/stat" ] && ! grep -q '^[^)]*) Z' "/proc/$1/stat" 2>/dev/null
}

alive() { # pid name: the daemon is running (and not another program that got its pid)
  running "$1" && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]
}

stop_all() { # each daemon gets SIGTERM and up to 40 s (proxyd's grace is 30 s) to exit
  local failed=0 name pidfile pid
  for name in proxyd reportd accountd fake-upstream; do
    pidfile=$VAR/run/$name.pid
    if [ -f "$pidfile" ] && pid=$(cat "$pidfile") && alive "$pid" "$name"; then
      kill "$pid"
      for _ in $(seq 400); do alive "$pid" "$name" || break; sleep 0.1; done
      if alive "$pid" "$name"; then
        echo "quickstart: $name (pid $pid) did not stop within 40 s; killing it" >&2
        kill -9 "$pid" 2>/dev/null || true
        failed=1
      fi
    fi
    rm -f "$pidfile"
  done
  bash deploy/local-mariadb.sh stop "$VAR/mariadb"
  return $failed
}

wait_http() { # name port: the daemon answers HTTP (any status) and still runs
  local pid
  pid=$(cat "$VAR/run/$1.pid")
  for _ in $(seq 300); do
    running "$pid" || break
    curl -s -o /dev/null "http://127.0.0.1:$2/" && running "$pid" && return 0
    sleep 0.1
  done
  echo "quickstart: $1 did not come up on port $2; see $VAR/log/$1.log" >&2
  tail -5 "$VAR/log/$1.log" >&2
  exit 1
}

start() { # name args...
  local name=$1
  shift
  nohup "$@" >"$VAR/log/$name.log" 2>&1 </dev/null &
  echo $! >"$VAR/run/$name.pid"
}

# A CURVE key pair for accountd and one for proxyd, made once per VAR.
make_keys() {
  mkdir -p "$VAR/curve"
  chmod 700 "$VAR/curve"
  local who
  for who in accountd proxyd; do
    [ -f "$VAR/curve/$who.key" ] || "$BIN/accountd" --curve-keygen "$VAR/curve/$who" >/dev/null ||
      die "accountd --curve-keygen failed"
  done
}

# deploy/config.example.yaml with this run's ports, spool directory and keys
write_config() {
  local acc_pub prx_pub
  acc_pub=$(cat "$VAR/curve/accountd.pub") prx_pub=$(cat "$VAR/curve/proxyd.pub")
  # Z85 has '&', which sed's replacement reads as "the match"
  sed -e "s|/etc/tollgate/curve/|$VAR/curve/|" \
      -e "s|\"ACCOUNTD_PUBLIC_KEY\"|\"${acc_pub//&/\\&}\"|" \
      -e "s|\"PROXYD_PUBLIC_KEY\"|\"${prx_pub//&/\\&}\"|" \
      -e "s|\"127.0.0.1:4000\"|\"127.0.0.1:$P_PROXYD\"|" \
      -e "s|\"127.0.0.1:4001\"|\"127.0.0.1:$P_REPORTD\"|" \
      -e "s|\"127.0.0.1:4002\"|\"127.0.0.1:$P_METRICS\"|" \
      -e "s|\"tcp://127.0.0.1:5555\"|\"tcp://127.0.0.1:$P_EVENTS\"|" \
      -e "s|\"tcp://127.0.0.1:5556\"|\"tcp://127.0.0.1:$P_UPDATES\"|" \
      -e "s|@127.0.0.1:3307/|@127.0.0.1:$P_DB/|" \
      -e "s|http://127.0.0.1:18080|http://127.0.0.1:$P_UPSTREAM|g" \
      -e "s|spool_dir: \"var/spool\"|spool_dir: \"$VAR/spool\"|" \
      deploy/config.example.yaml >"$CONFIG"
  local want
  for want in "\"127.0.0.1:$P_PROXYD\"" "\"127.0.0.1:$P_REPORTD\"" "\"127.0.0.1:$P_METRICS\"" \
      "\"tcp://127.0.0.1:$P_EVENTS\"" "\"tcp://127.0.0.1:$P_UPDATES\"" "@127.0.0.1:$P_DB/" \
      "http://127.0.0.1:$P_UPSTREAM/v1" "spool_dir: \"$VAR/spool\"" "$VAR/curve/proxyd.key" \
      "$VAR/curve/accountd.key" "\"$acc_pub\"" "\"$prx_pub\""; do
    grep -qF -- "$want" "$CONFIG" ||
      die "deploy/config.example.yaml no longer has the value this script sets ($want)"
  done
}

if [ "${1:-}" = stop ]; then
  stop_all
  exit
fi

bash deploy/install-deps.sh
if [ -n "${TOLLGATE_BIN:-}" ]; then
  for b in proxyd accountd reportd fake-upstream; do
    [ -x "$BIN/$b" ] || die "TOLLGATE_BIN=$BIN has no $b"
  done
  echo "quickstart: using $BIN/{proxyd,accountd,reportd,fake-upstream}"
else
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j"$(nproc)" >/dev/null
  echo "quickstart: built build/bin/{proxyd,accountd,reportd,fake-upstream}"
fi

mkdir -p "$VAR/log" "$VAR/run"
stop_all >/dev/null 2>&1 || true
for port in $P_PROXYD $P_REPORTD $P_METRICS $P_EVENTS $P_UPDATES $P_DB $P_UPSTREAM; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "port $port is in use; stop what uses it or move all ports with QUICKSTART_PORT_OFFSET=N"
  fi
done
make_keys
write_config
bash deploy/local-mariadb.sh start "$VAR/mariadb" "$P_DB" tollgate tollgate secret
"$BIN/accountd" -c "$CONFIG" --migrate
start fake-upstream "$BIN/fake-upstream" --listen "127.0.0.1:$P_UPSTREAM" \
  --api-key "$GROQ_API_KEY" --prompt-tokens 1000 --completion-tokens 500
start accountd "$BIN/accountd" -c "$CONFIG"
start reportd "$BIN/reportd" -c "$CONFIG"
start proxyd "$BIN/proxyd" -c "$CONFIG"
wait_http fake-upstream "$P_UPSTREAM"
wait_http accountd "$P_METRICS"
wait_http reportd "$P_REPORTD"
wait_http proxyd "$P_PROXYD"

STOP="deploy/quickstart.sh stop"
[ -z "${QUICKSTART_VAR:-}" ] || STOP="QUICKSTART_VAR=$VAR $STOP"
cat <<MSG

Tollgate is running: proxyd on :$P_PROXYD, reportd on :$P_REPORTD, accountd, MariaDB on :$P_DB,
and a fake upstream (OpenAI-compatible and Anthropic) on :$P_UPSTREAM. Try:

  curl -si http://127.0.0.1:$P_PROXYD/v1/chat/completions -H 'Authorization: Bearer sk-1234' \\
    -H 'Content-Type: application/json' \\
    -d '{"model": "llama3", "messages": [{"role": "user", "content": "Hello"}]}'

  curl -si http://127.0.0.1:$P_PROXYD/v1/messages -H 'x-api-key: sk-1234' \\
    -H 'anthropic-version: 2023-06-01' -H 'Content-Type: application/json' \\
    -d '{"model": "claude", "max_tokens": 64, "messages": [{"role": "user", "content": "Hello"}]}'

Logs: $VAR/log/. Stop everything: $STOP
MSG
