//! Anthropic: wire stream -> canonical chunks.

use std::collections::VecDeque;

use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::error::error_from_json;
use super::response::{WireMessage, WireUsage, finish_reason};
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

    pub(super) fn content_block_start(&mut self, v: &Value, out: &mut VecDeque<ChatChunk>) {
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        let cb = v.get("content_block").unwrap_or(&Value::Null);
        let str_of = |k: &str| cb.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let block = match cb.get("type").and_then(Value::as_str) {
            Some("text") => {
                let text = str_of("text");
                if !text.is_empty() {
                    self.emit(Delta::text(text), None, out);
                }
                Block::Text
            }
            Some("thinking") => Block::Thinking,
            Some("tool_use") if self.json_tool && str_of("name") == JSON_TOOL => Block::JsonTool,
            Some("tool_use") => {
                let k = self.next_tool;
                self.next_tool += 1;
                let delta = Self::tool_delta(k, Some(str_of("id")), Some(str_of("name")), "");
                self.emit(delta, None, out);
                Block::Tool {
                    index: k,
                    args: false,
                }
            }
            _ => Block::Other,
        };
        self.blocks.push((index, block));
    }

    pub(super) fn content_block_delta(&mut self, v: &Value, out: &mut VecDeque<ChatChunk>) {
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        let delta = v.get("delta").unwrap_or(&Value::Null);
        let field = |k: &str| delta.get(k).and_then(Value::as_str).unwrap_or("");
        // A delta for a block that never started is taken as text (tolerant of reordering).
        let block = self.block(index).copied().unwrap_or(Block::Text);
        match (delta.get("type").and_then(Value::as_str), block) {
            (Some("text_delta"), _) => {
                let text = field("text");
                if !text.is_empty() {
                    self.emit(Delta::text(text), None, out);
                }
            }
            (Some("input_json_delta"), Block::Tool { index: k, .. }) => {
                let fragment = field("partial_json");
                // The first fragment is often empty: nothing to forward.
                if !fragment.is_empty() {
                    if let Some(Block::Tool { args, .. }) = self.block(index) {
                        *args = true;
                    }
                    self.emit(Self::tool_delta(k, None, None, fragment), None, out);
                }
            }
            (Some("input_json_delta"), Block::JsonTool) => {
                let fragment = field("partial_json");
                if !fragment.is_empty() {
                    self.emit(Delta::text(fragment), None, out);
                }
            }
            (Some("thinking_delta"), _) => {
                let mut d = Delta::default();
                d.extra
                    .insert("reasoning_content".into(), json!(field("thinking")));
                self.emit(d, None, out);
            }
            _ => {} // signature_delta, citations_delta
        }
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
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .or(event.event.as_deref())
            .unwrap_or("");
        match kind {
            "message_start" => {
                let msg: WireMessage = v
                    .get("message")
                    .cloned()
                    .and_then(|m| serde_json::from_value(m).ok())
                    .unwrap_or_default();
                if !msg.id.is_empty() {
                    self.id = msg.id;
                }
                self.model = msg.model;
                if let Some(u) = msg.usage {
                    self.usage.get_or_insert_with(WireUsage::default).update(&u);
                }
            }
            "content_block_start" => self.content_block_start(&v, out),
            "content_block_delta" => self.content_block_delta(&v, out),
            "content_block_stop" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                // An empty input is `{}`: send that rather than an arguments string of "".
                if let Some(Block::Tool { index: k, args }) = self.block(index).copied()
                    && !args
                {
                    self.emit(Self::tool_delta(k, None, None, "{}"), None, out);
                }
            }
            "message_delta" => {
                if let Some(u) = v
                    .get("usage")
                    .and_then(|u| serde_json::from_value::<WireUsage>(u.clone()).ok())
                {
                    self.usage.get_or_insert_with(WireUsage::default).update(&u);
                }
                if let Some(reason) = v
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
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
            "message_stop" => {
                self.stopped = true;
                self.flush_usage(out);
            }
            "error" => {
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
            _ => {} // ping and event types added later
        }
        Ok(())
    }
}
