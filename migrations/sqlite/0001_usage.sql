CREATE TABLE IF NOT EXISTS usage_records (
    id TEXT PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    request_id TEXT,
    key_id TEXT,
    endpoint TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    estimated_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    latency_ms REAL NOT NULL,
    ttft_ms REAL,
    status INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    stream INTEGER NOT NULL,
    cache_hit INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS usage_records_ts ON usage_records (ts_ms);
CREATE INDEX IF NOT EXISTS usage_records_key_ts ON usage_records (key_id, ts_ms);
