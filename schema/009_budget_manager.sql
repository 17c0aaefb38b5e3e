-- 009_budget_manager.sql - the hosted BudgetManager (reportd's /get_budget,
-- /set_budget and /budget_manager/*): per-project users with a budget, a
-- cost and a cost per model, as LiteLLM's user_cost.json holds them.
--
-- Ids compare byte for byte and without PAD SPACE (utf8mb4_nopad_bin):
-- "alice" and "alice " are two users, as they are two keys of a JSON object.
-- Times are Unix seconds with microseconds (LiteLLM's time.time() floats).
CREATE TABLE budget_manager_users (
  project          VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
  user             VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
  total_budget     DECIMAL(38,20) NOT NULL,
  duration         VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NULL,
  created_at       DECIMAL(20,6) NOT NULL,
  last_updated_at  DECIMAL(20,6) NOT NULL,
  current_cost     DECIMAL(38,20) NOT NULL DEFAULT 0,
  PRIMARY KEY (project, user)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin;

CREATE TABLE budget_manager_model_cost (
  project  VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
  user     VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
  model    VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
  cost     DECIMAL(38,20) NOT NULL,
  PRIMARY KEY (project, user, model)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin;
