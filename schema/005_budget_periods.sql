-- 005_budget_periods.sql - budget durations on keys, internal users and teams
-- (tags and budgets had them), and the start of each entity's current period.
--
-- spend is the spend of the current period: accountd adds an event to it only
-- when the request started at or after budget_period_start, and a reset sets it
-- to what the logs hold since the new period's start. Lifetime spend stays in
-- the logs, the rollups and entity_model_spend. End users and team members
-- follow the period of their budget (budget_id).
ALTER TABLE api_keys ADD COLUMN budget_duration VARCHAR(16) NULL,
  ADD COLUMN budget_reset_at DATETIME(6) NULL, ADD COLUMN budget_period_start DATETIME(6) NULL,
  ADD KEY api_keys_reset (budget_reset_at);
ALTER TABLE internal_users ADD COLUMN budget_duration VARCHAR(16) NULL,
  ADD COLUMN budget_reset_at DATETIME(6) NULL, ADD COLUMN budget_period_start DATETIME(6) NULL,
  ADD KEY internal_users_reset (budget_reset_at);
ALTER TABLE teams ADD COLUMN budget_duration VARCHAR(16) NULL,
  ADD COLUMN budget_reset_at DATETIME(6) NULL, ADD COLUMN budget_period_start DATETIME(6) NULL,
  ADD KEY teams_reset (budget_reset_at);
ALTER TABLE tags ADD COLUMN budget_period_start DATETIME(6) NULL,
  ADD KEY tags_reset (budget_reset_at);
ALTER TABLE budgets ADD COLUMN budget_period_start DATETIME(6) NULL,
  ADD KEY budgets_reset (budget_reset_at);
