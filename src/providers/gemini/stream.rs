//! Gemini: wire stream -> canonical chunks.

use std::collections::{HashMap, VecDeque};

use http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::PROVIDER;
use super::error::error_from_json;
use super::response::{WireResponse, WireUsage, finish_reason, id_prefix, read_parts};
use crate::GatewayError;
use crate::providers::{RAW_JSON_EVENT, SseEvent, StreamDecoder};
use crate::types::{
    ChatChunk, ChunkChoice, Delta, FunctionCallDelta, ToolCallDelta, google_extra_content,
};

// === stream translation ===

/// Decodes Gemini's `?alt=sse` stream: every event is a whole `GenerateContentResponse` with
/// only the new parts. The stream has no terminator; it is complete when some chunk carried a
/// `finishReason` (or a prompt block) before the connection closed.
#[derive(Debug)]
pub struct GeminiDecoder {
    pub(super) id: String,
    pub(super) model: String,
    pub(super) created: u64,
    pub(super) prefix: String,
    pub(super) started: bool,
    /// Per candidate: next OpenAI tool index, and whether a function was called.
    pub(super) candidates: HashMap<u32, (u32, bool)>,
    pub(super) usage: Option<WireUsage>,
    pub(super) finished: bool,
}

// === impl GeminiDecoder ===

impl GeminiDecoder {
    /// A decoder for a stream from `model`.
    pub fn new(model: &str) -> Self {
        Self {
            id: String::new(),
            model: model.to_owned(),
            created: crate::types::unix_now(),
            prefix: id_prefix(),
            started: false,
            candidates: HashMap::new(),
            usage: None,
            finished: false,
        }
    }

    pub(super) fn emit(
        &mut self,
        index: u32,
        delta: Delta,
        finish: Option<&str>,
        out: &mut VecDeque<ChatChunk>,
    ) {
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
        let mut chunk = ChatChunk::delta(&self.id, self.created, &self.model, delta, finish);
        if let Some(ChunkChoice { index: i, .. }) = chunk.choices.first_mut() {
            *i = index;
        }
        out.push_back(chunk);
    }
}

impl StreamDecoder for GeminiDecoder {
    fn event(
        &mut self,
        event: SseEvent,
        out: &mut VecDeque<ChatChunk>,
    ) -> Result<(), GatewayError> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(());
        }
        let v: Value =
            serde_json::from_str(data).map_err(|e| GatewayError::BadUpstreamResponse {
                provider: PROVIDER,
                reason: if event.event.as_deref() == Some(RAW_JSON_EVENT) {
                    format!("unreadable text in the stream: {e}")
                } else {
                    format!("invalid stream event: {e}")
                },
            })?;
        // An error written into the stream, as a bare object or a `data:` event.
        if v.get("error").is_some() {
            return Err(
                error_from_json(StatusCode::BAD_GATEWAY, &HeaderMap::new(), &v).unwrap_or_else(
                    || GatewayError::BadUpstreamResponse {
                        provider: PROVIDER,
                        reason: "error object in stream".into(),
                    },
                ),
            );
        }
        let resp: WireResponse =
            serde_json::from_value(v).map_err(|e| GatewayError::BadUpstreamResponse {
                provider: PROVIDER,
                reason: format!("unexpected stream chunk: {e}"),
            })?;
        if self.id.is_empty() {
            self.id = resp
                .response_id
                .as_ref()
                .map(|id| format!("chatcmpl-{id}"))
                .unwrap_or_else(crate::types::completion_id);
        }
        // Every chunk names the same model: take the upstream's only before the first one.
        if let Some(m) = resp.model_version
            && !self.started
        {
            self.model = m;
        }
        if let Some(u) = resp.usage_metadata {
            // Later chunks carry running or final totals: keep the last seen.
            self.usage = Some(u);
        }
        for (pos, cand) in resp.candidates.iter().enumerate() {
            let index = cand.index.unwrap_or(pos as u32);
            let parts = read_parts(cand.content.as_ref().map_or(&[][..], |c| &c.parts));
            if !parts.thoughts.is_empty() {
                let d = Delta {
                    reasoning_content: Some(parts.thoughts),
                    ..Delta::default()
                };
                self.emit(index, d, None, out);
            }
            if !parts.text.is_empty() {
                self.emit(index, Delta::text(parts.text), None, out);
            }
            for (id, name, arguments, signature) in parts.calls {
                // Function calls arrive whole: one delta with id, name and all arguments.
                let state = self.candidates.entry(index).or_default();
                let k = state.0;
                *state = (k + 1, true);
                let delta = Delta {
                    tool_calls: Some(vec![ToolCallDelta {
                        extra_content: signature.as_deref().map(google_extra_content),
                        index: k,
                        id: Some(id.unwrap_or_else(|| format!("{}_{index}_{k}", self.prefix))),
                        kind: Some("function".into()),
                        function: Some(FunctionCallDelta {
                            name: Some(name),
                            arguments: Some(arguments),
                        }),
                    }]),
                    ..Delta::default()
                };
                self.emit(index, delta, None, out);
            }
            if let Some(reason) = cand
                .finish_reason
                .as_deref()
                .filter(|r| !r.is_empty() && *r != "FINISH_REASON_UNSPECIFIED")
            {
                let called = self.candidates.get(&index).is_some_and(|s| s.1);
                self.finished = true;
                self.emit(
                    index,
                    Delta::default(),
                    Some(finish_reason(reason, called)),
                    out,
                );
            }
        }
        if resp.candidates.is_empty()
            && resp
                .prompt_feedback
                .as_ref()
                .is_some_and(|f| f.block_reason.is_some())
        {
            self.finished = true;
            self.emit(0, Delta::default(), Some("content_filter"), out);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut VecDeque<ChatChunk>) -> Result<(), GatewayError> {
        if !self.finished {
            return Err(GatewayError::Connect {
                provider: PROVIDER,
                sent: true,
                reason: "stream ended before any chunk carried a finishReason".into(),
            });
        }
        if let Some(u) = self.usage.take() {
            out.push_back(ChatChunk::usage_only(
                &self.id,
                self.created,
                &self.model,
                u.to_usage(),
            ));
        }
        Ok(())
    }
}
