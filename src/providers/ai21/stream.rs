//! AI21's stream: OpenAI-style chunks without `model` and `created`, or a complete answer to
//! replay as a stream.

use std::collections::VecDeque;

use super::PROVIDER;
use super::response::complete;
use crate::GatewayError;
use crate::providers::openai_compat::OpenAiDecoder;
use crate::providers::{SseEvent, StreamDecoder, replay};
use crate::types::ChatChunk;

/// Decodes AI21's OpenAI-style stream (or replays a complete answer), filling `model` and
/// `created`, which AI21 chunks leave out.
#[derive(Debug)]
pub struct Ai21Decoder {
    pub(super) inner: OpenAiDecoder,
    /// The answer is a complete one to replay.
    pub(super) replays: bool,
    pub(super) model: String,
    pub(super) created: u64,
    pub(super) replayed: bool,
}

impl Ai21Decoder {
    fn fill(&self, out: &mut VecDeque<ChatChunk>, from: usize) {
        for c in out.iter_mut().skip(from) {
            if c.model.is_empty() {
                c.model = self.model.clone();
            }
            if c.created == 0 {
                c.created = self.created;
            }
        }
    }
}

impl StreamDecoder for Ai21Decoder {
    fn event(
        &mut self,
        event: SseEvent,
        out: &mut VecDeque<ChatChunk>,
    ) -> Result<(), GatewayError> {
        let from = out.len();
        if self.replays {
            let resp = complete(&self.model, event.data.as_bytes())?;
            replay(&resp, out);
            self.replayed = true;
        } else {
            self.inner.event(event, out)?;
        }
        self.fill(out, from);
        Ok(())
    }

    fn finish(&mut self, out: &mut VecDeque<ChatChunk>) -> Result<(), GatewayError> {
        if self.replays {
            return match self.replayed {
                true => Ok(()),
                false => Err(GatewayError::BadUpstreamResponse {
                    provider: PROVIDER,
                    reason: "empty answer".into(),
                }),
            };
        }
        let from = out.len();
        self.inner.finish(out)?;
        self.fill(out, from);
        Ok(())
    }
}
