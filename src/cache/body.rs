//! Streams and the cache: a cached answer replayed as chunks, and a live stream recorded as it
//! passes so that its whole answer is kept once it has ended cleanly.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::Stream;
use pin_project_lite::pin_project;
use serde_json::Map;

use super::Pending;
use crate::GatewayError;
use crate::types::{
    ChatChunk, ChatResponse, ChatStream, Choice, FunctionCall, ResponseMessage, ToolCall,
};

/// A cached whole answer as the chunks a stream of it would have carried (see
/// [`providers::replay`](crate::providers::replay)): per choice the role with its text, its
/// tool calls and its `finish_reason`, then one usage-only chunk when the answer had usage
/// (the cost layer takes it, the edge shows it if asked).
pub fn replay(resp: ChatResponse) -> ChatStream {
    let mut chunks = std::collections::VecDeque::with_capacity(resp.choices.len() * 3 + 1);
    crate::providers::replay(&resp, &mut chunks);
    Box::pin(futures_util::stream::iter(chunks.into_iter().map(Ok)))
}

pin_project! {
    /// Forwards a live stream untouched and rebuilds its whole answer on the side; when the
    /// stream ends without error the answer is cached. An error, a client that goes away, or
    /// an answer larger than the cache could hold leaves nothing behind.
    pub struct Recording {
        #[pin]
        inner: ChatStream,
        store: Option<Pending>,
        answer: Answer,
    }
}

impl std::fmt::Debug for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recording")
            .field("recording", &self.store.is_some())
            .finish_non_exhaustive()
    }
}

impl Recording {
    pub(crate) fn new(inner: ChatStream, pending: Pending) -> Self {
        Self {
            inner,
            store: Some(pending),
            answer: Answer::default(),
        }
    }
}

impl Stream for Recording {
    type Item = Result<ChatChunk, GatewayError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let item = ready!(this.inner.poll_next(cx));
        match &item {
            Some(Ok(chunk)) => {
                if let Some(pending) = this.store.as_ref()
                    && !this.answer.observe(chunk, pending.max_entry_bytes())
                {
                    *this.store = None; // too large to keep
                }
            }
            Some(Err(_)) => *this.store = None,
            None => {
                if let Some(pending) = this.store.take() {
                    pending.put(&std::mem::take(this.answer).finish());
                }
            }
        }
        Poll::Ready(item)
    }
}

/// A streamed answer rebuilt from its chunks.
#[derive(Debug, Default)]
struct Answer {
    id: String,
    created: u64,
    model: String,
    choices: BTreeMap<u32, Partial>,
    usage: Option<crate::types::Usage>,
    bytes: usize,
}

#[derive(Debug, Default)]
struct Partial {
    content: Option<String>,
    tool_calls: BTreeMap<u32, ToolCall>,
    finish_reason: Option<String>,
}

impl Answer {
    /// Folds in one chunk; false once the answer is larger than `limit` bytes.
    fn observe(&mut self, chunk: &ChatChunk, limit: usize) -> bool {
        if self.id.is_empty() {
            self.id.clone_from(&chunk.id);
            self.created = chunk.created;
            self.model.clone_from(&chunk.model);
        }
        if let Some(u) = &chunk.usage {
            self.usage = Some(u.clone());
        }
        for c in &chunk.choices {
            let p = self.choices.entry(c.index).or_default();
            if let Some(t) = &c.delta.content {
                self.bytes += t.len();
                p.content.get_or_insert_with(String::new).push_str(t);
            }
            for d in c.delta.tool_calls.iter().flatten() {
                let call = p.tool_calls.entry(d.index).or_insert_with(|| ToolCall {
                    extra_content: None,
                    id: String::new(),
                    kind: "function".to_owned(),
                    function: FunctionCall {
                        name: String::new(),
                        arguments: String::new(),
                    },
                });
                if let Some(id) = &d.id {
                    call.id.clone_from(id);
                }
                if let Some(f) = &d.function {
                    if let Some(n) = &f.name {
                        call.function.name.push_str(n);
                    }
                    if let Some(a) = &f.arguments {
                        self.bytes += a.len();
                        call.function.arguments.push_str(a);
                    }
                }
            }
            if c.finish_reason.is_some() {
                p.finish_reason.clone_from(&c.finish_reason);
            }
        }
        self.bytes <= limit
    }

    fn finish(self) -> ChatResponse {
        ChatResponse {
            id: self.id,
            object: "chat.completion".to_owned(),
            created: self.created,
            model: self.model,
            choices: self
                .choices
                .into_iter()
                .map(|(index, p)| {
                    let calls: Vec<ToolCall> = p.tool_calls.into_values().collect();
                    Choice {
                        index,
                        message: ResponseMessage::assistant(
                            p.content.filter(|c| !c.is_empty() || calls.is_empty()),
                            (!calls.is_empty()).then_some(calls),
                        ),
                        logprobs: None,
                        finish_reason: p.finish_reason,
                    }
                })
                .collect(),
            usage: self.usage,
            extra: Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Delta, Usage};
    use futures_util::StreamExt;

    #[tokio::test]
    async fn a_replayed_answer_rebuilds_to_the_same_answer() {
        let mut resp = ChatResponse::single(
            "groq/m",
            ResponseMessage::assistant(
                None,
                Some(vec![ToolCall {
                    extra_content: None,
                    id: "call_1".into(),
                    kind: "function".into(),
                    function: FunctionCall {
                        name: "f".into(),
                        arguments: "{\"a\":1}".into(),
                    },
                }]),
            ),
            "tool_calls",
            Some(Usage::new(3, 4)),
        );
        resp.choices[0].message.content = None;
        let chunks: Vec<_> = replay(resp.clone()).collect().await;
        assert_eq!(
            chunks[0].as_ref().unwrap().choices[0].delta.role.as_deref(),
            Some("assistant")
        );
        assert!(chunks.last().unwrap().as_ref().unwrap().is_usage_only());
        let mut answer = Answer::default();
        for c in &chunks {
            assert!(answer.observe(c.as_ref().unwrap(), 1 << 20));
        }
        assert_eq!(answer.finish(), resp);
    }

    #[test]
    fn an_answer_over_the_limit_is_refused() {
        let mut answer = Answer::default();
        let chunk = ChatChunk::delta("id", 0, "m", Delta::text("x".repeat(100)), None);
        assert!(answer.observe(&chunk, 150));
        assert!(!answer.observe(&chunk, 150));
    }
}
