//! Cost accounting (SPEC §7): a layer that watches every reply, whole or streamed, without
//! buffering it, and for each request works out the tokens (the provider's counts, or the
//! tokenizer's when it sent none), the cost from the [`RateTable`], the metrics, and one
//! [`UsageRecord`](crate::usage::UsageRecord) handed to the [`UsageSink`].
//!
//! Whole answers get `meta.cost_usd` (the `x-proxygate-cost-usd` header) and a `usage` if
//! they had none. Streams end with exactly one usage-only chunk carrying `cost_usd`; the edge
//! shows it to clients that asked for usage and writes the `: cost_usd=` comment for all.

mod body;
mod future;
mod layer;
pub mod rates;
pub mod tokens;

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tower::Service;

pub use body::CostStream;
pub use future::ResponseFuture;
pub use layer::CostLayer;
pub use rates::{RATES_DATE, Rate, RateTable};

use crate::GatewayError;
use crate::telemetry::names;
use crate::types::{ChatReply, ChatRequest, Usage};
use crate::usage::{Endpoint, UsageRecord, UsageSink, now_ms};
use tokens::PromptText;

/// Accounts for every reply of the inner service; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct Cost<S> {
    inner: S,
    rates: Arc<RateTable>,
    sink: Option<UsageSink>,
}

impl<S> Cost<S> {
    /// Wraps `inner`; records go to `sink` when there is one.
    pub fn new(inner: S, rates: Arc<RateTable>, sink: Option<UsageSink>) -> Self {
        Self { inner, rates, sink }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> Service<ChatRequest> for Cost<S>
where
    S: Service<ChatRequest, Response = ChatReply, Error = GatewayError>,
{
    type Response = ChatReply;
    type Error = GatewayError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        let ticket = Ticket {
            started: Instant::now(),
            requested: req.model.as_str().into(),
            key_id: req.ctx.key_id.clone(),
            request_id: req.ctx.request_id.clone(),
            endpoint: req.ctx.endpoint,
            stream: req.is_stream(),
            prompt: PromptText::of(&req),
            rates: self.rates.clone(),
            sink: self.sink.clone(),
        };
        ResponseFuture::new(self.inner.call(req), ticket)
    }
}

/// What the layer knows of a request between its call and its end.
#[derive(Debug)]
pub(crate) struct Ticket {
    started: Instant,
    requested: Arc<str>,
    key_id: Option<Arc<str>>,
    request_id: Option<Arc<str>>,
    endpoint: Endpoint,
    stream: bool,
    prompt: PromptText,
    rates: Arc<RateTable>,
    sink: Option<UsageSink>,
}

/// How a request ended, for its record.
pub(crate) struct Outcome<'a> {
    /// Provider, or `none`.
    pub provider: &'a str,
    /// `provider/model` that served, or the client's model.
    pub model: &'a Arc<str>,
    /// Reported usage, if the provider sent one.
    pub usage: Option<&'a Usage>,
    /// Text of the answer so far, for the tokenizer when usage is missing.
    pub completion_text: &'a str,
    /// Status the client sees.
    pub status: u16,
    /// Attempts made.
    pub attempts: u32,
    /// When the first chunk came.
    pub first_chunk: Option<Instant>,
    /// From the cache.
    pub cache_hit: bool,
}

impl Ticket {
    /// Tokens and cost of a successful (or cut-short) answer, with the usage as reported or
    /// estimated; writes the record and the metrics. Returns the usage and the cost.
    pub(crate) fn settle(self, o: Outcome<'_>) -> (Usage, f64) {
        let (usage, estimated) = match o.usage {
            Some(u) if u.prompt_tokens + u.completion_tokens > 0 => {
                let mut u = u.clone();
                u.fill_total();
                (u, 0)
            }
            _ => {
                let prompt = self.prompt.tokens();
                let completion = tokens::count(o.completion_text);
                (Usage::new(prompt, completion), prompt + completion)
            }
        };
        let cost = if o.cache_hit || !(200..300).contains(&o.status) && o.status != 499 {
            0.0
        } else {
            self.rates.get(o.model).map_or(0.0, |r| r.cost_of(&usage))
        };
        self.write(&o, &usage, estimated, cost);
        (usage, cost)
    }

    /// A request that failed before any answer: cost 0, no tokens.
    pub(crate) fn fail(self, err: &GatewayError) {
        let o = Outcome {
            provider: "none",
            model: &self.requested.clone(),
            usage: None,
            completion_text: "",
            status: err.status().as_u16(),
            attempts: 0,
            first_chunk: None,
            cache_hit: false,
        };
        self.write(&o, &Usage::default(), 0, 0.0);
    }

    fn write(&self, o: &Outcome<'_>, usage: &Usage, estimated: u64, cost: f64) {
        if o.provider != "none" {
            let model = metrics::SharedString::from(o.model.clone());
            let provider = metrics::SharedString::from(o.provider.to_owned());
            metrics::counter!(names::TOKENS_TOTAL, "provider" => provider.clone(), "model" => model.clone(), "kind" => "prompt")
                .increment(usage.prompt_tokens);
            metrics::counter!(names::TOKENS_TOTAL, "provider" => provider.clone(), "model" => model.clone(), "kind" => "completion")
                .increment(usage.completion_tokens);
            if cost > 0.0 {
                metrics::gauge!(names::COST_USD_TOTAL, "provider" => provider, "model" => model)
                    .increment(cost);
            }
        }
        let Some(sink) = &self.sink else { return };
        sink.record(UsageRecord {
            id: uuid::Uuid::new_v4().to_string().into(),
            ts_ms: now_ms(),
            request_id: self.request_id.clone(),
            key_id: self.key_id.clone(),
            endpoint: self.endpoint,
            provider: o.provider.into(),
            model: o.model.clone(),
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            cached_tokens: rates::cached_tokens(usage),
            estimated_tokens: estimated,
            cost_usd: cost,
            latency_ms: self.started.elapsed().as_secs_f64() * 1e3,
            ttft_ms: o
                .first_chunk
                .map(|t| t.duration_since(self.started).as_secs_f64() * 1e3),
            status: o.status,
            attempts: o.attempts,
            stream: self.stream,
            cache_hit: o.cache_hit,
        });
    }
}
