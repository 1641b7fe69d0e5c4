//! The /v1/messages edge: canonical chunks -> Anthropic SSE events.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_core::Stream;
use pin_project_lite::pin_project;
use serde_json::{Value, json};

use super::encode::client_tool_id;
use super::error_body;
use crate::GatewayError;
use crate::http::encode::{StreamObserver, format_cost};
use crate::providers::NATIVE_KEY;
use crate::providers::anthropic::wire::{
    BlockDelta, ContentBlock, MessageDeltaBody, StreamEvent, WireMessage, WireUsage, message_id,
    stop_reason,
};
use crate::types::{ChatChunk, ChatStream, ThinkingBlock};

/// A block open in the Anthropic stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Open {
    Text(u32),
    Thinking(u32),
    Tool(u32),
}

/// Translates canonical chunks into Anthropic's event sequence; see [`MessagesSse`].
#[derive(Debug, Default)]
pub(super) struct Translator {
    pub(super) started: bool,
    pub(super) native: bool,
    pub(super) next_block: u32,
    pub(super) open: Option<Open>,
    // Anthropic block index of each OpenAI tool-call index.
    pub(super) tools: Vec<(u32, u32)>,
    pub(super) finish: Option<String>,
    pub(super) usage: Option<crate::types::Usage>,
    pub(super) cost: Option<f64>,
    pub(super) prompt_estimate: u64,
    // The model the client asked for, named in `message_start`.
    pub(super) model: Option<String>,
}

impl Translator {
    pub(super) fn start(&mut self, chunk: &ChatChunk, buf: &mut Vec<u8>) {
        self.started = true;
        StreamEvent::MessageStart {
            message: WireMessage {
                id: message_id(&chunk.id),
                kind: "message".into(),
                role: "assistant".into(),
                model: self.model.clone().unwrap_or_else(|| chunk.model.clone()),
                content: Vec::new(),
                stop_reason: None,
                stop_sequence: None,
                usage: Some(WireUsage {
                    input_tokens: Some(self.prompt_estimate),
                    output_tokens: Some(0),
                    ..WireUsage::default()
                }),
            },
        }
        .write_sse(buf);
        StreamEvent::Ping.write_sse(buf);
    }

    pub(super) fn close(&mut self, buf: &mut Vec<u8>) {
        if let Some(Open::Text(i) | Open::Thinking(i) | Open::Tool(i)) = self.open.take() {
            StreamEvent::ContentBlockStop { index: i.into() }.write_sse(buf);
        }
    }

    /// Closes the open block and starts `block` as the next one.
    fn open_block(&mut self, block: ContentBlock, buf: &mut Vec<u8>) -> u32 {
        self.close(buf);
        let i = self.next_block;
        self.next_block += 1;
        self.open = match block {
            ContentBlock::Text { .. } => Some(Open::Text(i)),
            ContentBlock::Thinking { .. } => Some(Open::Thinking(i)),
            ContentBlock::ToolUse { .. } => Some(Open::Tool(i)),
            _ => None,
        };
        StreamEvent::ContentBlockStart {
            index: i.into(),
            content_block: block,
        }
        .write_sse(buf);
        i
    }

    fn delta(index: u32, delta: BlockDelta, buf: &mut Vec<u8>) {
        StreamEvent::ContentBlockDelta {
            index: index.into(),
            delta,
        }
        .write_sse(buf);
    }

    /// The open thinking block, or a new one.
    fn thinking_block(&mut self, buf: &mut Vec<u8>) -> u32 {
        match self.open {
            Some(Open::Thinking(i)) => i,
            _ => self.open_block(
                ContentBlock::Thinking {
                    thinking: String::new(),
                    signature: String::new(),
                },
                buf,
            ),
        }
    }

    /// A finished reasoning block: the signature of the thinking block streamed so far (or the
    /// whole block when its text did not stream), or a redacted block.
    fn finished_thinking(&mut self, block: &ThinkingBlock, buf: &mut Vec<u8>) {
        match ContentBlock::from_thinking_block(block) {
            ContentBlock::Thinking {
                thinking,
                signature,
            } => {
                let streamed = matches!(self.open, Some(Open::Thinking(_)));
                let i = self.thinking_block(buf);
                if !streamed && !thinking.is_empty() {
                    Self::delta(i, BlockDelta::ThinkingDelta { thinking }, buf);
                }
                if !signature.is_empty() {
                    Self::delta(i, BlockDelta::SignatureDelta { signature }, buf);
                }
                self.close(buf);
            }
            redacted => {
                self.open_block(redacted, buf);
                let i = self.next_block - 1;
                StreamEvent::ContentBlockStop { index: i.into() }.write_sse(buf);
            }
        }
    }

    pub(super) fn chunk(&mut self, mut chunk: ChatChunk, buf: &mut Vec<u8>) {
        if let Some(native) = chunk.extra.remove(NATIVE_KEY) {
            // The Anthropic upstream's own event, as it sent it.
            self.native = true;
            self.started = true;
            let event = native.get("event").and_then(Value::as_str).unwrap_or("");
            let data = native.get("data").and_then(Value::as_str).unwrap_or("{}");
            let renamed = match (&self.model, event) {
                (Some(model), "message_start") => {
                    super::encode::with_model(data, &["message", "model"], model)
                }
                _ => None,
            };
            let data = renamed.as_deref().unwrap_or(data);
            if !event.is_empty() {
                buf.extend_from_slice(b"event: ");
                buf.extend_from_slice(event.as_bytes());
                buf.push(b'\n');
            }
            buf.extend_from_slice(b"data: ");
            buf.extend_from_slice(data.as_bytes());
            buf.extend_from_slice(b"\n\n");
            return;
        }
        if chunk.is_usage_only() {
            self.cost = chunk.extra.get("cost_usd").and_then(Value::as_f64);
            self.usage = chunk.usage.take();
            return;
        }
        if self.native {
            return; // the passed-through events already said it all
        }
        if !self.started {
            self.start(&chunk, buf);
        }
        for c in &chunk.choices {
            if let Some(thinking) = c
                .delta
                .reasoning_content
                .as_deref()
                .filter(|t| !t.is_empty())
            {
                let i = self.thinking_block(buf);
                Self::delta(
                    i,
                    BlockDelta::ThinkingDelta {
                        thinking: thinking.to_owned(),
                    },
                    buf,
                );
            }
            for block in c.delta.thinking_blocks.iter().flatten() {
                self.finished_thinking(block, buf);
            }
            if let Some(text) = c.delta.content.as_deref().filter(|t| !t.is_empty()) {
                let index = match self.open {
                    Some(Open::Text(i)) => i,
                    _ => self.open_block(
                        ContentBlock::Text {
                            text: String::new(),
                        },
                        buf,
                    ),
                };
                Self::delta(
                    index,
                    BlockDelta::TextDelta {
                        text: text.to_owned(),
                    },
                    buf,
                );
            }
            for call in c.delta.tool_calls.iter().flatten() {
                let known = self
                    .tools
                    .iter()
                    .find(|(k, _)| *k == call.index)
                    .map(|t| t.1);
                let index = match known {
                    Some(i) => i,
                    None => {
                        let name = call
                            .function
                            .as_ref()
                            .and_then(|f| f.name.clone())
                            .unwrap_or_default();
                        let i = self.open_block(
                            ContentBlock::ToolUse {
                                id: client_tool_id(
                                    call.id.as_deref().unwrap_or_default(),
                                    call.extra_content.as_ref(),
                                ),
                                name,
                                input: json!({}),
                            },
                            buf,
                        );
                        self.tools.push((call.index, i));
                        i
                    }
                };
                if let Some(args) = call
                    .function
                    .as_ref()
                    .and_then(|f| f.arguments.as_deref())
                    .filter(|a| !a.is_empty())
                {
                    Self::delta(
                        index,
                        BlockDelta::InputJsonDelta {
                            partial_json: args.to_owned(),
                        },
                        buf,
                    );
                }
            }
            if let Some(f) = &c.finish_reason {
                self.finish = Some(f.clone());
            }
        }
    }

    pub(super) fn end(&mut self, buf: &mut Vec<u8>) {
        if self.native {
            if let Some(c) = self.cost {
                buf.extend_from_slice(format!(": cost_usd={}\n\n", format_cost(c)).as_bytes());
            }
            return;
        }
        if !self.started {
            self.start(&ChatChunk::delta("", 0, "", Default::default(), None), buf);
        }
        self.close(buf);
        let usage = self.usage.take().unwrap_or_default();
        let reason = stop_reason(self.finish.as_deref(), !self.tools.is_empty());
        StreamEvent::MessageDelta {
            delta: MessageDeltaBody {
                stop_reason: Some(reason.into()),
                stop_sequence: None,
            },
            usage: Some(WireUsage::of(&usage)),
        }
        .write_sse(buf);
        if let Some(c) = self.cost {
            buf.extend_from_slice(format!(": cost_usd={}\n\n", format_cost(c)).as_bytes());
        }
        StreamEvent::MessageStop.write_sse(buf);
    }

    pub(super) fn error(&mut self, err: &GatewayError, buf: &mut Vec<u8>) {
        let body = error_body(err.status(), &err.to_string());
        StreamEvent::Error {
            error: body.get("error").cloned().unwrap_or_default(),
        }
        .write_sse(buf);
    }
}

pin_project! {
    /// Encodes a canonical stream as Anthropic SSE (Anthropic's streaming Messages documentation): `message_start` and a
    /// `ping`, a `content_block_start`/`_delta`/`_stop` run per text or tool-use block, then
    /// exactly one `message_delta` with the stop reason and the exact usage (from the usage
    /// chunk the cost layer ends every stream with) and `message_stop`. No `[DONE]`. A stream
    /// passed through from an Anthropic upstream is written event for event.
    pub struct MessagesSse {
        #[pin]
        inner: ChatStream,
        translator: Translator,
        done: bool,
        observer: Option<Box<dyn StreamObserver>>,
    }

    impl PinnedDrop for MessagesSse {
        fn drop(this: Pin<&mut Self>) {
            if let Some(obs) = this.project().observer.take() {
                obs.abandon();
            }
        }
    }
}

impl std::fmt::Debug for MessagesSse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessagesSse")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl MessagesSse {
    /// Encodes `inner`; `prompt_estimate` is `message_start`'s input count (the exact one
    /// follows in `message_delta`).
    pub fn new(
        inner: ChatStream,
        prompt_estimate: u64,
        observer: Option<Box<dyn StreamObserver>>,
    ) -> Self {
        Self {
            inner,
            translator: Translator {
                prompt_estimate,
                ..Translator::default()
            },
            done: false,
            observer,
        }
    }
}

impl MessagesSse {
    /// Names `model` in a translated stream's `message_start`, whichever model answers (an
    /// Anthropic upstream's events pass through as they are).
    pub fn naming(mut self, model: String) -> Self {
        self.translator.model = Some(model);
        self
    }
}

impl Stream for MessagesSse {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        let mut buf = Vec::new();
        loop {
            match ready!(this.inner.as_mut().poll_next(cx)) {
                Some(Ok(chunk)) => {
                    this.translator.chunk(chunk, &mut buf);
                    if !buf.is_empty() {
                        return Poll::Ready(Some(Ok(Bytes::from(buf))));
                    }
                }
                Some(Err(e)) => {
                    *this.done = true;
                    this.translator.error(&e, &mut buf);
                    if let Some(obs) = this.observer.take() {
                        obs.finish(false);
                    }
                    return Poll::Ready(Some(Ok(Bytes::from(buf))));
                }
                None => {
                    *this.done = true;
                    this.translator.end(&mut buf);
                    if let Some(obs) = this.observer.take() {
                        obs.finish(true);
                    }
                    return Poll::Ready(Some(Ok(Bytes::from(buf))));
                }
            }
        }
    }
}
