use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::GatewayError;
use crate::types::ChatChunk;

pin_project! {
    /// Ends a stream with a [`GatewayError::Timeout`] item when no chunk arrives for `idle`
    /// (tower-http's `TimeoutBody`, per chunk). The timer restarts with every item; the inner
    /// stream is dropped with this one, closing the upstream connection.
    pub struct IdleTimeout<S> {
        #[pin]
        inner: S,
        #[pin]
        sleep: Sleep,
        idle: Duration,
        provider: &'static str,
        done: bool,
    }
}

impl<S> IdleTimeout<S> {
    /// Watches `inner`, allowing `idle` between two chunks.
    pub fn new(inner: S, idle: Duration, provider: &'static str) -> Self {
        Self {
            inner,
            sleep: tokio::time::sleep(idle),
            idle,
            provider,
            done: false,
        }
    }
}

impl<S> std::fmt::Debug for IdleTimeout<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdleTimeout")
            .field("idle", &self.idle)
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

impl<S> Stream for IdleTimeout<S>
where
    S: Stream<Item = Result<ChatChunk, GatewayError>>,
{
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        match this.inner.poll_next(cx) {
            Poll::Ready(Some(item)) => {
                this.sleep.as_mut().reset(Instant::now() + *this.idle);
                return Poll::Ready(Some(item));
            }
            Poll::Ready(None) => {
                *this.done = true;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        match this.sleep.poll(cx) {
            Poll::Ready(()) => {
                *this.done = true;
                Poll::Ready(Some(Err(GatewayError::Timeout {
                    provider: this.provider,
                    after: *this.idle,
                })))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
