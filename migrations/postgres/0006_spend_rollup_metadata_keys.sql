-- The metadata keys the rollups count, shared by every replica: the keys that any replica's spend rules (file or
-- API) split or filter on, each added once with its history (see crates/store/src/metadata_keys.rs for the
-- protocol that makes a key's rollup count every log row exactly once). Keys are never removed: dropping one
-- would leave a hole that the log, after retention, can no longer fill.

CREATE TABLE spend_rollup_metadata_keys (
    meta_key TEXT PRIMARY KEY,
    -- Order in which keys were added: when a row carries more rolled-up keys than `max_rollup_keys_per_row`, the
    -- oldest keys win, so adding a key never takes a row out of an older key's rollup.
    position BIGINT NOT NULL UNIQUE,
    added_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- An upgraded database keeps rolling up the keys it already has rows for (in the sorted order the rollup used to
-- pick them in), without counting their history again.
INSERT INTO spend_rollup_metadata_keys (meta_key, position)
SELECT meta_key, row_number() OVER (ORDER BY meta_key)
FROM (SELECT DISTINCT meta_key FROM spend_rollup_metadata_hourly) AS keys;
