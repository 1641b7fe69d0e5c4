//! `/dashboard`, the monitoring PWA, and `GET /admin/stats`, the JSON it polls.
//!
//! The app is a few hand-written files under `dashboard/` compiled into the binary
//! (`include_bytes!`): no CDN, no build step. Every response it gets is same-origin, its
//! Content-Security-Policy allows nothing else, and its service worker keeps the shell for
//! offline use in a cache named after a hash of the assets, so a new binary replaces it.
//!
//! The page itself is open (like `/health`); the statistics it shows come from `/admin/*`, which
//! needs the master key when one is set: the app asks for it and keeps it in `sessionStorage`.
//! The statistics hold no secret: provider keys never reach [`Stats`](crate::stats::Stats), nor
//! do virtual key ids.

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::EdgeContext;
use super::admin::circuit_json;
use super::encode::error_response;
use crate::GatewayError;
use crate::stats::{MAX_WINDOW_SECS, RECENT};
use crate::usage::now_ms;

/// A file of the app.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:literal) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!("../../dashboard/", $name)),
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("sw.js", "text/javascript; charset=utf-8"),
    asset!("manifest.webmanifest", "application/manifest+json"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("icon-192.png", "image/png"),
    asset!("icon-512.png", "image/png"),
];

/// Nothing but this origin: scripts, styles, images, fetches, the worker and the manifest.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; manifest-src 'self'; worker-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// The placeholder in `sw.js` that becomes the assets' hash.
const VERSION_MARK: &str = "__ASSETS_VERSION__";

/// A short hash of every asset: the service worker's cache name and every ETag.
fn version() -> &'static str {
    static V: OnceLock<String> = OnceLock::new();
    V.get_or_init(|| {
        let mut h = Sha256::new();
        for a in ASSETS {
            h.update(a.name.as_bytes());
            h.update((a.body.len() as u64).to_le_bytes());
            h.update(a.body);
        }
        h.finalize()
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect()
    })
}

/// `sw.js` with its version filled in.
fn service_worker() -> &'static [u8] {
    static SW: OnceLock<Vec<u8>> = OnceLock::new();
    SW.get_or_init(|| {
        let src = ASSETS
            .iter()
            .find(|a| a.name == "sw.js")
            .map(|a| String::from_utf8_lossy(a.body).into_owned())
            .unwrap_or_default();
        src.replace(VERSION_MARK, version()).into_bytes()
    })
}

/// `GET /dashboard` and `GET /dashboard/`.
pub(super) async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `GET /dashboard/{file}`.
pub(super) async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    serve(&name, &headers)
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        let err = GatewayError::invalid(
            "path",
            format!("/dashboard/{name} is not a file of the dashboard"),
        );
        let mut resp = error_response(&err);
        *resp.status_mut() = StatusCode::NOT_FOUND;
        return resp;
    };
    let etag = format!("\"{}\"", version());
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let body: &'static [u8] = if asset.name == "sw.js" {
        service_worker()
    } else {
        asset.body
    };
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        body.into_response()
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    // Always revalidated (cheap, with the ETag); offline copies live in the service worker.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    match asset.name {
        "index.html" => {
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            );
            h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        }
        // The worker lives in /dashboard/ but controls /dashboard itself too.
        "sw.js" => {
            h.insert(
                "service-worker-allowed",
                HeaderValue::from_static("/dashboard"),
            );
        }
        _ => {}
    }
    resp
}

/// The query of `/admin/stats`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct StatsParams {
    /// `1m`, `5m`, `15m`, `1h`, or seconds (`90`, `90s`), up to an hour. Default `5m`.
    window: Option<String>,
    /// How many of the last requests to list (default 50, at most 200).
    recent: Option<usize>,
}

/// Seconds of a window such as `5m`, `1h`, `90s` or `90`.
pub(crate) fn parse_window(s: &str) -> Option<u32> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().last()? {
        (i, 's') => (&s[..i], 1),
        (i, 'm') => (&s[..i], 60),
        (i, 'h') => (&s[..i], 3600),
        _ => (s, 1),
    };
    let n: u32 = num.parse().ok()?;
    let secs = n.checked_mul(unit)?;
    (10..=MAX_WINDOW_SECS).contains(&secs).then_some(secs)
}

/// `GET /admin/stats?window=5m&recent=50`.
pub(super) async fn stats(
    State(state): State<Arc<EdgeContext>>,
    params: Result<Query<StatsParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(p)) = params else {
        return error_response(&GatewayError::invalid(
            "query",
            "the query string could not be read",
        ));
    };
    let label = p.window.as_deref().unwrap_or("5m");
    let Some(window) = parse_window(label) else {
        return error_response(&GatewayError::invalid(
            "window",
            format!("`{label}` is not a window: use 1m, 5m, 15m or 1h (or seconds, 10 to 3600)"),
        ));
    };
    let snap = state
        .stats
        .snapshot(window, now_ms(), p.recent.unwrap_or(50).min(RECENT));
    let mut body = match serde_json::to_value(&snap) {
        Ok(v) => v,
        Err(e) => return error_response(&GatewayError::Internal(format!("stats: {e}"))),
    };
    if let Some(o) = body.as_object_mut() {
        o.insert("window".into(), json!(label));
        o.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
        o.insert("providers".into(), providers(&state));
    }
    let mut resp = axum::Json(body).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Every configured provider with its deployments' circuits, as the router sees them.
fn providers(state: &EdgeContext) -> Value {
    let now = Instant::now();
    let wall = SystemTime::now();
    let deployments = state.registry.deployments();
    let list: Vec<Value> = state
        .registry
        .catalog()
        .providers()
        .iter()
        .filter(|spec| state.registry.is_configured(spec.name))
        .map(|spec| {
            let mine: Vec<_> = deployments
                .iter()
                .filter(|d| d.provider().name == spec.name)
                .collect();
            let open = mine
                .iter()
                .filter(|d| d.state().status() != "healthy")
                .count();
            let status = if !mine.is_empty() && open == mine.len() {
                "open"
            } else if open > 0 {
                "degraded"
            } else {
                "healthy"
            };
            json!({
                "name": spec.name,
                "tier": spec.tier.as_str(),
                "status": status,
                "deployments": mine.iter().map(|d| circuit_json(d, now, wall)).collect::<Vec<_>>(),
            })
        })
        .collect();
    Value::Array(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_in_minutes_hours_and_seconds() {
        assert_eq!(parse_window("1m"), Some(60));
        assert_eq!(parse_window("5m"), Some(300));
        assert_eq!(parse_window("15m"), Some(900));
        assert_eq!(parse_window("1h"), Some(3600));
        assert_eq!(parse_window("90s"), Some(90));
        assert_eq!(parse_window("120"), Some(120));
        for bad in ["", "m", "2h", "5", "-1m", "5x", "1.5m", "99999999999m"] {
            assert_eq!(parse_window(bad), None, "{bad}");
        }
    }

    #[test]
    fn assets_are_all_there_with_types() {
        for name in [
            "index.html",
            "app.js",
            "app.css",
            "sw.js",
            "manifest.webmanifest",
            "icon-192.png",
            "icon-512.png",
        ] {
            let a = ASSETS.iter().find(|a| a.name == name).unwrap();
            assert!(!a.body.is_empty(), "{name}");
        }
        let sw = String::from_utf8(service_worker().to_vec()).unwrap();
        assert!(!sw.contains(VERSION_MARK));
        assert!(sw.contains(version()));
        assert_eq!(version().len(), 12);
    }
}
