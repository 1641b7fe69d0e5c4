//! `POST /v1/responses` (and `/responses`): OpenAI's Responses API served on every provider
//! (OpenAI's API reference, "Responses").
//!
//! The request is decoded into the canonical [`ChatRequest`] (instructions and
//! system/developer messages, message, function call, function call output and reasoning
//! items, function tools with namespace tools flattened) with `ctx.endpoint = Responses`, sent
//! through the same stack as chat (auth, model guard, limits, budgets, cost, usage, router,
//! failover, breakers; the response cache is bypassed), and the canonical answer is encoded as
//! a `Response` object or its streaming events. Hosted tools (`web_search`, `file_search`, ...)
//! are dropped and named in `x-proxygate-dropped-tools`; a `tool_choice` forcing one is a 400
//! unless an OpenAI or Azure deployment serves the model, which gets it by pass-through.
//! Reasoning state travels in `reasoning` items' `encrypted_content` when `include` asks for
//! `reasoning.encrypted_content` (see [`opaque`]).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use tower::ServiceExt;

use super::encode::{error_response, meta_headers, sse_response};
use super::{EdgeContext, RequestGuard, StreamMetrics};
use crate::GatewayError;
use crate::providers::NATIVE_KEY;
use crate::telemetry::names;
use crate::types::responses::{CreateResponse, Input, items_from_values};
use crate::types::{Api, CacheControl, ReplyBody, check_model};

pub mod decode;
pub mod encode;
pub mod opaque;
pub mod sse;
pub mod store;

pub use decode::{Decoded, decode};
pub use encode::Shape;
pub use sse::ResponsesSse;

/// The header naming the hosted tools removed from a translated request.
pub const DROPPED_TOOLS: &str = "x-proxygate-dropped-tools";

/// Parses the body; input items get their index in the error.
pub fn parse(body: &[u8]) -> Result<CreateResponse, GatewayError> {
    let mut raw: serde_json::Map<String, serde_json::Value> = super::decode::parse(body)?;
    // Items are read one by one so an error names the item, and typeless messages are accepted.
    let input = match raw.remove("input") {
        Some(serde_json::Value::Array(values)) => Some(Input::Items(
            items_from_values(values).map_err(|(i, e)| {
                GatewayError::invalid(format!("input[{i}]"), format!("is not a valid item: {e}"))
            })?,
        )),
        Some(serde_json::Value::String(s)) => Some(Input::Text(s)),
        Some(serde_json::Value::Null) | None => None,
        Some(_) => {
            return Err(GatewayError::invalid(
                "input",
                "must be a string or an array of items",
            ));
        }
    };
    // Read again through the strict decoder, so a wrong type names its field.
    let rest = serde_json::to_vec(&raw)
        .map_err(|e| GatewayError::Internal(format!("re-encoding a request: {e}")))?;
    let mut req: CreateResponse = super::decode::parse(&rest)?;
    check_model(&req.model)?;
    req.input = input;
    Ok(req)
}

/// `POST /v1/responses`.
pub async fn create(State(state): State<Arc<EdgeContext>>, req: Request) -> Response {
    let mut guard = RequestGuard::new(Api::Responses.as_str());
    let started = Instant::now();
    let fail = |guard: &mut RequestGuard, e: &GatewayError| {
        guard.status = e.status().as_u16();
        guard.record();
        error_response(e)
    };
    let request_id = super::request_id(&req);
    let grant = super::auth::grant(&req);
    let body = match super::decode::read_body(req, state.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return fail(&mut guard, &e),
    };
    let create = match parse(&body) {
        Ok(r) => r,
        Err(e) => return fail(&mut guard, &e),
    };
    let owner = store::owner(&state, grant.as_deref());
    // Which providers serve the model: OpenAI and Azure deployments serve the Responses API
    // themselves and know the ids they minted.
    let natives = state
        .registry
        .resolve(&create.model)
        .map(|ds| {
            let native = ds
                .iter()
                .filter(|d| matches!(d.provider().name, "openai" | "azure"))
                .count();
            (native > 0, native == ds.len() && native > 0)
        })
        .unwrap_or((false, false));
    // A `previous_response_id` the store does not hold was minted by the upstream: it goes
    // with the client's body when every deployment of the model is OpenAI or Azure.
    let mut foreign_previous = false;
    let mut items = match &create.previous_response_id {
        Some(prev) => match store::previous_items(&state, &owner, prev).await {
            Ok(items) => items,
            Err(resp) if resp.status() == StatusCode::NOT_FOUND && natives.1 => {
                foreign_previous = true;
                Vec::new()
            }
            Err(resp) => {
                guard.status = resp.status().as_u16();
                guard.record();
                return resp;
            }
        },
        None => Vec::new(),
    };
    items.extend(
        create
            .input
            .clone()
            .map(Input::into_items)
            .unwrap_or_default(),
    );
    // A model an OpenAI or Azure deployment serves takes the client's body as it is (hosted
    // tools included) unless the conversation continues a response stored here.
    let hosted_served = (create.previous_response_id.is_none() && natives.0) || foreign_previous;
    let decoded = match decode(&create, &items, hosted_served) {
        Ok(d) => d,
        Err(e) => return fail(&mut guard, &e),
    };
    let Decoded {
        mut chat,
        dropped_tools,
        namespaces,
        tools,
    } = decoded;
    chat.ctx.endpoint = Api::Responses;
    chat.ctx.request_id = request_id;
    chat.ctx.cache = CacheControl {
        no_lookup: true,
        no_store: true,
        vary: 0,
    };
    super::auth::attach(grant, &mut chat.ctx);
    // An OpenAI or Azure deployment serves the Responses API itself and gets the client's body, unless
    // the conversation was continued from a response stored here.
    let passthrough = create.previous_response_id.is_none() || foreign_previous;
    if passthrough {
        chat.ctx.native_body = Some(body);
    }
    let mut shape = Shape::new(&create, tools, namespaces);
    // What a stored response keeps: every input item (the previous conversation's included).
    let keep = create
        .is_stored()
        .then(|| store::store(&state))
        .flatten()
        .map(|s| {
            store::with_ids(&mut items);
            (s, owner, state.responses_ttl_days, items)
        });
    // A stored response keeps the provider's reasoning state in its reasoning items, so that
    // `previous_response_id` gives the provider its thinking blocks and thought signatures back
    // (Anthropic and Gemini 3 refuse a tool turn without them).
    if keep.is_some() {
        shape.encrypted = true;
    }
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
    // The deployment answered in the Responses API itself: relayed as it came, stored there.
    let native = passthrough && matches!(meta.provider, "openai" | "azure");
    let keep = keep.filter(|_| !native);
    let mut out = match body {
        ReplyBody::Complete(resp) => {
            if native
                && let Some(raw) = resp
                    .extra
                    .get(NATIVE_KEY)
                    .and_then(serde_json::Value::as_str)
            {
                guard.status = 200;
                guard.record();
                let mut out = Response::new(axum::body::Body::from(raw.to_owned()));
                out.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                meta_headers(&mut out, &meta);
                return out;
            }
            let response = encode::complete(&shape, &resp);
            if let Some((s, owner, ttl, items)) = keep
                && let Err(e) = store::save(&s, owner, ttl, &items, &response).await
            {
                tracing::warn!(error = %e.0, "stored responses: write failed");
                let resp = store::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    None,
                    "store_unavailable",
                    "the response could not be stored; retry, or send `store: false`",
                );
                guard.status = 503;
                guard.record();
                return resp;
            }
            guard.status = 200;
            guard.record();
            axum::Json(response).into_response()
        }
        ReplyBody::Stream(s) => {
            guard.status = 200;
            metrics::histogram!(names::TIME_TO_FIRST_TOKEN_SECONDS)
                .record(started.elapsed().as_secs_f64());
            let observer = Box::new(StreamMetrics { guard });
            let on_complete = keep.map(|(s, owner, ttl, items)| -> sse::OnComplete {
                Box::new(move |response| {
                    let response = response.clone();
                    Box::pin(async move {
                        // A failed write leaves the stream intact; the next
                        // `previous_response_id` then gets a 404.
                        if let Err(e) = store::save(&s, owner, ttl, &items, &response).await {
                            tracing::warn!(error = %e.0, "stored responses: write failed");
                        }
                    })
                })
            });
            sse_response(ResponsesSse::new(s, shape, on_complete, Some(observer)))
        }
        // `canonical` decoded it above.
        ReplyBody::Raw(_) => {
            return fail(
                &mut guard,
                &GatewayError::Internal("an undecoded chat completion".into()),
            );
        }
        ReplyBody::Embeddings(_) => {
            return fail(
                &mut guard,
                &GatewayError::Internal("an embeddings answer to a response".into()),
            );
        }
    };
    meta_headers(&mut out, &meta);
    if !native
        && !dropped_tools.is_empty()
        && let Ok(v) = HeaderValue::from_str(&dropped_tools.join(","))
    {
        out.headers_mut().insert(DROPPED_TOOLS, v);
    }
    out
}

#[cfg(test)]
mod tests;
