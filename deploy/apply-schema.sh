#!/usr/bin/env bash
# apply-schema.sh - apply Tollgate's schema migrations with the mariadb client.
#
# Does what `accountd -c CONFIG --migrate` does, for where that cannot run:
# a Galera cluster (some MariaDB releases refuse the named lock --migrate
# takes when wsrep is on), or a DBA who keeps DDL rights away from the
# daemons' account. Applies, in order, each NNN_*.sql migration newer than
# the highest version in schema_migrations, with the session settings the
# daemons use, and records each there. Stops at the first error. Run one at a
# time (it takes no lock), against one node of a cluster.
#
# Usage: apply-schema.sh [MARIADB-CLIENT-OPTIONS...] DATABASE
#   e.g. apply-schema.sh -h db1.example -u tollgate_admin -p tollgate
#   (-p asks for the password twice: once to read the version, once to apply;
#   an option file, --defaults-extra-file=FILE, avoids that)
# TOLLGATE_SCHEMA_DIR: the migrations (default: schema/ next to this script,
# as installed in <datadir>/tollgate, or ../schema in the source tree).
set -euo pipefail

PROG=${0##*/}
die() { echo "$PROG: $*" >&2; exit 1; }
[ $# -ge 1 ] || die "usage: $PROG [MARIADB-CLIENT-OPTIONS...] DATABASE"

here=$(cd "$(dirname "$0")" && pwd)
dir=${TOLLGATE_SCHEMA_DIR:-}
if [ -z "$dir" ]; then
  if [ -d "$here/schema" ]; then dir=$here/schema; else dir=$here/../schema; fi
fi
[ -d "$dir" ] || die "no schema directory $dir (set TOLLGATE_SCHEMA_DIR)"
client=$(command -v mariadb || command -v mysql) || die "the mariadb client is not installed"

# What libtollgate/db.c sets on every connection of the daemons.
SESSION="SET SESSION sql_mode='STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ENGINE_SUBSTITUTION,ERROR_FOR_DIVISION_BY_ZERO', time_zone='+00:00';"
TRACK="CREATE TABLE IF NOT EXISTS schema_migrations (version INT NOT NULL PRIMARY KEY,
  name VARCHAR(255) NOT NULL, applied_at DATETIME(6) NOT NULL) ENGINE=InnoDB;"

opts=("${@:1:$#-1}") db=${!#} # the client's options first (--no-defaults must lead)
current=$("$client" "${opts[@]}" --default-character-set=utf8mb4 -N -B \
          -e "$SESSION $TRACK SELECT COALESCE(MAX(version), 0) FROM schema_migrations;" "$db") ||
  die "cannot read the schema version"
[[ "$current" =~ ^[0-9]+$ ]] || die "unexpected schema version: $current"

script=$(mktemp)
trap 'rm -f "$script"' EXIT
echo "$SESSION" >"$script"
pending=()
for f in "$dir"/[0-9][0-9][0-9]_*.sql; do
  [ -e "$f" ] || die "no migrations in $dir"
  name=${f##*/}
  version=$((10#${name:0:3}))
  [ "$version" -gt "$current" ] || continue
  last=$(grep -v -e '^[[:space:]]*--' -e '^[[:space:]]*$' "$f" | tail -n 1)
  [[ "$last" == *";" ]] || die "$name does not end its last statement with ';'"
  cat "$f" >>"$script"
  printf '\nINSERT INTO schema_migrations (version, name, applied_at) VALUES (%d, %s, UTC_TIMESTAMP(6));\n' \
    "$version" "'$name'" >>"$script"
  pending+=("$name")
done

if [ ${#pending[@]} -eq 0 ]; then
  echo "$PROG: schema at version $current; nothing to apply"
  exit 0
fi
echo "$PROG: schema at version $current; applying ${pending[*]}"
"$client" "${opts[@]}" --default-character-set=utf8mb4 "$db" <"$script" ||
  die "a migration failed (see above)"
echo "$PROG: done"
