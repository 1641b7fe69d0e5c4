use tower::Layer;

use super::{Failover, FailoverConfig};

/// Wraps the dispatch service in a [`Failover`].
#[derive(Clone, Copy, Debug, Default)]
pub struct FailoverLayer {
    config: FailoverConfig,
}

// === impl FailoverLayer ===

impl FailoverLayer {
    /// A layer with `config`.
    pub fn new(config: FailoverConfig) -> Self {
        Self { config }
    }
}

impl<S> Layer<S> for FailoverLayer {
    type Service = Failover<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Failover::new(inner, self.config)
    }
}
