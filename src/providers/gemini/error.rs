//! Gemini: error bodies and retry delays.

use http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::PROVIDER;
use crate::GatewayError;
use crate::providers::{go_duration, openai_style_error, retry_after, summarise};

// === errors ===

/// Maps a Gemini error response (`{"error":{"code","message","status","details"}}`).
pub fn map_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> GatewayError {
    let v: Option<Value> = serde_json::from_slice(body.trim_ascii_start()).ok();
    // The non-SSE stream mode wraps everything in an array.
    let v = match v {
        Some(Value::Array(mut a)) if !a.is_empty() => Some(a.swap_remove(0)),
        other => other,
    };
    v.and_then(|v| error_from_json(status, headers, &v))
        .unwrap_or_else(|| openai_style_error(PROVIDER, status, headers, body))
}

/// An error object as a [`GatewayError`]; `status` is used when the body names none.
pub(super) fn error_from_json(
    status: StatusCode,
    headers: &HeaderMap,
    v: &Value,
) -> Option<GatewayError> {
    let err = v.get("error")?.as_object()?;
    let message = err.get("message").and_then(Value::as_str).unwrap_or("");
    let rpc_status = err.get("status").and_then(Value::as_str).unwrap_or("");
    let details = err.get("details").and_then(Value::as_array);
    let detail_reason = |want: &str| {
        details.is_some_and(|d| {
            d.iter()
                .any(|x| x.get("reason").and_then(Value::as_str) == Some(want))
        })
    };
    // A 200 stream names its status only in the body.
    let status = if status.is_success() || status == StatusCode::BAD_GATEWAY {
        err.get("code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .and_then(|c| StatusCode::from_u16(c).ok())
            .filter(|s| s.is_client_error() || s.is_server_error())
            .unwrap_or(status)
    } else {
        status
    };
    let lower = message.to_ascii_lowercase();
    let (status, code) = if detail_reason("API_KEY_INVALID")
        || lower.contains("api key not valid")
        || lower.contains("api key expired")
    {
        // Gemini answers a bad key with 400: it is the deployment's credentials, not the
        // client's request, so it must fail over like a 401.
        (StatusCode::UNAUTHORIZED, Some("invalid_api_key"))
    } else if rpc_status == "FAILED_PRECONDITION" {
        // Billing or region: this key cannot serve, another deployment may.
        (StatusCode::FORBIDDEN, None)
    } else if rpc_status == "RESOURCE_EXHAUSTED" || status == StatusCode::TOO_MANY_REQUESTS {
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limit_exceeded"))
    } else if rpc_status == "UNAVAILABLE" {
        (StatusCode::SERVICE_UNAVAILABLE, None)
    } else {
        (status, None)
    };
    let after = retry_after(headers).or_else(|| {
        details?
            .iter()
            .filter(|d| {
                d.get("@type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.ends_with("google.rpc.RetryInfo"))
            })
            .find_map(|d| retry_delay(d.get("retryDelay")?))
    });
    Some(GatewayError::Upstream {
        provider: PROVIDER,
        status,
        message: if message.is_empty() {
            format!("{rpc_status} (HTTP {})", status.as_u16())
        } else {
            summarise(message)
        },
        code: code.map(str::to_owned),
        retry_after: after,
    })
}

/// A protobuf `Duration` in JSON: `"33s"`, `"1.5s"`, or `{"seconds":..,"nanos":..}`.
pub(super) fn retry_delay(v: &Value) -> Option<std::time::Duration> {
    match v {
        Value::String(s) => go_duration(s),
        Value::Object(o) => {
            let secs = match o.get("seconds")? {
                Value::String(s) => s.parse().ok()?,
                other => other.as_u64()?,
            };
            let nanos = o.get("nanos").and_then(Value::as_u64).unwrap_or(0);
            Some(std::time::Duration::from_secs(secs) + std::time::Duration::from_nanos(nanos))
        }
        _ => None,
    }
}
