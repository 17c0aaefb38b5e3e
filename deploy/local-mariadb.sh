#!/usr/bin/env bash
# local-mariadb.sh - run a private, throwaway MariaDB server for Tollgate.
#
# Used by the quickstart (DIR=./var/mariadb) and by the test suite (a temp dir
# per test). The server is a plain background process (no systemd), ignores
# /etc/mysql (--no-defaults everywhere) and keeps everything inside DIR:
#   DIR/data  DIR/mysqld.sock  DIR/mysqld.pid  DIR/mariadbd.log  DIR/install.log
# Works as root (runs mariadbd --user=root) and as a normal user.
# TOLLGATE_DB_BUFFER_POOL and TOLLGATE_DB_LOG_FILE size the InnoDB buffer pool and
# redo log (default 128M and 64M: small, for tests; the benchmarks set more).
#
# Usage:
#   local-mariadb.sh start  DIR PORT [DB USER PASSWORD]   (default tollgate tollgate secret)
#   local-mariadb.sh stop   DIR
#   local-mariadb.sh status DIR        exit 0 if running, 1 if not
#   local-mariadb.sh sql    DIR [DB]   SQL from stdin, as the admin account over the socket
set -euo pipefail

PROG=${0##*/}
die()   { echo "$PROG: error: $*" >&2; exit 1; }
usage() { echo "usage:" >&2; sed -n 's/^#   local-mariadb.sh/  '"$PROG"'/p' "$0" >&2; exit 2; }

find_bin() {  # $1 = program name; /usr/sbin is often missing from a normal user's PATH
    command -v "$1" 2>/dev/null && return 0
    local d; for d in /usr/sbin /usr/local/sbin /usr/bin; do
        [ -x "$d/$1" ] && { echo "$d/$1"; return 0; }
    done
    die "'$1' not found (install mariadb-server / mariadb-client)"
}

ME=$(id -un)
# install-db (auth socket) creates root@localhost and $ME@localhost, both unix_socket auth.
if [ "$(id -u)" -eq 0 ]; then ADMIN=root; USEROPT=(--user="$ME"); else ADMIN=$ME; USEROPT=(); fi

set_paths() {  # $1 = DIR (must exist); makes it absolute
    DIR=$(cd "$1" && pwd -P) || die "cannot access directory '$1'"
    DATA=$DIR/data SOCK=$DIR/mysqld.sock PIDF=$DIR/mysqld.pid LOG=$DIR/mariadbd.log
}

alive() {  # $1 = pid; a zombie (killed, not yet reaped) counts as dead
    kill -0 "$1" 2>/dev/null || return 1
    ! grep -q '^[^)]*) Z' "/proc/$1/stat" 2>/dev/null
}

server_pid() {  # prints the pid and succeeds if the pid file names a live mariadbd
    local pid
    [ -f "$PIDF" ] || return 1
    pid=$(tr -dc '0-9' <"$PIDF" 2>/dev/null) || return 1
    [ -n "$pid" ] && alive "$pid" || return 1
    if [ -r "/proc/$pid/comm" ]; then grep -q '^mariadbd\|^mysqld' "/proc/$pid/comm" || return 1; fi
    echo "$pid"
}

admin() { "$(find_bin mariadb-admin)" --no-defaults --socket="$SOCK" -u"$ADMIN" "$@"; }
client() { "$(find_bin mariadb)" --no-defaults --socket="$SOCK" -u"$ADMIN" --batch --skip-column-names "$@"; }
log_tail() { echo "---- last lines of $1 ----" >&2; tail -n 25 "$1" >&2 2>/dev/null || true; }

cmd_start() {
    [ $# -eq 1 ] || [ $# -eq 4 ] || usage
    local port=$1 db=${2:-tollgate} user=${3:-tollgate} pass=${4:-secret}
    [[ $port =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] || die "invalid port '$port'"
    [[ $db =~ ^[A-Za-z0-9_]+$ ]] || die "invalid database name '$db' (use [A-Za-z0-9_])"
    [[ $user =~ ^[A-Za-z0-9_]+$ ]] || die "invalid user name '$user' (use [A-Za-z0-9_])"

    mkdir -p "$RAWDIR" || die "cannot create directory '$RAWDIR'"
    set_paths "$RAWDIR"
    [ ${#SOCK} -lt 107 ] || die "socket path too long (${#SOCK} chars, limit 106): $SOCK; use a shorter DIR"

    local pid
    if pid=$(server_pid); then
        echo "mariadb already running (pid $pid): socket $SOCK"; exit 0
    fi
    # Temporary tables of its own: in a shared /tmp a server of another PID
    # namespace can pick the same file name and delete ours mid-query.
    mkdir -p "$DIR/tmp" || die "cannot create directory '$DIR/tmp'"
    export TMPDIR=$DIR/tmp

    if [ ! -d "$DATA/mysql" ]; then
        rm -rf "$DATA"
        local sockuser=(); [ "$ADMIN" != root ] && sockuser=(--auth-root-socket-user="$ME")
        if ! "$(find_bin mariadb-install-db)" --no-defaults --datadir="$DATA" \
                --auth-root-authentication-method=socket "${sockuser[@]}" --skip-test-db \
                "${USEROPT[@]}" </dev/null >"$DIR/install.log" 2>&1; then
            log_tail "$DIR/install.log"; die "mariadb-install-db failed (full log: $DIR/install.log)"
        fi
    fi

    rm -f "$PIDF" "$SOCK"
    local mariadbd; mariadbd=$(find_bin mariadbd)
    # Detached session; close inherited fds > 2 so no caller pipe is held open.
    ( for fd in /proc/$BASHPID/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && exec {fd}>&-; done 2>/dev/null
      exec setsid "$mariadbd" --no-defaults "${USEROPT[@]}" --datadir="$DATA" --socket="$SOCK" \
        --tmpdir="$DIR/tmp" \
        --port="$port" --bind-address=127.0.0.1 --pid-file="$PIDF" --log-error="$LOG" \
        --skip-name-resolve --innodb-buffer-pool-size="${TOLLGATE_DB_BUFFER_POOL:-128M}" \
        --innodb-log-file-size="${TOLLGATE_DB_LOG_FILE:-64M}" \
        --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
        </dev/null >>"$LOG" 2>&1 ) &
    pid=$!

    local i
    for ((i = 0; i < 60; i++)); do
        admin ping >/dev/null 2>&1 && break
        alive "$pid" || { log_tail "$LOG"; die "mariadbd exited during startup (log: $LOG)"; }
        sleep 0.5
    done
    if ! admin ping >/dev/null 2>&1; then
        log_tail "$LOG"; die "mariadbd did not answer ping within 30 s (log: $LOG)"
    fi

    local qpass=${pass//\\/\\\\}; qpass=${qpass//\'/\\\'}
    client <<SQL || die "failed to create database '$db' / user '$user'"
CREATE DATABASE IF NOT EXISTS \`$db\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS '$user'@'127.0.0.1' IDENTIFIED BY '$qpass';
CREATE USER IF NOT EXISTS '$user'@'localhost' IDENTIFIED BY '$qpass';
GRANT ALL PRIVILEGES ON \`$db\`.* TO '$user'@'127.0.0.1';
GRANT ALL PRIVILEGES ON \`$db\`.* TO '$user'@'localhost';
SQL
    echo "mariadb ready: 127.0.0.1:$port socket $SOCK"
}

cmd_stop() {
    [ -d "$RAWDIR" ] || { echo "mariadb not running (no directory $RAWDIR)"; exit 0; }
    set_paths "$RAWDIR"
    local pid i
    pid=$(server_pid) || { echo "mariadb not running ($DIR)"; exit 0; }
    admin shutdown >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 60; i++)); do
        alive "$pid" || { echo "mariadb stopped ($DIR)"; exit 0; }
        sleep 0.5
    done
    echo "$PROG: mariadbd (pid $pid) did not stop within 30 s; killing it" >&2
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$PIDF" "$SOCK"
}

[ $# -ge 2 ] || usage
CMD=$1 RAWDIR=$2; shift 2
case $CMD in
    start)  [ $# -ge 1 ] || usage; cmd_start "$@" ;;
    stop)   [ $# -eq 0 ] || usage; cmd_stop ;;
    status) [ $# -eq 0 ] || usage
            [ -d "$RAWDIR" ] || { echo "mariadb not running"; exit 1; }
            set_paths "$RAWDIR"
            if pid=$(server_pid); then echo "mariadb running (pid $pid) socket $SOCK"; exit 0; fi
            echo "mariadb not running ($DIR)"; exit 1 ;;
    sql)    [ $# -le 1 ] || usage
            [ -d "$RAWDIR" ] || die "no such directory '$RAWDIR'"
            set_paths "$RAWDIR"
            server_pid >/dev/null || die "mariadb is not running in $DIR"
            client ${1:+"$1"} ;;
    *)      usage ;;
esac
