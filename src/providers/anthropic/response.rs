//! Anthropic: wire reply -> canonical response.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::JSON_TOOL;
use crate::types::{ChatResponse, Choice, FunctionCall, ResponseMessage, ToolCall, Usage};

// === response translation ===

/// A `/v1/messages` response (and the `message` of `message_start`).
#[derive(Debug, Default, Deserialize)]
pub(super) struct WireMessage {
    #[serde(default)]
    pub(super) id: String,
    #[serde(default)]
    pub(super) model: String,
    #[serde(default)]
    pub(super) content: Vec<Value>,
    #[serde(default)]
    pub(super) stop_reason: Option<String>,
    #[serde(default)]
    pub(super) usage: Option<WireUsage>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
pub(super) struct WireUsage {
    #[serde(default)]
    pub(super) input_tokens: Option<u64>,
    #[serde(default)]
    pub(super) output_tokens: Option<u64>,
    #[serde(default)]
    pub(super) cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub(super) cache_read_input_tokens: Option<u64>,
}

impl WireUsage {
    /// Takes the counts `later` reports, keeping ours where it says nothing.
    pub(super) fn update(&mut self, later: &WireUsage) {
        self.input_tokens = later.input_tokens.or(self.input_tokens);
        self.output_tokens = later.output_tokens.or(self.output_tokens);
        self.cache_creation_input_tokens = later
            .cache_creation_input_tokens
            .or(self.cache_creation_input_tokens);
        self.cache_read_input_tokens = later
            .cache_read_input_tokens
            .or(self.cache_read_input_tokens);
    }

    /// OpenAI usage: the prompt counts cached and cache-writing tokens too.
    pub(super) fn to_usage(self) -> Usage {
        let cached = self.cache_read_input_tokens.unwrap_or(0);
        let prompt =
            self.input_tokens.unwrap_or(0) + self.cache_creation_input_tokens.unwrap_or(0) + cached;
        let mut usage = Usage::new(prompt, self.output_tokens.unwrap_or(0));
        usage.set_cache(cached, 0, 0);
        usage
    }
}

/// Anthropic's `stop_reason` as an OpenAI `finish_reason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn and anything new.
        _ => "stop",
    }
}

pub(super) fn translate_response(msg: WireMessage, json_tool: bool) -> ChatResponse {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    let mut answered_by_json_tool = false;
    for block in &msg.content {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("thinking") => {
                reasoning.push_str(block.get("thinking").and_then(Value::as_str).unwrap_or(""))
            }
            Some("tool_use") => {
                let name = block.get("name").and_then(Value::as_str).unwrap_or("");
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                if json_tool && name == JSON_TOOL {
                    // The forced JSON tool's input is the answer itself.
                    text.push_str(&input.to_string());
                    answered_by_json_tool = true;
                    continue;
                }
                calls.push(ToolCall {
                    extra_content: None,
                    id: block
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    kind: "function".into(),
                    function: FunctionCall {
                        name: name.to_owned(),
                        arguments: input.to_string(),
                    },
                });
            }
            _ => {} // redacted_thinking, server tools: nothing to show
        }
    }
    let finish = match msg.stop_reason.as_deref() {
        Some("tool_use") if answered_by_json_tool && calls.is_empty() => "stop",
        Some(r) => finish_reason(r),
        None => "stop",
    };
    let content = if text.is_empty() && !calls.is_empty() {
        None
    } else {
        Some(text)
    };
    let mut message = ResponseMessage::assistant(content, (!calls.is_empty()).then_some(calls));
    if !reasoning.is_empty() {
        message
            .extra
            .insert("reasoning_content".into(), Value::String(reasoning));
    }
    ChatResponse {
        id: if msg.id.is_empty() {
            crate::types::completion_id()
        } else {
            msg.id
        },
        object: "chat.completion".into(),
        created: crate::types::unix_now(),
        model: msg.model,
        choices: vec![Choice {
            index: 0,
            message,
            logprobs: None,
            finish_reason: Some(finish.into()),
        }],
        usage: msg.usage.map(WireUsage::to_usage),
        extra: Map::new(),
    }
}
