-- 012_config_budgets.sql - the period spend of the budgets set in the config
-- file (libtollgate/config_budgets.c): the proxy-wide litellm_settings.max_budget
-- ("proxy"), router_settings.provider_budget_config ("provider:<name>") and a
-- deployment's litellm_params.max_budget ("deployment:<model id>").
--
-- The config holds each maximum and period; accountd writes them here at
-- start and on reload (max_budget only for the reports), counts spend into
-- the rows that exist, and resets them like keys (accountd/resets.c). A
-- request counts in "proxy", its provider's row and its deployment's row,
-- so a reset recounts from spend_logs by custom_llm_provider and model_id.
CREATE TABLE config_budgets (
  budget_key           VARCHAR(255) NOT NULL PRIMARY KEY,
  max_budget           DECIMAL(38,20) NULL,
  spend                DECIMAL(38,20) NOT NULL DEFAULT 0,
  budget_duration      VARCHAR(16) NULL,
  budget_period_start  DATETIME(6) NULL,
  budget_reset_at      DATETIME(6) NULL,
  created_at           DATETIME(6) NOT NULL,
  updated_at           DATETIME(6) NOT NULL,
  KEY config_budgets_reset (budget_reset_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The deployment that served the request (model_info.id, as LiteLLM's
-- spend logs); NULL for rows written before this column.
ALTER TABLE spend_logs ADD COLUMN model_id VARCHAR(255) NULL, ALGORITHM=INSTANT;
