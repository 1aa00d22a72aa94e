-- Spend rules created through the admin API (rules from the config file are never stored here), and a version
-- counter that every change bumps in the same transaction. Each replica polls the counter (one row, one index
-- lookup) and reloads the rules when it moved. The counter row also serialises concurrent changes, so a replica
-- that has read version N has seen every change numbered N or lower.

CREATE TABLE spend_rules (
    id         TEXT PRIMARY KEY,
    spec       JSONB NOT NULL,               -- the SpendRuleSpec as the API received it (validated)
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE spend_rules_version (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    version   BIGINT NOT NULL
);
INSERT INTO spend_rules_version (singleton, version) VALUES (TRUE, 0);
