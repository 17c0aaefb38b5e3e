-- 003_customers_budgets_tags.sql - end users (customers), shared budgets and
-- tags, each with spend kept by accountd like keys, users and teams.

-- Budgets shared by customers (and later team members), as LiteLLM's BudgetTable.
CREATE TABLE budgets (
  budget_id        VARCHAR(255) NOT NULL PRIMARY KEY,
  max_budget       DECIMAL(38,20) NULL,
  soft_budget      DECIMAL(38,20) NULL,
  budget_duration  VARCHAR(16) NULL,
  budget_reset_at  DATETIME(6) NULL,
  tpm_limit        BIGINT NULL,
  rpm_limit        BIGINT NULL,
  created_at       DATETIME(6) NOT NULL,
  updated_at       DATETIME(6) NOT NULL
) ENGINE=InnoDB;

-- End users: the body's "user". Created on first use by accountd, so every
-- end user appears in reports; reportd's /customer/* manage them.
CREATE TABLE customers (
  user_id     VARCHAR(255) NOT NULL PRIMARY KEY,
  alias       VARCHAR(255) NULL,
  blocked     BOOLEAN NOT NULL DEFAULT FALSE,
  budget_id   VARCHAR(255) NULL,
  spend       DECIMAL(38,20) NOT NULL DEFAULT 0,
  created_at  DATETIME(6) NOT NULL,
  updated_at  DATETIME(6) NOT NULL,
  KEY customers_budget (budget_id)
) ENGINE=InnoDB;

-- Request tags (metadata.tags), with optional budgets.
CREATE TABLE tags (
  tag              VARCHAR(255) NOT NULL PRIMARY KEY,
  max_budget       DECIMAL(38,20) NULL,
  spend            DECIMAL(38,20) NOT NULL DEFAULT 0,
  budget_duration  VARCHAR(16) NULL,
  budget_reset_at  DATETIME(6) NULL,
  created_at       DATETIME(6) NOT NULL,
  updated_at       DATETIME(6) NOT NULL
) ENGINE=InnoDB;
