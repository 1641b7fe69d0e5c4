use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use tower::Layer;

use super::{Registry, Router, RouterConfig, Routing};

/// Builds [`Router`]s over one registry; every router it builds shares the round-robin turn.
#[derive(Clone, Debug)]
pub struct RouterLayer {
    routing: Arc<Routing>,
}

// === impl RouterLayer ===

impl RouterLayer {
    /// A layer routing through `registry` by `config`.
    pub fn new(registry: Arc<Registry>, config: RouterConfig) -> Self {
        Self {
            routing: Arc::new(Routing {
                registry,
                config,
                turn: AtomicUsize::new(0),
            }),
        }
    }
}

impl<S> Layer<S> for RouterLayer {
    type Service = Router<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Router {
            inner,
            routing: self.routing.clone(),
        }
    }
}
