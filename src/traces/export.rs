//! The OTLP/HTTP protobuf exporter, over the gateway's own pooled hyper/rustls client.
//!
//! The SDK's batch processor exports from a thread of its own; [`OtlpClient`] hands each
//! export to the tokio runtime it was built in and waits for it there, bounded by a timeout,
//! so no second HTTP or TLS stack is needed and no request ever waits for the collector.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceId};
use opentelemetry_http::{HttpClient as OtelHttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{
    Config, SamplingDecision, SamplingResult, SdkTracerProvider, ShouldSample, SpanData,
    SpanExporter,
};

use crate::client::HttpClient;
use crate::error::BuildError;

/// The collector's answer is read up to this size (it is a small protobuf status).
const MAX_COLLECTOR_ANSWER: usize = 64 * 1024;

/// How long one export may take unless `OTEL_EXPORTER_OTLP_TIMEOUT` says otherwise (the
/// OpenTelemetry default).
const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends OTLP export requests with the gateway's hyper client on a tokio runtime.
#[derive(Clone, Debug)]
pub struct OtlpClient {
    client: HttpClient,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
}

impl OtlpClient {
    /// Sends with `client` on the runtime of `runtime`, each export bounded by `timeout`.
    pub fn new(client: HttpClient, runtime: tokio::runtime::Handle, timeout: Duration) -> Self {
        Self {
            client,
            runtime,
            timeout,
        }
    }
}

impl OtelHttpClient for OtlpClient {
    fn send_bytes<'a, 'b>(
        &'a self,
        request: http::Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<http::Response<Bytes>, HttpError>> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        let client = self.client.clone();
        let timeout = self.timeout;
        let task = self.runtime.spawn(async move {
            let request = request.map(Full::new);
            let exchange = async {
                let resp = client.request(request).await?;
                let (parts, body) = resp.into_parts();
                let body = Limited::new(body, MAX_COLLECTOR_ANSWER)
                    .collect()
                    .await?
                    .to_bytes();
                Ok::<_, HttpError>(http::Response::from_parts(parts, body))
            };
            match tokio::time::timeout(timeout, exchange).await {
                Ok(out) => out,
                Err(_) => Err(format!("no answer from the collector within {timeout:?}").into()),
            }
        });
        Box::pin(async move {
            match task.await {
                Ok(out) => out,
                Err(e) => Err(format!("export task ended: {e}").into()),
            }
        })
    }
}

/// A tracer provider exporting to the OTLP/HTTP `endpoint` (the whole URL, such as
/// `http://collector:4318/v1/traces`) in batches, sending with `client`. Must be called inside
/// a tokio runtime, which then carries the exports. The `OTEL_*` variables of the SDK still
/// apply (batch sizes, sampler, resource attributes, export headers).
pub fn otlp_provider(endpoint: &str, client: HttpClient) -> Result<Otlp, BuildError> {
    build(Some(endpoint), client)
}

/// A tracer provider configured by the standard variables, or `None` when tracing is off:
/// on when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set,
/// unless `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`. Only the
/// `http/protobuf` protocol is spoken; `OTEL_SERVICE_NAME` defaults to `proxygate`. Must be
/// called inside a tokio runtime.
pub fn otlp_from_env(client: HttpClient) -> Result<Option<Otlp>, BuildError> {
    let var = |k: &str| {
        std::env::var(k)
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    match var("OTEL_TRACES_EXPORTER").as_deref() {
        None | Some("otlp") => {}
        Some("none") => return Ok(None),
        Some(other) => {
            return Err(BuildError::Traces(format!(
                "OTEL_TRACES_EXPORTER={other:?} is not supported (otlp or none)"
            )));
        }
    }
    for key in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Some(p) = var(key) {
            if p != "http/protobuf" {
                return Err(BuildError::Traces(format!(
                    "{key}={p:?} is not supported (http/protobuf)"
                )));
            }
            break;
        }
    }
    if var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none()
        && var("OTEL_EXPORTER_OTLP_ENDPOINT").is_none()
    {
        return Ok(None);
    }
    build(None, client).map(Some)
}

/// A tracer provider exporting over OTLP, and the status of its collector (for
/// [`crate::GatewayBuilder::collector_status`]).
#[derive(Clone, Debug)]
pub struct Otlp {
    /// The provider; `provider.tracer("proxygate")` gives the tracer.
    pub provider: SdkTracerProvider,
    /// Whether its collector answered the last export.
    pub status: CollectorStatus,
}

fn build(endpoint: Option<&str>, client: HttpClient) -> Result<Otlp, BuildError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        BuildError::Traces("the trace exporter needs a tokio runtime to send from".into())
    })?;
    let timeout = export_timeout()?;
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_timeout(timeout)
        .with_http_client(OtlpClient::new(client, runtime.clone(), timeout));
    if let Some(endpoint) = endpoint {
        exporter = exporter.with_endpoint(endpoint);
    }
    let exporter = exporter
        .build()
        .map_err(|e| BuildError::Traces(format!("OTLP trace exporter: {e}")))?;
    let status = CollectorStatus::default();
    let exporter = Backoff {
        inner: Arc::new(exporter),
        status: status.clone(),
        runtime,
    };
    let sampler = CollectorAwareSampler::new(Config::default().sampler, status.clone());
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "proxygate".to_owned());
    let resource = Resource::builder()
        .with_service_name(service)
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sampler)
        .with_resource(resource)
        .build();
    Ok(Otlp { provider, status })
}

/// After a failed export, the pause before the collector is tried again; each further failure
/// in a row doubles it up to [`MAX_BACKOFF`].
const BACKOFF: Duration = Duration::from_secs(5);

/// The longest pause between attempts to reach a collector that is away.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Whether the trace collector answered the last export: shared by the exporter, which
/// notes each outcome, and the sampler and trace layers, which make no recording spans while
/// the collector is away (their spans would be dropped unsent anyway).
///
/// The collector counts as away from a failed export until an export answers again. The OTLP
/// exporter of [`otlp_provider`] and [`otlp_from_env`] tries it with an empty export after
/// 5 s, then after pauses doubling with each failure in a row up to 60 s, so while it is away
/// no span is recorded and no batch is built.
#[derive(Clone, Debug, Default)]
pub struct CollectorStatus {
    inner: Arc<StatusInner>,
}

#[derive(Debug, Default)]
struct StatusInner {
    /// Whether the last export, or the last try of an away collector, failed.
    away: AtomicBool,
    /// Failed exports and tries in a row.
    failures: AtomicU32,
    /// Whether a task is trying the collector.
    trying: AtomicBool,
}

impl CollectorStatus {
    /// Whether the last export failed and no export has answered since.
    pub fn is_away(&self) -> bool {
        self.inner.away.load(Ordering::Relaxed)
    }

    /// Notes an export's outcome.
    pub fn note(&self, ok: bool) {
        if ok {
            self.inner.failures.store(0, Ordering::Relaxed);
            self.inner.away.store(false, Ordering::Relaxed);
        } else {
            self.inner.failures.fetch_add(1, Ordering::Relaxed);
            self.inner.away.store(true, Ordering::Relaxed);
        }
    }

    /// How long to wait before trying the collector again: 5 s after one failure, doubling
    /// with each failure in a row up to 60 s.
    pub fn pause(&self) -> Duration {
        let failures = self
            .inner
            .failures
            .load(Ordering::Relaxed)
            .saturating_sub(1);
        BACKOFF
            .saturating_mul(1u32 << failures.min(4))
            .min(MAX_BACKOFF)
    }
}

/// A sampler that drops every span while the collector is away and otherwise asks `inner`
/// (the sampler the `OTEL_TRACES_SAMPLER` variables configure). A dropped span still has
/// its own ids, so `traceparent` headers keep flowing upstream.
#[derive(Clone, Debug)]
pub struct CollectorAwareSampler {
    inner: Box<dyn ShouldSample>,
    status: CollectorStatus,
}

impl CollectorAwareSampler {
    /// Asks `inner` while the collector `status` reports is reachable.
    pub fn new(inner: Box<dyn ShouldSample>, status: CollectorStatus) -> Self {
        Self { inner, status }
    }
}

impl ShouldSample for CollectorAwareSampler {
    fn should_sample(
        &self,
        parent_context: Option<&opentelemetry::Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[opentelemetry::KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        if self.status.is_away() {
            return SamplingResult {
                decision: SamplingDecision::Drop,
                attributes: Vec::new(),
                trace_state: parent_context
                    .filter(|cx| cx.has_active_span())
                    .map(|cx| cx.span().span_context().trace_state().clone())
                    .unwrap_or_default(),
            };
        }
        self.inner
            .should_sample(parent_context, trace_id, name, span_kind, attributes, links)
    }
}

/// An exporter that notes each export's outcome in a [`CollectorStatus`]. After a failure
/// it drops batches unencoded and tries the collector with an empty export, on the runtime
/// the exports run on, after each [`CollectorStatus::pause`] until one answers; so a collector
/// that is away costs one failed connection per pause and nothing per request.
#[derive(Debug)]
struct Backoff<E> {
    inner: Arc<E>,
    status: CollectorStatus,
    runtime: tokio::runtime::Handle,
}

impl<E: SpanExporter + 'static> Backoff<E> {
    /// Starts trying the collector, unless a task does already.
    fn try_again_later(&self) {
        if self.status.inner.trying.swap(true, Ordering::AcqRel) {
            return;
        }
        let exporter = self.inner.clone();
        let status = self.status.clone();
        self.runtime.spawn(async move {
            while status.is_away() {
                tokio::time::sleep(status.pause()).await;
                let answered = exporter.export(Vec::new()).await.is_ok();
                status.note(answered);
            }
            status.inner.trying.store(false, Ordering::Release);
        });
    }
}

impl<E: SpanExporter + 'static> SpanExporter for Backoff<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        if self.status.is_away() {
            return Err(OTelSdkError::InternalFailure(
                "the trace collector is unreachable: batch dropped".into(),
            ));
        }
        let out = self.inner.export(batch).await;
        self.status.note(out.is_ok());
        if out.is_err() {
            self.try_again_later();
        }
        out
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        // The provider sets the resource while it is built, before any export shares the
        // exporter with a task trying the collector.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}

/// `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` or `OTEL_EXPORTER_OTLP_TIMEOUT`, in milliseconds.
fn export_timeout() -> Result<Duration, BuildError> {
    for key in [
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ] {
        if let Ok(v) = std::env::var(key) {
            return v
                .trim()
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| BuildError::Traces(format!("{key}={v:?} is not milliseconds")));
        }
    }
    Ok(DEFAULT_EXPORT_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
    use opentelemetry_sdk::trace::Sampler;

    #[test]
    fn a_failed_export_marks_the_collector_away_until_one_answers() {
        let status = CollectorStatus::default();
        assert!(!status.is_away());
        status.note(false);
        assert!(status.is_away());
        assert_eq!(status.pause(), Duration::from_secs(5));
        status.note(false);
        assert!(status.is_away(), "away for as long as tries fail");
        assert_eq!(status.pause(), Duration::from_secs(10));
        for _ in 0..6 {
            status.note(false);
        }
        assert_eq!(status.pause(), Duration::from_secs(60));
        status.note(true);
        assert!(!status.is_away());
        status.note(false);
        assert_eq!(
            status.pause(),
            Duration::from_secs(5),
            "a fresh run of failures"
        );
    }

    #[test]
    fn spans_made_while_the_collector_is_away_do_not_record_but_keep_their_ids() {
        let status = CollectorStatus::default();
        let sampler = CollectorAwareSampler::new(Box::new(Sampler::AlwaysOn), status.clone());
        let provider = SdkTracerProvider::builder().with_sampler(sampler).build();
        let tracer = provider.tracer("test");
        assert!(tracer.start("up").is_recording());
        status.note(false);
        let away = tracer.start("away");
        assert!(!away.is_recording());
        assert!(away.span_context().is_valid());
        assert!(!away.span_context().is_sampled());
        status.note(true);
        assert!(tracer.start("back").is_recording());
    }

    /// An exporter whose exports fail until `up` is set, counting the batches it is given.
    #[derive(Debug, Default)]
    struct Flaky {
        up: AtomicBool,
        calls: AtomicU32,
    }

    impl SpanExporter for Flaky {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            self.calls.fetch_add(1, Ordering::Relaxed);
            if self.up.load(Ordering::Relaxed) {
                Ok(())
            } else {
                Err(OTelSdkError::InternalFailure("connection refused".into()))
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_away_collector_is_tried_after_each_pause_and_found_again() {
        let flaky = Arc::new(Flaky::default());
        let status = CollectorStatus::default();
        let exporter = Backoff {
            inner: flaky.clone(),
            status: status.clone(),
            runtime: tokio::runtime::Handle::current(),
        };
        assert!(exporter.export(Vec::new()).await.is_err());
        assert!(status.is_away());
        assert_eq!(flaky.calls.load(Ordering::Relaxed), 1);
        // While away, batches are dropped without reaching the collector.
        assert!(exporter.export(Vec::new()).await.is_err());
        assert_eq!(flaky.calls.load(Ordering::Relaxed), 1);
        // The first try, 5 s later, fails too: the collector stays away.
        tokio::time::sleep(Duration::from_millis(5_100)).await;
        assert_eq!(flaky.calls.load(Ordering::Relaxed), 2);
        assert!(status.is_away());
        // The next try comes 10 s after that one and finds the collector back.
        flaky.up.store(true, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(status.is_away());
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        assert_eq!(flaky.calls.load(Ordering::Relaxed), 3);
        assert!(!status.is_away());
        assert!(exporter.export(Vec::new()).await.is_ok());
        assert_eq!(flaky.calls.load(Ordering::Relaxed), 4);
    }
}
