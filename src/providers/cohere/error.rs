//! Cohere: error bodies and retry delays.

use http::StatusCode;

use super::PROVIDER;
use crate::GatewayError;
use crate::providers::summarise;

/// The error an `ERROR` / `TIMEOUT` finish stands for.
pub(super) fn finish_error(reason: &str, message: Option<&str>) -> GatewayError {
    let (status, what) = if reason == "TIMEOUT" {
        (StatusCode::GATEWAY_TIMEOUT, "cohere timed out generating")
    } else {
        (StatusCode::BAD_GATEWAY, "cohere failed while generating")
    };
    GatewayError::Upstream {
        provider: PROVIDER,
        status,
        message: message
            .filter(|m| !m.trim().is_empty())
            .map(summarise)
            .unwrap_or_else(|| what.to_owned()),
        code: Some(reason.to_ascii_lowercase()),
        retry_after: None,
    }
}
