//! A deployment: one (provider, upstream model, credential) triple with its own translation
//! stack and its own health, shared by every request routed to it.
//!
//! [`DeploymentState`] is what outlives single requests: the circuit breaker's state machine
//! ([`Circuit`]) and the decayed latency the `latency` routing strategy reads ([`Ewma`]). The
//! breaker layer writes both; the router and the admin/health endpoints read them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use tower::util::BoxCloneSyncService;

use crate::GatewayError;
use crate::breaker::{Circuit, CircuitState};
use crate::catalog::{ModelSpec, ProviderSpec, Tier};
use crate::router::Ewma;
use crate::types::{ChatReply, ChatRequest};

/// The type-erased per-deployment stack (breaker over translation over the client).
pub type DeploymentService = BoxCloneSyncService<ChatRequest, ChatReply, GatewayError>;

/// One routable target. Cheap to clone.
#[derive(Clone)]
pub struct Deployment {
    inner: Arc<Inner>,
}

struct Inner {
    id: Arc<str>,
    provider: &'static ProviderSpec,
    model: String,
    spec: Option<&'static ModelSpec>,
    service: DeploymentService,
    state: Arc<DeploymentState>,
}

/// Shared per-deployment state that routing and health layers read and update.
#[derive(Debug)]
pub struct DeploymentState {
    id: Arc<str>,
    circuit: Circuit,
    latency: Mutex<Ewma>,
    // The latest estimate another replica shared (see `crate::state`).
    shared_latency: Mutex<Option<Ewma>>,
}

// === impl DeploymentState ===

impl DeploymentState {
    /// Fresh state (circuit closed, latency unknown) for the deployment `id`.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        let id = id.into();
        Self {
            circuit: Circuit::new(id.clone()),
            latency: Mutex::new(Ewma::default()),
            shared_latency: Mutex::new(None),
            id,
        }
    }

    /// The deployment id.
    pub fn id(&self) -> &Arc<str> {
        &self.id
    }

    /// The circuit breaker's state machine.
    pub fn circuit(&self) -> &Circuit {
        &self.circuit
    }

    /// `healthy`, `open` or `half_open`, as `/v1/models` and `/health` show it.
    pub fn status(&self) -> &'static str {
        match self.circuit.state() {
            CircuitState::Closed => "healthy",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }

    /// Folds one upstream latency (to the answer or first chunk) into the decayed average.
    pub fn record_latency(&self, rtt: Duration, now: Instant) {
        self.latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(rtt, now);
    }

    /// The decayed latency in seconds, `None` before the first observation: this replica's
    /// own, or another replica's when that one is more recent.
    pub fn latency(&self, now: Instant) -> Option<f64> {
        let local = *self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let shared = *self
            .shared_latency
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match (
            local.sample(),
            shared.and_then(|s| s.sample().map(|x| (s, x))),
        ) {
            (Some((_, mine)), Some((theirs, (_, at)))) if at > mine => theirs.estimate(now),
            (None, Some((theirs, _))) => theirs.estimate(now),
            _ => local.estimate(now),
        }
    }

    /// This replica's own undecayed estimate (seconds) and when it was last updated.
    pub fn latency_sample(&self) -> Option<(f64, Instant)> {
        self.latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sample()
    }

    /// Takes in another replica's estimate (seconds) as of `at`.
    pub fn set_shared_latency(&self, estimate: f64, at: Instant) {
        *self
            .shared_latency
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Ewma::seeded(
            estimate,
            at,
            crate::router::ewma::DEFAULT_DECAY,
        ));
    }
}

impl std::fmt::Debug for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployment")
            .field("id", &self.inner.id)
            .finish()
    }
}

impl PartialEq for Deployment {
    fn eq(&self, other: &Self) -> bool {
        self.inner.id == other.inner.id
    }
}

// === impl Deployment ===

impl Deployment {
    /// A deployment with id `id` sending `model` to `provider` through `service`.
    pub fn new(
        id: impl Into<Arc<str>>,
        provider: &'static ProviderSpec,
        model: impl Into<String>,
        service: DeploymentService,
    ) -> Self {
        let id = id.into();
        let state = Arc::new(DeploymentState::new(id.clone()));
        Self::with_state(id, provider, model, service, state)
    }

    /// As [`Deployment::new`], with state the deployment's stack already shares (its breaker).
    pub fn with_state(
        id: impl Into<Arc<str>>,
        provider: &'static ProviderSpec,
        model: impl Into<String>,
        service: DeploymentService,
        state: Arc<DeploymentState>,
    ) -> Self {
        let model = model.into();
        let spec = provider.model(&model);
        Self {
            inner: Arc::new(Inner {
                id: id.into(),
                provider,
                model,
                spec,
                service,
                state,
            }),
        }
    }

    /// `provider/model` (with `#n` after the provider for the n-th extra key).
    pub fn id(&self) -> &Arc<str> {
        &self.inner.id
    }

    /// The provider's catalog line.
    pub fn provider(&self) -> &'static ProviderSpec {
        self.inner.provider
    }

    /// The upstream model id.
    pub fn model(&self) -> &str {
        &self.inner.model
    }

    /// The catalog entry of the model, when it is in the catalog.
    pub fn spec(&self) -> Option<&'static ModelSpec> {
        self.inner.spec
    }

    /// The provider's tier.
    pub fn tier(&self) -> Tier {
        self.inner.provider.tier
    }

    /// A clone of the deployment's stack, ready to be driven.
    pub fn service(&self) -> DeploymentService {
        self.inner.service.clone()
    }

    /// Shared health and latency state.
    pub fn state(&self) -> &Arc<DeploymentState> {
        &self.inner.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_fresher_of_own_and_shared_latency_is_used() {
        let s = DeploymentState::new("groq/m");
        assert_eq!(s.latency(Instant::now()), None);
        // Another replica measured it: a deployment never called here is no longer unknown.
        s.set_shared_latency(0.5, Instant::now());
        assert!((s.latency(Instant::now()).unwrap() - 0.5).abs() < 1e-9);
        tokio::time::advance(Duration::from_millis(10)).await;
        s.record_latency(Duration::from_millis(100), Instant::now());
        assert!((s.latency(Instant::now()).unwrap() - 0.1).abs() < 1e-9);
        assert!(s.latency_sample().is_some());
        tokio::time::advance(Duration::from_millis(10)).await;
        s.set_shared_latency(0.3, Instant::now());
        assert!((s.latency(Instant::now()).unwrap() - 0.3).abs() < 1e-9);
    }
}
