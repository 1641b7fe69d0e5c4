//! `POST /v1/messages` and `POST /v1/messages/count_tokens`: Anthropic's Messages API served to
//! Anthropic SDK clients, whichever provider answers.
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

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_core::Stream;
use http::{HeaderValue, StatusCode, header};
use pin_project_lite::pin_project;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tower::ServiceExt;

use super::encode::{StreamObserver, format_cost, meta_headers, sse_response};
use super::{AppState, RequestGuard, StreamMetrics, decode};
use crate::GatewayError;
use crate::cost::tokens::PromptText;
use crate::providers::NATIVE_KEY;
use crate::telemetry::names;
use crate::types::Api;
use crate::types::{
    ChatChunk, ChatRequest, ChatResponse, ChatStream, Content, ContentPart, FunctionCall,
    FunctionDef, ImageUrl, Message, ReplyBody, Role, Stop, Tool, ToolCall,
};

// === the inbound request ===

/// An Anthropic Messages request as clients send it.
#[derive(Debug, Deserialize)]
pub struct MessagesRequest {
    /// The model.
    pub model: String,
    /// Output cap; required on `/v1/messages`, ignored by `count_tokens`.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// The conversation.
    pub messages: Vec<InMessage>,
    /// The system prompt: a string or text blocks.
    #[serde(default)]
    pub system: Option<InContent>,
    /// Stop sequences.
    #[serde(default)]
    pub stop_sequences: Option<Vec<String>>,
    /// Stream as SSE.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Top-k sampling.
    #[serde(default)]
    pub top_k: Option<u64>,
    /// `{"user_id": ...}`.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    /// Tools.
    #[serde(default)]
    pub tools: Option<Vec<InTool>>,
    /// `{"type":"auto"|"any"|"tool"|"none", "name", "disable_parallel_tool_use"}`.
    #[serde(default)]
    pub tool_choice: Option<Map<String, Value>>,
}

/// One message: `user` or `assistant`.
#[derive(Debug, Deserialize)]
pub struct InMessage {
    /// `user` or `assistant`.
    pub role: InRole,
    /// A string or content blocks.
    pub content: InContent,
}

/// The two roles of the Messages API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InRole {
    /// The human.
    User,
    /// The model.
    Assistant,
}

/// A string, or typed blocks.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum InContent {
    /// Plain text.
    Text(String),
    /// Blocks (`text`, `image`, `tool_use`, `tool_result`, ...).
    Blocks(Vec<Map<String, Value>>),
}

/// A tool definition.
#[derive(Debug, Deserialize)]
pub struct InTool {
    /// Its name.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: Option<String>,
    /// JSON schema of its input.
    #[serde(default)]
    pub input_schema: Option<Value>,
}

fn str_field<'a>(block: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    block.get(key).and_then(Value::as_str)
}

/// The text of a string or of text blocks.
fn joined_text(content: &InContent) -> String {
    match content {
        InContent::Text(s) => s.clone(),
        InContent::Blocks(blocks) => blocks
            .iter()
            .filter(|b| str_field(b, "type") == Some("text"))
            .filter_map(|b| str_field(b, "text"))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

impl MessagesRequest {
    /// The canonical request: system prompt first, each `tool_result` as a `tool` message,
    /// `tool_use` blocks as tool calls with their input as the arguments string.
    pub fn into_chat(self) -> Result<ChatRequest, GatewayError> {
        if self.model.trim().is_empty() {
            return Err(GatewayError::invalid("model", "must be a non-empty string"));
        }
        if self.messages.is_empty() {
            return Err(GatewayError::invalid(
                "messages",
                "must contain at least one message",
            ));
        }
        if let Some(t) = self.temperature
            && !(0.0..=1.0).contains(&t)
        {
            return Err(GatewayError::invalid(
                "temperature",
                "must be between 0 and 1",
            ));
        }
        let mut messages = Vec::with_capacity(self.messages.len() + 1);
        if let Some(system) = &self.system {
            let text = joined_text(system);
            if !text.is_empty() {
                messages.push(Message::text(Role::System, text));
            }
        }
        for (i, m) in self.messages.into_iter().enumerate() {
            match m.role {
                InRole::User => user_messages(i, m.content, &mut messages)?,
                InRole::Assistant => messages.push(assistant_message(i, m.content)?),
            }
        }
        let mut extra = Map::new();
        if let Some(k) = self.top_k {
            extra.insert("top_k".into(), k.into());
        }
        if let Some(user) = self
            .metadata
            .as_ref()
            .and_then(|m| m.get("user_id"))
            .and_then(Value::as_str)
        {
            extra.insert("user".into(), user.into());
        }
        let tools = self.tools.map(|tools| {
            tools
                .into_iter()
                .map(|t| Tool {
                    kind: "function".into(),
                    function: FunctionDef {
                        name: t.name,
                        description: t.description,
                        parameters: t.input_schema,
                        extra: Map::new(),
                    },
                })
                .collect::<Vec<_>>()
        });
        let tool_choice = match &self.tool_choice {
            None => None,
            Some(c) => {
                if c.get("disable_parallel_tool_use") == Some(&Value::Bool(true)) {
                    extra.insert("parallel_tool_calls".into(), false.into());
                }
                match str_field(c, "type") {
                    Some("auto") => Some(json!("auto")),
                    Some("any") => Some(json!("required")),
                    Some("none") => Some(json!("none")),
                    Some("tool") => {
                        let name = str_field(c, "name").ok_or_else(|| {
                            GatewayError::invalid("tool_choice.name", "is required for type `tool`")
                        })?;
                        Some(json!({"type": "function", "function": {"name": name}}))
                    }
                    _ => {
                        return Err(GatewayError::invalid(
                            "tool_choice.type",
                            "must be `auto`, `any`, `tool` or `none`",
                        ));
                    }
                }
            }
        };
        let req = ChatRequest {
            model: self.model,
            messages,
            stream: self.stream,
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            stop: self.stop_sequences.map(Stop::Many),
            tools,
            tool_choice,
            extra,
            ..ChatRequest::default()
        };
        req.validate()?;
        Ok(req)
    }
}

fn user_messages(i: usize, content: InContent, out: &mut Vec<Message>) -> Result<(), GatewayError> {
    let blocks = match content {
        InContent::Text(s) => {
            out.push(Message::text(Role::User, s));
            return Ok(());
        }
        InContent::Blocks(b) => b,
    };
    let mut parts = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let field = |k: &str| format!("messages[{i}].content[{j}].{k}");
        match str_field(b, "type") {
            Some("text") => parts.push(ContentPart {
                kind: "text".into(),
                text: Some(str_field(b, "text").unwrap_or_default().to_owned()),
                image_url: None,
                extra: Map::new(),
            }),
            Some("image") => {
                let source = b.get("source").and_then(Value::as_object);
                let url = match source.and_then(|s| str_field(s, "type")) {
                    Some("base64") => {
                        let s = source.unwrap_or(b);
                        format!(
                            "data:{};base64,{}",
                            str_field(s, "media_type").unwrap_or("image/png"),
                            str_field(s, "data").unwrap_or_default()
                        )
                    }
                    Some("url") => source
                        .and_then(|s| str_field(s, "url"))
                        .unwrap_or_default()
                        .to_owned(),
                    _ => {
                        return Err(GatewayError::invalid(
                            field("source.type"),
                            "must be `base64` or `url`",
                        ));
                    }
                };
                parts.push(ContentPart {
                    kind: "image_url".into(),
                    text: None,
                    image_url: Some(ImageUrl { url, detail: None }),
                    extra: Map::new(),
                });
            }
            Some("tool_result") => {
                let id = str_field(b, "tool_use_id")
                    .ok_or_else(|| GatewayError::invalid(field("tool_use_id"), "is required"))?;
                let mut text = match b.get("content") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(items)) => items
                        .iter()
                        .filter_map(|v| v.get("text").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join("\n"),
                    _ => String::new(),
                };
                if b.get("is_error") == Some(&Value::Bool(true)) {
                    text = format!("Error: {text}");
                }
                // OpenAI wants tool results right after the call, before any new user text.
                out.push(Message {
                    tool_call_id: Some(id.to_owned()),
                    ..Message::text(Role::Tool, text)
                });
            }
            // Documents, thinking and server-tool blocks have no OpenAI equivalent.
            _ => {}
        }
    }
    if !parts.is_empty() {
        let all_text = parts.iter().all(|p| p.kind == "text");
        let content = if all_text {
            Content::Text(
                parts
                    .iter()
                    .filter_map(|p| p.text.as_deref())
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        } else {
            Content::Parts(parts)
        };
        out.push(Message {
            content: Some(content),
            ..Message::text(Role::User, "")
        });
    }
    Ok(())
}

fn assistant_message(i: usize, content: InContent) -> Result<Message, GatewayError> {
    let blocks = match content {
        InContent::Text(s) => return Ok(Message::text(Role::Assistant, s)),
        InContent::Blocks(b) => b,
    };
    let mut text = String::new();
    let mut calls = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        match str_field(b, "type") {
            Some("text") => text.push_str(str_field(b, "text").unwrap_or_default()),
            Some("tool_use") => {
                let id = str_field(b, "id").ok_or_else(|| {
                    GatewayError::invalid(format!("messages[{i}].content[{j}].id"), "is required")
                })?;
                let name = str_field(b, "name").ok_or_else(|| {
                    GatewayError::invalid(format!("messages[{i}].content[{j}].name"), "is required")
                })?;
                let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(ToolCall {
                    extra_content: None,
                    id: id.to_owned(),
                    kind: "function".into(),
                    function: FunctionCall {
                        name: name.to_owned(),
                        arguments: input.to_string(),
                    },
                });
            }
            _ => {}
        }
    }
    let mut m = Message::text(Role::Assistant, text);
    if !calls.is_empty() {
        if m.text_content().is_empty() {
            m.content = None;
        }
        m.tool_calls = Some(calls);
    }
    Ok(m)
}

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
    let req: MessagesRequest = decode::parse(body)?;
    let stream = req.stream.unwrap_or(false);
    Ok((req, stream))
}

/// `POST /v1/messages`.
pub async fn messages(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let mut guard = RequestGuard::new(Api::Messages.as_str());
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
    let body = match decode::read_body(req, state.max_body_bytes).await {
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
    let mut chat = match anthropic.into_chat() {
        Ok(c) => c,
        Err(e) => return fail(&mut guard, &e),
    };
    chat.ctx.endpoint = Api::Messages;
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
    match reply.body {
        ReplyBody::Complete(resp) => {
            guard.status = 200;
            let mut out = complete_response(&resp);
            meta_headers(&mut out, &meta);
            guard.record();
            out
        }
        ReplyBody::Stream(s) => {
            guard.status = 200;
            metrics::histogram!(names::TIME_TO_FIRST_TOKEN_SECONDS)
                .record(started.elapsed().as_secs_f64());
            let observer = Box::new(StreamMetrics { guard });
            let mut out = sse_response(MessagesSse::new(s, prompt_estimate, Some(observer)));
            meta_headers(&mut out, &meta);
            out
        }
        ReplyBody::Embeddings(_) => fail(
            &mut guard,
            &GatewayError::Internal("an embeddings answer to a message".into()),
        ),
    }
}

/// `POST /v1/messages/count_tokens`: the tokenizer's count of system, messages and tools,
/// without an upstream call.
pub async fn count_tokens(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let body = match decode::read_body(req, state.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return error_response(&e),
    };
    let chat = match parse(&body).and_then(|(r, _)| r.into_chat()) {
        Ok(c) => c,
        Err(e) => return error_response(&e),
    };
    // Known models only, so a typo is a 404 here as it would be on /v1/messages.
    if let Err(e) = state.registry.resolve(&chat.model) {
        return error_response(&e);
    }
    let tokens = PromptText::of(&chat).tokens();
    axum::Json(json!({"input_tokens": tokens})).into_response()
}

// === encoding ===

/// Anthropic's `stop_reason` for an OpenAI `finish_reason`.
pub fn stop_reason(finish: Option<&str>, has_tools: bool) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls") | Some("function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ if has_tools => "tool_use",
        _ => "end_turn",
    }
}

/// `msg_…` from any id.
fn message_id(id: &str) -> String {
    if id.starts_with("msg_") {
        return id.to_owned();
    }
    let tail: String = id
        .rsplit('-')
        .next()
        .unwrap_or(id)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    if tail.is_empty() {
        format!("msg_{:024x}", rand::random::<u128>())
    } else {
        format!("msg_{tail}")
    }
}

/// A tool id the Anthropic SDK accepts: the upstream's when it fits (so a `tool_result`
/// comes back with the id the upstream knows), else a fresh `toolu_…`.
fn tool_id(id: Option<&str>) -> String {
    match id {
        Some(id)
            if !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
        {
            id.to_owned()
        }
        _ => format!("toolu_{:024x}", rand::random::<u128>()),
    }
}

/// The input object of a tool call's arguments string (`{}` when empty or not an object).
fn tool_input(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({}),
    }
}

/// A whole answer as an Anthropic message (or the Anthropic upstream's own, passed through).
fn complete_response(resp: &ChatResponse) -> Response {
    if let Some(Value::String(raw)) = resp.extra.get(NATIVE_KEY) {
        return ([(header::CONTENT_TYPE, "application/json")], raw.clone()).into_response();
    }
    axum::Json(to_anthropic(resp)).into_response()
}

/// The Anthropic message for a canonical response (first choice).
pub fn to_anthropic(resp: &ChatResponse) -> Value {
    let choice = resp.choices.first();
    let mut content = Vec::new();
    let mut has_tools = false;
    if let Some(c) = choice {
        if let Some(text) = c.message.content.as_deref().filter(|t| !t.is_empty()) {
            content.push(json!({"type": "text", "text": text}));
        }
        for call in c.message.tool_calls.iter().flatten() {
            has_tools = true;
            content.push(json!({
                "type": "tool_use",
                "id": tool_id(Some(&call.id)),
                "name": call.function.name,
                "input": tool_input(&call.function.arguments),
            }));
        }
    }
    let usage = resp.usage.clone().unwrap_or_default();
    json!({
        "id": message_id(&resp.id),
        "type": "message",
        "role": "assistant",
        "model": resp.model,
        "content": content,
        "stop_reason": stop_reason(choice.and_then(|c| c.finish_reason.as_deref()), has_tools),
        "stop_sequence": null,
        "usage": {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens},
    })
}

/// One SSE event: `event:` equal to the data's `type`.
fn push_event(buf: &mut Vec<u8>, data: &Value) {
    let kind = data
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message");
    buf.extend_from_slice(b"event: ");
    buf.extend_from_slice(kind.as_bytes());
    buf.extend_from_slice(b"\ndata: ");
    if serde_json::to_writer(&mut *buf, data).is_err() {
        buf.extend_from_slice(b"{}");
    }
    buf.extend_from_slice(b"\n\n");
}

/// A block open in the Anthropic stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Open {
    Text(u32),
    Tool(u32),
}

/// Translates canonical chunks into Anthropic's event sequence; see [`MessagesSse`].
#[derive(Debug, Default)]
struct Translator {
    started: bool,
    native: bool,
    next_block: u32,
    open: Option<Open>,
    // Anthropic block index of each OpenAI tool-call index.
    tools: Vec<(u32, u32)>,
    finish: Option<String>,
    usage: Option<crate::types::Usage>,
    cost: Option<f64>,
    prompt_estimate: u64,
}

impl Translator {
    fn start(&mut self, chunk: &ChatChunk, buf: &mut Vec<u8>) {
        self.started = true;
        push_event(
            buf,
            &json!({"type": "message_start", "message": {
                "id": message_id(&chunk.id), "type": "message", "role": "assistant",
                "model": chunk.model, "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": self.prompt_estimate, "output_tokens": 0}}}),
        );
        push_event(buf, &json!({"type": "ping"}));
    }

    fn close(&mut self, buf: &mut Vec<u8>) {
        if let Some(Open::Text(i) | Open::Tool(i)) = self.open.take() {
            push_event(buf, &json!({"type": "content_block_stop", "index": i}));
        }
    }

    fn chunk(&mut self, mut chunk: ChatChunk, buf: &mut Vec<u8>) {
        if let Some(native) = chunk.extra.remove(NATIVE_KEY) {
            // The Anthropic upstream's own event, as it sent it.
            self.native = true;
            self.started = true;
            let event = native.get("event").and_then(Value::as_str).unwrap_or("");
            let data = native.get("data").and_then(Value::as_str).unwrap_or("{}");
            if !event.is_empty() {
                buf.extend_from_slice(b"event: ");
                buf.extend_from_slice(event.as_bytes());
                buf.push(b'\n');
            }
            buf.extend_from_slice(b"data: ");
            buf.extend_from_slice(data.as_bytes());
            buf.extend_from_slice(b"\n\n");
            return;
        }
        if chunk.is_usage_only() {
            self.cost = chunk.extra.get("cost_usd").and_then(Value::as_f64);
            self.usage = chunk.usage.take();
            return;
        }
        if self.native {
            return; // the passed-through events already said it all
        }
        if !self.started {
            self.start(&chunk, buf);
        }
        for c in &chunk.choices {
            if let Some(text) = c.delta.content.as_deref().filter(|t| !t.is_empty()) {
                let index = match self.open {
                    Some(Open::Text(i)) => i,
                    _ => {
                        self.close(buf);
                        let i = self.next_block;
                        self.next_block += 1;
                        self.open = Some(Open::Text(i));
                        push_event(
                            buf,
                            &json!({"type": "content_block_start", "index": i,
                                "content_block": {"type": "text", "text": ""}}),
                        );
                        i
                    }
                };
                push_event(
                    buf,
                    &json!({"type": "content_block_delta", "index": index,
                        "delta": {"type": "text_delta", "text": text}}),
                );
            }
            for call in c.delta.tool_calls.iter().flatten() {
                let known = self
                    .tools
                    .iter()
                    .find(|(k, _)| *k == call.index)
                    .map(|t| t.1);
                let index = match known {
                    Some(i) => i,
                    None => {
                        self.close(buf);
                        let i = self.next_block;
                        self.next_block += 1;
                        self.tools.push((call.index, i));
                        self.open = Some(Open::Tool(i));
                        let name = call
                            .function
                            .as_ref()
                            .and_then(|f| f.name.as_deref())
                            .unwrap_or_default();
                        push_event(
                            buf,
                            &json!({"type": "content_block_start", "index": i,
                                "content_block": {"type": "tool_use", "id": tool_id(call.id.as_deref()),
                                    "name": name, "input": {}}}),
                        );
                        i
                    }
                };
                if let Some(args) = call
                    .function
                    .as_ref()
                    .and_then(|f| f.arguments.as_deref())
                    .filter(|a| !a.is_empty())
                {
                    push_event(
                        buf,
                        &json!({"type": "content_block_delta", "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": args}}),
                    );
                }
            }
            if let Some(f) = &c.finish_reason {
                self.finish = Some(f.clone());
            }
        }
    }

    fn end(&mut self, buf: &mut Vec<u8>) {
        if self.native {
            if let Some(c) = self.cost {
                buf.extend_from_slice(format!(": cost_usd={}\n\n", format_cost(c)).as_bytes());
            }
            return;
        }
        if !self.started {
            self.start(&ChatChunk::delta("", 0, "", Default::default(), None), buf);
        }
        self.close(buf);
        let usage = self.usage.take().unwrap_or_default();
        let reason = stop_reason(self.finish.as_deref(), !self.tools.is_empty());
        push_event(
            buf,
            &json!({"type": "message_delta",
                "delta": {"stop_reason": reason, "stop_sequence": null},
                "usage": {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens}}),
        );
        if let Some(c) = self.cost {
            buf.extend_from_slice(format!(": cost_usd={}\n\n", format_cost(c)).as_bytes());
        }
        push_event(buf, &json!({"type": "message_stop"}));
    }

    fn error(&mut self, err: &GatewayError, buf: &mut Vec<u8>) {
        push_event(buf, &error_body(err.status(), &err.to_string()));
    }
}

pin_project! {
    /// Encodes a canonical stream as Anthropic SSE: `message_start` and a
    /// `ping`, a `content_block_start`/`_delta`/`_stop` run per text or tool-use block, then
    /// exactly one `message_delta` with the stop reason and the exact usage (from the usage
    /// chunk the cost layer ends every stream with) and `message_stop`. No `[DONE]`. A stream
    /// passed through from an Anthropic upstream is written event for event.
    pub struct MessagesSse {
        #[pin]
        inner: ChatStream,
        translator: Translator,
        done: bool,
        observer: Option<Box<dyn StreamObserver>>,
    }

    impl PinnedDrop for MessagesSse {
        fn drop(this: Pin<&mut Self>) {
            if let Some(obs) = this.project().observer.take() {
                obs.finish(false);
            }
        }
    }
}

impl std::fmt::Debug for MessagesSse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessagesSse")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl MessagesSse {
    /// Encodes `inner`; `prompt_estimate` is `message_start`'s input count (the exact one
    /// follows in `message_delta`).
    pub fn new(
        inner: ChatStream,
        prompt_estimate: u64,
        observer: Option<Box<dyn StreamObserver>>,
    ) -> Self {
        Self {
            inner,
            translator: Translator {
                prompt_estimate,
                ..Translator::default()
            },
            done: false,
            observer,
        }
    }
}

impl Stream for MessagesSse {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        let mut buf = Vec::new();
        loop {
            match ready!(this.inner.as_mut().poll_next(cx)) {
                Some(Ok(chunk)) => {
                    this.translator.chunk(chunk, &mut buf);
                    if !buf.is_empty() {
                        return Poll::Ready(Some(Ok(Bytes::from(buf))));
                    }
                }
                Some(Err(e)) => {
                    *this.done = true;
                    this.translator.error(&e, &mut buf);
                    if let Some(obs) = this.observer.take() {
                        obs.finish(false);
                    }
                    return Poll::Ready(Some(Ok(Bytes::from(buf))));
                }
                None => {
                    *this.done = true;
                    this.translator.end(&mut buf);
                    if let Some(obs) = this.observer.take() {
                        obs.finish(true);
                    }
                    return Poll::Ready(Some(Ok(Bytes::from(buf))));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Delta, FunctionCallDelta, ToolCallDelta, Usage};

    async fn encode(chunks: Vec<Result<ChatChunk, GatewayError>>) -> Vec<(String, Value)> {
        let stream: ChatStream = Box::pin(futures_util::stream::iter(chunks));
        let mut enc = MessagesSse::new(stream, 7, None);
        let mut out = String::new();
        while let Some(Ok(b)) = std::future::poll_fn(|cx| Pin::new(&mut enc).poll_next(cx)).await {
            out.push_str(std::str::from_utf8(&b).unwrap());
        }
        assert!(!out.contains("[DONE]"));
        out.split("\n\n")
            .filter(|e| e.starts_with("event: "))
            .map(|e| {
                let (ev, data) = e.split_once('\n').unwrap();
                let ev = ev.strip_prefix("event: ").unwrap().to_owned();
                let data: Value =
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(data["type"], ev.as_str(), "event line equals data.type");
                (ev, data)
            })
            .collect()
    }

    fn tool(index: u32, id: Option<&str>, name: Option<&str>, args: &str) -> Delta {
        Delta {
            tool_calls: Some(vec![ToolCallDelta {
                extra_content: None,
                index,
                id: id.map(str::to_owned),
                kind: id.map(|_| "function".to_owned()),
                function: Some(FunctionCallDelta {
                    name: name.map(str::to_owned),
                    arguments: Some(args.to_owned()),
                }),
            }]),
            ..Delta::default()
        }
    }

    #[tokio::test]
    async fn text_and_tool_call_become_the_anthropic_event_sequence() {
        let c = |d: Delta, f: Option<&str>| Ok(ChatChunk::delta("chatcmpl-abc", 1, "m", d, f));
        let events = encode(vec![
            c(Delta::role(), None),
            c(Delta::text("Let me "), None),
            c(Delta::text("check."), None),
            c(tool(0, Some("call_1"), Some("get_weather"), ""), None),
            c(tool(0, None, None, "{\"city\": "), None),
            c(tool(0, None, None, "\"Oslo\"}"), None),
            c(Delta::default(), Some("tool_calls")),
            Ok(ChatChunk::usage_only(
                "chatcmpl-abc",
                1,
                "m",
                Usage::new(12, 9),
            )),
        ])
        .await;
        let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(events[0].1["message"]["usage"]["input_tokens"], 7);
        assert_eq!(events[6].1["content_block"]["type"], "tool_use");
        assert_eq!(events[6].1["content_block"]["id"], "call_1");
        assert_eq!(events[6].1["index"], 1);
        let args: String = events
            .iter()
            .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
            .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(args, "{\"city\": \"Oslo\"}");
        assert_eq!(events[10].1["delta"]["stop_reason"], "tool_use");
        assert_eq!(events[10].1["usage"]["output_tokens"], 9);
        assert_eq!(events[10].1["usage"]["input_tokens"], 12);
    }

    #[tokio::test]
    async fn errors_mid_stream_are_anthropic_error_events() {
        let events = encode(vec![
            Ok(ChatChunk::delta("c", 1, "m", Delta::text("a"), None)),
            Err(GatewayError::Internal("boom".into())),
        ])
        .await;
        let (kind, data) = events.last().unwrap();
        assert_eq!(kind, "error");
        assert_eq!(data["error"]["type"], "api_error");
    }

    #[test]
    fn request_decodes_into_the_canonical_shape() {
        let req: MessagesRequest = serde_json::from_value(json!({
            "model": "m", "max_tokens": 64, "system": [{"type": "text", "text": "Be terse."}],
            "stop_sequences": ["END"], "temperature": 0.2, "top_k": 5,
            "metadata": {"user_id": "u1"},
            "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}}]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "14C"},
                    {"type": "text", "text": "Thanks"}]}
            ]
        }))
        .unwrap();
        let chat = req.into_chat().unwrap();
        let roles: Vec<Role> = chat.messages.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [
                Role::System,
                Role::User,
                Role::Assistant,
                Role::Tool,
                Role::User
            ]
        );
        let Some(Content::Parts(parts)) = &chat.messages[1].content else {
            panic!()
        };
        assert_eq!(
            parts[1].image_url.as_ref().unwrap().url,
            "data:image/png;base64,AAA"
        );
        let calls = chat.messages[2].tool_calls.as_ref().unwrap();
        assert_eq!(calls[0].function.arguments, r#"{"city":"Oslo"}"#);
        assert_eq!(chat.messages[3].tool_call_id.as_deref(), Some("toolu_1"));
        assert_eq!(chat.tool_choice, Some(json!("required")));
        assert_eq!(chat.extra["parallel_tool_calls"], false);
        assert_eq!(chat.extra["top_k"], 5);
        assert_eq!(chat.extra["user"], "u1");
        assert_eq!(chat.stop, Some(Stop::Many(vec!["END".into()])));
        assert_eq!(chat.max_tokens, Some(64));
    }

    #[test]
    fn complete_answers_become_anthropic_messages() {
        let resp: ChatResponse = serde_json::from_value(json!({
            "id": "chatcmpl-xyz", "model": "m", "choices": [{"index": 0, "finish_reason": "tool_calls",
              "message": {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
        }))
        .unwrap();
        let m = to_anthropic(&resp);
        assert_eq!(m["id"], "msg_xyz");
        assert_eq!(m["type"], "message");
        assert_eq!(
            m["content"][0],
            json!({"type": "text", "text": "Checking."})
        );
        assert_eq!(m["content"][1]["input"], json!({"a": 1}));
        assert_eq!(m["stop_reason"], "tool_use");
        assert_eq!(m["usage"], json!({"input_tokens": 5, "output_tokens": 3}));
    }

    proptest::proptest! {
        #[test]
        fn any_json_is_a_request_or_a_400_naming_a_field(v in arb_json()) {
            let body = serde_json::to_vec(&v).unwrap();
            match parse(&body).and_then(|(r, _)| r.into_chat()) {
                Ok(_) => {}
                Err(GatewayError::InvalidRequest { field, .. }) => proptest::prop_assert!(!field.is_empty()),
                Err(other) => proptest::prop_assert!(false, "unexpected {other:?}"),
            }
        }
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (0u32..5).prop_map(Value::from),
            prop_oneof![
                Just("user"),
                Just("assistant"),
                Just("text"),
                Just("image"),
                Just("tool_use"),
                Just("tool_result"),
                Just("base64"),
                Just("url"),
                Just("tool"),
                Just("any"),
                Just("m")
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("model".to_owned()),
                        Just("max_tokens".to_owned()),
                        Just("messages".to_owned()),
                        Just("role".to_owned()),
                        Just("content".to_owned()),
                        Just("type".to_owned()),
                        Just("source".to_owned()),
                        Just("tool_use_id".to_owned()),
                        Just("system".to_owned()),
                        Just("tools".to_owned()),
                        Just("tool_choice".to_owned()),
                        Just("name".to_owned()),
                        Just("input".to_owned()),
                        Just("id".to_owned()),
                    ],
                    inner,
                    0..5
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    #[test]
    fn error_types_follow_the_status() {
        let b = error_body(StatusCode::NOT_FOUND, "model: x");
        assert_eq!(
            b,
            json!({"type": "error", "error": {"type": "not_found_error", "message": "model: x"}})
        );
        assert_eq!(
            anthropic_error_type(StatusCode::TOO_MANY_REQUESTS),
            "rate_limit_error"
        );
        assert_eq!(
            anthropic_error_type(StatusCode::BAD_REQUEST),
            "invalid_request_error"
        );
    }
}
