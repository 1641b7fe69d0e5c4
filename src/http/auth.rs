//! Who is calling: with `PROXYGATE_MASTER_KEY` set, every `/v1` and `/admin`
//! request must carry the master key or a virtual key as `Authorization: Bearer <key>` (or
//! `x-api-key`, as Anthropic clients send it); 401 in the OpenAI envelope otherwise. Without
//! a master key the gateway is open, but a virtual key that is presented still counts (its
//! limits, budget and usage apply) and an unknown, expired or deleted one is still refused.
//! Only the master key (or an open gateway) may use `/admin/*`.
//!
//! The layer gives the request an [`access::Grant`](crate::access::Grant) (in its extensions)
//! that the decoders copy into the request context, and on the way out writes the
//! `x-ratelimit-remaining-*` headers the rate-limit layer noted in it. The master key is
//! compared in constant time; a virtual key is found by its SHA-256 through the cache.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use futures_util::future::BoxFuture;
use http::HeaderValue;
use subtle::ConstantTimeEq;
use tower::{Layer, Service};

use super::encode::error_response;
use crate::GatewayError;
use crate::access::keys::KEY_PREFIX;
use crate::access::{Grant, Keys};
use crate::types::Secret;

/// Applies [`Auth`].
#[derive(Clone, Debug)]
pub struct AuthLayer {
    master: Option<Secret>,
    keys: Arc<Keys>,
}

impl AuthLayer {
    /// Checks callers against `master` (none: open) and the virtual `keys`.
    pub fn new(master: Option<Secret>, keys: Arc<Keys>) -> Self {
        Self { master, keys }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            layer: self.clone(),
        }
    }
}

/// Identifies the caller; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct Auth<S> {
    inner: S,
    layer: AuthLayer,
}

/// The key the client presented, if any: a Bearer token, else `x-api-key` (Anthropic SDKs).
fn presented(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
}

/// Whether the caller may see everything: the gateway is open, or it presented the master key.
pub fn full_view(master: Option<&Secret>, headers: &http::HeaderMap) -> bool {
    match master {
        None => true,
        Some(m) => presented(headers)
            .is_some_and(|t| bool::from(t.as_bytes().ct_eq(m.expose().as_bytes()))),
    }
}

fn unauthorized(msg: &str) -> Response {
    error_response(&GatewayError::Unauthorized(msg.to_owned()))
}

impl<S> Service<Request> for Auth<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let admin = req.uri().path().starts_with("/admin");
        let token = presented(req.headers()).map(str::to_owned);
        let master = self.layer.master.clone();
        let keys = self.layer.keys.clone();
        Box::pin(async move {
            let is_master = |t: &str| {
                master
                    .as_ref()
                    .is_some_and(|m| bool::from(t.as_bytes().ct_eq(m.expose().as_bytes())))
            };
            let key = match token.as_deref() {
                Some(t) if is_master(t) => None,
                Some(t) if t.starts_with(KEY_PREFIX) => match keys.lookup(t).await {
                    Ok(Some(k)) if k.expired(crate::usage::now_ms()) => {
                        return Ok(unauthorized(
                            "this API key has expired; ask the gateway's operator for a new one",
                        ));
                    }
                    Ok(Some(k)) => Some(k),
                    Ok(None) => {
                        return Ok(unauthorized(
                            "the API key is not valid for this gateway (unknown or deleted)",
                        ));
                    }
                    Err(e) => {
                        tracing::warn!("key lookup failed: {e}");
                        return Ok(error_response(&GatewayError::Internal(
                            "the key store could not be reached; see the gateway's log".into(),
                        )));
                    }
                },
                // An open gateway lets anything through (SDKs insist on sending some key).
                _ if master.is_none() => None,
                Some(_) => return Ok(unauthorized("the API key is not valid for this gateway")),
                None => {
                    return Ok(unauthorized(
                        "missing API key: send `Authorization: Bearer <key>` with the gateway's PROXYGATE_MASTER_KEY or a virtual key",
                    ));
                }
            };
            if admin && key.is_some() {
                return Ok(error_response(&GatewayError::Forbidden(
                    "only the master key (PROXYGATE_MASTER_KEY) may use /admin".into(),
                )));
            }
            let grant = Arc::new(Grant::new(key));
            req.extensions_mut().insert(grant.clone());
            let mut resp = inner.call(req).await?;
            if let Some((requests, tokens)) = grant.remaining() {
                let h = resp.headers_mut();
                if let Some(n) = requests {
                    h.insert("x-ratelimit-remaining-requests", HeaderValue::from(n));
                }
                if let Some(n) = tokens {
                    h.insert("x-ratelimit-remaining-tokens", HeaderValue::from(n));
                }
            }
            Ok(resp)
        })
    }
}

/// The caller's grant, which [`Auth`] put in the request's extensions.
pub fn grant<B>(req: &http::Request<B>) -> Option<Arc<Grant>> {
    req.extensions().get::<Arc<Grant>>().cloned()
}

/// Puts the caller's grant into a decoded request's context (and the key id the usage
/// records carry). Every endpoint that decodes a request calls it.
pub fn attach(grant: Option<Arc<Grant>>, ctx: &mut crate::types::RequestContext) {
    if let Some(grant) = grant {
        ctx.key_id = grant.key_id();
        ctx.access = Some(grant);
    }
}
