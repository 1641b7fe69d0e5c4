use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower::Service;

use super::{Pending, Store};
use crate::GatewayError;
use crate::shared::Lookup;
use crate::types::{ChatReply, ChatRequest};

pin_project! {
    /// The [`Cache`](super::Cache) service's future: a hit at once, a shared-cache lookup
    /// then the inner call on a miss, or the inner call whose answer is kept.
    pub struct ResponseFuture<S, F> {
        #[pin]
        state: State<S, F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, F> {
        Hit {
            reply: Option<ChatReply>,
        },
        Lookup {
            lookup: Lookup,
            req: Option<ChatRequest>,
            inner: Option<S>,
            store: Store,
            stream: bool,
            pending: Option<Pending>,
        },
        Calling {
            #[pin]
            fut: F,
            pending: Option<Pending>,
        },
    }
}

impl<S, F> std::fmt::Debug for ResponseFuture<S, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Hit { .. } => "hit",
            State::Lookup { .. } => "lookup",
            State::Calling { .. } => "calling",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<S, F> ResponseFuture<S, F> {
    pub(crate) fn hit(reply: ChatReply) -> Self {
        Self {
            state: State::Hit { reply: Some(reply) },
        }
    }

    pub(crate) fn calling(fut: F, pending: Option<Pending>) -> Self {
        Self {
            state: State::Calling { fut, pending },
        }
    }

    pub(crate) fn lookup(
        lookup: Lookup,
        req: ChatRequest,
        inner: S,
        store: Store,
        stream: bool,
        pending: Option<Pending>,
    ) -> Self {
        Self {
            state: State::Lookup {
                lookup,
                req: Some(req),
                inner: Some(inner),
                store,
                stream,
                pending,
            },
        }
    }
}

impl<S> Future for ResponseFuture<S, S::Future>
where
    S: Service<ChatRequest, Response = ChatReply, Error = GatewayError>,
{
    type Output = Result<ChatReply, GatewayError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Hit { reply } => {
                    return match reply.take() {
                        Some(r) => Poll::Ready(Ok(r)),
                        None => Poll::Ready(Err(GatewayError::Internal(
                            "cache future polled after completion".into(),
                        ))),
                    };
                }
                StateProj::Lookup {
                    lookup,
                    req,
                    inner,
                    store,
                    stream,
                    pending,
                } => {
                    let found = ready!(lookup.as_mut().poll(cx));
                    if let Some(reply) = found.and_then(|b| store.decode(&b, *stream)) {
                        return Poll::Ready(Ok(reply));
                    }
                    // A miss (or Redis away): the inner service `call` readied answers.
                    let (Some(req), Some(mut svc)) = (req.take(), inner.take()) else {
                        return Poll::Ready(Err(GatewayError::Internal(
                            "cache future polled after completion".into(),
                        )));
                    };
                    let fut = svc.call(req);
                    let pending = pending.take();
                    this.state.set(State::Calling { fut, pending });
                }
                StateProj::Calling { fut, pending } => {
                    let reply = ready!(fut.poll(cx))?;
                    return Poll::Ready(Ok(match pending.take() {
                        Some(p) => p.keep(reply),
                        None => reply,
                    }));
                }
            }
        }
    }
}
