//! The HTTP edge: the axum router (`/v1/*`, `/health`, `/metrics`, `/admin/*`), request
//! decoding and validation, and response encoding. The only place that builds HTTP responses
//! from [`GatewayError`]s.

mod admin;
pub mod auth;
mod dashboard;
pub mod decode;
pub mod embeddings;
pub mod encode;
#[cfg(test)]
mod fuzz;
pub mod guard;
mod keys;
pub mod messages;
pub mod responses;
pub mod server;
pub mod shed;
mod usage;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use crate::GatewayError;
use crate::router::Registry;
use crate::telemetry::{HandleCache, handles, names};
use crate::types::BoxChat;
use crate::types::{ReplyBody, ReplyMeta};
use encode::{SseEncoder, StreamObserver, error_response, meta_headers, sse_response};

/// What every handler of the edge shares: the chat stack, the registry, the stores and limits.
#[derive(Clone)]
pub struct EdgeContext {
    /// The chat stack (router, failover, dispatch).
    pub chat: BoxChat,
    /// The access checks alone (model guard, rate limits), for requests that end at the edge.
    pub count: BoxChat,
    /// Providers and deployments.
    pub registry: Arc<Registry>,
    /// The metrics handle.
    pub metrics: Option<PrometheusHandle>,
    /// Request body limit.
    pub max_body_bytes: usize,
    /// The gateway's own key (`PROXYGATE_MASTER_KEY`), if any.
    pub master_key: Option<crate::types::Secret>,
    /// Where usage records go (and `/v1/usage` reads).
    pub usage: crate::usage::UsageSink,
    /// The SQL database behind usage (and keys), if any.
    pub db: Option<crate::db::Db>,
    /// Prices.
    pub rates: Arc<crate::cost::RateTable>,
    /// Circuits, latency and cache: in process or shared through Redis.
    pub state: Arc<dyn crate::shared::StateBackend>,
    /// Live statistics for the dashboard, fed by the usage sink.
    pub stats: Arc<crate::stats::Stats>,
    /// Virtual keys.
    pub keys: Arc<crate::access::Keys>,
    /// Requests in flight at most (`MAX_INFLIGHT_REQUESTS`).
    pub max_inflight: usize,
    /// Request header bytes at most (`MAX_HEADER_BYTES`).
    pub max_header_bytes: usize,
    /// Days a stored response stays readable (`RESPONSES_TTL_DAYS`).
    pub responses_ttl_days: u64,
    /// What web pages may do (`ALLOWED_HOSTS`, `CORS_ALLOWED_ORIGINS`).
    pub guard: guard::GuardConfig,
    /// Reloads and shows the running configuration (`/admin/reload`, `/admin/config`).
    pub control: Option<Arc<dyn Control>>,
}

/// What the admin API's configuration endpoints call: the gateway that composed the edge.
pub trait Control: Send + Sync + 'static {
    /// Reads the configuration again and swaps it in: its summary, or every problem found
    /// (nothing changed then).
    fn reload(&self) -> futures_util::future::BoxFuture<'static, Result<Value, Vec<String>>>;
    /// The running configuration, every secret as `***`.
    fn config(&self) -> Value;
}

impl std::fmt::Debug for EdgeContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeContext")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

/// The gateway's routes.
pub fn routes(state: EdgeContext) -> Router {
    let edge = shed::EdgeLimitsLayer::new(state.max_inflight, state.max_header_bytes);
    let origin_guard = guard::OriginGuardLayer::new(state.guard.clone());
    // `/v1/*` and `/admin/*` need the master key when one is configured.
    let keyed = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/chat/completions", post(chat_completions))
        .route("/v1/responses", post(responses::create))
        .route("/responses", post(responses::create))
        .route(
            "/v1/responses/{id}",
            get(responses::store::get).delete(responses::store::delete),
        )
        .route(
            "/v1/responses/{id}/input_items",
            get(responses::store::input_items),
        )
        .route("/v1/embeddings", post(embeddings::embeddings))
        .route("/embeddings", post(embeddings::embeddings))
        .route("/v1/models", get(list_models))
        .route("/v1/usage", get(usage::usage))
        .route("/admin/circuits", get(admin::list_circuits))
        .route("/admin/rates", get(admin::rates))
        .route("/admin/reload", post(admin::reload))
        .route("/admin/config", get(admin::config))
        .route("/admin/circuits/{*deployment}", post(admin::reset_circuit))
        .route("/admin/stats", get(dashboard::stats))
        .route("/admin/keys", get(keys::list).post(keys::create))
        .route(
            "/admin/keys/{id}",
            get(keys::get).patch(keys::update).delete(keys::delete),
        )
        .route_layer(auth::AuthLayer::new(
            state.master_key.clone(),
            state.keys.clone(),
        ));
    // The Messages API: the same key check, and every error in Anthropic's shape (the
    // rewrite sits outside the check so its refusals are rewritten too).
    let anthropic = Router::new()
        .route("/v1/messages", post(messages::messages))
        .route("/v1/messages/count_tokens", post(messages::count_tokens))
        .route_layer(auth::AuthLayer::new(
            state.master_key.clone(),
            state.keys.clone(),
        ))
        .route_layer(axum::middleware::map_response(messages::anthropic_errors));
    let app = Router::new()
        .merge(keyed)
        .merge(anthropic)
        .route("/health", get(health))
        .route("/metrics", get(render_metrics))
        // The dashboard's shell is open; the data it shows comes from /admin (keyed).
        .route("/dashboard", get(dashboard::index))
        .route("/dashboard/", get(dashboard::index))
        .route("/dashboard/{file}", get(dashboard::file))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(Arc::new(state));
    // The edge's layers wrap the whole router once. `Router::layer` would wrap each route in
    // a boxed service of its own per layer, and every request would clone and box through
    // each of them.
    let edge = tower::ServiceBuilder::new()
        .layer(edge)
        .layer(origin_guard)
        // The trace layer's body, boxed once as the guards above take it.
        .map_response(IntoResponse::into_response)
        // A span per request (at debug, so free when not logged) carrying the request id, which
        // is taken from the client's `x-request-id` or made here, and echoed in the response.
        .layer(SetRequestIdLayer::x_request_id(FastRequestUuid))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let id = req
                        .headers()
                        .get(&X_REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    tracing::debug_span!("request", method = %req.method(), path = req.uri().path(), request_id = id)
                })
                // A 5xx is an answer the gateway chose (an open circuit, an upstream's
                // failure), logged where it is decided; at ERROR here it was a line per request.
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .service(app);
    Router::new().fallback_service(edge)
}

/// Request ids: random (v4) UUIDs from the thread-local CSPRNG. tower-http's `MakeRequestUuid`
/// asks the kernel for fresh randomness on every request, a `getrandom` syscall each time.
#[derive(Clone, Copy, Debug, Default)]
struct FastRequestUuid;

impl MakeRequestId for FastRequestUuid {
    fn make_request_id<B>(&mut self, _request: &http::Request<B>) -> Option<RequestId> {
        http::HeaderValue::from_bytes(&uuid_v4(rand::random()))
            .ok()
            .map(RequestId::new)
    }
}

/// `bytes` as a version 4, variant 1 UUID in its hyphenated lower-case form.
fn uuid_v4(bytes: [u8; 16]) -> [u8; 36] {
    let mut out = [0u8; 36];
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .encode_lower(&mut out);
    out
}

async fn method_not_allowed(req: Request) -> Response {
    let err = GatewayError::InvalidRequest {
        field: "method".into(),
        reason: format!("{} is not allowed on {}", req.method(), req.uri().path()),
    };
    let mut resp = error_response(&err);
    *resp.status_mut() = http::StatusCode::METHOD_NOT_ALLOWED;
    resp
}

async fn not_found(req: Request) -> Response {
    let err = GatewayError::InvalidRequest {
        field: "path".into(),
        reason: format!(
            "{} {} is not an endpoint of this gateway",
            req.method(),
            req.uri().path()
        ),
    };
    let mut resp = error_response(&err);
    *resp.status_mut() = http::StatusCode::NOT_FOUND;
    resp
}

/// Keeps `proxygate_inflight_requests` and the request metrics right however a request ends.
struct RequestGuard {
    started: Instant,
    provider: &'static str,
    // The deployment id, shared with the reply (no copy per request).
    model: metrics::SharedString,
    status: u16,
    endpoint: &'static str,
    done: bool,
}

impl RequestGuard {
    fn new(endpoint: &'static str) -> Self {
        handles::INFLIGHT.increment(1.0);
        Self {
            started: Instant::now(),
            provider: "none",
            model: metrics::SharedString::const_str(""),
            status: 0,
            endpoint,
            done: false,
        }
    }

    fn record(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        handles::INFLIGHT.decrement(1.0);
        type Labels = (&'static str, metrics::SharedString, u16, &'static str);
        static REQUESTS: std::sync::LazyLock<HandleCache<Labels, metrics::Counter>> =
            std::sync::LazyLock::new(HandleCache::default);
        REQUESTS
            .get(
                (
                    self.provider,
                    self.model.clone(),
                    self.status,
                    self.endpoint,
                ),
                |(provider, model, status, endpoint)| {
                    metrics::counter!(names::REQUESTS_TOTAL,
                        "provider" => *provider, "model" => model.clone(),
                        "status" => status_label(*status), "endpoint" => *endpoint)
                },
            )
            .increment(1);
        handles::REQUEST_DURATION.record(self.started.elapsed().as_secs_f64());
    }
}

/// The `status` label: a static string for the statuses the gateway answers with.
fn status_label(status: u16) -> metrics::SharedString {
    let s = match status {
        200 => "200",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        408 => "408",
        413 => "413",
        422 => "422",
        429 => "429",
        499 => "499",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        other => return other.to_string().into(),
    };
    metrics::SharedString::const_str(s)
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        if self.status == 0 {
            self.status = 499; // the client went away first
        }
        self.record();
    }
}

struct StreamMetrics {
    guard: RequestGuard,
}

impl StreamObserver for StreamMetrics {
    fn finish(mut self: Box<Self>, ok: bool) {
        if !ok {
            self.guard.status = 502;
        }
        self.guard.record();
    }

    fn abandon(mut self: Box<Self>) {
        // The status of a request whose client left first (also what its usage records).
        self.guard.status = 499;
        self.guard.record();
    }
}

async fn chat_completions(State(state): State<Arc<EdgeContext>>, req: Request) -> Response {
    let mut guard = RequestGuard::new("chat");
    let started = Instant::now();
    let request_id = request_id(&req);
    let cache = crate::types::CacheControl::from_headers(req.headers());
    let grant = auth::grant(&req);
    let body = match decode::read_body(req, state.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return fail(&mut guard, &e),
    };
    let mut chat = match decode::chat_request(&body) {
        Ok(c) => c,
        Err(e) => return fail(&mut guard, &e),
    };
    chat.ctx.request_id = request_id;
    chat.ctx.cache = cache;
    auth::attach(grant, &mut chat.ctx);
    chat.ctx.verbatim = Some(body);
    let include_usage = chat.wants_stream_usage();
    // The cost layer ends every stream with usage; this estimate only serves stacks without it.
    let prompt_estimate = 0;
    // The model label comes from the deployment, never from the client's string (bounded).
    let reply = match state.chat.clone().oneshot(chat).await {
        Ok(r) => r,
        Err(e) => return fail(&mut guard, &e),
    };
    guard.provider = reply.meta.provider;
    guard.model = reply.meta.deployment.clone().into();
    let meta = reply.meta;
    match reply.body {
        ReplyBody::Complete(resp) => whole_answer(
            &mut guard,
            &meta,
            encode::completion_body(&resp).map(Bytes::from),
        ),
        ReplyBody::Raw(raw) => whole_answer(&mut guard, &meta, Ok(raw.body)),
        ReplyBody::Stream(stream) => {
            guard.status = 200;
            handles::TIME_TO_FIRST_TOKEN.record(started.elapsed().as_secs_f64());
            let observer = Box::new(StreamMetrics { guard });
            let mut out = sse_response(SseEncoder::new(
                stream,
                include_usage,
                prompt_estimate,
                Some(observer),
            ));
            meta_headers(&mut out, &meta);
            out
        }
        ReplyBody::Embeddings(_) => fail(
            &mut guard,
            &GatewayError::Internal("an embeddings answer to a chat request".into()),
        ),
    }
}

/// A whole chat completion's response: its JSON `body` (written by the gateway or kept as the
/// upstream wrote it) with the provenance headers, recorded as answered.
fn whole_answer(
    guard: &mut RequestGuard,
    meta: &ReplyMeta,
    body: Result<Bytes, serde_json::Error>,
) -> Response {
    guard.status = 200;
    let mut out = match body {
        // An upstream that echoes a configured key does not get it to the client.
        Ok(body) => (
            [(http::header::CONTENT_TYPE, "application/json")],
            redacted(body),
        )
            .into_response(),
        Err(e) => error_response(&GatewayError::Internal(format!(
            "the answer could not be encoded: {e}"
        ))),
    };
    meta_headers(&mut out, meta);
    guard.record();
    out
}

/// `body` with every registered secret masked; the same buffer (no copy) when it holds none.
fn redacted(body: Bytes) -> Bytes {
    match crate::redact::redact_bytes(&body) {
        std::borrow::Cow::Borrowed(_) => body,
        std::borrow::Cow::Owned(clean) => clean.into(),
    }
}

/// `x-request-id`, made once: a lookup by `&str` parses and validates the name each time.
static X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// The request id the edge set (or the client sent), for usage records.
pub(crate) fn request_id(req: &Request) -> Option<Arc<str>> {
    req.headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(Arc::from)
}

fn fail(guard: &mut RequestGuard, err: &GatewayError) -> Response {
    guard.status = err.status().as_u16();
    guard.record();
    tracing::debug!(
        kind = err.kind(),
        status = guard.status,
        "request failed: {err}"
    );
    error_response(err)
}

async fn list_models(State(state): State<Arc<EdgeContext>>) -> Response {
    let created = 1_735_689_600u64; // 2025-01-01, the catalog's date
    let data: Vec<Value> = state
        .registry
        .model_rows()
        .into_iter()
        .map(|row| {
            let status = match &row.deployment {
                Some(d) => d.state().status(),
                None => "unconfigured",
            };
            json!({
                "id": row.id,
                "object": "model",
                "created": created,
                "owned_by": row.provider,
                "provider": row.provider,
                "tier": row.tier.as_str(),
                "status": status,
                "mode": row.mode,
                "context_window": row.context,
                "pricing": row.price.map(|(input, output)| {
                    json!({"input_per_1m": input, "output_per_1m": output, "currency": "USD"})
                }),
                "aliases": row.aliases,
            })
        })
        .collect();
    let mut data = data;
    // Model groups, asked for by their bare name.
    let snap = state.registry.snapshot();
    for g in snap.groups() {
        let status = match state.registry.resolve(&g.name) {
            Ok(ds) if ds.iter().any(|d| d.state().status() == "healthy") => "healthy",
            Ok(ds) if !ds.is_empty() => "degraded",
            _ => "unconfigured",
        };
        let strategy = match g.kind {
            crate::router::GroupKind::Chain => "fallback",
            crate::router::GroupKind::Strategy(s) => s.as_str(),
        };
        data.push(json!({
            "id": g.name,
            "object": "model",
            "created": created,
            "owned_by": "group",
            "provider": "group",
            "tier": group_tier(&state.registry, &g.targets),
            "status": status,
            "mode": "chat",
            "strategy": strategy,
            "targets": g.targets,
            "aliases": [],
        }));
    }
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

/// A group's tier: the tier of its first target that resolves (paid-key when none does).
fn group_tier(registry: &Registry, targets: &[String]) -> &'static str {
    let snap = registry.snapshot();
    targets
        .iter()
        .find_map(|t| {
            let (p, _) = t.split_once('/')?;
            snap.catalog().provider(p).map(|s| s.tier.as_str())
        })
        .or_else(|| {
            targets.iter().find_map(|t| {
                snap.catalog()
                    .serving(t)
                    .first()
                    .map(|(s, _)| s.tier.as_str())
            })
        })
        .unwrap_or("paid-key")
}

/// Whether a deployment id names a catalog model (`provider[#n]/model`), as opposed to a
/// model id some client chose.
fn is_catalog_id(catalog: crate::catalog::Catalog, id: &str) -> bool {
    let Some((provider, model)) = id.split_once('/') else {
        return false;
    };
    let provider = provider.split('#').next().unwrap_or(provider);
    catalog
        .provider(provider)
        .is_some_and(|p| p.model(model).is_some())
}

async fn health(State(state): State<Arc<EdgeContext>>, headers: http::HeaderMap) -> Response {
    let mut providers = serde_json::Map::new();
    let mut deployments = state.registry.deployments();
    // Without the master key, only catalog models: a tenant's own model ids stay private.
    if !auth::full_view(state.master_key.as_ref(), &headers) {
        let catalog = state.registry.catalog();
        deployments.retain(|d| is_catalog_id(catalog, d.id()));
    }
    for spec in state.registry.catalog().providers() {
        let configured = state.registry.is_configured(spec.name);
        let mine: Vec<_> = deployments
            .iter()
            .filter(|d| d.provider().name == spec.name)
            .collect();
        let status = if !configured {
            "unconfigured"
        } else if !mine.is_empty() && mine.iter().all(|d| d.state().status() == "open") {
            "open"
        } else if mine.iter().any(|d| d.state().status() != "healthy") {
            "degraded"
        } else {
            "healthy"
        };
        let deps: serde_json::Map<String, Value> = mine
            .iter()
            .map(|d| (d.id().to_string(), json!(d.state().status())))
            .collect();
        providers.insert(
            spec.name.to_owned(),
            json!({"status": status, "configured": configured, "tier": spec.tier.as_str(), "deployments": deps}),
        );
    }
    axum::Json(
        json!({"status": "ok", "version": env!("CARGO_PKG_VERSION"), "providers": providers,
            "state": {"backend": state.state.kind(), "degraded": state.state.degraded()}}),
    )
    .into_response()
}

async fn render_metrics(
    State(state): State<Arc<EdgeContext>>,
    headers: http::HeaderMap,
) -> Response {
    match &state.metrics {
        Some(h) => {
            let mut text = h.render();
            if !auth::full_view(state.master_key.as_ref(), &headers) {
                text = public_metrics(&text, state.registry.catalog());
            }
            (
                [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                text,
            )
                .into_response()
        }
        None => error_response(&GatewayError::Internal(
            "metrics are not enabled in this embedding".into(),
        )),
    }
}

/// `text` (Prometheus exposition) without the series whose `model` or `deployment` label is
/// a model id outside the catalog, or that carry a `key` label.
fn public_metrics(text: &str, catalog: crate::catalog::Catalog) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let hidden = !line.starts_with('#')
            && (line.contains(",key=\"")
                || line.contains("{key=\"")
                || ["model=\"", "deployment=\""].iter().any(|label| {
                    line.split(label).skip(1).any(|rest| {
                        let value = rest.split('"').next().unwrap_or("");
                        !(value.is_empty()
                            || value == "none"
                            || value == "other"
                            || is_catalog_id(catalog, value))
                    })
                }));
        if !hidden {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_metrics_hide_tenant_models() {
        let text = "# HELP x y\nx{model=\"mock/echo\",status=\"200\"} 1\nx{model=\"mock/private-ft\"} 2\nx{model=\"other\"} 3\ny{key=\"vk_1\"} 4\nz 5\n";
        let out = public_metrics(text, crate::catalog::Catalog::default());
        assert!(out.contains("mock/echo") && out.contains("other") && out.contains("z 5"));
        assert!(
            !out.contains("private-ft") && !out.contains("vk_1"),
            "{out}"
        );
    }

    #[test]
    fn status_labels_are_the_decimal_status() {
        for code in [200, 400, 429, 499, 502, 504, 418, 599] {
            assert_eq!(&*status_label(code), code.to_string(), "{code}");
        }
    }

    #[test]
    fn request_ids_are_version_4_uuids() {
        assert_eq!(
            &uuid_v4([0xff; 16]),
            b"ffffffff-ffff-4fff-bfff-ffffffffffff"
        );
        assert_eq!(&uuid_v4([0; 16]), b"00000000-0000-4000-8000-000000000000");
        let req = http::Request::new(());
        let a = FastRequestUuid.make_request_id(&req).unwrap();
        let b = FastRequestUuid.make_request_id(&req).unwrap();
        assert_ne!(a.header_value(), b.header_value());
        let a = a.header_value().to_str().unwrap();
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'4');
        assert!(matches!(a.as_bytes()[19], b'8' | b'9' | b'a' | b'b'));
    }
}
