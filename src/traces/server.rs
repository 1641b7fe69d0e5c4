//! [`ServerSpanLayer`]: the server span of each HTTP request, and its access-log line.
//!
//! The span is started when the request arrives (the child of the client's `traceparent`, if
//! any) and ended when the response body ends or is dropped, so a stream's span covers the
//! whole stream. The access-log line is written at the same moment, from the response's
//! `x-proxygate-*` headers and the request's [`Exchange`].

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Instant, SystemTime};

use http_body::{Body, Frame, SizeHint};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context as OtelContext, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracer;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::{ACCESS_LOG_TARGET, CollectorStatus, Exchange};

/// Builds [`ServerSpan`]s.
#[derive(Clone, Debug)]
pub struct ServerSpanLayer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    tracer: Option<SdkTracer>,
    access_log: bool,
    collector: Option<CollectorStatus>,
}

impl ServerSpanLayer {
    /// Spans to `tracer` (none when `None`); an access-log line per request when `access_log`.
    pub fn new(tracer: Option<SdkTracer>, access_log: bool) -> Self {
        Self {
            shared: Arc::new(Shared {
                tracer,
                access_log,
                collector: None,
            }),
        }
    }

    /// Makes only non-recording spans (ids for `traceparent`, nothing else) while
    /// `collector` reports the collector away.
    pub fn with_collector(self, collector: Option<CollectorStatus>) -> Self {
        Self {
            shared: Arc::new(Shared {
                tracer: self.shared.tracer.clone(),
                access_log: self.shared.access_log,
                collector,
            }),
        }
    }
}

impl<S> Layer<S> for ServerSpanLayer {
    type Service = ServerSpan<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ServerSpan {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// Traces and logs each request to `inner`.
#[derive(Clone, Debug)]
pub struct ServerSpan<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// The W3C Trace Context header.
static TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

/// Reads propagation headers from a request.
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The route template of `path`, or `None` for a path that is no endpoint (so raw paths,
/// which may carry ids, never name a span).
pub(crate) fn route_of(path: &str) -> Option<&'static str> {
    const EXACT: &[&str] = &[
        "/v1/chat/completions",
        "/chat/completions",
        "/v1/messages",
        "/v1/messages/count_tokens",
        "/v1/embeddings",
        "/embeddings",
        "/v1/responses",
        "/responses",
        "/v1/models",
        "/v1/usage",
        "/health",
        "/metrics",
        "/dashboard",
        "/dashboard/",
        "/admin/circuits",
        "/admin/rates",
        "/admin/stats",
        "/admin/keys",
    ];
    if let Some(r) = EXACT.iter().find(|r| **r == path) {
        return Some(r);
    }
    let rest = |prefix: &str| {
        path.strip_prefix(prefix)
            .filter(|rest| !rest.is_empty() && !rest.contains('/'))
    };
    if let Some(id) = path
        .strip_prefix("/v1/responses/")
        .and_then(|p| p.strip_suffix("/input_items"))
        && !id.is_empty()
        && !id.contains('/')
    {
        return Some("/v1/responses/{id}/input_items");
    }
    if rest("/v1/responses/").is_some() {
        return Some("/v1/responses/{id}");
    }
    if rest("/admin/keys/").is_some() {
        return Some("/admin/keys/{id}");
    }
    if rest("/dashboard/").is_some() {
        return Some("/dashboard/{file}");
    }
    if path.len() > "/admin/circuits/".len() && path.starts_with("/admin/circuits/") {
        return Some("/admin/circuits/{*deployment}");
    }
    None
}

impl<S, B, RB> Service<http::Request<B>> for ServerSpan<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    RB: Body,
{
    type Response = http::Response<TracedBody<RB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx) // nothing to reserve: pass readiness through
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let away = self
            .shared
            .collector
            .as_ref()
            .is_some_and(CollectorStatus::is_away);
        if away && !self.shared.access_log && !req.headers().contains_key(&TRACEPARENT) {
            // Nothing to record, log or continue: the request passes through untouched.
            return ResponseFuture {
                inner: self.inner.call(req),
                end: None,
            };
        }
        let started = Instant::now();
        let route = route_of(req.uri().path());
        let mut cx = OtelContext::current();
        if let Some(tracer) = &self.shared.tracer {
            let parent =
                TraceContextPropagator::new().extract_with_context(&cx, &Headers(req.headers()));
            let builder = if away {
                // The sampler drops this span: it only carries the client's trace on to the
                // attempts below.
                tracer.span_builder("")
            } else {
                let method = req.method().as_str().to_owned();
                let name = match route {
                    Some(r) => format!("{method} {r}"),
                    None => method.clone(),
                };
                let mut attributes = vec![
                    KeyValue::new("http.request.method", method),
                    KeyValue::new("url.path", req.uri().path().to_owned()),
                    KeyValue::new(
                        "url.scheme",
                        req.uri().scheme_str().unwrap_or("http").to_owned(),
                    ),
                ];
                if let Some(r) = route {
                    attributes.push(KeyValue::new("http.route", r));
                }
                tracer
                    .span_builder(name)
                    .with_start_time(SystemTime::now())
                    .with_attributes(attributes)
            };
            let span = builder
                .with_kind(SpanKind::Server)
                .start_with_context(tracer, &parent);
            cx = parent.with_span(span);
        }
        let exchange = Exchange::default();
        cx = cx.with_value(exchange.clone());
        let inner = {
            let _attached = cx.clone().attach();
            self.inner.call(req)
        };
        ResponseFuture {
            inner,
            end: Some(End {
                cx,
                exchange,
                started,
                endpoint: route.unwrap_or("other"),
                access_log: self.shared.access_log,
                status: 0,
                headers: Provenance::default(),
            }),
        }
    }
}

/// What the response's headers tell about where it came from.
#[derive(Debug, Default)]
struct Provenance {
    request_id: Option<String>,
    deployment: Option<String>,
    attempts: Option<u32>,
    cost_usd: Option<f64>,
    cache: Option<String>,
}

impl Provenance {
    fn read(headers: &http::HeaderMap) -> Self {
        use http::HeaderName;
        static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
        static DEPLOYMENT: HeaderName = HeaderName::from_static("x-proxygate-deployment");
        static ATTEMPTS: HeaderName = HeaderName::from_static("x-proxygate-attempts");
        static COST: HeaderName = HeaderName::from_static("x-proxygate-cost-usd");
        static CACHE: HeaderName = HeaderName::from_static("x-proxygate-cache");
        let text = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        Self {
            request_id: text(&REQUEST_ID).map(str::to_owned),
            deployment: text(&DEPLOYMENT).map(str::to_owned),
            attempts: text(&ATTEMPTS).and_then(|v| v.parse().ok()),
            cost_usd: text(&COST).and_then(|v| v.parse().ok()),
            cache: text(&CACHE).map(str::to_owned),
        }
    }
}

/// How a response ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// The body was sent whole.
    Sent,
    /// The body failed part-way.
    Failed,
    /// The client went away first.
    Abandoned,
}

/// Everything needed to end a request's span and write its line.
#[derive(Debug)]
struct End {
    cx: OtelContext,
    exchange: Exchange,
    started: Instant,
    /// The route, or `other`.
    endpoint: &'static str,
    access_log: bool,
    status: u16,
    headers: Provenance,
}

impl End {
    fn finish(self, outcome: Outcome) {
        let notes = self.exchange.notes();
        let span = self.cx.span();
        if span.is_recording() {
            if self.status != 0 {
                span.set_attribute(KeyValue::new(
                    "http.response.status_code",
                    i64::from(self.status),
                ));
            }
            if let Some(model) = &notes.model {
                span.set_attribute(KeyValue::new("gen_ai.request.model", model.clone()));
            }
            // A stream that failed after its first byte still answered 200.
            let failed_late = self.status < 400 && notes.error.is_some();
            let error: Option<Cow<'static, str>> = match outcome {
                _ if self.status >= 500 => Some(Cow::Owned(self.status.to_string())),
                Outcome::Failed => Some(Cow::Borrowed(notes.error.unwrap_or("body"))),
                Outcome::Abandoned => Some(Cow::Borrowed("client_closed")),
                Outcome::Sent => notes.error.map(Cow::Borrowed),
            };
            if let Some(kind) = error {
                span.set_attribute(KeyValue::new("error.type", kind.clone()));
                if self.status >= 500 || outcome == Outcome::Failed || failed_late {
                    span.set_status(Status::error(kind));
                }
            }
        }
        span.end_with_timestamp(SystemTime::now());
        if !self.access_log {
            return;
        }
        let status = match outcome {
            Outcome::Abandoned if self.status == 0 => 499,
            _ => self.status,
        };
        let latency_ms = self.started.elapsed().as_secs_f64() * 1e3;
        let ttft_ms = notes
            .first_chunk
            .map(|t| t.saturating_duration_since(self.started).as_secs_f64() * 1e3);
        let cost_usd = self.headers.cost_usd.or(notes.cost_usd);
        let cache = self
            .headers
            .cache
            .as_deref()
            .or(notes.cache_hit.map(|h| if h { "hit" } else { "miss" }));
        let deployment = self
            .headers
            .deployment
            .as_deref()
            .or(notes.deployment.as_deref());
        tracing::info!(
            target: ACCESS_LOG_TARGET,
            request_id = self.headers.request_id.as_deref(),
            key_id = notes.key_id.as_deref(),
            endpoint = self.endpoint,
            model = notes.model.as_deref(),
            provider = notes.provider,
            deployment,
            status,
            attempts = self.headers.attempts.or(notes.attempts),
            latency_ms,
            ttft_ms,
            input_tokens = notes.input_tokens,
            output_tokens = notes.output_tokens,
            cost_usd,
            cache,
            error = notes.error,
            completed = outcome == Outcome::Sent,
            "request"
        );
    }
}

pin_project! {
    /// Ends the request's span when the inner service fails or the client leaves before the
    /// response; otherwise hands the end to the response body.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        end: Option<End>,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(end) = this.project().end.take() {
                end.finish(Outcome::Abandoned);
            }
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, RB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<RB>, E>>,
    RB: Body,
{
    type Output = Result<http::Response<TracedBody<RB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = {
            let _attached = this.end.as_ref().map(|e| e.cx.clone().attach());
            ready!(this.inner.poll(cx))
        };
        let Some(mut end) = this.end.take() else {
            // Polled again after completion: the inner future answers for itself.
            return Poll::Ready(out.map(|r| r.map(TracedBody::passthrough)));
        };
        match out {
            Ok(resp) => {
                end.status = resp.status().as_u16();
                if end.access_log {
                    end.headers = Provenance::read(resp.headers());
                }
                let (parts, body) = resp.into_parts();
                let mut body = TracedBody {
                    inner: body,
                    end: Some(end),
                };
                if body.inner.is_end_stream() {
                    body.finish(Outcome::Sent);
                }
                Poll::Ready(Ok(http::Response::from_parts(parts, body)))
            }
            Err(e) => {
                end.status = 500;
                end.finish(Outcome::Failed);
                Poll::Ready(Err(e))
            }
        }
    }
}

pin_project! {
    /// A response body that ends its request's span (and writes its access-log line) when it
    /// ends, fails or is dropped.
    pub struct TracedBody<B> {
        #[pin]
        inner: B,
        end: Option<End>,
    }

    impl<B> PinnedDrop for TracedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(end) = this.project().end.take() {
                end.finish(Outcome::Abandoned);
            }
        }
    }
}

impl<B> std::fmt::Debug for TracedBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracedBody").finish_non_exhaustive()
    }
}

impl<B> TracedBody<B> {
    fn passthrough(inner: B) -> Self {
        Self { inner, end: None }
    }

    fn finish(&mut self, outcome: Outcome) {
        if let Some(end) = self.end.take() {
            end.finish(outcome);
        }
    }
}

impl<B: Body> Body for TracedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        let outcome = match &frame {
            None => Some(Outcome::Sent),
            Some(Err(_)) => Some(Outcome::Failed),
            Some(Ok(_)) if this.inner.is_end_stream() => Some(Outcome::Sent),
            Some(Ok(_)) => None,
        };
        if let Some(outcome) = outcome
            && let Some(end) = this.end.take()
        {
            end.finish(outcome);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
