//! The registry: configured providers, and the deployments created from them, each kept for
//! the life of the process so its health and latency outlive single requests.
//!
//! Everything routing reads lives in one immutable [`Snapshot`]: the catalog (the built-in
//! providers and the config file's own deployments), their endpoints, the deployments made so
//! far, model groups, parameter rules and the router's settings. A request reads the current
//! snapshot once; [`Registry::reload`] builds a whole new one beside it and swaps it in, so a
//! request in flight finishes on the routes it started with. Deployments that still exist after
//! a reload keep their health state (circuit, latency) by id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use arc_swap::ArcSwap;

use super::RouterConfig;
use super::routes::{ModelGroup, Routes};
use crate::GatewayError;
use crate::catalog::models::azure::{ENV_AZURE_API_VERSION, ENV_AZURE_DEPLOYMENTS};
use crate::catalog::{Catalog, Format, Mode, ProviderSpec, Tier};
use crate::client::HttpClient;
use crate::deployment::{Ceiling, Deployment};
use crate::error::BuildError;
use crate::health::DeploymentHealth;
use crate::providers::ProviderEndpoint;
use crate::providers::ProviderSettings;
use crate::types::{BoxChat, ParamRules};

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

/// What is wrong with a registry's configuration: every problem, and the first built-in
/// provider among them.
struct Problems {
    provider: Option<&'static str>,
    problems: Vec<String>,
}

/// Pass-through model ids a registry tracks by name unless told otherwise.
pub const DEFAULT_MAX_PASSTHROUGH: usize = 256;

/// Configured providers and their deployments.
pub struct Registry {
    current: ArcSwap<Snapshot>,
    stack: Option<StackFn>,
    /// The client endpoints are built on (kept for reloads).
    client: HttpClient,
    /// Pass-through model ids (outside the catalog) tracked by name at most.
    max_passthrough: usize,
    /// The one health state per provider of every pass-through model beyond the bound.
    others: RwLock<HashMap<&'static str, Arc<DeploymentHealth>>>,
    /// Snapshots made so far.
    generation: AtomicU64,
}

/// One generation of the routing configuration; see the [module docs](self).
pub struct Snapshot {
    /// The catalog without the config file's deployments.
    base: Catalog,
    catalog: Catalog,
    endpoints: HashMap<&'static str, Vec<ProviderEndpoint>>,
    deployments: RwLock<HashMap<Arc<str>, Deployment>>,
    /// Pass-through deployments tracked by name so far.
    passthrough: AtomicUsize,
    groups: HashMap<String, ModelGroup>,
    rules: HashMap<String, Arc<ParamRules>>,
    ceilings: HashMap<&'static str, Ceiling>,
    router: Option<RouterConfig>,
    routes: Routes,
    generation: u64,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("generation", &self.generation)
            .field("configured", &self.endpoints.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    /// The model group named `name`, if one is configured.
    pub fn group(&self, name: &str) -> Option<&ModelGroup> {
        if self.groups.is_empty() {
            return None;
        }
        self.groups.get(name)
    }

    /// Every model group, by name.
    pub fn groups(&self) -> impl Iterator<Item = &ModelGroup> {
        let mut v: Vec<&ModelGroup> = self.groups.values().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v.into_iter()
    }

    /// The router settings this generation was loaded with, if any.
    pub fn router(&self) -> Option<&RouterConfig> {
        self.router.as_ref()
    }

    /// The config file's routes this generation holds.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// The catalog: built-in providers, then configured deployments.
    pub fn catalog(&self) -> Catalog {
        self.catalog
    }

    /// Which reload made it (0: the first).
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("current", &*self.current.load())
            .finish_non_exhaustive()
    }
}

/// What a reload changes: the providers, the config file's routes and the router settings.
#[derive(Clone, Debug, Default)]
pub struct RegistryConfig {
    /// Built-in providers with credentials.
    pub providers: HashMap<&'static str, ProviderSettings>,
    /// The config file's deployments, groups and rules.
    pub routes: Routes,
    /// The routing strategy, priorities and weights (none: the router layer's own).
    pub router: Option<RouterConfig>,
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
    /// USD per 1M input / output tokens; `None` for a configured model given no prices.
    pub price: Option<(f64, f64)>,
    /// The bare names that also resolve to it.
    pub aliases: Vec<String>,
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
        Self::with_routes(
            RegistryConfig {
                providers: providers.clone(),
                ..RegistryConfig::default()
            },
            catalog,
            client,
            stack,
        )
    }

    /// As [`Registry::with_stack`], with the config file's deployments, groups and rules and
    /// the router settings.
    pub fn with_routes(
        config: RegistryConfig,
        catalog: Catalog,
        client: &HttpClient,
        stack: Option<StackFn>,
    ) -> Result<Self, BuildError> {
        let reg = Self {
            current: ArcSwap::from_pointee(Snapshot {
                base: catalog,
                catalog,
                endpoints: HashMap::new(),
                deployments: RwLock::new(HashMap::new()),
                passthrough: AtomicUsize::new(0),
                groups: HashMap::new(),
                rules: HashMap::new(),
                ceilings: HashMap::new(),
                router: None,
                routes: Routes::default(),
                generation: 0,
            }),
            stack,
            client: client.clone(),
            max_passthrough: DEFAULT_MAX_PASSTHROUGH,
            others: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
        };
        let snap = reg.build(&config, catalog, None, 0).map_err(|p| {
            // A built-in provider's own problem keeps its name and message as they were.
            match (p.provider, p.problems.as_slice()) {
                (Some(name), [one]) => BuildError::Provider {
                    provider: name,
                    message: one
                        .strip_prefix(&format!("{name}: "))
                        .unwrap_or(one)
                        .to_owned(),
                },
                (name, all) => BuildError::Provider {
                    provider: name.unwrap_or("config"),
                    message: all.join("; "),
                },
            }
        })?;
        reg.current.store(Arc::new(snap));
        Ok(reg)
    }

    /// Builds a whole new generation from `config` and swaps it in: every problem is listed
    /// and nothing changes when there is one. Deployments whose id still exists keep their
    /// health (circuit, latency); requests in flight finish on the generation they started on.
    pub fn reload(&self, config: &RegistryConfig) -> Result<Arc<Snapshot>, Vec<String>> {
        let old = self.current.load_full();
        let base = old.base;
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let snap = Arc::new(
            self.build(config, base, Some(&old), generation)
                .map_err(|p| p.problems)?,
        );
        self.current.store(snap.clone());
        Ok(snap)
    }

    /// The generation requests are routed by now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// A new generation: the built-in `base` catalog with `config`'s deployments added.
    fn build(
        &self,
        config: &RegistryConfig,
        base: Catalog,
        old: Option<&Snapshot>,
        generation: u64,
    ) -> Result<Snapshot, Problems> {
        let mut problems = Vec::new();
        let mut provider = None;
        let mut custom: Vec<&'static ProviderSpec> = Vec::new();
        let mut settings: Vec<(&'static ProviderSpec, ProviderSettings)> = Vec::new();
        let mut ceilings = HashMap::new();
        for def in &config.routes.deployments {
            if base.provider(&def.name).is_some() || custom.iter().any(|s| s.name == def.name) {
                problems.push(format!(
                    "deployment `{}`: the name is taken by another provider or deployment",
                    def.name
                ));
                continue;
            }
            let spec = crate::catalog::custom::custom_provider(&def.provider());
            let mut extra = HashMap::new();
            if def.format == Format::Azure {
                if let Some(v) = &def.api_version {
                    extra.insert(ENV_AZURE_API_VERSION.to_owned(), v.clone());
                }
                let pairs: Vec<String> = def
                    .azure_deployments
                    .iter()
                    .map(|(m, d)| format!("{m}={d}"))
                    .collect();
                extra.insert(ENV_AZURE_DEPLOYMENTS.to_owned(), pairs.join(","));
            }
            ceilings.insert(
                spec.name,
                Ceiling {
                    rpm: def.rpm,
                    tpm: def.tpm,
                },
            );
            custom.push(spec);
            settings.push((
                spec,
                ProviderSettings {
                    keys: def.keys.clone(),
                    base_url: def.base_url.trim_end_matches('/').to_owned(),
                    extra,
                },
            ));
        }
        let catalog = crate::catalog::custom::extend(base, &custom);
        let mut endpoints = HashMap::new();
        for spec in catalog.providers() {
            let Some(settings) = config.providers.get(spec.name) else {
                continue;
            };
            match crate::providers::build(spec, settings, &self.client) {
                Ok(eps) => {
                    endpoints.insert(spec.name, eps);
                }
                Err(message) => {
                    provider.get_or_insert(spec.name);
                    problems.push(format!("{}: {message}", spec.name));
                }
            }
        }
        for (spec, settings) in &settings {
            match crate::providers::build(spec, settings, &self.client) {
                Ok(eps) if eps.is_empty() => problems.push(format!(
                    "deployment `{}`: format {} needs a key; set api_key_env",
                    spec.name,
                    super::routes::format_name(spec.format)
                )),
                Ok(eps) => {
                    endpoints.insert(spec.name, eps);
                }
                Err(message) => problems.push(format!("deployment `{}`: {message}", spec.name)),
            }
        }
        // Group targets must name something that can be routed.
        let groups: HashMap<String, ModelGroup> = config
            .routes
            .groups
            .iter()
            .map(|(k, g)| (k.clone(), g.clone()))
            .collect();
        for g in groups.values() {
            if catalog.provider(&g.name).is_some() {
                problems.push(format!(
                    "model group `{}`: the name is a provider's; pick another",
                    g.name
                ));
            }
            if g.targets.is_empty() {
                problems.push(format!("model group `{}` has no targets", g.name));
            }
            for t in &g.targets {
                if groups.contains_key(t.as_str()) {
                    problems.push(format!(
                        "model group `{}`: target `{t}` is a group; list its models instead",
                        g.name
                    ));
                } else if !target_known(catalog, &endpoints, t) {
                    problems.push(format!(
                        "model group `{}`: target `{t}` is not a model of any provider or deployment",
                        g.name
                    ));
                }
            }
        }
        for key in config.routes.rules.keys() {
            if !target_known(catalog, &endpoints, key) || !key.contains('/') {
                problems.push(format!(
                    "rules for `{key}`: not a provider/model of any provider or deployment"
                ));
            }
        }
        if !problems.is_empty() {
            return Err(Problems { provider, problems });
        }
        let snap = Snapshot {
            base,
            catalog,
            endpoints,
            deployments: RwLock::new(HashMap::new()),
            passthrough: AtomicUsize::new(0),
            groups,
            rules: config
                .routes
                .rules
                .iter()
                .map(|(k, r)| (k.clone(), Arc::new(r.clone())))
                .collect(),
            ceilings,
            router: config.router.clone(),
            routes: config.routes.clone(),
            generation,
        };
        let inherited = old.map(|o| {
            o.deployments
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        });
        // Create the catalog deployments up front so their state is listed from the start.
        for spec in catalog.providers() {
            if snap.endpoints.contains_key(spec.name) {
                for m in spec.models {
                    let _ = self.deployments_in(&snap, spec, m.id, inherited.as_ref());
                }
            }
        }
        // And every deployment of the last generation that is still served, with its state.
        if let Some(old) = &inherited {
            for d in old.values() {
                if let Some(spec) = catalog.provider(d.provider().name)
                    && snap.endpoints.contains_key(spec.name)
                {
                    let _ = self.deployments_in(&snap, spec, d.model(), Some(old));
                }
            }
        }
        Ok(snap)
    }

    /// The catalog.
    pub fn catalog(&self) -> Catalog {
        self.current.load().catalog
    }

    /// Whether `provider` has credentials.
    pub fn is_configured(&self, provider: &str) -> bool {
        self.current.load().endpoints.contains_key(provider)
    }

    /// Every deployment created so far, sorted by id.
    pub fn deployments(&self) -> Vec<Deployment> {
        let snap = self.current.load();
        let map = snap.deployments.read().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<Deployment> = map.values().cloned().collect();
        v.sort_by(|a, b| a.id().cmp(b.id()));
        v
    }

    /// A deployment by id.
    pub fn deployment(&self, id: &str) -> Option<Deployment> {
        self.current
            .load()
            .deployments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// The deployments (one per key) of `provider` serving `model` in `snap`; a new one takes
    /// the state `inherited` holds under its id.
    fn deployments_in(
        &self,
        snap: &Snapshot,
        spec: &'static ProviderSpec,
        model: &str,
        inherited: Option<&HashMap<Arc<str>, Deployment>>,
    ) -> Vec<Deployment> {
        let Some(eps) = snap.endpoints.get(spec.name) else {
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
                snap.deployments
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
            if passthrough && !self.reserve_passthrough(snap) {
                // Served, but under one name: client-chosen ids must not grow labels, the
                // registry, the dashboard or shared state without bound.
                let state = self.other_state(spec.name);
                let service = self.wrap(OTHER_MODELS.into(), spec, &state, ep);
                out.push(
                    Deployment::with_state(OTHER_MODELS, spec, model, service, state).with_limits(
                        None,
                        snap.ceilings.get(spec.name).copied().unwrap_or_default(),
                    ),
                );
                continue;
            }
            let id: Arc<str> = if i == 0 {
                format!("{}/{model}", spec.name).into()
            } else {
                format!("{}#{}/{model}", spec.name, i + 1).into()
            };
            let state = inherited
                .and_then(|m| m.get(&id))
                .map(|d| d.state().clone())
                .unwrap_or_else(|| Arc::new(DeploymentHealth::new(id.clone())));
            let service = self.wrap(id.clone(), spec, &state, ep);
            let rules = snap
                .rules
                .get(&format!("{}/{model}", spec.name))
                .or_else(|| {
                    let canonical = spec.model(model)?.id;
                    snap.rules.get(&format!("{}/{canonical}", spec.name))
                })
                .cloned();
            let d = Deployment::with_state(id.clone(), spec, model, service, state).with_limits(
                rules,
                snap.ceilings.get(spec.name).copied().unwrap_or_default(),
            );
            let mut map = snap.deployments.write().unwrap_or_else(|e| e.into_inner());
            let d = match map.get(&id) {
                Some(existing) => {
                    if passthrough {
                        self.release_passthrough(snap);
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
    fn reserve_passthrough(&self, snap: &Snapshot) -> bool {
        snap.passthrough
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_passthrough).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives back a slot reserved for an id another request created first.
    fn release_passthrough(&self, snap: &Snapshot) {
        snap.passthrough.fetch_sub(1, Ordering::AcqRel);
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

    /// Every configured deployment that serves `model` (`provider/model` pins one provider;
    /// a model group's name gives every target's), in catalog order; the router reorders them.
    pub fn resolve(&self, model: &str) -> Result<Vec<Deployment>, GatewayError> {
        let snap = self.current.load();
        if let Some(g) = snap.group(model) {
            let mut out: Vec<Deployment> = Vec::new();
            let mut first_err = None;
            for t in &g.targets {
                match self.resolve_in(&snap, t) {
                    Ok(ds) => {
                        for d in ds {
                            if !out.contains(&d) {
                                out.push(d);
                            }
                        }
                    }
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            return match (out.is_empty(), first_err) {
                (true, Some(e)) => Err(e),
                _ => Ok(out),
            };
        }
        self.resolve_in(&snap, model)
    }

    /// Whether `caller` may use `model`: one of its globs matches the name, or every
    /// deployment the name may go to (every target's, for a group).
    pub fn allows(&self, snap: &Snapshot, caller: &dyn crate::types::Caller, model: &str) -> bool {
        if caller.allows_model(model) {
            return true;
        }
        let all = |m: &str| {
            self.resolve_in(snap, m)
                .is_ok_and(|ds| !ds.is_empty() && ds.iter().all(|d| caller.allows_model(d.id())))
        };
        match snap.group(model) {
            Some(g) => g.targets.iter().all(|t| caller.allows_model(t) || all(t)),
            None => all(model),
        }
    }

    /// As [`Registry::resolve`] for one model (not a group) of `snap`.
    pub fn resolve_in(
        &self,
        snap: &Snapshot,
        model: &str,
    ) -> Result<Vec<Deployment>, GatewayError> {
        if let Some((prefix, rest)) = model.split_once('/') {
            let prefix = prefix.split('#').next().unwrap_or(prefix);
            if let Some(spec) = snap.catalog.provider(prefix) {
                if rest.is_empty() {
                    return Err(GatewayError::invalid(
                        "model",
                        format!("`{model}` names a provider but no model; use {prefix}/<model>"),
                    ));
                }
                if !snap.endpoints.contains_key(spec.name) {
                    return Err(GatewayError::ProviderNotConfigured {
                        model: model.to_owned(),
                        providers: spec.name.to_owned(),
                        env: spec.enable_hint(),
                    });
                }
                let model = spec.model(rest).map(|m| m.id).unwrap_or(rest);
                return Ok(self.deployments_in(snap, spec, model, None));
            }
        }
        let serving = snap.catalog.serving(model);
        let mut out = Vec::new();
        for (spec, m) in &serving {
            out.extend(self.deployments_in(snap, spec, m.id, None));
        }
        // Azure-style endpoints that serve configured model names.
        for spec in snap.catalog.providers() {
            if let Some(eps) = snap.endpoints.get(spec.name)
                && eps
                    .iter()
                    .any(|e| e.extra_models.iter().any(|m| m == model))
                && !serving.iter().any(|(s, _)| s.name == spec.name)
            {
                out.extend(self.deployments_in(snap, spec, model, None));
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
        let snap = self.current.load();
        let mut rows = Vec::new();
        for spec in snap.catalog.providers() {
            let mut models: Vec<ListedModel> = spec
                .models
                .iter()
                .map(|m| {
                    let aliases = std::iter::once(m.id)
                        .chain(m.aliases.iter().copied())
                        .map(str::to_owned)
                        .collect();
                    (
                        m.id.to_owned(),
                        m.mode,
                        m.context,
                        crate::catalog::custom::prices(m),
                        aliases,
                    )
                })
                .collect();
            if let Some(eps) = snap.endpoints.get(spec.name) {
                for ep in eps {
                    for m in &ep.extra_models {
                        if !models.iter().any(|(id, ..)| id == m) {
                            let (input, output, mode) = spec
                                .model(m)
                                .map(|s| (s.input, s.output, s.mode))
                                .unwrap_or((0.0, 0.0, Mode::Chat));
                            models.push((
                                m.clone(),
                                mode,
                                128_000,
                                Some((input, output)),
                                vec![m.clone()],
                            ));
                        }
                    }
                }
            }
            for (id, mode, context, price, aliases) in models {
                let deployment = self
                    .deployments_in(&snap, spec, &id, None)
                    .into_iter()
                    .next();
                rows.push(ModelRow {
                    id: format!("{}/{id}", spec.name),
                    provider: spec.name,
                    tier: spec.tier,
                    mode,
                    context,
                    price,
                    aliases,
                    deployment,
                });
            }
        }
        rows
    }
}

/// A model as `/v1/models` lists it: id, mode, context window, prices, aliases.
type ListedModel = (String, Mode, u32, Option<(f64, f64)>, Vec<String>);

/// Whether `target` (`provider/model` or a bare name) is something `catalog` routes.
fn target_known(
    catalog: Catalog,
    endpoints: &HashMap<&'static str, Vec<ProviderEndpoint>>,
    target: &str,
) -> bool {
    if let Some((prefix, rest)) = target.split_once('/')
        && let Some(spec) = catalog.provider(prefix.split('#').next().unwrap_or(prefix))
    {
        return !rest.is_empty()
            && (spec.model(rest).is_some()
                || endpoints
                    .get(spec.name)
                    .is_some_and(|eps| eps.iter().any(|e| e.extra_models.iter().any(|m| m == rest)))
                // A provider/model outside the catalog is passed through to a configured provider.
                || endpoints.contains_key(spec.name));
    }
    !catalog.serving(target).is_empty()
        || endpoints.values().any(|eps| {
            eps.iter()
                .any(|e| e.extra_models.iter().any(|m| m == target))
        })
}
