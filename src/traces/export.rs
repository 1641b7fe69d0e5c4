//! The OTLP/HTTP protobuf exporter, over the gateway's own pooled hyper/rustls client.
//!
//! The SDK's batch processor exports from a thread of its own; [`OtlpClient`] hands each
//! export to the tokio runtime it was built in and waits for it there, bounded by a timeout,
//! so no second HTTP or TLS stack is needed and no request ever waits for the collector.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use opentelemetry_http::{HttpClient as OtelHttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};

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
pub fn otlp_provider(endpoint: &str, client: HttpClient) -> Result<SdkTracerProvider, BuildError> {
    build(Some(endpoint), client)
}

/// A tracer provider configured by the standard variables, or `None` when tracing is off:
/// on when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set,
/// unless `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`. Only the
/// `http/protobuf` protocol is spoken; `OTEL_SERVICE_NAME` defaults to `proxygate`. Must be
/// called inside a tokio runtime.
pub fn otlp_from_env(client: HttpClient) -> Result<Option<SdkTracerProvider>, BuildError> {
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

fn build(endpoint: Option<&str>, client: HttpClient) -> Result<SdkTracerProvider, BuildError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        BuildError::Traces("the trace exporter needs a tokio runtime to send from".into())
    })?;
    let timeout = export_timeout()?;
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_timeout(timeout)
        .with_http_client(OtlpClient::new(client, runtime, timeout));
    if let Some(endpoint) = endpoint {
        exporter = exporter.with_endpoint(endpoint);
    }
    let exporter = exporter
        .build()
        .map_err(|e| BuildError::Traces(format!("OTLP trace exporter: {e}")))?;
    let exporter = Backoff::new(exporter);
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
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// After a failed export, batches are dropped unencoded for this long (then one is tried).
const BACKOFF: Duration = Duration::from_secs(5);

/// An exporter that stops encoding and sending batches for [`BACKOFF`] after one fails, so a
/// collector that is away costs one failed connection per period instead of one per batch.
#[derive(Debug)]
struct Backoff<E> {
    inner: E,
    down_until: std::sync::Mutex<Option<std::time::Instant>>,
}

impl<E> Backoff<E> {
    fn new(inner: E) -> Self {
        Self {
            inner,
            down_until: std::sync::Mutex::new(None),
        }
    }

    fn is_down(&self) -> bool {
        self.down_until
            .lock()
            .map(|d| d.is_some_and(|t| std::time::Instant::now() < t))
            .unwrap_or(false)
    }

    fn note(&self, ok: bool) {
        if let Ok(mut d) = self.down_until.lock() {
            *d = (!ok).then(|| std::time::Instant::now() + BACKOFF);
        }
    }
}

impl<E: SpanExporter> SpanExporter for Backoff<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        if self.is_down() {
            return Err(OTelSdkError::InternalFailure(
                "the trace collector is unreachable: batch dropped".into(),
            ));
        }
        let out = self.inner.export(batch).await;
        self.note(out.is_ok());
        out
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
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
