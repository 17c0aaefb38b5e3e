"""invariants.py - the ledger's invariants, checked by SQL against a stack's MariaDB.

    problems = invariants.check(stack)      # [] when everything holds

Checked, exactly (DECIMAL compared as DECIMAL):
- no request id twice in spend_logs, and none both in spend_logs and rejected_events;
- every spend counter equals the sum of the log rows it covers: keys, internal users,
  teams, team members, end users, tags (each tag once per request) over the requests
  that started in the owner's current budget period (budget_period_start; end users
  and team members: their budget's), and the per-entity per-model spend (lifetime);
- the daily rollups equal the logs grouped the same way: daily_spend by UTC day of
  start_time, key, user, team, end user, model group, model and provider (spend, every
  token count, requests, successes, failures), daily_tag_spend by day, tag, key, model
  group, model and provider, daily_tag_totals by day and tag (spend, prompt, completion
  and total tokens, requests, successes, failures), usage_rollup per day and per month
  and team, key, customer, model or tag alone (spend, tokens, requests).
A /global/spend/reset moves counters away from the logs on purpose; tests that call
it do not use this.

The expected cost of a request, independently of Tollgate's pricing code:

    invariants.list_cost(prompt_tokens, completion_tokens)   # a Decimal

is the tokens times the per-token prices of the model in libtollgate/data/prices.json
(read with Python's Decimal), for tests that check the ledger and the cost header
against it instead of against each other.

Each check puts the logs' side ('L') and the counters' side ('R') in one UNION ALL and
groups it by the identity: a group where the two differ, or that has one side only, is a
violation. Grouping sorts, so a check stays fast on hundreds of thousands of rows where
a join on many NULL-able columns would not.
"""

import functools
import json
from decimal import Decimal
from pathlib import Path

PRICE_FILE = Path(__file__).resolve().parents[2] / "libtollgate" / "data" / "prices.json"
HARNESS_MODEL = "groq/llama-3.1-8b-instant"  # the harness's model group llama3

SUMS = ("spend", "prompt_tokens", "completion_tokens", "total_tokens",
        "cache_read_input_tokens", "cache_creation_input_tokens")
COUNTS = ("api_requests", "successful_requests", "failed_requests")

# the distinct tags of every log row, as rows (request_id, tag)
LOG_TAGS = ("SELECT DISTINCT l.request_id, jt.tag FROM spend_logs l,"
            " JSON_TABLE(l.request_tags, '$[*]' COLUMNS (tag VARCHAR(255) PATH '$')) jt"
            " WHERE jt.tag <> ''")
TAGGED_LOGS = ("(SELECT s.*, x.tag FROM (%s) x JOIN spend_logs s"
               " ON s.request_id = x.request_id)" % LOG_TAGS)

# every log row once per config budget it counts in (schema/012_config_budgets.sql)
CONFIG_BUDGET_LOGS = " UNION ALL ".join(
    "SELECT %s AS budget_key, start_time, spend FROM spend_logs%s" % (k, w)
    for k, w in (("'proxy'", ""), ("CONCAT('provider:', custom_llm_provider)", ""),
                 ("CONCAT('deployment:', model_id)", " WHERE model_id IS NOT NULL")))


def _differ(label, ids, logs, counters, values=("spend",), both_sides=True):
    """Groups where logs and counters disagree on values. logs and counters are
    SELECTs of ids + values (same order); both_sides: a group on one side only is a
    violation too (else only the groups the counters' side has are checked, and a
    counter no log row covers must be 0)."""
    idl = ", ".join(ids)
    return ("SELECT '%s', %s FROM (SELECT 'L' AS src, t.* FROM (%s) t UNION ALL"
            " SELECT 'R', c.* FROM (%s) c) u GROUP BY %s HAVING %s"
            % (label, idl, logs, counters, idl, _having(values, both_sides)))


def _having(values, both_sides):
    nl, nr = "SUM(src = 'L')", "SUM(src = 'R')"
    bad = " OR ".join("SUM(IF(src = 'L', %s, -%s)) <> 0" % (v, v) for v in values)
    if both_sides:
        return "%s <> 1 OR %s <> 1 OR %s" % (nl, nr, bad)
    return "%s = 1 AND (%s)" % (nr, bad)  # a counter without logs must be 0


NO_PERIOD = "'1000-01-01'"


def _owner(label, table, id_col, log_col, source="spend_logs t", period="o.budget_period_start",
           join=""):
    """The owner's spend against its logs since its period's start."""
    logs = ("SELECT t.%s AS id, SUM(t.spend) AS spend FROM %s JOIN %s o ON o.%s = t.%s %s"
            " WHERE t.start_time >= COALESCE(%s, %s) GROUP BY t.%s"
            % (log_col, source, table, id_col, log_col, join, period, NO_PERIOD, log_col))
    return _differ(label, ("id",), logs, "SELECT %s, spend FROM %s" % (id_col, table),
                   both_sides=False)


def _rollup(table, dims, source, sums=SUMS):
    d = ", ".join(dims)
    logs = ("SELECT DATE(start_time) AS day, %s, %s, COUNT(*) AS api_requests,"
            " SUM(status = 'success') AS successful_requests,"
            " SUM(status <> 'success') AS failed_requests FROM %s g GROUP BY day, %s"
            % (d, ", ".join("SUM(%s) AS %s" % (c, c) for c in sums), source, d))
    rollup = "SELECT day, %s, %s FROM %s" % (d, ", ".join(sums + COUNTS), table)
    return _differ("%s != the logs" % table, ("day",) + tuple(dims), logs, rollup,
                   values=sums + COUNTS)


def queries():
    q = [
        "SELECT 'request id twice', request_id FROM spend_logs GROUP BY request_id"
        " HAVING COUNT(*) > 1",
        "SELECT 'both logged and rejected', r.request_id FROM rejected_events r"
        " JOIN spend_logs l ON l.request_id = r.request_id",
        _owner("api_keys.spend != its logs", "api_keys", "token", "api_key"),
        _owner("internal_users.spend != its logs", "internal_users", "user_id", "user"),
        _owner("teams.spend != its logs", "teams", "team_id", "team_id"),
        _owner("customers.spend != its logs", "customers", "user_id", "end_user",
               period="b.budget_period_start",
               join="LEFT JOIN budgets b ON b.budget_id = o.budget_id"),
        _owner("tags.spend != its logs", "tags", "tag", "tag", TAGGED_LOGS + " t"),
        _differ("team_members.spend != its logs", ("team_id", "user_id"),
                "SELECT t.team_id, t.user AS user_id, SUM(t.spend) AS spend FROM spend_logs t"
                " JOIN team_members m ON m.team_id = t.team_id AND m.user_id = t.user"
                " LEFT JOIN budgets b ON b.budget_id = m.budget_id"
                " WHERE t.start_time >= COALESCE(b.budget_period_start, %s)"
                " GROUP BY t.team_id, t.user" % NO_PERIOD,
                "SELECT team_id, user_id, spend FROM team_members", both_sides=False),
        _owner("config_budgets.spend != its logs", "config_budgets", "budget_key", "budget_key",
               "(%s) t" % CONFIG_BUDGET_LOGS),
    ]
    entity_logs = " UNION ALL ".join(
        "SELECT '%s' AS entity, %s AS entity_id, model, spend FROM spend_logs"
        " WHERE %s IS NOT NULL AND %s <> ''" % (e, c, c, c)
        for e, c in (("k", "api_key"), ("u", "user"), ("t", "team_id"), ("c", "end_user")))
    entity_logs += " UNION ALL SELECT 'g', tag, model, spend FROM %s t" % TAGGED_LOGS
    q.append(_differ("entity_model_spend != its logs", ("entity", "entity_id", "model"),
                     "SELECT entity, entity_id, model, SUM(spend) AS spend FROM (%s) e"
                     " GROUP BY entity, entity_id, model" % entity_logs,
                     "SELECT entity, entity_id, model, spend FROM entity_model_spend"))
    q.append(_rollup("daily_spend", ("api_key", "user", "team_id", "end_user", "model_group",
                                     "model", "custom_llm_provider"), "spend_logs"))
    q.append(_rollup("daily_tag_spend", ("tag", "api_key", "model_group", "model",
                                         "custom_llm_provider"), TAGGED_LOGS))
    q.append(_rollup("daily_tag_totals", ("tag",), TAGGED_LOGS,
                     sums=("spend", "prompt_tokens", "completion_tokens", "total_tokens")))
    q.append(_usage_rollup())
    return q


def _usage_rollup():
    """usage_rollup against the logs: each grain (day, month) and dimension."""
    sums = ("spend", "prompt_tokens", "completion_tokens", "total_tokens")
    cols = ", ".join(sums)
    parts = " UNION ALL ".join(
        "SELECT '%s' AS dim, start_time, %s AS gid, %s FROM %s" % (d, c, cols, src)
        for d, c, src in (("t", "COALESCE(team_id, '')", "spend_logs"),
                          ("k", "COALESCE(api_key, '')", "spend_logs"),
                          ("c", "COALESCE(end_user, '')", "spend_logs"),
                          ("m", "model", "spend_logs"),
                          ("g", "tag", TAGGED_LOGS + " t")))
    logs = ("SELECT g.grain, x.dim, IF(g.grain = 'd', DATE(x.start_time),"
            " CAST(DATE_FORMAT(x.start_time, '%%Y-%%m-01') AS DATE)) AS period,"
            " CONVERT(x.gid USING utf8mb4) COLLATE utf8mb4_bin AS group_id, %s,"
            " COUNT(*) AS api_requests FROM (%s) x"
            " CROSS JOIN (SELECT 'd' AS grain UNION ALL SELECT 'm') g"
            " GROUP BY g.grain, x.dim, period, group_id"
            % (", ".join("SUM(x.%s) AS %s" % (c, c) for c in sums), parts))
    rollup = "SELECT grain, dim, period, group_id, %s, api_requests FROM usage_rollup" % cols
    return _differ("usage_rollup != the logs", ("grain", "dim", "period", "group_id"), logs,
                   rollup, values=sums + ("api_requests",))


def check(stack, timeout=60):
    """Every violated invariant, as one line each (empty when all hold); timeout: the
    seconds each check may take (benchmarks' ledgers need more)."""
    problems = []
    for sql in queries():
        for row in stack.sql(sql, timeout=timeout):
            problems.append(" | ".join("NULL" if c is None else c for c in row))
    return problems


@functools.lru_cache(maxsize=None)
def price_entry(model=HARNESS_MODEL, price_file=PRICE_FILE):
    """model's entry of the price file, its prices exact (Decimal, read from the text)."""
    with open(price_file) as f:
        return json.load(f, parse_float=Decimal)["models"][model]


def list_price(model=HARNESS_MODEL, price_file=PRICE_FILE):
    """(input, output) price per token of model in the price file, as Decimals."""
    m = price_entry(model, price_file)
    return Decimal(m["input_cost_per_token"]), Decimal(m["output_cost_per_token"])


def list_cost(prompt_tokens, completion_tokens, model=HARNESS_MODEL):
    """The exact cost of a request of model with these token counts, from the price file."""
    price_in, price_out = list_price(model)
    return price_in * prompt_tokens + price_out * completion_tokens
