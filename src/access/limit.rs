//! Rate limits: requests and tokens per minute, per virtual key (its `rpm`/`tpm`) and for the
//! whole gateway (`RATE_LIMIT_RPM`/`RATE_LIMIT_TPM`). A request over any limit is refused
//! with 429 and a `retry-after` until the window turns; every limited response carries
//! `x-ratelimit-remaining-requests` / `-tokens` like OpenAI's.
//!
//! Counting is fixed one-minute windows aligned on the wall clock, behind the [`Counters`]
//! trait so instances can share them (`crate::shared::RedisCounters` checks and increments the
//! window's keys in Redis with one script per request). A request's tokens are its prompt estimate plus its `max_tokens`, as
//! OpenAI counts them against a limit, known before the call.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::{BoxFuture, Either};
use tower::{Layer, Service};

use super::Grant;
use crate::GatewayError;
use crate::types::{ChatReply, ChatRequest};
use crate::usage::{StoreError, StoreFuture};

/// The length of a rate-limit window.
pub const WINDOW: Duration = Duration::from_secs(60);

/// One counter a request must fit in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limit {
    /// The counter's name (`rpm:key_…`, `tpm:*`).
    pub name: String,
    /// What the window allows.
    pub max: u64,
    /// What this request adds.
    pub cost: u64,
}

/// What the counters said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Every limit had room; the request was counted in all of them. When false, none was
    /// counted.
    pub allowed: bool,
    /// What each limit has left after this request (in the order given).
    pub remaining: Vec<u64>,
    /// Time until the window turns.
    pub reset_in: Duration,
}

/// Wall-clock milliseconds, replaceable in tests.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        crate::usage::now_ms().max(0) as u64
    }
}

/// A clock that moves only when told (tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock at `ms`.
    pub fn at(ms: u64) -> Self {
        Self(AtomicU64::new(ms))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl<C: Clock> Clock for Arc<C> {
    fn now_ms(&self) -> u64 {
        (**self).now_ms()
    }
}

/// Window counters shared by every request (and, in another implementation, every instance).
pub trait Counters: Send + Sync + 'static {
    /// Counts `limits` in the current window, all or nothing: when one has no room, none is
    /// counted and the verdict says so.
    fn hit<'a>(&'a self, limits: &'a [Limit]) -> StoreFuture<'a, Verdict>;

    /// The number of the current window (milliseconds since the epoch / [`WINDOW`]) on the
    /// counters' clock.
    fn window(&self) -> u64 {
        SystemClock.now_ms() / WINDOW.as_millis() as u64
    }

    /// Moves counter `name` of window `window` by `delta` (never below 0), when that window
    /// is still counting: a request's tokens are counted at admission from its estimate and
    /// corrected with the real tokens when its answer ends. Synchronous, as it runs when a
    /// stream is dropped; an implementation that needs I/O spawns it.
    fn correct(&self, name: &str, window: u64, delta: i64);

    /// A short name for logs (`memory`, `redis`).
    fn kind(&self) -> &'static str;
}

/// Counters in process memory.
pub struct MemoryCounters {
    clock: Box<dyn Clock>,
    state: Mutex<Windows>,
}

#[derive(Default)]
struct Windows {
    window: u64,
    counts: HashMap<String, u64>,
}

impl std::fmt::Debug for MemoryCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCounters").finish_non_exhaustive()
    }
}

impl Default for MemoryCounters {
    fn default() -> Self {
        Self::new(SystemClock)
    }
}

impl MemoryCounters {
    /// Counters on `clock`.
    pub fn new(clock: impl Clock) -> Self {
        Self {
            clock: Box::new(clock),
            state: Mutex::new(Windows::default()),
        }
    }

    fn hit_now(&self, limits: &[Limit]) -> Result<Verdict, StoreError> {
        let now = self.clock.now_ms();
        let width = WINDOW.as_millis() as u64;
        let window = now / width;
        let reset_in = Duration::from_millis(width - now % width);
        let mut s = self
            .state
            .lock()
            .map_err(|_| StoreError("rate-limit counters lock poisoned".into()))?;
        if s.window != window {
            // A new window: every counter starts again (the old ones are simply dropped).
            s.window = window;
            s.counts.clear();
        }
        let used: Vec<u64> = limits
            .iter()
            .map(|l| s.counts.get(&l.name).copied().unwrap_or(0))
            .collect();
        let allowed = limits
            .iter()
            .zip(&used)
            .all(|(l, u)| u.saturating_add(l.cost) <= l.max);
        let mut remaining = Vec::with_capacity(limits.len());
        for (l, u) in limits.iter().zip(used) {
            let after = if allowed {
                let n = u.saturating_add(l.cost);
                s.counts.insert(l.name.clone(), n);
                n
            } else {
                u
            };
            remaining.push(l.max.saturating_sub(after));
        }
        Ok(Verdict {
            allowed,
            remaining,
            reset_in,
        })
    }
}

impl Counters for MemoryCounters {
    fn hit<'a>(&'a self, limits: &'a [Limit]) -> StoreFuture<'a, Verdict> {
        let v = self.hit_now(limits);
        Box::pin(async move { v })
    }

    fn window(&self) -> u64 {
        self.clock.now_ms() / WINDOW.as_millis() as u64
    }

    fn correct(&self, name: &str, window: u64, delta: i64) {
        let Ok(mut s) = self.state.lock() else { return };
        if s.window != window {
            return;
        }
        if let Some(n) = s.counts.get_mut(name) {
            *n = n.saturating_add_signed(delta);
        }
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

/// Gateway-wide limits (`RATE_LIMIT_RPM`, `RATE_LIMIT_TPM`), over every caller together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GlobalLimits {
    /// Requests per minute.
    pub rpm: Option<u64>,
    /// Tokens per minute.
    pub tpm: Option<u64>,
}

/// Applies [`RateLimit`].
#[derive(Clone)]
pub struct RateLimitLayer {
    counters: Arc<dyn Counters>,
    global: GlobalLimits,
}

impl std::fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("counters", &self.counters.kind())
            .field("global", &self.global)
            .finish()
    }
}

impl RateLimitLayer {
    /// Limits counted in `counters`, with gateway-wide `global` limits.
    pub fn new(counters: Arc<dyn Counters>, global: GlobalLimits) -> Self {
        Self { counters, global }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            counters: self.counters.clone(),
            global: self.global,
        }
    }
}

/// Refuses requests over their key's or the gateway's rpm/tpm; see the [module docs](self).
#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    counters: Arc<dyn Counters>,
    global: GlobalLimits,
}

impl<S> std::fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("global", &self.global)
            .finish_non_exhaustive()
    }
}

/// The limits `req` must fit in, and which of them count requests.
fn limits_of(req: &ChatRequest, global: GlobalLimits) -> Vec<(Limit, bool)> {
    let key = Grant::of(&req.ctx).and_then(|g| g.key.as_ref());
    let tokens = || req.estimate_prompt_tokens() + req.output_cap().unwrap_or(0);
    let mut out = Vec::new();
    if let Some(k) = key {
        if let Some(max) = k.rpm {
            out.push((
                Limit {
                    name: format!("rpm:{}", k.id),
                    max,
                    cost: 1,
                },
                true,
            ));
        }
        if let Some(max) = k.tpm {
            out.push((
                Limit {
                    name: format!("tpm:{}", k.id),
                    max,
                    cost: tokens(),
                },
                false,
            ));
        }
    }
    if let Some(max) = global.rpm {
        out.push((
            Limit {
                name: "rpm:*".into(),
                max,
                cost: 1,
            },
            true,
        ));
    }
    if let Some(max) = global.tpm {
        out.push((
            Limit {
                name: "tpm:*".into(),
                max,
                cost: tokens(),
            },
            false,
        ));
    }
    out
}

impl<S> Service<ChatRequest> for RateLimit<S>
where
    S: Service<ChatRequest, Response = ChatReply, Error = GatewayError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = ChatReply;
    type Error = GatewayError;
    /// A request without limits goes straight to the inner future (no box, no clone).
    type Future = Either<S::Future, BoxFuture<'static, Result<ChatReply, GatewayError>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        let limits = limits_of(&req, self.global);
        if limits.is_empty() {
            return Either::Left(self.inner.call(req));
        }
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let counters = self.counters.clone();
        Either::Right(Box::pin(async move {
            let plain: Vec<Limit> = limits.iter().map(|(l, _)| l.clone()).collect();
            let window = counters.window();
            let verdict = match counters.hit(&plain).await {
                Ok(v) => v,
                Err(e) => {
                    // A counter store that is down must not take the gateway with it.
                    tracing::warn!("rate limits not applied: {e}");
                    return inner.call(req).await;
                }
            };
            let least = |requests: bool| {
                limits
                    .iter()
                    .zip(&verdict.remaining)
                    .filter(|((_, r), _)| *r == requests)
                    .map(|(_, n)| *n)
                    .min()
            };
            if let Some(g) = Grant::of(&req.ctx) {
                g.set_remaining(least(true), least(false));
            }
            if !verdict.allowed {
                let which: Vec<&str> = limits
                    .iter()
                    .zip(&verdict.remaining)
                    .filter(|((l, _), left)| **left < l.cost)
                    .map(|((l, _), _)| l.name.as_str())
                    .collect();
                return Err(GatewayError::RateLimited {
                    message: format!(
                        "rate limit reached ({}); retry after the window resets",
                        describe(&which)
                    ),
                    retry_after: Some(verdict.reset_in.max(Duration::from_secs(1))),
                });
            }
            let tpm: Vec<String> = limits
                .iter()
                .filter(|(l, requests)| !requests && l.cost > 0)
                .map(|(l, _)| l.name.clone())
                .collect();
            if let (Some(g), false) = (Grant::of(&req.ctx), tpm.is_empty()) {
                let estimate = limits
                    .iter()
                    .find(|(_, requests)| !requests)
                    .map_or(0, |(l, _)| l.cost);
                g.charge_tokens(super::TokenCharge {
                    counters: counters.clone(),
                    names: tpm,
                    window,
                    estimate,
                });
            }
            inner.call(req).await
        }))
    }
}

/// `rpm:key_1` -> "requests per minute of this key", for the message.
fn describe(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| match n.split_once(':') {
            Some(("rpm", "*")) => "the gateway's requests per minute",
            Some(("tpm", "*")) => "the gateway's tokens per minute",
            Some(("rpm", _)) => "this key's requests per minute",
            _ => "this key's tokens per minute",
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(name: &str, max: u64, cost: u64) -> Limit {
        Limit {
            name: name.into(),
            max,
            cost,
        }
    }

    #[tokio::test]
    async fn counts_all_or_nothing_and_the_window_turns() {
        let clock = Arc::new(ManualClock::at(120_000));
        let c = MemoryCounters::new(clock.clone());
        let ls = [limit("rpm:a", 2, 1), limit("tpm:a", 100, 40)];
        let v = c.hit(&ls).await.unwrap();
        assert!(v.allowed);
        assert_eq!(v.remaining, vec![1, 60]);
        let v = c.hit(&ls).await.unwrap();
        assert_eq!((v.allowed, v.remaining.clone()), (true, vec![0, 20]));
        // Over both: nothing counted.
        let v = c.hit(&ls).await.unwrap();
        assert!(!v.allowed);
        assert_eq!(v.remaining, vec![0, 20]);
        assert_eq!(v.reset_in, Duration::from_secs(60));
        clock.advance(Duration::from_secs(59));
        assert!(!c.hit(&ls).await.unwrap().allowed);
        clock.advance(Duration::from_secs(1));
        let v = c.hit(&ls).await.unwrap();
        assert!(v.allowed, "a new window starts from zero");
        assert_eq!(v.remaining, vec![1, 60]);
    }

    #[tokio::test]
    async fn a_limit_without_room_leaves_the_others_untouched() {
        let c = MemoryCounters::new(ManualClock::at(0));
        assert!(
            !c.hit(&[limit("rpm:a", 5, 1), limit("tpm:a", 10, 11)])
                .await
                .unwrap()
                .allowed
        );
        let v = c.hit(&[limit("rpm:a", 5, 1)]).await.unwrap();
        assert_eq!(v.remaining, vec![4]);
    }
}
