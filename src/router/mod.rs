//! The router layer: resolves the requested model to its configured deployments, orders them
//! by the routing strategy ([`strategy`]), drops the ones whose circuit is open, and leaves
//! the plan in the request's context for the failover
//! layer and the dispatch service below. Model names in `PROVIDER_PRIORITY` form a fallback
//! chain: the deployments of the next models of the chain follow those of the requested one
//! (failover still keeps to the first choice's tier unless `FAILOVER_CROSS_TIER=true`). A
//! fallback a virtual key may not use (outside its allowed models) is left out of its plan.
//!
//! Deployments cooling down after an upstream 429 with `retry-after` are skipped for that long;
//! when every candidate is cooling the answer is a 429 with the time left, no upstream
//! contacted. When every candidate's circuit is open the request fails at once,
//! without contacting any upstream: 503 [`GatewayError::NoHealthyDeployment`] with the time
//! until the next probe.
//!
//! # Example
//!
//! ```
//! # fn main() -> Result<(), proxygate::BuildError> {
//! use std::sync::Arc;
//! use proxygate::router::{Dispatch, Registry, RouterConfig, RouterLayer};
//!
//! let config = proxygate::Config::default();
//! let client = proxygate::client::build_client();
//! let registry = Arc::new(Registry::new(&config.providers, Default::default(), &client)?);
//! let chat = tower::ServiceBuilder::new()
//!     .layer(RouterLayer::new(registry, config.router_config()))
//!     .service(Dispatch);
//! # let _ = chat; Ok(()) }
//! ```

mod dispatch;
mod future;
mod layer;
mod registry;
pub mod routes;
pub mod strategy;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower::Service;

pub use dispatch::Dispatch;
pub use future::ResponseFuture;
pub use layer::RouterLayer;
pub use registry::{
    DEFAULT_MAX_PASSTHROUGH, ModelRow, Registry, RegistryConfig, Snapshot, StackFn, StackInfo,
};
pub use routes::{DeploymentDef, GroupKind, ModelGroup, Routes};
pub use strategy::{RouterConfig, Strategy};

use crate::GatewayError;
use crate::catalog::Mode;
use crate::deployment::{Deployment, Routed};
use crate::health::Unavailable;
use crate::types::{Caller, ChatReply, ChatRequest};

/// What every router built by one layer shares.
#[derive(Debug)]
struct Routing {
    registry: Arc<Registry>,
    config: RouterConfig,
    turn: AtomicUsize,
}

// === impl Routing ===

/// The most entries a request's own `models` list may have.
pub const MAX_REQUEST_MODELS: usize = 16;

/// Candidates of one model of the plan, with the strategy that orders them.
type Tier = (Vec<Deployment>, Strategy);

impl Routing {
    /// The ordered, available deployments for `model`: a group's targets (in chain order, or
    /// pooled under the group's strategy), then the request's own `models` list, then the
    /// `PROVIDER_PRIORITY` chain's fallbacks. Targets and fallbacks `caller` may not use are
    /// left out (the model guard checked the requested model already).
    #[allow(clippy::too_many_arguments)]
    fn plan(
        &self,
        snap: &Snapshot,
        config: &RouterConfig,
        model: &str,
        also: &[String],
        mode: Mode,
        caller: Option<&dyn Caller>,
        now: Instant,
    ) -> Result<Vec<Deployment>, GatewayError> {
        let mut tiers: Vec<Tier> = Vec::new();
        let primary_err = self
            .expand(snap, config, model, mode, caller, true, &mut tiers)
            .err();
        let mut later_err = None;
        for m in also {
            if let Err(e) = self.expand(snap, config, m, mode, caller, false, &mut tiers) {
                later_err.get_or_insert(e);
            }
        }
        let fallbacks = config.fallbacks(model, snap.catalog());
        for m in fallbacks {
            // A chain model that is not configured is skipped: the chain goes on.
            let _ = self.expand(snap, config, m, mode, caller, false, &mut tiers);
        }
        tiers.retain(|(ds, _)| !ds.is_empty());
        if tiers.is_empty() {
            return Err(primary_err.or(later_err).unwrap_or_else(|| match caller {
                Some(_) => GatewayError::Forbidden(format!(
                    "this API key may not use any model `{model}` routes to"
                )),
                None => GatewayError::Internal(format!("no deployment for `{model}`")),
            }));
        }
        let turn = if tiers.iter().any(|(_, s)| *s == Strategy::RoundRobin) {
            self.turn.fetch_add(1, Ordering::Relaxed)
        } else {
            0
        };
        let mut plan: Vec<Deployment> = Vec::new();
        let mut cooling_for: Option<Duration> = None;
        let mut open_for: Option<Duration> = None;
        let mut rng = rand::rng();
        for (mut group, strategy) in tiers {
            config.order_by(strategy, &mut group, turn, now, &mut rng);
            for d in group {
                if plan.iter().any(|p| p.id() == d.id()) {
                    continue;
                }
                match d.state().circuit().availability(now) {
                    Ok(()) => plan.push(d),
                    // The upstream asked us to stay away (or the deployment is at its own
                    // ceiling): it is not contacted until then.
                    Err(Unavailable::Cooling { retry_in }) => {
                        cooling_for = Some(cooling_for.map_or(retry_in, |r| r.min(retry_in)));
                    }
                    // Open circuits are left out here, so they are never contacted.
                    Err(Unavailable::Open { retry_in }) => {
                        open_for = Some(open_for.map_or(retry_in, |r| r.min(retry_in)));
                    }
                }
            }
        }
        if !plan.is_empty() {
            return Ok(plan);
        }
        // Every candidate is rate limited or open. A 429 stays a 429, with a retry-after no
        // larger than what the upstream asked for.
        if let Some(retry_in) = cooling_for.filter(|c| open_for.is_none_or(|o| *c <= o)) {
            return Err(GatewayError::RateLimited {
                message: format!(
                    "every deployment of `{model}` is rate limited; retry in {}s",
                    retry_in.as_secs_f64().ceil().max(1.0)
                ),
                retry_after: Some(retry_in),
            });
        }
        Err(GatewayError::NoHealthyDeployment {
            model: model.to_owned(),
            retry_in: open_for.unwrap_or(Duration::from_secs(1)),
        })
    }

    /// Pushes the candidates of `model` (a model or a group) onto `tiers`. Deployments whose
    /// mode does not fit the endpoint are left out; so are, for anything but the requested
    /// model itself, those `caller` may not use.
    #[allow(clippy::too_many_arguments)]
    fn expand(
        &self,
        snap: &Snapshot,
        config: &RouterConfig,
        model: &str,
        mode: Mode,
        caller: Option<&dyn Caller>,
        requested: bool,
        tiers: &mut Vec<Tier>,
    ) -> Result<(), GatewayError> {
        // Only deployments whose catalog mode fits the endpoint (models outside the catalog,
        // addressed as provider/model, may serve either).
        let fits = |d: &Deployment| d.spec().is_none_or(|s| s.mode == mode);
        let allowed = |target: &str, d: &Deployment| {
            caller.is_none_or(|c| c.allows_model(target) || c.allows_model(d.id()))
        };
        let Some(group) = snap.group(model) else {
            let mut ds = self.registry.resolve_in(snap, model)?;
            let before = ds.len();
            ds.retain(|d| fits(d) && (requested || allowed(model, d)));
            if ds.is_empty() && before > 0 && requested {
                return Err(wrong_mode(model, mode));
            }
            tiers.push((ds, config.strategy));
            return Ok(());
        };
        // A group: the key's globs apply to every target.
        let mut first_err = None;
        let mut pooled: Vec<Deployment> = Vec::new();
        for t in &group.targets {
            let mut ds = match self.registry.resolve_in(snap, t) {
                Ok(ds) => ds,
                Err(e) => {
                    first_err.get_or_insert(e);
                    continue;
                }
            };
            ds.retain(|d| fits(d) && allowed(t, d));
            match group.kind {
                GroupKind::Chain => tiers.push((ds, config.strategy)),
                GroupKind::Strategy(_) => pooled.extend(ds),
            }
        }
        if let GroupKind::Strategy(s) = group.kind {
            tiers.push((pooled, s));
        }
        match first_err {
            Some(e) if tiers.iter().all(|(ds, _)| ds.is_empty()) => Err(e),
            _ => Ok(()),
        }
    }
}

/// Takes the request's own fallback list (`models`, OpenRouter's field) out of its
/// parameters: a list of at most [`MAX_REQUEST_MODELS`] model names.
fn take_models(req: &mut ChatRequest) -> Result<Vec<String>, GatewayError> {
    let Some(v) = req.extra.remove("models") else {
        return Ok(Vec::new());
    };
    // The client's bytes hold the list, which no upstream is sent.
    req.ctx.verbatim = None;
    let bad = |reason: &str| GatewayError::invalid("models", reason.to_owned());
    let items = v
        .as_array()
        .ok_or_else(|| bad("must be a list of model names"))?;
    if items.len() > MAX_REQUEST_MODELS {
        return Err(bad(&format!(
            "lists {} models; at most {MAX_REQUEST_MODELS} are allowed",
            items.len()
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let m = item
            .as_str()
            .ok_or_else(|| bad("must be a list of model names (strings)"))?;
        crate::types::check_model(m).map_err(|_| bad(&format!("`{m}` is not a model name")))?;
        if m != req.model && !out.iter().any(|o| o == m) {
            out.push(m.to_owned());
        }
    }
    Ok(out)
}

/// The 400 for a model asked through the wrong endpoint.
fn wrong_mode(model: &str, wanted: Mode) -> GatewayError {
    let reason = match wanted {
        Mode::Embedding => format!(
            "`{model}` is a chat model; embeddings need a model whose mode is `embedding` in GET /v1/models"
        ),
        Mode::Chat => format!(
            "`{model}` is an embedding model; send it to POST /v1/embeddings, or pick a chat model"
        ),
    };
    GatewayError::invalid("model", reason)
}

/// Resolves and orders deployments, then calls `inner` with the plan in the context.
#[derive(Clone, Debug)]
pub struct Router<S> {
    inner: S,
    routing: Arc<Routing>,
}

// === impl Router ===

impl<S> Router<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> Service<ChatRequest> for Router<S>
where
    S: Service<ChatRequest, Response = ChatReply, Error = GatewayError>,
{
    type Response = ChatReply;
    type Error = GatewayError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: ChatRequest) -> Self::Future {
        let mode = if req.ctx.embedding.is_some() {
            Mode::Embedding
        } else {
            Mode::Chat
        };
        // One generation for the whole request: a reload meanwhile does not change its routes.
        let snap = self.routing.registry.snapshot();
        let also = match take_models(&mut req) {
            Ok(also) => also,
            Err(e) => return ResponseFuture::failed(e),
        };
        if let Some(group) = snap.group(&req.model)
            && !group.rules.is_empty()
        {
            group.rules.apply(&mut req);
        }
        let caller = req.ctx.access.as_deref();
        // Each model of the request's own list must be one the key may use.
        if let Some(c) = caller
            && let Some(m) = also
                .iter()
                .find(|m| !self.routing.registry.allows(&snap, c, m))
        {
            return ResponseFuture::failed(GatewayError::Forbidden(format!(
                "this API key may not use model `{m}` (listed in `models`)"
            )));
        }
        let config = snap.router().unwrap_or(&self.routing.config);
        let plan = match self.routing.plan(
            &snap,
            config,
            &req.model,
            &also,
            mode,
            caller,
            Instant::now(),
        ) {
            Ok(plan) => plan,
            Err(e) => return ResponseFuture::failed(e),
        };
        req.ctx.set_target(plan.first().cloned());
        req.ctx.attempt = 1;
        req.ctx.set_plan(plan.into());
        ResponseFuture::called(self.inner.call(req))
    }
}
