"""report_gen.py - a quarter's ledger for the reportd benchmark, written straight into
MariaDB (accountd would need hours for 10 million events).

    plan = Plan(rows=10_000_000)        # the population and the quarter
    seconds = generate(plan, sql)       # sql(text, timeout) runs a script in one session
    problems = verify(plan, sql_rows)   # [] when the rollups equal the logs

What it writes, as accountd would have (accountd/ledger_rows.c, ledger_counters.c,
ledger_periods.c):
- teams team-T ("Team T"), internal users user-U (each in team U mod teams, with a team
  membership), keys (token = SHA-256 of "bench-key-K", alias bench-key-K) each owned by
  user K div (keys / users) and in that user's team; customers customer-C, each the
  customer of key C mod keys (customers are created on first use, as accountd does);
  tags tag-0 .. tag-(n-1);
- spend_logs: rows spread evenly over the quarter's days (request ids in time order, as
  proxyd's UUIDv7 are), keys Zipf-ish (key K with probability ~ (K+1)^-0.6: the busiest
  key makes about 6 % of the traffic), 80 % of requests with one of their key's customers,
  40 % with one or two tags (Zipf-ish too), 2 % failed (500, no tokens, cost 0), six
  models with their real prices from libtollgate/data/prices.json, cost = prompt tokens x
  input price + completion tokens x output price, exact;
- the rollups from the logs with accountd's semantics: daily_spend per UTC day of
  start_time and (key or '', user, team, end user, model group, model, provider),
  daily_tag_spend per day and (tag, key or '', model group, model, provider), each with
  accountd's own group_key (the first 128 bits of SHA-256 of "LEN:TEXT|" per field, NULL
  as "-|"), successes = HTTP 2xx; daily_tag_totals per day and tag (from the logs, not
  from daily_tag_spend); usage_rollup per day and per month and team, key, customer,
  model or tag (from daily_spend and daily_tag_totals, as schema 010 fills it);
  entity_model_spend per key, user, team, customer and tag and
  model (lifetime); the spend counters of keys, users, teams, members, customers
  and tags (no budget periods: lifetime spend).

Deterministic: every random choice is a 32-bit slice of the SHA-256 or MD5 of the row number.
"""

import datetime
import hashlib
import time
from decimal import Decimal

# (model_group, model, provider, call_type, input price, output price, share of requests)
# Prices: libtollgate/data/prices.json.
MODELS = (
    ("gpt-4o-mini", "gpt-4o-mini", "openai", "acompletion", "0.00000015", "0.0000006", 0.35),
    ("gpt-4o", "gpt-4o", "openai", "acompletion", "0.0000025", "0.00001", 0.20),
    ("claude-sonnet", "anthropic/claude-3-5-sonnet-20241022", "anthropic", "acompletion",
     "0.000003", "0.000015", 0.15),
    ("claude-haiku", "anthropic/claude-3-5-haiku-20241022", "anthropic", "acompletion",
     "0.0000008", "0.000004", 0.12),
    ("llama3", "groq/llama-3.1-8b-instant", "groq", "acompletion", "0.00000005",
     "0.00000008", 0.12),
    ("embeddings", "text-embedding-3-small", "openai", "aembedding", "0.00000002", "0", 0.06),
)
API_BASE = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com",
            "groq": "https://api.groq.com/openai/v1"}
CHUNK = 500000  # log rows per INSERT ... SELECT (one transaction each)


class Plan:
    def __init__(self, rows, days=90, keys=1000, teams=50, users=250, customers=5000, tags=10,
                 end=None):
        self.rows, self.days, self.keys, self.teams = rows, days, keys, teams
        self.users, self.customers, self.tags = min(users, keys), customers, tags
        self.end = end or datetime.datetime.now(datetime.timezone.utc).date()  # exclusive
        self.start = self.end - datetime.timedelta(days=days)

    @property
    def last_day(self):
        return self.end - datetime.timedelta(days=1)


def key_token(k):
    """api_keys.token of key k (the SHA-256 of its raw value "bench-key-K")."""
    return hashlib.sha256(b"bench-key-%d" % k).hexdigest()


# The random numbers of a row: 32-bit slices of the SHA-256 (8) and MD5 (4) of its
# number, hashed once per row (CRC32 would not do: it is linear, so the CRC32s of one
# row under two salts differ by a constant and the choices would be correlated).
SLICES = "kmfpclu" + "vtab"


def _r(salt):
    """A pseudo-random number in [0, 1) of row s (column h: its hashes' hex)."""
    i = SLICES.index(salt)
    return "(CONV(SUBSTRING(h, %d, 8), 16, 10) / 4294967296)" % (1 + 8 * i)


def _composite(cols):
    """accountd's composite key text (ledger_counters.c counters_compose)."""
    return "CONCAT(%s)" % ", ".join(
        "IF(%s IS NULL, '-|', CONCAT(LENGTH(%s), ':', %s, '|'))" % (c, c, c) for c in cols)


def _group_key(cols):
    return "UNHEX(LEFT(SHA2(%s, 256), 32))" % _composite(cols)


def population_sql(p):
    """Teams, users, memberships, keys, models, and the helper tables."""
    models = ", ".join("(%d, '%s', '%s', '%s', '%s', %s, %s, '%s')"
                       % (i, g, m, pv, ct, pin, pout, API_BASE[pv])
                       for i, (g, m, pv, ct, pin, pout, _) in enumerate(MODELS))
    per_user = max(1, p.keys // p.users)
    return """
DROP TABLE IF EXISTS bench_models, bench_keys;
CREATE TABLE bench_models (m INT NOT NULL PRIMARY KEY, model_group VARCHAR(64) NOT NULL,
  model VARCHAR(64) NOT NULL, provider VARCHAR(16) NOT NULL, call_type VARCHAR(16) NOT NULL,
  in_price DECIMAL(20,12) NOT NULL, out_price DECIMAL(20,12) NOT NULL,
  api_base VARCHAR(64) NOT NULL) ENGINE=InnoDB;
INSERT INTO bench_models VALUES {models};
CREATE TABLE bench_keys (k INT NOT NULL PRIMARY KEY,
  token CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, alias VARCHAR(32) NOT NULL,
  user_id VARCHAR(32) NOT NULL, team_id VARCHAR(32) NOT NULL) ENGINE=InnoDB;
INSERT INTO bench_keys SELECT seq, SHA2(CONCAT('bench-key-', seq), 256),
  CONCAT('bench-key-', seq), CONCAT('user-', FLOOR(seq / {per_user}) % {users}),
  CONCAT('team-', (FLOOR(seq / {per_user}) % {users}) % {teams}) FROM seq_0_to_{klast};
INSERT INTO teams (team_id, team_alias, created_at, updated_at)
  SELECT CONCAT('team-', seq), CONCAT('Team ', seq), NOW(6), NOW(6) FROM seq_0_to_{tlast};
INSERT INTO internal_users (user_id, created_at, updated_at)
  SELECT CONCAT('user-', seq), NOW(6), NOW(6)
  FROM seq_0_to_{ulast};
INSERT INTO team_members (team_id, user_id, created_at, updated_at)
  SELECT CONCAT('team-', seq % {teams}), CONCAT('user-', seq), NOW(6), NOW(6)
  FROM seq_0_to_{ulast};
INSERT INTO api_keys (token, key_name, key_alias, user_id, team_id, created_at, updated_at)
  SELECT token, CONCAT('sk-...', LPAD(k % 10000, 4, '0')), alias, user_id, team_id,
  NOW(6), NOW(6) FROM bench_keys;
""".format(models=models, per_user=per_user, users=p.users, teams=p.teams,
           klast=p.keys - 1, tlast=p.teams - 1, ulast=p.users - 1)


def model_case():
    """The model index from a uniform number, by MODELS' shares."""
    out, acc = [], 0.0
    for i, m in enumerate(MODELS[:-1]):
        acc += m[6]
        out.append("WHEN %s < %.4f THEN %d" % (_r("m"), acc, i))
    return "CASE %s ELSE %d END" % (" ".join(out), len(MODELS) - 1)


def logs_sql(p, first, last):
    """spend_logs rows first..last (1-based row numbers) as one INSERT ... SELECT."""
    span_us = p.days * 86400 * 1000000
    per_key = max(1, p.customers // p.keys)
    return """
INSERT INTO spend_logs (request_id, call_type, api_key, key_alias, spend, pricing,
  usage_estimated, prompt_tokens, completion_tokens, total_tokens, cache_read_input_tokens,
  cache_creation_input_tokens, start_time, end_time, model, model_group, custom_llm_provider,
  api_base, user, team_id, end_user, request_tags, metadata, status, http_status, batch_id,
  committed_at)
SELECT CONCAT('bench-', LPAD(HEX(r.s), 12, '0')), m.call_type, k.token, k.alias,
  r.pt * m.in_price + r.ct * m.out_price, 'priced', 0, r.pt, r.ct, r.pt + r.ct, 0, 0,
  r.st, r.st + INTERVAL r.lat MICROSECOND, m.model, m.model_group, m.provider, m.api_base,
  k.user_id, k.team_id,
  IF(r.cu < 0.2, NULL, CONCAT('customer-', r.k + {keys} * FLOOR(r.cu2 * {per_key}))),
  CASE WHEN r.tg < 0.6 THEN '[]' WHEN r.tg < 0.88 THEN CONCAT('["tag-', r.t1, '"]')
       ELSE CONCAT('["tag-', r.t1, '","tag-', (r.t1 + 1 + r.t2) % {tags}, '"]') END,
  '{{}}', IF(r.fail, 'failure', 'success'), IF(r.fail, 500, 200), 0,
  r.st + INTERVAL r.lat + 20000 MICROSECOND
FROM (SELECT s, st, k, mi, fail, IF(fail, 0, pt0) AS pt,
        IF(fail OR mi = {emb}, 0, ct0) AS ct, lat, cu, cu2, tg, t1, t2
      FROM (SELECT s, {start} + INTERVAL FLOOR((s - 1) * {step}) MICROSECOND AS st,
              FLOOR({keys} * POW({rk}, 2.5)) AS k, {model} AS mi, {rf} < 0.02 AS fail,
              20 + FLOOR(POW({rp}, 2) * 4000) AS pt0, 20 + FLOOR({rc} * 800) AS ct0,
              200000 + FLOOR({rl} * 5000000) AS lat, {ru} AS cu, {ru2} AS cu2, {rt} AS tg,
              FLOOR({tags} * POW({rt1}, 2)) AS t1, FLOOR({rt2} * {tags1}) AS t2
            FROM (SELECT seq AS s, CONCAT(SHA2(seq, 256), MD5(seq)) AS h
                  FROM seq_{first}_to_{last} LIMIT {n}) q) r0) r
JOIN bench_keys k ON k.k = r.k JOIN bench_models m ON m.m = r.mi
""".format(keys=p.keys, per_key=per_key, tags=p.tags, tags1=max(1, p.tags - 1),
           emb=len(MODELS) - 1, n=last - first + 1, start="TIMESTAMP'%s 00:00:00'" % p.start, step=span_us / p.rows, first=first,
           last=last, rk=_r("k"), model=model_case(), rf=_r("f"), rp=_r("p"), rc=_r("c"),
           rl=_r("l"), ru=_r("u"), ru2=_r("v"), rt=_r("t"), rt1=_r("a"), rt2=_r("b"))


# spend_logs' secondary indexes (schema 001, 004): dropped while the rows go in, built
# again afterwards (a sorted build is many times faster than 10 million inserts into
# three B-trees in random order).
LOG_INDEXES = (("spend_logs_start", "start_time"), ("spend_logs_key_start", "api_key, start_time"),
               ("spend_logs_user_start", "user, start_time"))

SUMS = ("SUM(spend), SUM(prompt_tokens), SUM(completion_tokens), SUM(total_tokens),"
        " SUM(cache_read_input_tokens), SUM(cache_creation_input_tokens), COUNT(*),"
        " SUM(http_status BETWEEN 200 AND 299), SUM(http_status NOT BETWEEN 200 AND 299)")
ROLLUP_COLS = ("spend, prompt_tokens, completion_tokens, total_tokens, cache_read_input_tokens,"
               " cache_creation_input_tokens, api_requests, successful_requests, failed_requests")
DAILY_DIMS = ("api_key", "user", "team_id", "end_user", "model_group", "model",
              "custom_llm_provider")
TAG_DIMS = ("tag", "api_key", "model_group", "model", "custom_llm_provider")
# daily_tag_totals' sums (no cache token counts)
TOTAL_SUMS = ("SUM(l.spend), SUM(l.prompt_tokens), SUM(l.completion_tokens),"
              " SUM(l.total_tokens), COUNT(*), SUM(l.http_status BETWEEN 200 AND 299),"
              " SUM(l.http_status NOT BETWEEN 200 AND 299)")
TOTAL_COLS = ("spend, prompt_tokens, completion_tokens, total_tokens, api_requests,"
              " successful_requests, failed_requests")
# the distinct non-empty tags of each log row
TAGGED = ("spend_logs l JOIN JSON_TABLE(l.request_tags, '$[*]' COLUMNS (tag VARCHAR(255)"
          " PATH '$')) jt")


def rollup_day_sql(day):
    """daily_spend, daily_tag_spend and daily_tag_totals of one day, from its log rows."""
    rng = ("start_time >= TIMESTAMP'%s 00:00:00' AND start_time < TIMESTAMP'%s 00:00:00'"
           % (day, day + datetime.timedelta(days=1)))
    dims = ", ".join(DAILY_DIMS)
    tdims = ", ".join("jt.tag" if d == "tag" else "l." + d for d in TAG_DIMS)
    return ("INSERT INTO daily_spend (day, group_key, %s, %s)"
            " SELECT DATE'%s', %s, %s, %s FROM spend_logs WHERE %s GROUP BY %s;\n"
            "INSERT INTO daily_tag_spend (day, group_key, %s, %s)"
            " SELECT DATE'%s', %s, %s, %s FROM %s WHERE jt.tag <> '' AND l.%s GROUP BY %s;\n"
            "INSERT INTO daily_tag_totals (day, tag, %s)"
            " SELECT DATE'%s', jt.tag, %s FROM %s WHERE jt.tag <> '' AND l.%s GROUP BY jt.tag;\n"
            % (dims, ROLLUP_COLS, day, _group_key(DAILY_DIMS), dims, SUMS, rng, dims,
               ", ".join(TAG_DIMS), ROLLUP_COLS, day,
               _group_key(["jt.tag" if d == "tag" else "l." + d for d in TAG_DIMS]), tdims,
               SUMS.replace("SUM(", "SUM(l.").replace("COUNT(*)", "COUNT(*)"), TAGGED,
               rng.replace(" AND start_time", " AND l.start_time"), tdims,
               TOTAL_COLS, day, TOTAL_SUMS, TAGGED,
               rng.replace(" AND start_time", " AND l.start_time")))


def usage_rollup_sql(start, end):
    """usage_rollup (the Usage page's: per day and per month, one team, key, customer,
    model or tag at a time, '' for none) of the days [start, end), from daily_spend and
    daily_tag_totals, added to rows already there (a month the range shares with them)."""
    days = "day >= DATE'%s' AND day < DATE'%s'" % (start, end)
    sums = "spend, prompt_tokens, completion_tokens, total_tokens, api_requests"
    parts = " UNION ALL ".join(
        "SELECT '%s' AS dim, day, %s AS id, %s FROM %s WHERE %s" % (d, c, sums, t, days)
        for d, c, t in (("t", "COALESCE(team_id, '')", "daily_spend"),
                        ("k", "api_key", "daily_spend"),
                        ("c", "COALESCE(end_user, '')", "daily_spend"),
                        ("m", "model", "daily_spend"), ("g", "tag", "daily_tag_totals")))
    return ("INSERT INTO usage_rollup (grain, dim, period, group_id, %s)"
            " SELECT g.grain, x.dim, IF(g.grain = 'd', x.day,"
            " CAST(DATE_FORMAT(x.day, '%%Y-%%m-01') AS DATE)) AS period,"
            " CONVERT(x.id USING utf8mb4) COLLATE utf8mb4_bin AS gid, %s FROM (%s) x"
            " CROSS JOIN (SELECT 'd' AS grain UNION ALL SELECT 'm') g"
            " GROUP BY g.grain, x.dim, period, gid"
            " ON DUPLICATE KEY UPDATE %s;\n"
            % (sums, ", ".join("SUM(x.%s)" % c for c in sums.split(", ")), parts,
               ", ".join("%s = usage_rollup.%s + VALUES(%s)" % (c, c, c)
                         for c in sums.split(", "))))


COUNTERS_SQL = """
INSERT INTO entity_model_spend (entity, entity_id, model, spend)
  SELECT 'k', api_key, model, SUM(spend) FROM daily_spend WHERE api_key <> ''
  GROUP BY api_key, model;
INSERT INTO entity_model_spend (entity, entity_id, model, spend)
  SELECT 'u', user, model, SUM(spend) FROM daily_spend WHERE user IS NOT NULL GROUP BY user, model;
INSERT INTO entity_model_spend (entity, entity_id, model, spend)
  SELECT 't', team_id, model, SUM(spend) FROM daily_spend WHERE team_id IS NOT NULL
  GROUP BY team_id, model;
INSERT INTO entity_model_spend (entity, entity_id, model, spend)
  SELECT 'c', end_user, model, SUM(spend) FROM daily_spend WHERE end_user IS NOT NULL
  GROUP BY end_user, model;
INSERT INTO entity_model_spend (entity, entity_id, model, spend)
  SELECT 'g', tag, model, SUM(spend) FROM daily_tag_spend GROUP BY tag, model;
INSERT INTO customers (user_id, spend, created_at, updated_at)
  SELECT entity_id, spend, NOW(6), NOW(6) FROM (SELECT entity_id, SUM(spend) AS spend
  FROM entity_model_spend WHERE entity = 'c' GROUP BY entity_id) x;
INSERT INTO tags (tag, spend, created_at, updated_at)
  SELECT entity_id, spend, NOW(6), NOW(6) FROM (SELECT entity_id, SUM(spend) AS spend
  FROM entity_model_spend WHERE entity = 'g' GROUP BY entity_id) x;
UPDATE api_keys o JOIN (SELECT entity_id, SUM(spend) AS spend FROM entity_model_spend
  WHERE entity = 'k' GROUP BY entity_id) x ON x.entity_id = o.token SET o.spend = x.spend;
UPDATE internal_users o JOIN (SELECT entity_id, SUM(spend) AS spend FROM entity_model_spend
  WHERE entity = 'u' GROUP BY entity_id) x ON x.entity_id = o.user_id SET o.spend = x.spend;
UPDATE teams o JOIN (SELECT entity_id, SUM(spend) AS spend FROM entity_model_spend
  WHERE entity = 't' GROUP BY entity_id) x ON x.entity_id = o.team_id SET o.spend = x.spend;
UPDATE team_members o JOIN (SELECT team_id, user, SUM(spend) AS spend FROM daily_spend
  WHERE team_id IS NOT NULL AND user IS NOT NULL GROUP BY team_id, user) x
  ON x.team_id = o.team_id AND x.user = o.user_id SET o.spend = x.spend;
"""

SESSION = "SET SESSION unique_checks = 0, foreign_key_checks = 0;\n"


def generate(p, sql, progress=print):
    """Writes the population, the logs and the rollups; returns the seconds per phase.
    sql(text, timeout) runs a script in one session."""
    t = {}
    t0 = time.monotonic()
    sql(population_sql(p), 600)
    sql("ALTER TABLE spend_logs %s;" % ", ".join("DROP INDEX " + n for n, _ in LOG_INDEXES), 600)
    for first in range(1, p.rows + 1, CHUNK):
        last = min(p.rows, first + CHUNK - 1)
        sql(SESSION + logs_sql(p, first, last), 3600)
        progress("  spend_logs: %d of %d rows (%.0f s)" % (last, p.rows, time.monotonic() - t0))
    t["logs"] = time.monotonic() - t0
    t1 = time.monotonic()
    sql("ALTER TABLE spend_logs %s;" % ", ".join("ADD KEY %s (%s)" % ix for ix in LOG_INDEXES),
        7200)
    t["indexes"] = time.monotonic() - t1
    progress("  indexes rebuilt (%.0f s)" % t["indexes"])
    t1 = time.monotonic()
    sql(SESSION + "".join(rollup_day_sql(p.start + datetime.timedelta(days=d))
                          for d in range(p.days)), 7200)
    sql(SESSION + usage_rollup_sql(p.start, p.end), 7200)
    t["rollups"] = time.monotonic() - t1
    progress("  rollups written (%.0f s)" % t["rollups"])
    t1 = time.monotonic()
    sql(SESSION + COUNTERS_SQL, 3600)
    sql("ANALYZE TABLE spend_logs, daily_spend, daily_tag_spend, daily_tag_totals,"
        " entity_model_spend, usage_rollup;", 3600)
    t["counters"] = time.monotonic() - t1
    t["total"] = time.monotonic() - t0
    return t


def _per_day(sql_rows, query, width=1):
    """The rows of query by their first width columns."""
    return {tuple(r[:width]) if width > 1 else r[0]: tuple(Decimal(v) for v in r[width:])
            for r in sql_rows(query, 3600)}


def verify(p, sql_rows):
    """The rollups against the logs over the quarter, exactly (DECIMAL sums compared
    as text): per day, spend, every token count, requests, successes and failures of
    daily_spend against spend_logs, and of daily_tag_spend against the tagged logs; per day
    and tag, daily_tag_totals (spend, token counts but the cache ones, requests, successes,
    failures) against the tagged logs; and entity_model_spend's total per entity kind.
    Returns the differences ([] = equal)."""
    rng = ("start_time >= TIMESTAMP'%s 00:00:00' AND start_time < TIMESTAMP'%s 00:00:00'"
           % (p.start, p.end))
    days = "day >= DATE'%s' AND day < DATE'%s'" % (p.start, p.end)
    checks = [
        ("daily_spend",
         "SELECT DATE(start_time) AS d, %s FROM spend_logs WHERE %s GROUP BY d" % (SUMS, rng),
         "SELECT day, SUM(spend), SUM(prompt_tokens), SUM(completion_tokens),"
         " SUM(total_tokens), SUM(cache_read_input_tokens), SUM(cache_creation_input_tokens),"
         " SUM(api_requests), SUM(successful_requests), SUM(failed_requests) FROM daily_spend"
         " WHERE %s GROUP BY day" % days),
        ("daily_tag_spend",
         "SELECT DATE(l.start_time) AS d, %s FROM %s WHERE jt.tag <> '' AND l.%s GROUP BY d"
         % (SUMS.replace("SUM(", "SUM(l."), TAGGED, rng),
         "SELECT day, SUM(spend), SUM(prompt_tokens), SUM(completion_tokens),"
         " SUM(total_tokens), SUM(cache_read_input_tokens), SUM(cache_creation_input_tokens),"
         " SUM(api_requests), SUM(successful_requests), SUM(failed_requests)"
         " FROM daily_tag_spend WHERE %s GROUP BY day" % days),
        ("daily_tag_totals",
         "SELECT DATE(l.start_time) AS d, jt.tag, %s FROM %s WHERE jt.tag <> '' AND l.%s"
         " GROUP BY d, jt.tag" % (TOTAL_SUMS, TAGGED, rng),
         "SELECT day, tag, %s FROM daily_tag_totals WHERE %s"
         % (TOTAL_COLS, days)),
        ("entity_model_spend",
         "SELECT 'k', SUM(IF(api_key <> '', spend, 0)) FROM spend_logs UNION ALL"
         " SELECT 'u', SUM(IF(user IS NOT NULL, spend, 0)) FROM spend_logs UNION ALL"
         " SELECT 't', SUM(IF(team_id IS NOT NULL, spend, 0)) FROM spend_logs UNION ALL"
         " SELECT 'c', SUM(IF(end_user IS NOT NULL, spend, 0)) FROM spend_logs UNION ALL"
         " SELECT 'g', SUM(l.spend) FROM %s WHERE jt.tag <> ''" % TAGGED,
         "SELECT entity, SUM(spend) FROM entity_model_spend GROUP BY entity"),
    ]
    # usage_rollup per grain, dimension and period, against the logs (every request is
    # in one group of team, key, customer and model; in each of its tags for tags)
    months = ("period >= DATE'%s' AND period < DATE'%s'"
              % (p.start.replace(day=1), p.end))
    for grain, period in (("d", "DATE(l.start_time)"),
                          ("m", "DATE_FORMAT(l.start_time, '%Y-%m-01')")):
        usage = ("SELECT period, SUM(spend), SUM(prompt_tokens), SUM(completion_tokens),"
                 " SUM(total_tokens), SUM(api_requests) FROM usage_rollup WHERE grain = '%s'"
                 " AND dim = '%%s' AND %s GROUP BY period"
                 % (grain, days.replace("day", "period") if grain == "d" else months))
        sums = ("SUM(l.spend), SUM(l.prompt_tokens), SUM(l.completion_tokens),"
                " SUM(l.total_tokens), COUNT(*)")
        for dim in "tkcm":
            checks.append(("usage_rollup %s %s" % (grain, dim),
                           "SELECT %s AS d, %s FROM spend_logs l WHERE l.%s GROUP BY d"
                           % (period, sums, rng), usage % dim))
        checks.append(("usage_rollup %s g" % grain,
                       "SELECT %s AS d, %s FROM %s WHERE jt.tag <> '' AND l.%s GROUP BY d"
                       % (period, sums, TAGGED, rng), usage % "g"))
    problems = []
    for name, logs, rollup in checks:
        width = 2 if name == "daily_tag_totals" else 1
        left, right = _per_day(sql_rows, logs, width), _per_day(sql_rows, rollup, width)
        if not left:
            problems.append("%s: no log rows in the quarter" % name)
        for k in sorted(set(left) | set(right)):
            if left.get(k) != right.get(k):
                problems.append("%s %s: logs %s, rollup %s" % (name, k, left.get(k), right.get(k)))
    return problems
