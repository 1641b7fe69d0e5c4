//! OpenAI-compatible: wire stream -> canonical chunks.

use std::collections::VecDeque;

use serde_json::Value;

use super::response::normalise_finish;
use crate::GatewayError;
use crate::providers::{SseEvent, StreamDecoder};
use crate::types::{ChatChunk, Usage};

/// Decodes an OpenAI-format SSE stream, moving usage to one final usage-only chunk.
#[derive(Debug)]
pub struct OpenAiDecoder {
    pub(super) provider: &'static str,
    pub(super) usage: Option<Usage>,
    pub(super) last: Option<(String, u64, String)>,
    pub(super) saw_done: bool,
    pub(super) saw_finish: bool,
    /// The upstream speaks the Responses API (a pass-through).
    pub(crate) responses: bool,
}

impl OpenAiDecoder {
    /// A decoder for `provider`'s stream.
    pub fn new(provider: &'static str) -> Self {
        Self {
            provider,
            usage: None,
            last: None,
            saw_done: false,
            saw_finish: false,
            responses: false,
        }
    }

    /// An error event in the stream (`data: {"error": {...}}`).
    pub(super) fn in_band_error(&self, err: &Value) -> GatewayError {
        let message = err
            .get("message")
            .and_then(Value::as_str)
            .or_else(|| err.as_str())
            .map(crate::providers::summarise)
            .unwrap_or_else(|| "error event in stream".into());
        GatewayError::Upstream {
            provider: self.provider,
            status: http::StatusCode::BAD_GATEWAY,
            message,
            code: err.get("code").map(|c| {
                c.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| c.to_string())
            }),
            retry_after: None,
        }
    }

    pub(super) fn flush_usage(&mut self, out: &mut VecDeque<ChatChunk>) {
        if let Some(u) = self.usage.take() {
            let (id, created, model) = self.last.clone().unwrap_or_default();
            out.push_back(ChatChunk::usage_only(&id, created, &model, u));
        }
    }
}

impl StreamDecoder for OpenAiDecoder {
    fn event(
        &mut self,
        event: SseEvent,
        out: &mut VecDeque<ChatChunk>,
    ) -> Result<(), GatewayError> {
        if self.responses {
            if super::responses::event(self.provider, &event, &mut self.usage, out)? {
                self.saw_done = true;
                self.flush_usage(out);
            }
            return Ok(());
        }
        let data = event.data.trim();
        if data == "[DONE]" {
            self.saw_done = true;
            self.flush_usage(out);
            return Ok(());
        }
        if self.saw_done || data.is_empty() {
            return Ok(());
        }
        // One parse on the hot path: every field of a chunk has a default, so an error event
        // parses too, with its `error` in `extra`. Only a body that is no chunk at all is read
        // again, as a plain value, for the error it may carry.
        let mut chunk: ChatChunk = match serde_json::from_str(data) {
            Ok(chunk) => chunk,
            Err(e) => {
                let value: Value =
                    serde_json::from_str(data).map_err(|_| GatewayError::BadUpstreamResponse {
                        provider: self.provider,
                        reason: format!("invalid stream event: {e}"),
                    })?;
                return Err(match value.get("error") {
                    Some(err) => self.in_band_error(err),
                    None => GatewayError::BadUpstreamResponse {
                        provider: self.provider,
                        reason: format!("unexpected stream chunk: {e}"),
                    },
                });
            }
        };
        if let Some(err) = chunk.extra.get("error") {
            return Err(self.in_band_error(err));
        }
        let groq_usage = chunk
            .extra
            .remove("x_groq")
            .and_then(|mut x| x.get_mut("usage").map(Value::take));
        chunk.object = "chat.completion.chunk".into();
        if let Some(u) = chunk
            .usage
            .take()
            .or_else(|| groq_usage.and_then(|u| serde_json::from_value(u).ok()))
        {
            let mut u: Usage = u;
            u.fill_total();
            u.adopt_provider_meters();
            self.usage = Some(u);
        }
        // Azure's first chunk has `id: ""` and `model: ""`: take the ids from a real one.
        if self.last.as_ref().is_none_or(|(id, ..)| id.is_empty()) {
            self.last = Some((chunk.id.clone(), chunk.created, chunk.model.clone()));
        }
        for c in &mut chunk.choices {
            if c.delta.reasoning_content.is_none() {
                c.delta.reasoning_content = super::response::reasoning_text(&mut c.delta.extra);
            }
            if let Some(f) = &c.finish_reason {
                if f == "error" {
                    return Err(GatewayError::Upstream {
                        provider: self.provider,
                        status: http::StatusCode::BAD_GATEWAY,
                        message: "the upstream ended the stream with an error".into(),
                        code: None,
                        retry_after: None,
                    });
                }
                self.saw_finish = true;
                c.finish_reason = Some(normalise_finish(f).to_owned());
            }
        }
        // Azure's first chunk (prompt filter results) and usage-only chunks carry no delta.
        if !chunk.choices.is_empty() {
            out.push_back(chunk);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut VecDeque<ChatChunk>) -> Result<(), GatewayError> {
        if self.saw_done || self.saw_finish {
            self.flush_usage(out);
            return Ok(());
        }
        Err(GatewayError::Connect {
            provider: self.provider,
            sent: true,
            reason: "stream ended without [DONE]".into(),
        })
    }
}
