-- The metadata keys the rollups count (see the Postgres migration). `added_at` is INTEGER Unix microseconds.

CREATE TABLE spend_rollup_metadata_keys (
    meta_key TEXT PRIMARY KEY NOT NULL,
    position INTEGER NOT NULL UNIQUE,
    added_at INTEGER NOT NULL
);

INSERT INTO spend_rollup_metadata_keys (meta_key, position, added_at)
SELECT meta_key, row_number() OVER (ORDER BY meta_key), CAST(strftime('%s', 'now') AS INTEGER) * 1000000
FROM (SELECT DISTINCT meta_key FROM spend_rollup_metadata_hourly);
