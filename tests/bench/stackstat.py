"""stackstat.py - what a running test stack (tests/e2e/harness.py) has done, for
the benchmarks: fake-upstream's counters, ledger rows, MariaDB's statement
counters and pid; and a private temp dir for the stack's MariaDB."""

import time


def mariadb_pid(stack):
    try:
        return int((stack.db_dir / "mysqld.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def upstream_stats(stack):
    st, _, body = stack.http("GET", stack.upstream_port, "/stats")
    if st != 200:
        raise RuntimeError("fake-upstream /stats answered %d" % st)
    return {k: int(v) for k, v in body.items()}


def ledger_rows(stack):
    return int(stack.sql_value("SELECT COUNT(*) FROM spend_logs"))


def wait_ledger(stack, expected, timeout):
    """Polls spend_logs until it holds `expected` rows; returns (rows, seconds, caught_up)."""
    t0 = time.monotonic()
    while True:
        rows = ledger_rows(stack)
        waited = time.monotonic() - t0
        if rows >= expected or waited >= timeout:
            return rows, waited, rows >= expected
        time.sleep(0.5)


DB_COUNTERS = ("Com_insert", "Com_update", "Com_stmt_prepare", "Com_stmt_execute", "Com_commit")


def db_status(stack):
    """MariaDB's global statement counters (SHOW GLOBAL STATUS) as ints."""
    rows = stack.sql("SHOW GLOBAL STATUS WHERE Variable_name IN (%s)"
                     % ", ".join("'%s'" % c for c in DB_COUNTERS))
    return {name: int(value) for name, value in rows}


