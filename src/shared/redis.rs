use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::time::Instant;

use super::{InProcess, Lookup, StateBackend};
use crate::health::DeploymentHealth;
use crate::health::SharedCircuit;
use crate::router::Registry;
use crate::telemetry::names;

/// Bumps each named circuit's version and stores its new state, all at once, so two replicas
/// writing together never lose a transition or reuse a version. A version is at least the
/// writer's clock in ms (`ARGV[1]`), so versions keep growing after Redis lost its data (a
/// restart without persistence). Returns the new versions.
const PUBLISH_CIRCUITS: &str = r"
local out = {}
local now = tonumber(ARGV[1]) or 0
for i = 2, #ARGV, 2 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  local ver = 0
  if cur then ver = tonumber(string.match(cur, '^(%d+)')) or 0 end
  ver = math.max(ver + 1, now)
  redis.call('HSET', KEYS[1], ARGV[i], string.format('%.0f', ver) .. '|' .. ARGV[i + 1])
  out[#out + 1] = ver
end
return out
";

/// How the Redis backend talks to Redis.
#[derive(Clone, Debug)]
pub(crate) struct RedisSettings {
    /// Prefix of every key.
    pub(crate) prefix: String,
    /// Bound of one command.
    pub(crate) timeout: Duration,
    /// Sync period for circuits and latency.
    pub(crate) sync_every: Duration,
    /// Cache entry lifetime.
    pub(crate) ttl: Duration,
}

/// State shared through Redis, with this process's [`InProcess`] state as the fast path (the
/// cache's first level) and as the stand-in while Redis is unreachable.
///
/// Keys: `{prefix}:cache:{sha256}` (strings with a TTL), `{prefix}:circuits` (a hash of
/// `deployment -> version|open:<until_ms>` or `version|closed`), `{prefix}:latency` (a hash of
/// `deployment -> seconds|at_ms|replica`).
#[derive(Clone)]
pub struct RedisBackend {
    shared: Arc<Shared>,
}

pub(super) struct Shared {
    pub(super) conn: ConnectionManager,
    local: InProcess,
    pub(super) settings: RedisSettings,
    degraded: AtomicBool,
    /// Moves when another replica changed virtual keys (see [`crate::access::KeyChanges`]).
    key_epoch: AtomicU64,
    /// A key change made here that is not in Redis yet.
    keys_dirty: AtomicBool,
    watching: AtomicBool,
    replica: u64,
    publish: redis::Script,
    // The latest circuit state each deployment has in Redis, for deployments created later.
    known: Mutex<HashMap<Arc<str>, SharedCircuit>>,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("prefix", &self.shared.settings.prefix)
            .field("degraded", &self.degraded())
            .finish_non_exhaustive()
    }
}

// === impl RedisBackend ===

impl RedisBackend {
    /// A backend on `url` that connects lazily: an unreachable Redis at start is not an error,
    /// only a degraded backend. Must be called inside a tokio runtime.
    pub(crate) fn connect(
        url: &str,
        settings: RedisSettings,
        local: InProcess,
    ) -> Result<Self, String> {
        let bad = |e: redis::RedisError| {
            format!(
                "REDIS_URL is not usable ({:?}); use redis://host:6379[/db]",
                e.kind()
            )
        };
        let client = redis::Client::open(url).map_err(bad)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(Some(settings.timeout))
            .set_number_of_retries(1)
            .set_max_delay(settings.sync_every);
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(bad)?;
        metrics::gauge!(names::STATE_BACKEND_DEGRADED).set(0.0);
        Ok(Self {
            shared: Arc::new(Shared {
                conn,
                local,
                settings,
                degraded: AtomicBool::new(false),
                key_epoch: AtomicU64::new(0),
                keys_dirty: AtomicBool::new(false),
                watching: AtomicBool::new(false),
                replica: rand::random(),
                publish: redis::Script::new(PUBLISH_CIRCUITS),
                known: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The in-process state standing in front of Redis.
    pub fn local(&self) -> &InProcess {
        &self.shared.local
    }

    pub(super) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl crate::access::KeyChanges for RedisBackend {
    fn publish(&self) -> futures_util::future::BoxFuture<'static, ()> {
        let shared = self.shared.clone();
        Box::pin(async move {
            if shared.is_degraded() {
                // Published by the sync task once Redis is back.
                shared.keys_dirty.store(true, Ordering::SeqCst);
                return;
            }
            let mut conn = shared.conn.clone();
            let bumped: Result<i64, String> = shared.bounded(conn.incr(shared.keys_key(), 1)).await;
            if let Err(e) = bumped {
                shared.keys_dirty.store(true, Ordering::SeqCst);
                shared.failed(&e);
            }
        })
    }

    fn epoch(&self) -> u64 {
        self.shared.key_epoch.load(Ordering::Relaxed)
    }
}

impl StateBackend for RedisBackend {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn degraded(&self) -> bool {
        self.shared.is_degraded()
    }

    fn counters(&self) -> Option<Arc<dyn crate::access::Counters>> {
        Some(Arc::new(super::limits::RedisCounters::new(self)))
    }

    fn budgets(
        &self,
        usage: Option<Arc<dyn crate::usage::UsageStore>>,
    ) -> Option<Arc<dyn crate::access::Budgets>> {
        Some(Arc::new(super::limits::RedisBudgets::new(self, usage)))
    }

    fn key_changes(&self) -> Option<Arc<dyn crate::access::KeyChanges>> {
        Some(Arc::new(self.clone()))
    }

    fn cache_local(&self, key: &str) -> Option<Bytes> {
        self.shared.local.cache_local(key)
    }

    fn cache_usage(&self) -> (u64, u64) {
        self.shared.local.cache_usage()
    }

    fn cache_remote(&self, key: &str) -> Option<Lookup> {
        if self.degraded() {
            return None; // the sync task finds out when Redis is back
        }
        let shared = self.shared.clone();
        let key = key.to_owned();
        Some(Box::pin(async move {
            let mut conn = shared.conn.clone();
            let got: Result<Option<Vec<u8>>, String> =
                shared.bounded(conn.get(shared.cache_key(&key))).await;
            match got {
                Ok(Some(v)) => {
                    let v = Bytes::from(v);
                    shared.local.cache_put(key, v.clone());
                    Some(v)
                }
                Ok(None) => None,
                Err(e) => {
                    shared.failed(&e);
                    None
                }
            }
        }))
    }

    fn cache_put(&self, key: String, value: Bytes) {
        self.shared.local.cache_put(key.clone(), value.clone());
        if self.degraded() {
            return;
        }
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let mut conn = shared.conn.clone();
            let ttl = shared.settings.ttl.as_millis().max(1) as u64;
            let set: Result<(), String> = shared
                .bounded(conn.pset_ex(shared.cache_key(&key), value.as_ref(), ttl))
                .await;
            if let Err(e) = set {
                shared.failed(&e);
            }
        });
    }

    fn watch(&self, registry: &Arc<Registry>) {
        if self.shared.watching.swap(true, Ordering::SeqCst) {
            return;
        }
        let shared = self.shared.clone();
        let registry = Arc::downgrade(registry);
        tokio::spawn(sync_loop(shared, registry));
    }

    fn seed(&self, state: &DeploymentHealth) {
        let known = self
            .shared
            .known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(state.id())
            .copied();
        if let Some(open @ SharedCircuit::Open { until_ms }) = known
            && until_ms > now_ms()
        {
            state.circuit().apply_shared(open);
        }
    }
}

// === impl Shared ===

impl Shared {
    fn cache_key(&self, key: &str) -> String {
        format!("{}:cache:{key}", self.settings.prefix)
    }

    fn circuits_key(&self) -> String {
        format!("{}:circuits", self.settings.prefix)
    }

    fn latency_key(&self) -> String {
        format!("{}:latency", self.settings.prefix)
    }

    /// The version of the virtual keys, bumped on every change.
    fn keys_key(&self) -> String {
        format!("{}:keys:version", self.settings.prefix)
    }

    pub(super) fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// Runs one Redis call within the configured bound.
    pub(super) async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(self.settings.timeout, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "no answer within {} ms",
                self.settings.timeout.as_millis()
            )),
        }
    }

    /// Redis failed: say so once, and carry on in process.
    pub(super) fn failed(&self, why: &str) {
        if !self.degraded.swap(true, Ordering::SeqCst) {
            metrics::gauge!(names::STATE_BACKEND_DEGRADED).set(1.0);
            tracing::warn!(
                prefix = %self.settings.prefix,
                "state backend degraded: Redis is unreachable ({why}); circuits, latency, the cache, rate limits and budgets go on in process until it is back"
            );
        }
    }

    /// Redis answered: shared state resumes. True when it had been unreachable.
    pub(super) fn recovered(&self) -> bool {
        let was = self.degraded.swap(false, Ordering::SeqCst);
        if was {
            metrics::gauge!(names::STATE_BACKEND_DEGRADED).set(0.0);
            tracing::info!(prefix = %self.settings.prefix, "state backend recovered: Redis is reachable again; shared state resumes");
        }
        was
    }

    /// Publishes this replica's circuit changes and latency, and reads everyone's.
    async fn exchange(
        &self,
        circuits: &[(Arc<str>, SharedCircuit)],
        latency: &[(Arc<str>, String)],
    ) -> Result<Exchanged, String> {
        let mut conn = self.conn.clone();
        let versions: Vec<u64> = if circuits.is_empty() {
            Vec::new()
        } else {
            let mut call = self.publish.key(self.circuits_key());
            call.arg(now_ms());
            for (id, c) in circuits {
                call.arg(id.as_ref()).arg(encode_circuit(*c));
            }
            self.bounded(call.invoke_async(&mut conn)).await?
        };
        let mut pipe = redis::pipe();
        if !latency.is_empty() {
            let mut hset = redis::cmd("HSET");
            hset.arg(self.latency_key());
            for (id, v) in latency {
                hset.arg(id.as_ref()).arg(v);
            }
            pipe.add_command(hset).ignore();
        }
        let dirty = self.keys_dirty.swap(false, Ordering::SeqCst);
        if dirty {
            pipe.cmd("INCR").arg(self.keys_key()).ignore();
        }
        pipe.cmd("HGETALL").arg(self.circuits_key());
        pipe.cmd("HGETALL").arg(self.latency_key());
        pipe.cmd("GET").arg(self.keys_key());
        type Got = (
            HashMap<String, String>,
            HashMap<String, String>,
            Option<String>,
        );
        let got: Result<Got, String> = self.bounded(pipe.query_async(&mut conn)).await;
        let (remote_circuits, remote_latency, keys_version) = got.inspect_err(|_| {
            if dirty {
                self.keys_dirty.store(true, Ordering::SeqCst);
            }
        })?;
        Ok(Exchanged {
            versions,
            circuits: remote_circuits,
            latency: remote_latency,
            keys_version,
        })
    }
}

struct Exchanged {
    versions: Vec<u64>,
    circuits: HashMap<String, String>,
    latency: HashMap<String, String>,
    keys_version: Option<String>,
}

fn encode_circuit(c: SharedCircuit) -> String {
    match c {
        SharedCircuit::Closed => "closed".to_owned(),
        SharedCircuit::Open { until_ms } => format!("open:{until_ms}"),
    }
}

/// `version|closed` or `version|open:<until_ms>`.
fn decode_circuit(v: &str) -> Option<(u64, SharedCircuit)> {
    let (ver, state) = v.split_once('|')?;
    let ver = ver.parse().ok()?;
    let state = match state {
        "closed" => SharedCircuit::Closed,
        s => SharedCircuit::Open {
            until_ms: s.strip_prefix("open:")?.parse().ok()?,
        },
    };
    Some((ver, state))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// `at` on the wall clock, in ms since the epoch.
fn instant_to_ms(at: Instant) -> u64 {
    now_ms().saturating_sub(Instant::now().saturating_duration_since(at).as_millis() as u64)
}

/// The sync task: every tick, publish what changed here and adopt what changed elsewhere.
/// Ends when the registry (the gateway) is gone.
async fn sync_loop(shared: Arc<Shared>, registry: Weak<Registry>) {
    let mut tick = tokio::time::interval(shared.settings.sync_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Versions of each circuit already applied (or written) here.
    let mut seen: HashMap<Arc<str>, u64> = HashMap::new();
    // Local changes not yet in Redis (kept across failures, so they are shared once it is back).
    let mut pending: HashMap<Arc<str>, SharedCircuit> = HashMap::new();
    // The last latency sample published per deployment.
    let mut published: HashMap<Arc<str>, Instant> = HashMap::new();
    // The version of the virtual keys last seen.
    let mut keys_version: Option<String> = None;
    loop {
        tick.tick().await;
        let Some(reg) = registry.upgrade() else {
            return;
        };
        let deployments = reg.deployments();
        drop(reg);
        let mut latency = Vec::new();
        for d in &deployments {
            let state = d.state();
            if let Some(c) = state.circuit().take_outbox() {
                pending.insert(d.id().clone(), c);
            }
            if let Some((est, at)) = state.latency_sample()
                && published.get(d.id()) != Some(&at)
            {
                latency.push((
                    d.id().clone(),
                    format!("{est}|{}|{}", instant_to_ms(at), shared.replica),
                    at,
                ));
            }
        }
        let writes: Vec<(Arc<str>, SharedCircuit)> =
            pending.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let lat: Vec<(Arc<str>, String)> = latency
            .iter()
            .map(|(id, v, _)| (id.clone(), v.clone()))
            .collect();
        let got = match shared.exchange(&writes, &lat).await {
            Ok(got) => got,
            Err(e) => {
                shared.failed(&e);
                continue;
            }
        };
        if shared.recovered() {
            // Redis may have restarted empty: take in whatever it holds now, whatever its version.
            seen.clear();
            // Keys may have changed elsewhere meanwhile: cached lookups are asked again.
            shared.key_epoch.fetch_add(1, Ordering::SeqCst);
        }
        if got.keys_version != keys_version {
            // Another replica changed a key (or this one did): cached lookups are asked again.
            keys_version = got.keys_version.clone();
            shared.key_epoch.fetch_add(1, Ordering::SeqCst);
        }
        for ((id, _), ver) in writes.iter().zip(&got.versions) {
            seen.insert(id.clone(), *ver);
            pending.remove(id);
        }
        for (id, _, at) in latency {
            published.insert(id, at);
        }
        let by_id: HashMap<&str, &crate::deployment::Deployment> =
            deployments.iter().map(|d| (d.id().as_ref(), d)).collect();
        let now = now_ms();
        {
            let mut known = shared.known.lock().unwrap_or_else(|e| e.into_inner());
            for (id, v) in &got.circuits {
                if let Some((_, c)) = decode_circuit(v) {
                    known.insert(Arc::from(id.as_str()), c);
                }
            }
        }
        for (id, v) in &got.circuits {
            let Some((ver, circuit)) = decode_circuit(v) else {
                continue;
            };
            let Some(d) = by_id.get(id.as_str()) else {
                continue; // not routed here yet: `seed` applies it when it is
            };
            if seen.get(d.id()).is_some_and(|s| *s >= ver) || pending.contains_key(d.id()) {
                continue;
            }
            // An open circuit whose cool-down is already over elsewhere changes nothing here.
            let stale = matches!(circuit, SharedCircuit::Open { until_ms } if until_ms <= now);
            if stale || d.state().circuit().apply_shared(circuit) {
                seen.insert(d.id().clone(), ver);
            }
        }
        for (id, v) in &got.latency {
            let mut parts = v.split('|');
            let (Some(est), Some(at), Some(replica)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let (Ok(est), Ok(at)) = (est.parse::<f64>(), at.parse::<u64>()) else {
                continue;
            };
            if replica == shared.replica.to_string() {
                continue;
            }
            if let Some(d) = by_id.get(id.as_str()) {
                let ago = Duration::from_millis(now.saturating_sub(at));
                let at = Instant::now().checked_sub(ago).unwrap_or_else(Instant::now);
                d.state().set_shared_latency(est, at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn circuit_values_round_trip() {
        for c in [
            SharedCircuit::Closed,
            SharedCircuit::Open { until_ms: 1234 },
        ] {
            let v = format!("7|{}", encode_circuit(c));
            assert_eq!(decode_circuit(&v), Some((7, c)));
        }
        assert_eq!(decode_circuit("x|closed"), None);
        assert_eq!(decode_circuit("1|open:soon"), None);
    }
}
