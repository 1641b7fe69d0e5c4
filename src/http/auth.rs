//! The gateway's own key: with `PROXYGATE_MASTER_KEY` set, every `/v1` and `/admin` request
//! must carry `Authorization: Bearer <key>` (SPEC §8), or `x-api-key: <key>` as Anthropic SDKs send it. `/health` and `/metrics` stay open for
//! probes and scrapers. The comparison is constant-time, and the key is never echoed.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::encode::error_response;
use crate::GatewayError;
use crate::config::Secret;

/// Refuses requests without the master key, when one is configured.
pub async fn require_master_key(
    State(key): State<Option<Secret>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(key) = key else {
        return next.run(req).await;
    };
    let presented = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        // Anthropic SDKs send their key as `x-api-key`.
        .or_else(|| req.headers().get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim);
    match presented {
        Some(p) if bool::from(p.as_bytes().ct_eq(key.expose().as_bytes())) => next.run(req).await,
        Some(_) => error_response(&GatewayError::Unauthorized("the API key is not valid for this gateway".into())),
        None => error_response(&GatewayError::Unauthorized(
            "missing API key: send `Authorization: Bearer <key>` with the gateway's PROXYGATE_MASTER_KEY".into(),
        )),
    }
}
