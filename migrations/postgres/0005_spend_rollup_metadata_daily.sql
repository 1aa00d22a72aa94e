-- /spend by metadata.<key> without `hour`: the metadata rollup summed per UTC day, kept in the same transaction
-- as the hourly one. A 500-value key over 90 days is 24× fewer rows to read than from the hourly table. Ranges
-- that do not start and end on UTC midnight read their edge hours from spend_rollup_metadata_hourly.
-- spend_rollup_metadata_daily keeps provider, model and gateway (for groupings that combine them with the key);
-- spend_rollup_metadata_value_daily sums over them, for the common report "per key value (per day)", which then
-- reads one row per result row.

CREATE TABLE spend_rollup_metadata_daily (
    day              TIMESTAMPTZ NOT NULL,      -- UTC midnight
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
    PRIMARY KEY (meta_key, day, meta_value, provider, model, gateway)
)
-- Every batch adds to the rows of the current day: room left on each page lets those updates stay on the page
-- (HOT: no new index entry, the old version pruned in place) instead of moving every row on every batch. At the
-- default 100 % a 10-million-row fill left the table ten times the size of its live rows.
WITH (fillfactor = 70);

-- An upgraded database answers from the first query: the days so far, summed from the hourly rollup (UTC days in
-- whole microseconds since the epoch, never the session time zone).
INSERT INTO spend_rollup_metadata_daily (day, meta_key, meta_value, provider, model, gateway, requests, tokens_in,
    tokens_out, tokens_cached, tokens_reasoning, cost_nanos, errors)
SELECT 'epoch'::timestamptz
           + (floor(EXTRACT(EPOCH FROM hour) / 86400) * 86400000000)::int8 * interval '1 microsecond',
       meta_key, meta_value, provider, model, gateway, sum(requests)::int8, sum(tokens_in)::int8,
       sum(tokens_out)::int8, sum(tokens_cached)::int8, sum(tokens_reasoning)::int8, sum(cost_nanos)::int8,
       sum(errors)::int8
FROM spend_rollup_metadata_hourly
GROUP BY 1, 2, 3, 4, 5, 6;

CREATE TABLE spend_rollup_metadata_value_daily (
    day              TIMESTAMPTZ NOT NULL,      -- UTC midnight
    meta_key         TEXT NOT NULL,
    meta_value       TEXT NOT NULL,
    requests         BIGINT NOT NULL,
    tokens_in        BIGINT NOT NULL,
    tokens_out       BIGINT NOT NULL,
    tokens_cached    BIGINT NOT NULL,
    tokens_reasoning BIGINT NOT NULL,
    cost_nanos       BIGINT NOT NULL,
    errors           BIGINT NOT NULL,
    PRIMARY KEY (meta_key, day, meta_value)
)
WITH (fillfactor = 70);

INSERT INTO spend_rollup_metadata_value_daily (day, meta_key, meta_value, requests, tokens_in, tokens_out,
    tokens_cached, tokens_reasoning, cost_nanos, errors)
SELECT day, meta_key, meta_value, sum(requests)::int8, sum(tokens_in)::int8, sum(tokens_out)::int8,
       sum(tokens_cached)::int8, sum(tokens_reasoning)::int8, sum(cost_nanos)::int8, sum(errors)::int8
FROM spend_rollup_metadata_daily
GROUP BY 1, 2, 3;

-- `/spend` sums rollup rows per group with this: `SUM(bigint)` adds in `numeric` and builds a `numeric` total per
-- group, which cost as much as reading the rows when a report has tens of thousands of groups. `int8pl` raises
-- "bigint out of range" on overflow, as the `CAST(SUM(…) AS BIGINT)` it replaces did, so a total is never wrong.
CREATE AGGREGATE sum_int8 (BIGINT) (SFUNC = int8pl, STYPE = BIGINT, COMBINEFUNC = int8pl, PARALLEL = SAFE);
