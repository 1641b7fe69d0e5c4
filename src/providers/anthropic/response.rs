//! Anthropic: wire reply -> canonical response.

use serde_json::Map;

use super::JSON_TOOL;
use super::wire::{ContentBlock, WireMessage, WireUsage, finish_reason};
use crate::types::{ChatResponse, Choice, FunctionCall, ResponseMessage, ToolCall};

// === response translation ===

pub(super) fn translate_response(msg: WireMessage, json_tool: bool) -> ChatResponse {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    let mut answered_by_json_tool = false;
    let mut thinking_blocks = Vec::new();
    for block in &msg.content {
        match block {
            ContentBlock::Text { text: t } => text.push_str(t),
            ContentBlock::Thinking { thinking, .. } => {
                reasoning.push_str(thinking);
                thinking_blocks.extend(block.to_thinking_block());
            }
            ContentBlock::RedactedThinking { .. } => {
                thinking_blocks.extend(block.to_thinking_block())
            }
            ContentBlock::ToolUse { id, name, input } => {
                if json_tool && name == JSON_TOOL {
                    // The forced JSON tool's input is the answer itself.
                    text.push_str(&input.to_string());
                    answered_by_json_tool = true;
                    continue;
                }
                calls.push(ToolCall {
                    extra_content: None,
                    id: id.clone(),
                    kind: "function".into(),
                    function: FunctionCall {
                        name: name.clone(),
                        arguments: input.to_string(),
                    },
                });
            }
            ContentBlock::Other => {} // server tools: nothing to show
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
        message.reasoning_content = Some(reasoning);
    }
    if !thinking_blocks.is_empty() {
        message.thinking_blocks = Some(thinking_blocks);
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
