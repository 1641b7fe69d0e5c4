use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::GatewayError;
use crate::types::ChatReply;

pin_project! {
    /// The router's future: an immediate error (unknown model, nothing healthy), or the inner
    /// call.
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Failed { error: Option<GatewayError> },
        Called { #[pin] fut: F },
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn failed(error: GatewayError) -> Self {
        Self {
            state: State::Failed { error: Some(error) },
        }
    }

    pub(super) fn called(fut: F) -> Self {
        Self {
            state: State::Called { fut },
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("router::ResponseFuture")
            .finish_non_exhaustive()
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<ChatReply, GatewayError>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Failed { error } => Poll::Ready(Err(error.take().unwrap_or_else(|| {
                GatewayError::Internal("router future polled after completion".into())
            }))),
            StateProj::Called { fut } => fut.poll(cx),
        }
    }
}
