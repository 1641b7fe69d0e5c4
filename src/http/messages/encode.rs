//! The /v1/messages edge: canonical response -> Anthropic message.

use axum::response::{IntoResponse, Response};
use http::header;
use serde_json::{Value, json};

use crate::providers::NATIVE_KEY;
use crate::providers::anthropic::wire::{
    ContentBlock, WireMessage, WireUsage, message_id, stop_reason, tool_id, tool_id_with_state,
    tool_input,
};
use crate::types::{ChatResponse, ThinkingBlock};

// === encoding ===

/// A whole answer as an Anthropic message naming `model`, or the Anthropic upstream's own,
/// passed through as it came apart from `model`.
pub(super) fn complete_response(resp: &ChatResponse, model: &str) -> Response {
    if let Some(Value::String(raw)) = resp.extra.get(NATIVE_KEY) {
        let body = with_model(raw, &["model"], model).unwrap_or_else(|| raw.clone());
        return ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    }
    let mut v = to_anthropic(resp);
    v["model"] = Value::String(model.to_owned());
    axum::Json(v).into_response()
}

/// `raw` with the string at `path` set to `model`, when it names another model. Claude Code
/// drops a turn's thinking blocks when the answer names a model other than the one it asked
/// for, so a passed-through answer names the client's model id. `None` leaves `raw` as it is.
pub(super) fn with_model(raw: &str, path: &[&str], model: &str) -> Option<String> {
    let mut v: Value = serde_json::from_str(raw).ok()?;
    let mut at = &mut v;
    for key in path {
        at = at.get_mut(*key)?;
    }
    if at.as_str()? == model {
        return None;
    }
    *at = Value::String(model.to_owned());
    serde_json::to_string(&v).ok()
}

/// The Anthropic message for a canonical response (first choice): its thinking blocks, text,
/// then tool calls.
pub fn to_anthropic(resp: &ChatResponse) -> Value {
    let choice = resp.choices.first();
    let mut content = Vec::new();
    let mut has_tools = false;
    if let Some(c) = choice {
        content.extend(thinking_content(
            c.message.thinking_blocks.as_deref(),
            c.message.reasoning_content.as_deref(),
        ));
        if let Some(text) = c.message.content.as_deref().filter(|t| !t.is_empty()) {
            content.push(ContentBlock::Text {
                text: text.to_owned(),
            });
        }
        for call in c.message.tool_calls.iter().flatten() {
            has_tools = true;
            content.push(ContentBlock::ToolUse {
                id: client_tool_id(&call.id, call.extra_content.as_ref()),
                name: call.function.name.clone(),
                input: tool_input(&call.function.arguments),
            });
        }
    }
    let usage = resp.usage.clone().unwrap_or_default();
    let msg = WireMessage {
        id: message_id(&resp.id),
        kind: "message".into(),
        role: "assistant".into(),
        model: resp.model.clone(),
        content,
        stop_reason: Some(
            stop_reason(choice.and_then(|c| c.finish_reason.as_deref()), has_tools).into(),
        ),
        stop_sequence: None,
        usage: Some(WireUsage::of(&usage)),
    };
    serde_json::to_value(&msg).unwrap_or_else(|_| json!({}))
}

/// The thinking blocks of an answer: the provider's own blocks when it sent them, else the
/// reasoning text as one unsigned block (a client may show it; no provider needs it back).
pub(super) fn thinking_content(
    blocks: Option<&[ThinkingBlock]>,
    reasoning: Option<&str>,
) -> Vec<ContentBlock> {
    match (blocks, reasoning) {
        (Some(b), _) if !b.is_empty() => b.iter().map(ContentBlock::from_thinking_block).collect(),
        (_, Some(r)) if !r.is_empty() => vec![ContentBlock::Thinking {
            thinking: r.to_owned(),
            signature: String::new(),
        }],
        _ => Vec::new(),
    }
}

/// The tool id a Messages client sees: with a Gemini thought signature folded in, as the client
/// sends only the id back and Gemini wants the signature on the next turn.
pub(super) fn client_tool_id(id: &str, extra_content: Option<&Value>) -> String {
    match crate::types::google_thought_signature(extra_content) {
        Some(sig) => tool_id_with_state(id, sig),
        None => tool_id(id),
    }
}
