//! [`UpstreamMetricsLayer`]: records how long each upstream attempt takes, until the answer or
//! the first streamed chunk, in `proxygate_upstream_duration_seconds{provider}`.
//!
//! It sits inside the per-attempt timeout, right above the translation service, so it times
//! exactly one upstream call; an attempt the timeout cancels records nothing (the timeout is
//! counted by its own error instead).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::telemetry::names;
use crate::types::ChatRequest;

/// The provider's histogram, registered on first use (after the recorder is installed) and
/// then shared by every clone: registering it per call cost a label lookup each time.
type Handle = Arc<OnceLock<metrics::Histogram>>;

/// Builds [`UpstreamMetrics`]s for one provider.
#[derive(Clone, Debug)]
pub struct UpstreamMetricsLayer {
    provider: &'static str,
    histogram: Handle,
}

impl UpstreamMetricsLayer {
    /// Times calls to `provider`.
    pub fn new(provider: &'static str) -> Self {
        Self {
            provider,
            histogram: Handle::default(),
        }
    }
}

impl<S> Layer<S> for UpstreamMetricsLayer {
    type Service = UpstreamMetrics<S>;
    fn layer(&self, inner: S) -> Self::Service {
        UpstreamMetrics {
            inner,
            provider: self.provider,
            histogram: self.histogram.clone(),
        }
    }
}

/// Times each call of `inner`.
#[derive(Clone, Debug)]
pub struct UpstreamMetrics<S> {
    inner: S,
    provider: &'static str,
    histogram: Handle,
}

// === impl UpstreamMetrics ===

impl<S: Service<ChatRequest>> Service<ChatRequest> for UpstreamMetrics<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = TimedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx) // nothing to reserve: pass readiness through
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        let provider = self.provider;
        TimedFuture {
            inner: self.inner.call(req),
            started: Instant::now(),
            histogram: self
                .histogram
                .get_or_init(|| {
                    metrics::histogram!(names::UPSTREAM_DURATION_SECONDS, "provider" => provider)
                })
                .clone(),
        }
    }
}

pin_project! {
    /// Records the elapsed time when the inner call resolves.
    #[derive(Debug)]
    pub struct TimedFuture<F> {
        #[pin]
        inner: F,
        started: Instant,
        histogram: metrics::Histogram,
    }
}

impl<F: Future> Future for TimedFuture<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let out = ready!(this.inner.poll(cx));
        this.histogram.record(this.started.elapsed().as_secs_f64());
        Poll::Ready(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn each_call_is_recorded_once() {
        let recorder = crate::telemetry::build_recorder();
        let handle = recorder.handle();
        let svc =
            UpstreamMetricsLayer::new("groq").layer(tower::service_fn(|_req: ChatRequest| async {
                Ok::<_, std::convert::Infallible>(())
            }));
        let guard = metrics::set_default_local_recorder(&recorder);
        svc.clone().oneshot(ChatRequest::default()).await.unwrap();
        svc.oneshot(ChatRequest::default()).await.unwrap();
        drop(guard);
        let text = handle.render();
        assert!(
            text.contains(r#"proxygate_upstream_duration_seconds_count{provider="groq"} 2"#),
            "{text}"
        );
    }
}
