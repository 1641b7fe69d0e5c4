//! Anthropic: wire stream -> canonical chunks.

use std::collections::VecDeque;

use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::error::error_from_json;
use super::wire::{BlockDelta, ContentBlock, StreamEvent, WireUsage, finish_reason};
use super::{JSON_TOOL, PROVIDER};
use crate::GatewayError;
use crate::providers::{NATIVE_KEY, SseEvent, StreamDecoder};
use crate::types::{ChatChunk, Delta, FunctionCallDelta, ToolCallDelta};

// === stream translation ===

/// What an Anthropic content block turns into.
#[derive(Clone, Copy, Debug)]
pub(super) enum Block {
    Text,
    Thinking,
    /// A tool call, OpenAI tool index `index`; `args` once a non-empty fragment went out.
    Tool {
        index: u32,
        args: bool,
    },
    /// The forced JSON tool: its input fragments are content.
    JsonTool,
    Other,
}

/// Decodes Anthropic's named-event stream (`message_start` … `message_stop`) into canonical
/// chunks, with the usage of `message_start` and `message_delta` in one final usage chunk.
#[derive(Debug)]
pub struct AnthropicDecoder {
    pub(super) json_tool: bool,
    // Pass-through (`/v1/messages`): each event also travels as it came, under NATIVE_KEY.
    pub(super) native: bool,
    pub(super) id: String,
    pub(super) model: String,
    pub(super) created: u64,
    pub(super) started: bool,
    pub(super) blocks: Vec<(u64, Block)>,
    pub(super) next_tool: u32,
    pub(super) usage: Option<WireUsage>,
    pub(super) finished: bool,
    pub(super) stopped: bool,
    pub(super) usage_sent: bool,
    // The open thinking block's text and signature, sent whole when it stops.
    pub(super) thinking: String,
    pub(super) signature: String,
}

// === impl AnthropicDecoder ===

impl AnthropicDecoder {
    /// A decoder; `json_tool` when the request forced [`JSON_TOOL`].
    pub fn new(json_tool: bool) -> Self {
        Self {
            json_tool,
            native: false,
            id: String::new(),
            model: String::new(),
            created: crate::types::unix_now(),
            started: false,
            blocks: Vec::new(),
            next_tool: 0,
            usage: None,
            finished: false,
            stopped: false,
            usage_sent: false,
            thinking: String::new(),
            signature: String::new(),
        }
    }

    /// Queues a chunk, preceded by the role chunk the first time. The role chunk waits for
    /// the first real delta, so an error right after `message_start` still comes before the
    /// first chunk and may fail over.
    pub(super) fn emit(
        &mut self,
        delta: Delta,
        finish: Option<&str>,
        out: &mut VecDeque<ChatChunk>,
    ) {
        if self.id.is_empty() {
            self.id = crate::types::completion_id();
        }
        if !self.started {
            self.started = true;
            out.push_back(ChatChunk::delta(
                &self.id,
                self.created,
                &self.model,
                Delta::role(),
                None,
            ));
        }
        out.push_back(ChatChunk::delta(
            &self.id,
            self.created,
            &self.model,
            delta,
            finish,
        ));
    }

    pub(super) fn tool_delta(
        index: u32,
        id: Option<String>,
        name: Option<String>,
        args: &str,
    ) -> Delta {
        Delta {
            tool_calls: Some(vec![ToolCallDelta {
                extra_content: None,
                index,
                kind: id.as_ref().map(|_| "function".to_owned()),
                id,
                function: Some(FunctionCallDelta {
                    name,
                    arguments: Some(args.to_owned()),
                }),
            }]),
            ..Delta::default()
        }
    }

    pub(super) fn block(&mut self, index: u64) -> Option<&mut Block> {
        self.blocks
            .iter_mut()
            .find(|(i, _)| *i == index)
            .map(|(_, b)| b)
    }

    pub(super) fn flush_usage(&mut self, out: &mut VecDeque<ChatChunk>) {
        if self.usage_sent {
            return;
        }
        if let Some(u) = self.usage {
            self.usage_sent = true;
            out.push_back(ChatChunk::usage_only(
                &self.id,
                self.created,
                &self.model,
                u.to_usage(),
            ));
        }
    }

    pub(super) fn content_block_start(
        &mut self,
        index: u64,
        cb: ContentBlock,
        out: &mut VecDeque<ChatChunk>,
    ) {
        let block = match cb {
            ContentBlock::Text { text } => {
                if !text.is_empty() {
                    self.emit(Delta::text(text), None, out);
                }
                Block::Text
            }
            ContentBlock::Thinking {
                thinking,
                signature,
            } => {
                self.thinking = thinking;
                self.signature = signature;
                if !self.thinking.is_empty() {
                    self.emit(reasoning_delta(self.thinking.clone()), None, out);
                }
                Block::Thinking
            }
            redacted @ ContentBlock::RedactedThinking { .. } => {
                // Nothing readable: the block goes out whole, to be sent back unchanged.
                let d = Delta {
                    thinking_blocks: redacted.to_thinking_block().map(|b| vec![b]),
                    ..Delta::default()
                };
                self.emit(d, None, out);
                Block::Other
            }
            ContentBlock::ToolUse { name, .. } if self.json_tool && name == JSON_TOOL => {
                Block::JsonTool
            }
            ContentBlock::ToolUse { id, name, .. } => {
                let k = self.next_tool;
                self.next_tool += 1;
                let delta = Self::tool_delta(k, Some(id), Some(name), "");
                self.emit(delta, None, out);
                Block::Tool {
                    index: k,
                    args: false,
                }
            }
            ContentBlock::Other => Block::Other,
        };
        self.blocks.push((index, block));
    }

    pub(super) fn content_block_delta(
        &mut self,
        index: u64,
        delta: BlockDelta,
        out: &mut VecDeque<ChatChunk>,
    ) {
        // A delta for a block that never started is taken as text (tolerant of reordering).
        let block = self.block(index).copied().unwrap_or(Block::Text);
        match (delta, block) {
            (BlockDelta::TextDelta { text }, _) if !text.is_empty() => {
                self.emit(Delta::text(text), None, out);
            }
            // The first fragment is often empty: nothing to forward.
            (BlockDelta::InputJsonDelta { partial_json }, Block::Tool { index: k, .. })
                if !partial_json.is_empty() =>
            {
                if let Some(Block::Tool { args, .. }) = self.block(index) {
                    *args = true;
                }
                self.emit(Self::tool_delta(k, None, None, &partial_json), None, out);
            }
            (BlockDelta::InputJsonDelta { partial_json }, Block::JsonTool)
                if !partial_json.is_empty() =>
            {
                self.emit(Delta::text(partial_json), None, out);
            }
            (BlockDelta::ThinkingDelta { thinking }, _) if !thinking.is_empty() => {
                self.thinking.push_str(&thinking);
                self.emit(reasoning_delta(thinking), None, out);
            }
            (BlockDelta::SignatureDelta { signature }, _) => self.signature.push_str(&signature),
            _ => {} // empty fragments, citations_delta
        }
    }

    /// A thinking block is complete: it goes out whole, signature included, so a client can
    /// send it back on the next turn.
    pub(super) fn content_block_stop(&mut self, index: u64, out: &mut VecDeque<ChatChunk>) {
        match self.block(index).copied() {
            // An empty input is `{}`: send that rather than an arguments string of "".
            Some(Block::Tool { index: k, args }) if !args => {
                self.emit(Self::tool_delta(k, None, None, "{}"), None, out);
            }
            Some(Block::Thinking) => {
                let thinking = std::mem::take(&mut self.thinking);
                let signature = std::mem::take(&mut self.signature);
                let block = crate::types::ThinkingBlock::thinking(
                    thinking,
                    (!signature.is_empty()).then_some(signature),
                );
                let d = Delta {
                    thinking_blocks: Some(vec![block]),
                    ..Delta::default()
                };
                self.emit(d, None, out);
            }
            _ => {}
        }
    }
}

/// A delta carrying a fragment of reasoning text.
pub(super) fn reasoning_delta(text: String) -> Delta {
    Delta {
        reasoning_content: Some(text),
        ..Delta::default()
    }
}

impl StreamDecoder for AnthropicDecoder {
    fn event(
        &mut self,
        event: SseEvent,
        out: &mut VecDeque<ChatChunk>,
    ) -> Result<(), GatewayError> {
        if !self.native || event.data.trim().is_empty() {
            return self.decode(event, out);
        }
        let before = out.len();
        let name = event.event.clone();
        let data = event.data.clone();
        self.decode(event, out)?;
        let name = name.unwrap_or_else(|| {
            serde_json::from_str::<Value>(&data)
                .ok()
                .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_default()
        });
        let native = json!({"event": name, "data": data});
        // The event rides on the first chunk it produced, or on a chunk of its own (one empty
        // choice, so every layer forwards it) ahead of any usage chunk.
        match out.iter_mut().skip(before).find(|c| !c.choices.is_empty()) {
            Some(c) => {
                c.extra.insert(NATIVE_KEY.into(), native);
            }
            None => {
                let mut carrier =
                    ChatChunk::delta(&self.id, self.created, &self.model, Delta::default(), None);
                carrier.extra.insert(NATIVE_KEY.into(), native);
                out.insert(before, carrier);
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut VecDeque<ChatChunk>) -> Result<(), GatewayError> {
        if self.stopped || self.finished {
            self.flush_usage(out);
            return Ok(());
        }
        Err(GatewayError::Connect {
            provider: PROVIDER,
            sent: true,
            reason: "stream ended before message_stop".into(),
        })
    }
}

impl AnthropicDecoder {
    pub(super) fn decode(
        &mut self,
        event: SseEvent,
        out: &mut VecDeque<ChatChunk>,
    ) -> Result<(), GatewayError> {
        if event.data.trim().is_empty() {
            return Ok(());
        }
        let v: Value =
            serde_json::from_str(&event.data).map_err(|e| GatewayError::BadUpstreamResponse {
                provider: PROVIDER,
                reason: format!("invalid stream event: {e}"),
            })?;
        let typed = match (v.get("type"), event.event.as_deref()) {
            (None, Some(name)) => json!({"type": name}),
            _ => v.clone(),
        };
        let ev: StreamEvent =
            serde_json::from_value(typed).map_err(|e| GatewayError::BadUpstreamResponse {
                provider: PROVIDER,
                reason: format!("invalid stream event: {e}"),
            })?;
        match ev {
            StreamEvent::MessageStart { message: msg } => {
                if !msg.id.is_empty() {
                    self.id = msg.id;
                }
                self.model = msg.model;
                if let Some(u) = msg.usage {
                    self.usage.get_or_insert_with(WireUsage::default).update(&u);
                }
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => self.content_block_start(index, content_block, out),
            StreamEvent::ContentBlockDelta { index, delta } => {
                self.content_block_delta(index, delta, out)
            }
            StreamEvent::ContentBlockStop { index } => self.content_block_stop(index, out),
            StreamEvent::MessageDelta { delta, usage } => {
                if let Some(u) = usage {
                    self.usage.get_or_insert_with(WireUsage::default).update(&u);
                }
                if let Some(reason) = delta.stop_reason.as_deref()
                    && !self.finished
                {
                    self.finished = true;
                    let only_json_tool = self.next_tool == 0
                        && self
                            .blocks
                            .iter()
                            .any(|(_, b)| matches!(b, Block::JsonTool));
                    let finish = if reason == "tool_use" && only_json_tool {
                        "stop"
                    } else {
                        finish_reason(reason)
                    };
                    self.emit(Delta::default(), Some(finish), out);
                }
            }
            StreamEvent::MessageStop => {
                self.stopped = true;
                self.flush_usage(out);
            }
            StreamEvent::Error { .. } => {
                return Err(
                    error_from_json(StatusCode::BAD_GATEWAY, &HeaderMap::new(), &v).unwrap_or_else(
                        || GatewayError::Upstream {
                            provider: PROVIDER,
                            status: StatusCode::BAD_GATEWAY,
                            message: "error event in stream".into(),
                            code: None,
                            retry_after: None,
                        },
                    ),
                );
            }
            StreamEvent::Ping | StreamEvent::Unknown => {}
        }
        Ok(())
    }
}
