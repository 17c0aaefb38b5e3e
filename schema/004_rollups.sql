-- 004_rollups.sql - what accountd keeps up to date in the same transaction as
-- the log rows, so that reports never scan spend_logs: daily rollups, spend per
-- entity and model, and team members' spend.

-- Which ledger transaction inserted a row: accountd tells the rows it inserted
-- from the ones that were already there (a redelivered event) by this tag.
-- Reports by team and end user read the rollups below, and /spend/logs filters by
-- key, user, request id and time only, so the log rows need no team or end-user
-- index: two fewer B-trees on every insert into the ledger's biggest table.
ALTER TABLE spend_logs ADD COLUMN batch_id BIGINT NOT NULL DEFAULT 0,
  DROP INDEX spend_logs_team_start, DROP INDEX spend_logs_end_user_start;

-- One row per UTC day of start_time and (key, internal user, team, end user,
-- model group, model, provider). group_key is a 128-bit hash of those seven
-- values (accountd computes it): a short primary key for a wide identity.
CREATE TABLE daily_spend (
  day                 DATE NOT NULL,
  group_key           BINARY(16) NOT NULL,
  api_key             CHAR(64) NOT NULL DEFAULT '',
  user                VARCHAR(255) NULL,
  team_id             VARCHAR(255) NULL,
  end_user            VARCHAR(255) NULL,
  model_group         VARCHAR(255) NOT NULL,
  model               VARCHAR(255) NOT NULL,
  custom_llm_provider VARCHAR(64) NOT NULL DEFAULT '',
  spend               DECIMAL(38,20) NOT NULL DEFAULT 0,
  prompt_tokens       BIGINT NOT NULL DEFAULT 0,
  completion_tokens   BIGINT NOT NULL DEFAULT 0,
  total_tokens        BIGINT NOT NULL DEFAULT 0,
  cache_read_input_tokens     BIGINT NOT NULL DEFAULT 0,
  cache_creation_input_tokens BIGINT NOT NULL DEFAULT 0,
  api_requests        BIGINT NOT NULL DEFAULT 0,
  successful_requests BIGINT NOT NULL DEFAULT 0,
  failed_requests     BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (day, group_key),
  KEY daily_spend_key (api_key, day),
  KEY daily_spend_user (user, day),
  KEY daily_spend_team (team_id, day),
  KEY daily_spend_end_user (end_user, day),
  KEY daily_spend_model (model, day)
) ENGINE=InnoDB;

-- The same per tag: one row per UTC day and (tag, key, model group, model,
-- provider); group_key hashes those five.
CREATE TABLE daily_tag_spend (
  day                 DATE NOT NULL,
  group_key           BINARY(16) NOT NULL,
  tag                 VARCHAR(255) NOT NULL,
  api_key             CHAR(64) NOT NULL DEFAULT '',
  model_group         VARCHAR(255) NOT NULL,
  model               VARCHAR(255) NOT NULL,
  custom_llm_provider VARCHAR(64) NOT NULL DEFAULT '',
  spend               DECIMAL(38,20) NOT NULL DEFAULT 0,
  prompt_tokens       BIGINT NOT NULL DEFAULT 0,
  completion_tokens   BIGINT NOT NULL DEFAULT 0,
  total_tokens        BIGINT NOT NULL DEFAULT 0,
  cache_read_input_tokens     BIGINT NOT NULL DEFAULT 0,
  cache_creation_input_tokens BIGINT NOT NULL DEFAULT 0,
  api_requests        BIGINT NOT NULL DEFAULT 0,
  successful_requests BIGINT NOT NULL DEFAULT 0,
  failed_requests     BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (day, group_key),
  KEY daily_tag_spend_tag (tag, day)
) ENGINE=InnoDB;

-- Lifetime spend of a key (k), internal user (u), team (t), end user (c) or
-- tag (g) on each model (LiteLLM's model_spend).
CREATE TABLE entity_model_spend (
  entity     CHAR(1) NOT NULL,
  entity_id  VARCHAR(255) NOT NULL,
  model      VARCHAR(255) NOT NULL,
  spend      DECIMAL(38,20) NOT NULL DEFAULT 0,
  PRIMARY KEY (entity, entity_id, model)
) ENGINE=InnoDB;

-- Team membership; spend is what the member's keys spent in the team
-- (max_budget_in_team lives in the member's budget).
CREATE TABLE team_members (
  team_id     VARCHAR(255) NOT NULL,
  user_id     VARCHAR(255) NOT NULL,
  role        VARCHAR(16) NOT NULL DEFAULT 'user',
  budget_id   VARCHAR(255) NULL,
  spend       DECIMAL(38,20) NOT NULL DEFAULT 0,
  created_at  DATETIME(6) NOT NULL,
  updated_at  DATETIME(6) NOT NULL,
  PRIMARY KEY (team_id, user_id),
  KEY team_members_user (user_id)
) ENGINE=InnoDB;
