use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use futures_core::Stream;
use pin_project_lite::pin_project;

use super::{Outcome, Ticket};
use crate::GatewayError;
use crate::types::{ChatChunk, ChatStream, ReplyMeta, Usage};

pin_project! {
    /// Watches a stream as it passes: keeps the provider's usage (taken off the chunks that
    /// carried it) and the answer's text, and when the stream ends settles the request and
    /// yields one usage-only chunk with `cost_usd`. A stream dropped early (the client went
    /// away) is settled with what had arrived, as status 499.
    pub struct CostStream {
        #[pin]
        inner: ChatStream,
        ticket: Option<Ticket>,
        provider: &'static str,
        model: Arc<str>,
        attempts: u32,
        cache_hit: bool,
        usage: Option<Usage>,
        text: String,
        first_chunk: Option<Instant>,
        template: Option<(String, u64, String)>,
        done: bool,
    }

    impl PinnedDrop for CostStream {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(ticket) = this.ticket.take() {
                ticket.settle(Outcome {
                    provider: this.provider,
                    model: this.model,
                    usage: this.usage.as_ref(),
                    completion_text: this.text,
                    status: 499,
                    attempts: *this.attempts,
                    first_chunk: *this.first_chunk,
                    cache_hit: *this.cache_hit,
                    billed: true,
                });
            }
        }
    }
}

impl std::fmt::Debug for CostStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CostStream")
            .field("model", &self.model)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl CostStream {
    pub(crate) fn new(inner: ChatStream, ticket: Ticket, meta: &ReplyMeta) -> Self {
        Self {
            inner,
            ticket: Some(ticket),
            provider: meta.provider,
            model: meta.deployment.clone(),
            attempts: meta.attempts,
            cache_hit: meta.cache_hit,
            usage: None,
            text: String::new(),
            first_chunk: None,
            template: None,
            done: false,
        }
    }
}

impl Stream for CostStream {
    type Item = Result<ChatChunk, GatewayError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        loop {
            match ready!(this.inner.as_mut().poll_next(cx)) {
                Some(Ok(mut chunk)) => {
                    this.first_chunk.get_or_insert_with(Instant::now);
                    if this.template.is_none() {
                        *this.template =
                            Some((chunk.id.clone(), chunk.created, chunk.model.clone()));
                    }
                    if let Some(u) = chunk.usage.take() {
                        *this.usage = Some(u);
                    }
                    if chunk.choices.is_empty() {
                        continue; // the usage-only chunk comes back at the end, with the cost
                    }
                    for c in &chunk.choices {
                        if let Some(t) = &c.delta.content {
                            this.text.push_str(t);
                        }
                        for call in c.delta.tool_calls.iter().flatten() {
                            if let Some(f) = &call.function {
                                this.text.push_str(f.name.as_deref().unwrap_or(""));
                                this.text.push_str(f.arguments.as_deref().unwrap_or(""));
                            }
                        }
                    }
                    return Poll::Ready(Some(Ok(chunk)));
                }
                Some(Err(e)) => {
                    *this.done = true;
                    if let Some(ticket) = this.ticket.take() {
                        // The client saw the first bytes and then an error event: no charge.
                        ticket.settle(Outcome {
                            provider: this.provider,
                            model: this.model,
                            usage: this.usage.as_ref(),
                            completion_text: this.text,
                            status: e.status().as_u16(),
                            attempts: *this.attempts,
                            first_chunk: *this.first_chunk,
                            cache_hit: *this.cache_hit,
                            billed: false,
                        });
                    }
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    *this.done = true;
                    let Some(ticket) = this.ticket.take() else {
                        return Poll::Ready(None);
                    };
                    let (mut usage, cost) = ticket.settle(Outcome {
                        provider: this.provider,
                        model: this.model,
                        usage: this.usage.as_ref(),
                        completion_text: this.text,
                        status: 200,
                        attempts: *this.attempts,
                        first_chunk: *this.first_chunk,
                        cache_hit: *this.cache_hit,
                        billed: false,
                    });
                    let cost_json = serde_json::Number::from_f64(cost)
                        .map(serde_json::Value::Number)
                        .unwrap_or(serde_json::Value::Null);
                    usage.extra.insert("cost_usd".into(), cost_json.clone());
                    let (id, created, model) = this.template.take().unwrap_or_default();
                    let mut chunk = ChatChunk::usage_only(&id, created, &model, usage);
                    chunk.extra.insert("cost_usd".into(), cost_json);
                    return Poll::Ready(Some(Ok(chunk)));
                }
            }
        }
    }
}
