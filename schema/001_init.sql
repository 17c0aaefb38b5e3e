-- 001_init.sql - the ledger and the entities that own spend.
--
-- Money is DECIMAL(38,20): the scale of the price map (see libtollgate/money.h),
-- so a cost is stored exactly and every counter equals the sum of its logs.
-- Times are UTC, DATETIME(6).

CREATE TABLE teams (
  team_id        VARCHAR(255) NOT NULL PRIMARY KEY,
  team_alias     VARCHAR(255) NULL,
  max_budget     DECIMAL(38,20) NULL,
  spend          DECIMAL(38,20) NOT NULL DEFAULT 0,
  models         JSON NOT NULL DEFAULT ('[]'),
  metadata       JSON NOT NULL DEFAULT ('{}'),
  blocked        BOOLEAN NOT NULL DEFAULT FALSE,
  created_at     DATETIME(6) NOT NULL,
  updated_at     DATETIME(6) NOT NULL
) ENGINE=InnoDB;

CREATE TABLE internal_users (
  user_id        VARCHAR(255) NOT NULL PRIMARY KEY,
  user_email     VARCHAR(255) NULL,
  user_alias     VARCHAR(255) NULL,
  user_role      VARCHAR(32) NOT NULL DEFAULT 'internal_user',
  max_budget     DECIMAL(38,20) NULL,
  spend          DECIMAL(38,20) NOT NULL DEFAULT 0,
  models         JSON NOT NULL DEFAULT ('[]'),
  teams          JSON NOT NULL DEFAULT ('[]'),
  metadata       JSON NOT NULL DEFAULT ('{}'),
  created_at     DATETIME(6) NOT NULL,
  updated_at     DATETIME(6) NOT NULL
) ENGINE=InnoDB;

-- Virtual keys; token is the SHA-256 hex of the raw key, never the key itself.
CREATE TABLE api_keys (
  token          CHAR(64) NOT NULL PRIMARY KEY,
  key_name       VARCHAR(32) NOT NULL,
  key_alias      VARCHAR(255) NULL,
  user_id        VARCHAR(255) NULL,
  team_id        VARCHAR(255) NULL,
  max_budget     DECIMAL(38,20) NULL,
  spend          DECIMAL(38,20) NOT NULL DEFAULT 0,
  models         JSON NOT NULL DEFAULT ('[]'),
  metadata       JSON NOT NULL DEFAULT ('{}'),
  permissions    JSON NOT NULL DEFAULT ('{}'),
  blocked        BOOLEAN NOT NULL DEFAULT FALSE,
  expires        DATETIME(6) NULL,
  created_at     DATETIME(6) NOT NULL,
  updated_at     DATETIME(6) NOT NULL,
  UNIQUE KEY api_keys_alias (key_alias),
  KEY api_keys_user (user_id),
  KEY api_keys_team (team_id)
) ENGINE=InnoDB;

-- One row per request; request_id is minted by proxyd and makes writes idempotent.
CREATE TABLE spend_logs (
  request_id         VARCHAR(64) NOT NULL PRIMARY KEY,
  call_type          VARCHAR(32) NOT NULL,
  api_key            CHAR(64) NOT NULL DEFAULT '',
  key_alias          VARCHAR(255) NULL,
  spend              DECIMAL(38,20) NOT NULL,
  pricing            VARCHAR(16) NOT NULL,   -- priced | unpriced | invalid
  prompt_tokens      BIGINT NOT NULL DEFAULT 0,
  completion_tokens  BIGINT NOT NULL DEFAULT 0,
  total_tokens       BIGINT NOT NULL DEFAULT 0,
  cache_read_input_tokens     BIGINT NOT NULL DEFAULT 0,
  cache_creation_input_tokens BIGINT NOT NULL DEFAULT 0,
  start_time         DATETIME(6) NOT NULL,
  end_time           DATETIME(6) NOT NULL,
  model              VARCHAR(255) NOT NULL,
  model_group        VARCHAR(255) NOT NULL,
  custom_llm_provider VARCHAR(64) NOT NULL DEFAULT '',
  api_base           VARCHAR(1024) NOT NULL DEFAULT '',
  user               VARCHAR(255) NULL,       -- internal user of the key
  team_id            VARCHAR(255) NULL,
  end_user           VARCHAR(255) NULL,       -- body "user" (customer)
  request_tags       JSON NOT NULL DEFAULT ('[]'),
  metadata           JSON NOT NULL DEFAULT ('{}'),
  status             VARCHAR(16) NOT NULL,    -- success | failure
  http_status        SMALLINT NOT NULL,
  committed_at       DATETIME(6) NOT NULL,
  KEY spend_logs_start (start_time),
  KEY spend_logs_key_start (api_key, start_time),
  KEY spend_logs_user_start (user, start_time),
  KEY spend_logs_team_start (team_id, start_time),
  KEY spend_logs_end_user_start (end_user, start_time)
) ENGINE=InnoDB;

-- Events accountd could not write (e.g. a value too long for its column):
-- kept whole, never dropped, for an operator to inspect and replay.
CREATE TABLE rejected_events (
  id             BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  request_id     VARCHAR(255) NOT NULL,
  error          VARCHAR(1024) NOT NULL,
  payload        MEDIUMBLOB NOT NULL,         -- the UsageEvent, protobuf-encoded
  received_at    DATETIME(6) NOT NULL,
  KEY rejected_events_request (request_id)
) ENGINE=InnoDB;
