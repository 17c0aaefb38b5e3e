-- 008_daily_tag_totals.sql - spend per UTC day and tag, for the tag summaries.
--
-- /global/spend/tags and /spend/tags sum spend and requests per tag over a
-- range of days. daily_tag_spend answers that too, but it also splits by key,
-- model group, model and provider: a quarter of 10M requests gives it ~2.4M
-- rows, and summing them takes ~2 s. Per (day, tag) the same quarter is ~900
-- rows. accountd keeps this table in the same transaction as the other
-- rollups (ledger_counters.c); each request counts once per distinct tag, as
-- in daily_tag_spend, so per (day, tag) the two tables hold the same sums.
CREATE TABLE daily_tag_totals (
  day                 DATE NOT NULL,
  tag                 VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  spend               DECIMAL(38,20) NOT NULL DEFAULT 0,
  prompt_tokens       BIGINT NOT NULL DEFAULT 0,
  completion_tokens   BIGINT NOT NULL DEFAULT 0,
  total_tokens        BIGINT NOT NULL DEFAULT 0,
  api_requests        BIGINT NOT NULL DEFAULT 0,
  successful_requests BIGINT NOT NULL DEFAULT 0,
  failed_requests     BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (day, tag)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The history so far, from the finer rollup, so an upgraded database answers
-- right at once. Migrate with accountd stopped (a new one refuses to start
-- before the migration; an old one still running would not write this table).
INSERT INTO daily_tag_totals (day, tag, spend, prompt_tokens, completion_tokens, total_tokens,
                              api_requests, successful_requests, failed_requests)
  SELECT day, tag, SUM(spend), SUM(prompt_tokens), SUM(completion_tokens), SUM(total_tokens),
         SUM(api_requests), SUM(successful_requests), SUM(failed_requests)
  FROM daily_tag_spend GROUP BY day, tag;
