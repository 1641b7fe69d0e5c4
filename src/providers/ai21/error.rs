//! AI21: error bodies, OpenAI-style or FastAPI-style `{"detail": ...}`.

use http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::PROVIDER;
use crate::GatewayError;
use crate::providers::{openai_style_error, summarise};

/// The error an AI21 failure answer stands for.
pub(super) fn map_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> GatewayError {
    let mut err = openai_style_error(PROVIDER, status, headers, body);
    // FastAPI-style `{"detail": ...}` bodies carry the message the generic reader misses.
    if let Ok(v) = serde_json::from_slice::<Value>(body.trim_ascii_start())
        && let Some(detail) = v.get("detail")
        && let GatewayError::Upstream { message, .. } = &mut err
    {
        *message = summarise(&match detail {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    }
    err
}
