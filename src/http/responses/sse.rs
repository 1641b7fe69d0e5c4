//! The /v1/responses edge: canonical chunks -> the Responses streaming events.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_core::Stream;
use pin_project_lite::pin_project;

use super::encode::{Shape, is_incomplete, message_item, new_id};
use super::opaque::Opaque;
use crate::GatewayError;
use crate::http::encode::StreamObserver;
use crate::providers::NATIVE_KEY;
use crate::types::responses::{
    ContentPart, EventKind, Item, ReasoningItem, ResponseError, ResponseObject, ResponseStatus,
    StreamEvent, SummaryText,
};
use crate::types::{ChatChunk, ChatStream, Usage};
use serde_json::Value;

/// A function call being streamed.
#[derive(Debug)]
struct Call {
    output_index: u32,
    item_id: String,
    call_id: String,
    name: String,
    arguments: String,
}

/// The item being streamed (tool calls stay open until the end, as their fragments may
/// interleave).
#[derive(Debug)]
enum Open {
    Text {
        index: u32,
        id: String,
        text: String,
    },
    Reasoning {
        index: u32,
        id: String,
        text: String,
    },
}

/// The state machine of one response stream.
#[derive(Debug)]
pub struct Translator {
    shape: Shape,
    seq: u64,
    started: bool,
    next_index: u32,
    open: Option<Open>,
    calls: Vec<(u32, Call)>,
    output: Vec<(u32, Item)>,
    opaque: Opaque,
    finish: Option<String>,
    usage: Option<Usage>,
    // The upstream's own events are relayed (a pass-through).
    native: bool,
}

impl Translator {
    /// A translator answering in `shape`.
    pub fn new(shape: Shape) -> Self {
        Self {
            shape,
            seq: 0,
            started: false,
            next_index: 0,
            open: None,
            calls: Vec::new(),
            output: Vec::new(),
            opaque: Opaque::default(),
            finish: None,
            usage: None,
            native: false,
        }
    }

    fn push(&mut self, kind: EventKind, buf: &mut Vec<u8>) {
        let ev = StreamEvent {
            kind,
            sequence_number: self.seq,
        };
        self.seq += 1;
        buf.extend_from_slice(b"event: ");
        buf.extend_from_slice(ev.type_name().as_bytes());
        buf.extend_from_slice(b"\ndata: ");
        if serde_json::to_writer(&mut *buf, &ev).is_err() {
            buf.extend_from_slice(b"{}");
        }
        buf.extend_from_slice(b"\n\n");
    }

    fn snapshot(
        &self,
        status: ResponseStatus,
        error: Option<ResponseError>,
    ) -> Box<ResponseObject> {
        let mut items = self.output.clone();
        items.sort_by_key(|(i, _)| *i);
        let usage = (status != ResponseStatus::InProgress)
            .then_some(self.usage.as_ref())
            .flatten();
        Box::new(self.shape.response(
            items.into_iter().map(|(_, it)| it).collect(),
            status,
            usage,
            error,
        ))
    }

    fn start(&mut self, buf: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let response = self.snapshot(ResponseStatus::InProgress, None);
        self.push(
            EventKind::Created {
                response: response.clone(),
            },
            buf,
        );
        self.push(EventKind::InProgress { response }, buf);
    }

    fn index(&mut self) -> u32 {
        let i = self.next_index;
        self.next_index += 1;
        i
    }

    fn close(&mut self, buf: &mut Vec<u8>) {
        match self.open.take() {
            None => {}
            Some(Open::Text { index, id, text }) => {
                let part = ContentPart::output_text(text.clone());
                self.push(
                    EventKind::OutputTextDone {
                        item_id: id.clone(),
                        output_index: index,
                        content_index: 0,
                        text,
                        logprobs: Vec::new(),
                    },
                    buf,
                );
                self.push(
                    EventKind::ContentPartDone {
                        item_id: id.clone(),
                        output_index: index,
                        content_index: 0,
                        part: part.clone(),
                    },
                    buf,
                );
                let item = message_item(id, vec![part], "completed");
                self.output.push((index, item.clone()));
                self.push(
                    EventKind::OutputItemDone {
                        output_index: index,
                        item,
                    },
                    buf,
                );
            }
            Some(Open::Reasoning { index, id, text }) => {
                let part = SummaryText::new(text.clone());
                self.push(
                    EventKind::ReasoningSummaryTextDone {
                        item_id: id.clone(),
                        output_index: index,
                        summary_index: 0,
                        text,
                    },
                    buf,
                );
                self.push(
                    EventKind::ReasoningSummaryPartDone {
                        item_id: id.clone(),
                        output_index: index,
                        summary_index: 0,
                        part: part.clone(),
                    },
                    buf,
                );
                // The blocks seen so far; the call state follows in its own item at the end.
                let opaque = Opaque {
                    calls: HashMap::new(),
                    ..std::mem::take(&mut self.opaque)
                };
                let item = Item::Reasoning(ReasoningItem {
                    id,
                    summary: vec![part],
                    content: None,
                    encrypted_content: (self.shape.encrypted && !opaque.is_empty())
                        .then(|| opaque.write()),
                    status: Some("completed".into()),
                });
                self.output.push((index, item.clone()));
                self.push(
                    EventKind::OutputItemDone {
                        output_index: index,
                        item,
                    },
                    buf,
                );
            }
        }
    }

    /// Translates one canonical chunk.
    pub fn chunk(&mut self, mut chunk: ChatChunk, buf: &mut Vec<u8>) {
        if let Some(native) = chunk.extra.remove(NATIVE_KEY) {
            self.native = true;
            let event = native.get("event").and_then(Value::as_str).unwrap_or("");
            let data = native.get("data").and_then(Value::as_str).unwrap_or("{}");
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
        if self.native {
            return; // the relayed events said it all
        }
        if let Some(u) = chunk.usage.take() {
            self.usage = Some(u);
        }
        let Some(choice) = chunk.choices.into_iter().next() else {
            return;
        };
        self.start(buf);
        let mut delta = choice.delta;
        // The typed field, or the same field among the extras where an adapter put it there.
        let reasoning = delta.reasoning_content.take().or_else(|| {
            match delta.extra.remove("reasoning_content") {
                Some(Value::String(s)) => Some(s),
                _ => None,
            }
        });
        if let Some(r) = reasoning.filter(|r| !r.is_empty()) {
            if !matches!(self.open, Some(Open::Reasoning { .. })) {
                self.close(buf);
                let index = self.index();
                let id = new_id("rs");
                let item = Item::Reasoning(ReasoningItem {
                    id: id.clone(),
                    summary: Vec::new(),
                    content: None,
                    encrypted_content: None,
                    status: Some("in_progress".into()),
                });
                self.push(
                    EventKind::OutputItemAdded {
                        output_index: index,
                        item,
                    },
                    buf,
                );
                self.push(
                    EventKind::ReasoningSummaryPartAdded {
                        item_id: id.clone(),
                        output_index: index,
                        summary_index: 0,
                        part: SummaryText::new(""),
                    },
                    buf,
                );
                self.open = Some(Open::Reasoning {
                    index,
                    id,
                    text: String::new(),
                });
            }
            if let Some(Open::Reasoning { index, id, text }) = &mut self.open {
                text.push_str(&r);
                let (item_id, output_index) = (id.clone(), *index);
                self.opaque
                    .reasoning
                    .get_or_insert_with(String::new)
                    .push_str(&r);
                self.push(
                    EventKind::ReasoningSummaryTextDelta {
                        item_id,
                        output_index,
                        summary_index: 0,
                        delta: r,
                    },
                    buf,
                );
            }
        }
        if let Some(blocks) = delta.thinking_blocks {
            merge_blocks(self.opaque.blocks.get_or_insert_with(Vec::new), blocks);
        }
        if let Some(t) = delta.content.filter(|t| !t.is_empty()) {
            if !matches!(self.open, Some(Open::Text { .. })) {
                self.close(buf);
                let index = self.index();
                let id = new_id("msg");
                self.push(
                    EventKind::OutputItemAdded {
                        output_index: index,
                        item: message_item(id.clone(), Vec::new(), "in_progress"),
                    },
                    buf,
                );
                self.push(
                    EventKind::ContentPartAdded {
                        item_id: id.clone(),
                        output_index: index,
                        content_index: 0,
                        part: ContentPart::output_text(""),
                    },
                    buf,
                );
                self.open = Some(Open::Text {
                    index,
                    id,
                    text: String::new(),
                });
            }
            if let Some(Open::Text { index, id, text }) = &mut self.open {
                text.push_str(&t);
                let (item_id, output_index) = (id.clone(), *index);
                self.push(
                    EventKind::OutputTextDelta {
                        item_id,
                        output_index,
                        content_index: 0,
                        delta: t,
                        logprobs: Vec::new(),
                    },
                    buf,
                );
            }
        }
        for call in delta.tool_calls.into_iter().flatten() {
            let known = self.calls.iter().position(|(k, _)| *k == call.index);
            let pos = match known {
                Some(p) => p,
                None => {
                    self.close(buf);
                    let output_index = self.index();
                    let call_id = call.id.clone().unwrap_or_else(|| new_id("call"));
                    let name = call
                        .function
                        .as_ref()
                        .and_then(|f| f.name.clone())
                        .unwrap_or_default();
                    let c = Call {
                        output_index,
                        item_id: new_id("fc"),
                        call_id,
                        name,
                        arguments: String::new(),
                    };
                    let item = Item::FunctionCall(self.shape.call_item(
                        c.item_id.clone(),
                        &c.call_id,
                        &c.name,
                        String::new(),
                        "in_progress",
                    ));
                    self.push(EventKind::OutputItemAdded { output_index, item }, buf);
                    self.calls.push((call.index, c));
                    self.calls.len() - 1
                }
            };
            if let Some(extra) = call.extra_content {
                let id = self.calls[pos].1.call_id.clone();
                self.opaque.calls.insert(id, extra);
            }
            if let Some(args) = call
                .function
                .and_then(|f| f.arguments)
                .filter(|a| !a.is_empty())
            {
                let c = &mut self.calls[pos].1;
                c.arguments.push_str(&args);
                let (item_id, output_index) = (c.item_id.clone(), c.output_index);
                self.push(
                    EventKind::FunctionCallArgumentsDelta {
                        item_id,
                        output_index,
                        delta: args,
                    },
                    buf,
                );
            }
        }
        if let Some(f) = choice.finish_reason {
            self.finish = Some(f);
        }
    }

    /// Closes every item and writes `response.completed` (or `response.incomplete`); returns
    /// the final response.
    pub fn end(&mut self, buf: &mut Vec<u8>) -> Option<Box<ResponseObject>> {
        if self.native {
            return None;
        }
        self.start(buf);
        self.close(buf);
        for (_, c) in std::mem::take(&mut self.calls) {
            self.push(
                EventKind::FunctionCallArgumentsDone {
                    item_id: c.item_id.clone(),
                    output_index: c.output_index,
                    name: c.name.clone(),
                    arguments: c.arguments.clone(),
                },
                buf,
            );
            let item = Item::FunctionCall(self.shape.call_item(
                c.item_id,
                &c.call_id,
                &c.name,
                c.arguments,
                "completed",
            ));
            self.output.push((c.output_index, item.clone()));
            self.push(
                EventKind::OutputItemDone {
                    output_index: c.output_index,
                    item,
                },
                buf,
            );
        }
        // State no reasoning item carried yet (signatures without text, per-call state).
        let rest = std::mem::take(&mut self.opaque);
        if let Some(r) = self.shape.reasoning_item(
            "",
            &Opaque {
                reasoning: None,
                ..rest
            },
        ) {
            let index = self.index();
            let item = Item::Reasoning(r);
            self.push(
                EventKind::OutputItemAdded {
                    output_index: index,
                    item: item.clone(),
                },
                buf,
            );
            self.output.push((index, item.clone()));
            self.push(
                EventKind::OutputItemDone {
                    output_index: index,
                    item,
                },
                buf,
            );
        }
        let incomplete = is_incomplete(self.finish.as_deref());
        let status = if incomplete {
            ResponseStatus::Incomplete
        } else {
            ResponseStatus::Completed
        };
        let response = self.snapshot(status, None);
        let kind = if incomplete {
            EventKind::Incomplete {
                response: response.clone(),
            }
        } else {
            EventKind::Completed {
                response: response.clone(),
            }
        };
        self.push(kind, buf);
        Some(response)
    }

    /// Writes `response.failed` for an upstream failure.
    pub fn fail(&mut self, err: &GatewayError, buf: &mut Vec<u8>) {
        if !self.native {
            self.start(buf);
        }
        let error = ResponseError {
            code: err.kind().to_owned(),
            message: crate::redact::redact(&err.to_string()).into_owned(),
        };
        let response = self.snapshot(ResponseStatus::Failed, Some(error));
        self.push(EventKind::Failed { response }, buf);
    }
}

/// Adds streamed thinking blocks: a block with text starts a new one; a signature-only block
/// completes the last one.
fn merge_blocks(
    into: &mut Vec<crate::types::ThinkingBlock>,
    blocks: Vec<crate::types::ThinkingBlock>,
) {
    for b in blocks {
        match into.last_mut() {
            Some(last) if b.thinking.is_none() && b.data.is_none() && last.signature.is_none() => {
                last.signature = b.signature;
            }
            _ => into.push(b),
        }
    }
}

/// Called with the final response once a stream completed; its future (storing the response)
/// finishes before the last event is sent.
pub type OnComplete = Box<dyn FnOnce(&ResponseObject) -> BoxFuture<'static, ()> + Send>;

type BoxFuture<'a, T> = Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

pin_project! {
    /// Encodes a canonical stream as Responses events: `response.created`,
    /// `response.in_progress`, per item `output_item.added` ... `output_item.done` (text as one
    /// `output_text.delta` per upstream chunk, function-call arguments as deltas under one item
    /// id), then `response.completed` or `response.incomplete` with the whole response and its
    /// usage. An upstream error ends the stream with `response.failed`. No `[DONE]`.
    pub struct ResponsesSse {
        #[pin]
        inner: ChatStream,
        translator: Translator,
        done: bool,
        on_complete: Option<OnComplete>,
        // The store write and the last bytes it holds back.
        saving: Option<(BoxFuture<'static, ()>, Vec<u8>)>,
        observer: Option<Box<dyn StreamObserver>>,
    }

    impl PinnedDrop for ResponsesSse {
        fn drop(this: Pin<&mut Self>) {
            if let Some(obs) = this.project().observer.take() {
                obs.finish(false);
            }
        }
    }
}

impl std::fmt::Debug for ResponsesSse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponsesSse")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl ResponsesSse {
    /// Encodes `inner` in `shape`.
    pub fn new(
        inner: ChatStream,
        shape: Shape,
        on_complete: Option<OnComplete>,
        observer: Option<Box<dyn StreamObserver>>,
    ) -> Self {
        Self {
            inner,
            translator: Translator::new(shape),
            done: false,
            on_complete,
            saving: None,
            observer,
        }
    }
}

impl Stream for ResponsesSse {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if let Some((fut, _)) = this.saving.as_mut() {
            ready!(fut.as_mut().poll(cx));
            let buf = this.saving.take().map(|s| s.1).unwrap_or_default();
            if let Some(obs) = this.observer.take() {
                obs.finish(true);
            }
            return Poll::Ready(Some(Ok(Bytes::from(buf))));
        }
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
                    this.translator.fail(&e, &mut buf);
                    if let Some(obs) = this.observer.take() {
                        obs.finish(false);
                    }
                    return Poll::Ready(Some(Ok(Bytes::from(buf))));
                }
                None => {
                    *this.done = true;
                    let response = this.translator.end(&mut buf);
                    if let Some(response) = response
                        && let Some(f) = this.on_complete.take()
                    {
                        let mut fut = f(&response);
                        if fut.as_mut().poll(cx).is_pending() {
                            *this.saving = Some((fut, buf));
                            return Poll::Pending;
                        }
                    }
                    if let Some(obs) = this.observer.take() {
                        obs.finish(true);
                    }
                    return Poll::Ready(Some(Ok(Bytes::from(buf))));
                }
            }
        }
    }
}
