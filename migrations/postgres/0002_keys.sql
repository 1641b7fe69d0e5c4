CREATE TABLE IF NOT EXISTS virtual_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    models TEXT NOT NULL,
    rpm BIGINT,
    tpm BIGINT,
    budget_usd DOUBLE PRECISION,
    budget_period TEXT,
    expires_at_ms BIGINT,
    metadata TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
