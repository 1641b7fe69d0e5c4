//! Shared fixtures for the layers' unit tests: a tower-test mock upstream speaking
//! `GatewayError`, replies and upstream errors.

use std::time::Duration;

use tower::ServiceExt;
use tower_test::mock;

use crate::GatewayError;
use crate::error::BoxError;
use crate::types::{ChatReply, ChatRequest, ChatResponse, ReplyMeta, ResponseMessage};

/// The mock upstream, its errors mapped back to `GatewayError`.
pub(crate) type Upstream =
    tower::util::MapErr<mock::Mock<ChatRequest, ChatReply>, fn(BoxError) -> GatewayError>;

/// The test's end of the mock upstream.
pub(crate) type Handle = mock::Handle<ChatRequest, ChatReply>;

/// A mock upstream and its handle.
pub(crate) fn pair() -> (Upstream, Handle) {
    let (svc, handle) = mock::pair::<ChatRequest, ChatReply>();
    (
        svc.map_err(GatewayError::from as fn(BoxError) -> GatewayError),
        handle,
    )
}

/// A complete reply from deployment `id`.
pub(crate) fn reply(id: &str) -> ChatReply {
    ChatReply::complete(
        ReplyMeta {
            deployment: id.into(),
            attempts: 1,
            ..Default::default()
        },
        ChatResponse::single(
            "m",
            ResponseMessage::assistant(Some("hi".into()), None),
            "stop",
            None,
        ),
    )
}

/// An upstream error with `status`.
pub(crate) fn upstream(status: u16, retry_after: Option<Duration>) -> GatewayError {
    GatewayError::Upstream {
        provider: "groq",
        status: http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY),
        message: format!("status {status}"),
        code: None,
        retry_after,
    }
}
