//! Failover: sends the request to the deployments of the router's plan one after the other,
//! moving on only after an error another deployment may not share
//! ([`GatewayError::is_retryable`]: connect errors, timeouts, 408, 429, 5xx, a provider's
//! 401/403), never after the client's own 4xx. It stays within the tier of the first choice
//! unless `FAILOVER_CROSS_TIER=true`, tries each deployment at most once, makes at most
//! `1 + MAX_RETRIES` attempts (one when `FAILOVER_ENABLED=false`) and starts none after the
//! overall deadline (`OVERALL_TIMEOUT_MS`, put in `ctx.deadline` for the per-attempt timeouts
//! below). A stream is committed once its first chunk arrived, so failover happens only before
//! the first byte reaches the client.
//!
//! When every attempt failed the error is [`GatewayError::AllAttemptsFailed`] naming what was
//! tried, with the status of the last failure (502 for upstream errors, 504 for a timeout, 429
//! with the upstream's `retry-after`); a single attempt's error is returned as it is.
//!
//! # Example
//!
//! ```
//! use proxygate::failover::{FailoverConfig, FailoverLayer};
//! use proxygate::router::Dispatch;
//!
//! let chat = tower::ServiceBuilder::new()
//!     .layer(FailoverLayer::new(FailoverConfig::default().with_max_retries(2)))
//!     .service(Dispatch);
//! # let _ = chat;
//! ```

mod future;
mod layer;

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower::Service;

pub use future::ResponseFuture;
pub use layer::FailoverLayer;

use crate::GatewayError;
use crate::deployment::{Deployment, Routed};
use crate::types::{ChatReply, ChatRequest};

/// Failover settings (defaults: enabled, 3 retries, same tier, 180 s overall).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailoverConfig {
    /// `FAILOVER_ENABLED`.
    pub enabled: bool,
    /// `MAX_RETRIES`: attempts after the first.
    pub max_retries: u32,
    /// `FAILOVER_CROSS_TIER`.
    pub cross_tier: bool,
    /// `OVERALL_TIMEOUT_MS`, across attempts.
    pub overall_timeout: Duration,
}

impl Default for FailoverConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_retries: 3,
            cross_tier: false,
            overall_timeout: Duration::from_secs(180),
        }
    }
}

// === impl FailoverConfig ===

impl FailoverConfig {
    /// Turns failover on or off.
    pub fn with_enabled(mut self, on: bool) -> Self {
        self.enabled = on;
        self
    }

    /// Attempts after the first.
    pub fn with_max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Lets failover leave the first choice's tier.
    pub fn with_cross_tier(mut self, on: bool) -> Self {
        self.cross_tier = on;
        self
    }

    /// The overall deadline across attempts.
    pub fn with_overall_timeout(mut self, d: Duration) -> Self {
        self.overall_timeout = d;
        self
    }

    /// Attempts allowed per request.
    pub fn max_attempts(&self) -> u32 {
        if self.enabled {
            self.max_retries.saturating_add(1)
        } else {
            1
        }
    }
}

/// Tries the plan's deployments in order until one answers.
#[derive(Clone, Debug)]
pub struct Failover<S> {
    inner: S,
    config: FailoverConfig,
}

// === impl Failover ===

impl<S> Failover<S> {
    /// Wraps `inner` (the dispatch service, which sends to `ctx.target`).
    pub fn new(inner: S, config: FailoverConfig) -> Self {
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

impl<S> Service<ChatRequest> for Failover<S>
where
    S: Service<ChatRequest, Response = ChatReply, Error = GatewayError> + Clone,
{
    type Response = ChatReply;
    type Error = GatewayError;
    type Future = ResponseFuture<S, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: ChatRequest) -> Self::Future {
        // Take the instance poll_ready prepared, leave a fresh clone behind; the future polls
        // it ready again before every further attempt.
        let fresh = self.inner.clone();
        let service = std::mem::replace(&mut self.inner, fresh);
        let plan: Arc<[Deployment]> = match (req.ctx.plan(), req.ctx.target()) {
            (Some(plan), _) => plan.clone(),
            (None, Some(target)) => Arc::from(vec![target.clone()]),
            (None, None) => Arc::from(Vec::new()),
        };
        if req.ctx.deadline.is_none() {
            req.ctx.deadline = Some(Instant::now() + self.config.overall_timeout);
        }
        ResponseFuture::new(service, req, plan, self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::PROVIDERS;
    use crate::providers::mock::Mock;
    use crate::test_util::{Handle, Upstream, pair};
    use crate::types::BoxChat;
    use tokio_test::{assert_pending, assert_ready_ok};
    use tower::Layer;
    use tower_test::mock;

    fn dep(provider: &str, model: &str) -> Deployment {
        let spec = PROVIDERS
            .iter()
            .copied()
            .find(|p| p.name == provider)
            .unwrap();
        Deployment::new(
            format!("{provider}/{model}"),
            spec,
            model,
            BoxChat::new(Mock::default()),
        )
    }

    fn request(plan: Vec<Deployment>) -> ChatRequest {
        let mut req = ChatRequest {
            model: "m".into(),
            ..Default::default()
        };
        req.ctx.set_target(plan.first().cloned());
        req.ctx.attempt = 1;
        req.ctx.set_plan(plan.into());
        req
    }

    fn spawn(config: FailoverConfig) -> (mock::Spawn<Failover<Upstream>>, Handle) {
        let (svc, handle) = pair();
        (
            mock::Spawn::new(FailoverLayer::new(config).layer(svc)),
            handle,
        )
    }

    fn upstream(status: u16) -> GatewayError {
        crate::test_util::upstream(status, None)
    }

    fn ok(id: &str) -> ChatReply {
        crate::test_util::reply(id)
    }

    /// Answers the next request with `outcome`, returning the deployment and attempt it went to.
    async fn answer(handle: &mut Handle, outcome: Result<&str, GatewayError>) -> (String, u32) {
        let (req, respond) = handle.next_request().await.expect("an attempt");
        let target = req.ctx.target().expect("a target").id().to_string();
        match outcome {
            Ok(id) => respond.send_response(ok(id)),
            Err(e) => respond.send_error(e),
        }
        (target, req.ctx.attempt)
    }

    fn three() -> Vec<Deployment> {
        vec![dep("groq", "a"), dep("together", "b"), dep("cerebras", "c")]
    }

    #[tokio::test(start_paused = true)]
    async fn a_retryable_failure_moves_to_the_next_deployment() {
        let (mut svc, mut handle) = spawn(FailoverConfig::default());
        assert_ready_ok!(svc.poll_ready());
        let call = tokio::spawn(svc.call(request(three())));
        assert_eq!(
            answer(&mut handle, Err(upstream(500))).await,
            ("groq/a".into(), 1)
        );
        assert_eq!(
            answer(&mut handle, Ok("together/b")).await,
            ("together/b".into(), 2)
        );
        let reply = call.await.unwrap().unwrap();
        assert_eq!(reply.meta.attempts, 2);
        assert_eq!(&*reply.meta.deployment, "together/b");
    }

    #[tokio::test(start_paused = true)]
    async fn the_clients_own_mistake_is_returned_as_is() {
        let (mut svc, mut handle) = spawn(FailoverConfig::default());
        assert_ready_ok!(svc.poll_ready());
        let call = tokio::spawn(svc.call(request(three())));
        answer(&mut handle, Err(upstream(400))).await;
        let err = call.await.unwrap().unwrap_err();
        assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
        assert!(err.to_string().contains("status 400"));
        assert_pending!(handle.poll_request());
    }

    #[tokio::test(start_paused = true)]
    async fn all_failed_names_every_deployment_tried() {
        let (mut svc, mut handle) = spawn(FailoverConfig::default());
        assert_ready_ok!(svc.poll_ready());
        let call = tokio::spawn(svc.call(request(three())));
        for _ in 0..3 {
            answer(&mut handle, Err(upstream(503))).await;
        }
        let err = call.await.unwrap().unwrap_err();
        assert_eq!(err.status(), http::StatusCode::BAD_GATEWAY);
        let text = err.to_string();
        for id in ["groq/a", "together/b", "cerebras/c"] {
            assert!(text.contains(id), "{text}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn max_retries_bounds_the_attempts() {
        let (mut svc, mut handle) = spawn(FailoverConfig::default().with_max_retries(1));
        assert_ready_ok!(svc.poll_ready());
        let call = tokio::spawn(svc.call(request(three())));
        answer(&mut handle, Err(upstream(500))).await;
        answer(&mut handle, Err(upstream(429))).await;
        let err = call.await.unwrap().unwrap_err();
        assert!(matches!(&err, GatewayError::AllAttemptsFailed { tried, .. } if tried.len() == 2));
        assert_eq!(err.status(), http::StatusCode::TOO_MANY_REQUESTS);
        assert_pending!(handle.poll_request());
    }

    #[tokio::test(start_paused = true)]
    async fn disabled_or_zero_retries_make_exactly_one_attempt() {
        for config in [
            FailoverConfig::default().with_enabled(false),
            FailoverConfig::default().with_max_retries(0),
        ] {
            let (mut svc, mut handle) = spawn(config);
            assert_ready_ok!(svc.poll_ready());
            let call = tokio::spawn(svc.call(request(three())));
            answer(&mut handle, Err(upstream(500))).await;
            // A single attempt's error is returned as it is.
            assert!(matches!(
                call.await.unwrap(),
                Err(GatewayError::Upstream { .. })
            ));
            assert_pending!(handle.poll_request());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failover_stays_in_the_first_choices_tier() {
        let plan = vec![dep("groq", "a"), dep("openai", "b"), dep("cerebras", "c")];
        let (mut svc, mut handle) = spawn(FailoverConfig::default());
        assert_ready_ok!(svc.poll_ready());
        let call = tokio::spawn(svc.call(request(plan.clone())));
        answer(&mut handle, Err(upstream(500))).await;
        // openai is paid-key: skipped after a free-key first choice.
        assert_eq!(
            answer(&mut handle, Err(upstream(500))).await.0,
            "cerebras/c"
        );
        assert!(call.await.unwrap().is_err());

        let (mut svc, mut handle) = spawn(FailoverConfig::default().with_cross_tier(true));
        assert_ready_ok!(svc.poll_ready());
        let call = tokio::spawn(svc.call(request(plan)));
        answer(&mut handle, Err(upstream(500))).await;
        assert_eq!(answer(&mut handle, Ok("openai/b")).await.0, "openai/b");
        assert_eq!(call.await.unwrap().unwrap().meta.attempts, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn each_deployment_is_tried_at_most_once() {
        let plan = vec![dep("groq", "a"), dep("groq", "a"), dep("together", "b")];
        let (mut svc, mut handle) = spawn(FailoverConfig::default());
        assert_ready_ok!(svc.poll_ready());
        let call = tokio::spawn(svc.call(request(plan)));
        answer(&mut handle, Err(upstream(500))).await;
        assert_eq!(
            answer(&mut handle, Err(upstream(500))).await.0,
            "together/b"
        );
        let err = call.await.unwrap().unwrap_err();
        assert!(
            matches!(err, GatewayError::AllAttemptsFailed { tried, .. } if tried == ["groq/a", "together/b"])
        );
    }

    #[tokio::test(start_paused = true)]
    async fn no_attempt_starts_after_the_overall_deadline() {
        let config = FailoverConfig::default().with_overall_timeout(Duration::from_millis(500));
        let (mut svc, mut handle) = spawn(config);
        assert_ready_ok!(svc.poll_ready());
        let call = tokio::spawn(svc.call(request(three())));
        let (req, respond) = handle.next_request().await.unwrap();
        let deadline = req
            .ctx
            .deadline
            .expect("the deadline travels with the request");
        tokio::time::sleep_until(deadline).await;
        respond.send_error(GatewayError::Timeout {
            provider: "groq",
            after: Duration::from_millis(500),
        });
        let err = call.await.unwrap().unwrap_err();
        assert_eq!(err.status(), http::StatusCode::GATEWAY_TIMEOUT);
        assert_pending!(handle.poll_request());
    }

    #[tokio::test(start_paused = true)]
    async fn a_circuit_opened_since_routing_is_skipped_without_counting() {
        let (mut svc, mut handle) = spawn(FailoverConfig::default().with_max_retries(1));
        assert_ready_ok!(svc.poll_ready());
        let call = tokio::spawn(svc.call(request(three())));
        let open = GatewayError::CircuitOpen {
            deployment: "groq/a".into(),
            retry_in: Duration::from_secs(3),
        };
        answer(&mut handle, Err(open)).await;
        assert_eq!(
            answer(&mut handle, Ok("together/b")).await,
            ("together/b".into(), 1)
        );
        assert_eq!(call.await.unwrap().unwrap().meta.attempts, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn all_open_is_no_healthy_deployment() {
        let (mut svc, mut handle) = spawn(FailoverConfig::default());
        assert_ready_ok!(svc.poll_ready());
        let plan = vec![dep("groq", "a")];
        let call = tokio::spawn(svc.call(request(plan)));
        let open = GatewayError::CircuitOpen {
            deployment: "groq/a".into(),
            retry_in: Duration::from_secs(3),
        };
        answer(&mut handle, Err(open)).await;
        let err = call.await.unwrap().unwrap_err();
        assert_eq!(err.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
        // The lone attempt took the request itself; the error still names the model.
        assert!(
            matches!(&err, GatewayError::NoHealthyDeployment { model, .. } if model == "m"),
            "{err:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn every_attempt_gets_the_whole_request() {
        let (mut svc, mut handle) = spawn(FailoverConfig::default());
        assert_ready_ok!(svc.poll_ready());
        let mut req = request(vec![dep("groq", "a"), dep("together", "b")]);
        req.messages
            .push(crate::types::Message::text(crate::types::Role::User, "hi"));
        req.extra.insert("seed".into(), 7.into());
        let call = tokio::spawn(svc.call(req));
        for (n, outcome) in [Err(upstream(500)), Ok(ok("together/b"))]
            .into_iter()
            .enumerate()
        {
            let (req, respond) = handle.next_request().await.expect("an attempt");
            assert_eq!(req.model, "m");
            assert_eq!(req.messages.len(), 1, "attempt {}", n + 1);
            assert_eq!(req.extra["seed"], 7);
            assert_eq!(req.ctx.attempt, n as u32 + 1);
            match outcome {
                Ok(reply) => respond.send_response(reply),
                Err(e) => respond.send_error(e),
            }
        }
        assert_eq!(call.await.unwrap().unwrap().meta.attempts, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn failovers_are_counted() {
        let recorder = crate::telemetry::build_recorder();
        let handle = recorder.handle();
        let _guard = metrics::set_default_local_recorder(&recorder);
        let (mut svc, mut up) = spawn(FailoverConfig::default());
        assert_ready_ok!(svc.poll_ready());
        let call = tokio::spawn(svc.call(request(three())));
        answer(&mut up, Err(upstream(502))).await;
        answer(&mut up, Err(upstream(503))).await;
        answer(&mut up, Ok("cerebras/c")).await;
        assert_eq!(call.await.unwrap().unwrap().meta.attempts, 3);
        assert!(
            handle.render().contains("proxygate_failovers_total 2"),
            "{}",
            handle.render()
        );
    }
}
