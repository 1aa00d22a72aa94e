-- Cache-write prompt tokens, so a recompute can reprice a row exactly (they cost more than plain input).

ALTER TABLE request_logs ADD COLUMN tokens_cache_write BIGINT NOT NULL DEFAULT 0;
