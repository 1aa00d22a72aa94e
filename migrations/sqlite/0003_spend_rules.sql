-- Spend rules created through the admin API, and the version counter every change bumps (see the Postgres
-- migration). Times are INTEGER Unix microseconds.

CREATE TABLE spend_rules (
    id         TEXT PRIMARY KEY NOT NULL,
    spec       TEXT NOT NULL,                -- JSON SpendRuleSpec
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE spend_rules_version (
    singleton INTEGER PRIMARY KEY NOT NULL CHECK (singleton = 1),
    version   INTEGER NOT NULL
);
INSERT INTO spend_rules_version (singleton, version) VALUES (1, 0);
