//! Live statistics for the dashboard: throughput, error rate, latency and
//! time-to-first-token percentiles, tokens and cost by provider and model over a window of up
//! to an hour, and the last requests.
//!
//! There is no second bookkeeping: [`Stats`] is fed the very [`UsageRecord`]s the cost layer
//! hands to the [`UsageSink`](crate::usage::UsageSink) (it registers as the sink's
//! [observer](crate::usage::UsageSink::observe)), so the dashboard, `/v1/usage` and the
//! metrics all count the same requests.
//!
//! # Memory and cost
//! Everything is fixed-size and allocated once:
//! - one slot per second for the last hour: requests, errors, latency sum, tokens, cost;
//! - one slot per ten seconds: latency and time-to-first-token histograms ([`hist`], 80 bins
//!   each) and the per-model rows (at most [`MODELS_PER_SLOT`]: when a slot is full, its last
//!   row becomes `other` and takes every further model of those ten seconds);
//! - a ring of the last [`RECENT`] requests.
//!
//! Recording takes one short lock and allocates nothing once a slot's model rows have grown to
//! the models in use (a slot reused an hour later keeps its vector). Percentiles and the
//! breakdowns are read from the ten-second slots that overlap the window, so they may include
//! up to nine seconds before it; counts, tokens and cost are exact to the second.

mod hist;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::usage::{Observer, UsageRecord, now_ms};
use hist::Hist;

/// The longest window, in seconds.
pub const MAX_WINDOW_SECS: u32 = 3600;
/// How many recent requests are kept.
pub const RECENT: usize = 200;
/// Model rows kept per ten-second slot before the rest are folded into `other`.
pub const MODELS_PER_SLOT: usize = 32;
/// Points in a window's series.
pub const SERIES_POINTS: u32 = 60;

const SECONDS: usize = MAX_WINDOW_SECS as usize;
const SLOT_SECS: i64 = 10;
/// Ten-second slots: an hour plus the partial slots at both ends.
const SLOTS: usize = SECONDS / SLOT_SECS as usize + 2;

/// Whether a status counts as an error: any 4xx or 5xx, except 499 (the client went away).
pub fn is_error(status: u16) -> bool {
    status >= 400 && status != 499
}

fn is_ok(status: u16) -> bool {
    (200..300).contains(&status)
}

/// One second.
#[derive(Clone, Copy, Debug, Default)]
struct Second {
    /// Which second (since the epoch) the counts are for; a slot holding an older one is stale.
    sec: i64,
    requests: u32,
    errors: u32,
    ok: u32,
    latency_ok_sum_ms: f64,
    tokens: u64,
    cost_usd: f64,
}

/// Ten seconds.
#[derive(Debug, Default)]
struct Slot {
    /// `second / 10` of the slot's start.
    idx: i64,
    latency: Hist,
    ttft: Hist,
    models: Vec<ModelCounts>,
}

/// Counts of one provider and model.
#[derive(Clone, Debug)]
struct ModelCounts {
    provider: Arc<str>,
    model: Arc<str>,
    c: Counts,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
struct Counts {
    requests: u64,
    errors: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    cost_usd: f64,
}

impl Counts {
    fn add_record(&mut self, r: &UsageRecord) {
        self.requests += 1;
        self.errors += u64::from(is_error(r.status));
        self.prompt_tokens += r.prompt_tokens;
        self.completion_tokens += r.completion_tokens;
        self.cost_usd += r.cost_usd;
    }

    fn merge(&mut self, o: &Counts) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
        self.cost_usd += o.cost_usd;
    }
}

/// One of the last requests, as the ring keeps it (no key id, nothing secret).
#[derive(Clone, Debug)]
struct Recent {
    ts_ms: i64,
    request_id: Option<Arc<str>>,
    endpoint: &'static str,
    provider: Arc<str>,
    model: Arc<str>,
    status: u16,
    latency_ms: f64,
    ttft_ms: Option<f64>,
    prompt_tokens: u64,
    completion_tokens: u64,
    cost_usd: f64,
    attempts: u32,
    stream: bool,
    cache_hit: bool,
}

/// Counts since the gateway started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Lifetime {
    /// When the statistics started, milliseconds since the epoch.
    pub since_ms: i64,
    /// Requests.
    pub requests: u64,
    /// Errors ([`is_error`]).
    pub errors: u64,
    /// Prompt plus completion tokens.
    pub tokens: u64,
    /// Cost in USD.
    pub cost_usd: f64,
}

struct Inner {
    seconds: Box<[Second]>,
    slots: Box<[Slot]>,
    recent: VecDeque<Recent>,
    lifetime: Lifetime,
}

/// The live statistics; see the [module docs](self). Share it behind an [`Arc`].
pub struct Stats {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stats").finish_non_exhaustive()
    }
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    /// Empty statistics starting now.
    pub fn new() -> Self {
        Self::starting_at(now_ms())
    }

    /// Empty statistics starting at `since_ms` (tests).
    pub fn starting_at(since_ms: i64) -> Self {
        let seconds = vec![
            Second {
                sec: i64::MIN,
                ..Second::default()
            };
            SECONDS
        ]
        .into_boxed_slice();
        let slots = (0..SLOTS)
            .map(|_| Slot {
                idx: i64::MIN,
                ..Slot::default()
            })
            .collect();
        Self {
            inner: Mutex::new(Inner {
                seconds,
                slots,
                recent: VecDeque::with_capacity(RECENT),
                lifetime: Lifetime {
                    since_ms,
                    ..Lifetime::default()
                },
            }),
        }
    }

    /// An observer for [`UsageSink::observe`](crate::usage::UsageSink::observe) that feeds
    /// these statistics.
    pub fn observer(self: &Arc<Self>) -> Observer {
        let me = self.clone();
        Arc::new(move |r: &UsageRecord| me.record(r))
    }

    /// Counts one finished request at its `ts_ms`.
    pub fn record(&self, r: &UsageRecord) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.record(r);
    }

    /// The statistics of the `window_secs` (1..=3600) seconds up to `now_ms`, and the last
    /// `recent` requests (at most [`RECENT`]), newest first.
    pub fn snapshot(&self, window_secs: u32, now_ms: i64, recent: usize) -> Snapshot {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.snapshot(window_secs.clamp(1, MAX_WINDOW_SECS), now_ms, recent)
    }

    /// Bytes held, counting every vector's capacity (for the bounded-memory test).
    pub fn footprint(&self) -> usize {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::size_of::<Inner>()
            + g.seconds.len() * std::mem::size_of::<Second>()
            + g.slots.len() * std::mem::size_of::<Slot>()
            + g.slots
                .iter()
                .map(|s| s.models.capacity() * std::mem::size_of::<ModelCounts>())
                .sum::<usize>()
            + g.recent.capacity() * std::mem::size_of::<Recent>()
    }
}

impl Inner {
    fn record(&mut self, r: &UsageRecord) {
        let lt = &mut self.lifetime;
        lt.requests += 1;
        lt.errors += u64::from(is_error(r.status));
        lt.tokens += r.total_tokens();
        lt.cost_usd += r.cost_usd;

        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(Recent {
            ts_ms: r.ts_ms,
            request_id: r.request_id.clone(),
            endpoint: r.endpoint.as_str(),
            provider: r.provider.clone(),
            model: r.model.clone(),
            status: r.status,
            latency_ms: r.latency_ms,
            ttft_ms: r.ttft_ms,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            cost_usd: r.cost_usd,
            attempts: r.attempts,
            stream: r.stream,
            cache_hit: r.cache_hit,
        });

        let sec = r.ts_ms.div_euclid(1000);
        let ok = is_ok(r.status);
        let s = &mut self.seconds[sec.rem_euclid(SECONDS as i64) as usize];
        if s.sec < sec {
            *s = Second {
                sec,
                ..Second::default()
            };
        }
        if s.sec == sec {
            s.requests += 1;
            s.errors += u32::from(is_error(r.status));
            if ok {
                s.ok += 1;
                s.latency_ok_sum_ms += r.latency_ms;
            }
            s.tokens += r.total_tokens();
            s.cost_usd += r.cost_usd;
        }

        let idx = sec.div_euclid(SLOT_SECS);
        let slot = &mut self.slots[idx.rem_euclid(SLOTS as i64) as usize];
        if slot.idx < idx {
            slot.idx = idx;
            slot.latency.clear();
            slot.ttft.clear();
            slot.models.clear(); // keeps the capacity
        }
        if slot.idx != idx {
            return; // older than the hour the slots hold
        }
        if ok {
            slot.latency.add(r.latency_ms);
            if let Some(t) = r.ttft_ms {
                slot.ttft.add(t);
            }
        }
        let row = match slot
            .models
            .iter()
            .position(|m| same(&m.provider, &r.provider) && same(&m.model, &r.model))
        {
            Some(i) => i,
            None if slot.models.len() < MODELS_PER_SLOT => {
                slot.models.push(ModelCounts {
                    provider: r.provider.clone(),
                    model: r.model.clone(),
                    c: Counts::default(),
                });
                slot.models.len() - 1
            }
            None => match slot.models.iter().position(|m| &*m.model == OTHER) {
                Some(i) => i,
                None => {
                    // The last row makes room for `other`; its counts move there.
                    let last = slot.models.len() - 1;
                    let m = &mut slot.models[last];
                    m.provider = Arc::from(OTHER);
                    m.model = Arc::from(OTHER);
                    last
                }
            },
        };
        slot.models[row].c.add_record(r);
    }

    fn snapshot(&self, window: u32, now_ms: i64, recent: usize) -> Snapshot {
        let now_sec = now_ms.div_euclid(1000);
        let window = i64::from(window);
        let from = now_sec - window + 1;
        let points = i64::from(SERIES_POINTS.min(window as u32));
        let step = (window + points - 1) / points;
        let series_from = now_sec - points * step + 1;
        let mut series = Series {
            step_secs: step as u32,
            start_ms: series_from * 1000,
            requests: vec![0; points as usize],
            errors: vec![0; points as usize],
            latency_avg_ms: vec![None; points as usize],
            tokens: vec![0; points as usize],
            cost_usd: vec![0.0; points as usize],
        };
        let mut lat_sum = vec![(0.0f64, 0u64); points as usize];
        let mut t = WindowTotals::default();
        let mut ok_requests = 0u64;
        for sec in series_from.min(from)..=now_sec {
            let s = &self.seconds[sec.rem_euclid(SECONDS as i64) as usize];
            if s.sec != sec {
                continue;
            }
            if sec >= series_from {
                let p = ((sec - series_from) / step) as usize;
                series.requests[p] += u64::from(s.requests);
                series.errors[p] += u64::from(s.errors);
                series.tokens[p] += s.tokens;
                series.cost_usd[p] += s.cost_usd;
                lat_sum[p].0 += s.latency_ok_sum_ms;
                lat_sum[p].1 += u64::from(s.ok);
            }
            if sec >= from {
                t.requests += u64::from(s.requests);
                t.errors += u64::from(s.errors);
                ok_requests += u64::from(s.ok);
                t.tokens += s.tokens;
                t.cost_usd += s.cost_usd;
            }
        }
        for (out, (sum, n)) in series.latency_avg_ms.iter_mut().zip(lat_sum) {
            if n > 0 {
                *out = Some(sum / n as f64);
            }
        }
        // The seconds the window really covers: not before the statistics started.
        let started = self.lifetime.since_ms.div_euclid(1000);
        let covered = (now_sec - from.max(started) + 1).clamp(1, window);
        t.ok = ok_requests;
        t.rps = t.requests as f64 / covered as f64;
        t.error_rate = if t.requests == 0 {
            0.0
        } else {
            t.errors as f64 / t.requests as f64
        };

        let mut latency = Hist::default();
        let mut ttft = Hist::default();
        let mut rows: Vec<ModelCounts> = Vec::new();
        let (first, last) = (from.div_euclid(SLOT_SECS), now_sec.div_euclid(SLOT_SECS));
        for idx in first..=last {
            let slot = &self.slots[idx.rem_euclid(SLOTS as i64) as usize];
            if slot.idx != idx {
                continue;
            }
            latency.merge(&slot.latency);
            ttft.merge(&slot.ttft);
            for m in &slot.models {
                match rows
                    .iter_mut()
                    .find(|r| same(&r.provider, &m.provider) && same(&r.model, &m.model))
                {
                    Some(r) => r.c.merge(&m.c),
                    None => rows.push(m.clone()),
                }
            }
        }
        let mut by_provider: Vec<Row> = Vec::new();
        for m in &rows {
            match by_provider.iter_mut().find(|p| p.provider == *m.provider) {
                Some(p) => p.counts.merge(&m.c),
                None => by_provider.push(Row {
                    provider: m.provider.to_string(),
                    model: None,
                    counts: m.c,
                }),
            }
        }
        let mut by_model: Vec<Row> = rows
            .into_iter()
            .map(|m| Row {
                provider: m.provider.to_string(),
                model: Some(m.model.to_string()),
                counts: m.c,
            })
            .collect();
        for v in [&mut by_provider, &mut by_model] {
            v.sort_by(|a, b| {
                b.counts
                    .cost_usd
                    .total_cmp(&a.counts.cost_usd)
                    .then(b.counts.requests.cmp(&a.counts.requests))
                    .then_with(|| a.provider.cmp(&b.provider))
                    .then_with(|| a.model.cmp(&b.model))
            });
        }

        let recent = self
            .recent
            .iter()
            .rev()
            .take(recent.min(RECENT))
            .map(|r| RecentRow {
                ts_ms: r.ts_ms,
                request_id: r.request_id.as_deref().map(str::to_owned),
                endpoint: r.endpoint,
                provider: r.provider.to_string(),
                model: r.model.to_string(),
                status: r.status,
                latency_ms: r.latency_ms,
                ttft_ms: r.ttft_ms,
                prompt_tokens: r.prompt_tokens,
                completion_tokens: r.completion_tokens,
                cost_usd: r.cost_usd,
                attempts: r.attempts,
                stream: r.stream,
                cache_hit: r.cache_hit,
            })
            .collect();

        Snapshot {
            window_secs: window as u32,
            now_ms,
            totals: t,
            latency_ms: Percentiles::of(&latency),
            ttft_ms: Percentiles::of(&ttft),
            series,
            by_provider,
            by_model,
            recent,
            lifetime: self.lifetime,
        }
    }
}

/// The row that collects a slot's models beyond [`MODELS_PER_SLOT`].
const OTHER: &str = "other";

fn same(a: &Arc<str>, b: &Arc<str>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

/// What the dashboard shows for a window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Snapshot {
    /// The window, seconds.
    pub window_secs: u32,
    /// When the snapshot was taken, milliseconds since the epoch.
    pub now_ms: i64,
    /// Counts over the window.
    pub totals: WindowTotals,
    /// Latency of successful requests.
    pub latency_ms: Percentiles,
    /// Time to first token of successful streams.
    pub ttft_ms: Percentiles,
    /// The window in [`SERIES_POINTS`] steps, oldest first.
    pub series: Series,
    /// Per provider, most expensive first.
    pub by_provider: Vec<Row>,
    /// Per provider and model, most expensive first.
    pub by_model: Vec<Row>,
    /// The last requests, newest first (whatever the window).
    pub recent: Vec<RecentRow>,
    /// Counts since start.
    pub lifetime: Lifetime,
}

/// Counts over a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct WindowTotals {
    /// Requests that ended in the window.
    pub requests: u64,
    /// Of which answered 2xx.
    pub ok: u64,
    /// Of which errors ([`is_error`]).
    pub errors: u64,
    /// `errors / requests` (0 without requests).
    pub error_rate: f64,
    /// Requests per second over the part of the window since start.
    pub rps: f64,
    /// Prompt plus completion tokens.
    pub tokens: u64,
    /// Cost in USD.
    pub cost_usd: f64,
}

/// Quantiles of a window, milliseconds (`null` without samples).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Samples they come from.
    pub count: u64,
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

impl Percentiles {
    fn of(h: &Hist) -> Self {
        let r = |q| h.quantile(q).map(|v| (v * 10.0).round() / 10.0);
        Self {
            count: h.len(),
            p50: r(0.5),
            p95: r(0.95),
            p99: r(0.99),
        }
    }
}

/// A window in equal steps, as parallel arrays.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Series {
    /// Seconds per point.
    pub step_secs: u32,
    /// Start of the first point, milliseconds since the epoch.
    pub start_ms: i64,
    /// Requests per point.
    pub requests: Vec<u64>,
    /// Errors per point.
    pub errors: Vec<u64>,
    /// Mean latency of the successful requests of each point (`null` without any).
    pub latency_avg_ms: Vec<Option<f64>>,
    /// Tokens per point.
    pub tokens: Vec<u64>,
    /// Cost per point.
    pub cost_usd: Vec<f64>,
}

/// Counts of a provider, or of a provider's model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// Provider (`none` for requests nothing served).
    pub provider: String,
    /// `provider/model` (absent in the per-provider rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(flatten)]
    counts: Counts,
}

impl Row {
    /// Requests.
    pub fn requests(&self) -> u64 {
        self.counts.requests
    }

    /// Cost in USD.
    pub fn cost_usd(&self) -> f64 {
        self.counts.cost_usd
    }

    /// Prompt plus completion tokens.
    pub fn tokens(&self) -> u64 {
        self.counts.prompt_tokens + self.counts.completion_tokens
    }
}

/// One of the last requests.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecentRow {
    /// When it ended, milliseconds since the epoch.
    pub ts_ms: i64,
    /// `x-request-id`.
    pub request_id: Option<String>,
    /// `chat`, `messages`, ...
    pub endpoint: &'static str,
    /// Provider that served, or `none`.
    pub provider: String,
    /// Model that served, or the one asked for.
    pub model: String,
    /// Status the client got.
    pub status: u16,
    /// Whole latency.
    pub latency_ms: f64,
    /// Time to first token (streams).
    pub ttft_ms: Option<f64>,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Cost in USD.
    pub cost_usd: f64,
    /// Attempts made.
    pub attempts: u32,
    /// Streamed.
    pub stream: bool,
    /// From the cache.
    pub cache_hit: bool,
}

#[cfg(test)]
mod tests;
