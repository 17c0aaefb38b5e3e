"""invariants.py - the ledger's invariants, checked by SQL against a stack's MariaDB.

    problems = invariants.check(stack)      # [] when everything holds

Checked, exactly (DECIMAL compared as DECIMAL):
- no request id twice in spend_logs, and none both in spend_logs and rejected_events;
- every spend counter equals the sum of the log rows it covers: keys, internal users,
  teams, team members, end users, tags (each tag once per request), and the
  per-entity per-model spend;
- the daily rollups equal the logs grouped the same way: daily_spend by UTC day of
  start_time, key, user, team, end user, model group, model and provider (spend, every
  token count, requests, successes, failures), daily_tag_spend by day, tag, key, model
  group, model and provider.
Counters that a reset or a manual change has moved away from the logs (spend reset,
budget periods) are out of scope until those land; the tests using this do not do them.
"""

# (counter table, its id column, the log rows' column it sums)
OWNER_COUNTERS = [
    ("api_keys", "token", "api_key"),
    ("internal_users", "user_id", "user"),
    ("teams", "team_id", "team_id"),
    ("customers", "user_id", "end_user"),
]

SUMS = ("spend", "prompt_tokens", "completion_tokens", "total_tokens",
        "cache_read_input_tokens", "cache_creation_input_tokens")

# the distinct tags of every log row, as rows (request_id, tag)
LOG_TAGS = ("SELECT DISTINCT l.request_id, jt.tag FROM spend_logs l,"
            " JSON_TABLE(l.request_tags, '$[*]' COLUMNS (tag VARCHAR(255) PATH '$')) jt"
            " WHERE jt.tag <> ''")


def _rollup_mismatch(table, dims, logs_from):
    """Rows where the rollup and the logs grouped by dims disagree, both ways."""
    d = ", ".join(dims)
    sums = ", ".join("SUM(%s) AS %s" % (c, c) for c in SUMS)
    logs = ("SELECT DATE(start_time) AS day, %s, %s, COUNT(*) AS api_requests,"
            " SUM(status = 'success') AS successful_requests,"
            " SUM(status <> 'success') AS failed_requests FROM %s GROUP BY day, %s"
            % (d, sums, logs_from, d))
    on = " AND ".join("r.%s <=> g.%s" % (c, c) for c in ("day",) + tuple(dims))
    cols = SUMS + ("api_requests", "successful_requests", "failed_requests")
    differ = " OR ".join("NOT (r.%s <=> g.%s)" % (c, c) for c in cols)
    return [
        "SELECT 'logs not in %s', g.day, %s FROM (%s) g LEFT JOIN %s r ON %s WHERE %s"
        % (table, ", ".join("g." + c for c in dims), logs, table, on, differ),
        "SELECT 'row of %s without logs', r.day, %s FROM %s r LEFT JOIN (%s) g ON %s"
        " WHERE g.day IS NULL" % (table, ", ".join("r." + c for c in dims), table, logs, on),
    ]


def queries():
    q = [
        "SELECT 'request id twice', request_id FROM spend_logs GROUP BY request_id"
        " HAVING COUNT(*) > 1",
        "SELECT 'both logged and rejected', r.request_id FROM rejected_events r"
        " JOIN spend_logs l ON l.request_id = r.request_id",
    ]
    for table, id_col, log_col in OWNER_COUNTERS:
        q.append("SELECT '%s.spend != its logs', o.%s, o.spend, l.s FROM %s o LEFT JOIN"
                 " (SELECT %s AS id, SUM(spend) AS s FROM spend_logs GROUP BY %s) l"
                 " ON l.id = o.%s WHERE o.spend <> COALESCE(l.s, 0)"
                 % (table, id_col, table, log_col, log_col, id_col))
    q.append("SELECT 'tags.spend != its logs', t.tag, t.spend, l.s FROM tags t LEFT JOIN"
             " (SELECT x.tag, SUM(s.spend) AS s FROM (%s) x JOIN spend_logs s"
             " ON s.request_id = x.request_id GROUP BY x.tag) l ON l.tag = t.tag"
             " WHERE t.spend <> COALESCE(l.s, 0)" % LOG_TAGS)
    q.append("SELECT 'team_members.spend != its logs', m.team_id, m.user_id, m.spend, l.s"
             " FROM team_members m LEFT JOIN (SELECT team_id, user, SUM(spend) AS s"
             " FROM spend_logs GROUP BY team_id, user) l"
             " ON l.team_id = m.team_id AND l.user = m.user_id"
             " WHERE m.spend <> COALESCE(l.s, 0)")
    entity_logs = " UNION ALL ".join(
        "SELECT '%s' AS entity, %s AS entity_id, model, spend FROM spend_logs"
        " WHERE %s IS NOT NULL AND %s <> ''" % (e, c, c, c)
        for e, c in (("k", "api_key"), ("u", "user"), ("t", "team_id"), ("c", "end_user")))
    entity_logs += (" UNION ALL SELECT 'g', x.tag, s.model, s.spend FROM (%s) x"
                    " JOIN spend_logs s ON s.request_id = x.request_id" % LOG_TAGS)
    grouped = ("SELECT entity, entity_id, model, SUM(spend) AS s FROM (%s) e"
               " GROUP BY entity, entity_id, model" % entity_logs)
    q.append("SELECT 'entity_model_spend != its logs', g.entity, g.entity_id, g.model FROM (%s) g"
             " LEFT JOIN entity_model_spend m ON m.entity = g.entity AND"
             " m.entity_id = g.entity_id AND m.model = g.model WHERE NOT (m.spend <=> g.s)"
             % grouped)
    q.append("SELECT 'entity_model_spend without logs', m.entity, m.entity_id, m.model"
             " FROM entity_model_spend m LEFT JOIN (%s) g ON m.entity = g.entity AND"
             " m.entity_id = g.entity_id AND m.model = g.model WHERE g.s IS NULL" % grouped)
    q += _rollup_mismatch("daily_spend", ("api_key", "user", "team_id", "end_user", "model_group",
                                          "model", "custom_llm_provider"), "spend_logs")
    tag_logs = ("(SELECT s.*, x.tag FROM (%s) x JOIN spend_logs s"
                " ON s.request_id = x.request_id) t" % LOG_TAGS)
    q += _rollup_mismatch("daily_tag_spend", ("tag", "api_key", "model_group", "model",
                                              "custom_llm_provider"), tag_logs)
    return q


def check(stack):
    """Every violated invariant, as one line each (empty when all hold)."""
    problems = []
    for sql in queries():
        for row in stack.sql(sql):
            problems.append(" | ".join("NULL" if c is None else c for c in row))
    return problems
