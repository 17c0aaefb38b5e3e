-- 013_owner_rate_limits.sql - rate limits of internal users and teams, as
-- LiteLLM's user and team tables hold them (issue 19). proxyd enforces them
-- with the key's own (api_keys' tpm_limit / rpm_limit / max_parallel_requests,
-- 007); a team member's and a customer's come from their budget row
-- (budgets.tpm_limit / rpm_limit, 003).
ALTER TABLE internal_users ADD COLUMN tpm_limit BIGINT NULL, ADD COLUMN rpm_limit BIGINT NULL;
ALTER TABLE teams ADD COLUMN tpm_limit BIGINT NULL, ADD COLUMN rpm_limit BIGINT NULL;
