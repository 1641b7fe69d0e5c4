//! Cohere: wire stream -> canonical chunks.

use std::collections::{HashMap, VecDeque};

use serde_json::Value;

use super::PROVIDER;
use super::error::finish_error;
use super::response::{finish_reason, usage};
use crate::GatewayError;
use crate::providers::{SseEvent, StreamDecoder};
use crate::types::{ChatChunk, Delta, FunctionCallDelta, ToolCallDelta};

/// Decodes Cohere's typed SSE events.
#[derive(Debug)]
pub struct CohereDecoder {
    pub(super) id: String,
    pub(super) created: u64,
    pub(super) model: String,
    pub(super) emitted: bool,
    // Cohere's tool-call index -> the OpenAI index (a running counter).
    pub(super) tools: HashMap<u64, u32>,
    pub(super) current_tool: Option<u32>,
    pub(super) ended: bool,
}

// === impl CohereDecoder ===

impl CohereDecoder {
    /// A decoder for a stream answering for `model`.
    pub fn new(model: &str) -> Self {
        Self {
            id: crate::types::completion_id(),
            created: crate::types::unix_now(),
            model: model.to_owned(),
            emitted: false,
            tools: HashMap::new(),
            current_tool: None,
            ended: false,
        }
    }

    pub(super) fn push(
        &mut self,
        out: &mut VecDeque<ChatChunk>,
        delta: Delta,
        finish: Option<&str>,
    ) {
        self.emitted = true;
        out.push_back(ChatChunk::delta(
            &self.id,
            self.created,
            &self.model,
            delta,
            finish,
        ));
    }

    pub(super) fn tool_delta(&mut self, out: &mut VecDeque<ChatChunk>, delta: ToolCallDelta) {
        let d = Delta {
            tool_calls: Some(vec![delta]),
            ..Delta::default()
        };
        self.push(out, d, None);
    }
}

impl StreamDecoder for CohereDecoder {
    fn event(
        &mut self,
        event: SseEvent,
        out: &mut VecDeque<ChatChunk>,
    ) -> Result<(), GatewayError> {
        let data = event.data.trim();
        if data.is_empty() || data == "[DONE]" || self.ended {
            return Ok(());
        }
        let v: Value =
            serde_json::from_str(data).map_err(|e| GatewayError::BadUpstreamResponse {
                provider: PROVIDER,
                reason: format!("invalid stream event: {e}"),
            })?;
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .or(event.event.as_deref())
            .unwrap_or("");
        let delta = v.get("delta").unwrap_or(&Value::Null);
        let message = delta.get("message").unwrap_or(&Value::Null);
        let index = v.get("index").and_then(Value::as_u64);
        match kind {
            "message-start" => {
                if let Some(id) = v.get("id").and_then(Value::as_str)
                    && !id.is_empty()
                    && !self.emitted
                {
                    self.id = id.to_owned();
                }
                self.push(out, Delta::role(), None);
            }
            "content-delta" => {
                let content = message.get("content").unwrap_or(&Value::Null);
                if let Some(text) = content.get("text").and_then(Value::as_str) {
                    if !text.is_empty() {
                        self.push(out, Delta::text(text), None);
                    }
                } else if let Some(thinking) = content.get("thinking").and_then(Value::as_str) {
                    let mut d = Delta::default();
                    d.extra
                        .insert("reasoning_content".into(), thinking.to_owned().into());
                    self.push(out, d, None);
                }
            }
            "tool-call-start" => {
                let tc = match message.get("tool_calls") {
                    Some(Value::Array(a)) => a.first().unwrap_or(&Value::Null),
                    Some(other) => other,
                    None => &Value::Null,
                };
                let ours = self.tools.len() as u32;
                if let Some(i) = index {
                    self.tools.insert(i, ours);
                }
                self.current_tool = Some(ours);
                let f = tc.get("function").unwrap_or(&Value::Null);
                self.tool_delta(
                    out,
                    ToolCallDelta {
                        extra_content: None,
                        index: ours,
                        id: tc.get("id").and_then(Value::as_str).map(str::to_owned),
                        kind: Some("function".into()),
                        function: Some(FunctionCallDelta {
                            name: f.get("name").and_then(Value::as_str).map(str::to_owned),
                            arguments: Some(
                                f.get("arguments")
                                    .and_then(Value::as_str)
                                    .unwrap_or("")
                                    .to_owned(),
                            ),
                        }),
                    },
                );
            }
            "tool-call-delta" => {
                let args = message
                    .get("tool_calls")
                    .and_then(|t| t.get("function"))
                    .and_then(|f| f.get("arguments"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let ours = index
                    .and_then(|i| self.tools.get(&i).copied())
                    .or(self.current_tool);
                if let Some(ours) = ours
                    && !args.is_empty()
                {
                    self.tool_delta(
                        out,
                        ToolCallDelta {
                            index: ours,
                            function: Some(FunctionCallDelta {
                                name: None,
                                arguments: Some(args.to_owned()),
                            }),
                            ..ToolCallDelta::default()
                        },
                    );
                }
            }
            "message-end" => {
                self.ended = true;
                let reason = delta
                    .get("finish_reason")
                    .and_then(Value::as_str)
                    .unwrap_or("COMPLETE");
                let Some(finish) = finish_reason(reason) else {
                    return Err(finish_error(
                        reason,
                        delta.get("error").and_then(Value::as_str),
                    ));
                };
                self.push(out, Delta::default(), Some(finish));
                if let Some(u) = delta.get("usage").and_then(usage) {
                    out.push_back(ChatChunk::usage_only(
                        &self.id,
                        self.created,
                        &self.model,
                        u,
                    ));
                }
            }
            // content-start/-end, tool-plan-delta, tool-call-end, citations, debug.
            _ => {}
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut VecDeque<ChatChunk>) -> Result<(), GatewayError> {
        if self.ended {
            return Ok(());
        }
        Err(GatewayError::Connect {
            provider: PROVIDER,
            sent: true,
            reason: "stream ended before message-end".into(),
        })
    }
}
