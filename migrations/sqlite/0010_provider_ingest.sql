-- Provider usage ingestion: the report pages as fetched (audit, and the source a recompute rebuilds from), the
-- normalised rows per provider and hour or day, and one lease row per provider. Times are INTEGER Unix
-- microseconds (BIGINT on Postgres: one integer type on both backends, so every statement is written once); money is integer
-- nano-dollars.

CREATE TABLE provider_raw_pages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    provider    TEXT NOT NULL,
    run_id      TEXT NOT NULL,             -- the ingest run that fetched it
    endpoint    TEXT NOT NULL,             -- e.g. /organization/usage/completions
    grain       TEXT NOT NULL CHECK (grain IN ('hour', 'day')),
    span_start  INTEGER NOT NULL,           -- the span the request asked for: [span_start, span_end)
    span_end    INTEGER NOT NULL,
    query       TEXT NOT NULL,             -- the query string (or request body) sent
    cursor      TEXT,                      -- the page cursor sent; NULL on the first page
    fetched_at  INTEGER NOT NULL,
    body        TEXT NOT NULL              -- the response body, verbatim
);
-- /providers/{name}/raw pages newest first; retention deletes by fetched_at.
CREATE INDEX provider_raw_pages_fetched_idx ON provider_raw_pages (provider, fetched_at DESC, id DESC);

-- One row per provider, grain, bucket and model ('' when the report is not split by model).
CREATE TABLE provider_usage (
    provider      TEXT NOT NULL,
    grain         TEXT NOT NULL CHECK (grain IN ('hour', 'day')),
    bucket_start  INTEGER NOT NULL,
    model         TEXT NOT NULL,
    tokens_in     INTEGER NOT NULL,
    tokens_out    INTEGER NOT NULL,
    tokens_cached INTEGER NOT NULL,
    cost_nanos    INTEGER NOT NULL,
    PRIMARY KEY (provider, grain, bucket_start, model)
);

-- Who ingests a provider now: a run holds the row until expires_at (or until it deletes it).
CREATE TABLE ingest_leases (
    provider   TEXT PRIMARY KEY NOT NULL,
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
