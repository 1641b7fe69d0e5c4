//! Assembles the whole gateway from a [`Config`]: the registry of deployments, the tower
//! stack, and the axum router that serves it. The one place the layers are composed.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = proxygate::Config::default();
//! let gateway = proxygate::Gateway::new(config)?;
//! let app = axum::Router::new().nest("/llm", gateway.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;

use tower::ServiceBuilder;

use crate::breaker::{BreakerConfig, BreakerLayer};
use crate::client::{HttpClient, build_client};
use crate::config::Config;
use crate::deployment::DeploymentService;
use crate::failover::{FailoverConfig, FailoverLayer};
use crate::http::{AppState, routes};
use crate::providers::Catalog;
use crate::router::{Dispatch, Registry, RouterConfig, RouterLayer, StackFn, StackInfo};
use crate::timeout::{TimeoutConfig, TimeoutLayer};
use crate::timer::UpstreamTimerLayer;

/// A configured gateway.
#[derive(Clone, Debug)]
pub struct Gateway {
    state: AppState,
    config: Arc<Config>,
}

impl Gateway {
    /// Builds the gateway with a fresh client, installing the global metrics recorder.
    pub fn new(config: Config) -> Result<Self, String> {
        Self::builder(config).build()
    }

    /// A builder for embedding (own client, no global metrics recorder).
    pub fn builder(config: Config) -> GatewayBuilder {
        GatewayBuilder {
            config,
            client: None,
            catalog: Catalog::default(),
            metrics: true,
        }
    }

    /// The axum router with every endpoint; nest or merge it into an app.
    pub fn router(&self) -> axum::Router {
        routes(self.state.clone())
    }

    /// The chat stack as a tower service (`ChatRequest` in, `ChatReply` out).
    pub fn chat_service(&self) -> DeploymentService {
        self.state.chat.clone()
    }

    /// The registry of deployments.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.state.registry
    }

    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }
}

/// Builds a [`Gateway`].
#[derive(Debug)]
pub struct GatewayBuilder {
    config: Config,
    client: Option<HttpClient>,
    catalog: Catalog,
    metrics: bool,
}

impl GatewayBuilder {
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

    /// Builds the registry, the stack and the router.
    pub fn build(self) -> Result<Gateway, String> {
        let client = self.client.unwrap_or_else(build_client);
        // Each deployment: breaker -> per-attempt timeout -> upstream timer -> translation. The breaker shares the
        // deployment's state, which the router and the admin API read.
        let breaker = BreakerConfig::from_config(&self.config);
        let timeouts = TimeoutConfig::from_config(&self.config);
        let per_deployment: StackFn = Arc::new(move |info: StackInfo<'_>, translate| {
            DeploymentService::new(
                ServiceBuilder::new()
                    .layer(BreakerLayer::new(breaker).with_state(info.state.clone()))
                    .layer(TimeoutLayer::new(timeouts))
                    .layer(UpstreamTimerLayer::new(info.provider.name))
                    .service(translate),
            )
        });
        let registry = Arc::new(Registry::with_stack(
            &self.config,
            self.catalog,
            &client,
            Some(per_deployment),
        )?);
        let metrics = self.metrics.then(crate::telemetry::install);
        if metrics.is_some() {
            crate::telemetry::init_series(&registry.deployments());
        }
        let stack = ServiceBuilder::new()
            .layer(RouterLayer::new(
                registry.clone(),
                RouterConfig::from_config(&self.config),
            ))
            .layer(FailoverLayer::new(FailoverConfig::from_config(
                &self.config,
            )))
            .service(Dispatch);
        let state = AppState {
            chat: DeploymentService::new(stack),
            registry,
            metrics,
            max_body_bytes: self.config.max_body_bytes,
            master_key: self.config.master_key.clone(),
        };
        Ok(Gateway {
            state,
            config: Arc::new(self.config),
        })
    }
}
