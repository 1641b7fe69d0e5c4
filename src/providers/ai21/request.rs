//! AI21: canonical request -> wire request (the OpenAI body cut down to what AI21 knows).

use serde_json::Value;

use super::Ai21;
use crate::GatewayError;
use crate::providers::openai_compat::{Quirks, openai_body};
use crate::types::ChatRequest;

/// The request fields AI21 knows (its SDK, plus `seed` and `tool_choice` as LiteLLM sends).
const FIELDS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "n",
    "stream",
    "tools",
    "tool_choice",
    "response_format",
    "documents",
    "seed",
];

const QUIRKS: Quirks = Quirks {
    max_tokens_only: true,
    no_developer_role: true,
    stream_options: false,
    whitelist: FIELDS,
    drop: &[],
    flatten_text_content: true,
    tool_choice_any: false,
};

/// Whether a streaming request is sent as a complete one and replayed.
pub(super) fn replays(req: &ChatRequest) -> bool {
    req.is_stream() && req.tools.as_ref().is_some_and(|t| !t.is_empty())
}

impl Ai21 {
    /// The AI21 body for `req`.
    pub fn body(&self, req: &ChatRequest) -> Result<Value, GatewayError> {
        let mut body = openai_body(req, &QUIRKS)?;
        if let Some(Value::Array(messages)) = body.get_mut("messages") {
            for (i, m) in messages.iter_mut().enumerate() {
                let Value::Object(m) = m else { continue };
                if let Some(Value::Array(parts)) = m.get("content") {
                    // Text-only arrays were joined already: what is left holds something else.
                    let kind = parts
                        .iter()
                        .filter_map(|p| p.get("type").and_then(Value::as_str))
                        .find(|k| *k != "text")
                        .unwrap_or("non-text");
                    return Err(GatewayError::invalid(
                        format!("messages[{i}].content"),
                        format!("ai21 takes text only; remove the `{kind}` parts"),
                    ));
                }
                m.retain(|k, _| {
                    matches!(
                        k.as_str(),
                        "role" | "content" | "tool_calls" | "tool_call_id"
                    )
                });
            }
        }
        if let Some(rf) = body.get_mut("response_format")
            && rf.get("type").and_then(Value::as_str) == Some("json_schema")
        {
            *rf = serde_json::json!({"type": "json_object"});
        }
        if replays(req) {
            body["stream"] = Value::Bool(false);
        }
        Ok(body)
    }
}
