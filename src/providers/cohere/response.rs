//! Cohere: wire reply -> canonical response.

#[allow(unused_imports)]
use super::*;

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
