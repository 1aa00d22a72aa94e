-- Spend-limit buckets and the ids of the delta batches already added to them. Times are INTEGER Unix
-- microseconds, except window_start_ns (nanoseconds: rolling slots start at multiples of window/60 ns).

CREATE TABLE spend_buckets (
    rule_id         TEXT NOT NULL,
    bucket_key      TEXT NOT NULL,
    window_start_ns INTEGER NOT NULL,
    spent_nanos     INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (rule_id, bucket_key, window_start_ns)
);
CREATE INDEX spend_buckets_window_idx ON spend_buckets (rule_id, window_start_ns);
CREATE INDEX spend_buckets_updated_idx ON spend_buckets (updated_at);

CREATE TABLE spend_batches_applied (
    batch_id   TEXT PRIMARY KEY NOT NULL,
    applied_at INTEGER NOT NULL
);
CREATE INDEX spend_batches_applied_at_idx ON spend_batches_applied (applied_at);
