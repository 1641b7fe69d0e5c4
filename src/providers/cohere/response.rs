//! Cohere: wire reply -> canonical response.

use serde_json::Value;

use super::PROVIDER;
use super::error::finish_error;
use crate::GatewayError;
use crate::providers::parse_json;
use crate::types::{
    ChatRequest, ChatResponse, EmbeddingResponse, FunctionCall, ResponseMessage, ToolCall, Usage,
};

/// Cohere's finish reason as OpenAI's, or `None` for `ERROR` / `TIMEOUT`.
pub(super) fn finish_reason(reason: &str) -> Option<&'static str> {
    match reason {
        "MAX_TOKENS" => Some("length"),
        "TOOL_CALL" => Some("tool_calls"),
        "ERROR" | "TIMEOUT" => None,
        // COMPLETE, STOP_SEQUENCE and anything new.
        _ => Some("stop"),
    }
}

/// Usage from `billed_units` (what Cohere charges), else the raw `tokens`.
pub(super) fn usage(u: &Value) -> Option<Usage> {
    let counts = |v: &Value| {
        let input = v.get("input_tokens").and_then(Value::as_f64)?;
        let output = v
            .get("output_tokens")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        Some(Usage::new(input as u64, output as u64))
    };
    u.get("billed_units")
        .and_then(counts)
        .or_else(|| u.get("tokens").and_then(counts))
}

pub(super) fn tool_call(v: &Value) -> Option<ToolCall> {
    let f = v.get("function")?;
    Some(ToolCall {
        extra_content: None,
        id: v.get("id").and_then(Value::as_str).unwrap_or("").to_owned(),
        kind: "function".to_owned(),
        function: FunctionCall {
            name: f.get("name").and_then(Value::as_str)?.to_owned(),
            arguments: match f.get("arguments") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => "{}".to_owned(),
                Some(other) => other.to_string(),
            },
        },
    })
}

/// A chat answer (`/v2/chat`) as the canonical response; an `ERROR` or `TIMEOUT` finish is
/// an error.
pub(super) fn chat_response(req: &ChatRequest, body: &[u8]) -> Result<ChatResponse, GatewayError> {
    let v: Value = parse_json(PROVIDER, body)?;
    let reason = v
        .get("finish_reason")
        .and_then(Value::as_str)
        .unwrap_or("COMPLETE");
    let Some(finish) = finish_reason(reason) else {
        return Err(finish_error(reason, v.get("error").and_then(Value::as_str)));
    };
    let msg = v
        .get("message")
        .ok_or_else(|| GatewayError::BadUpstreamResponse {
            provider: PROVIDER,
            reason: "no `message` in the answer".into(),
        })?;
    let text: String = match msg.get("content") {
        Some(Value::Array(parts)) => parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str).unwrap_or("text") == "text")
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    let calls: Vec<ToolCall> = msg
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(tool_call).collect())
        .unwrap_or_default();
    let content = (!text.is_empty() || calls.is_empty()).then_some(text);
    let tool_calls = (!calls.is_empty()).then_some(calls);
    let mut resp = ChatResponse::single(
        req.model.clone(),
        ResponseMessage::assistant(content, tool_calls),
        finish,
        v.get("usage").and_then(usage),
    );
    if let Some(id) = v
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        resp.id = id.to_owned();
    }
    Ok(resp)
}

/// An `/v2/embed` answer: the float vectors, and the billed input tokens as usage.
pub(super) fn embedding_response(
    req: &ChatRequest,
    body: &[u8],
) -> Result<EmbeddingResponse, GatewayError> {
    let v: Value = parse_json(PROVIDER, body)?;
    // v2 answers `{"embeddings": {"float": [[...]]}}`; v1-style `{"embeddings": [[...]]}`
    // is accepted too.
    let lists = match v.get("embeddings") {
        Some(Value::Object(o)) => o.get("float"),
        other => other,
    };
    let vectors = lists
        .and_then(Value::as_array)
        .and_then(|rows| {
            rows.iter()
                .map(|row| {
                    row.as_array()?
                        .iter()
                        .map(|x| x.as_f64().map(|f| f as f32))
                        .collect::<Option<Vec<f32>>>()
                })
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| GatewayError::BadUpstreamResponse {
            provider: PROVIDER,
            reason: "no float `embeddings` in the answer".into(),
        })?;
    let usage = v
        .pointer("/meta/billed_units/input_tokens")
        .and_then(Value::as_u64)
        .map(|p| Usage::new(p, 0));
    Ok(EmbeddingResponse::new(req.model.clone(), vectors, usage))
}
