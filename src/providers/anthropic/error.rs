//! Anthropic: error bodies and retry delays.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::PROVIDER;
use crate::GatewayError;
use crate::providers::{openai_style_error, retry_after, summarise};

// === errors ===

/// Maps an Anthropic error response (`{"type":"error","error":{"type","message"}}`).
pub fn map_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> GatewayError {
    serde_json::from_slice::<Value>(body.trim_ascii_start())
        .ok()
        .and_then(|v| error_from_json(status, headers, &v))
        .unwrap_or_else(|| openai_style_error(PROVIDER, status, headers, body))
}

/// An error body (or `error` stream event) as a [`GatewayError`]; `None` if it is not one.
pub(super) fn error_from_json(
    status: StatusCode,
    headers: &HeaderMap,
    v: &Value,
) -> Option<GatewayError> {
    let err = v.get("error")?;
    let kind = err.get("type").and_then(Value::as_str).unwrap_or("");
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let lower = message.to_ascii_lowercase();
    let (status, code) = match kind {
        // The provider is overloaded: another deployment may well answer.
        "overloaded_error" => (StatusCode::SERVICE_UNAVAILABLE, Some("overloaded")),
        "rate_limit_error" => (StatusCode::TOO_MANY_REQUESTS, Some("rate_limit_exceeded")),
        // A bad key is this deployment's problem, not the client's: 401 fails over.
        "authentication_error" => (StatusCode::UNAUTHORIZED, Some("invalid_api_key")),
        "permission_error" => (StatusCode::FORBIDDEN, None),
        "billing_error" => (StatusCode::PAYMENT_REQUIRED, Some("insufficient_quota")),
        "not_found_error" => (StatusCode::NOT_FOUND, Some("model_not_found")),
        "request_too_large" => (StatusCode::PAYLOAD_TOO_LARGE, None),
        "timeout_error" => (StatusCode::GATEWAY_TIMEOUT, None),
        "api_error" if status.is_server_error() => (status, None),
        "api_error" => (StatusCode::INTERNAL_SERVER_ERROR, None),
        // An empty balance comes back as a 400 invalid_request_error: it is the key's problem.
        "invalid_request_error" if lower.contains("credit balance") => {
            (StatusCode::PAYMENT_REQUIRED, Some("insufficient_quota"))
        }
        "invalid_request_error" if lower.contains("prompt is too long") => {
            (StatusCode::BAD_REQUEST, Some("context_length_exceeded"))
        }
        "invalid_request_error" => (StatusCode::BAD_REQUEST, Some("invalid_request_error")),
        _ => (status, None),
    };
    let mut after = retry_after(headers);
    if after.is_none() && status == StatusCode::TOO_MANY_REQUESTS {
        after = ratelimit_reset(headers, SystemTime::now());
    }
    Some(GatewayError::Upstream {
        provider: PROVIDER,
        status,
        message: if message.is_empty() {
            format!("{kind} (HTTP {})", status.as_u16())
        } else {
            summarise(&message)
        },
        code: code.map(str::to_owned),
        retry_after: after,
    })
}

/// Without `retry-after`: the latest RFC 3339 reset among the exhausted
/// `anthropic-ratelimit-*` limits.
pub(super) fn ratelimit_reset(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    ["requests", "tokens", "input-tokens", "output-tokens"]
        .iter()
        .filter(|l| {
            headers
                .get(format!("anthropic-ratelimit-{l}-remaining"))
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim() == "0")
        })
        .filter_map(|l| {
            let reset = headers
                .get(format!("anthropic-ratelimit-{l}-reset"))?
                .to_str()
                .ok()?;
            rfc3339(reset)?.duration_since(now).ok()
        })
        .max()
}

/// Parses an RFC 3339 timestamp (`2025-08-21T12:40:59Z`, fractions and offsets allowed).
pub(super) fn rfc3339(s: &str) -> Option<SystemTime> {
    let t = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .ok()?;
    Some(SystemTime::from(t))
}
