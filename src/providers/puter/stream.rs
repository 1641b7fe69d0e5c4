//! Puter's NDJSON stream: `text` lines, whole `tool_use` lines, a last `usage`, or `error`.

use std::collections::VecDeque;

use http::StatusCode;
use serde_json::Value;

use super::PROVIDER;
use super::error::{puter_error, v1_failure};
use super::response::{arguments, usage};
use crate::GatewayError;
use crate::providers::{SseEvent, StreamDecoder};
use crate::types::{ChatChunk, Delta, FunctionCallDelta, ToolCallDelta};

/// Decodes Puter's NDJSON stream.
#[derive(Debug)]
pub struct PuterDecoder {
    pub(super) id: String,
    pub(super) created: u64,
    pub(super) model: String,
    pub(super) tools: u32,
    pub(super) ended: bool,
}

impl PuterDecoder {
    fn push(&self, out: &mut VecDeque<ChatChunk>, delta: Delta, finish: Option<&str>) {
        out.push_back(ChatChunk::delta(
            &self.id,
            self.created,
            &self.model,
            delta,
            finish,
        ));
    }
}

impl StreamDecoder for PuterDecoder {
    fn event(
        &mut self,
        event: SseEvent,
        out: &mut VecDeque<ChatChunk>,
    ) -> Result<(), GatewayError> {
        if self.ended {
            return Ok(());
        }
        let v: Value =
            serde_json::from_str(&event.data).map_err(|e| GatewayError::BadUpstreamResponse {
                provider: PROVIDER,
                reason: format!("invalid stream line: {e}"),
            })?;
        if let Some(e) = v1_failure(&v) {
            return Err(e);
        }
        match v.get("type").and_then(Value::as_str) {
            Some("text") => {
                if let Some(t) = v.get("text").and_then(Value::as_str)
                    && !t.is_empty()
                {
                    self.push(out, Delta::text(t), None);
                }
            }
            Some("reasoning") => {
                if let Some(t) = v.get("reasoning").and_then(Value::as_str) {
                    let mut d = Delta::default();
                    d.extra.insert("reasoning_content".into(), t.into());
                    self.push(out, d, None);
                }
            }
            Some("tool_use") => {
                let index = self.tools;
                self.tools += 1;
                let call = ToolCallDelta {
                    extra_content: None,
                    index,
                    id: v.get("id").and_then(Value::as_str).map(str::to_owned),
                    kind: Some("function".into()),
                    function: Some(FunctionCallDelta {
                        name: v.get("name").and_then(Value::as_str).map(str::to_owned),
                        arguments: Some(arguments(v.get("input"))),
                    }),
                };
                let d = Delta {
                    tool_calls: Some(vec![call]),
                    ..Delta::default()
                };
                self.push(out, d, None);
            }
            Some("usage") => {
                self.ended = true;
                let finish = if self.tools > 0 { "tool_calls" } else { "stop" };
                self.push(out, Delta::default(), Some(finish));
                // `{}` when the upstream never reported usage: the edge estimates then.
                if let Some(u) = v.get("usage").and_then(usage) {
                    out.push_back(ChatChunk::usage_only(
                        &self.id,
                        self.created,
                        &self.model,
                        u,
                    ));
                }
            }
            Some("error") => {
                return Err(puter_error(StatusCode::OK, &v, None));
            }
            // extra_content, compaction, and whatever comes next.
            _ if v.get("error").is_some() && v.get("type").is_none() => {
                return Err(puter_error(StatusCode::OK, &v, None));
            }
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
            reason: "stream ended before its usage line".into(),
        })
    }
}
