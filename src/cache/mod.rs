//! The response cache: an exact-match cache of whole answers,
//! keyed by the SHA-256 of the canonical request ([`cache_key`]: endpoint, model, messages
//! and every parameter that changes the answer; not `user`, not `stream`). It exists so a
//! repeated question costs nothing and takes no upstream round trip.
//!
//! Entries live in the [`StateBackend`](crate::shared::StateBackend): a bounded in-process
//! cache (moka, weighed in bytes, `CACHE_MAX_BYTES`) and, with `REDIS_URL`, Redis behind it,
//! so an answer cached through one replica is a hit on every other. Each entry lives
//! `CACHE_TTL_MS`. A whole answer is kept when it arrives; a streamed one when its stream
//! ends cleanly (rebuilt from its chunks on the side, nothing is buffered on the way to the
//! client). A hit is served whole, or replayed as chunks to a client that asked to stream.
//!
//! The client has a say through [`CacheControl`](crate::types::CacheControl):
//! `cache-control: no-cache` skips the lookup, `no-store` the keeping, and
//! `x-proxygate-cache: bypass` both. Hits carry `meta.cache_hit`, so the edge answers
//! `x-proxygate-cache: hit` and the cost layer records them at cost 0.
//!
//! # Where it sits
//! The cache sits directly *under* the
//! [`CostLayer`](crate::cost::CostLayer), so that every answer, hit or miss, goes through
//! the one accounting path: a hit is recorded (as `cache_hit`, cost 0, counted in
//! `proxygate_cache_hits_total` and `/v1/usage`) by the same code that records a miss, and
//! the cache itself keeps the router's raw answer, before any cost was added to it.
//!
//! # Example
//!
//! ```
//! # async fn run() {
//! use std::sync::Arc;
//! use proxygate::cache::CacheLayer;
//! use proxygate::providers::mock::Mock;
//! use proxygate::shared::InProcess;
//!
//! let backend = Arc::new(InProcess::new(64 << 20, std::time::Duration::from_secs(3600)));
//! let cached = tower::ServiceBuilder::new()
//!     .layer(CacheLayer::new(backend, 64 << 20))
//!     .service(Mock::default());
//! # drop(cached);
//! # }
//! ```

mod body;
mod future;
mod key;
mod layer;

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tower::Service;

pub use body::{Recording, replay};
pub use future::ResponseFuture;
pub use key::{cache_key, cache_key_for};
pub use layer::CacheLayer;

use crate::GatewayError;
use crate::catalog::Catalog;
use crate::shared::StateBackend;
use crate::types::{ChatReply, ChatRequest, ChatResponse, EmbeddingResponse, ReplyBody, ReplyMeta};

/// Answers from the cache when it can, and keeps what the inner service answers; see the
/// [module docs](self).
#[derive(Clone, Debug)]
pub struct Cache<S> {
    inner: S,
    store: Option<Store>,
}

// === impl Cache ===

impl<S> Cache<S> {
    /// Caches `inner`'s answers in `store`; `None` passes every request through.
    pub(crate) fn new(inner: S, store: Option<Store>) -> Self {
        Self { inner, store }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> Service<ChatRequest> for Cache<S>
where
    S: Service<ChatRequest, Response = ChatReply, Error = GatewayError> + Clone,
{
    type Response = ChatReply;
    type Error = GatewayError;
    type Future = ResponseFuture<S, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        let Some(store) = &self.store else {
            return ResponseFuture::calling(self.inner.call(req), None);
        };
        let control = req.ctx.cache;
        if control.is_bypass() {
            return ResponseFuture::calling(self.inner.call(req), None);
        }
        let key = cache_key_for(&req, store.shared);
        let stream = req.is_stream();
        let pending = |key: String| {
            (!control.no_store).then(|| Pending {
                store: store.clone(),
                key,
                served_by: None,
            })
        };
        if !control.no_lookup {
            if let Some(reply) = store
                .backend
                .cache_local(&key)
                .and_then(|b| store.decode(&b, stream))
            {
                return ResponseFuture::hit(reply);
            }
            if let Some(lookup) = store.backend.cache_remote(&key) {
                // Take the instance `poll_ready` readied into the future; leave a fresh clone.
                let fresh = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, fresh);
                return ResponseFuture::lookup(
                    lookup,
                    req,
                    inner,
                    store.clone(),
                    stream,
                    pending(key),
                );
            }
        }
        ResponseFuture::calling(self.inner.call(req), pending(key))
    }
}

/// Where entries go, and how they are written and read.
#[derive(Clone, Debug)]
pub(crate) struct Store {
    backend: Arc<dyn StateBackend>,
    max_entry_bytes: usize,
    /// Callers share entries (`CACHE_SHARED`).
    shared: bool,
}

/// A cache entry: the answer (a completion, or embeddings) and what served it.
#[derive(Serialize)]
struct EntryRef<'a> {
    provider: &'a str,
    deployment: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<&'a ChatResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    embeddings: Option<&'a EmbeddingResponse>,
}

#[derive(Deserialize)]
struct Entry {
    provider: String,
    deployment: String,
    #[serde(default)]
    response: Option<ChatResponse>,
    #[serde(default)]
    embeddings: Option<EmbeddingResponse>,
}

impl Store {
    /// Entries in `backend`, none larger than `max_entry_bytes`.
    pub(crate) fn new(backend: Arc<dyn StateBackend>, max_entry_bytes: usize) -> Self {
        Self {
            backend,
            max_entry_bytes,
            shared: false,
        }
    }

    /// A cached answer as the reply to a request that does (`stream`) or does not stream.
    fn decode(&self, bytes: &Bytes, stream: bool) -> Option<ChatReply> {
        let entry: Entry = serde_json::from_slice(bytes).ok()?;
        let meta = ReplyMeta {
            // A provider name outside the catalog cannot be made static: call it `cache`.
            provider: Catalog::default()
                .provider(&entry.provider)
                .map_or("cache", |p| p.name),
            deployment: entry.deployment.into(),
            attempts: 0,
            cost_usd: None,
            cache_hit: true,
        };
        if let Some(embeddings) = entry.embeddings {
            return Some(ChatReply {
                meta,
                body: ReplyBody::Embeddings(embeddings),
            });
        }
        let response = entry.response?;
        Some(if stream {
            ChatReply::stream(meta, replay(response))
        } else {
            ChatReply::complete(meta, response)
        })
    }
}

/// The right to keep the answer to one request under its key.
#[derive(Debug)]
pub(crate) struct Pending {
    store: Store,
    key: String,
    // Provider and deployment that served the answer, once known.
    served_by: Option<(&'static str, Arc<str>)>,
}

impl Pending {
    fn max_entry_bytes(&self) -> usize {
        self.store.max_entry_bytes
    }

    /// Takes the reply on its way up: keeps a whole answer now, a stream when it ends.
    fn keep(mut self, reply: ChatReply) -> ChatReply {
        self.served_by = Some((reply.meta.provider, reply.meta.deployment.clone()));
        let body = match reply.body {
            ReplyBody::Complete(resp) => {
                self.put(&resp);
                ReplyBody::Complete(resp)
            }
            ReplyBody::Raw(raw) => {
                if let Ok(resp) = raw.decode(reply.meta.provider) {
                    self.put(&resp);
                }
                ReplyBody::Raw(raw)
            }
            ReplyBody::Stream(s) => ReplyBody::Stream(Box::pin(Recording::new(s, self))),
            ReplyBody::Embeddings(e) => {
                self.write(None, Some(&e));
                ReplyBody::Embeddings(e)
            }
        };
        ChatReply {
            meta: reply.meta,
            body,
        }
    }

    /// Writes the entry (unless it is larger than an entry may be).
    fn put(self, resp: &ChatResponse) {
        self.write(Some(resp), None);
    }

    fn write(self, response: Option<&ChatResponse>, embeddings: Option<&EmbeddingResponse>) {
        let (provider, deployment) = match &self.served_by {
            Some((p, d)) => (*p, d.as_ref()),
            None => ("", ""),
        };
        let entry = EntryRef {
            provider,
            deployment,
            response,
            embeddings,
        };
        match serde_json::to_vec(&entry) {
            Ok(v) if v.len() <= self.store.max_entry_bytes => {
                self.store.backend.cache_put(self.key, Bytes::from(v));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
