//! Where the gateway keeps what outlives a request and must be the same on every replica:
//! the response cache's entries, each deployment's circuit (open or closed) and
//! its decayed upstream latency. A [`StateBackend`] holds them: [`InProcess`] (the default,
//! nothing to run) or [`RedisBackend`] (`REDIS_URL`), so that two gateways sharing a Redis
//! behave as one: a circuit opened by one replica is open on all, a reset on one resets all,
//! and an answer cached by one is a hit on the others.
//!
//! The request path never waits on Redis for circuits or latency: each replica keeps its own
//! state machine as the fast path, and a background task exchanges changes with Redis every
//! `STATE_SYNC_MS` (one pipelined round trip per tick, whatever the traffic). Only a cache
//! lookup that misses the replica's own memory asks Redis, bounded by `REDIS_TIMEOUT_MS`.
//!
//! When Redis cannot be reached the backend says so once (a `warn` log and the
//! `proxygate_state_backend_degraded` gauge at 1), goes on with the in-process state, and stops
//! asking Redis on the request path; the sync task keeps trying, and when Redis answers again
//! the shared state resumes (an `info` log, the gauge back at 0). No request fails because of it.
//!
//! Rate-limit counters and budget reservations (access control) go through the backend too:
//! with Redis, [`RedisCounters`] and [`RedisBudgets`] check and count on Redis with one Lua
//! script per request, so a limit holds exactly across replicas; while Redis is unreachable they
//! count in process. Virtual key changes are published as a version in Redis that the sync task
//! watches, so a key changed or deleted on one replica is refused on all at their next sync.
//!
//! # Example
//!
//! ```
//! # async fn run() {
//! use std::sync::Arc;
//! use proxygate::shared::{InProcess, StateBackend};
//!
//! let backend: Arc<dyn StateBackend> = Arc::new(InProcess::new(1 << 20, std::time::Duration::from_secs(60)));
//! backend.cache_put("k".into(), bytes::Bytes::from_static(b"{}"));
//! assert_eq!(backend.cache_local("k").as_deref(), Some(&b"{}"[..]));
//! assert_eq!(backend.kind(), "in-process");
//! # }
//! ```

mod limits;
mod memory;
mod redis;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

pub use limits::{RedisBudgets, RedisCounters};
pub use memory::InProcess;
pub use redis::RedisBackend;

use crate::error::BuildError;
use crate::health::DeploymentHealth;
use crate::router::Registry;
use crate::types::Secret;

/// A boxed lookup, as [`StateBackend::cache_remote`] returns.
pub type Lookup = Pin<Box<dyn Future<Output = Option<Bytes>> + Send>>;

/// Shared state: the response cache, and circuit and latency state per deployment.
pub trait StateBackend: Send + Sync + fmt::Debug + 'static {
    /// `in-process` or `redis`.
    fn kind(&self) -> &'static str;

    /// True while a shared backend cannot be reached and in-process state stands in for it.
    fn degraded(&self) -> bool {
        false
    }

    /// A cached answer held in this process's memory, without waiting.
    fn cache_local(&self, key: &str) -> Option<Bytes>;

    /// A lookup in the shared cache, when there is one and it is reachable.
    fn cache_remote(&self, _key: &str) -> Option<Lookup> {
        None
    }

    /// Keeps an answer for the configured TTL (off the request path).
    fn cache_put(&self, key: String, value: Bytes);

    /// Entries and bytes the in-process cache holds now.
    fn cache_usage(&self) -> (u64, u64) {
        (0, 0)
    }

    /// Starts sharing the circuit and latency state of `registry`'s deployments.
    fn watch(&self, _registry: &Arc<Registry>) {}

    /// Brings a deployment created just now up to date with what other replicas shared.
    fn seed(&self, _state: &DeploymentHealth) {}

    /// Rate-limit counters shared by every replica (none: count in process).
    fn counters(&self) -> Option<Arc<dyn crate::access::Counters>> {
        None
    }

    /// Budgets shared by every replica, seeded from `usage` (none: keep them in process).
    fn budgets(
        &self,
        _usage: Option<Arc<dyn crate::usage::UsageStore>>,
    ) -> Option<Arc<dyn crate::access::Budgets>> {
        None
    }

    /// Virtual key changes shared with every replica (none: this process only).
    fn key_changes(&self) -> Option<Arc<dyn crate::access::KeyChanges>> {
        None
    }
}

/// Response cache bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheLimits {
    /// In-process bound in bytes.
    pub max_bytes: u64,
    /// How long an answer is served.
    pub ttl: std::time::Duration,
}

/// Which backend to open and its bounds.
#[derive(Clone, Debug)]
pub struct SharedConfig {
    /// The response cache's bounds.
    pub cache: CacheLimits,
    /// The Redis server shared with the other replicas; in process when `None`.
    pub redis_url: Option<Secret>,
    /// Prefix of every Redis key.
    pub redis_prefix: String,
    /// Timeout of one Redis command.
    pub redis_timeout: std::time::Duration,
    /// How often local state is synchronised with Redis.
    pub sync_every: std::time::Duration,
}

/// The backend `config` names: Redis when it has a URL, else in-process.
pub fn open(config: &SharedConfig) -> Result<Arc<dyn StateBackend>, BuildError> {
    let limits = config.cache;
    let local = InProcess::new(limits.max_bytes, limits.ttl);
    Ok(match &config.redis_url {
        None => Arc::new(local),
        Some(url) => Arc::new(
            RedisBackend::connect(
                url.expose(),
                redis::RedisSettings {
                    prefix: config.redis_prefix.clone(),
                    timeout: config.redis_timeout,
                    sync_every: config.sync_every,
                    ttl: limits.ttl,
                },
                local,
            )
            .map_err(BuildError::StateBackend)?,
        ),
    })
}
