//! The mock's stream: the role, one chunk per word, the finish, the usage.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use pin_project_lite::pin_project;
use tokio::time::Sleep;

use crate::GatewayError;
use crate::types::{ChatChunk, Delta, Usage};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    Role,
    Text,
    Usage,
    Done,
}

pin_project! {
    /// The mock's stream: role, one chunk per word, finish, usage.
    pub struct MockStream {
        pub(super) id: String,
        pub(super) created: u64,
        pub(super) model: String,
        pub(super) parts: std::vec::IntoIter<String>,
        pub(super) step: Step,
        pub(super) usage: Option<Usage>,
        pub(super) delay: Duration,
        pub(super) sleep: Option<Pin<Box<Sleep>>>,
    }
}

impl std::fmt::Debug for MockStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockStream")
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

impl Stream for MockStream {
    type Item = Result<ChatChunk, GatewayError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        if *this.step == Step::Text && !this.delay.is_zero() {
            let sleep = this
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(*this.delay)));
            std::task::ready!(sleep.as_mut().poll(cx));
            *this.sleep = None;
        }
        let chunk = |delta: Delta, finish: Option<&str>| {
            ChatChunk::delta(this.id, *this.created, this.model, delta, finish)
        };
        let item = match *this.step {
            Step::Role => {
                *this.step = Step::Text;
                chunk(Delta::role(), None)
            }
            Step::Text => match this.parts.next() {
                Some(p) => chunk(Delta::text(p), None),
                None => {
                    *this.step = Step::Usage;
                    chunk(Delta::default(), Some("stop"))
                }
            },
            Step::Usage => {
                *this.step = Step::Done;
                match this.usage.take() {
                    Some(u) => ChatChunk::usage_only(this.id, *this.created, this.model, u),
                    None => return Poll::Ready(None),
                }
            }
            Step::Done => return Poll::Ready(None),
        };
        Poll::Ready(Some(Ok(item)))
    }
}
