//! The settings of each layer (and the secrets to redact), built from the validated [`Config`]: the layers define their own
//! config structs and never read [`Config`] themselves.

use super::Config;
use crate::breaker::BreakerConfig;
use crate::failover::FailoverConfig;
use crate::router::RouterConfig;
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

    /// The routing strategy, priorities and weights.
    pub fn router_config(&self) -> RouterConfig {
        RouterConfig {
            strategy: self.strategy,
            priority: self.priority.clone(),
            weights: self.weights.clone(),
        }
    }
}
