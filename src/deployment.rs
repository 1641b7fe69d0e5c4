//! A deployment: one (provider, upstream model, credential) triple with its own translation
//! stack and its own health ([`DeploymentHealth`]), shared by every request routed to it.

use std::sync::Arc;

use crate::catalog::{ModelSpec, ProviderSpec, Tier};
use crate::health::DeploymentHealth;
use crate::types::BoxChat;

/// The per-deployment stack under the name the provider adapters still use ([`BoxChat`]).
#[doc(hidden)]
pub type DeploymentService = BoxChat;

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
    service: BoxChat,
    state: Arc<DeploymentHealth>,
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
        service: BoxChat,
    ) -> Self {
        let id = id.into();
        let state = Arc::new(DeploymentHealth::new(id.clone()));
        Self::with_state(id, provider, model, service, state)
    }

    /// As [`Deployment::new`], with state the deployment's stack already shares (its breaker).
    pub fn with_state(
        id: impl Into<Arc<str>>,
        provider: &'static ProviderSpec,
        model: impl Into<String>,
        service: BoxChat,
        state: Arc<DeploymentHealth>,
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
    pub fn service(&self) -> BoxChat {
        self.inner.service.clone()
    }

    /// Shared health and latency state.
    pub fn state(&self) -> &Arc<DeploymentHealth> {
        &self.inner.state
    }
}
