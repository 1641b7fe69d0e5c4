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
//! # fn main() -> Result<(), String> {
//! use std::sync::Arc;
//! use proxygate::router::{Dispatch, Registry, RouterConfig, RouterLayer};
//!
//! let config = proxygate::Config::default();
//! let client = proxygate::client::build_client();
//! let registry = Arc::new(Registry::new(&config, Default::default(), &client)?);
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
pub use registry::{ModelRow, Registry, StackFn, StackInfo};
pub use strategy::{RouterConfig, Strategy};

use crate::GatewayError;
use crate::access::VirtualKey;
use crate::catalog::Mode;
use crate::deployment::Deployment;
use crate::health::Unavailable;
use crate::types::{ChatReply, ChatRequest};

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
        key: Option<&VirtualKey>,
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
                        fits(d) && key.is_none_or(|k| k.allows_model(m) || k.allows_model(d.id()))
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
        let key = req.ctx.access.as_ref().and_then(|g| g.key.as_deref());
        let plan = match self.routing.plan(&req.model, mode, key, Instant::now()) {
            Ok(plan) => plan,
            Err(e) => return ResponseFuture::failed(e),
        };
        req.ctx.target = plan.first().cloned();
        req.ctx.attempt = 1;
        req.ctx.plan = Some(plan.into());
        ResponseFuture::called(self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::catalog::Catalog;
    use crate::config::Config;
    use crate::health::{BreakerConfig, Permit};
    use tokio_test::{assert_pending, assert_ready_ok};
    use tower::{Layer, ServiceExt};
    use tower_test::mock;

    fn layer(pairs: &[(&str, &str)]) -> (RouterLayer, Arc<Registry>) {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let config = Config::from_env(&m, Catalog::default()).unwrap();
        let registry = Arc::new(
            Registry::new(&config, Catalog::default(), &crate::client::build_client()).unwrap(),
        );
        (
            RouterLayer::new(registry.clone(), config.router_config()),
            registry,
        )
    }

    const THREE: &[(&str, &str)] = &[
        ("GROQ_API_KEY", "g"),
        ("TOGETHER_API_KEY", "t"),
        ("CEREBRAS_API_KEY", "c"),
    ];

    fn open(registry: &Registry, id: &str) {
        let d = registry.deployment(id).unwrap();
        let cfg = BreakerConfig::default().with_threshold(1);
        Permit::acquire(d.state(), &cfg, Instant::now())
            .unwrap()
            .fail(&cfg, Instant::now());
    }

    /// Routes `model` and returns the plan the inner service received.
    async fn plan_of(layer: &RouterLayer, model: &str) -> Result<Vec<String>, GatewayError> {
        let req = ChatRequest {
            model: model.into(),
            ..Default::default()
        };
        plan_for(layer, req).await
    }

    /// Routes `req` and returns the plan the inner service received.
    async fn plan_for(layer: &RouterLayer, req: ChatRequest) -> Result<Vec<String>, GatewayError> {
        let (svc, mut handle) = mock::pair::<ChatRequest, ChatReply>();
        let mut svc = mock::Spawn::new(layer.layer(svc.map_err(GatewayError::from)));
        assert_ready_ok!(svc.poll_ready());
        let call = svc.call(req);
        let next = futures_util::FutureExt::now_or_never(handle.next_request()).flatten();
        let Some((req, _respond)) = next else {
            return Err(call.await.unwrap_err());
        };
        let plan = req.ctx.plan.unwrap();
        assert_eq!(req.ctx.target.as_ref(), plan.first());
        assert_eq!(req.ctx.attempt, 1);
        Ok(plan.iter().map(|d| d.id().to_string()).collect())
    }

    #[tokio::test(start_paused = true)]
    async fn plans_keep_to_the_models_of_the_endpoint() {
        let (layer, _) = layer(&[
            ("OPENAI_API_KEY", "o"),
            ("AZURE_OPENAI_API_KEY", "a"),
            ("AZURE_OPENAI_ENDPOINT", "https://r.openai.azure.com"),
            (
                "AZURE_OPENAI_DEPLOYMENTS",
                "gpt-4o-mini=mini,text-embedding-3-small=emb",
            ),
        ]);
        let embedding = |model: &str| {
            let emb: crate::types::EmbeddingRequest =
                serde_json::from_value(serde_json::json!({"model": model, "input": "x"})).unwrap();
            let mut req = ChatRequest {
                model: model.into(),
                ..Default::default()
            };
            req.ctx.embedding = Some(Arc::new(emb));
            req
        };
        let plan = plan_for(&layer, embedding("text-embedding-3-small"))
            .await
            .unwrap();
        assert_eq!(
            plan,
            [
                "openai/text-embedding-3-small",
                "azure/text-embedding-3-small"
            ]
        );
        let err = plan_for(&layer, embedding("gpt-4o-mini"))
            .await
            .unwrap_err();
        assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
        assert!(err.to_string().contains("chat model"), "{err}");
        let err = plan_of(&layer, "openai/text-embedding-3-small")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("/v1/embeddings"), "{err}");
        // Models outside the catalog may serve either.
        assert!(
            plan_for(&layer, embedding("openai/my-embedder"))
                .await
                .is_ok()
        );
        assert!(plan_of(&layer, "openai/my-chat").await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn plan_is_ordered_by_priority() {
        let mut pairs = THREE.to_vec();
        pairs.push(("PROVIDER_PRIORITY", "cerebras,groq"));
        let (layer, _) = layer(&pairs);
        let plan = plan_of(&layer, "llama-3.1-8b").await.unwrap();
        assert_eq!(
            plan,
            [
                "cerebras/llama3.1-8b",
                "groq/llama-3.1-8b-instant",
                "together/meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo"
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn open_circuits_are_left_out_of_the_plan() {
        let (layer, registry) = layer(THREE);
        open(&registry, "groq/llama-3.1-8b-instant");
        let plan = plan_of(&layer, "llama-3.1-8b").await.unwrap();
        assert_eq!(plan.len(), 2);
        assert!(!plan.iter().any(|id| id.starts_with("groq/")));
    }

    #[tokio::test(start_paused = true)]
    async fn every_circuit_open_fails_fast_with_the_time_to_the_next_probe() {
        let (layer, registry) = layer(&[("GROQ_API_KEY", "g"), ("CEREBRAS_API_KEY", "c")]);
        open(&registry, "groq/llama-3.1-8b-instant");
        tokio::time::advance(Duration::from_secs(10)).await;
        open(&registry, "cerebras/llama3.1-8b");
        let (svc, mut handle) = mock::pair::<ChatRequest, ChatReply>();
        let mut svc = mock::Spawn::new(layer.layer(svc.map_err(GatewayError::from)));
        assert_ready_ok!(svc.poll_ready());
        let req = ChatRequest {
            model: "llama-3.1-8b".into(),
            ..Default::default()
        };
        let err = svc.call(req).await.unwrap_err();
        assert_eq!(err.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        // groq's cool-down (30 s) ends first.
        assert_eq!(err.retry_after(), Some(Duration::from_secs(20)));
        assert_pending!(handle.poll_request());
    }

    #[tokio::test(start_paused = true)]
    async fn cooling_deployments_are_skipped_until_the_retry_after_passes() {
        let (layer, registry) = layer(THREE);
        let d = registry.deployment("groq/llama-3.1-8b-instant").unwrap();
        d.state()
            .circuit()
            .cool_until(Instant::now() + Duration::from_secs(3));
        let plan = plan_of(&layer, "llama-3.1-8b").await.unwrap();
        assert!(
            !plan.iter().any(|p| p == "groq/llama-3.1-8b-instant"),
            "{plan:?}"
        );
        // Alone, it is refused unasked with a 429 saying how long is left.
        let err = plan_of(&layer, "groq/llama-3.1-8b-instant")
            .await
            .unwrap_err();
        assert_eq!(err.status(), http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
        tokio::time::advance(Duration::from_secs(3)).await;
        let plan = plan_of(&layer, "llama-3.1-8b").await.unwrap();
        assert_eq!(plan[0], "groq/llama-3.1-8b-instant");
    }

    #[tokio::test(start_paused = true)]
    async fn model_chain_appends_the_next_models() {
        let (layer, _) = layer(&[
            ("GROQ_API_KEY", "g"),
            ("OPENAI_API_KEY", "o"),
            (
                "PROVIDER_PRIORITY",
                "llama-3.1-8b,gpt-4o-mini,claude-3.5-sonnet",
            ),
        ]);
        let plan = plan_of(&layer, "llama-3.1-8b").await.unwrap();
        // claude-3.5-sonnet has no configured provider: the chain skips it.
        assert_eq!(plan, ["groq/llama-3.1-8b-instant", "openai/gpt-4o-mini"]);
        let plan = plan_of(&layer, "gpt-4o-mini").await.unwrap();
        assert_eq!(plan, ["openai/gpt-4o-mini"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_never_falls_back_to_a_model_it_may_not_use() {
        let (layer, _) = layer(&[
            ("GROQ_API_KEY", "g"),
            ("OPENAI_API_KEY", "o"),
            ("PROVIDER_PRIORITY", "llama-3.1-8b,gpt-4o-mini"),
        ]);
        let keyed = |models: &str| {
            let keys = crate::access::Keys::new(Arc::new(crate::access::MemoryKeyStore::new()));
            let spec: crate::access::KeySpec =
                serde_json::from_str(&format!(r#"{{"models":{models}}}"#)).unwrap();
            async move {
                let (key, _) = keys.create(spec).await.unwrap();
                let mut req = ChatRequest {
                    model: "llama-3.1-8b".into(),
                    ..Default::default()
                };
                req.ctx.access = Some(Arc::new(crate::access::Grant::new(Some(Arc::new(key)))));
                req
            }
        };
        let plan = plan_for(&layer, keyed(r#"["groq/*"]"#).await)
            .await
            .unwrap();
        assert_eq!(plan, ["groq/llama-3.1-8b-instant"]);
        let plan = plan_for(&layer, keyed(r#"["groq/*","openai/*"]"#).await)
            .await
            .unwrap();
        assert_eq!(plan, ["groq/llama-3.1-8b-instant", "openai/gpt-4o-mini"]);
        let plan = plan_for(&layer, keyed(r#"["llama-3.1-8b","gpt-4o-mini"]"#).await)
            .await
            .unwrap();
        assert_eq!(plan, ["groq/llama-3.1-8b-instant", "openai/gpt-4o-mini"]);
    }

    #[tokio::test(start_paused = true)]
    async fn round_robin_turns_per_request() {
        let mut pairs = THREE.to_vec();
        pairs.push(("ROUTING_STRATEGY", "round-robin"));
        let (layer, _) = layer(&pairs);
        let mut firsts = Vec::new();
        for _ in 0..3 {
            firsts.push(plan_of(&layer, "llama-3.1-8b").await.unwrap()[0].clone());
        }
        firsts.sort();
        firsts.dedup();
        assert_eq!(firsts.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_models_fail_without_calling_inner() {
        let (layer, _) = layer(&[]);
        let err = plan_of(&layer, "gpt-9").await.unwrap_err();
        assert_eq!(err.status(), http::StatusCode::NOT_FOUND);
    }
}
