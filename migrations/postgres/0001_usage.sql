CREATE TABLE IF NOT EXISTS usage_records (
    id TEXT PRIMARY KEY,
    ts_ms BIGINT NOT NULL,
    request_id TEXT,
    key_id TEXT,
    endpoint TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL,
    estimated_tokens BIGINT NOT NULL,
    cost_usd DOUBLE PRECISION NOT NULL,
    latency_ms DOUBLE PRECISION NOT NULL,
    ttft_ms DOUBLE PRECISION,
    status INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    stream BOOLEAN NOT NULL,
    cache_hit BOOLEAN NOT NULL
);
CREATE INDEX IF NOT EXISTS usage_records_ts ON usage_records (ts_ms);
CREATE INDEX IF NOT EXISTS usage_records_key_ts ON usage_records (key_id, ts_ms);
