//! The /v1/messages edge: canonical response -> Anthropic message.

use axum::response::{IntoResponse, Response};
use http::header;
use serde_json::{Value, json};

use crate::providers::NATIVE_KEY;
use crate::types::ChatResponse;

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
pub(super) fn message_id(id: &str) -> String {
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
pub(super) fn tool_id(id: Option<&str>) -> String {
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
pub(super) fn tool_input(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({}),
    }
}

/// A whole answer as an Anthropic message (or the Anthropic upstream's own, passed through).
pub(super) fn complete_response(resp: &ChatResponse) -> Response {
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
