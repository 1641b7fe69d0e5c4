//! Puter's failures: real statuses with an error code, legacy v1 `success: false` bodies.

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::{ENV_TOKEN, PROVIDER, RATE_WINDOW};
use crate::GatewayError;
use crate::providers::{retry_after, summarise};

/// The status a Puter error code stands for, where the code says more than the status.
pub(super) fn status_of_code(code: &str) -> Option<StatusCode> {
    Some(match code {
        "insufficient_funds" | "no_usage_left" => StatusCode::PAYMENT_REQUIRED,
        "too_many_requests" | "rate_limited" | "upstream_rate_limited" => {
            StatusCode::TOO_MANY_REQUESTS
        }
        "token_auth_failed" | "reauth_required" | "unauthorized" | "token_missing" => {
            StatusCode::UNAUTHORIZED
        }
        "forbidden" | "permission_denied" | "access_denied" => StatusCode::FORBIDDEN,
        "bad_request" | "upstream_bad_request" | "moderation_flagged" => StatusCode::BAD_REQUEST,
        _ if code.starts_with("upstream_") => StatusCode::BAD_GATEWAY,
        _ => return None,
    })
}

/// Builds the error for a Puter failure body (`v` is the object holding message and code).
pub(super) fn puter_error(status: StatusCode, v: &Value, retry: Option<Duration>) -> GatewayError {
    let text = |k: &str| match v.get(k) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Object(o)) => o.get("message").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    };
    let message = text("message").or_else(|| text("error"));
    let code = v
        .get("code")
        .or_else(|| v.get("error").and_then(|e| e.get("code")))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let code_status = code.as_deref().and_then(status_of_code);
    let status = match (status.as_u16(), code_status) {
        // Puter answers an outage of every upstream with 400 `upstream_*`: not the client's.
        (400, Some(s)) if s.is_server_error() => s,
        // v1 said 200 and put the truth in the body.
        (200, s) => s.unwrap_or(StatusCode::BAD_GATEWAY),
        _ => status,
    };
    let mut message = message
        .map(|m| summarise(&m))
        .unwrap_or_else(|| format!("HTTP {} from Puter", status.as_u16()));
    match status.as_u16() {
        401 => message.push_str(&format!(" (check {ENV_TOKEN})")),
        402 => message.push_str(&format!(
            " (the Puter account behind {ENV_TOKEN} is out of credits)"
        )),
        _ => {}
    }
    let retry_after = match retry {
        Some(d) => Some(d),
        None if status == StatusCode::TOO_MANY_REQUESTS => Some(RATE_WINDOW),
        None => None,
    };
    GatewayError::Upstream {
        provider: PROVIDER,
        status,
        message,
        code,
        retry_after,
    }
}

/// A legacy v1 failure: HTTP 200 with `success: false`.
pub(super) fn v1_failure(v: &Value) -> Option<GatewayError> {
    (v.get("success") == Some(&Value::Bool(false)))
        .then(|| puter_error(StatusCode::OK, v.get("error").unwrap_or(v), None))
}

/// The error a Puter failure answer stands for.
pub(super) fn map_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> GatewayError {
    let retry = retry_after(headers);
    match serde_json::from_slice::<Value>(body.trim_ascii_start()) {
        Ok(v) if v.is_object() => puter_error(status, &v, retry),
        _ => puter_error(status, &Value::Null, retry),
    }
}
