//! `/admin/circuits`: every deployment's circuit (state, consecutive failures, when it opened,
//! when the next probe may go, a 429 cool-down) and a manual reset. Deployment ids contain
//! `/`, so the reset route takes the rest of the path (`/admin/circuits/groq/llama-3.1-8b-instant/reset`;
//! a percent-encoded id works too).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::EdgeContext;
use super::encode::error_response;
use crate::GatewayError;
use crate::deployment::Deployment;

/// `GET /admin/circuits`.
pub(super) async fn list_circuits(State(state): State<Arc<EdgeContext>>) -> Response {
    let now = Instant::now();
    let wall = SystemTime::now();
    let circuits: Vec<Value> = state
        .registry
        .deployments()
        .iter()
        .map(|d| circuit_json(d, now, wall))
        .collect();
    axum::Json(json!({ "circuits": circuits })).into_response()
}

/// `POST /admin/circuits/{deployment}/reset`.
pub(super) async fn reset_circuit(
    State(state): State<Arc<EdgeContext>>,
    Path(rest): Path<String>,
) -> Response {
    let found = rest
        .strip_suffix("/reset")
        .and_then(|id| state.registry.deployment(id));
    let Some(d) = found else {
        let id = rest.strip_suffix("/reset").unwrap_or(&rest);
        let err = GatewayError::invalid(
            "deployment",
            format!(
                "`{id}` is not a known deployment; GET /admin/circuits lists them, and POST /admin/circuits/<deployment>/reset resets one"
            ),
        );
        let mut resp = error_response(&err);
        *resp.status_mut() = http::StatusCode::NOT_FOUND;
        return resp;
    };
    d.state().circuit().reset();
    tracing::info!(deployment = %d.id(), "circuit reset by the admin API");
    axum::Json(circuit_json(&d, Instant::now(), SystemTime::now())).into_response()
}

pub(super) fn circuit_json(d: &Deployment, now: Instant, wall: SystemTime) -> Value {
    let snap = d.state().circuit().snapshot(now);
    json!({
        "deployment": &**d.id(),
        "provider": d.provider().name,
        "model": d.model(),
        "tier": d.tier().as_str(),
        "state": snap.state.as_str(),
        "status": d.state().status(),
        "consecutive_failures": snap.consecutive_failures,
        "opened_at": snap.opened_at.map(rfc3339),
        "next_probe_at": snap.next_probe_in.map(|d| rfc3339(wall + d)),
        "next_probe_in_ms": snap.next_probe_in.map(millis),
        "cooling_for_ms": snap.cooling_for.map(millis),
        "latency_ms": d.state().latency(now).map(|s| (s * 1000.0).round() as u64),
    })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `2026-11-25T12:34:56.789Z` (UTC, milliseconds).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    t.replace_millisecond(t.millisecond())
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// `GET /admin/rates`: the rate table in use, with its date.
pub(super) async fn rates(
    axum::extract::State(state): axum::extract::State<std::sync::Arc<super::EdgeContext>>,
) -> axum::Json<serde_json::Value> {
    axum::Json(state.rates.to_json())
}

/// `POST /admin/reload`: reads the configuration file again and swaps it in. 200 with the new
/// configuration's summary; 400 listing every problem, nothing changed.
pub(super) async fn reload(State(state): State<Arc<EdgeContext>>) -> Response {
    let Some(control) = state.control.clone() else {
        return reload_refused(vec![
            "this gateway was not built from a configuration it can read again".into(),
        ]);
    };
    match control.reload().await {
        Ok(summary) => axum::Json(summary).into_response(),
        Err(problems) => reload_refused(problems),
    }
}

fn reload_refused(problems: Vec<String>) -> Response {
    let message = format!(
        "configuration not reloaded; nothing changed: {}",
        problems.join("; ")
    );
    let body = json!({
        "error": {
            "message": crate::redact::redact(&message),
            "type": "invalid_request_error",
            "param": "config",
            "code": "invalid_config",
            "problems": problems.iter().map(|p| crate::redact::redact(p).into_owned()).collect::<Vec<_>>(),
        }
    });
    (http::StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// `GET /admin/config`: the running configuration, secrets as `***`.
pub(super) async fn config(State(state): State<Arc<EdgeContext>>) -> Response {
    match &state.control {
        Some(c) => axum::Json(c.config()).into_response(),
        None => {
            let err = GatewayError::invalid(
                "config",
                "this gateway was not built from a configuration the admin API can show",
            );
            error_response(&err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn rfc3339_formats_utc_with_millis() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_nanos(1_709_210_096_789_654_321); // leap day 2024
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56.789Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00Z");
    }
}
