-- The response cache: each row's cache key (what DELETE /api/cache/{key} takes) and, for a cached answer, what it
-- would have cost (the saving /spend reports). `cached` exists since 0001.

ALTER TABLE request_logs ADD COLUMN cache_key TEXT;
ALTER TABLE request_logs ADD COLUMN saved_nanos BIGINT NOT NULL DEFAULT 0;
