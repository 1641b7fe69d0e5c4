//! [`ExchangeLayer`]: notes what the chat stack learns about a request (the model asked, the
//! key, where it went, tokens, cost, the first chunk) in the request's [`Exchange`], which the
//! edge's [`ServerSpan`](super::ServerSpan) reads when the response ends.
//!
//! The exchange travels in the request's OpenTelemetry context; a request without one (the chat
//! service called directly, not through the edge) passes through untouched.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use futures_core::Stream;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::GatewayError;
use crate::types::{ChatChunk, ChatReply, ChatRequest, ChatStream, ReplyBody, Usage};

/// What one request did, shared by the layers that see it.
#[derive(Clone, Debug, Default)]
pub struct Exchange(Arc<Mutex<Notes>>);

/// The contents of an [`Exchange`].
#[derive(Clone, Debug, Default)]
pub struct Notes {
    /// The model the client asked for.
    pub model: Option<String>,
    /// The virtual key's id.
    pub key_id: Option<Arc<str>>,
    /// The provider that answered.
    pub provider: Option<&'static str>,
    /// The deployment that answered.
    pub deployment: Option<Arc<str>>,
    /// Attempts made.
    pub attempts: Option<u32>,
    /// Prompt tokens.
    pub input_tokens: Option<u64>,
    /// Completion tokens.
    pub output_tokens: Option<u64>,
    /// Cost in USD.
    pub cost_usd: Option<f64>,
    /// Served from the response cache.
    pub cache_hit: Option<bool>,
    /// When the first chunk of a streamed answer arrived.
    pub first_chunk: Option<Instant>,
    /// The error the request ended with (`GatewayError::kind`).
    pub error: Option<&'static str>,
}

impl Exchange {
    /// The exchange of the current request, if the edge started one.
    pub fn current() -> Option<Self> {
        opentelemetry::Context::map_current(|cx| cx.get::<Self>().cloned())
    }

    /// Changes the notes.
    pub fn update(&self, f: impl FnOnce(&mut Notes)) {
        if let Ok(mut notes) = self.0.lock() {
            f(&mut notes);
        }
    }

    /// A copy of the notes.
    pub fn notes(&self) -> Notes {
        self.0.lock().map(|n| n.clone()).unwrap_or_default()
    }
}

fn note_usage(notes: &mut Notes, usage: &Usage) {
    notes.input_tokens = Some(usage.prompt_tokens);
    notes.output_tokens = Some(usage.completion_tokens);
    if let Some(cost) = usage.extra.get("cost_usd").and_then(|c| c.as_f64()) {
        notes.cost_usd = Some(cost);
    }
}

/// Builds [`ExchangeNotes`]s.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExchangeLayer;

impl<S> Layer<S> for ExchangeLayer {
    type Service = ExchangeNotes<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ExchangeNotes { inner }
    }
}

/// Notes each call of `inner` in the current request's [`Exchange`].
#[derive(Clone, Debug)]
pub struct ExchangeNotes<S> {
    inner: S,
}

impl<S> Service<ChatRequest> for ExchangeNotes<S>
where
    S: Service<ChatRequest, Response = ChatReply, Error = GatewayError>,
{
    type Response = ChatReply;
    type Error = GatewayError;
    type Future = NotedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx) // nothing to reserve: pass readiness through
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        let exchange = Exchange::current();
        if let Some(x) = &exchange {
            x.update(|n| {
                n.model.get_or_insert_with(|| req.model.clone());
                n.key_id.clone_from(&req.ctx.key_id);
            });
        }
        NotedFuture {
            inner: self.inner.call(req),
            exchange,
        }
    }
}

pin_project! {
    /// Notes the reply's provenance and usage, and watches a streamed one to its end.
    #[derive(Debug)]
    pub struct NotedFuture<F> {
        #[pin]
        inner: F,
        exchange: Option<Exchange>,
    }
}

impl<F> Future for NotedFuture<F>
where
    F: Future<Output = Result<ChatReply, GatewayError>>,
{
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let out = ready!(this.inner.poll(cx));
        let Some(exchange) = this.exchange.take() else {
            return Poll::Ready(out);
        };
        match out {
            Ok(mut reply) => {
                let meta = &reply.meta;
                exchange.update(|n| {
                    n.provider = Some(meta.provider).filter(|p| !p.is_empty());
                    n.deployment = Some(meta.deployment.clone()).filter(|d| !d.is_empty());
                    n.attempts = Some(meta.attempts);
                    n.cache_hit = Some(meta.cache_hit);
                    n.cost_usd = meta.cost_usd;
                    match &reply.body {
                        ReplyBody::Complete(r) => {
                            if let Some(u) = &r.usage {
                                note_usage(n, u);
                            }
                        }
                        ReplyBody::Embeddings(r) => {
                            if let Some(u) = &r.usage {
                                note_usage(n, u);
                            }
                        }
                        ReplyBody::Raw(r) => note_usage(n, &r.usage),
                        // The first chunk is in hand when a stream is answered.
                        ReplyBody::Stream(_) => n.first_chunk = Some(Instant::now()),
                    }
                });
                if let ReplyBody::Stream(stream) = reply.body {
                    reply.body = ReplyBody::Stream(Box::pin(NotedStream {
                        inner: stream,
                        exchange,
                    }));
                }
                Poll::Ready(Ok(reply))
            }
            Err(e) => {
                exchange.update(|n| n.error = Some(e.kind()));
                Poll::Ready(Err(e))
            }
        }
    }
}

pin_project! {
    /// Notes a stream's usage chunk and the error it may end with.
    struct NotedStream {
        #[pin]
        inner: ChatStream,
        exchange: Exchange,
    }
}

impl Stream for NotedStream {
    type Item = Result<ChatChunk, GatewayError>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let item = ready!(this.inner.poll_next(cx));
        match &item {
            Some(Ok(chunk)) => {
                if let Some(u) = &chunk.usage {
                    this.exchange.update(|n| note_usage(n, u));
                }
            }
            Some(Err(e)) => this.exchange.update(|n| n.error = Some(e.kind())),
            None => {}
        }
        Poll::Ready(item)
    }
}
