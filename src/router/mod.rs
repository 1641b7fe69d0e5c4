//! The router layer: resolves the requested model to its configured deployments and orders
//! them by the routing strategy, leaving the plan in the request's context for the failover
//! layer and the dispatch service below.

mod dispatch;
mod registry;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower::{Layer, Service};

pub use dispatch::Dispatch;
pub use registry::{ModelRow, Registry, StackFn};

use crate::GatewayError;
use crate::config::Config;
use crate::deployment::Deployment;
use crate::types::{ChatReply, ChatRequest};

/// Routing settings.
#[derive(Clone, Debug, Default)]
pub struct RouterConfig {
    /// `PROVIDER_PRIORITY`: providers or deployment ids, most preferred first.
    pub priority: Vec<String>,
}

impl RouterConfig {
    /// From the validated config.
    pub fn from_config(config: &Config) -> Self {
        Self {
            priority: config.priority.clone(),
        }
    }

    /// Position of a deployment in the priority list (unlisted ones after every listed one).
    fn rank(&self, d: &Deployment) -> usize {
        self.priority
            .iter()
            .position(|p| p.as_str() == &**d.id() || p == d.provider().name)
            .unwrap_or(self.priority.len())
    }

    /// Orders candidates in place (stable: ties keep catalog order).
    pub fn order(&self, candidates: &mut [Deployment]) {
        candidates.sort_by_key(|d| self.rank(d));
    }
}

/// Builds [`Router`]s.
#[derive(Clone, Debug)]
pub struct RouterLayer {
    registry: Arc<Registry>,
    config: Arc<RouterConfig>,
}

impl RouterLayer {
    /// A layer routing through `registry`.
    pub fn new(registry: Arc<Registry>, config: RouterConfig) -> Self {
        Self {
            registry,
            config: Arc::new(config),
        }
    }
}

impl<S> Layer<S> for RouterLayer {
    type Service = Router<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Router {
            inner,
            registry: self.registry.clone(),
            config: self.config.clone(),
        }
    }
}

/// Resolves and orders deployments, then calls `inner` with the plan in the context.
#[derive(Clone, Debug)]
pub struct Router<S> {
    inner: S,
    registry: Arc<Registry>,
    config: Arc<RouterConfig>,
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
        let mut plan = match self.registry.resolve(&req.model) {
            Ok(plan) => plan,
            Err(e) => {
                return ResponseFuture {
                    state: State::Failed { error: Some(e) },
                };
            }
        };
        self.config.order(&mut plan);
        req.ctx.target = plan.first().cloned();
        req.ctx.attempt = 1;
        req.ctx.plan = Some(plan.into());
        ResponseFuture {
            state: State::Called {
                fut: self.inner.call(req),
            },
        }
    }
}

pin_project! {
    /// The router's future: an immediate error, or the inner call.
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Failed { error: Option<GatewayError> },
        Called { #[pin] fut: F },
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("router::ResponseFuture")
            .finish_non_exhaustive()
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<ChatReply, GatewayError>>,
{
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Failed { error } => Poll::Ready(Err(error.take().unwrap_or_else(|| {
                GatewayError::Internal("router future polled after completion".into())
            }))),
            StateProj::Called { fut } => fut.poll(cx),
        }
    }
}
