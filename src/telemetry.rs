//! Metric names, their help text, and the Prometheus recorder.
//!
//! Names live only here. Labels come from closed sets (provider, catalog model, status code,
//! endpoint, error kind), so no key, prompt or raw path becomes a label.

use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// Every metric name.
pub mod names {
    /// Requests by provider, model, status and endpoint.
    pub const REQUESTS_TOTAL: &str = "proxygate_requests_total";
    /// Whole request duration at the edge, seconds.
    pub const REQUEST_DURATION_SECONDS: &str = "proxygate_request_duration_seconds";
    /// Upstream call duration (to the answer or first chunk), seconds.
    pub const UPSTREAM_DURATION_SECONDS: &str = "proxygate_upstream_duration_seconds";
    /// Time to the first streamed chunk, seconds.
    pub const TIME_TO_FIRST_TOKEN_SECONDS: &str = "proxygate_time_to_first_token_seconds";
    /// Tokens by provider, model and kind (`prompt`, `completion`).
    pub const TOKENS_TOTAL: &str = "proxygate_tokens_total";
    /// Estimated spend in USD by provider and model.
    pub const COST_USD_TOTAL: &str = "proxygate_cost_usd_total";
    /// Circuit state per deployment: 0 closed, 1 half-open, 2 open.
    pub const CIRCUIT_STATE: &str = "proxygate_circuit_state";
    /// Attempts that moved on to another deployment.
    pub const FAILOVERS_TOTAL: &str = "proxygate_failovers_total";
    /// Answers served from the cache.
    pub const CACHE_HITS_TOTAL: &str = "proxygate_cache_hits_total";
    /// Requests being served right now.
    pub const INFLIGHT_REQUESTS: &str = "proxygate_inflight_requests";
    /// 1 while the shared state backend (Redis) is unreachable and in-process state stands in.
    pub const STATE_BACKEND_DEGRADED: &str = "proxygate_state_backend_degraded";
    /// Usage records that could not be journaled, stored or queued, by stage.
    pub const USAGE_STORE_ERRORS_TOTAL: &str = "proxygate_usage_store_errors_total";
}

/// Histogram buckets, 5 ms to 120 s.
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Registers help text for every metric.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        names::REQUESTS_TOTAL,
        "Requests by provider, model, status and endpoint"
    );
    describe_histogram!(
        names::REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Request duration at the gateway edge"
    );
    describe_histogram!(
        names::UPSTREAM_DURATION_SECONDS,
        Unit::Seconds,
        "Upstream call duration until the answer or first chunk"
    );
    describe_histogram!(
        names::TIME_TO_FIRST_TOKEN_SECONDS,
        Unit::Seconds,
        "Time to the first streamed chunk"
    );
    describe_counter!(names::TOKENS_TOTAL, "Tokens by provider, model and kind");
    describe_counter!(
        names::COST_USD_TOTAL,
        "Estimated spend in USD by provider and model"
    );
    describe_gauge!(
        names::CIRCUIT_STATE,
        "Circuit state per deployment: 0 closed, 1 half-open, 2 open"
    );
    describe_counter!(
        names::FAILOVERS_TOTAL,
        "Attempts that moved on to another deployment"
    );
    describe_counter!(names::CACHE_HITS_TOTAL, "Answers served from the cache");
    describe_gauge!(names::INFLIGHT_REQUESTS, "Requests being served right now");
    describe_gauge!(
        names::STATE_BACKEND_DEGRADED,
        "1 while the shared state backend (Redis) is unreachable and in-process state stands in"
    );
    describe_counter!(
        names::USAGE_STORE_ERRORS_TOTAL,
        "Usage records that could not be journaled, stored or queued, by stage"
    );
}

/// A recorder with the duration buckets set, not yet installed.
pub fn build_recorder() -> PrometheusRecorder {
    let mut builder = PrometheusBuilder::new();
    for name in [
        names::REQUEST_DURATION_SECONDS,
        names::UPSTREAM_DURATION_SECONDS,
        names::TIME_TO_FIRST_TOKEN_SECONDS,
    ] {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(name.to_owned()), DURATION_BUCKETS)
            .expect("bucket list is not empty");
    }
    builder.build_recorder()
}

/// How often recorded histogram samples are folded into their buckets.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs the global recorder once and returns its handle (later calls return the same one),
/// with a background thread that drains histogram samples every few seconds.
pub fn install() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (an embedding app); ours still renders
            // what it records through the handle only if installed, so report it.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics shows only ProxyGate's own handle");
            }
            describe();
            // Histograms keep every raw sample until drained: drain them on a timer, or memory
            // grows with each request whenever nobody scrapes /metrics. A plain thread, so it
            // outlives whichever async runtime happened to build the first gateway.
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new().name("proxygate-metrics-upkeep".into()).spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                }
            });
            if let Err(e) = spawned {
                tracing::warn!("cannot start the metrics upkeep thread ({e}); histograms drain only on /metrics scrapes");
            }
            handle
        })
        .clone()
}

/// Creates every documented series at zero (one circuit gauge per deployment id), so dashboards
/// and alerts see them from the start.
pub fn init_series<'a>(deployment_ids: impl IntoIterator<Item = &'a str>) {
    use metrics::{counter, gauge, histogram};
    let labels = [("provider", "mock"), ("model", "mock/echo")];
    for endpoint in ["chat", "messages", "embeddings"] {
        counter!(names::REQUESTS_TOTAL, "provider" => "mock", "model" => "mock/echo", "status" => "200", "endpoint" => endpoint).absolute(0);
    }
    for kind in ["prompt", "completion"] {
        counter!(names::TOKENS_TOTAL, "provider" => "mock", "model" => "mock/echo", "kind" => kind)
            .absolute(0);
    }
    // A float that only grows: the metrics crate's counters are integers, so a gauge.
    gauge!(names::COST_USD_TOTAL, &labels).set(0.0);
    counter!(names::FAILOVERS_TOTAL).absolute(0);
    counter!(names::CACHE_HITS_TOTAL).absolute(0);
    gauge!(names::INFLIGHT_REQUESTS).set(0.0);
    gauge!(names::STATE_BACKEND_DEGRADED).set(0.0);
    // Histograms appear once they hold a sample; register them so the series exist.
    let _ = histogram!(names::REQUEST_DURATION_SECONDS);
    let _ = histogram!(names::UPSTREAM_DURATION_SECONDS);
    let _ = histogram!(names::TIME_TO_FIRST_TOKEN_SECONDS);
    for id in deployment_ids {
        gauge!(names::CIRCUIT_STATE, "deployment" => id.to_string()).set(0.0);
    }
}

/// Metric handles by label set, so a request neither builds a `metrics::Key` nor looks it up
/// in the recorder's registry (hashing and comparing every label) each time it records.
///
/// The label sets are bounded (deployments x statuses x endpoints). Handles are made on first
/// use, so they bind to whichever recorder is installed by then (the gateway installs its own
/// before serving).
#[derive(Debug)]
pub struct HandleCache<K, V> {
    // Keys are label sets the gateway makes, never a client's: a fast hasher fits.
    map: std::sync::RwLock<std::collections::HashMap<K, V, foldhash::fast::RandomState>>,
}

impl<K, V> Default for HandleCache<K, V> {
    fn default() -> Self {
        Self {
            map: std::sync::RwLock::new(std::collections::HashMap::default()),
        }
    }
}

impl<K: std::hash::Hash + Eq, V: Clone> HandleCache<K, V> {
    /// The handle for `key`, made by `make` the first time.
    pub fn get(&self, key: K, make: impl FnOnce(&K) -> V) -> V {
        if let Ok(map) = self.map.read()
            && let Some(v) = map.get(&key)
        {
            return v.clone();
        }
        let v = make(&key);
        if let Ok(mut map) = self.map.write() {
            map.entry(key).or_insert_with(|| v.clone());
        }
        v
    }
}

/// Handles of the label-free series, made on first use.
pub mod handles {
    use std::sync::LazyLock;

    use super::names;

    /// `proxygate_inflight_requests`.
    pub static INFLIGHT: LazyLock<metrics::Gauge> =
        LazyLock::new(|| metrics::gauge!(names::INFLIGHT_REQUESTS));
    /// `proxygate_request_duration_seconds`.
    pub static REQUEST_DURATION: LazyLock<metrics::Histogram> =
        LazyLock::new(|| metrics::histogram!(names::REQUEST_DURATION_SECONDS));
    /// `proxygate_time_to_first_token_seconds`.
    pub static TIME_TO_FIRST_TOKEN: LazyLock<metrics::Histogram> =
        LazyLock::new(|| metrics::histogram!(names::TIME_TO_FIRST_TOKEN_SECONDS));
    /// `proxygate_cache_hits_total`.
    pub static CACHE_HITS: LazyLock<metrics::Counter> =
        LazyLock::new(|| metrics::counter!(names::CACHE_HITS_TOTAL));
}

/// Marks an upstream request with the trace of the attempt that sends it: when an attempt span
/// is current (see `traces`), adds its W3C `traceparent` (and `tracestate`) to the request and
/// notes the upstream host on the span as `server.address`/`server.port`. Without a current
/// span it only reads a thread-local and returns.
pub fn trace_upstream<B>(req: &mut http::Request<B>) {
    use opentelemetry::propagation::{Injector, TextMapPropagator};
    use opentelemetry::trace::TraceContextExt;

    struct Headers<'a>(&'a mut http::HeaderMap);
    impl Injector for Headers<'_> {
        fn set(&mut self, key: &str, value: String) {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(key.as_bytes()),
                http::HeaderValue::from_str(&value),
            ) {
                self.0.insert(name, value);
            }
        }
    }

    opentelemetry::Context::map_current(|cx| {
        let span = cx.span();
        if !span.span_context().is_valid() {
            return;
        }
        opentelemetry_sdk::propagation::TraceContextPropagator::new()
            .inject_context(cx, &mut Headers(req.headers_mut()));
        if span.is_recording()
            && let Some(host) = req.uri().host()
        {
            span.set_attribute(opentelemetry::KeyValue::new(
                "server.address",
                host.to_owned(),
            ));
            let port = req
                .uri()
                .port_u16()
                .unwrap_or(if req.uri().scheme_str() == Some("http") {
                    80
                } else {
                    443
                });
            span.set_attribute(opentelemetry::KeyValue::new("server.port", i64::from(port)));
        }
    });
}
