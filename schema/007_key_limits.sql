-- 007_key_limits.sql - the rest of /key/generate's fields: a soft budget (a
-- warning level, never a refusal), request tags the key adds to every request,
-- a shared budget (budget_id, as customers and team members have), and rate
-- limits. tpm_limit / rpm_limit / max_parallel_requests are stored and
-- reported as LiteLLM does.
ALTER TABLE api_keys ADD COLUMN soft_budget DECIMAL(38,20) NULL AFTER max_budget,
  ADD COLUMN tags JSON NOT NULL DEFAULT ('[]') AFTER metadata,
  ADD COLUMN budget_id VARCHAR(255) COLLATE utf8mb4_bin NULL,
  ADD COLUMN tpm_limit BIGINT NULL,
  ADD COLUMN rpm_limit BIGINT NULL,
  ADD COLUMN max_parallel_requests BIGINT NULL,
  ADD KEY api_keys_budget (budget_id);

-- A user's teams are its team_members rows; the JSON copy could only drift.
ALTER TABLE internal_users DROP COLUMN teams;
