-- Request log rows and the hourly rollups kept beside them (written in the same transaction as each batch).
-- Money is integer nano-dollars (1e-9 USD). Rollups are never deleted by retention.

CREATE TABLE request_logs (
    id               TEXT PRIMARY KEY,          -- UUIDv7 made by the gateway: time-ordered, idempotency key
    created_at       TIMESTAMPTZ NOT NULL,
    gateway          TEXT,                      -- NULL when the request did not use a gateway URL
    provider         TEXT NOT NULL,
    model            TEXT NOT NULL,
    path             TEXT NOT NULL,
    status           INTEGER NOT NULL,
    success          BOOLEAN NOT NULL,
    cached           BOOLEAN NOT NULL,
    stream           BOOLEAN NOT NULL,
    tokens_in        BIGINT NOT NULL,
    tokens_out       BIGINT NOT NULL,
    tokens_cached    BIGINT NOT NULL,
    tokens_reasoning BIGINT NOT NULL,
    cost_nanos       BIGINT NOT NULL,
    cost_source      TEXT NOT NULL CHECK (cost_source IN ('catalog', 'custom', 'estimated', 'unpriced')),
    duration_ms      BIGINT NOT NULL,
    ttfb_ms          BIGINT,
    metadata         JSONB NOT NULL DEFAULT '{}',
    event_id         TEXT,
    step             INTEGER NOT NULL DEFAULT 0,
    rule_decisions   JSONB NOT NULL DEFAULT '[]',
    error            TEXT,
    request_body     TEXT,
    response_body    TEXT
);

-- /api/logs pages newest first with a (created_at, id) cursor; start/end filters and retention use it too.
CREATE INDEX request_logs_created_idx ON request_logs (created_at DESC, id DESC);
-- provider / model filters, still paged by time.
CREATE INDEX request_logs_provider_model_idx ON request_logs (provider, model, created_at DESC);
-- metadata.<key>=value filters as `metadata @> '{"key":"value"}'`.
CREATE INDEX request_logs_metadata_idx ON request_logs USING GIN (metadata jsonb_path_ops);
-- "show me the failures" is the common status/success filter; failures are a small fraction of rows.
CREATE INDEX request_logs_failed_idx ON request_logs (created_at DESC) WHERE NOT success;
CREATE INDEX request_logs_event_idx ON request_logs (event_id) WHERE event_id IS NOT NULL;

-- /spend by provider, model, gateway, hour, day. gateway '' = no gateway (a primary key column cannot be NULL).
CREATE TABLE spend_rollup_hourly (
    hour             TIMESTAMPTZ NOT NULL,
    provider         TEXT NOT NULL,
    model            TEXT NOT NULL,
    gateway          TEXT NOT NULL,
    requests         BIGINT NOT NULL,
    tokens_in        BIGINT NOT NULL,
    tokens_out       BIGINT NOT NULL,
    tokens_cached    BIGINT NOT NULL,
    tokens_reasoning BIGINT NOT NULL,
    cost_nanos       BIGINT NOT NULL,
    errors           BIGINT NOT NULL,
    PRIMARY KEY (hour, provider, model, gateway)
);

-- /spend by metadata.<key> (alone or with provider/model/gateway), for the configured rollup keys only.
CREATE TABLE spend_rollup_metadata_hourly (
    hour             TIMESTAMPTZ NOT NULL,
    meta_key         TEXT NOT NULL,
    meta_value       TEXT NOT NULL,
    provider         TEXT NOT NULL,
    model            TEXT NOT NULL,
    gateway          TEXT NOT NULL,
    requests         BIGINT NOT NULL,
    tokens_in        BIGINT NOT NULL,
    tokens_out       BIGINT NOT NULL,
    tokens_cached    BIGINT NOT NULL,
    tokens_reasoning BIGINT NOT NULL,
    cost_nanos       BIGINT NOT NULL,
    errors           BIGINT NOT NULL,
    PRIMARY KEY (meta_key, hour, meta_value, provider, model, gateway)
);
