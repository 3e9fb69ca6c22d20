-- 007: the platform a ledger's accounts live on. Its ids mean nothing on another platform (a
-- Praesidium UUID is no prancer email), so a ledger serves one target, recorded by the first
-- plan and checked by every command after it. Ledgers written before there was a choice hold
-- Praesidium accounts.
CREATE TABLE ledger_meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO ledger_meta (name, value)
    SELECT 'target', 'praesidium' WHERE EXISTS (SELECT 1 FROM runs);
