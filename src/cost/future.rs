use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use super::{CostStream, Outcome, Ticket};
use crate::GatewayError;
use crate::types::{ChatReply, ReplyBody, ReplyMeta, Usage};

pin_project! {
    /// The [`Cost`](super::Cost) service's future: settles whole answers, wraps streams.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        ticket: Option<Ticket>,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before the answer: the client went away.
            if let Some(ticket) = this.project().ticket.take() {
                ticket.cancel();
            }
        }
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, ticket: Ticket) -> Self {
        Self {
            inner,
            ticket: Some(ticket),
        }
    }
}

/// How a whole answer (chat or embeddings) from `meta`'s deployment went.
fn whole<'a>(
    meta: &'a ReplyMeta,
    usage: Option<&'a Usage>,
    completion_text: &'a str,
) -> Outcome<'a> {
    Outcome {
        provider: meta.provider,
        model: &meta.deployment,
        usage,
        completion_text,
        status: 200,
        attempts: meta.attempts,
        first_chunk: None,
        cache_hit: meta.cache_hit,
        billed: false,
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<ChatReply, GatewayError>>,
{
    type Output = Result<ChatReply, GatewayError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let Some(ticket) = this.ticket.take() else {
            return Poll::Ready(result);
        };
        let mut reply = match result {
            Ok(r) => r,
            Err(e) => {
                ticket.fail(&e);
                return Poll::Ready(Err(e));
            }
        };
        reply.body = match reply.body {
            ReplyBody::Complete(mut resp) => {
                let text = if resp.usage.is_none() {
                    completion_text(&resp)
                } else {
                    String::new()
                };
                let (usage, cost) = ticket.settle(whole(&reply.meta, resp.usage.as_ref(), &text));
                resp.usage = Some(usage);
                reply.meta.cost_usd = Some(cost);
                ReplyBody::Complete(resp)
            }
            ReplyBody::Raw(raw) => {
                // Its usage has tokens and a total: what the bill reads and the client already
                // has, so the body stays as it is.
                let (_, cost) = ticket.settle(whole(&reply.meta, Some(&raw.usage), ""));
                reply.meta.cost_usd = Some(cost);
                ReplyBody::Raw(raw)
            }
            ReplyBody::Stream(stream) => {
                ReplyBody::Stream(Box::pin(CostStream::new(stream, ticket, &reply.meta)))
            }
            ReplyBody::Embeddings(mut resp) => {
                // Embeddings have no completion: the prompt is the whole bill, counted by the
                // tokenizer when the provider (Gemini) reports nothing.
                let (usage, cost) = ticket.settle(whole(&reply.meta, resp.usage.as_ref(), ""));
                resp.usage = Some(usage);
                reply.meta.cost_usd = Some(cost);
                ReplyBody::Embeddings(resp)
            }
        };
        Poll::Ready(Ok(reply))
    }
}

/// The text the tokenizer counts for an answer without usage.
fn completion_text(resp: &crate::types::ChatResponse) -> String {
    let mut text = String::new();
    for c in &resp.choices {
        if let Some(t) = &c.message.content {
            text.push_str(t);
        }
        for call in c.message.tool_calls.iter().flatten() {
            text.push_str(&call.function.name);
            text.push_str(&call.function.arguments);
        }
    }
    text
}
