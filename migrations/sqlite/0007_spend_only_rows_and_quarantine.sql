-- Spend-only log rows and the quarantine.
--
-- `listed = 0` marks a request sent with `cf-aig-collect-log: false`: the row is kept without bodies or event id
-- so that its spend still counts in the rollups, /spend, /api/stats and a recompute, but /api/logs never shows it.
ALTER TABLE request_logs ADD COLUMN listed INTEGER NOT NULL DEFAULT 1;

-- Records the database refused (a value it cannot store, as opposed to an outage), set aside so that the rest of
-- their batch is written. `record` is the record as JSON text (the spill file's form), `error` why it was refused.
CREATE TABLE quarantine (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           TEXT NOT NULL,             -- 'log' or 'spend'
    record         TEXT NOT NULL,
    error          TEXT NOT NULL,
    quarantined_at INTEGER NOT NULL           -- Unix microseconds
);
