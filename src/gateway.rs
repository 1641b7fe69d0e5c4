//! Assembles the whole gateway from a [`Config`]: the registry of deployments, the tower
//! stack, and the axum router that serves it. The one place the layers are composed.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = proxygate::Config::default();
//! let gateway = proxygate::Gateway::new(config).await?;
//! let app = axum::Router::new().nest("/llm", gateway.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;

use tower::ServiceBuilder;

use crate::access::{
    BudgetLayer, Budgets, CeilingLayer, Counters, KeyStore, Keys, MemoryBudgets, MemoryCounters,
    MemoryKeyStore, ModelGuardLayer, RateLimitLayer,
};
use crate::breaker::BreakerLayer;
use crate::cache::CacheLayer;
use crate::catalog::Catalog;
use crate::client::{HttpClient, build_client};
use crate::config::Config;
use crate::cost::{CostLayer, RateTable};
use crate::db::{Db, SqlKeyStore, SqlUsageStore};
use crate::error::BuildError;
use crate::failover::FailoverLayer;
use crate::http::{EdgeContext, routes};
use crate::router::{Dispatch, Registry, RouterLayer, StackFn, StackInfo};
use crate::shared::StateBackend;
use crate::timeout::TimeoutLayer;
use crate::traces::{AttemptSpanLayer, ExchangeLayer, ServerSpanLayer, TraceConfig};
use crate::types::BoxChat;
use crate::upstream_metrics::UpstreamMetricsLayer;
use crate::usage::{MemoryStore, SinkConfig, UsageSink, UsageStore};

/// A configured gateway.
#[derive(Clone, Debug)]
pub struct Gateway {
    state: EdgeContext,
    config: Arc<Config>,
    /// The server span and access log around the router, when either is on.
    traces: Option<ServerSpanLayer>,
    control: Arc<Reloader>,
}

/// Swaps a new configuration's routes into a running gateway.
struct Reloader {
    registry: Arc<Registry>,
    rates: Arc<RateTable>,
    running: std::sync::Mutex<Arc<Config>>,
    /// One reload at a time.
    busy: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").finish_non_exhaustive()
    }
}

impl Reloader {
    fn running(&self) -> Arc<Config> {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Validates `next` whole, then swaps its providers, deployments, groups, rules, router
    /// settings and prices in. Nothing changes on error.
    fn apply(&self, next: Config) -> Result<serde_json::Value, Vec<String>> {
        let snap = self.registry.reload(&next.registry_config())?;
        self.rates.replace(RateTable::new(
            &snap.catalog(),
            next.bill_free_tiers,
            &next.rate_overrides,
        ));
        next.register_secrets();
        let before = self.running();
        // Settings read once at start (listeners, stores, limits) take a restart.
        let restart: Vec<&str> = [
            ("HOST", before.host != next.host),
            ("PORT", before.port != next.port),
            (
                "PROXYGATE_MASTER_KEY",
                before.master_key.as_ref().map(|k| k.expose().to_owned())
                    != next.master_key.as_ref().map(|k| k.expose().to_owned()),
            ),
            (
                "DATABASE_URL",
                before.database_url.as_ref().map(|k| k.expose().to_owned())
                    != next.database_url.as_ref().map(|k| k.expose().to_owned()),
            ),
            (
                "REDIS_URL",
                before.redis_url.as_ref().map(|k| k.expose().to_owned())
                    != next.redis_url.as_ref().map(|k| k.expose().to_owned()),
            ),
            (
                "FAILOVER_ENABLED",
                before.failover_enabled != next.failover_enabled,
            ),
            ("MAX_RETRIES", before.max_retries != next.max_retries),
            (
                "REQUEST_TIMEOUT_MS",
                before.request_timeout != next.request_timeout,
            ),
            (
                "CIRCUIT_BREAKER_FAILURE_THRESHOLD",
                before.breaker_threshold != next.breaker_threshold,
            ),
            ("CACHE_ENABLED", before.cache_enabled != next.cache_enabled),
        ]
        .into_iter()
        .filter_map(|(k, changed)| changed.then_some(k))
        .collect();
        let mut providers: Vec<&str> = next.providers.keys().copied().collect();
        providers.sort_unstable();
        let summary = serde_json::json!({
            "status": "reloaded",
            "generation": snap.generation(),
            "routing_strategy": next.strategy.as_str(),
            "providers": providers,
            "deployments": next.routes.deployments.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
            "models": next.routes.groups.keys().collect::<Vec<_>>(),
            "rules": next.routes.rules.keys().collect::<Vec<_>>(),
            "restart_required": restart,
        });
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        tracing::info!(generation = snap.generation(), "configuration reloaded");
        Ok(summary)
    }

    async fn reload(self: Arc<Self>) -> Result<serde_json::Value, Vec<String>> {
        let _one = self.busy.lock().await;
        let running = self.running();
        let next = tokio::task::spawn_blocking(move || running.reread())
            .await
            .map_err(|e| vec![format!("the reload task failed: {e}")])?
            .map_err(|e| e.problems)?;
        self.apply(next)
    }
}

/// The admin API's handle on the reloader.
struct ControlHandle(Arc<Reloader>);

impl crate::http::Control for ControlHandle {
    fn reload(
        &self,
    ) -> futures_util::future::BoxFuture<'static, Result<serde_json::Value, Vec<String>>> {
        Box::pin(self.0.clone().reload())
    }

    fn config(&self) -> serde_json::Value {
        self.0.running().to_json()
    }
}

impl Gateway {
    /// Builds the gateway with a fresh client, installing the global metrics recorder, and
    /// opens the usage store the configuration names (replaying its journal).
    pub async fn new(config: Config) -> Result<Self, BuildError> {
        Self::builder(config).build().await
    }

    /// A builder for embedding (own client, no global metrics recorder).
    pub fn builder(config: Config) -> GatewayBuilder {
        GatewayBuilder {
            config,
            client: None,
            catalog: Catalog::default(),
            metrics: true,
            usage: None,
            key_store: None,
            counters: None,
            budgets: None,
            traces: TraceConfig::default(),
        }
    }

    /// The axum router with every endpoint; nest or merge it into an app.
    pub fn router(&self) -> axum::Router {
        let router = routes(self.state.clone());
        match &self.traces {
            Some(layer) => router.layer(layer.clone()),
            None => router,
        }
    }

    /// The chat stack as a tower service (`ChatRequest` in, `ChatReply` out).
    pub fn chat_service(&self) -> BoxChat {
        self.state.chat.clone()
    }

    /// The registry of deployments.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.state.registry
    }

    /// The configuration the gateway was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The configuration running now (the last one reloaded).
    pub fn running_config(&self) -> Arc<Config> {
        self.control.running()
    }

    /// Reads the configuration again from where it was loaded (`SIGHUP`, `POST
    /// /admin/reload`) and swaps its providers, deployments, model groups, parameter rules,
    /// routing settings and prices in. Every problem is listed and nothing changes when there
    /// is one; requests in flight finish on the routes they started with, and deployments that
    /// still exist keep their circuits and latency.
    pub async fn reload(&self) -> Result<serde_json::Value, Vec<String>> {
        self.control.clone().reload().await
    }

    /// As [`Gateway::reload`] with a configuration built in code.
    pub async fn reload_with(&self, config: Config) -> Result<serde_json::Value, Vec<String>> {
        let _one = self.control.busy.lock().await;
        self.control.apply(config)
    }

    /// Where usage records go.
    pub fn usage(&self) -> &UsageSink {
        &self.state.usage
    }

    /// Where circuits, latency and cached answers are shared.
    pub fn state(&self) -> &Arc<dyn StateBackend> {
        &self.state.state
    }

    /// The dashboard's live statistics.
    pub fn stats(&self) -> &Arc<crate::stats::Stats> {
        &self.state.stats
    }

    /// The SQL database, when usage lives in one.
    pub fn db(&self) -> Option<&Db> {
        self.state.db.as_ref()
    }

    /// The virtual keys.
    pub fn keys(&self) -> &Arc<Keys> {
        &self.state.keys
    }
}

/// Opens the usage store `config` names: Postgres for `DATABASE_URL`, else the SQLite file at
/// `USAGE_DB_PATH` (`:memory:` for none), behind a sink journaling to `USAGE_JOURNAL_DIR`.
pub async fn open_usage(config: &Config) -> Result<(UsageSink, Option<Db>), BuildError> {
    let db = match (&config.database_url, config.usage_db_path.as_str()) {
        (Some(url), _) => Some(Db::connect(url.expose()).await?),
        (None, ":memory:") => None,
        (None, path) => Some(Db::connect(path).await?),
    };
    let store: Arc<dyn UsageStore> = match &db {
        Some(db) => Arc::new(SqlUsageStore::new(db.clone())),
        None => Arc::new(MemoryStore::new()),
    };
    let sink = UsageSink::open(
        store,
        SinkConfig {
            journal_dir: db.as_ref().and(config.usage_journal_dir.clone()),
            flush_every: config.usage_flush,
            capacity: config.usage_queue_capacity,
            fsync: config.usage_fsync,
        },
    )
    .await?;
    Ok((sink, db))
}

/// Builds a [`Gateway`].
#[derive(Debug)]
pub struct GatewayBuilder {
    config: Config,
    client: Option<HttpClient>,
    catalog: Catalog,
    metrics: bool,
    usage: Option<(UsageSink, Option<Db>)>,
    key_store: Option<Arc<dyn KeyStore>>,
    counters: Option<Arc<dyn Counters>>,
    budgets: Option<Arc<dyn Budgets>>,
    traces: TraceConfig,
}

impl GatewayBuilder {
    /// Sends a span per request and per upstream attempt to `tracer` (for example
    /// `provider.tracer("proxygate")` of an `opentelemetry_sdk` provider, such as the one
    /// [`crate::traces::otlp_from_env`] builds). Without one, no spans are made.
    pub fn tracer(mut self, tracer: opentelemetry_sdk::trace::SdkTracer) -> Self {
        self.traces.tracer = Some(tracer);
        self
    }

    /// Makes no recording spans while `status` reports the collector away (their spans would
    /// be dropped unsent), so a collector that is down costs requests next to nothing. The
    /// status of the OTLP exporter [`crate::traces::otlp_from_env`] builds.
    pub fn collector_status(mut self, status: crate::traces::CollectorStatus) -> Self {
        self.traces.collector = Some(status);
        self
    }

    /// Records prompts and answers on attempt spans (default false; the binary follows
    /// `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`).
    pub fn capture_content(mut self, on: bool) -> Self {
        self.traces.capture_content = on;
        self
    }

    /// Writes one access-log line per finished request as an info event with the target
    /// `proxygate::access` (default false; the binary turns it on with `LOG_FORMAT=json`).
    pub fn access_log(mut self, on: bool) -> Self {
        self.traces.access_log = on;
        self
    }

    /// Uses this client instead of a new one.
    pub fn client(mut self, client: HttpClient) -> Self {
        self.client = Some(client);
        self
    }

    /// Uses another catalog.
    pub fn catalog(mut self, catalog: Catalog) -> Self {
        self.catalog = catalog;
        self
    }

    /// Whether to install the global Prometheus recorder and serve `/metrics` (default true).
    pub fn metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    /// Sends usage records to `sink` instead of the store the configuration names.
    pub fn usage(mut self, sink: UsageSink) -> Self {
        self.usage = Some((sink, None));
        self
    }

    /// Keeps virtual keys in `store` instead of the usage database.
    pub fn key_store(mut self, store: Arc<dyn KeyStore>) -> Self {
        self.key_store = Some(store);
        self
    }

    /// Counts rate limits in `counters` (shared ones for several instances) instead of
    /// process memory.
    pub fn counters(mut self, counters: Arc<dyn Counters>) -> Self {
        self.counters = Some(counters);
        self
    }

    /// Keeps budget spend in `budgets` instead of process memory.
    pub fn budgets(mut self, budgets: Arc<dyn Budgets>) -> Self {
        self.budgets = Some(budgets);
        self
    }

    /// Builds the registry, the stack and the router, and opens the usage store.
    pub async fn build(self) -> Result<Gateway, BuildError> {
        let client = self.client.unwrap_or_else(build_client);
        // Each deployment: breaker -> per-attempt timeout -> upstream timer -> translation. The breaker shares the
        // deployment's state, which the router and the admin API read.
        let breaker = self.config.breaker_config();
        let timeouts = self.config.timeout_config();
        // Circuits, latency and cached answers live in the state backend: in process, or
        // shared with the other replicas through Redis.
        let backend = crate::shared::open(&self.config.shared_config())?;
        let seed = backend.clone();
        // An attempt's span sits above its timeout, so a timed-out attempt ends with its error.
        let attempt_spans = self.traces.tracer.clone().map(|t| {
            AttemptSpanLayer::new(t, self.traces.capture_content)
                .with_collector(self.traces.collector.clone())
        });
        let per_deployment: StackFn = Arc::new(move |info: StackInfo<'_>, translate| {
            seed.seed(info.state);
            BoxChat::new(
                ServiceBuilder::new()
                    .layer(BreakerLayer::new(breaker).with_state(info.state.clone()))
                    .option_layer(attempt_spans.clone())
                    .layer(TimeoutLayer::new(timeouts))
                    .layer(UpstreamMetricsLayer::new(info.provider.name))
                    .service(translate),
            )
        });
        let registry = Arc::new(
            Registry::with_routes(
                self.config.registry_config(),
                self.catalog,
                &client,
                Some(per_deployment),
            )?
            .with_max_passthrough(self.config.max_passthrough_models),
        );
        let metrics = self.metrics.then(crate::telemetry::install);
        if metrics.is_some() {
            crate::telemetry::init_series(registry.deployments().iter().map(|d| &**d.id()));
        }
        backend.watch(&registry);
        let (usage, db) = match self.usage {
            Some(u) => u,
            None => open_usage(&self.config).await?,
        };
        // The dashboard's statistics watch the same records the usage store gets.
        let stats = Arc::new(crate::stats::Stats::new());
        usage.observe(stats.observer());
        let rates = Arc::new(RateTable::new(
            &registry.catalog(),
            self.config.bill_free_tiers,
            &self.config.rate_overrides,
        ));
        let key_store: Arc<dyn KeyStore> = match (self.key_store, &db) {
            (Some(s), _) => s,
            (None, Some(db)) => Arc::new(SqlKeyStore::new(db.clone())),
            (None, None) => Arc::new(MemoryKeyStore::new()),
        };
        // With Redis, key changes, counters and budgets are shared exactly by every replica.
        let keys = Arc::new(Keys::new(key_store).with_changes(backend.key_changes()));
        let counters = self
            .counters
            .or_else(|| backend.counters())
            .unwrap_or_else(|| Arc::new(MemoryCounters::default()));
        let budgets = self
            .budgets
            .or_else(|| backend.budgets(Some(usage.store().clone())))
            .unwrap_or_else(|| Arc::new(MemoryBudgets::new(Some(usage.store().clone()))));
        self.config.register_secrets();
        // Access control before routing: allowed models, then rate limits, then the budget
        // (reserved last, so a request refused by a limit reserves nothing).
        // `count_tokens` passes the same model guard and rate limits, and stops there.
        let count = ServiceBuilder::new()
            .layer(ModelGuardLayer::new(Some(registry.clone())))
            .layer(RateLimitLayer::new(
                counters.clone(),
                self.config.global_limits,
            ))
            .service(tower::service_fn(|req: crate::types::ChatRequest| {
                std::future::ready(Ok::<_, crate::GatewayError>(
                    crate::types::ChatReply::complete(
                        crate::types::ReplyMeta::default(),
                        crate::types::ChatResponse {
                            id: String::new(),
                            object: "chat.completion".to_owned(),
                            created: 0,
                            model: req.model,
                            choices: Vec::new(),
                            usage: None,
                            extra: serde_json::Map::new(),
                        },
                    ),
                ))
            }));
        let stack = ServiceBuilder::new()
            // What the access log and the server span need from the chat stack.
            .option_layer(self.traces.is_active().then_some(ExchangeLayer))
            .layer(ModelGuardLayer::new(Some(registry.clone())))
            .layer(RateLimitLayer::new(
                counters.clone(),
                self.config.global_limits,
            ))
            .layer(BudgetLayer::new(
                budgets,
                rates.clone(),
                Some(registry.clone()),
            ))
            .layer(CostLayer::new(rates.clone(), Some(usage.clone())))
            // Under cost, so hits and misses share its one accounting path (see `cache`).
            .layer(if self.config.cache_enabled {
                CacheLayer::new(backend.clone(), self.config.cache_max_bytes)
                    .shared(self.config.cache_shared)
            } else {
                CacheLayer::disabled()
            })
            .layer(RouterLayer::new(
                registry.clone(),
                self.config.router_config(),
            ))
            .layer(FailoverLayer::new(self.config.failover_config()))
            // A configured deployment's own rpm/tpm, counted per attempt.
            .layer(CeilingLayer::new(counters))
            .service(Dispatch);
        let config = Arc::new(self.config);
        let control = Arc::new(Reloader {
            registry: registry.clone(),
            rates: rates.clone(),
            running: std::sync::Mutex::new(config.clone()),
            busy: tokio::sync::Mutex::new(()),
        });
        let state = EdgeContext {
            chat: BoxChat::new(stack),
            count: BoxChat::new(count),
            registry,
            metrics,
            max_body_bytes: config.max_body_bytes,
            master_key: config.master_key.clone(),
            usage,
            db,
            rates,
            state: backend,
            stats,
            keys,
            max_inflight: config.max_inflight,
            max_header_bytes: config.max_header_bytes,
            responses_ttl_days: config.responses_ttl_days,
            guard: crate::http::guard::GuardConfig {
                open: config.master_key.is_none(),
                allowed_hosts: config.allowed_hosts.clone(),
                allowed_origins: config.cors_allowed_origins.clone(),
            },
            control: Some(Arc::new(ControlHandle(control.clone()))),
        };
        let traces = self.traces.is_active().then(|| {
            ServerSpanLayer::new(self.traces.tracer.clone(), self.traces.access_log)
                .with_collector(self.traces.collector.clone())
        });
        Ok(Gateway {
            state,
            config,
            control,
            traces,
        })
    }
}
