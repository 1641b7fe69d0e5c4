//! The per-deployment circuit breaker: after `CIRCUIT_BREAKER_FAILURE_THRESHOLD` consecutive
//! deployment failures the deployment fails fast with [`GatewayError::CircuitOpen`], without a
//! network call, for `CIRCUIT_BREAKER_COOLDOWN_MS`; then `CIRCUIT_BREAKER_HALF_OPEN_PROBES`
//! requests probe it, and the first outcome closes it again or reopens it with a fresh
//! cool-down. It exists so a dead upstream costs one fast error instead of a timeout per
//! request, and so the router can skip it. The state lives in the deployment's shared
//! [`DeploymentHealth`], which also gets the upstream latency and a 429's `retry-after` (the
//! router then tries that deployment only after every other candidate, until it passes).
//!
//! The breaker reports ready whatever the circuit says and fails in `call` (as tower's
//! `LoadShed` does), so no caller is ever parked behind an open circuit.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use proxygate::breaker::{BreakerConfig, BreakerLayer};
//! use proxygate::providers::mock::Mock;
//!
//! let breaker = tower::ServiceBuilder::new()
//!     .layer(BreakerLayer::new(
//!         BreakerConfig::default()
//!             .with_threshold(5)
//!             .with_cooldown(Duration::from_secs(30)),
//!     ))
//!     .service(Mock::default());
//! assert_eq!(breaker.state().status(), "healthy");
//! ```

mod future;
mod layer;

use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::time::Instant;
use tower::Service;

pub use crate::health::{
    BreakerConfig, Circuit, CircuitPhase, CircuitSnapshot, Permit, SharedCircuit, Unavailable,
};
pub use future::ResponseFuture;
pub use layer::BreakerLayer;

use crate::GatewayError;
use crate::health::DeploymentHealth;
use crate::types::{ChatReply, ChatRequest};

/// Fails fast while the deployment's circuit is open; reports every outcome to it.
#[derive(Clone, Debug)]
pub struct Breaker<S> {
    inner: S,
    state: Arc<DeploymentHealth>,
    config: BreakerConfig,
}

// === impl Breaker ===

impl<S> Breaker<S> {
    /// Wraps `inner`, keeping the circuit in `state`.
    pub fn new(inner: S, state: Arc<DeploymentHealth>, config: BreakerConfig) -> Self {
        Self {
            inner,
            state,
            config,
        }
    }

    /// The shared deployment state holding the circuit.
    pub fn state(&self) -> &Arc<DeploymentHealth> {
        &self.state
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

impl<S> Service<ChatRequest> for Breaker<S>
where
    S: Service<ChatRequest, Response = ChatReply, Error = GatewayError>,
{
    type Response = ChatReply;
    type Error = GatewayError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Nothing is reserved here: an open circuit is an immediate error from `call`, so a
        // caller is never parked until the cool-down ends.
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        match Permit::acquire(&self.state, &self.config, Instant::now()) {
            Ok(permit) => ResponseFuture::called(
                self.inner.call(req),
                permit,
                self.state.clone(),
                self.config,
            ),
            Err(why) => ResponseFuture::rejected(GatewayError::CircuitOpen {
                deployment: self.state.id().clone(),
                retry_in: why.retry_in(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::test_util::{Handle, Upstream, pair, upstream};
    use tokio_test::{assert_pending, assert_ready_ok};
    use tower::Layer;
    use tower_test::mock;

    type Svc = mock::Spawn<Breaker<Upstream>>;

    fn spawn(config: BreakerConfig) -> (Svc, Handle) {
        let (svc, handle) = pair();
        let svc = BreakerLayer::new(config)
            .with_state(Arc::new(DeploymentHealth::new("groq/m")))
            .layer(svc);
        (mock::Spawn::new(svc), handle)
    }

    fn reply() -> ChatReply {
        crate::test_util::reply("groq/m")
    }

    async fn answer(
        svc: &mut Svc,
        handle: &mut Handle,
        outcome: Result<ChatReply, GatewayError>,
    ) -> Result<ChatReply, GatewayError> {
        assert_ready_ok!(svc.poll_ready());
        let call = svc.call(ChatRequest::default());
        let (_, respond) = handle
            .next_request()
            .await
            .expect("request reached upstream");
        match outcome {
            Ok(r) => respond.send_response(r),
            Err(e) => respond.send_error(e),
        }
        call.await
    }

    #[tokio::test(start_paused = true)]
    async fn open_circuit_fails_fast_without_calling_upstream() {
        let (mut svc, mut up) = spawn(BreakerConfig::default().with_threshold(2));
        for _ in 0..2 {
            let out = answer(&mut svc, &mut up, Err(upstream_err())).await;
            assert!(out.is_err());
        }
        assert_ready_ok!(svc.poll_ready());
        let err = svc.call(ChatRequest::default()).await.unwrap_err();
        assert!(
            matches!(&err, GatewayError::CircuitOpen { deployment, retry_in } if &**deployment == "groq/m" && *retry_in == Duration::from_secs(30)),
            "{err:?}"
        );
        assert_pending!(up.poll_request()); // nothing reached the upstream
    }

    fn upstream_err() -> GatewayError {
        upstream(503, None)
    }

    #[tokio::test(start_paused = true)]
    async fn client_errors_do_not_count_as_failures() {
        let (mut svc, mut up) = spawn(BreakerConfig::default().with_threshold(1));
        let out = answer(&mut svc, &mut up, Err(upstream(400, None))).await;
        assert_eq!(out.unwrap_err().status(), http::StatusCode::BAD_REQUEST);
        assert_eq!(svc.get_ref().state().status(), "healthy");
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_cooldown_one_probe_goes_and_success_closes() {
        let config = BreakerConfig::default()
            .with_threshold(1)
            .with_cooldown(Duration::from_millis(200));
        let (mut svc, mut up) = spawn(config);
        answer(&mut svc, &mut up, Err(upstream_err()))
            .await
            .unwrap_err();
        tokio::time::advance(Duration::from_millis(200)).await;

        assert_ready_ok!(svc.poll_ready());
        let probe = svc.call(ChatRequest::default());
        // A second request while the only probe is in flight fails fast.
        assert_ready_ok!(svc.poll_ready());
        let second = svc.call(ChatRequest::default()).await;
        assert!(matches!(second, Err(GatewayError::CircuitOpen { .. })));
        let (_, respond) = up.next_request().await.unwrap();
        assert_pending!(up.poll_request());
        assert_eq!(svc.get_ref().state().status(), "half_open");
        respond.send_response(reply());
        probe.await.unwrap();
        assert_eq!(svc.get_ref().state().status(), "healthy");
        answer(&mut svc, &mut up, Ok(reply())).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_probe_lets_the_next_request_probe() {
        let config = BreakerConfig::default()
            .with_threshold(1)
            .with_cooldown(Duration::from_millis(50));
        let (mut svc, mut up) = spawn(config);
        answer(&mut svc, &mut up, Err(upstream_err()))
            .await
            .unwrap_err();
        tokio::time::advance(Duration::from_millis(50)).await;
        assert_ready_ok!(svc.poll_ready());
        let probe = svc.call(ChatRequest::default());
        drop(probe); // the client went away before the upstream answered
        let _abandoned = up.next_request().await.unwrap();
        let out = answer(&mut svc, &mut up, Ok(reply())).await;
        assert!(out.is_ok());
        assert_eq!(svc.get_ref().state().status(), "healthy");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens() {
        let config = BreakerConfig::default()
            .with_threshold(1)
            .with_cooldown(Duration::from_millis(50));
        let (mut svc, mut up) = spawn(config);
        answer(&mut svc, &mut up, Err(upstream_err()))
            .await
            .unwrap_err();
        tokio::time::advance(Duration::from_millis(50)).await;
        let timeout = GatewayError::Timeout {
            provider: "groq",
            after: Duration::from_secs(1),
        };
        answer(&mut svc, &mut up, Err(timeout)).await.unwrap_err();
        assert_eq!(svc.get_ref().state().status(), "open");
        assert_ready_ok!(svc.poll_ready());
        let err = svc.call(ChatRequest::default()).await.unwrap_err();
        assert_eq!(err.retry_after(), Some(Duration::from_millis(50)));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_of_a_429_cools_the_deployment() {
        let (mut svc, mut up) = spawn(BreakerConfig::default());
        let err = answer(
            &mut svc,
            &mut up,
            Err(upstream(429, Some(Duration::from_secs(2)))),
        )
        .await
        .unwrap_err();
        assert_eq!(err.status(), http::StatusCode::TOO_MANY_REQUESTS);
        let now = Instant::now();
        assert_eq!(
            svc.get_ref().state().circuit().availability(now),
            Err(Unavailable::Cooling {
                retry_in: Duration::from_secs(2)
            })
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(
            svc.get_ref()
                .state()
                .circuit()
                .availability(Instant::now())
                .is_ok()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn latency_is_recorded_on_success() {
        let (mut svc, mut up) = spawn(BreakerConfig::default());
        assert_eq!(svc.get_ref().state().latency(Instant::now()), None);
        assert_ready_ok!(svc.poll_ready());
        let call = svc.call(ChatRequest::default());
        let (_, respond) = up.next_request().await.unwrap();
        tokio::time::advance(Duration::from_millis(120)).await;
        respond.send_response(reply());
        call.await.unwrap();
        let l = svc.get_ref().state().latency(Instant::now()).unwrap();
        assert!((l - 0.120).abs() < 1e-6, "{l}");
    }
}
