use std::sync::Arc;

use tower::Layer;

use super::{Breaker, BreakerConfig};
use crate::health::DeploymentHealth;

/// Wraps a deployment's stack in a [`Breaker`].
///
/// Each service it builds gets a fresh [`DeploymentHealth`], unless one is given with
/// [`BreakerLayer::with_state`] so the router and the admin API see the same circuit.
#[derive(Clone, Debug, Default)]
pub struct BreakerLayer {
    config: BreakerConfig,
    state: Option<Arc<DeploymentHealth>>,
}

// === impl BreakerLayer ===

impl BreakerLayer {
    /// A layer with `config`.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: None,
        }
    }

    /// Shares `state` (the deployment's own) instead of creating one per service.
    pub fn with_state(mut self, state: Arc<DeploymentHealth>) -> Self {
        self.state = Some(state);
        self
    }
}

impl<S> Layer<S> for BreakerLayer {
    type Service = Breaker<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let state = self
            .state
            .clone()
            .unwrap_or_else(|| Arc::new(DeploymentHealth::new("deployment")));
        Breaker::new(inner, state, self.config)
    }
}
