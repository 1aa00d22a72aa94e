-- The metadata rollup summed per UTC day, with and without provider, model and gateway (see the Postgres
-- migration). `day` is INTEGER Unix microseconds of UTC midnight.

CREATE TABLE spend_rollup_metadata_daily (
    day              INTEGER NOT NULL,
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
    PRIMARY KEY (meta_key, day, meta_value, provider, model, gateway)
);

-- Backfill from the hourly rollup (hours are whole multiples of 3,600,000,000 µs since the epoch, so flooring to a
-- multiple of a day's 86,400,000,000 µs is the UTC day).
INSERT INTO spend_rollup_metadata_daily (day, meta_key, meta_value, provider, model, gateway, requests, tokens_in,
    tokens_out, tokens_cached, tokens_reasoning, cost_nanos, errors)
SELECT hour - (((hour % 86400000000) + 86400000000) % 86400000000), meta_key, meta_value, provider, model, gateway,
       sum(requests), sum(tokens_in), sum(tokens_out), sum(tokens_cached), sum(tokens_reasoning), sum(cost_nanos),
       sum(errors)
FROM spend_rollup_metadata_hourly
GROUP BY 1, 2, 3, 4, 5, 6;

CREATE TABLE spend_rollup_metadata_value_daily (
    day              INTEGER NOT NULL,
    meta_key         TEXT NOT NULL,
    meta_value       TEXT NOT NULL,
    requests         INTEGER NOT NULL,
    tokens_in        INTEGER NOT NULL,
    tokens_out       INTEGER NOT NULL,
    tokens_cached    INTEGER NOT NULL,
    tokens_reasoning INTEGER NOT NULL,
    cost_nanos       INTEGER NOT NULL,
    errors           INTEGER NOT NULL,
    PRIMARY KEY (meta_key, day, meta_value)
);

INSERT INTO spend_rollup_metadata_value_daily (day, meta_key, meta_value, requests, tokens_in, tokens_out,
    tokens_cached, tokens_reasoning, cost_nanos, errors)
SELECT day, meta_key, meta_value, sum(requests), sum(tokens_in), sum(tokens_out), sum(tokens_cached),
       sum(tokens_reasoning), sum(cost_nanos), sum(errors)
FROM spend_rollup_metadata_daily
GROUP BY 1, 2, 3;
