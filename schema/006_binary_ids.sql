-- 006_binary_ids.sql - ids compared byte for byte, and key hashes and request
-- ids stored as ASCII.
--
-- utf8mb4_unicode_ci made "Alice" and "alice" one internal user, team or
-- customer; LiteLLM (PostgreSQL text) keeps them apart, and so do we now. It
-- also made every index comparison walk Unicode weights: spend_logs' inserts
-- (three secondary indexes holding the key hash, the user and the request id)
-- cost about 40 % less with binary collations. Key hashes (SHA-256 hex) and
-- request ids (UUIDv7 text) are ASCII by construction; accountd refuses a
-- request id that is not (it goes to rejected_events).
ALTER DATABASE CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE teams CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE internal_users CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE api_keys CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE spend_logs CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE rejected_events CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE budgets CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE customers CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE tags CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE daily_spend CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE daily_tag_spend CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE entity_model_spend CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE team_members CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
-- After the conversions: in the same ALTER as a CONVERT TO, these would be
-- converted back to utf8mb4.
ALTER TABLE api_keys MODIFY token CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL;
ALTER TABLE spend_logs
  MODIFY request_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  MODIFY api_key CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '';
ALTER TABLE daily_spend MODIFY api_key CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '';
ALTER TABLE daily_tag_spend
  MODIFY api_key CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '';
