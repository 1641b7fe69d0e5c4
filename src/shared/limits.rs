//! Rate-limit counters and budgets shared exactly by every replica through Redis.
//!
//! Each check is one Lua script, so it is atomic on Redis whatever the number of replicas: a
//! limit of 10 serves 10 in its window across all of them, and reservations never pass a
//! budget. While Redis cannot be reached both fall back to in-process counting (the backend's
//! degraded gauge and log say so) and use Redis again once the sync task finds it back; no
//! request fails because of Redis.
//!
//! Keys: `{prefix}:rl:{window}:{limit}` (an integer per one-minute window, expiring after two
//! windows) and `{prefix}:budget:{key}:{period_start}` (a hash of `spent` and `reserved`
//! USD, expiring a month after its period starts; a `total` budget's a month after its last
//! reservation).
//!
//! A reservation whose settlement never reaches Redis (the replica died mid-request, or a
//! script ran but its answer came after `REDIS_TIMEOUT_MS`) stays in `reserved` until the hash
//! expires. Settlements that failed while the replica lives are retried before its next
//! reservation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::redis::{RedisBackend, Shared};
use crate::access::limit::{Clock, Limit, SystemClock, Verdict, WINDOW};
use crate::access::{Budgets, Counters, Hold, MemoryBudgets, MemoryCounters};
use crate::usage::{StoreError, StoreFuture, UsageQuery, UsageStore};

/// Checks every limit of a request and counts it in all or none.
/// KEYS: one counter per limit. ARGV: the keys' lifetime in ms, then `max, cost` per limit.
/// Returns `{allowed (1|0), used after this request per limit...}`.
const HIT: &str = r"
local ttl = tonumber(ARGV[1])
local used = {}
local ok = 1
for i = 1, #KEYS do
  local u = tonumber(redis.call('GET', KEYS[i])) or 0
  used[i] = u
  if u + tonumber(ARGV[2 * i + 1]) > tonumber(ARGV[2 * i]) then ok = 0 end
end
if ok == 1 then
  for i = 1, #KEYS do
    used[i] = redis.call('INCRBY', KEYS[i], ARGV[2 * i + 1])
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
table.insert(used, 1, ok)
return used
";

/// Corrects a window's counter with a request's real tokens. KEYS[1]: the counter. ARGV: the
/// change. A counter that expired (its window is over) is left alone; none goes below 0.
const CORRECT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if v < 0 then redis.call('SET', KEYS[1], '0', 'KEEPTTL') return 0 end
return v
";

/// Reserves `amount` when spent + reserved + amount stays within `limit` (and something is
/// left). KEYS[1]: the budget hash. ARGV: amount, limit, the spend to seed an absent hash with
/// (empty: do not seed), expiry (ms since the epoch).
/// Returns `{'missing'}` (absent and no seed), `{'ok', spent}` or `{'no', spent}`.
const RESERVE: &str = r"
local amount = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 0 then
  if ARGV[3] == '' then return {'missing'} end
  redis.call('HSET', KEYS[1], 'spent', ARGV[3], 'reserved', '0')
end
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
local spent = tonumber(redis.call('HGET', KEYS[1], 'spent')) or 0
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved')) or 0
local committed = spent + reserved
if committed >= limit or committed + amount > limit then
  return {'no', string.format('%.17g', spent)}
end
redis.call('HSET', KEYS[1], 'reserved', string.format('%.17g', reserved + amount))
return {'ok', string.format('%.17g', spent)}
";

/// Replaces a reservation with the real cost. KEYS[1]: the budget hash. ARGV: the amount
/// reserved, the real cost. An absent hash (Redis lost it) is left alone: the cost is in the
/// usage store, which seeds the hash again. Returns the spend, or nil.
const SETTLE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local spent = tonumber(redis.call('HGET', KEYS[1], 'spent')) or 0
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved')) or 0
reserved = reserved - tonumber(ARGV[1])
if reserved < 1e-12 then reserved = 0 end
spent = spent + math.max(0, tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], 'spent', string.format('%.17g', spent), 'reserved', string.format('%.17g', reserved))
return string.format('%.17g', spent)
";

/// Rate-limit counters on Redis; see the [module docs](self).
pub struct RedisCounters {
    shared: Arc<Shared>,
    script: redis::Script,
    clock: Box<dyn Clock>,
    local: MemoryCounters,
}

impl std::fmt::Debug for RedisCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCounters")
            .field("prefix", &self.shared.settings.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisCounters {
    /// Counters on `backend`'s Redis, windows on the system clock.
    pub fn new(backend: &RedisBackend) -> Self {
        Self::with_clock(backend, SystemClock)
    }

    /// Counters whose windows follow `clock` (tests); the in-process stand-in uses the system
    /// clock.
    pub fn with_clock(backend: &RedisBackend, clock: impl Clock) -> Self {
        Self {
            shared: backend.shared().clone(),
            script: redis::Script::new(HIT),
            clock: Box::new(clock),
            local: MemoryCounters::default(),
        }
    }

    async fn hit_shared(&self, limits: &[Limit]) -> Result<Verdict, String> {
        let now = self.clock.now_ms();
        let width = WINDOW.as_millis() as u64;
        let window = now / width;
        let prefix = &self.shared.settings.prefix;
        let mut call = self.script.prepare_invoke();
        for l in limits {
            call.key(format!("{prefix}:rl:{window}:{}", l.name));
        }
        call.arg(2 * width);
        for l in limits {
            call.arg(l.max).arg(l.cost);
        }
        let mut conn = self.shared.conn.clone();
        let got: Vec<u64> = self.shared.bounded(call.invoke_async(&mut conn)).await?;
        let Some((allowed, used)) = got.split_first().filter(|(_, u)| u.len() == limits.len())
        else {
            return Err(format!("the rate-limit script answered {got:?}"));
        };
        Ok(Verdict {
            allowed: *allowed == 1,
            remaining: limits
                .iter()
                .zip(used)
                .map(|(l, u)| l.max.saturating_sub(*u))
                .collect(),
            reset_in: Duration::from_millis(width - now % width),
        })
    }
}

impl Counters for RedisCounters {
    fn hit<'a>(&'a self, limits: &'a [Limit]) -> StoreFuture<'a, Verdict> {
        Box::pin(async move {
            if !self.shared.is_degraded() {
                match self.hit_shared(limits).await {
                    Ok(v) => return Ok(v),
                    Err(e) => self.shared.failed(&e),
                }
            }
            // Redis is away: this replica's own count stands in until it is back.
            self.local.hit(limits).await
        })
    }

    fn window(&self) -> u64 {
        self.clock.now_ms() / WINDOW.as_millis() as u64
    }

    fn correct(&self, name: &str, window: u64, delta: i64) {
        if self.shared.is_degraded() {
            self.local.correct(name, self.local.window(), delta);
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let shared = self.shared.clone();
        let key = format!("{}:rl:{window}:{name}", shared.settings.prefix);
        rt.spawn(async move {
            let mut conn = shared.conn.clone();
            let script = redis::Script::new(CORRECT);
            let mut call = script.prepare_invoke();
            call.key(key).arg(delta);
            let r: Result<i64, String> = shared.bounded(call.invoke_async(&mut conn)).await;
            if let Err(e) = r {
                tracing::warn!("tpm correction not applied: {e}");
            }
        });
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}

/// A reservation made in process while Redis was away: (key, period start, amount bits).
type LocalHold = (Arc<str>, i64, u64);

/// Budgets on Redis, seeded from the usage store; see the [module docs](self).
pub struct RedisBudgets {
    inner: Arc<BudgetsInner>,
}

struct BudgetsInner {
    shared: Arc<Shared>,
    usage: Option<Arc<dyn UsageStore>>,
    reserve: redis::Script,
    settle: redis::Script,
    /// The stand-in while Redis is away.
    local: MemoryBudgets,
    /// Reservations held by `local`, so their settling goes there too.
    local_holds: Mutex<HashMap<LocalHold, usize>>,
    /// Settlements Redis did not take yet (retried before the next reservation).
    unsettled: Mutex<Vec<(Hold, f64)>>,
    /// The spend last seen per key and period.
    seen: Mutex<HashMap<(Arc<str>, i64), f64>>,
}

impl std::fmt::Debug for RedisBudgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBudgets")
            .field("prefix", &self.inner.shared.settings.prefix)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl RedisBudgets {
    /// Budgets on `backend`'s Redis; a period's spend absent from Redis is read from `usage`.
    pub fn new(backend: &RedisBackend, usage: Option<Arc<dyn UsageStore>>) -> Self {
        Self {
            inner: Arc::new(BudgetsInner {
                shared: backend.shared().clone(),
                local: MemoryBudgets::new(usage.clone()),
                usage,
                reserve: redis::Script::new(RESERVE),
                settle: redis::Script::new(SETTLE),
                local_holds: Mutex::new(HashMap::new()),
                unsettled: Mutex::new(Vec::new()),
                seen: Mutex::new(HashMap::new()),
            }),
        }
    }
}

fn local_hold(hold: &Hold) -> LocalHold {
    (hold.key.clone(), hold.period_start, hold.amount.to_bits())
}

impl BudgetsInner {
    fn key(&self, key: &str, period_start: i64) -> String {
        format!(
            "{}:budget:{key}:{period_start}",
            self.shared.settings.prefix
        )
    }

    /// What a key spent in the period, from the usage store.
    async fn spent_in_store(&self, hold: &Hold) -> Result<f64, StoreError> {
        let Some(store) = &self.usage else {
            return Ok(0.0);
        };
        let q = UsageQuery {
            since_ms: Some(hold.period_start),
            key: Some(hold.key.to_string()),
            ..UsageQuery::default()
        };
        Ok(store.summary(&q).await?.totals.cost_usd)
    }

    /// Outer error: Redis failed. Inner: the usage store failed (seeding).
    async fn reserve_shared(
        &self,
        hold: &Hold,
        limit: f64,
    ) -> Result<Result<Result<(), f64>, StoreError>, String> {
        self.retry_unsettled().await?;
        let key = self.key(&hold.key, hold.period_start);
        // A period's hash lives until a month after the period starts (`total` budgets: a
        // month after their last reservation); the usage store seeds it again after.
        const MONTH_MS: i64 = 33 * 86_400_000;
        let now = crate::usage::now_ms();
        let expire_at = if hold.period_start == 0 {
            now + MONTH_MS
        } else {
            (hold.period_start + MONTH_MS).max(now + 86_400_000)
        };
        let mut seed = String::new();
        for _ in 0..2 {
            let mut conn = self.shared.conn.clone();
            let got: Vec<String> = self
                .shared
                .bounded(
                    self.reserve
                        .key(&key)
                        .arg(hold.amount)
                        .arg(limit)
                        .arg(&seed)
                        .arg(expire_at)
                        .invoke_async(&mut conn),
                )
                .await?;
            let spent = || {
                got.get(1)
                    .and_then(|s| s.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            match got.first().map(String::as_str) {
                Some("missing") if seed.is_empty() => {
                    // First reservation of this period since Redis knew it: what was spent?
                    match self.spent_in_store(hold).await {
                        Ok(s) => seed = format!("{s:.17e}"),
                        Err(e) => return Ok(Err(e)),
                    }
                }
                Some(verdict @ ("ok" | "no")) => {
                    let spent = spent();
                    lock(&self.seen).insert((hold.key.clone(), hold.period_start), spent);
                    return Ok(Ok(if verdict == "ok" { Ok(()) } else { Err(spent) }));
                }
                _ => break,
            }
        }
        Err("the budget script answered unexpectedly".into())
    }

    async fn settle_shared(&self, hold: &Hold, actual: f64) -> Result<(), String> {
        let mut conn = self.shared.conn.clone();
        let spent: Option<String> = self
            .shared
            .bounded(
                self.settle
                    .key(self.key(&hold.key, hold.period_start))
                    .arg(hold.amount)
                    .arg(actual)
                    .invoke_async(&mut conn),
            )
            .await?;
        if let Some(s) = spent.and_then(|s| s.parse::<f64>().ok()) {
            lock(&self.seen).insert((hold.key.clone(), hold.period_start), s);
        }
        Ok(())
    }

    /// Settlements that failed earlier go first, so their reservations do not stay held.
    async fn retry_unsettled(&self) -> Result<(), String> {
        let pending = std::mem::take(&mut *lock(&self.unsettled));
        let mut pending = pending.into_iter();
        while let Some((hold, actual)) = pending.next() {
            if let Err(e) = self.settle_shared(&hold, actual).await {
                let mut left = lock(&self.unsettled);
                left.push((hold, actual));
                left.extend(pending);
                return Err(e);
            }
        }
        Ok(())
    }
}

impl Budgets for RedisBudgets {
    fn reserve<'a>(&'a self, hold: &'a Hold, limit: f64) -> StoreFuture<'a, Result<(), f64>> {
        Box::pin(async move {
            let inner = &self.inner;
            if !inner.shared.is_degraded() {
                match inner.reserve_shared(hold, limit).await {
                    Ok(r) => return r,
                    Err(e) => inner.shared.failed(&e),
                }
            }
            // Redis is away: this replica's own budget stands in until it is back, from at
            // least the spend Redis last reported here (the stand-in's own figure may date from
            // an earlier outage, before everything spent through Redis since).
            let seen = lock(&inner.seen)
                .get(&(hold.key.clone(), hold.period_start))
                .copied();
            if let Some(seen) = seen {
                inner.local.raise_spent(&hold.key, hold.period_start, seen);
            }
            let r = inner.local.reserve(hold, limit).await?;
            if r.is_ok() {
                *lock(&inner.local_holds)
                    .entry(local_hold(hold))
                    .or_default() += 1;
            }
            Ok(r)
        })
    }

    fn settle(&self, hold: &Hold, actual: f64) {
        let inner = &self.inner;
        {
            let mut local = lock(&inner.local_holds);
            let id = local_hold(hold);
            if let Some(n) = local.get_mut(&id) {
                *n -= 1;
                if *n == 0 {
                    local.remove(&id);
                }
                drop(local);
                inner.local.settle(hold, actual);
                return;
            }
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            lock(&inner.unsettled).push((hold.clone(), actual));
            return;
        };
        let inner = self.inner.clone();
        let hold = hold.clone();
        rt.spawn(async move {
            if let Err(e) = inner.settle_shared(&hold, actual).await {
                inner.shared.failed(&e);
                lock(&inner.unsettled).push((hold, actual));
            }
        });
    }

    fn spent(&self, key: &str, period_start: i64) -> Option<f64> {
        let seen = lock(&self.inner.seen)
            .get(&(Arc::<str>::from(key), period_start))
            .copied();
        seen.or_else(|| self.inner.local.spent(key, period_start))
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::limit::ManualClock;
    use crate::shared::InProcess;
    use crate::shared::redis::RedisSettings;

    const REDIS: &str = "redis://127.0.0.1:6379";

    fn backend(url: &str) -> RedisBackend {
        RedisBackend::connect(
            url,
            RedisSettings {
                prefix: format!("pgtest-limits-{:016x}", rand::random::<u64>()),
                timeout: Duration::from_millis(500),
                sync_every: Duration::from_millis(50),
                ttl: Duration::from_secs(60),
            },
            InProcess::new(1 << 16, Duration::from_secs(60)),
        )
        .unwrap()
    }

    fn limit(name: &str, max: u64, cost: u64) -> Limit {
        Limit {
            name: name.into(),
            max,
            cost,
        }
    }

    #[tokio::test]
    async fn two_replicas_count_in_the_same_window_all_or_nothing() {
        let clock = Arc::new(ManualClock::at(1_800_000_000_000));
        let b = backend(REDIS);
        let (one, two) = (
            RedisCounters::with_clock(&b, clock.clone()),
            RedisCounters::with_clock(&b, clock.clone()),
        );
        let ls = [limit("rpm:k", 3, 1), limit("tpm:k", 100, 30)];
        let v = one.hit(&ls).await.unwrap();
        assert_eq!((v.allowed, v.remaining.clone()), (true, vec![2, 70]));
        assert_eq!(v.reset_in, WINDOW);
        assert!(two.hit(&ls).await.unwrap().allowed);
        assert!(one.hit(&ls).await.unwrap().allowed);
        // The fourth, on either replica: refused and nothing counted.
        let v = two.hit(&ls).await.unwrap();
        assert_eq!((v.allowed, v.remaining.clone()), (false, vec![0, 10]));
        let v = one.hit(&[limit("tpm:k", 100, 10)]).await.unwrap();
        assert_eq!((v.allowed, v.remaining.clone()), (true, vec![0]));
        assert!(!b.shared().is_degraded());
        // The next window starts from zero.
        clock.advance(WINDOW);
        let v = two.hit(&ls).await.unwrap();
        assert_eq!((v.allowed, v.remaining), (true, vec![2, 70]));
    }

    #[tokio::test]
    async fn concurrent_hits_never_pass_the_limit() {
        let b = backend(REDIS);
        let clock = Arc::new(ManualClock::at(1_800_000_000_000));
        let counters = Arc::new(RedisCounters::with_clock(&b, clock));
        let mut tasks = Vec::new();
        for _ in 0..40 {
            let c = counters.clone();
            tasks.push(tokio::spawn(async move {
                c.hit(&[limit("rpm:busy", 10, 1)]).await.unwrap().allowed
            }));
        }
        let mut allowed = 0;
        for t in tasks {
            allowed += usize::from(t.await.unwrap());
        }
        assert_eq!(allowed, 10);
    }

    fn hold(key: &str, amount: f64) -> Hold {
        Hold {
            key: key.into(),
            period_start: 86_400_000,
            amount,
        }
    }

    async fn settled(b: &RedisBudgets, key: &str, want: f64) -> bool {
        for _ in 0..200 {
            let h = hold(key, 0.0);
            // A free reservation refreshes what is seen (and settles at once).
            let _ = b.reserve(&h, 1e9).await;
            b.settle(&h, 0.0);
            if b.spent(key, h.period_start)
                .is_some_and(|s| (s - want).abs() < 1e-9)
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test]
    async fn reservations_are_shared_and_settling_replaces_them_with_the_cost() {
        let b = backend(REDIS);
        let (one, two) = (RedisBudgets::new(&b, None), RedisBudgets::new(&b, None));
        assert_eq!(one.reserve(&hold("k", 3.0), 10.0).await.unwrap(), Ok(()));
        assert_eq!(two.reserve(&hold("k", 3.0), 10.0).await.unwrap(), Ok(()));
        assert_eq!(one.reserve(&hold("k", 3.0), 10.0).await.unwrap(), Ok(()));
        assert_eq!(two.reserve(&hold("k", 3.0), 10.0).await.unwrap(), Err(0.0));
        one.settle(&hold("k", 3.0), 1.0);
        assert!(settled(&two, "k", 1.0).await);
        // 1 spent + 6 reserved: 3 more fit, 3.5 do not.
        assert!(two.reserve(&hold("k", 3.5), 10.0).await.unwrap().is_err());
        assert_eq!(two.reserve(&hold("k", 3.0), 10.0).await.unwrap(), Ok(()));
        assert!(!b.shared().is_degraded());
    }

    #[tokio::test]
    async fn a_request_is_settled_in_the_period_it_started_on_redis() {
        let b = backend(REDIS);
        let budgets: Arc<dyn crate::access::Budgets> = Arc::new(RedisBudgets::new(&b, None));
        crate::access::budget::check_settlement_in_the_start_period(budgets, "turning").await;
        assert!(!b.shared().is_degraded());
    }

    #[tokio::test]
    async fn an_absent_period_is_seeded_from_the_usage_store() {
        let store = Arc::new(crate::usage::MemoryStore::new());
        let now = crate::usage::now_ms();
        let rec = crate::usage::UsageRecord {
            id: "seeded-record".into(),
            ts_ms: now,
            request_id: None,
            key_id: Some("seeded".into()),
            endpoint: crate::types::Api::Chat,
            provider: "mock".into(),
            model: "mock/echo".into(),
            prompt_tokens: 10,
            completion_tokens: 1,
            cached_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
            estimated_tokens: 0,
            cost_usd: 0.75,
            cost_breakdown: Default::default(),
            unpriced: false,
            latency_ms: 1.0,
            ttft_ms: None,
            status: 200,
            attempts: 1,
            stream: false,
            cache_hit: false,
        };
        store.write(&[rec]).await.unwrap();
        let b = backend(REDIS);
        let budgets = RedisBudgets::new(&b, Some(store));
        let h = Hold {
            key: "seeded".into(),
            period_start: now - 1000,
            amount: 0.25,
        };
        assert_eq!(budgets.reserve(&h, 1.0).await.unwrap(), Ok(()));
        assert_eq!(budgets.spent("seeded", h.period_start), Some(0.75));
        assert_eq!(budgets.reserve(&h, 1.0).await.unwrap(), Err(0.75));
    }

    #[tokio::test]
    async fn a_second_outage_starts_from_what_was_spent_through_redis_since_the_first() {
        let b = backend(REDIS);
        let budgets = RedisBudgets::new(&b, None);
        // First outage: the in-process stand-in learns the key and sees 1 spent.
        b.shared().failed("test: first outage");
        assert_eq!(
            budgets.reserve(&hold("k", 1.0), 10.0).await.unwrap(),
            Ok(())
        );
        budgets.settle(&hold("k", 1.0), 1.0);
        // (The sync task, not running here, does this when Redis answers again.)
        assert!(b.shared().recovered());
        // Redis is back: 8 more are spent through it.
        for _ in 0..2 {
            assert_eq!(
                budgets.reserve(&hold("k", 4.0), 10.0).await.unwrap(),
                Ok(())
            );
            budgets.settle(&hold("k", 4.0), 4.0);
        }
        assert!(settled(&budgets, "k", 8.0).await);
        // Second outage: 8 of 10 are gone, so 3 more must not pass.
        b.shared().failed("test: second outage");
        assert_eq!(
            budgets.reserve(&hold("k", 3.0), 10.0).await.unwrap(),
            Err(8.0)
        );
        assert!(b.shared().is_degraded(), "answered in process");
    }

    #[tokio::test]
    async fn an_unreachable_redis_counts_in_process_and_says_it_is_degraded() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let b = backend(&format!("redis://127.0.0.1:{port}"));
        let counters = RedisCounters::new(&b);
        let ls = [limit("rpm:k", 1, 1)];
        assert!(counters.hit(&ls).await.unwrap().allowed);
        assert!(b.shared().is_degraded());
        assert!(!counters.hit(&ls).await.unwrap().allowed);
        let budgets = RedisBudgets::new(&b, None);
        assert_eq!(budgets.reserve(&hold("k", 1.0), 1.0).await.unwrap(), Ok(()));
        assert!(
            budgets
                .reserve(&hold("k", 1.0), 1.0)
                .await
                .unwrap()
                .is_err()
        );
        budgets.settle(&hold("k", 1.0), 0.5);
        assert_eq!(budgets.spent("k", 86_400_000), Some(0.5));
    }
}
