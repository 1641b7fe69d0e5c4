use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::types::Api;

/// One routed request as the usage store keeps it: who, what served it, tokens,
/// cost, timings and outcome. Written once, when the answer (or the stream) ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// Unique id of the record (a UUID); writes are idempotent on it.
    pub id: Arc<str>,
    /// When the request ended, milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// The request id (`x-request-id`).
    #[serde(default)]
    pub request_id: Option<Arc<str>>,
    /// The virtual key's id, if one was used.
    #[serde(default)]
    pub key_id: Option<Arc<str>>,
    /// The client API.
    #[serde(default)]
    pub endpoint: Api,
    /// Provider that served (`none` when nothing did).
    pub provider: Arc<str>,
    /// The model that served, as `provider/model` (the client's model when nothing served).
    pub model: Arc<str>,
    /// Prompt tokens (reported by the provider, or estimated).
    pub prompt_tokens: u64,
    /// Completion tokens (reported by the provider, or estimated).
    pub completion_tokens: u64,
    /// Prompt tokens read from the provider's prompt cache (billed at the cached rate).
    #[serde(default)]
    pub cached_tokens: u64,
    /// Prompt tokens written to the provider's prompt cache (billed at the cache-write rate).
    #[serde(default)]
    pub cache_write_tokens: u64,
    /// Completion tokens spent on reasoning (billed as completion tokens).
    #[serde(default)]
    pub reasoning_tokens: u64,
    /// How many of the tokens above the gateway counted with its tokenizer because the
    /// provider reported none.
    #[serde(default)]
    pub estimated_tokens: u64,
    /// Cost in USD (0 for failures, free tiers and cache hits).
    pub cost_usd: f64,
    /// The cost per meter; its parts add up to `cost_usd`.
    #[serde(default)]
    pub cost_breakdown: CostBreakdown,
    /// The model had no known rate: recorded at cost 0.
    #[serde(default)]
    pub unpriced: bool,
    /// Whole request latency, milliseconds.
    pub latency_ms: f64,
    /// Time to the first chunk for streams, milliseconds.
    #[serde(default)]
    pub ttft_ms: Option<f64>,
    /// HTTP status the client got (499 when it went away first).
    pub status: u16,
    /// Attempts made.
    pub attempts: u32,
    /// Whether the answer was streamed.
    #[serde(default)]
    pub stream: bool,
    /// Served from the response cache.
    #[serde(default)]
    pub cache_hit: bool,
}

impl UsageRecord {
    /// Total tokens.
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

/// What one request cost, per meter, in USD. The four parts add up to the record's
/// `cost_usd`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CostBreakdown {
    /// Prompt tokens neither read from nor written to a cache, at the input rate.
    pub input: f64,
    /// Prompt tokens read from the provider's cache, at the cached-input rate.
    pub cached_input: f64,
    /// Prompt tokens written to the provider's cache, at the cache-write rates.
    pub cache_write: f64,
    /// Completion tokens (reasoning included), at the output rate.
    pub output: f64,
}

impl CostBreakdown {
    /// The sum of the parts.
    pub fn total(&self) -> f64 {
        self.input + self.cached_input + self.cache_write + self.output
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
