//! Cost accounting: a layer that watches every reply, whole or streamed, without
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

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tower::Service;

pub use body::CostStream;
pub use future::ResponseFuture;
pub use layer::CostLayer;
pub use rates::{CostBreakdown, RateTable};

use crate::GatewayError;
use crate::telemetry::{HandleCache, handles, names};
use crate::tokens::{self, PromptText};
use crate::types::Api;
use crate::types::{Caller, ChatReply, ChatRequest, Usage};
use crate::usage::{UsageRecord, UsageSink, now_ms};

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
            access: req.ctx.access.clone(),
            request_id: req.ctx.request_id.clone(),
            endpoint: req.ctx.endpoint,
            stream: req.is_stream(),
            prompt: Prompt::of(&req),
            last_attempt: req.ctx.last_attempt.clone(),
            rates: self.rates.clone(),
            sink: self.sink.clone(),
        };
        ResponseFuture::new(self.inner.call(req), ticket)
    }
}

/// A request's prompt, kept until it is counted, which only a reply without usage and a
/// failure need.
#[derive(Debug)]
enum Prompt {
    /// The client's chat body, shared with the request: read again if the prompt is counted,
    /// instead of its text being copied out of every request.
    Verbatim(bytes::Bytes),
    /// The text of a request that came any other way.
    Text(PromptText),
}

impl Prompt {
    fn of(req: &ChatRequest) -> Self {
        match &req.ctx.verbatim {
            // Nothing above this layer changes a request's messages or tools, so the client's
            // body still says what they are.
            Some(raw) if req.ctx.endpoint == Api::Chat && req.ctx.embedding.is_none() => {
                Self::Verbatim(raw.clone())
            }
            _ => Self::Text(PromptText::of(req)),
        }
    }

    fn tokens(&self) -> u64 {
        match self {
            Self::Text(text) => text.tokens(),
            Self::Verbatim(raw) => serde_json::from_slice::<ChatRequest>(raw)
                .map(|req| PromptText::of(&req).tokens())
                .unwrap_or(0),
        }
    }
}

/// What the layer knows of a request between its call and its end.
#[derive(Debug)]
pub(crate) struct Ticket {
    started: Instant,
    requested: Arc<str>,
    key_id: Option<Arc<str>>,
    /// Settles the caller's budget reservation with the real cost.
    access: Option<Arc<dyn Caller>>,
    request_id: Option<Arc<str>>,
    endpoint: Api,
    stream: bool,
    prompt: Prompt,
    /// Where the request went, for a client that leaves before the answer.
    last_attempt: crate::types::LastAttempt,
    rates: Arc<RateTable>,
    sink: Option<UsageSink>,
}

/// The token and cost series of one (provider, model).
#[derive(Clone)]
struct Handles {
    prompt: metrics::Counter,
    completion: metrics::Counter,
    cost: metrics::Gauge,
}

static METRICS: std::sync::LazyLock<HandleCache<(&'static str, Arc<str>), Handles>> =
    std::sync::LazyLock::new(HandleCache::default);

/// How a request ended, for its record.
pub(crate) struct Outcome<'a> {
    /// Provider, or `none`.
    pub provider: &'static str,
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
    /// A failure the provider may bill (a client that left, a timeout, a connection that
    /// broke after the request was sent): charged although its status is an error.
    pub billed: bool,
}

/// Whether the provider may bill a request that ended in `err`: it was sent and then timed out
/// or its connection broke. A refused connection, a provider's error status or anything the
/// gateway refused costs nothing.
fn billed_failure(err: &GatewayError) -> bool {
    match err {
        GatewayError::Timeout { .. } => true,
        GatewayError::Connect { sent, .. } => *sent,
        GatewayError::AllAttemptsFailed { last, .. } => billed_failure(last),
        _ => false,
    }
}

/// The most tokens of one kind a record takes from an upstream's report (about 10^12, past
/// any context window): a larger count is taken as this, so the sums of the usage store, the
/// statistics and the budgets cannot overflow.
pub const MAX_REPORTED_TOKENS: u64 = 1 << 40;

impl Ticket {
    /// Tokens and cost of a successful (or cut-short) answer, with the usage as reported or
    /// estimated; writes the record and the metrics. Returns the usage and the cost.
    ///
    /// What a provider may bill is charged: a whole answer, a stream cut after its first
    /// chunk (the prompt and the completion streamed so far), a request the client left
    /// (status 499) and one that timed out or broke after it was sent. Other failures and
    /// cache hits cost 0. A model without a known rate costs
    /// 0 and is flagged `unpriced`.
    pub(crate) fn settle(self, o: Outcome<'_>) -> (Usage, f64) {
        let (usage, estimated) = match o.usage {
            Some(u) if u.prompt_tokens > 0 || u.completion_tokens > 0 => {
                let mut u = u.clone();
                u.bound_meters(MAX_REPORTED_TOKENS);
                u.fill_total();
                (u, 0)
            }
            _ => {
                let prompt = self.prompt.tokens();
                let completion = tokens::count(o.completion_text);
                (Usage::new(prompt, completion), prompt + completion)
            }
        };
        let billable =
            !o.cache_hit && (o.billed || (200..300).contains(&o.status) || o.first_chunk.is_some());
        let (breakdown, unpriced) = if billable {
            match self.rates.get(o.model) {
                Some(r) => (r.breakdown(&usage), false),
                None => (CostBreakdown::default(), o.provider != "none"),
            }
        } else {
            (CostBreakdown::default(), false)
        };
        let cost = breakdown.total();
        self.write(&o, &usage, estimated, breakdown, unpriced);
        (usage, cost)
    }

    /// A request that failed before any answer. One the provider may bill (it timed out, or
    /// its connection broke after the request was sent) is charged the prompt at the
    /// deployment it was last sent to, with the error's status; any other costs 0.
    pub(crate) fn fail(self, err: &GatewayError) {
        let status = err.status().as_u16();
        if billed_failure(err) {
            self.charge_prompt(status);
            return;
        }
        self.write_unserved(status);
    }

    /// A request whose client went away before the answer came: status 499, the prompt's cost
    /// at the deployment the request was last sent to (the provider may bill it).
    pub(crate) fn cancel(self) {
        self.charge_prompt(499);
    }

    /// Charges the prompt at the deployment the request was last sent to, recorded with
    /// `status`; nothing was sent anywhere: cost 0.
    fn charge_prompt(self, status: u16) {
        let Some((provider, deployment)) = self.last_attempt.get() else {
            self.write_unserved(status);
            return;
        };
        self.settle(Outcome {
            provider,
            model: &deployment,
            usage: None,
            completion_text: "",
            status,
            attempts: 1,
            first_chunk: None,
            cache_hit: false,
            billed: true,
        });
    }

    /// A record of cost 0 and no tokens, served by nothing.
    fn write_unserved(self, status: u16) {
        let o = Outcome {
            provider: "none",
            model: &self.requested.clone(),
            usage: None,
            completion_text: "",
            status,
            attempts: 0,
            first_chunk: None,
            cache_hit: false,
            billed: false,
        };
        self.write(&o, &Usage::default(), 0, CostBreakdown::default(), false);
    }

    fn write(
        &self,
        o: &Outcome<'_>,
        usage: &Usage,
        estimated: u64,
        breakdown: CostBreakdown,
        unpriced: bool,
    ) {
        let cost = breakdown.total();
        if let Some(grant) = &self.access {
            grant.settle_usage(cost, usage.prompt_tokens + usage.completion_tokens);
        }
        if o.cache_hit {
            handles::CACHE_HITS.increment(1);
        }
        if o.provider != "none" {
            let m = METRICS.get((o.provider, o.model.clone()), |(provider, model)| {
                let (provider, model) = (
                    metrics::SharedString::const_str(provider),
                    metrics::SharedString::from(model.clone()),
                );
                Handles {
                    prompt: metrics::counter!(names::TOKENS_TOTAL, "provider" => provider.clone(), "model" => model.clone(), "kind" => "prompt"),
                    completion: metrics::counter!(names::TOKENS_TOTAL, "provider" => provider.clone(), "model" => model.clone(), "kind" => "completion"),
                    cost: metrics::gauge!(names::COST_USD_TOTAL, "provider" => provider, "model" => model),
                }
            });
            m.prompt.increment(usage.prompt_tokens);
            m.completion.increment(usage.completion_tokens);
            if cost > 0.0 {
                m.cost.increment(cost);
            }
        }
        let Some(sink) = &self.sink else { return };
        let ts_ms = now_ms();
        sink.record(UsageRecord {
            // A UUIDv7 (time first, then the thread-local CSPRNG's bytes; `Uuid::now_v7` would
            // make a syscall per record): the store's primary key grows at its right edge
            // instead of dirtying a random B-tree page per row.
            id: uuid::Builder::from_unix_timestamp_millis(
                u64::try_from(ts_ms).unwrap_or_default(),
                &rand::random(),
            )
            .into_uuid()
            .to_string()
            .into(),
            ts_ms,
            request_id: self.request_id.clone(),
            key_id: self.key_id.clone(),
            endpoint: self.endpoint,
            provider: o.provider.into(),
            model: o.model.clone(),
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            cached_tokens: rates::cached_tokens(usage),
            cache_write_tokens: usage.cache_write_tokens(),
            reasoning_tokens: usage.reasoning_tokens(),
            estimated_tokens: estimated,
            cost_usd: cost,
            cost_breakdown: breakdown,
            unpriced,
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use futures_util::StreamExt;
    use tower::{Layer, ServiceExt};

    use super::*;
    use crate::catalog::Catalog;
    use crate::test_util::{pair, reply, upstream};
    use crate::types::{ChatChunk, Delta, ReplyBody, ReplyMeta};
    use crate::usage::{MemoryStore, UsageQuery, UsageStore};

    async fn setup() -> (
        Cost<crate::test_util::Upstream>,
        crate::test_util::Handle,
        UsageSink,
        Arc<MemoryStore>,
    ) {
        let store = Arc::new(MemoryStore::new());
        let sink = UsageSink::in_memory(store.clone()).await;
        let rates = Arc::new(RateTable::new(&Catalog::default(), false, &HashMap::new()));
        let (svc, handle) = pair();
        (
            CostLayer::new(rates, Some(sink.clone())).layer(svc),
            handle,
            sink,
            store,
        )
    }

    fn request(stream: bool) -> ChatRequest {
        let mut r: ChatRequest = serde_json::from_value(serde_json::json!({
            "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello world"}]
        }))
        .unwrap();
        r.stream = Some(stream);
        r.ctx.key_id = Some("key-1".into());
        r
    }

    fn meta() -> ReplyMeta {
        ReplyMeta {
            provider: "openai",
            deployment: "openai/gpt-4o-mini".into(),
            attempts: 2,
            ..ReplyMeta::default()
        }
    }

    fn stream_reply(chunks: Vec<Result<ChatChunk, GatewayError>>) -> ChatReply {
        ChatReply::stream(meta(), Box::pin(futures_util::stream::iter(chunks)))
    }

    fn text(t: &str) -> Result<ChatChunk, GatewayError> {
        Ok(ChatChunk::delta(
            "c",
            1,
            "gpt-4o-mini",
            Delta::text(t),
            None,
        ))
    }

    async fn records(sink: &UsageSink, store: &MemoryStore) -> Vec<UsageRecord> {
        sink.flush().await.unwrap();
        store.records()
    }

    #[tokio::test]
    async fn record_ids_are_uuid_v7_in_time_order() {
        // The SQL stores' primary key: ids that sort by time append at the B-tree's right edge.
        let (mut svc, mut handle, sink, store) = setup().await;
        handle.allow(3);
        for _ in 0..3 {
            let call = svc.ready().await.unwrap().call(request(false));
            let (_, respond) = handle.next_request().await.unwrap();
            respond.send_response(reply("openai/gpt-4o-mini"));
            call.await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        let recs = records(&sink, &store).await;
        assert_eq!(recs.len(), 3);
        let ids: Vec<uuid::Uuid> = recs.iter().map(|r| r.id.parse().unwrap()).collect();
        assert!(ids.iter().all(|u| u.get_version_num() == 7), "{ids:?}");
        for (r, u) in recs.iter().zip(&ids) {
            let (secs, nanos) = u.get_timestamp().unwrap().to_unix();
            assert_eq!(secs as i64 * 1000 + i64::from(nanos / 1_000_000), r.ts_ms);
        }
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, ids, "ids sort in the order the records were made");
    }

    #[tokio::test]
    async fn a_stream_ends_with_one_usage_chunk_carrying_the_cost() {
        let (mut svc, mut handle, sink, store) = setup().await;
        handle.allow(1);
        let call = svc.ready().await.unwrap().call(request(true));
        let (_, respond) = handle.next_request().await.unwrap();
        let mut usage_chunk = ChatChunk::usage_only("c", 1, "gpt-4o-mini", Usage::new(1_000, 500));
        // The upstream put usage on a chunk with a choice, then sent a usage-only chunk too.
        let mut with_usage = ChatChunk::delta("c", 1, "gpt-4o-mini", Delta::text("lo"), None);
        with_usage.usage = Some(Usage::new(1, 1));
        usage_chunk.extra.insert("x".into(), 1.into());
        respond.send_response(stream_reply(vec![
            text("hel"),
            Ok(with_usage),
            Ok(usage_chunk),
        ]));
        let reply = call.await.unwrap();
        let ReplyBody::Stream(s) = reply.body else {
            panic!("a stream")
        };
        let out: Vec<_> = s.collect().await;
        assert_eq!(out.len(), 3, "two text chunks and one usage chunk");
        assert!(out[..2].iter().all(|c| c.as_ref().unwrap().usage.is_none()));
        let last = out[2].as_ref().unwrap();
        assert!(last.is_usage_only());
        let cost = last.extra["cost_usd"].as_f64().unwrap();
        // 1,000 x $0.15 + 500 x $0.60 per 1M.
        assert!((cost - 0.000_45).abs() < 1e-12, "{cost}");
        let recs = records(&sink, &store).await;
        assert_eq!(recs.len(), 1);
        let r = &recs[0];
        assert_eq!(
            (r.prompt_tokens, r.completion_tokens, r.estimated_tokens),
            (1_000, 500, 0)
        );
        assert_eq!((r.status, r.attempts, r.stream), (200, 2, true));
        assert_eq!(r.key_id.as_deref(), Some("key-1"));
        assert!(r.ttft_ms.is_some());
    }

    #[tokio::test]
    async fn a_stream_without_usage_is_counted_by_the_tokenizer() {
        let (mut svc, mut handle, sink, store) = setup().await;
        handle.allow(1);
        let call = svc.ready().await.unwrap().call(request(true));
        let (_, respond) = handle.next_request().await.unwrap();
        respond.send_response(stream_reply(vec![text("hello"), text(" world")]));
        let ReplyBody::Stream(s) = call.await.unwrap().body else {
            panic!()
        };
        let out: Vec<_> = s.collect().await;
        let usage = out.last().unwrap().as_ref().unwrap().usage.clone().unwrap();
        // "hello world": 2 tokens; the prompt: 2 + 1 newline + 3 + 3.
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (9, 2));
        let recs = records(&sink, &store).await;
        assert_eq!(recs[0].estimated_tokens, 11);
    }

    #[test]
    fn a_prompt_kept_as_the_clients_body_counts_what_its_text_counts() {
        let raw = br#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hello world"},{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]}"#;
        let mut req: ChatRequest = serde_json::from_slice(raw).unwrap();
        let text = Prompt::of(&req);
        assert!(matches!(text, Prompt::Text(_)));
        req.ctx.verbatim = Some(bytes::Bytes::from_static(raw));
        let kept = Prompt::of(&req);
        assert!(matches!(kept, Prompt::Verbatim(_)));
        assert!(text.tokens() > 85);
        assert_eq!(kept.tokens(), text.tokens());
        // The Messages and Responses edges' requests are counted from their text.
        req.ctx.endpoint = Api::Messages;
        assert!(matches!(Prompt::of(&req), Prompt::Text(_)));
    }

    #[tokio::test]
    async fn a_stream_dropped_early_is_recorded_as_499_with_what_arrived() {
        let (mut svc, mut handle, sink, store) = setup().await;
        handle.allow(1);
        let call = svc.ready().await.unwrap().call(request(true));
        let (_, respond) = handle.next_request().await.unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tx.send(text("hello")).unwrap();
        let s = tokio_stream_like(rx);
        respond.send_response(ChatReply::stream(meta(), s));
        let ReplyBody::Stream(mut s) = call.await.unwrap().body else {
            panic!()
        };
        assert!(s.next().await.unwrap().is_ok());
        drop(s);
        let recs = records(&sink, &store).await;
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].status, 499);
        assert_eq!(recs[0].completion_tokens, 1);
        assert!(recs[0].cost_usd > 0.0, "tokens received are paid for");
    }

    fn tokio_stream_like(
        mut rx: tokio::sync::mpsc::UnboundedReceiver<Result<ChatChunk, GatewayError>>,
    ) -> crate::types::ChatStream {
        Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }

    #[tokio::test]
    async fn whole_answers_get_the_cost_and_failures_cost_nothing() {
        let (mut svc, mut handle, sink, store) = setup().await;
        handle.allow(2);
        let call = svc.ready().await.unwrap().call(request(false));
        let (_, respond) = handle.next_request().await.unwrap();
        let mut r = reply("openai/gpt-4o-mini");
        r.meta.provider = "openai";
        if let ReplyBody::Complete(resp) = &mut r.body {
            resp.usage = Some(Usage::new(2_000, 1_000));
        }
        respond.send_response(r);
        let r = call.await.unwrap();
        assert!((r.meta.cost_usd.unwrap() - 0.0009).abs() < 1e-12);

        let call = svc.ready().await.unwrap().call(request(false));
        let (_, respond) = handle.next_request().await.unwrap();
        respond.send_error(upstream(503, None));
        assert!(call.await.is_err());
        let recs = records(&sink, &store).await;
        assert_eq!(recs.len(), 2);
        // An upstream 503 reaches the client as a 502.
        assert_eq!((recs[1].status, recs[1].cost_usd), (502, 0.0));
        assert_eq!(&*recs[1].provider, "none");
        assert_eq!(&*recs[1].model, "gpt-4o-mini");
        let s = store
            .summary(&UsageQuery {
                key: Some("key-1".into()),
                ..UsageQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(s.by_key["key-1"].requests, 2);
        assert_eq!(s.totals.errors, 1);
    }
}
