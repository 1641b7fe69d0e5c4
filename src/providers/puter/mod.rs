//! Puter's drivers API (`POST {PUTER_BASE_URL}/drivers/call`, interface
//! `puter-chat-completion`, method `complete`): the keyless models, paid for by the
//! Puter user whose token is `PUTER_AUTH_TOKEN` (Puter's drivers API documentation).
//!
//! The OpenAI request goes into `args` (messages pass through: Puter normalises OpenAI-style
//! messages itself), the token both in the body's `auth_token` and as a Bearer header, as
//! puter.js does. Answers are provider-shaped under `result`; streams are NDJSON lines
//! (`text`, `tool_use` whole, a last `usage`, or `error`) with no finish reason, so it is
//! inferred. Failures come three ways: v2 real statuses with `{"error","message","code"}`
//! (an upstream outage is a 400 `upstream_*`, treated as a retryable 502), legacy v1 HTTP 200
//! `{"success":false,"error":{...}}`, and `error` lines in a stream.

use std::time::Duration;

use http::StatusCode;
use serde_json::{Map, Value, json};

use super::openai_compat::normalise_finish;
use super::{
    Framing, ProviderAdapter, UpstreamRequest, json_post, parse_json, retry_after, with_json,
};
use super::{ProviderEndpoint, ProviderSettings};
use crate::GatewayError;
use crate::catalog::ProviderSpec;
use crate::client::HttpClient;
use crate::types::Secret;
use crate::types::{
    ChatRequest, ChatResponse, FunctionCall, ResponseMessage, Role, ToolCall, Usage,
};

mod error;
mod stream;

use error::{puter_error, v1_failure};
pub use stream::PuterDecoder;

const PROVIDER: &str = "puter";
const ENV_TOKEN: &str = "PUTER_AUTH_TOKEN";
/// Puter's per-user rate window; its 429s carry no `retry-after`.
const RATE_WINDOW: Duration = Duration::from_secs(10);

/// Builds the endpoints of a configured provider: one per credential.
pub(crate) fn build(
    _spec: &'static ProviderSpec,
    settings: &ProviderSettings,
    client: &HttpClient,
) -> Result<Vec<ProviderEndpoint>, String> {
    Ok(super::endpoint_per_key(settings, client, Puter::new))
}

/// The Puter adapter for one user token.
#[derive(Debug)]
pub struct Puter {
    url: String,
    token: Secret,
}

// === impl Puter ===

impl Puter {
    /// An adapter posting to `{base_url}/drivers/call`.
    pub fn new(base_url: &str, token: Secret) -> Self {
        Self {
            url: format!("{}/drivers/call", base_url.trim_end_matches('/')),
            token,
        }
    }

    /// The drivers-call body for `req`.
    pub fn body(&self, req: &ChatRequest) -> Result<Value, GatewayError> {
        let mut messages = Vec::with_capacity(req.messages.len());
        for m in &req.messages {
            let mut v = serde_json::to_value(m)
                .map_err(|e| GatewayError::Internal(format!("encoding request: {e}")))?;
            if m.role == Role::Developer {
                v["role"] = "system".into();
            }
            // Puter refuses a message without `content`; a tool-calling one may have it empty.
            if m.content.is_none() {
                v["content"] = "".into();
            }
            messages.push(v);
        }
        let mut args = Map::new();
        args.insert("messages".into(), Value::Array(messages));
        args.insert("model".into(), req.model.clone().into());
        args.insert("stream".into(), req.is_stream().into());
        if let Some(n) = req.output_cap() {
            args.insert("max_tokens".into(), n.into());
        }
        if let Some(t) = req.temperature {
            args.insert("temperature".into(), t.into());
        }
        if let Some(p) = req.top_p {
            args.insert("top_p".into(), p.into());
        }
        if let Some(tools) = &req.tools {
            let tools = serde_json::to_value(tools)
                .map_err(|e| GatewayError::Internal(format!("encoding tools: {e}")))?;
            args.insert("tools".into(), tools);
        }
        if let Some(tc) = &req.tool_choice {
            args.insert("tool_choice".into(), tc.clone());
        }
        for key in ["parallel_tool_calls", "reasoning_effort", "verbosity"] {
            if let Some(v) = req.extra.get(key) {
                args.insert(key.into(), v.clone());
            }
        }
        if !req.is_stream() {
            // One message shape for every upstream: text and tool_use blocks.
            args.insert("response".into(), json!({"normalize": true}));
        }
        Ok(json!({
            "interface": "puter-chat-completion",
            "driver": "ai-chat",
            "method": "complete",
            "args": args,
            "auth_token": self.token.expose(),
        }))
    }
}

/// Usage from Puter's metering: OpenAI-like or Anthropic-like keys; `None` when it is empty.
fn usage(u: &Value) -> Option<Usage> {
    let n = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| u.get(*k).and_then(Value::as_f64))
            .map(|f| f as u64)
    };
    let prompt = n(&["prompt_tokens", "input_tokens"]);
    let completion = n(&["completion_tokens", "output_tokens"]);
    if prompt.is_none() && completion.is_none() {
        return None;
    }
    // v2 subtracts cached tokens from OpenAI-like prompt counts.
    let cached = n(&["cached_tokens", "cache_read_input_tokens"]).unwrap_or(0);
    let mut usage = Usage::new(prompt.unwrap_or(0) + cached, completion.unwrap_or(0));
    if cached > 0 {
        usage.set_cache(cached, 0, 0);
    }
    Some(usage)
}

fn arguments(input: Option<&Value>) -> String {
    match input {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "{}".to_owned(),
        Some(other) => other.to_string(),
    }
}

impl ProviderAdapter for Puter {
    type Decoder = PuterDecoder;

    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn framing(&self) -> Framing {
        Framing::NdJson
    }

    fn request(&self, req: &ChatRequest) -> Result<UpstreamRequest, GatewayError> {
        let body = self.body(req)?;
        let builder =
            json_post(&self.url)?.header(http::header::AUTHORIZATION, self.token.bearer()?);
        with_json(builder, &body)
    }

    fn response(&self, req: &ChatRequest, body: &[u8]) -> Result<ChatResponse, GatewayError> {
        let v: Value = parse_json(PROVIDER, body)?;
        if let Some(e) = v1_failure(&v) {
            return Err(e);
        }
        let bad = |reason: &str| GatewayError::BadUpstreamResponse {
            provider: PROVIDER,
            reason: reason.to_owned(),
        };
        let mut result = v
            .get("result")
            .ok_or_else(|| bad("no `result` in the answer"))?;
        // Tolerate a whole OpenAI completion under `result`.
        if let Some(first) = result.get("choices").and_then(|c| c.get(0)) {
            result = first;
        }
        let msg = result
            .get("message")
            .ok_or_else(|| bad("no `result.message` in the answer"))?;
        let mut text = String::new();
        let mut calls: Vec<ToolCall> = Vec::new();
        match msg.get("content") {
            Some(Value::String(s)) => text.push_str(s),
            Some(Value::Array(blocks)) => {
                for b in blocks {
                    match b.get("type").and_then(Value::as_str) {
                        Some("text") | None => {
                            text.push_str(b.get("text").and_then(Value::as_str).unwrap_or(""))
                        }
                        Some("tool_use") => calls.push(ToolCall {
                            extra_content: None,
                            id: b.get("id").and_then(Value::as_str).unwrap_or("").to_owned(),
                            kind: "function".into(),
                            function: FunctionCall {
                                name: b.get("name").and_then(Value::as_str).unwrap_or("").into(),
                                arguments: arguments(b.get("input")),
                            },
                        }),
                        _ => {} // thinking and the like
                    }
                }
            }
            _ => {}
        }
        if let Some(list) = msg.get("tool_calls").and_then(Value::as_array) {
            calls.extend(
                list.iter()
                    .filter_map(|c| serde_json::from_value::<ToolCall>(c.clone()).ok()),
            );
        }
        // Claude results always say "stop": tool calls decide.
        let finish = if calls.is_empty() {
            result
                .get("finish_reason")
                .and_then(Value::as_str)
                .map(normalise_finish)
                .unwrap_or("stop")
        } else {
            "tool_calls"
        };
        let content = (!text.is_empty() || calls.is_empty()).then_some(text);
        let tool_calls = (!calls.is_empty()).then_some(calls);
        Ok(ChatResponse::single(
            req.model.clone(),
            ResponseMessage::assistant(content, tool_calls),
            finish,
            result.get("usage").and_then(usage),
        ))
    }

    fn decoder(&self, req: &ChatRequest) -> PuterDecoder {
        PuterDecoder {
            id: crate::types::completion_id(),
            created: crate::types::unix_now(),
            model: req.model.clone(),
            tools: 0,
            ended: false,
        }
    }

    fn error(&self, status: StatusCode, headers: &http::HeaderMap, body: &[u8]) -> GatewayError {
        let retry = retry_after(headers);
        match serde_json::from_slice::<Value>(body.trim_ascii_start()) {
            Ok(v) if v.is_object() => puter_error(status, &v, retry),
            _ => puter_error(status, &Value::Null, retry),
        }
    }

    fn success_is_error(&self, body: &[u8]) -> Option<GatewayError> {
        let v: Value = serde_json::from_slice(body.trim_ascii_start()).ok()?;
        v1_failure(&v)
    }
}

#[cfg(test)]
mod tests;
