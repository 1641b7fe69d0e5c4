//! Access control: who may call, how much, and on which models.
//!
//! Each concern is a layer of its own, in the request path before routing:
//! - [`crate::http::auth::AuthLayer`] (HTTP): the master key or a virtual key, or nothing on
//!   an open gateway; `/admin/*` needs the master key. It hands the request a [`Grant`] and
//!   writes the `x-ratelimit-remaining-*` headers from it on the way out.
//! - [`ModelGuardLayer`]: a virtual key's allowed models (globs such as `groq/*`), else 403.
//! - [`RateLimitLayer`]: rpm/tpm per key and for the whole gateway, else 429.
//! - [`BudgetLayer`]: reserve the most a request can cost, settle with the real cost, else
//!   429 `insufficient_quota`.
//!
//! Virtual keys are stored hashed in a [`KeyStore`] (SQLite, Postgres or memory) and looked
//! up through [`Keys`], which caches them so the hot path does not touch the database; the
//! admin API's changes invalidate the cache at once. Other instances see them within
//! [`CACHE_TTL`], or at their next state sync when a shared backend publishes changes
//! ([`KeyChanges`]: Redis keeps a version of the keys that every replica watches). Counters and
//! budgets sit behind the [`Counters`] and [`Budgets`] traits so several instances can share
//! them (`crate::shared` has the Redis implementations).
//!
//! # Example
//!
//! ```
//! # async fn run() {
//! use std::sync::Arc;
//! use proxygate::access::{KeySpec, Keys, MemoryKeyStore};
//! let keys = Keys::new(Arc::new(MemoryKeyStore::new()));
//! let spec: KeySpec = serde_json::from_str(r#"{"name":"ci","models":["mock/*"],"rpm":60}"#).unwrap();
//! let (key, plaintext) = keys.create(spec).await.unwrap();
//! let found = keys.lookup(&plaintext).await.unwrap().unwrap();
//! assert_eq!(found.id, key.id);
//! assert!(found.allows_model("mock/echo") && !found.allows_model("groq/llama-3.1-8b-instant"));
//! # }
//! ```

pub mod budget;
mod ceiling;
mod guard;
pub mod keys;
pub mod limit;

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::time::Instant;

pub use budget::{BudgetLayer, Budgets, Hold, MemoryBudgets};
pub use ceiling::{CeilingLayer, Ceilings};
pub use guard::{ModelGuard, ModelGuardLayer};
pub use keys::{KeySpec, KeyStore, MemoryKeyStore, Period, VirtualKey};
pub use limit::{Counters, GlobalLimits, MemoryCounters, RateLimitLayer};

use crate::GatewayError;
use crate::types::{Caller, RequestContext};
use crate::usage::StoreError;

/// How long a cached key (or a cached miss) is trusted before the store is asked again.
pub const CACHE_TTL: Duration = Duration::from_secs(10);

/// Cached lookups at most; beyond it the cache starts over.
const CACHE_MAX: usize = 10_000;

/// Who made a request, and what the access layers learned about it on the way; shared by the
/// HTTP edge, the layers and the cost layer (which settles the budget).
pub struct Grant {
    /// The virtual key, when the caller used one (the master key and an open gateway have
    /// none).
    pub key: Option<Arc<VirtualKey>>,
    /// Remaining requests and tokens in the window, when limits applied.
    remaining: Mutex<Option<(Option<u64>, Option<u64>)>>,
    /// Budget reservations not settled yet.
    holds: Mutex<Vec<(Arc<dyn Budgets>, Hold)>>,
    /// Tokens counted against `tpm` limits from the estimate, corrected at the end.
    tokens: Mutex<Option<TokenCharge>>,
}

/// The estimate a request was counted with in its `tpm` windows, to be corrected with the
/// real tokens when its answer ends.
pub struct TokenCharge {
    /// Where the windows are.
    pub counters: Arc<dyn Counters>,
    /// The `tpm` counters the request was counted in.
    pub names: Vec<String>,
    /// The window it was counted in.
    pub window: u64,
    /// The tokens counted (prompt estimate + `max_tokens`).
    pub estimate: u64,
}

impl std::fmt::Debug for TokenCharge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCharge")
            .field("names", &self.names)
            .field("window", &self.window)
            .field("estimate", &self.estimate)
            .finish()
    }
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("key", &self.key.as_ref().map(|k| k.id.clone()))
            .finish_non_exhaustive()
    }
}

impl Grant {
    /// A grant for `key` (none: the master key or an open gateway).
    pub fn new(key: Option<Arc<VirtualKey>>) -> Self {
        Self {
            key,
            remaining: Mutex::new(None),
            holds: Mutex::new(Vec::new()),
            tokens: Mutex::new(None),
        }
    }

    /// The key's id.
    pub fn key_id(&self) -> Option<Arc<str>> {
        self.key.as_ref().map(|k| k.id.clone())
    }

    /// Notes what the rate limits left (requests, tokens).
    pub fn set_remaining(&self, requests: Option<u64>, tokens: Option<u64>) {
        if let Ok(mut r) = self.remaining.lock() {
            *r = Some((requests, tokens));
        }
    }

    /// What the rate limits left, if any applied.
    pub fn remaining(&self) -> Option<(Option<u64>, Option<u64>)> {
        self.remaining.lock().ok().and_then(|r| *r)
    }

    /// Keeps a reservation until [`settle`](Self::settle).
    pub fn hold(&self, budgets: Arc<dyn Budgets>, hold: Hold) {
        if let Ok(mut h) = self.holds.lock() {
            h.push((budgets, hold));
        }
    }

    /// Notes the tokens a request was counted with in its `tpm` windows.
    pub fn charge_tokens(&self, charge: TokenCharge) {
        if let Ok(mut t) = self.tokens.lock() {
            *t = Some(charge);
        }
    }

    /// Settles the budget with the real cost and corrects the `tpm` windows with the real
    /// tokens (the cost layer calls this once per request).
    pub fn settle_usage(&self, cost: f64, tokens: u64) {
        self.settle(cost);
        let charge = match self.tokens.lock() {
            Ok(mut t) => t.take(),
            Err(_) => None,
        };
        if let Some(c) = charge {
            let delta = i64::try_from(tokens).unwrap_or(i64::MAX)
                - i64::try_from(c.estimate).unwrap_or(i64::MAX);
            if delta != 0 {
                for name in &c.names {
                    c.counters.correct(name, c.window, delta);
                }
            }
        }
    }

    /// Settles every reservation with the request's real cost (the cost layer calls this once
    /// per request; later calls find nothing to settle).
    pub fn settle(&self, cost: f64) {
        let holds = match self.holds.lock() {
            Ok(mut h) => std::mem::take(&mut *h),
            Err(_) => return,
        };
        for (budgets, hold) in holds {
            budgets.settle(&hold, cost);
        }
    }
}

impl Caller for Grant {
    fn allows_model(&self, model: &str) -> bool {
        self.key.as_ref().is_none_or(|k| k.allows_model(model))
    }

    fn settle_usage(&self, cost_usd: f64, tokens: u64) {
        Grant::settle_usage(self, cost_usd, tokens);
    }
}

impl Grant {
    /// The grant the request context carries, if the caller has one.
    pub fn of(ctx: &RequestContext) -> Option<&Grant> {
        let caller: &dyn Any = ctx.access.as_deref()?;
        caller.downcast_ref()
    }

    /// As [`Grant::of`], shared.
    pub fn shared(ctx: &RequestContext) -> Option<Arc<Grant>> {
        let caller: Arc<dyn Any + Send + Sync> = ctx.access.clone()?;
        caller.downcast().ok()
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        // Never reached the cost layer (refused below, served from a cache): nothing spent.
        self.settle(0.0);
    }
}

impl std::fmt::Debug for dyn KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

impl std::fmt::Debug for dyn Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

impl std::fmt::Debug for dyn Budgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

/// Key changes shared between replicas: a replica that changes a key publishes it, and every
/// replica's [`Keys`] cache distrusts what it cached before another replica's change.
pub trait KeyChanges: Send + Sync + 'static {
    /// Tells every other replica that keys changed here. Bounded; a failure is logged (and
    /// retried by the implementation), never returned.
    fn publish(&self) -> BoxFuture<'static, ()>;

    /// A number that moves whenever keys changed elsewhere (or changes may have been missed):
    /// lookups cached under another number are asked again. Read on every lookup, so cheap.
    fn epoch(&self) -> u64;
}

struct Cached {
    key: Option<Arc<VirtualKey>>,
    at: Instant,
    epoch: u64,
}

/// Virtual keys: the store behind a cache of lookups by hash, and the admin operations.
pub struct Keys {
    store: Arc<dyn KeyStore>,
    cache: RwLock<HashMap<String, Cached>>,
    changes: Option<Arc<dyn KeyChanges>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("store", &self.store.kind())
            .finish_non_exhaustive()
    }
}

fn store_error(e: StoreError) -> GatewayError {
    tracing::warn!("key store: {e}");
    GatewayError::Internal("the key store could not be reached; see the gateway's log".into())
}

impl Keys {
    /// Keys kept in `store`.
    pub fn new(store: Arc<dyn KeyStore>) -> Self {
        Self {
            store,
            cache: RwLock::new(HashMap::new()),
            changes: None,
        }
    }

    /// Shares changes with the other replicas through `changes` (none: this process only).
    pub fn with_changes(mut self, changes: Option<Arc<dyn KeyChanges>>) -> Self {
        self.changes = changes;
        self
    }

    fn epoch(&self) -> u64 {
        self.changes.as_ref().map_or(0, |c| c.epoch())
    }

    async fn publish(&self) {
        if let Some(c) = &self.changes {
            c.publish().await;
        }
    }

    /// The store's kind.
    pub fn kind(&self) -> &'static str {
        self.store.kind()
    }

    /// The key whose plaintext is `presented`, from the cache or the store.
    pub async fn lookup(&self, presented: &str) -> Result<Option<Arc<VirtualKey>>, StoreError> {
        let hash = keys::hash_key(presented);
        // Taken before the store is read: a change published meanwhile makes this entry stale.
        let epoch = self.epoch();
        if let Ok(cache) = self.cache.read()
            && let Some(c) = cache.get(&hash)
            && c.epoch == epoch
            && c.at.elapsed() < CACHE_TTL
        {
            return Ok(c.key.clone());
        }
        let key = self.store.by_hash(&hash).await?.map(Arc::new);
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(
                hash,
                Cached {
                    key: key.clone(),
                    at: Instant::now(),
                    epoch,
                },
            );
        }
        Ok(key)
    }

    fn invalidate(&self, id: &str) {
        if let Ok(mut cache) = self.cache.write() {
            cache.retain(|_, c| c.key.as_ref().is_none_or(|k| &*k.id != id));
        }
    }

    /// Makes a key from `spec`; returns it and its plaintext (shown once).
    pub async fn create(&self, spec: KeySpec) -> Result<(VirtualKey, String), GatewayError> {
        let (plaintext, prefix) = keys::generate_key();
        let mut key = VirtualKey {
            id: keys::generate_id(),
            name: String::new(),
            hash: keys::hash_key(&plaintext),
            prefix,
            models: Vec::new(),
            rpm: None,
            tpm: None,
            budget_usd: None,
            budget_period: None,
            expires_at_ms: None,
            metadata: serde_json::Value::Null,
            created_at_ms: crate::usage::now_ms(),
        };
        spec.apply(&mut key)?;
        if key.budget_usd.is_some() && key.budget_period.is_none() {
            key.budget_period = Some(Period::Total);
        }
        self.store.insert(&key).await.map_err(store_error)?;
        // A miss for this hash may be cached (someone guessed it): forget misses.
        if let Ok(mut cache) = self.cache.write() {
            cache.retain(|_, c| c.key.is_some());
        }
        self.publish().await;
        Ok((key, plaintext))
    }

    /// Every key.
    pub async fn list(&self) -> Result<Vec<VirtualKey>, GatewayError> {
        self.store.list().await.map_err(store_error)
    }

    /// One key.
    pub async fn get(&self, id: &str) -> Result<Option<VirtualKey>, GatewayError> {
        self.store.get(id).await.map_err(store_error)
    }

    /// Changes a key; takes effect at once here, and on the other replicas at their next sync
    /// when changes are shared.
    pub async fn update(
        &self,
        id: &str,
        spec: KeySpec,
    ) -> Result<Option<VirtualKey>, GatewayError> {
        let Some(mut key) = self.store.get(id).await.map_err(store_error)? else {
            return Ok(None);
        };
        spec.apply(&mut key)?;
        if key.budget_usd.is_some() && key.budget_period.is_none() {
            key.budget_period = Some(Period::Total);
        }
        let found = self.store.update(&key).await.map_err(store_error)?;
        self.invalidate(id);
        self.publish().await;
        Ok(found.then_some(key))
    }

    /// Deletes a key; takes effect at once here, and on the other replicas at their next sync
    /// when changes are shared.
    pub async fn delete(&self, id: &str) -> Result<bool, GatewayError> {
        let found = self.store.delete(id).await.map_err(store_error)?;
        self.invalidate(id);
        self.publish().await;
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lookups_are_cached_and_changes_invalidate_them() {
        let keys = Keys::new(Arc::new(MemoryKeyStore::new()));
        let (k, plain) = keys
            .create(serde_json::from_str(r#"{"rpm":1}"#).unwrap())
            .await
            .unwrap();
        assert_eq!(keys.lookup(&plain).await.unwrap().unwrap().rpm, Some(1));
        keys.update(&k.id, serde_json::from_str(r#"{"rpm":7}"#).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(keys.lookup(&plain).await.unwrap().unwrap().rpm, Some(7));
        assert!(keys.delete(&k.id).await.unwrap());
        assert!(keys.lookup(&plain).await.unwrap().is_none());
        assert!(keys.lookup("sk-pg-nothing").await.unwrap().is_none());
    }

    /// Changes published by "another replica": only the epoch moves.
    #[derive(Default)]
    struct Elsewhere(std::sync::atomic::AtomicU64);

    impl KeyChanges for Elsewhere {
        fn publish(&self) -> BoxFuture<'static, ()> {
            Box::pin(async {})
        }
        fn epoch(&self) -> u64 {
            self.0.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    #[tokio::test]
    async fn a_change_elsewhere_makes_cached_lookups_stale() {
        let store = Arc::new(MemoryKeyStore::new());
        let elsewhere = Arc::new(Elsewhere::default());
        let here = Keys::new(store.clone()).with_changes(Some(elsewhere.clone()));
        let there = Keys::new(store);
        let (k, plain) = here
            .create(serde_json::from_str(r#"{"rpm":1}"#).unwrap())
            .await
            .unwrap();
        assert!(here.lookup(&plain).await.unwrap().is_some());
        assert!(there.delete(&k.id).await.unwrap());
        // Without news from the other replica the cached key stands (for CACHE_TTL).
        assert!(here.lookup(&plain).await.unwrap().is_some());
        elsewhere
            .0
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        assert!(here.lookup(&plain).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_unsettled_reservation_is_released_when_the_grant_goes() {
        let budgets: Arc<dyn Budgets> = Arc::new(MemoryBudgets::new(None));
        let hold = Hold {
            key: "k".into(),
            period_start: 0,
            amount: 5.0,
        };
        assert_eq!(budgets.reserve(&hold, 5.0).await.unwrap(), Ok(()));
        let g = Grant::new(None);
        g.hold(budgets.clone(), hold.clone());
        drop(g);
        assert_eq!(budgets.spent("k", 0), Some(0.0));
        assert_eq!(budgets.reserve(&hold, 5.0).await.unwrap(), Ok(()));
    }
}
