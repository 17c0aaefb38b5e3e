-- 002_usage_estimated.sql - flag rows whose tokens proxyd counted itself,
-- because the upstream reported no usage (a stream without a usage chunk,
-- or one the client cut short).
ALTER TABLE spend_logs ADD COLUMN usage_estimated BOOLEAN NOT NULL DEFAULT FALSE AFTER pricing;
