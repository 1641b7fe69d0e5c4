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
pub use registry::{DEFAULT_MAX_PASSTHROUGH, ModelRow, Registry, StackFn, StackInfo};
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

impl Routing {
    /// The ordered, available deployments for `model`, the chain's fallbacks after them (those
    /// `key` may use: the model guard checked the requested model already).
    fn plan(
        &self,
        model: &str,
        mode: Mode,
        caller: Option<&dyn Caller>,
        now: Instant,
    ) -> Result<Vec<Deployment>, GatewayError> {
        // Only deployments whose catalog mode fits the endpoint (models outside the catalog,
        // addressed as provider/model, may serve either).
        let fits = |d: &Deployment| d.spec().is_none_or(|s| s.mode == mode);
        let primary = self.registry.resolve(model).and_then(|mut ds| {
            let before = ds.len();
            ds.retain(fits);
            if ds.is_empty() && before > 0 {
                return Err(wrong_mode(model, mode));
            }
            Ok(ds)
        });
        let fallbacks = self.config.fallbacks(model, self.registry.catalog());
        let mut groups = Vec::with_capacity(1 + fallbacks.len());
        let primary_err = match primary {
            Ok(ds) => {
                groups.push(ds);
                None
            }
            Err(e) => Some(e),
        };
        // A chain model that is not configured is skipped: the chain goes on.
        // So is a fallback, or one of its deployments, outside the key's allowed models.
        groups.extend(
            fallbacks
                .iter()
                .filter_map(|m| Some((*m, self.registry.resolve(m).ok()?)))
                .map(|(m, mut ds)| {
                    ds.retain(|d| {
                        fits(d)
                            && caller.is_none_or(|c| c.allows_model(m) || c.allows_model(d.id()))
                    });
                    ds
                })
                .filter(|ds| !ds.is_empty()),
        );
        if groups.is_empty() {
            return Err(primary_err.unwrap_or_else(|| {
                GatewayError::Internal(format!("no deployment for `{model}`"))
            }));
        }
        let turn = match self.config.strategy {
            Strategy::RoundRobin => self.turn.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        let mut plan: Vec<Deployment> = Vec::new();
        let mut cooling_for: Option<Duration> = None;
        let mut open_for: Option<Duration> = None;
        for mut group in groups {
            self.config.order(&mut group, turn, now);
            for d in group {
                if plan.iter().any(|p| p.id() == d.id()) {
                    continue;
                }
                match d.state().circuit().availability(now) {
                    Ok(()) => plan.push(d),
                    // The upstream asked us to stay away: it is not contacted until then.
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
                    "every deployment of `{model}` is rate limited by its provider; retry in {}s",
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
        let caller = req.ctx.access.as_deref();
        let plan = match self.routing.plan(&req.model, mode, caller, Instant::now()) {
            Ok(plan) => plan,
            Err(e) => return ResponseFuture::failed(e),
        };
        req.ctx.set_target(plan.first().cloned());
        req.ctx.attempt = 1;
        req.ctx.set_plan(plan.into());
        ResponseFuture::called(self.inner.call(req))
    }
}
