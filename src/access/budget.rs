//! Budgets: a virtual key's spend per period (daily, monthly or total) may not pass its
//! `budget_usd`, even under concurrent requests.
//!
//! Before the call the layer *reserves* the request's most it can cost: the prompt (counted
//! with the tokenizer, or four characters a token if that is more) at the model's input rate
//! plus `max_tokens` (or [`DEFAULT_OUTPUT_RESERVE`]) at its output rate, for the dearest
//! deployment the model may go to. A request whose reservation does not fit next to what is
//! spent and reserved is refused with 429 `insufficient_quota` / `budget_exceeded` and a
//! `retry-after` until the next period starts (none for `total`). After the call the cost
//! layer *settles* the reservation with the real cost (the reply's, a stream's at its end or
//! when the client leaves); a request that never reached it settles at 0. So fifty concurrent
//! requests against a budget that fits ten serve at most ten.
//!
//! A reservation carries the period the request started in, and is settled there: a request
//! that starts before midnight and ends after it is charged to the day it started, and the
//! new period's room is untouched by it.
//!
//! The spend lives behind the [`Budgets`] trait; [`MemoryBudgets`] seeds each key's spend in
//! the current period from the usage store the first time it sees the key, so a restart
//! forgets nothing. It keeps the last [`PERIODS_KEPT`] periods of each key, so a settlement
//! that lands after the period turned still finds its own. With `REDIS_URL`, `crate::shared::RedisBudgets` keeps it in Redis for every
//! replica (one Lua script per reservation), seeded from the usage store the same way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::{BoxFuture, Either};
use tower::{Layer, Service};

use super::limit::{Clock, SystemClock};
use super::{Grant, Period};
use crate::GatewayError;
use crate::cost::RateTable;
use crate::router::Registry;
use crate::types::{ChatReply, ChatRequest};
use crate::usage::{StoreError, StoreFuture, UsageQuery, UsageStore};

/// Output tokens reserved for a request that sets no `max_tokens`.
pub const DEFAULT_OUTPUT_RESERVE: u64 = 4096;

/// Periods of one key [`MemoryBudgets`] keeps: the current one and the one before it, whose
/// requests may still be settling.
pub const PERIODS_KEPT: usize = 2;

/// A reservation against one key's budget in one period.
#[derive(Clone, Debug, PartialEq)]
pub struct Hold {
    /// The key id.
    pub key: Arc<str>,
    /// Start of the period, ms since the epoch (0 for `total`).
    pub period_start: i64,
    /// USD reserved.
    pub amount: f64,
}

/// Spend per key and period, shared by every request.
pub trait Budgets: Send + Sync + 'static {
    /// Reserves `hold.amount` when spent + reserved + amount stays within `limit` (and
    /// something is left); returns the spend so far when it does not fit.
    fn reserve<'a>(&'a self, hold: &'a Hold, limit: f64) -> StoreFuture<'a, Result<(), f64>>;

    /// Replaces the reservation with the real cost. Synchronous, as it runs when a stream is
    /// dropped; an implementation that needs I/O spawns it.
    fn settle(&self, hold: &Hold, actual: f64);

    /// Spent (settled) so far in the period, when known.
    fn spent(&self, key: &str, period_start: i64) -> Option<f64>;

    /// A short name for logs.
    fn kind(&self) -> &'static str;
}

#[derive(Clone, Copy, Debug, Default)]
struct Spend {
    period_start: i64,
    spent: f64,
    reserved: f64,
}

/// The spend of one key in its latest periods (at most [`PERIODS_KEPT`], newest last).
type Periods = Vec<Spend>;

/// Budgets in process memory, seeded from the usage store.
pub struct MemoryBudgets {
    usage: Option<Arc<dyn UsageStore>>,
    spend: Mutex<HashMap<Arc<str>, Periods>>,
}

impl std::fmt::Debug for MemoryBudgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBudgets").finish_non_exhaustive()
    }
}

impl MemoryBudgets {
    /// Budgets that read what a key already spent from `usage` (none: start at 0).
    pub fn new(usage: Option<Arc<dyn UsageStore>>) -> Self {
        Self {
            usage,
            spend: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<Arc<str>, Periods>>, StoreError> {
        self.spend
            .lock()
            .map_err(|_| StoreError("budget lock poisoned".into()))
    }
}

fn period(periods: &mut Periods, start: i64) -> Option<&mut Spend> {
    periods.iter_mut().find(|s| s.period_start == start)
}

impl Budgets for MemoryBudgets {
    fn reserve<'a>(&'a self, hold: &'a Hold, limit: f64) -> StoreFuture<'a, Result<(), f64>> {
        Box::pin(async move {
            let known = self
                .lock()?
                .get_mut(&hold.key)
                .is_some_and(|p| period(p, hold.period_start).is_some());
            if !known {
                // First request of this key in this period here: what did it spend before?
                let spent = match &self.usage {
                    Some(store) => {
                        let q = UsageQuery {
                            since_ms: Some(hold.period_start),
                            key: Some(hold.key.to_string()),
                            ..UsageQuery::default()
                        };
                        store.summary(&q).await?.totals.cost_usd
                    }
                    None => 0.0,
                };
                let mut map = self.lock()?;
                let periods = map.entry(hold.key.clone()).or_default();
                if period(periods, hold.period_start).is_none() {
                    periods.push(Spend {
                        period_start: hold.period_start,
                        spent,
                        reserved: 0.0,
                    });
                    periods.sort_by_key(|s| s.period_start);
                    let extra = periods.len().saturating_sub(PERIODS_KEPT);
                    periods.drain(..extra);
                }
            }
            let mut map = self.lock()?;
            let Some(s) = map
                .get_mut(&hold.key)
                .and_then(|p| period(p, hold.period_start))
            else {
                // A period older than every one kept: it is over, nothing more goes into it.
                return Ok(Err(limit));
            };
            let committed = s.spent + s.reserved;
            if committed >= limit || committed + hold.amount > limit {
                return Ok(Err(s.spent));
            }
            s.reserved += hold.amount;
            Ok(Ok(()))
        })
    }

    fn settle(&self, hold: &Hold, actual: f64) {
        let Ok(mut map) = self.lock() else { return };
        if let Some(s) = map
            .get_mut(&hold.key)
            .and_then(|p| period(p, hold.period_start))
        {
            s.reserved = (s.reserved - hold.amount).max(0.0);
            s.spent += actual.max(0.0);
        }
    }

    fn spent(&self, key: &str, period_start: i64) -> Option<f64> {
        let mut map = self.lock().ok()?;
        map.get_mut(key)
            .and_then(|p| period(p, period_start))
            .map(|s| s.spent)
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

/// Applies [`Budget`].
#[derive(Clone)]
pub struct BudgetLayer {
    budgets: Arc<dyn Budgets>,
    rates: Arc<RateTable>,
    registry: Option<Arc<Registry>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for BudgetLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BudgetLayer")
            .field("budgets", &self.budgets.kind())
            .finish_non_exhaustive()
    }
}

impl BudgetLayer {
    /// Budgets kept in `budgets`, priced with `rates`; `registry` resolves bare model names to
    /// the deployments whose prices bound the reservation.
    pub fn new(
        budgets: Arc<dyn Budgets>,
        rates: Arc<RateTable>,
        registry: Option<Arc<Registry>>,
    ) -> Self {
        Self {
            budgets,
            rates,
            registry,
            clock: Arc::new(SystemClock),
        }
    }

    /// The same layer reading the time (which period a request starts in) from `clock`.
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }
}

impl<S> Layer<S> for BudgetLayer {
    type Service = Budget<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Budget {
            inner,
            layer: self.clone(),
        }
    }
}

/// Reserves before and settles after; see the [module docs](self).
#[derive(Clone)]
pub struct Budget<S> {
    inner: S,
    layer: BudgetLayer,
}

impl<S> std::fmt::Debug for Budget<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget").finish_non_exhaustive()
    }
}

impl BudgetLayer {
    /// The most `req` can cost: for each deployment it may go to, the prompt at the input
    /// rate plus `n` choices of its output cap (`max_tokens`, else the model's output limit
    /// from the catalog, else [`DEFAULT_OUTPUT_RESERVE`]) at the output rate; the dearest
    /// wins. A deployment with no known rate refuses the request (`model_unpriced`).
    fn max_cost(&self, req: &ChatRequest) -> Result<f64, GatewayError> {
        let prompt = crate::tokens::PromptText::of(req)
            .tokens()
            .max(req.estimate_prompt_tokens());
        let choices = u64::from(req.n.unwrap_or(1).max(1));
        let price = |model: &str| -> Option<f64> {
            let rate = self.rates.get(model)?;
            let output = req.output_cap().unwrap_or_else(|| {
                self.rates
                    .max_output(model)
                    .map_or(DEFAULT_OUTPUT_RESERVE, u64::from)
            });
            Some(rate.cost(prompt, 0, output.saturating_mul(choices)))
        };
        let resolved = self
            .registry
            .as_ref()
            .and_then(|r| r.resolve(&req.model).ok())
            .unwrap_or_default();
        if resolved.is_empty() {
            // Not routable here (the router answers that): price what was named, if anything.
            return Ok(price(&req.model).unwrap_or(0.0));
        }
        let mut most = 0.0_f64;
        for d in &resolved {
            match price(d.id()) {
                Some(c) => most = most.max(c),
                None => {
                    return Err(GatewayError::ModelUnpriced {
                        model: d.id().to_string(),
                    });
                }
            }
        }
        Ok(most)
    }
}

impl<S> Service<ChatRequest> for Budget<S>
where
    S: Service<ChatRequest, Response = ChatReply, Error = GatewayError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = ChatReply;
    type Error = GatewayError;
    /// A request without a budget goes straight to the inner future (no box, no clone).
    type Future = Either<S::Future, BoxFuture<'static, Result<ChatReply, GatewayError>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        let grant: Option<Arc<Grant>> = Grant::shared(&req.ctx);
        let Some((grant, limit, period)) = grant.and_then(|g| {
            let k = g.key.clone()?;
            let limit = k.budget_usd?;
            Some((g, limit, k.budget_period.unwrap_or(Period::Total)))
        }) else {
            return Either::Left(self.inner.call(req));
        };
        let amount = match self.layer.max_cost(&req) {
            Ok(a) => a,
            Err(e) => return Either::Right(Box::pin(std::future::ready(Err(e)))),
        };
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let budgets = self.layer.budgets.clone();
        let now = i64::try_from(self.layer.clock.now_ms()).unwrap_or(i64::MAX);
        Either::Right(Box::pin(async move {
            let Some(key) = grant.key.as_ref() else {
                return inner.call(req).await;
            };
            let (period_start, next) = period.bounds(now);
            let hold = Hold {
                key: key.id.clone(),
                period_start,
                amount,
            };
            match budgets.reserve(&hold, limit).await {
                Ok(Ok(())) => grant.hold(budgets.clone(), hold),
                Ok(Err(spent)) => {
                    let when = match next {
                        Some(_) => format!(" until the {} budget renews", period.as_str()),
                        None => String::new(),
                    };
                    return Err(GatewayError::BudgetExceeded {
                        message: format!(
                            "this key's budget of ${limit} ({}) is spent (${spent:.6} used, this request may cost up to ${amount:.6}); no further requests{when}",
                            period.as_str()
                        ),
                        retry_after: next
                            .map(|n| Duration::from_millis((n - now).max(1000) as u64)),
                    });
                }
                Err(e) => {
                    // Without the store the budget cannot be checked: refuse rather than overspend.
                    tracing::warn!("budget check failed: {e}");
                    return Err(GatewayError::Internal(
                        "the budget store could not be read; see the gateway's log".into(),
                    ));
                }
            }
            inner.call(req).await
        }))
    }
}

/// Checks, against `budgets`, that a request which starts in one day and ends in the next is
/// settled in the day it started, leaving the new day's room to the new day's requests.
#[cfg(test)]
pub(crate) async fn check_settlement_in_the_start_period(budgets: Arc<dyn Budgets>, key: &str) {
    use tower::ServiceExt;

    use super::keys::VirtualKey;
    use super::limit::ManualClock;
    use crate::catalog::{Catalog, Rate};

    const DAY: u64 = 86_400_000;
    // One second before midnight (UTC) of day 20_000.
    let clock = Arc::new(ManualClock::at(20_001 * DAY - 1000));
    // $1 per completion token, prompts free: `max_tokens: 1` reserves exactly $1.
    let overrides = HashMap::from([("mock/m".to_owned(), Rate::new(0.0, 1e6))]);
    let rates = Arc::new(RateTable::new(&Catalog::default(), false, &overrides));
    let layer = BudgetLayer::new(budgets.clone(), rates, None).with_clock(clock.clone());
    let (upstream, mut handle) = crate::test_util::pair();
    let mut svc = layer.layer(upstream);
    let vk = Arc::new(VirtualKey {
        id: key.into(),
        name: "daily".into(),
        hash: String::new(),
        prefix: String::new(),
        models: Vec::new(),
        rpm: None,
        tpm: None,
        budget_usd: Some(2.0),
        budget_period: Some(Period::Daily),
        expires_at_ms: None,
        metadata: serde_json::Value::Null,
        created_at_ms: 0,
    });
    let request = |grant: &Arc<Grant>| {
        let mut r: ChatRequest = serde_json::from_value(serde_json::json!({
            "model": "mock/m", "max_tokens": 1,
            "messages": [{"role": "user", "content": "hi"}]
        }))
        .expect("a valid request");
        r.ctx.access = Some(grant.clone());
        r
    };
    let spent_is = |start: i64, want: f64| {
        let budgets = budgets.clone();
        async move {
            for _ in 0..300 {
                if budgets
                    .spent(key, start)
                    .is_some_and(|s| (s - want).abs() < 1e-9)
                {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            false
        }
    };
    let (day, next_day) = ((20_000 * DAY) as i64, (20_001 * DAY) as i64);

    // Starts before midnight and is still running when the day turns.
    let late = Arc::new(Grant::new(Some(vk.clone())));
    let call = svc.ready().await.expect("ready").call(request(&late));
    let running = tokio::spawn(call);
    let (_, answer) = handle.next_request().await.expect("the request went on");
    clock.advance(Duration::from_secs(2));

    // The new day's first request has its full budget.
    let early = Arc::new(Grant::new(Some(vk.clone())));
    let call = svc.ready().await.expect("ready").call(request(&early));
    let second = tokio::spawn(call);
    let (_, answer2) = handle.next_request().await.expect("the request went on");
    answer2.send_response(crate::test_util::reply("mock/m"));
    second.await.expect("joined").expect("served");
    early.settle(1.0);
    assert!(
        spent_is(next_day, 1.0).await,
        "the new day's request is settled"
    );

    // The request of the day before ends now: it is charged to its own day.
    answer.send_response(crate::test_util::reply("mock/m"));
    running.await.expect("joined").expect("served");
    late.settle(1.0);
    assert!(spent_is(day, 1.0).await, "settled in the day it started");
    assert!(spent_is(next_day, 1.0).await, "the new day is untouched");

    // The new day has room for exactly one more $1 request.
    let hold = |amount| Hold {
        key: key.into(),
        period_start: next_day,
        amount,
    };
    assert_eq!(
        budgets.reserve(&hold(1.0), 2.0).await.expect("read"),
        Ok(())
    );
    assert!(
        budgets
            .reserve(&hold(0.5), 2.0)
            .await
            .expect("read")
            .is_err()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(amount: f64) -> Hold {
        Hold {
            key: "k".into(),
            period_start: 0,
            amount,
        }
    }

    #[tokio::test]
    async fn reservations_never_pass_the_limit_and_settling_frees_the_difference() {
        let b = MemoryBudgets::new(None);
        for _ in 0..3 {
            assert_eq!(b.reserve(&hold(3.0), 10.0).await.unwrap(), Ok(()));
        }
        assert!(b.reserve(&hold(3.0), 10.0).await.unwrap().is_err());
        b.settle(&hold(3.0), 1.0);
        assert_eq!(b.spent("k", 0), Some(1.0));
        assert_eq!(b.reserve(&hold(3.0), 10.0).await.unwrap(), Ok(()));
        // Spent plus reserved: 1 + 9 = 10, nothing left even for a free request.
        assert!(b.reserve(&hold(0.0), 10.0).await.unwrap().is_err());
    }

    #[tokio::test]
    async fn a_new_period_starts_from_the_usage_store() {
        let store = Arc::new(crate::usage::MemoryStore::new());
        let b = MemoryBudgets::new(Some(store));
        let h = Hold {
            key: "k".into(),
            period_start: 86_400_000,
            amount: 1.0,
        };
        assert_eq!(b.reserve(&h, 1.0).await.unwrap(), Ok(()));
        b.settle(&h, 1.0);
        assert!(b.reserve(&h, 1.0).await.unwrap().is_err());
        let next = Hold {
            period_start: 2 * 86_400_000,
            ..h
        };
        assert_eq!(b.reserve(&next, 1.0).await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn a_request_is_settled_in_the_period_it_started() {
        check_settlement_in_the_start_period(Arc::new(MemoryBudgets::new(None)), "k").await;
    }

    #[tokio::test]
    async fn a_settlement_two_periods_late_is_dropped_and_old_periods_are_forgotten() {
        let b = MemoryBudgets::new(None);
        let at = |period_start| Hold {
            key: "k".into(),
            period_start,
            amount: 1.0,
        };
        for p in 0..3 {
            assert_eq!(b.reserve(&at(p), 5.0).await.unwrap(), Ok(()));
        }
        assert_eq!(b.spent("k", 0), None);
        b.settle(&at(0), 1.0);
        b.settle(&at(1), 1.0);
        assert_eq!(b.spent("k", 0), None);
        assert_eq!(b.spent("k", 1), Some(1.0));
        assert_eq!(b.spent("k", 2), Some(0.0));
        assert!(b.reserve(&at(0), 5.0).await.unwrap().is_err());
    }
}
