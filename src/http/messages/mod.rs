//! `POST /v1/messages` and `POST /v1/messages/count_tokens`: Anthropic's Messages API served to
//! Anthropic SDK clients, whichever provider answers (Anthropic's Messages API reference).
//!
//! The Anthropic request is decoded into the canonical [`ChatRequest`] (with
//! `ctx.endpoint = Messages` and the client's own body in `ctx.native_body`), sent through the
//! same stack as chat — cost, routing, failover, breakers, timeouts — and the canonical answer
//! is encoded back as an Anthropic message or Anthropic SSE events. An Anthropic deployment
//! passes the client's body through unchanged apart from `model` and hands back its own
//! message or events ([`NATIVE_KEY`]), so nothing is lost in a round trip. Errors on these
//! routes have Anthropic's shape `{"type":"error","error":{"type","message"}}`.
//!
//! # Example
//!
//! ```
//! use proxygate::http::messages::MessagesRequest;
//!
//! let req: MessagesRequest = serde_json::from_value(serde_json::json!({
//!     "model": "mock/echo", "max_tokens": 64, "system": "Be terse.",
//!     "messages": [{"role": "user", "content": "Hi"}]
//! })).unwrap();
//! let chat = req.into_chat().unwrap();
//! assert_eq!(chat.messages.len(), 2); // the system prompt, then the user turn
//! assert_eq!(chat.max_tokens, Some(64));
//! ```

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::encode::{meta_headers, sse_response};
use super::{EdgeContext, RequestGuard, StreamMetrics};
use crate::GatewayError;
use crate::telemetry::names;
use crate::tokens::PromptText;
use crate::types::Api as Endpoint;
use crate::types::ReplyBody;

mod decode;
mod encode;
mod sse;
#[cfg(test)]
mod tests;

pub use decode::{InContent, InMessage, InRole, InTool, MessagesRequest, requested_effort};
pub use encode::to_anthropic;
use encode::*;
pub use sse::MessagesSse;

// === errors ===

/// Anthropic's `error.type` for a status.
fn anthropic_error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        _ => "api_error",
    }
}

/// The Anthropic error body for `status` and `message`.
fn error_body(status: StatusCode, message: &str) -> Value {
    // Upstream messages may echo a provider key: never let one through.
    let message = crate::redact::redact(message);
    json!({"type": "error", "error": {"type": anthropic_error_type(status), "message": message}})
}

/// An error as an Anthropic client sees it, with `retry-after` when there is one.
pub fn error_response(err: &GatewayError) -> Response {
    // The OpenAI-shaped response carries the status and `retry-after`; only the body changes.
    let mut resp = super::encode::error_response(err);
    *resp.body_mut() = Body::from(error_body(err.status(), &err.to_string()).to_string());
    resp.headers_mut().remove(header::CONTENT_LENGTH);
    resp
}

/// Rewrites error responses made before the handler ran (the master key check, limits) from
/// the OpenAI envelope to Anthropic's shape, so every error on these routes has one shape.
pub async fn anthropic_errors(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = http_body_util::BodyExt::collect(body)
        .await
        .map(|c| c.to_bytes())
    else {
        return Response::from_parts(parts, Body::empty());
    };
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if v.get("type").and_then(Value::as_str) == Some("error") {
        return Response::from_parts(parts, Body::from(bytes));
    }
    let message = v
        .get("error")
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error"))
        .to_owned();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(error_body(status, &message).to_string()))
}

// === handlers ===

/// Parses the body: serde's errors name the field; `max_tokens` is checked by the caller.
fn parse(body: &[u8]) -> Result<(MessagesRequest, bool), GatewayError> {
    let req: MessagesRequest = super::decode::parse(body)?;
    let stream = req.stream.unwrap_or(false);
    Ok((req, stream))
}

/// `POST /v1/messages`.
pub async fn messages(State(state): State<Arc<EdgeContext>>, req: Request) -> Response {
    let mut guard = RequestGuard::new(Endpoint::Messages.as_str());
    let started = Instant::now();
    let fail = |guard: &mut RequestGuard, e: &GatewayError| {
        guard.status = e.status().as_u16();
        guard.record();
        error_response(e)
    };
    let request_id = super::request_id(&req);
    let grant = super::auth::grant(&req);
    let beta = req.headers().get("anthropic-beta").cloned();
    let cache = crate::types::CacheControl::from_headers(req.headers());
    let body = match super::decode::read_body(req, state.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return fail(&mut guard, &e),
    };
    let (anthropic, stream) = match parse(&body) {
        Ok(r) => r,
        Err(e) => return fail(&mut guard, &e),
    };
    match anthropic.max_tokens {
        None => {
            return fail(
                &mut guard,
                &GatewayError::invalid(
                    "max_tokens",
                    "is required (the Messages API has no default)",
                ),
            );
        }
        Some(0) => {
            return fail(
                &mut guard,
                &GatewayError::invalid("max_tokens", "must be at least 1"),
            );
        }
        Some(_) => {}
    }
    // Answers name the model the client asked for: Claude Code drops a turn's thinking blocks
    // when the answer names another.
    let client_model = anthropic.model.clone();
    let mut chat = match anthropic.into_chat() {
        Ok(c) => c,
        Err(e) => return fail(&mut guard, &e),
    };
    chat.ctx.endpoint = Endpoint::Messages;
    chat.ctx.request_id = request_id;
    super::auth::attach(grant, &mut chat.ctx);
    chat.ctx.native_body = Some(body);
    chat.ctx.native_beta = beta;
    chat.ctx.cache = cache;
    let prompt_estimate = if stream {
        PromptText::of(&chat).tokens()
    } else {
        0
    };
    let reply = match state.chat.clone().oneshot(chat).await {
        Ok(r) => r,
        Err(e) => return fail(&mut guard, &e),
    };
    guard.provider = reply.meta.provider;
    guard.model = reply.meta.deployment.clone().into();
    let meta = reply.meta;
    // A chat completion kept as the upstream's bytes is decoded for this API's encoder.
    let body = match reply.body.canonical(meta.provider) {
        Ok(b) => b,
        Err(e) => return fail(&mut guard, &e),
    };
    match body {
        ReplyBody::Complete(resp) => {
            guard.status = 200;
            let mut out = complete_response(&resp, &client_model);
            meta_headers(&mut out, &meta);
            guard.record();
            out
        }
        ReplyBody::Stream(s) => {
            guard.status = 200;
            metrics::histogram!(names::TIME_TO_FIRST_TOKEN_SECONDS)
                .record(started.elapsed().as_secs_f64());
            let observer = Box::new(StreamMetrics { guard });
            let sse = MessagesSse::new(s, prompt_estimate, Some(observer)).naming(client_model);
            let mut out = sse_response(sse);
            meta_headers(&mut out, &meta);
            out
        }
        ReplyBody::Embeddings(_) => fail(
            &mut guard,
            &GatewayError::Internal("an embeddings answer to a message".into()),
        ),
        // `canonical` decoded it above.
        ReplyBody::Raw(_) => fail(
            &mut guard,
            &GatewayError::Internal("an undecoded chat completion".into()),
        ),
    }
}

/// `POST /v1/messages/count_tokens`: the tokenizer's count of system, messages and tools,
/// without an upstream call.
pub async fn count_tokens(State(state): State<Arc<EdgeContext>>, req: Request) -> Response {
    let grant = super::auth::grant(&req);
    let body = match super::decode::read_body(req, state.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return error_response(&e),
    };
    let mut chat = match parse(&body).and_then(|(r, _)| r.into_chat()) {
        Ok(c) => c,
        Err(e) => return error_response(&e),
    };
    // Known models only, so a typo is a 404 here as it would be on /v1/messages.
    if let Err(e) = state.registry.resolve(&chat.model) {
        return error_response(&e);
    }
    let tokens = PromptText::of(&chat).tokens();
    // The key's allowed models and rate limits, as on /v1/messages.
    chat.ctx.endpoint = crate::types::Api::Messages;
    super::auth::attach(grant, &mut chat.ctx);
    if let Err(e) = state.count.clone().oneshot(chat).await {
        return error_response(&e);
    }
    axum::Json(json!({"input_tokens": tokens})).into_response()
}
