-- 011_usage_buckets.sql - every usage bucket a request was priced by, so a
-- bill can be explained line by line (libtollgate/price.h struct usage).
--
-- Token buckets are parts of prompt_tokens / completion_tokens, as the
-- upstream reported them: cache_creation_1h_input_tokens of
-- cache_creation_input_tokens; prompt audio / image tokens of prompt_tokens;
-- reasoning, completion audio / image tokens of completion_tokens.
-- NULL is "none" (0, not asked, not an image): most requests report none of
-- these, and accountd writes such rows without the columns (ledger_rows.c),
-- so they cost neither insert time nor row space (a NULL is a bit of the
-- row's null bitmap). search_context_size is '' when the request asked to
-- search without a size (medium); image_size is the size that was priced. A
-- per-second price's duration is end_time - start_time, both written by proxyd
-- from the one duration it priced.
-- New columns at the end, nullable: MariaDB adds them instantly, without
-- copying the table.
ALTER TABLE spend_logs
  ADD COLUMN cache_creation_1h_input_tokens BIGINT NULL,
  ADD COLUMN prompt_audio_tokens BIGINT NULL,
  ADD COLUMN prompt_image_tokens BIGINT NULL,
  ADD COLUMN reasoning_tokens BIGINT NULL,
  ADD COLUMN completion_audio_tokens BIGINT NULL,
  ADD COLUMN completion_image_tokens BIGINT NULL,
  ADD COLUMN web_search_requests BIGINT NULL,
  ADD COLUMN search_context_size VARCHAR(16) NULL,
  ADD COLUMN service_tier VARCHAR(16) NULL,
  ADD COLUMN images BIGINT NULL,
  ADD COLUMN image_size VARCHAR(32) NULL,
  ADD COLUMN image_quality VARCHAR(16) NULL,
  ALGORITHM=INSTANT;
