-- Spend-limit buckets shared by every replica, and the ids of the delta batches already added to them.

CREATE TABLE spend_buckets (
    rule_id         TEXT NOT NULL,
    bucket_key      TEXT NOT NULL,
    -- Unix nanoseconds: rolling-window slots start at multiples of window/60 ns, which a TIMESTAMPTZ (microseconds)
    -- would round, and the engine matches starts exactly.
    window_start_ns BIGINT NOT NULL,
    spent_nanos     BIGINT NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, bucket_key, window_start_ns)
);
-- Start-up load: every bucket of a rule's current window.
CREATE INDEX spend_buckets_window_idx ON spend_buckets (rule_id, window_start_ns);
-- Each sync reads the rows any replica changed since its previous read.
CREATE INDEX spend_buckets_updated_idx ON spend_buckets (updated_at);

-- A delta batch is added at most once: its id is claimed in the same statement that adds it, so a retry after an
-- ambiguous commit, or a replay from the spill file, is a no-op.
CREATE TABLE spend_batches_applied (
    batch_id   TEXT PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX spend_batches_applied_at_idx ON spend_batches_applied (applied_at);
