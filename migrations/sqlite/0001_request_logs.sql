-- Request log rows and the hourly rollups kept beside them (written in the same transaction as each batch).
-- Money is integer nano-dollars (1e-9 USD). Times are INTEGER Unix microseconds (UTC). Rollups are never deleted
-- by retention.

CREATE TABLE request_logs (
    id               TEXT PRIMARY KEY NOT NULL,  -- UUIDv7 made by the gateway: time-ordered, idempotency key
    created_at       INTEGER NOT NULL,
    gateway          TEXT,                       -- NULL when the request did not use a gateway URL
    provider         TEXT NOT NULL,
    model            TEXT NOT NULL,
    path             TEXT NOT NULL,
    status           INTEGER NOT NULL,
    success          INTEGER NOT NULL,
    cached           INTEGER NOT NULL,
    stream           INTEGER NOT NULL,
    tokens_in        INTEGER NOT NULL,
    tokens_out       INTEGER NOT NULL,
    tokens_cached    INTEGER NOT NULL,
    tokens_reasoning INTEGER NOT NULL,
    cost_nanos       INTEGER NOT NULL,
    cost_source      TEXT NOT NULL CHECK (cost_source IN ('catalog', 'custom', 'estimated', 'unpriced')),
    duration_ms      INTEGER NOT NULL,
    ttfb_ms          INTEGER,
    metadata         TEXT NOT NULL DEFAULT '{}',  -- JSON object
    event_id         TEXT,
    step             INTEGER NOT NULL DEFAULT 0,
    rule_decisions   TEXT NOT NULL DEFAULT '[]',  -- JSON
    error            TEXT,
    request_body     TEXT,
    response_body    TEXT
);

CREATE INDEX request_logs_created_idx ON request_logs (created_at DESC, id DESC);
CREATE INDEX request_logs_provider_model_idx ON request_logs (provider, model, created_at DESC);
CREATE INDEX request_logs_failed_idx ON request_logs (created_at DESC) WHERE NOT success;
CREATE INDEX request_logs_event_idx ON request_logs (event_id) WHERE event_id IS NOT NULL;

CREATE TABLE spend_rollup_hourly (
    hour             INTEGER NOT NULL,
    provider         TEXT NOT NULL,
    model            TEXT NOT NULL,
    gateway          TEXT NOT NULL,  -- '' = no gateway
    requests         INTEGER NOT NULL,
    tokens_in        INTEGER NOT NULL,
    tokens_out       INTEGER NOT NULL,
    tokens_cached    INTEGER NOT NULL,
    tokens_reasoning INTEGER NOT NULL,
    cost_nanos       INTEGER NOT NULL,
    errors           INTEGER NOT NULL,
    PRIMARY KEY (hour, provider, model, gateway)
);

CREATE TABLE spend_rollup_metadata_hourly (
    hour             INTEGER NOT NULL,
    meta_key         TEXT NOT NULL,
    meta_value       TEXT NOT NULL,
    provider         TEXT NOT NULL,
    model            TEXT NOT NULL,
    gateway          TEXT NOT NULL,
    requests         INTEGER NOT NULL,
    tokens_in        INTEGER NOT NULL,
    tokens_out       INTEGER NOT NULL,
    tokens_cached    INTEGER NOT NULL,
    tokens_reasoning INTEGER NOT NULL,
    cost_nanos       INTEGER NOT NULL,
    errors           INTEGER NOT NULL,
    PRIMARY KEY (meta_key, hour, meta_value, provider, model, gateway)
);
