//! The bottom of the shared stack: sends a request to the deployment the layers above chose.

use std::task::{Context, Poll};

use tower::Service;
use tower::ServiceExt;
use tower::util::Oneshot;

use crate::GatewayError;
use crate::deployment::Routed;
use crate::types::BoxChat;
use crate::types::{ChatReply, ChatRequest};

/// Calls `req.ctx.target`'s own stack with the upstream model id, after the model's
/// parameter rules.
#[derive(Clone, Copy, Debug, Default)]
pub struct Dispatch;

impl Service<ChatRequest> for Dispatch {
    type Response = ChatReply;
    type Error = GatewayError;
    type Future = futures_util::future::Either<
        std::future::Ready<Result<ChatReply, GatewayError>>,
        Oneshot<BoxChat, ChatRequest>,
    >;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each deployment's readiness is driven by the oneshot below.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: ChatRequest) -> Self::Future {
        use futures_util::future::Either;
        let Some(target) = req.ctx.target().cloned() else {
            return Either::Left(std::future::ready(Err(GatewayError::Internal(
                "no deployment chosen for the request".into(),
            ))));
        };
        req.model = target.model().to_owned();
        // The model's own parameter rules, before its adapter translates the request.
        if let Some(rules) = target.rules() {
            rules.apply(&mut req);
        }
        req.ctx
            .last_attempt
            .set(target.provider().name, target.id().clone());
        Either::Right(target.service().oneshot(req))
    }
}
