use std::collections::BTreeMap;

use serde::Serialize;

use super::{CostBreakdown, UsageRecord};

/// The size of a `by_time` bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One day (UTC).
    Day,
}

impl Bucket {
    /// Parses `minute`, `hour` or `day`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "minute" | "1m" => Some(Self::Minute),
            "hour" | "1h" => Some(Self::Hour),
            "day" | "1d" => Some(Self::Day),
            _ => None,
        }
    }

    /// The width in milliseconds.
    pub fn millis(self) -> i64 {
        match self {
            Self::Minute => 60_000,
            Self::Hour => 3_600_000,
            Self::Day => 86_400_000,
        }
    }
}

/// Which records a summary covers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UsageQuery {
    /// From this time on (ms since the epoch, inclusive).
    pub since_ms: Option<i64>,
    /// Before this time (ms since the epoch, exclusive).
    pub until_ms: Option<i64>,
    /// Only this virtual key's records.
    pub key: Option<String>,
    /// Only this provider's records.
    pub provider: Option<String>,
    /// Only this model's records (`provider/model`).
    pub model: Option<String>,
    /// Also break down by time.
    pub bucket: Option<Bucket>,
}

impl UsageQuery {
    /// Whether `r` is selected.
    pub fn matches(&self, r: &UsageRecord) -> bool {
        self.since_ms.is_none_or(|s| r.ts_ms >= s)
            && self.until_ms.is_none_or(|u| r.ts_ms < u)
            && self
                .key
                .as_deref()
                .is_none_or(|k| r.key_id.as_deref() == Some(k))
            && self.provider.as_deref().is_none_or(|p| &*r.provider == p)
            && self.model.as_deref().is_none_or(|m| &*r.model == m)
    }
}

/// Counts of one bucket.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Totals {
    /// Requests, failed ones included.
    pub requests: u64,
    /// Requests that did not end in a 2xx.
    pub errors: u64,
    /// Answers served from the cache.
    pub cache_hits: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Prompt plus completion tokens.
    pub total_tokens: u64,
    /// Prompt tokens read from a provider's cache.
    pub cached_tokens: u64,
    /// Prompt tokens written to a provider's cache.
    pub cache_write_tokens: u64,
    /// Completion tokens spent on reasoning.
    pub reasoning_tokens: u64,
    /// Requests to a model with no known rate (recorded at cost 0).
    pub unpriced_requests: u64,
    /// Tokens the gateway counted with its tokenizer because the provider reported none.
    pub estimated_tokens: u64,
    /// Spend in USD.
    pub cost_usd: f64,
    /// The spend per meter (input, cached input, cache write, output); the parts add up to
    /// `cost_usd`.
    pub cost_breakdown: CostBreakdown,
}

impl Totals {
    /// Adds one record.
    pub fn add(&mut self, r: &UsageRecord) {
        self.requests += 1;
        self.errors += u64::from(!(200..300).contains(&r.status));
        self.cache_hits += u64::from(r.cache_hit);
        self.prompt_tokens += r.prompt_tokens;
        self.completion_tokens += r.completion_tokens;
        self.total_tokens += r.total_tokens();
        self.estimated_tokens += r.estimated_tokens;
        self.cached_tokens += r.cached_tokens;
        self.cache_write_tokens += r.cache_write_tokens;
        self.reasoning_tokens += r.reasoning_tokens;
        self.unpriced_requests += u64::from(r.unpriced);
        self.cost_usd += r.cost_usd;
        let (b, parts) = (&mut self.cost_breakdown, &r.cost_breakdown);
        b.input += parts.input;
        b.cached_input += parts.cached_input;
        b.cache_write += parts.cache_write;
        b.output += parts.output;
    }
}

/// What `GET /v1/usage` answers.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct UsageSummary {
    /// Everything selected.
    pub totals: Totals,
    /// By provider name.
    pub by_provider: BTreeMap<String, Totals>,
    /// By `provider/model`.
    pub by_model: BTreeMap<String, Totals>,
    /// By virtual key id (requests without a key are not listed).
    pub by_key: BTreeMap<String, Totals>,
    /// By time bucket start (RFC 3339), when a bucket was asked for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub by_time: Vec<TimeBucket>,
}

/// One time bucket.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TimeBucket {
    /// Start of the bucket, RFC 3339 UTC.
    pub start: String,
    /// Its counts.
    #[serde(flatten)]
    pub totals: Totals,
}

impl UsageSummary {
    /// Folds records in (for stores that summarise in process).
    pub fn from_records<'a>(
        query: &UsageQuery,
        records: impl IntoIterator<Item = &'a UsageRecord>,
    ) -> Self {
        let mut s = Self::default();
        let mut times: BTreeMap<i64, Totals> = BTreeMap::new();
        for r in records.into_iter().filter(|r| query.matches(r)) {
            s.totals.add(r);
            s.by_provider
                .entry(r.provider.to_string())
                .or_default()
                .add(r);
            s.by_model.entry(r.model.to_string()).or_default().add(r);
            if let Some(k) = &r.key_id {
                s.by_key.entry(k.to_string()).or_default().add(r);
            }
            if let Some(b) = query.bucket {
                let w = b.millis();
                times.entry(r.ts_ms.div_euclid(w) * w).or_default().add(r);
            }
        }
        s.by_time = times
            .into_iter()
            .map(|(start, totals)| TimeBucket {
                start: rfc3339_ms(start),
                totals,
            })
            .collect();
        s
    }
}

/// `ms` since the epoch as RFC 3339 UTC (`2026-12-01T13:00:00Z`).
pub fn rfc3339_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
