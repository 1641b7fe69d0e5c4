use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Sleep;

use super::IdleTimeout;
use crate::GatewayError;
use crate::types::{ChatReply, ReplyBody};

pin_project! {
    /// Races the attempt against its budget; a stream that makes it in time gets an idle
    /// timer between chunks.
    pub struct ResponseFuture<F> {
        #[pin]
        fut: F,
        #[pin]
        sleep: Sleep,
        provider: &'static str,
        after: Duration,
        idle: Duration,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(
        fut: F,
        sleep: Sleep,
        provider: &'static str,
        after: Duration,
        idle: Duration,
    ) -> Self {
        Self {
            fut,
            sleep,
            provider,
            after,
            idle,
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("timeout::ResponseFuture")
            .field("provider", &self.provider)
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<ChatReply, GatewayError>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The answer first: one that is ready together with the timer still counts.
        if let Poll::Ready(out) = this.fut.poll(cx) {
            return Poll::Ready(out.map(|mut reply| {
                if let ReplyBody::Stream(stream) = reply.body {
                    reply.body = ReplyBody::Stream(Box::pin(IdleTimeout::new(
                        stream,
                        *this.idle,
                        this.provider,
                    )));
                }
                reply
            }));
        }
        match this.sleep.poll(cx) {
            // Returning drops `fut`, and with it the upstream request.
            Poll::Ready(()) => Poll::Ready(Err(GatewayError::Timeout {
                provider: this.provider,
                after: *this.after,
            })),
            Poll::Pending => Poll::Pending,
        }
    }
}
