//! The registry: configured providers, and the deployments created from them, each kept for
//! the life of the process so its health and latency outlive single requests.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::GatewayError;
use crate::catalog::{Catalog, Mode, ProviderSpec, Tier};
use crate::client::HttpClient;
use crate::deployment::Deployment;
use crate::error::BuildError;
use crate::health::DeploymentHealth;
use crate::providers::ProviderEndpoint;
use crate::providers::ProviderSettings;
use crate::types::BoxChat;

/// Deployments made for ad-hoc `provider/model` names beyond this are not kept.
const MAX_KEPT_DEPLOYMENTS: usize = 4096;

/// The deployment id (and so the `model` metric label, the usage and dashboard bucket, the
/// shared-state field) of pass-through models beyond `MAX_PASSTHROUGH_MODELS`.
const OTHER_MODELS: &str = "other";

/// Wraps each deployment's translation service (with its circuit breaker and timeouts).
pub type StackFn = Arc<dyn Fn(StackInfo<'_>, BoxChat) -> BoxChat + Send + Sync>;

/// What a [`StackFn`] knows about the deployment it wraps.
#[derive(Clone, Copy, Debug)]
pub struct StackInfo<'a> {
    /// The deployment id.
    pub id: &'a Arc<str>,
    /// The provider's catalog line.
    pub provider: &'static ProviderSpec,
    /// The deployment's shared state, which the router and the admin API read too.
    pub state: &'a Arc<DeploymentHealth>,
}

/// Pass-through model ids a registry tracks by name unless told otherwise.
pub const DEFAULT_MAX_PASSTHROUGH: usize = 256;

/// Configured providers and their deployments.
pub struct Registry {
    catalog: Catalog,
    endpoints: HashMap<&'static str, Vec<ProviderEndpoint>>,
    deployments: RwLock<HashMap<Arc<str>, Deployment>>,
    stack: Option<StackFn>,
    /// Pass-through model ids (outside the catalog) tracked by name at most.
    max_passthrough: usize,
    /// Pass-through deployments tracked by name so far.
    passthrough: std::sync::atomic::AtomicUsize,
    /// The one health state per provider of every pass-through model beyond the bound.
    others: RwLock<HashMap<&'static str, Arc<DeploymentHealth>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("configured", &self.endpoints.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// One row of the model list.
#[derive(Clone, Debug)]
pub struct ModelRow {
    /// `provider/model`.
    pub id: String,
    /// Provider name.
    pub provider: &'static str,
    /// Tier.
    pub tier: Tier,
    /// Chat or embedding.
    pub mode: Mode,
    /// Context window.
    pub context: u32,
    /// USD per 1M input / output tokens.
    pub price: (f64, f64),
    /// The deployment, when the provider is configured.
    pub deployment: Option<Deployment>,
}

thread_local! {
    /// A reused buffer for deployment ids being looked up.
    static ID_BUF: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

impl Registry {
    /// Builds the endpoints of every provider `providers` configures. Fails with a message
    /// naming the provider.
    pub fn new(
        providers: &HashMap<&'static str, ProviderSettings>,
        catalog: Catalog,
        client: &HttpClient,
    ) -> Result<Self, BuildError> {
        Self::with_stack(providers, catalog, client, None)
    }

    /// Tracks at most `n` distinct pass-through model ids by name (default
    /// [`DEFAULT_MAX_PASSTHROUGH`]); beyond them a model is served as the deployment `other`.
    pub fn with_max_passthrough(mut self, n: usize) -> Self {
        self.max_passthrough = n;
        self
    }

    /// As [`Registry::new`], wrapping each deployment's service with `stack`.
    pub fn with_stack(
        providers: &HashMap<&'static str, ProviderSettings>,
        catalog: Catalog,
        client: &HttpClient,
        stack: Option<StackFn>,
    ) -> Result<Self, BuildError> {
        let mut endpoints = HashMap::new();
        for spec in catalog.providers() {
            let Some(settings) = providers.get(spec.name) else {
                continue;
            };
            let eps = crate::providers::build(spec, settings, client).map_err(|message| {
                BuildError::Provider {
                    provider: spec.name,
                    message,
                }
            })?;
            endpoints.insert(spec.name, eps);
        }
        let reg = Self {
            catalog,
            endpoints,
            deployments: RwLock::new(HashMap::new()),
            stack,
            max_passthrough: DEFAULT_MAX_PASSTHROUGH,
            passthrough: std::sync::atomic::AtomicUsize::new(0),
            others: RwLock::new(HashMap::new()),
        };
        // Create the catalog deployments up front so their state is listed from the start.
        for spec in catalog.providers() {
            if reg.endpoints.contains_key(spec.name) {
                for m in spec.models {
                    let _ = reg.deployments_of(spec, m.id);
                }
            }
        }
        Ok(reg)
    }

    /// The catalog.
    pub fn catalog(&self) -> Catalog {
        self.catalog
    }

    /// Whether `provider` has credentials.
    pub fn is_configured(&self, provider: &str) -> bool {
        self.endpoints.contains_key(provider)
    }

    /// Every deployment created so far, sorted by id.
    pub fn deployments(&self) -> Vec<Deployment> {
        let map = self.deployments.read().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<Deployment> = map.values().cloned().collect();
        v.sort_by(|a, b| a.id().cmp(b.id()));
        v
    }

    /// A deployment by id.
    pub fn deployment(&self, id: &str) -> Option<Deployment> {
        self.deployments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// The deployments (one per key) of `provider` serving `model`.
    fn deployments_of(&self, spec: &'static ProviderSpec, model: &str) -> Vec<Deployment> {
        let Some(eps) = self.endpoints.get(spec.name) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(eps.len());
        for (i, ep) in eps.iter().enumerate() {
            // The id is looked up in a reused buffer: most requests find their deployment.
            let known = ID_BUF.with_borrow_mut(|buf| {
                use std::fmt::Write;
                buf.clear();
                let _ = if i == 0 {
                    write!(buf, "{}/{model}", spec.name)
                } else {
                    write!(buf, "{}#{}/{model}", spec.name, i + 1)
                };
                self.deployments
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(buf.as_str())
                    .cloned()
            });
            if let Some(d) = known {
                out.push(d);
                continue;
            }
            let passthrough = spec.model(model).is_none()
                && !eps
                    .iter()
                    .any(|e| e.extra_models.iter().any(|m| m == model));
            if passthrough && !self.reserve_passthrough() {
                // Served, but under one name: client-chosen ids must not grow labels, the
                // registry, the dashboard or shared state without bound.
                let state = self.other_state(spec.name);
                let service = self.wrap(OTHER_MODELS.into(), spec, &state, ep);
                out.push(Deployment::with_state(
                    OTHER_MODELS,
                    spec,
                    model,
                    service,
                    state,
                ));
                continue;
            }
            let id: Arc<str> = if i == 0 {
                format!("{}/{model}", spec.name).into()
            } else {
                format!("{}#{}/{model}", spec.name, i + 1).into()
            };
            let state = Arc::new(DeploymentHealth::new(id.clone()));
            let service = self.wrap(id.clone(), spec, &state, ep);
            let d = Deployment::with_state(id.clone(), spec, model, service, state);
            let mut map = self.deployments.write().unwrap_or_else(|e| e.into_inner());
            let d = match map.get(&id) {
                Some(existing) => {
                    if passthrough {
                        self.release_passthrough();
                    }
                    existing.clone()
                }
                None if map.len() < MAX_KEPT_DEPLOYMENTS => {
                    map.insert(id, d.clone());
                    d
                }
                None => d,
            };
            out.push(d);
        }
        out
    }

    /// One pass-through slot, if any is left.
    fn reserve_passthrough(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.passthrough
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_passthrough).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives back a slot reserved for an id another request created first.
    fn release_passthrough(&self) {
        self.passthrough
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// The health shared by `provider`'s pass-through models beyond the bound.
    fn other_state(&self, provider: &'static str) -> Arc<DeploymentHealth> {
        if let Some(s) = self
            .others
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(provider)
        {
            return s.clone();
        }
        self.others
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(provider)
            .or_insert_with(|| Arc::new(DeploymentHealth::new(OTHER_MODELS)))
            .clone()
    }

    /// `ep`'s service inside the per-deployment stack.
    fn wrap(
        &self,
        id: Arc<str>,
        spec: &'static ProviderSpec,
        state: &Arc<DeploymentHealth>,
        ep: &ProviderEndpoint,
    ) -> BoxChat {
        match &self.stack {
            Some(stack) => stack(
                StackInfo {
                    id: &id,
                    provider: spec,
                    state,
                },
                ep.service.clone(),
            ),
            None => ep.service.clone(),
        }
    }

    /// Every configured deployment that serves `model` (`provider/model` pins one provider),
    /// in catalog order; the router reorders them.
    pub fn resolve(&self, model: &str) -> Result<Vec<Deployment>, GatewayError> {
        if let Some((prefix, rest)) = model.split_once('/') {
            let prefix = prefix.split('#').next().unwrap_or(prefix);
            if let Some(spec) = self.catalog.provider(prefix) {
                if rest.is_empty() {
                    return Err(GatewayError::invalid(
                        "model",
                        format!("`{model}` names a provider but no model; use {prefix}/<model>"),
                    ));
                }
                if !self.is_configured(spec.name) {
                    return Err(GatewayError::ProviderNotConfigured {
                        model: model.to_owned(),
                        providers: spec.name.to_owned(),
                        env: spec.enable_hint(),
                    });
                }
                let model = spec.model(rest).map(|m| m.id).unwrap_or(rest);
                return Ok(self.deployments_of(spec, model));
            }
        }
        let serving = self.catalog.serving(model);
        let mut out = Vec::new();
        for (spec, m) in &serving {
            out.extend(self.deployments_of(spec, m.id));
        }
        // Azure-style endpoints that serve configured model names.
        for spec in self.catalog.providers() {
            if let Some(eps) = self.endpoints.get(spec.name)
                && eps
                    .iter()
                    .any(|e| e.extra_models.iter().any(|m| m == model))
                && !serving.iter().any(|(s, _)| s.name == spec.name)
            {
                out.extend(self.deployments_of(spec, model));
            }
        }
        if !out.is_empty() {
            return Ok(out);
        }
        if serving.is_empty() {
            return Err(GatewayError::ModelNotFound {
                model: model.to_owned(),
                hint: "; use a catalog name (GET /v1/models) or address a provider directly as provider/model, e.g. mock/echo".into(),
            });
        }
        let providers: Vec<&str> = serving.iter().map(|(s, _)| s.name).collect();
        let envs: Vec<String> = serving.iter().map(|(s, _)| s.enable_hint()).collect();
        Err(GatewayError::ProviderNotConfigured {
            model: model.to_owned(),
            providers: providers.join(", "),
            env: envs.join(" or "),
        })
    }

    /// Every catalog model of every provider, configured or not.
    pub fn model_rows(&self) -> Vec<ModelRow> {
        let mut rows = Vec::new();
        for spec in self.catalog.providers() {
            let mut models: Vec<(String, Mode, u32, (f64, f64))> = spec
                .models
                .iter()
                .map(|m| (m.id.to_owned(), m.mode, m.context, (m.input, m.output)))
                .collect();
            if let Some(eps) = self.endpoints.get(spec.name) {
                for ep in eps {
                    for m in &ep.extra_models {
                        if !models.iter().any(|(id, ..)| id == m) {
                            let (input, output, mode) = spec
                                .model(m)
                                .map(|s| (s.input, s.output, s.mode))
                                .unwrap_or((0.0, 0.0, Mode::Chat));
                            models.push((m.clone(), mode, 128_000, (input, output)));
                        }
                    }
                }
            }
            for (id, mode, context, price) in models {
                let deployment = self.deployments_of(spec, &id).into_iter().next();
                rows.push(ModelRow {
                    id: format!("{}/{id}", spec.name),
                    provider: spec.name,
                    tier: spec.tier,
                    mode,
                    context,
                    price,
                    deployment,
                });
            }
        }
        rows
    }
}
