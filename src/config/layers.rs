//! The settings of each layer (and the secrets to redact), built from the validated [`Config`]: the layers define their own
//! config structs and never read [`Config`] themselves.

use super::Config;
use crate::breaker::BreakerConfig;
use crate::failover::FailoverConfig;
use crate::router::{RegistryConfig, RouterConfig};
use crate::shared::{CacheLimits, SharedConfig};
use crate::timeout::TimeoutConfig;

impl Config {
    /// Registers the secrets of this config with [`crate::redact`]: provider keys, the master
    /// key, the database URL's password.
    pub fn register_secrets(&self) {
        let mut secrets: Vec<String> = self
            .providers
            .values()
            .flat_map(|p| p.keys.iter().map(|k| k.expose().to_owned()))
            .chain(
                self.routes
                    .deployments
                    .iter()
                    .flat_map(|d| d.keys.iter().map(|k| k.expose().to_owned())),
            )
            .collect();
        if let Some(m) = &self.master_key {
            secrets.push(m.expose().to_owned());
        }
        if let Some(url) = &self.database_url
            && let Some(password) = crate::redact::url_password(url.expose())
        {
            secrets.push(password.to_owned());
        }
        crate::redact::register_secrets(secrets);
    }

    /// The circuit breaker's settings.
    pub fn breaker_config(&self) -> BreakerConfig {
        BreakerConfig::default()
            .with_threshold(self.breaker_threshold)
            .with_cooldown(self.breaker_cooldown)
            .with_half_open_probes(self.breaker_half_open_probes)
    }

    /// The per-attempt and stream-idle timeouts.
    pub fn timeout_config(&self) -> TimeoutConfig {
        TimeoutConfig {
            request: self.request_timeout,
            stream_idle: self.stream_idle_timeout,
        }
    }

    /// The failover layer's settings.
    pub fn failover_config(&self) -> FailoverConfig {
        FailoverConfig {
            enabled: self.failover_enabled,
            max_retries: self.max_retries,
            cross_tier: self.failover_cross_tier,
            overall_timeout: self.overall_timeout,
        }
    }

    /// The shared state backend: Redis or in-process, and the cache's bounds.
    pub fn shared_config(&self) -> SharedConfig {
        SharedConfig {
            cache: CacheLimits {
                max_bytes: self.cache_max_bytes,
                ttl: self.cache_ttl,
            },
            redis_url: self.redis_url.clone(),
            redis_prefix: self.redis_prefix.clone(),
            redis_timeout: self.redis_timeout,
            sync_every: self.state_sync_interval,
        }
    }

    /// The routing strategy, priorities and weights (a configured deployment's `weight`
    /// counts for its name unless `ROUTING_WEIGHTS` names it).
    pub fn router_config(&self) -> RouterConfig {
        let mut weights = self.weights.clone();
        for d in &self.routes.deployments {
            if let Some(w) = d.weight {
                weights.entry(d.name.clone()).or_insert(w);
            }
        }
        RouterConfig {
            strategy: self.strategy,
            priority: self.priority.clone(),
            weights,
        }
    }

    /// What the registry is built from, and rebuilt from on a reload.
    pub fn registry_config(&self) -> RegistryConfig {
        RegistryConfig {
            providers: self.providers.clone(),
            routes: self.routes.clone(),
            router: Some(self.router_config()),
        }
    }

    /// The running configuration as JSON, every secret as `***` (`GET /admin/config`).
    pub fn to_json(&self) -> serde_json::Value {
        let mask = |s: &Option<crate::types::Secret>| s.as_ref().map(|_| "***");
        let mut providers: Vec<(&str, serde_json::Value)> = self
            .providers
            .iter()
            .map(|(name, p)| {
                (
                    *name,
                    serde_json::json!({
                        "base_url": crate::redact::redact(&p.base_url),
                        "keys": p.keys.iter().map(|_| "***").collect::<Vec<_>>(),
                    }),
                )
            })
            .collect();
        providers.sort_by(|a, b| a.0.cmp(b.0));
        let providers: serde_json::Map<String, serde_json::Value> = providers
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let mut weights: Vec<(&String, &u32)> = self.weights.iter().collect();
        weights.sort();
        serde_json::json!({
            "host": self.host.to_string(),
            "port": self.port,
            "master_key": mask(&self.master_key),
            "routing_strategy": self.strategy.as_str(),
            "provider_priority": self.priority,
            "routing_weights": weights.into_iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
            "failover_enabled": self.failover_enabled,
            "failover_cross_tier": self.failover_cross_tier,
            "max_retries": self.max_retries,
            "circuit_breaker_failure_threshold": self.breaker_threshold,
            "circuit_breaker_cooldown_ms": self.breaker_cooldown.as_millis() as u64,
            "circuit_breaker_half_open_probes": self.breaker_half_open_probes,
            "request_timeout_ms": self.request_timeout.as_millis() as u64,
            "overall_timeout_ms": self.overall_timeout.as_millis() as u64,
            "database_url": mask(&self.database_url),
            "redis_url": mask(&self.redis_url),
            "cache_enabled": self.cache_enabled,
            "providers": providers,
            "deployments": self.routes.to_json()["deployments"],
            "models": self.routes.to_json()["models"],
            "rules": self.routes.to_json()["rules"],
            "config_file": self.source.as_ref().and_then(|s| s.path.as_ref()).map(|p| p.display().to_string()),
        })
    }
}
