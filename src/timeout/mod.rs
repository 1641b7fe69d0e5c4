//! Per-attempt timeouts: `REQUEST_TIMEOUT_MS` from the call until the upstream's answer (or a
//! stream's first chunk), cut shorter by the request's overall deadline (`ctx.deadline`, which
//! the failover layer sets from `OVERALL_TIMEOUT_MS`), and `STREAM_IDLE_TIMEOUT_MS` between two
//! chunks once a stream is committed ([`IdleTimeout`]). It sits below the breaker in each
//! deployment's stack, so a hang counts as that deployment's failure and the failover layer
//! moves on (a [`GatewayError::Timeout`] is retryable). Giving up drops the inner future, and
//! with it the hyper request, so the upstream sees the connection close.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use proxygate::timeout::{TimeoutConfig, TimeoutLayer};
//! use proxygate::providers::mock::Mock;
//!
//! let config = TimeoutConfig::default()
//!     .with_request(Duration::from_secs(30))
//!     .with_stream_idle(Duration::from_secs(60));
//! let svc = tower::ServiceBuilder::new()
//!     .layer(TimeoutLayer::new(config))
//!     .service(Mock::default());
//! # let _ = svc;
//! ```

mod body;
mod future;
mod layer;

use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower::Service;

pub use body::IdleTimeout;
pub use future::ResponseFuture;
pub use layer::TimeoutLayer;

use crate::GatewayError;
use crate::types::{ChatReply, ChatRequest};

/// Timeout settings (defaults: 60 s per attempt, 60 s between chunks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeoutConfig {
    /// Per attempt, until the answer or first chunk.
    pub request: Duration,
    /// Between two chunks of a committed stream.
    pub stream_idle: Duration,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        Self {
            request: Duration::from_secs(60),
            stream_idle: Duration::from_secs(60),
        }
    }
}

// === impl TimeoutConfig ===

impl TimeoutConfig {
    /// The per-attempt timeout.
    pub fn with_request(mut self, d: Duration) -> Self {
        self.request = d;
        self
    }

    /// The idle timeout between chunks.
    pub fn with_stream_idle(mut self, d: Duration) -> Self {
        self.stream_idle = d;
        self
    }
}

/// Bounds one attempt in time.
#[derive(Clone, Debug)]
pub struct Timeout<S> {
    inner: S,
    config: TimeoutConfig,
}

// === impl Timeout ===

impl<S> Timeout<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, config: TimeoutConfig) -> Self {
        Self { inner, config }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> Service<ChatRequest> for Timeout<S>
where
    S: Service<ChatRequest, Response = ChatReply, Error = GatewayError>,
{
    type Response = ChatReply;
    type Error = GatewayError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Waiting for readiness is not part of the attempt's budget: the client is always ready.
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        let now = Instant::now();
        let mut budget = self.config.request;
        if let Some(deadline) = req.ctx.deadline {
            budget = budget.min(deadline.saturating_duration_since(now));
        }
        let provider = req
            .ctx
            .target
            .as_ref()
            .map(|d| d.provider_name())
            .unwrap_or("upstream");
        ResponseFuture::new(
            self.inner.call(req),
            tokio::time::sleep_until(now + budget),
            provider,
            budget,
            self.config.stream_idle,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{Handle, Upstream, pair};
    use crate::types::{ChatChunk, ChatStream, Delta, ReplyBody, ReplyMeta};
    use futures_util::StreamExt;
    use tokio_test::assert_ready_ok;
    use tower::Layer;
    use tower_test::mock;

    fn spawn(config: TimeoutConfig) -> (mock::Spawn<Timeout<Upstream>>, Handle) {
        let (svc, handle) = pair();
        (
            mock::Spawn::new(TimeoutLayer::new(config).layer(svc)),
            handle,
        )
    }

    fn config(request_ms: u64, idle_ms: u64) -> TimeoutConfig {
        TimeoutConfig::default()
            .with_request(Duration::from_millis(request_ms))
            .with_stream_idle(Duration::from_millis(idle_ms))
    }

    fn chunk(text: &str) -> ChatChunk {
        ChatChunk::delta("c", 1, "m", Delta::text(text), None)
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_in_time_passes() {
        let (mut svc, mut handle) = spawn(config(1000, 1000));
        assert_ready_ok!(svc.poll_ready());
        let call = tokio::spawn(svc.call(ChatRequest::default()));
        let (_, respond) = handle.next_request().await.unwrap();
        tokio::time::advance(Duration::from_millis(999)).await;
        respond.send_response(crate::test_util::reply("groq/m"));
        assert!(call.await.unwrap().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_hang_times_out_after_the_request_timeout() {
        let (mut svc, mut handle) = spawn(config(500, 1000));
        assert_ready_ok!(svc.poll_ready());
        let started = Instant::now();
        let call = svc.call(ChatRequest::default());
        let (_, _respond) = handle.next_request().await.unwrap();
        let err = call.await.unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_millis(500));
        assert!(
            matches!(err, GatewayError::Timeout { after, .. } if after == Duration::from_millis(500))
        );
        assert_eq!(err.status(), http::StatusCode::GATEWAY_TIMEOUT);
        assert!(err.is_retryable());
    }

    #[tokio::test(start_paused = true)]
    async fn the_overall_deadline_cuts_the_attempt_short() {
        let (mut svc, mut handle) = spawn(config(5000, 1000));
        let mut req = ChatRequest::default();
        req.ctx.deadline = Some(Instant::now() + Duration::from_millis(300));
        assert_ready_ok!(svc.poll_ready());
        let started = Instant::now();
        let call = svc.call(req);
        let (_, _respond) = handle.next_request().await.unwrap();
        assert!(matches!(call.await, Err(GatewayError::Timeout { .. })));
        assert_eq!(started.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_stream_ends_with_a_timeout_item() {
        let (mut svc, mut handle) = spawn(config(1000, 200));
        assert_ready_ok!(svc.poll_ready());
        let call = svc.call(ChatRequest::default());
        let (_, respond) = handle.next_request().await.unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let stream: ChatStream = Box::pin(tokio_stream_from(rx));
        respond.send_response(ChatReply::stream(ReplyMeta::default(), stream));
        let reply = call.await.unwrap();
        let ReplyBody::Stream(mut stream) = reply.body else {
            panic!("a stream")
        };
        // Chunks 150 ms apart keep it alive.
        for text in ["a", "b", "c"] {
            tokio::time::advance(Duration::from_millis(150)).await;
            tx.send(Ok(chunk(text))).unwrap();
            assert_eq!(stream.next().await.unwrap().unwrap(), chunk(text));
        }
        let started = Instant::now();
        let err = stream.next().await.unwrap().unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_millis(200));
        assert!(matches!(err, GatewayError::Timeout { .. }));
        assert!(stream.next().await.is_none());
    }

    fn tokio_stream_from(
        mut rx: tokio::sync::mpsc::UnboundedReceiver<Result<ChatChunk, GatewayError>>,
    ) -> impl futures_core::Stream<Item = Result<ChatChunk, GatewayError>> + Send {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
