//! A deployment: one (provider, upstream model, credential) triple with its own translation
//! stack and its own health ([`DeploymentHealth`]), shared by every request routed to it.

use std::sync::Arc;

use crate::catalog::{ModelSpec, ProviderSpec, Tier};
use crate::health::DeploymentHealth;
use crate::types::{BoxChat, Carried, ParamRules, RequestContext, Target};

/// One routable target. Cheap to clone.
#[derive(Clone)]
pub struct Deployment {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    id: Arc<str>,
    provider: &'static ProviderSpec,
    model: String,
    spec: Option<&'static ModelSpec>,
    service: BoxChat,
    state: Arc<DeploymentHealth>,
    rules: Option<Arc<ParamRules>>,
    ceiling: Ceiling,
}

/// A deployment's own per-minute ceilings (`rpm`/`tpm` of a configured deployment).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ceiling {
    /// Requests per minute at most.
    pub rpm: Option<u64>,
    /// Tokens per minute at most.
    pub tpm: Option<u64>,
}

impl Ceiling {
    /// Whether there is no ceiling.
    pub fn is_none(&self) -> bool {
        self.rpm.is_none() && self.tpm.is_none()
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
                rules: None,
                ceiling: Ceiling::default(),
            }),
        }
    }

    /// The same deployment with parameter rules (applied before translation) and ceilings.
    pub fn with_limits(mut self, rules: Option<Arc<ParamRules>>, ceiling: Ceiling) -> Self {
        let inner = Arc::make_mut(&mut self.inner);
        inner.rules = rules;
        inner.ceiling = ceiling;
        self
    }

    /// The parameter rules of this deployment's model, if any.
    pub fn rules(&self) -> Option<&Arc<ParamRules>> {
        self.inner.rules.as_ref()
    }

    /// Its per-minute ceilings.
    pub fn ceiling(&self) -> Ceiling {
        self.inner.ceiling
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

impl Target for Deployment {
    fn id(&self) -> &Arc<str> {
        &self.inner.id
    }

    fn provider_name(&self) -> &'static str {
        self.inner.provider.name
    }

    fn model(&self) -> &str {
        &self.inner.model
    }
}

/// The routing plan and the target of a request, typed: the request context carries the plan
/// as a [`Carried`] value and the target as a [`Target`]; this reads and writes both as
/// deployments.
pub trait Routed {
    /// The deployments of the plan, in the order the routing strategy chose.
    fn plan(&self) -> Option<&Arc<[Deployment]>>;
    /// The deployment this attempt goes to.
    fn target(&self) -> Option<&Deployment>;
    /// Sets the plan.
    fn set_plan(&mut self, plan: Arc<[Deployment]>);
    /// Sets (or clears) the target.
    fn set_target(&mut self, target: Option<Deployment>);
}

impl Routed for RequestContext {
    fn plan(&self) -> Option<&Arc<[Deployment]>> {
        self.plan.as_ref()?.get()
    }

    fn target(&self) -> Option<&Deployment> {
        let target: &dyn std::any::Any = self.target.as_deref()?;
        target.downcast_ref()
    }

    fn set_plan(&mut self, plan: Arc<[Deployment]>) {
        self.plan = Some(Carried::new(plan));
    }

    fn set_target(&mut self, target: Option<Deployment>) {
        self.target = target.map(|d| Arc::new(d) as Arc<dyn Target>);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::models::mock::MOCK;
    use crate::providers::mock::Mock;

    fn dep(model: &str) -> Deployment {
        Deployment::new(
            format!("mock/{model}"),
            &MOCK,
            model,
            BoxChat::new(Mock::default()),
        )
    }

    #[test]
    fn the_context_gives_back_the_plan_and_target_it_was_given() {
        let mut ctx = RequestContext::default();
        assert!(ctx.plan().is_none() && ctx.target().is_none());
        let plan: Arc<[Deployment]> = vec![dep("echo"), dep("lorem")].into();
        ctx.set_target(plan.first().cloned());
        ctx.set_plan(plan.clone());
        assert_eq!(ctx.target().map(|d| d.id().as_ref()), Some("mock/echo"));
        assert_eq!(ctx.plan().map(|p| p.len()), Some(2));
        assert!(format!("{ctx:?}").contains("mock/echo"));
        ctx.set_target(None);
        assert!(ctx.target().is_none());
    }

    #[test]
    fn a_foreign_value_is_no_plan() {
        let ctx = RequestContext {
            plan: Some(Carried::new("not a plan")),
            ..RequestContext::default()
        };
        assert!(ctx.plan().is_none());
    }
}
