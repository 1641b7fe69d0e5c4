//! [`AttemptSpanLayer`]: one client span per upstream attempt, with the OpenTelemetry GenAI
//! semantic conventions (`gen_ai.*`).
//!
//! It wraps one deployment's stack, below failover, so a failover shows as two sibling
//! spans. The span is current while the attempt runs, so the provider call below sends its
//! `traceparent` ([`crate::telemetry::trace_upstream`], which also notes `server.address`). A
//! streamed answer's span ends with the stream and carries its usage and finish reasons.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::SystemTime;

use futures_core::Stream;
use opentelemetry::trace::{SpanKind, SpanRef, Status, TraceContextExt, Tracer};
use opentelemetry::{Array, Context as OtelContext, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::{SdkTracer, Span as SdkSpan};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::{CollectorStatus, Exchange};
use crate::GatewayError;
use crate::types::{ChatChunk, ChatReply, ChatRequest, ChatStream, ReplyBody, Usage};

/// Captured output text is kept up to this many bytes per attempt.
const MAX_CAPTURED_OUTPUT: usize = 64 * 1024;

/// Builds [`AttemptSpan`]s.
#[derive(Clone, Debug)]
pub struct AttemptSpanLayer {
    tracer: SdkTracer,
    capture_content: bool,
    collector: Option<CollectorStatus>,
}

impl AttemptSpanLayer {
    /// Spans to `tracer`; prompts and answers recorded only when `capture_content`.
    pub fn new(tracer: SdkTracer, capture_content: bool) -> Self {
        Self {
            tracer,
            capture_content,
            collector: None,
        }
    }

    /// Makes only non-recording spans (ids for `traceparent`, nothing else) while
    /// `collector` reports the collector away.
    pub fn with_collector(mut self, collector: Option<CollectorStatus>) -> Self {
        self.collector = collector;
        self
    }
}

impl<S> Layer<S> for AttemptSpanLayer {
    type Service = AttemptSpan<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AttemptSpan {
            inner,
            tracer: self.tracer.clone(),
            capture_content: self.capture_content,
            collector: self.collector.clone(),
        }
    }
}

/// Traces each call of `inner` as one upstream attempt.
#[derive(Clone, Debug)]
pub struct AttemptSpan<S> {
    inner: S,
    tracer: SdkTracer,
    capture_content: bool,
    collector: Option<CollectorStatus>,
}

impl<S> Service<ChatRequest> for AttemptSpan<S>
where
    S: Service<ChatRequest, Response = ChatReply, Error = GatewayError>,
{
    type Response = ChatReply;
    type Error = GatewayError;
    type Future = AttemptFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx) // nothing to reserve: pass readiness through
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        if self.is_away() && !OtelContext::map_current(TraceContextExt::has_active_span) {
            // Nothing to record and no client trace to continue upstream.
            return AttemptFuture {
                inner: self.inner.call(req),
                cx: None,
                capture_content: false,
            };
        }
        let parent = OtelContext::current();
        let (span, capture_content) = self.start(&parent, &req);
        let cx = parent.with_span(span);
        let inner = {
            let _attached = cx.clone().attach();
            self.inner.call(req)
        };
        AttemptFuture {
            inner,
            cx: Some(cx),
            capture_content,
        }
    }
}

impl<S> AttemptSpan<S> {
    /// Whether the collector is away, so that spans are not recorded.
    fn is_away(&self) -> bool {
        self.collector
            .as_ref()
            .is_some_and(CollectorStatus::is_away)
    }

    /// The attempt's span, and whether its answer is to be captured: a span without
    /// attributes while the collector is away (the sampler drops it; it only continues the
    /// client's trace in the upstream's traceparent), the full one otherwise.
    fn start(&self, parent: &OtelContext, req: &ChatRequest) -> (SdkSpan, bool) {
        if self.is_away() {
            let span = self
                .tracer
                .span_builder("")
                .with_kind(SpanKind::Client)
                .start_with_context(&self.tracer, parent);
            return (span, false);
        }
        let operation = if req.ctx.embedding.is_some() {
            "embeddings"
        } else {
            "chat"
        };
        // The model the client asked for; below the router `req.model` may be the upstream's.
        let asked = parent
            .get::<Exchange>()
            .and_then(|x| x.notes().model)
            .unwrap_or_else(|| req.model.clone());
        let mut attributes = vec![
            KeyValue::new("gen_ai.operation.name", operation),
            KeyValue::new("gen_ai.request.model", asked.clone()),
            KeyValue::new("proxygate.attempt", i64::from(req.ctx.attempt)),
        ];
        if let Some(target) = &req.ctx.target {
            attributes.push(KeyValue::new(
                "gen_ai.provider.name",
                target.provider_name(),
            ));
            attributes.push(KeyValue::new(
                "proxygate.deployment",
                target.id().to_string(),
            ));
        }
        if let Some(t) = req.temperature {
            attributes.push(KeyValue::new("gen_ai.request.temperature", t));
        }
        if let Some(m) = req.max_completion_tokens.or(req.max_tokens) {
            attributes.push(KeyValue::new(
                "gen_ai.request.max_tokens",
                i64::try_from(m).unwrap_or(i64::MAX),
            ));
        }
        if req.is_stream() {
            attributes.push(KeyValue::new("gen_ai.request.stream", true));
        }
        if self.capture_content
            && let Ok(messages) = serde_json::to_string(&req.messages)
        {
            attributes.push(KeyValue::new("gen_ai.input.messages", messages));
        }
        let span = self
            .tracer
            .span_builder(format!("{operation} {asked}"))
            .with_kind(SpanKind::Client)
            .with_start_time(SystemTime::now())
            .with_attributes(attributes)
            .start_with_context(&self.tracer, parent);
        (span, self.capture_content)
    }
}

fn record_usage(span: &SpanRef<'_>, usage: &Usage) {
    span.set_attribute(KeyValue::new(
        "gen_ai.usage.input_tokens",
        i64::try_from(usage.prompt_tokens).unwrap_or(i64::MAX),
    ));
    span.set_attribute(KeyValue::new(
        "gen_ai.usage.output_tokens",
        i64::try_from(usage.completion_tokens).unwrap_or(i64::MAX),
    ));
}

fn record_finish_reasons(span: &SpanRef<'_>, reasons: Vec<String>) {
    if reasons.is_empty() {
        return;
    }
    let reasons = reasons.into_iter().map(StringValue::from).collect();
    span.set_attribute(KeyValue::new(
        "gen_ai.response.finish_reasons",
        Value::Array(Array::String(reasons)),
    ));
}

fn record_error(span: &SpanRef<'_>, kind: &'static str) {
    span.set_attribute(KeyValue::new("error.type", kind));
    span.set_status(Status::error(kind));
}

pin_project! {
    /// Ends the attempt's span with its answer, or hands it to the answer's stream.
    pub struct AttemptFuture<F> {
        #[pin]
        inner: F,
        cx: Option<OtelContext>,
        capture_content: bool,
    }

    impl<F> PinnedDrop for AttemptFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            // Cancelled before an answer (the per-attempt timeout, or the client left).
            if let Some(cx) = this.project().cx.take() {
                let span = cx.span();
                record_error(&span, "cancelled");
                span.end_with_timestamp(SystemTime::now());
            }
        }
    }
}

impl<F> std::fmt::Debug for AttemptFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttemptFuture").finish_non_exhaustive()
    }
}

impl<F> Future for AttemptFuture<F>
where
    F: Future<Output = Result<ChatReply, GatewayError>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let out = {
            let _attached = this.cx.as_ref().map(|c| c.clone().attach());
            ready!(this.inner.poll(cx))
        };
        let Some(span_cx) = this.cx.take() else {
            return Poll::Ready(out);
        };
        let span = span_cx.span();
        if !span.is_recording() {
            return Poll::Ready(out);
        }
        match out {
            Ok(mut reply) => {
                match reply.body {
                    ReplyBody::Complete(ref r) => {
                        record_completion(&span, r, *this.capture_content);
                        span.end_with_timestamp(SystemTime::now());
                    }
                    ReplyBody::Raw(ref raw) => {
                        // The client gets the upstream's bytes; the span reads them decoded.
                        if let Ok(r) = raw.decode(reply.meta.provider) {
                            record_completion(&span, &r, *this.capture_content);
                        }
                        span.end_with_timestamp(SystemTime::now());
                    }
                    ReplyBody::Embeddings(ref r) => {
                        span.set_attribute(KeyValue::new("gen_ai.response.model", r.model.clone()));
                        if let Some(u) = &r.usage {
                            record_usage(&span, u);
                        }
                        span.end_with_timestamp(SystemTime::now());
                    }
                    ReplyBody::Stream(stream) => {
                        reply.body = ReplyBody::Stream(Box::pin(AttemptStream {
                            inner: stream,
                            cx: Some(span_cx),
                            model_seen: false,
                            finish_reasons: Vec::new(),
                            output: this.capture_content.then(String::new),
                        }));
                    }
                }
                Poll::Ready(Ok(reply))
            }
            Err(e) => {
                record_error(&span, e.kind());
                span.end_with_timestamp(SystemTime::now());
                Poll::Ready(Err(e))
            }
        }
    }
}

pin_project! {
    /// A streamed answer whose end (or failure, or drop) ends the attempt's span.
    struct AttemptStream {
        #[pin]
        inner: ChatStream,
        cx: Option<OtelContext>,
        model_seen: bool,
        finish_reasons: Vec<String>,
        output: Option<String>,
    }

    impl PinnedDrop for AttemptStream {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(cx) = this.cx.take() {
                let span = cx.span();
                record_finish_reasons(&span, std::mem::take(this.finish_reasons));
                record_error(&span, "cancelled");
                span.end_with_timestamp(SystemTime::now());
            }
        }
    }
}

impl Stream for AttemptStream {
    type Item = Result<ChatChunk, GatewayError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let item = ready!(this.inner.poll_next(cx));
        let Some(span_cx) = this.cx.as_ref() else {
            return Poll::Ready(item);
        };
        let span = span_cx.span();
        match &item {
            Some(Ok(chunk)) => {
                if !*this.model_seen && !chunk.model.is_empty() {
                    *this.model_seen = true;
                    span.set_attribute(KeyValue::new("gen_ai.response.model", chunk.model.clone()));
                    span.set_attribute(KeyValue::new("gen_ai.response.id", chunk.id.clone()));
                }
                if let Some(u) = &chunk.usage {
                    record_usage(&span, u);
                }
                for c in &chunk.choices {
                    if let Some(r) = &c.finish_reason {
                        this.finish_reasons.push(r.clone());
                    }
                    if let (Some(out), Some(text)) = (this.output.as_mut(), &c.delta.content)
                        && out.len() + text.len() <= MAX_CAPTURED_OUTPUT
                    {
                        out.push_str(text);
                    }
                }
                return Poll::Ready(item);
            }
            Some(Err(e)) => record_error(&span, e.kind()),
            None => {}
        }
        record_finish_reasons(&span, std::mem::take(this.finish_reasons));
        if let Some(out) = this.output.take() {
            span.set_attribute(KeyValue::new(
                "gen_ai.output.messages",
                serde_json::json!([{"role": "assistant", "content": out}]).to_string(),
            ));
        }
        span.end_with_timestamp(SystemTime::now());
        *this.cx = None;
        Poll::Ready(item)
    }
}

/// A whole answer's attributes on its attempt span.
fn record_completion(span: &SpanRef<'_>, r: &crate::types::ChatResponse, capture_content: bool) {
    span.set_attribute(KeyValue::new("gen_ai.response.model", r.model.clone()));
    span.set_attribute(KeyValue::new("gen_ai.response.id", r.id.clone()));
    if let Some(u) = &r.usage {
        record_usage(span, u);
    }
    record_finish_reasons(
        span,
        r.choices
            .iter()
            .filter_map(|c| c.finish_reason.clone())
            .collect(),
    );
    if capture_content
        && let Ok(out) =
            serde_json::to_string(&r.choices.iter().map(|c| &c.message).collect::<Vec<_>>())
    {
        span.set_attribute(KeyValue::new("gen_ai.output.messages", out));
    }
}
