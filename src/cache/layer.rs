use std::sync::Arc;

use tower::Layer;

use super::{Cache, Store};
use crate::shared::StateBackend;

/// Applies [`Cache`] to a service.
#[derive(Clone, Debug)]
pub struct CacheLayer {
    store: Option<Store>,
}

impl CacheLayer {
    /// Caches answers in `backend`. No entry may be larger than a quarter of `max_bytes`
    /// (the in-process bound), so one answer never pushes out everything else.
    pub fn new(backend: Arc<dyn StateBackend>, max_bytes: u64) -> Self {
        let max_entry = usize::try_from(max_bytes / 4)
            .unwrap_or(usize::MAX)
            .max(1024);
        Self {
            store: Some(Store::new(backend, max_entry)),
        }
    }

    /// Lets callers share entries (`CACHE_SHARED=true`); by default a caller is only answered
    /// from entries its own requests stored.
    pub fn shared(mut self, shared: bool) -> Self {
        if let Some(store) = &mut self.store {
            store.shared = shared;
        }
        self
    }

    /// A layer that passes every request through (`CACHE_ENABLED=false`).
    pub fn disabled() -> Self {
        Self { store: None }
    }
}

impl<S> Layer<S> for CacheLayer {
    type Service = Cache<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Cache::new(inner, self.store.clone())
    }
}
