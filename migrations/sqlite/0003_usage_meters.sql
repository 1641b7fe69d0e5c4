ALTER TABLE usage_records ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_records ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_records ADD COLUMN unpriced INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_records ADD COLUMN cost_input REAL NOT NULL DEFAULT 0;
ALTER TABLE usage_records ADD COLUMN cost_cached_input REAL NOT NULL DEFAULT 0;
ALTER TABLE usage_records ADD COLUMN cost_cache_write REAL NOT NULL DEFAULT 0;
ALTER TABLE usage_records ADD COLUMN cost_output REAL NOT NULL DEFAULT 0;
-- Rows written before the breakdown existed: their whole cost counts as input.
UPDATE usage_records SET cost_input = cost_usd;
