-- 010_usage_rollup.sql - spend per UTC day and per UTC month of each team,
-- key, customer, model and tag alone, for the Usage page (/ui/api/usage).
--
-- The page's top lists sum every group of five dimensions over the range, and
-- its chart reads each day of the top groups. daily_spend splits each day by
-- key, user, team, end user, model group, model and provider at once: a
-- quarter of 1M requests is ~600k of its rows and reading them takes ~1.6 s.
-- Here one dimension at a time, and whole months in one row: a calendar
-- quarter is 3 x (teams + keys + customers + models + tags) month rows, plus
-- a day row per group and day for the chart and for a range's partial months.
--
--   grain     'd': period is the day; 'm': period is the month's first day
--   dim       't' team, 'k' key (token hash), 'c' customer (end user),
--             'm' model (the deployment's), 'g' tag
--   group_id  the id; '' for none (no team, no key, no customer): accountd
--             never writes an empty id for those (ledger_nonempty)
--
-- accountd keeps this table in the same transaction as the other rollups
-- (ledger_counters.c); a request counts once per distinct tag, as in
-- daily_tag_totals. Each request is in exactly one group of t, k, c and m, so
-- the model rows of a period add up to its total. Ids compare byte-wise.
CREATE TABLE usage_rollup (
  grain             CHAR(1) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  dim               CHAR(1) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  period            DATE NOT NULL,
  group_id          VARCHAR(255) NOT NULL,
  spend             DECIMAL(38,20) NOT NULL DEFAULT 0,
  prompt_tokens     BIGINT NOT NULL DEFAULT 0,
  completion_tokens BIGINT NOT NULL DEFAULT 0,
  total_tokens      BIGINT NOT NULL DEFAULT 0,
  api_requests      BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (grain, dim, period, group_id),
  KEY usage_rollup_group (grain, dim, group_id, period)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The history so far, from the finer rollups, so an upgraded database answers
-- right at once. Migrate with accountd stopped (a new one refuses to start
-- before the migration; an old one still running would not write this table).
INSERT INTO usage_rollup (grain, dim, period, group_id, spend, prompt_tokens,
                          completion_tokens, total_tokens, api_requests)
  SELECT g.grain, x.dim,
         IF(g.grain = 'd', x.day, CAST(DATE_FORMAT(x.day, '%Y-%m-01') AS DATE)) AS period,
         CONVERT(x.id USING utf8mb4) COLLATE utf8mb4_bin AS gid, SUM(x.spend), SUM(x.prompt_tokens), SUM(x.completion_tokens),
         SUM(x.total_tokens), SUM(x.api_requests)
  FROM (SELECT 't' AS dim, day, COALESCE(team_id, '') AS id, spend, prompt_tokens,
               completion_tokens, total_tokens, api_requests FROM daily_spend
        UNION ALL
        SELECT 'k', day, api_key, spend, prompt_tokens, completion_tokens, total_tokens,
               api_requests FROM daily_spend
        UNION ALL
        SELECT 'c', day, COALESCE(end_user, ''), spend, prompt_tokens, completion_tokens,
               total_tokens, api_requests FROM daily_spend
        UNION ALL
        SELECT 'm', day, model, spend, prompt_tokens, completion_tokens, total_tokens,
               api_requests FROM daily_spend
        UNION ALL
        SELECT 'g', day, tag, spend, prompt_tokens, completion_tokens, total_tokens,
               api_requests FROM daily_tag_totals) x
  CROSS JOIN (SELECT 'd' AS grain UNION ALL SELECT 'm') g
  GROUP BY g.grain, x.dim, period, gid;
