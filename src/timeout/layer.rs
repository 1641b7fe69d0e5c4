use tower::Layer;

use super::{Timeout, TimeoutConfig};

/// Wraps a deployment's stack in a [`Timeout`].
#[derive(Clone, Copy, Debug, Default)]
pub struct TimeoutLayer {
    config: TimeoutConfig,
}

// === impl TimeoutLayer ===

impl TimeoutLayer {
    /// A layer with `config`.
    pub fn new(config: TimeoutConfig) -> Self {
        Self { config }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout::new(inner, self.config)
    }
}
