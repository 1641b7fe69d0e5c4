//! What a web page may do with the gateway. A browser lets any page send requests to
//! `127.0.0.1`, and a page whose domain is rebound to `127.0.0.1` (DNS rebinding) can even read
//! the answers; the only tells are the `Host`, `Origin` and `Content-Type` headers. So, on every
//! route:
//!
//! - without a master key, a `Host` that is not an IP address, a loopback name or one of
//!   `ALLOWED_HOSTS` gets 403 (a rebound domain name shows up here);
//! - a request with an `Origin` that is neither the gateway's own origin nor one of
//!   `CORS_ALLOWED_ORIGINS` gets 403 unless it is a `GET` or `HEAD` (the browser keeps those
//!   answers from the page); listed origins get CORS headers and answers to preflight `OPTIONS`;
//! - a `POST`, `PUT` or `PATCH` carrying a body must say it is JSON (`application/json`, a
//!   `+json` type, any parameters): a cross-site form or `text/plain` `fetch` gets 415 before
//!   anything is spent.
//!
//! # Example
//!
//! ```
//! use proxygate::http::guard::{GuardConfig, OriginGuardLayer};
//! let layer = OriginGuardLayer::new(GuardConfig {
//!     open: true,
//!     allowed_hosts: vec!["gateway.internal".into()],
//!     allowed_origins: vec!["https://app.example.com".into()],
//! });
//! # let _ = layer;
//! ```

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use futures_util::future::{Either, Ready, ready};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use tower::{Layer, Service};

use super::encode::error_response;
use crate::GatewayError;

/// Headers a browser may send cross-origin to an allowed origin.
const ALLOWED_HEADERS: &str = "authorization, content-type, x-api-key, anthropic-version, anthropic-beta, x-request-id, x-proxygate-cache, cache-control, openai-organization, openai-project";
/// Headers of the answer an allowed page may read.
const EXPOSED_HEADERS: &str = "x-request-id, x-proxygate-provider, x-proxygate-deployment, x-proxygate-attempts, x-proxygate-cost-usd, x-proxygate-cache, retry-after, x-ratelimit-remaining-requests, x-ratelimit-remaining-tokens";

/// What the guard allows.
#[derive(Clone, Debug, Default)]
pub struct GuardConfig {
    /// No master key is configured: `Host` is checked.
    pub open: bool,
    /// Extra `Host` names (lower case, with or without a port).
    pub allowed_hosts: Vec<String>,
    /// Origins allowed cross-origin (lower case, no trailing slash), `*` for any.
    pub allowed_origins: Vec<String>,
}

/// Applies [`OriginGuard`].
#[derive(Clone, Debug)]
pub struct OriginGuardLayer {
    config: Arc<GuardConfig>,
}

impl OriginGuardLayer {
    /// A guard with `config`.
    pub fn new(config: GuardConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }
}

impl<S> Layer<S> for OriginGuardLayer {
    type Service = OriginGuard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OriginGuard {
            inner,
            config: self.config.clone(),
        }
    }
}

/// Refuses requests a web page forged; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct OriginGuard<S> {
    inner: S,
    config: Arc<GuardConfig>,
}

/// How the guard treats one request.
enum Verdict {
    Pass { cors: Option<HeaderValue> },
    Preflight(HeaderValue),
    Refuse(StatusCode, String),
}

impl GuardConfig {
    fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim();
        // Lowercased only when it has to be (no copy per request otherwise).
        let host: std::borrow::Cow<'_, str> = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            host.to_ascii_lowercase().into()
        } else {
            host.into()
        };
        if self.allowed_hosts.iter().any(|h| *h == *host) {
            return true;
        }
        let name = strip_port(&host);
        // An IP literal cannot be the product of DNS rebinding: the page's origin would be
        // that same address.
        name == "localhost"
            || name
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok()
            || self.allowed_hosts.iter().any(|h| h == name)
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        self.allowed_origins
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    }

    fn judge(&self, method: &Method, headers: &HeaderMap, uri_host: Option<&str>) -> Verdict {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or(uri_host);
        if self.open
            && let Some(host) = host
            && !self.host_allowed(host)
        {
            return Verdict::Refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "Host {host:?} is not an address of this gateway; add it to ALLOWED_HOSTS or set PROXYGATE_MASTER_KEY"
                ),
            );
        }
        let mut cors = None;
        if let Some(origin) = headers.get(header::ORIGIN) {
            let text = origin.to_str().unwrap_or("").trim_end_matches('/');
            let own = host.is_some_and(|h| {
                let h = h.trim();
                ["http://", "https://"].iter().any(|scheme| {
                    text.len() == scheme.len() + h.len()
                        && text[..scheme.len()].eq_ignore_ascii_case(scheme)
                        && text[scheme.len()..].eq_ignore_ascii_case(h)
                })
            });
            if !own {
                if self.origin_allowed(text) {
                    if method == Method::OPTIONS
                        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
                    {
                        return Verdict::Preflight(origin.clone());
                    }
                    cors = Some(origin.clone());
                } else if !matches!(*method, Method::GET | Method::HEAD) {
                    return Verdict::Refuse(
                        StatusCode::FORBIDDEN,
                        format!(
                            "Origin {:?} may not call this gateway; add it to CORS_ALLOWED_ORIGINS",
                            text.chars().take(200).collect::<String>()
                        ),
                    );
                }
            }
        }
        if matches!(*method, Method::POST | Method::PUT | Method::PATCH)
            && has_body(headers)
            && !is_json(headers)
        {
            return Verdict::Refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "`content-type` must be application/json".to_owned(),
            );
        }
        Verdict::Pass { cors }
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // [::1]:3333
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..h.len() + 1]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or("").trim();
    let starts = |s: &str, prefix: &str| {
        s.len() >= prefix.len()
            && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    };
    let ends = |s: &str, suffix: &str| {
        s.len() >= suffix.len()
            && s.as_bytes()[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
    };
    essence.eq_ignore_ascii_case("application/json")
        || (starts(essence, "application/")
            && essence.len() >= "application/+json".len()
            && ends(essence, "+json"))
}

/// The refusal in the route's own error shape (Anthropic's on `/v1/messages`).
fn refusal(path: &str, status: StatusCode, message: String) -> Response {
    if path.starts_with("/v1/messages") {
        let kind = if status == StatusCode::FORBIDDEN {
            "permission_error"
        } else {
            "invalid_request_error"
        };
        let body =
            serde_json::json!({"type": "error", "error": {"type": kind, "message": message}});
        let mut resp = axum::response::IntoResponse::into_response(axum::Json(body));
        *resp.status_mut() = status;
        return resp;
    }
    let err = if status == StatusCode::FORBIDDEN {
        GatewayError::Forbidden(message)
    } else {
        GatewayError::invalid("content-type", message)
    };
    let mut resp = error_response(&err);
    *resp.status_mut() = status;
    resp
}

fn preflight(origin: HeaderValue) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PATCH, DELETE, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOWED_HEADERS),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    h.insert(header::VARY, HeaderValue::from_static("origin"));
    resp
}

impl<S> Service<Request> for OriginGuard<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response, S::Error>>, CorsFuture<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let verdict = self.config.judge(
            req.method(),
            req.headers(),
            req.uri().authority().map(|a| a.as_str()),
        );
        match verdict {
            Verdict::Refuse(status, message) => {
                Either::Left(ready(Ok(refusal(req.uri().path(), status, message))))
            }
            Verdict::Preflight(origin) => Either::Left(ready(Ok(preflight(origin)))),
            Verdict::Pass { cors } => Either::Right(CorsFuture {
                inner: self.inner.call(req),
                cors,
            }),
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner answer, with CORS headers for an allowed origin.
    pub struct CorsFuture<F> {
        #[pin]
        inner: F,
        cors: Option<HeaderValue>,
    }
}

impl<F, E> std::future::Future for CorsFuture<F>
where
    F: std::future::Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut out = std::task::ready!(this.inner.poll(cx));
        if let (Ok(resp), Some(origin)) = (&mut out, this.cors.take()) {
            let h = resp.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSED_HEADERS),
            );
            h.append(header::VARY, HeaderValue::from_static("origin"));
        }
        Poll::Ready(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> GuardConfig {
        GuardConfig {
            open: true,
            allowed_hosts: vec!["gw.internal".into()],
            allowed_origins: vec!["https://app.example.com".into()],
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn status(v: Verdict) -> u16 {
        match v {
            Verdict::Pass { .. } => 200,
            Verdict::Preflight(_) => 204,
            Verdict::Refuse(s, _) => s.as_u16(),
        }
    }

    #[test]
    fn hosts() {
        let c = open();
        for ok in [
            "127.0.0.1:3333",
            "localhost",
            "LOCALHOST:1",
            "[::1]:3333",
            "10.0.0.5",
            "gw.internal",
            "gw.internal:80",
        ] {
            assert!(c.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "localhost.evil.example",
            "127.0.0.1.nip.io:3333",
            "gw.internal.evil",
        ] {
            assert!(!c.host_allowed(bad), "{bad}");
        }
        let keyed = GuardConfig {
            open: false,
            ..open()
        };
        assert_eq!(
            status(keyed.judge(&Method::GET, &headers(&[("host", "evil.example")]), None)),
            200
        );
    }

    #[test]
    fn host_and_content_type_compare_without_case() {
        let c = open();
        assert!(c.host_allowed("GW.Internal:80"));
        assert!(!c.host_allowed("GW.Internal.Evil"));
        let post = |ct: &'static str| {
            status(c.judge(
                &Method::POST,
                &headers(&[
                    ("host", "127.0.0.1:3333"),
                    ("content-type", ct),
                    ("content-length", "2"),
                ]),
                None,
            ))
        };
        for ok in [
            "Application/JSON",
            " application/json ; charset=utf-8",
            "APPLICATION/VND.API+JSON",
            "application/+json",
        ] {
            assert_eq!(post(ok), 200, "{ok}");
        }
        for bad in [
            "application/json5",
            "application/+jsonx",
            "text/json",
            "application/",
            "+json",
        ] {
            assert_eq!(post(bad), 415, "{bad}");
        }
    }

    #[test]
    fn origins_and_content_types() {
        let c = open();
        let post =
            |h: &[(&'static str, &'static str)]| status(c.judge(&Method::POST, &headers(h), None));
        let json = [
            ("host", "127.0.0.1:3333"),
            ("content-type", "application/json; charset=utf-8"),
            ("content-length", "2"),
        ];
        assert_eq!(post(&json), 200);
        assert_eq!(
            post(&[
                json[0],
                json[1],
                json[2],
                ("origin", "http://127.0.0.1:3333")
            ]),
            200
        );
        assert_eq!(
            post(&[
                json[0],
                json[1],
                json[2],
                ("origin", "https://evil.example")
            ]),
            403
        );
        assert_eq!(post(&[json[0], json[1], json[2], ("origin", "null")]), 403);
        assert_eq!(
            post(&[
                json[0],
                json[1],
                json[2],
                ("origin", "https://app.example.com")
            ]),
            200
        );
        assert_eq!(
            post(&[json[0], ("content-type", "text/plain"), json[2]]),
            415
        );
        assert_eq!(post(&[json[0], json[2]]), 415);
        assert_eq!(
            post(&[
                json[0],
                ("content-type", "application/vnd.api+json"),
                json[2]
            ]),
            200
        );
        assert_eq!(post(&[json[0]]), 200, "an empty POST has no type to check");
        let get = headers(&[("host", "127.0.0.1"), ("origin", "https://evil.example")]);
        assert_eq!(status(c.judge(&Method::GET, &get, None)), 200);
        let pre = headers(&[
            ("host", "127.0.0.1"),
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "POST"),
        ]);
        assert_eq!(status(c.judge(&Method::OPTIONS, &pre, None)), 204);
    }
}
