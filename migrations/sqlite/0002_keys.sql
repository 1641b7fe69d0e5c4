CREATE TABLE IF NOT EXISTS virtual_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    models TEXT NOT NULL,
    rpm INTEGER,
    tpm INTEGER,
    budget_usd REAL,
    budget_period TEXT,
    expires_at_ms INTEGER,
    metadata TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
