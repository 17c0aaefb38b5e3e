"""report_coarse.py - what coarser rollups would give the reports (report_bench.py
--coarser): builds, in the bench database, tables that do not exist in the schema, and
times against them (ANALYZE FORMAT=JSON: MariaDB's time to run the statement, without
sending rows) the statements a report would then need, next to the same report's
statement on today's rollups. Nothing in reportd reads these tables.

  est_key_day    per UTC day, key, model (and the key's user and team, model group and
                 provider): daily_spend without the end user. Serves group_by team,
                 api_key, model, user and api_key=, whose answers have no end user.
  est_key_month  the same per calendar month: a quarter is three rows per key and model
                 (plus the days of partial months from est_key_day).
  est_tag_day    per day and tag: /global/spend/tags and group_by=tag totals.
"""

import json

SUMS = ("SUM(spend) AS spend, SUM(prompt_tokens) AS prompt_tokens, SUM(completion_tokens)"
        " AS completion_tokens, SUM(total_tokens) AS total_tokens, SUM(api_requests)"
        " AS api_requests")

BUILD = """
DROP TABLE IF EXISTS est_key_day, est_key_month, est_tag_day;
CREATE TABLE est_key_day (id BIGINT NOT NULL AUTO_INCREMENT, PRIMARY KEY (day, id), KEY (id),
  KEY est_key_day_key (api_key, day)) ENGINE=InnoDB
  SELECT day, api_key, COALESCE(user, '') AS user, COALESCE(team_id, '') AS team_id,
  model_group, model, custom_llm_provider, {sums} FROM daily_spend
  GROUP BY day, api_key, user, team_id, model_group, model, custom_llm_provider;
CREATE TABLE est_key_month (id BIGINT NOT NULL AUTO_INCREMENT, PRIMARY KEY (month, id),
  KEY (id)) ENGINE=InnoDB
  SELECT CAST(DATE_FORMAT(day, '%Y-%m-01') AS DATE) AS month, api_key, user, team_id, model_group, model,
  custom_llm_provider, {sums} FROM est_key_day
  GROUP BY month, api_key, user, team_id, model_group, model, custom_llm_provider;
CREATE TABLE est_tag_day (PRIMARY KEY (day, tag)) ENGINE=InnoDB
  SELECT day, tag, {sums} FROM daily_tag_spend GROUP BY day, tag;
ANALYZE TABLE est_key_day, est_key_month, est_tag_day;
""".format(sums=SUMS)


def statements(plan, token):
    """(label, statement on today's rollups, statement on a coarser table)."""
    days = "d.day >= DATE'%s' AND d.day < DATE'%s'" % (plan.start, plan.end)
    team = ("SELECT d.day, COALESCE(t.team_alias, d.team_id, 'Unassigned Team'), d.model,"
            " d.spend, d.total_tokens, d.api_key FROM %s d LEFT JOIN teams t"
            " ON t.team_id = d.team_id WHERE " + days + " ORDER BY d.day")
    keys = ("SELECT d.api_key, d.model, SUM(d.spend), SUM(d.prompt_tokens),"
            " SUM(d.completion_tokens) FROM %s d WHERE %s GROUP BY d.api_key, d.model")
    month_days = ("d.month >= DATE'%s' AND d.month < DATE'%s'"
                  % (plan.start.replace(day=1), plan.end.replace(day=1)))
    tags = ("SELECT d.tag, SUM(d.spend) AS total, SUM(d.api_requests) FROM %s d WHERE " + days
            + " GROUP BY d.tag ORDER BY total DESC, d.tag")
    return [
        ("group_by=team rows", team % "daily_spend", team % "est_key_day"),
        ("group_by=api_key", keys % ("daily_spend", days), keys % ("est_key_day", days)),
        ("group_by=api_key, by month", keys % ("daily_spend", days),
         keys % ("est_key_month", month_days)),
        ("api_key=<busiest>", keys % ("daily_spend", days + " AND d.api_key = '%s'" % token),
         keys % ("est_key_day", days + " AND d.api_key = '%s'" % token)),
        ("global/spend/tags", tags % "daily_tag_spend", tags % "est_tag_day"),
    ]


def analyze_ms(db, sql):
    """MariaDB's own time for sql (best of three ANALYZE runs) and the rows it returns."""
    best, rows = None, None
    for _ in range(3):
        plan = json.loads(db.run("ANALYZE FORMAT=JSON " + sql, 3600)[0][0]
                          .replace("\\n", "\n").replace("\\t", "\t"))
        ms = plan["query_block"].get("r_total_time_ms")
        best = ms if best is None or ms < best else best
    rows = db.run("SELECT COUNT(*) FROM (%s) x" % sql, 3600)[0][0]
    return best, int(rows)


def estimate(db, plan, token):
    """Builds the tables; returns their row counts and, per statement, (label, now ms,
    now rows, coarse ms, coarse rows)."""
    db.run(BUILD, 7200)
    counts = {t: int(db.run("SELECT COUNT(*) FROM %s" % t)[0][0])
              for t in ("daily_spend", "daily_tag_spend", "est_key_day", "est_key_month",
                        "est_tag_day")}
    out = []
    for label, now, coarse in statements(plan, token):
        a, b = analyze_ms(db, now), analyze_ms(db, coarse)
        out.append((label, a[0], a[1], b[0], b[1]))
    return counts, out
