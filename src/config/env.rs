//! Every configuration key, as a constant next to the parser it goes through.

use std::collections::HashMap;

pub use crate::types::setting::{parse_list, parse_ms, parse_rate};

/// Where settings come from: the process environment in production, a map in tests.
pub trait EnvSource {
    /// The raw value of `key`, if set.
    fn get(&self, key: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl EnvSource for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned()
    }
}

impl EnvSource for HashMap<&str, &str> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).map(|v| (*v).to_owned())
    }
}

/// Sources in precedence order: the first that has a key wins.
#[derive(Default)]
pub struct Layered {
    layers: Vec<Box<dyn EnvSource + Send + Sync>>,
}

impl std::fmt::Debug for Layered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layered")
            .field("layers", &self.layers.len())
            .finish()
    }
}

impl Layered {
    /// No sources.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a source below the ones already added.
    pub fn then(mut self, source: impl EnvSource + Send + Sync + 'static) -> Self {
        self.layers.push(Box::new(source));
        self
    }
}

impl EnvSource for Layered {
    fn get(&self, key: &str) -> Option<String> {
        self.layers.iter().find_map(|l| l.get(key))
    }
}

/// Bind address.
pub const ENV_HOST: &str = "HOST";
/// Listen port.
pub const ENV_PORT: &str = "PORT";
/// Config file path.
pub const ENV_CONFIG: &str = "PROXYGATE_CONFIG";
/// Gateway master key.
pub const ENV_MASTER_KEY: &str = "PROXYGATE_MASTER_KEY";
/// Allow a non-loopback bind without a master key.
pub const ENV_ALLOW_OPEN: &str = "PROXYGATE_ALLOW_OPEN";
/// priority | round-robin | latency | cost | weighted.
pub const ENV_ROUTING_STRATEGY: &str = "ROUTING_STRATEGY";
/// Comma list of providers, deployments or models.
pub const ENV_PROVIDER_PRIORITY: &str = "PROVIDER_PRIORITY";
/// `deployment=weight` pairs for the weighted strategy.
pub const ENV_ROUTING_WEIGHTS: &str = "ROUTING_WEIGHTS";
/// Try the next deployment on a retryable failure.
pub const ENV_FAILOVER_ENABLED: &str = "FAILOVER_ENABLED";
/// Let failover cross tiers.
pub const ENV_FAILOVER_CROSS_TIER: &str = "FAILOVER_CROSS_TIER";
/// Extra attempts after the first.
pub const ENV_MAX_RETRIES: &str = "MAX_RETRIES";
/// Consecutive failures that open a circuit.
pub const ENV_CB_THRESHOLD: &str = "CIRCUIT_BREAKER_FAILURE_THRESHOLD";
/// How long a circuit stays open.
pub const ENV_CB_COOLDOWN_MS: &str = "CIRCUIT_BREAKER_COOLDOWN_MS";
/// Concurrent probes in half-open.
pub const ENV_CB_HALF_OPEN_PROBES: &str = "CIRCUIT_BREAKER_HALF_OPEN_PROBES";
/// Per-attempt timeout (to the first byte of the answer).
pub const ENV_REQUEST_TIMEOUT_MS: &str = "REQUEST_TIMEOUT_MS";
/// Overall deadline across attempts.
pub const ENV_OVERALL_TIMEOUT_MS: &str = "OVERALL_TIMEOUT_MS";
/// Idle time allowed between two chunks of a stream.
pub const ENV_STREAM_IDLE_TIMEOUT_MS: &str = "STREAM_IDLE_TIMEOUT_MS";
/// Request body limit.
pub const ENV_MAX_BODY_BYTES: &str = "MAX_BODY_BYTES";
/// How long shutdown waits for in-flight requests.
pub const ENV_SHUTDOWN_GRACE_MS: &str = "SHUTDOWN_GRACE_MS";
/// Postgres URL for usage records and keys (SQLite when unset).
pub const ENV_DATABASE_URL: &str = "DATABASE_URL";
/// The SQLite file (`:memory:` keeps records in process only).
pub const ENV_USAGE_DB_PATH: &str = "USAGE_DB_PATH";
/// Directory of the usage journal (`off` disables it: records may be lost in a crash).
pub const ENV_USAGE_JOURNAL_DIR: &str = "USAGE_JOURNAL_DIR";
/// How often queued usage records are written to the store.
pub const ENV_USAGE_FLUSH_MS: &str = "USAGE_FLUSH_MS";
/// Usage records held in memory at most (beyond it they wait in the journal).
pub const ENV_USAGE_QUEUE_CAPACITY: &str = "USAGE_QUEUE_CAPACITY";
/// `fsync` the journal after every record.
pub const ENV_USAGE_FSYNC: &str = "USAGE_FSYNC";
/// Price overrides: `provider/model=input/output[/cached_input],...` (USD per 1M tokens).
pub const ENV_RATE_OVERRIDES: &str = "RATE_OVERRIDES";
/// Cost keyless and free-key providers at their list prices instead of 0.
pub const ENV_BILL_FREE_TIERS: &str = "BILL_FREE_TIERS";
/// Redis for state shared by replicas (circuits, latency, response cache); in-process when unset.
pub const ENV_REDIS_URL: &str = "REDIS_URL";
/// Prefix of every Redis key, so several gateways (or tests) can share one Redis.
pub const ENV_REDIS_PREFIX: &str = "REDIS_PREFIX";
/// How long one Redis command may take before the gateway carries on without it.
pub const ENV_REDIS_TIMEOUT_MS: &str = "REDIS_TIMEOUT_MS";
/// How often shared circuit and latency state is exchanged with Redis.
pub const ENV_STATE_SYNC_MS: &str = "STATE_SYNC_MS";
/// Turn the response cache on.
pub const ENV_CACHE_ENABLED: &str = "CACHE_ENABLED";
/// How long a cached answer is served.
pub const ENV_CACHE_TTL_MS: &str = "CACHE_TTL_MS";
/// Upper bound of the in-process cache, in bytes of cached answers.
pub const ENV_CACHE_MAX_BYTES: &str = "CACHE_MAX_BYTES";
/// Gateway-wide requests per minute, over every caller (unset: no limit).
pub const ENV_RATE_LIMIT_RPM: &str = "RATE_LIMIT_RPM";
/// Gateway-wide tokens per minute (prompt estimate + max_tokens), over every caller.
pub const ENV_RATE_LIMIT_TPM: &str = "RATE_LIMIT_TPM";
/// Requests in flight at most; beyond it a fast 503 (load shedding).
pub const ENV_MAX_INFLIGHT_REQUESTS: &str = "MAX_INFLIGHT_REQUESTS";
/// Total size of a request's headers at most (431 beyond it).
pub const ENV_MAX_HEADER_BYTES: &str = "MAX_HEADER_BYTES";
/// Days a stored `/v1/responses` response stays readable.
pub const ENV_RESPONSES_TTL_DAYS: &str = "RESPONSES_TTL_DAYS";
/// Extra `Host` names an open gateway answers to, besides its bound address and loopback names.
pub const ENV_ALLOWED_HOSTS: &str = "ALLOWED_HOSTS";
/// Web origins that may call the gateway from a browser (`*` for any); CORS answers for them.
pub const ENV_CORS_ALLOWED_ORIGINS: &str = "CORS_ALLOWED_ORIGINS";
/// Distinct model ids outside the catalog tracked by name; beyond it they count as `other`.
pub const ENV_MAX_PASSTHROUGH_MODELS: &str = "MAX_PASSTHROUGH_MODELS";
/// Share cached answers between callers (by default each caller has its own entries).
pub const ENV_CACHE_SHARED: &str = "CACHE_SHARED";
/// How long a connection may take to send a request's headers.
pub const ENV_HEADER_READ_TIMEOUT_MS: &str = "HEADER_READ_TIMEOUT_MS";
/// How long a request's body may take to arrive.
pub const ENV_BODY_READ_TIMEOUT_MS: &str = "BODY_READ_TIMEOUT_MS";
/// Open client connections at most.
pub const ENV_MAX_CONNECTIONS: &str = "MAX_CONNECTIONS";
/// How long a streaming client may stop reading before its stream is cut.
pub const ENV_CLIENT_WRITE_TIMEOUT_MS: &str = "CLIENT_WRITE_TIMEOUT_MS";
/// Log filter (`info`, `proxygate=debug`).
pub const ENV_LOG: &str = "RUST_LOG";

/// Parses a boolean (`true/false/1/0/yes/no/on/off`).
pub fn parse_bool(key: &str, v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("{key}={v:?} is not a boolean; use true or false")),
    }
}

/// Parses a non-negative integer.
pub fn parse_u64(key: &str, v: &str) -> Result<u64, String> {
    v.trim()
        .parse::<u64>()
        .map_err(|_| format!("{key}={v:?} is not a whole number; use e.g. {key}=5"))
}

/// Parses a port.
pub fn parse_port(key: &str, v: &str) -> Result<u16, String> {
    v.trim()
        .parse::<u16>()
        .map_err(|_| format!("{key}={v:?} is not a port; use a number from 0 to 65535"))
}
