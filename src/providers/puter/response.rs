//! Puter: `result` of a drivers call -> canonical response; usage and tool-call arguments.

use serde_json::Value;

use super::PROVIDER;
use super::error::v1_failure;
use crate::GatewayError;
use crate::providers::openai_compat::normalise_finish;
use crate::providers::parse_json;
use crate::types::{ChatRequest, ChatResponse, FunctionCall, ResponseMessage, ToolCall, Usage};

/// Usage from Puter's metering: OpenAI-like or Anthropic-like keys; `None` when it is empty.
pub(super) fn usage(u: &Value) -> Option<Usage> {
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

/// A tool call's arguments as a JSON string (`{}` when there are none).
pub(super) fn arguments(input: Option<&Value>) -> String {
    match input {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "{}".to_owned(),
        Some(other) => other.to_string(),
    }
}

/// The canonical response for a drivers-call answer (or the failure a v1 answer reports).
pub(super) fn chat_response(req: &ChatRequest, body: &[u8]) -> Result<ChatResponse, GatewayError> {
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
