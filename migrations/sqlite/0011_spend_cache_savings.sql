-- Cached requests and their savings in every rollup, and cost_source 'cache' allowed in the log (see the Postgres
-- migration: no cache hit could be written before, so 0 is exact on every existing rollup row).
--
-- SQLite cannot change a CHECK in place: request_logs is rebuilt (the documented create, copy, drop, rename), with
-- its columns in their current order and its indexes. Nothing references the table, so no foreign key is affected.

CREATE TABLE request_logs_0011 (
    id                 TEXT PRIMARY KEY NOT NULL,
    created_at         INTEGER NOT NULL,
    gateway            TEXT,
    provider           TEXT NOT NULL,
    model              TEXT NOT NULL,
    path               TEXT NOT NULL,
    status             INTEGER NOT NULL,
    success            INTEGER NOT NULL,
    cached             INTEGER NOT NULL,
    stream             INTEGER NOT NULL,
    tokens_in          INTEGER NOT NULL,
    tokens_out         INTEGER NOT NULL,
    tokens_cached      INTEGER NOT NULL,
    tokens_reasoning   INTEGER NOT NULL,
    cost_nanos         INTEGER NOT NULL,
    cost_source        TEXT NOT NULL CHECK (cost_source IN ('catalog', 'custom', 'estimated', 'unpriced', 'cache')),
    duration_ms        INTEGER NOT NULL,
    ttfb_ms            INTEGER,
    metadata           TEXT NOT NULL DEFAULT '{}',
    event_id           TEXT,
    step               INTEGER NOT NULL DEFAULT 0,
    rule_decisions     TEXT NOT NULL DEFAULT '[]',
    error              TEXT,
    request_body       TEXT,
    response_body      TEXT,
    tokens_cache_write BIGINT NOT NULL DEFAULT 0,
    listed             INTEGER NOT NULL DEFAULT 1,
    cache_key          TEXT,
    saved_nanos        BIGINT NOT NULL DEFAULT 0
);

INSERT INTO request_logs_0011 (id, created_at, gateway, provider, model, path, status, success, cached, stream,
    tokens_in, tokens_out, tokens_cached, tokens_reasoning, cost_nanos, cost_source, duration_ms, ttfb_ms, metadata,
    event_id, step, rule_decisions, error, request_body, response_body, tokens_cache_write, listed, cache_key,
    saved_nanos)
SELECT id, created_at, gateway, provider, model, path, status, success, cached, stream,
    tokens_in, tokens_out, tokens_cached, tokens_reasoning, cost_nanos, cost_source, duration_ms, ttfb_ms, metadata,
    event_id, step, rule_decisions, error, request_body, response_body, tokens_cache_write, listed, cache_key,
    saved_nanos
FROM request_logs;

DROP TABLE request_logs;
ALTER TABLE request_logs_0011 RENAME TO request_logs;

CREATE INDEX request_logs_created_idx ON request_logs (created_at DESC, id DESC);
CREATE INDEX request_logs_provider_model_idx ON request_logs (provider, model, created_at DESC);
CREATE INDEX request_logs_failed_idx ON request_logs (created_at DESC) WHERE NOT success;
CREATE INDEX request_logs_event_idx ON request_logs (event_id) WHERE event_id IS NOT NULL;

ALTER TABLE spend_rollup_hourly ADD COLUMN cached_requests INTEGER NOT NULL DEFAULT 0;
ALTER TABLE spend_rollup_hourly ADD COLUMN saved_nanos INTEGER NOT NULL DEFAULT 0;
ALTER TABLE spend_rollup_metadata_hourly ADD COLUMN cached_requests INTEGER NOT NULL DEFAULT 0;
ALTER TABLE spend_rollup_metadata_hourly ADD COLUMN saved_nanos INTEGER NOT NULL DEFAULT 0;
ALTER TABLE spend_rollup_metadata_daily ADD COLUMN cached_requests INTEGER NOT NULL DEFAULT 0;
ALTER TABLE spend_rollup_metadata_daily ADD COLUMN saved_nanos INTEGER NOT NULL DEFAULT 0;
ALTER TABLE spend_rollup_metadata_value_daily ADD COLUMN cached_requests INTEGER NOT NULL DEFAULT 0;
ALTER TABLE spend_rollup_metadata_value_daily ADD COLUMN saved_nanos INTEGER NOT NULL DEFAULT 0;
