-- /spend per group: how many requests the response cache answered and what they would have cost (`saved_nanos`
-- of the log rows with `cached`), summed in every rollup beside the other measures.
--
-- A cache hit is logged with cost_source 'cache', which the CHECK of 0001 refused: until this migration every such
-- row was set aside in `quarantine` instead of written. So the log holds no row the cache answered, and 0 is the
-- exact value of the new rollup columns on every existing row (POST /admin/recompute rebuilds them from the log).

ALTER TABLE request_logs DROP CONSTRAINT request_logs_cost_source_check;
ALTER TABLE request_logs ADD CONSTRAINT request_logs_cost_source_check
    CHECK (cost_source IN ('catalog', 'custom', 'estimated', 'unpriced', 'cache'));

ALTER TABLE spend_rollup_hourly ADD COLUMN cached_requests BIGINT NOT NULL DEFAULT 0;
ALTER TABLE spend_rollup_hourly ADD COLUMN saved_nanos BIGINT NOT NULL DEFAULT 0;
ALTER TABLE spend_rollup_metadata_hourly ADD COLUMN cached_requests BIGINT NOT NULL DEFAULT 0;
ALTER TABLE spend_rollup_metadata_hourly ADD COLUMN saved_nanos BIGINT NOT NULL DEFAULT 0;
ALTER TABLE spend_rollup_metadata_daily ADD COLUMN cached_requests BIGINT NOT NULL DEFAULT 0;
ALTER TABLE spend_rollup_metadata_daily ADD COLUMN saved_nanos BIGINT NOT NULL DEFAULT 0;
ALTER TABLE spend_rollup_metadata_value_daily ADD COLUMN cached_requests BIGINT NOT NULL DEFAULT 0;
ALTER TABLE spend_rollup_metadata_value_daily ADD COLUMN saved_nanos BIGINT NOT NULL DEFAULT 0;
