//! A virtual key's allowed models: a request for a model none of its globs match is refused
//! with 403 before anything is routed.

use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::Either;
use tower::{Layer, Service};

use super::Grant;
use crate::GatewayError;
use crate::router::Registry;
use crate::types::{ChatReply, ChatRequest};

/// Applies [`ModelGuard`].
#[derive(Clone, Debug, Default)]
pub struct ModelGuardLayer {
    registry: Option<Arc<Registry>>,
}

impl ModelGuardLayer {
    /// A guard that also resolves bare model names with `registry`: a bare name passes when
    /// every deployment it may go to is allowed.
    pub fn new(registry: Option<Arc<Registry>>) -> Self {
        Self { registry }
    }
}

impl<S> Layer<S> for ModelGuardLayer {
    type Service = ModelGuard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ModelGuard {
            inner,
            registry: self.registry.clone(),
        }
    }
}

/// Refuses models outside the key's globs; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct ModelGuard<S> {
    inner: S,
    registry: Option<Arc<Registry>>,
}

impl<S> ModelGuard<S> {
    fn allowed(&self, req: &ChatRequest) -> bool {
        let Some(key) = Grant::of(&req.ctx).and_then(|g| g.key.as_ref()) else {
            return true;
        };
        if key.allows_model(&req.model) {
            return true;
        }
        // `llama-3.1-8b` with `groq/*`: allowed only if it cannot go anywhere else.
        self.registry
            .as_ref()
            .and_then(|r| r.resolve(&req.model).ok())
            .is_some_and(|ds| !ds.is_empty() && ds.iter().all(|d| key.allows_model(d.id())))
    }
}

impl<S> Service<ChatRequest> for ModelGuard<S>
where
    S: Service<ChatRequest, Response = ChatReply, Error = GatewayError>,
{
    type Response = ChatReply;
    type Error = GatewayError;
    type Future = Either<S::Future, Ready<Result<ChatReply, GatewayError>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        if self.allowed(&req) {
            return Either::Left(self.inner.call(req));
        }
        let globs = Grant::of(&req.ctx)
            .and_then(|g| g.key.as_ref())
            .map(|k| k.models.join(", "))
            .unwrap_or_default();
        Either::Right(ready(Err(GatewayError::Forbidden(format!(
            "this API key may not use model `{}`; it is allowed: {globs}",
            req.model
        )))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{Grant, KeySpec, Keys, MemoryKeyStore};
    use tower::ServiceExt;

    #[tokio::test]
    async fn models_outside_the_globs_are_forbidden_without_calling_inner() {
        let keys = Keys::new(Arc::new(MemoryKeyStore::new()));
        let spec: KeySpec = serde_json::from_str(r#"{"models":["mock/*"]}"#).unwrap();
        let (key, _) = keys.create(spec).await.unwrap();
        let grant = Arc::new(Grant::new(Some(Arc::new(key))));
        let (svc, mut handle) = crate::test_util::pair();
        let svc = ModelGuard {
            inner: svc,
            registry: None,
        };
        let mut req: ChatRequest = serde_json::from_value(serde_json::json!({
            "model": "groq/llama-3.1-8b-instant",
            "messages": [{"role": "user", "content": "hi"}],
        }))
        .unwrap();
        req.ctx.access = Some(grant);
        let err = svc.oneshot(req).await.unwrap_err();
        assert!(matches!(err, GatewayError::Forbidden(ref m) if m.contains("groq/llama")));
        assert!(!matches!(
            handle.poll_request(),
            std::task::Poll::Ready(Some(_))
        ));
    }
}
