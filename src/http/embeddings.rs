//! `POST /v1/embeddings`: OpenAI's embeddings API in and out, served through the same stack as
//! chat (cost, routing with only embedding-mode deployments, failover, breakers), the request
//! riding in the canonical request's context ([`RequestContext::embedding`]).
//!
//! [`RequestContext::embedding`]: crate::types::RequestContext::embedding
//!
//! # Example
//!
//! ```
//! use proxygate::http::embeddings::chat_request;
//! use proxygate::types::EmbeddingRequest;
//!
//! let emb: EmbeddingRequest =
//!     serde_json::from_value(serde_json::json!({"model": "mock/embed", "input": ["a", "b"]})).unwrap();
//! let req = chat_request(emb);
//! assert_eq!(req.ctx.embedding.as_ref().unwrap().input.len(), 2);
//! assert_eq!(req.ctx.endpoint, proxygate::types::Api::Embeddings);
//! ```

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;

use super::encode::meta_headers;
use super::{EdgeContext, RequestGuard, decode, fail};
use crate::GatewayError;
use crate::types::Api;
use crate::types::{ChatRequest, EmbeddingRequest, ReplyBody};

/// The canonical request that carries `emb` through the stack.
pub fn chat_request(emb: EmbeddingRequest) -> ChatRequest {
    let mut req = ChatRequest {
        model: emb.model.clone(),
        ..ChatRequest::default()
    };
    req.ctx.endpoint = Api::Embeddings;
    req.ctx.embedding = Some(Arc::new(emb));
    req
}

/// `POST /v1/embeddings`.
pub async fn embeddings(State(state): State<Arc<EdgeContext>>, req: Request) -> Response {
    let mut guard = RequestGuard::new(Api::Embeddings.as_str());
    let request_id = super::request_id(&req);
    let grant = super::auth::grant(&req);
    let cache = crate::types::CacheControl::from_headers(req.headers());
    let body = match decode::read_body(req, state.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return fail(&mut guard, &e),
    };
    let emb: EmbeddingRequest = match decode::parse(&body).and_then(|e: EmbeddingRequest| {
        e.validate()?;
        Ok(e)
    }) {
        Ok(e) => e,
        Err(e) => return fail(&mut guard, &e),
    };
    drop(body);
    let base64 = emb.wants_base64();
    let mut chat = chat_request(emb);
    chat.ctx.request_id = request_id;
    super::auth::attach(grant, &mut chat.ctx);
    chat.ctx.cache = cache;
    let reply = match state.chat.clone().oneshot(chat).await {
        Ok(r) => r,
        Err(e) => return fail(&mut guard, &e),
    };
    guard.provider = reply.meta.provider;
    guard.model = reply.meta.deployment.clone().into();
    let ReplyBody::Embeddings(resp) = reply.body else {
        return fail(
            &mut guard,
            &GatewayError::Internal("a chat answer to an embeddings request".into()),
        );
    };
    guard.status = 200;
    let mut out = axum::Json(resp.to_client_json(base64)).into_response();
    meta_headers(&mut out, &reply.meta);
    guard.record();
    out
}
