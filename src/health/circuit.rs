//! The per-deployment circuit: closed -> open -> half-open -> closed/open, plus the cool-down a
//! 429 with `retry-after` imposes. Shared by every request to the deployment (it lives in its
//! [`DeploymentHealth`]); the [`Breaker`](super::Breaker) drives it and the router reads it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::{BreakerConfig, DeploymentHealth};
use crate::telemetry::names;

/// How long a caller is told to wait while every probe slot of a half-open circuit is taken.
const PROBE_BUSY_RETRY: Duration = Duration::from_secs(1);

/// The circuit's state as the outside world sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CircuitPhase {
    /// Requests flow; consecutive failures are counted.
    Closed,
    /// Requests fail fast until the cool-down ends.
    Open,
    /// A limited number of probes decide between closed and open.
    HalfOpen,
}

impl CircuitPhase {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    /// The `proxygate_circuit_state` value: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::HalfOpen => 1.0,
            Self::Open => 2.0,
        }
    }
}

/// Why a deployment may not be tried right now, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// The circuit is open (or every half-open probe slot is taken).
    Open {
        /// Until the next probe may go.
        retry_in: Duration,
    },
    /// The upstream answered 429 with `retry-after`, and that time has not passed.
    Cooling {
        /// Until the upstream said to come back.
        retry_in: Duration,
    },
}

impl Unavailable {
    /// How long until the deployment may be tried again.
    pub fn retry_in(self) -> Duration {
        match self {
            Self::Open { retry_in } | Self::Cooling { retry_in } => retry_in,
        }
    }
}

/// A point-in-time view of a circuit, for `/admin/circuits`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CircuitSnapshot {
    /// The state.
    pub state: CircuitPhase,
    /// Consecutive deployment failures.
    pub consecutive_failures: u32,
    /// Wall-clock time the circuit last opened, while it is not closed.
    pub opened_at: Option<SystemTime>,
    /// Time until the next probe may go, while open (zero once the cool-down is over).
    pub next_probe_in: Option<Duration>,
    /// Time left of a 429 cool-down.
    pub cooling_for: Option<Duration>,
}

/// A circuit's state as replicas share it (through [`crate::shared`]): open until a wall-clock
/// time, or closed. Half-open is each replica's own business (its probes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedCircuit {
    /// Closed (after a successful probe or a reset).
    Closed,
    /// Open until this many milliseconds after the Unix epoch.
    Open {
        /// When the cool-down ends, wall clock.
        until_ms: u64,
    },
}

/// The state machine of one deployment's circuit.
#[derive(Debug)]
pub struct Circuit {
    id: Arc<str>,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: State,
    failures: u32,
    // Bumped on every transition, so an outcome from before it (a probe of a circuit that was
    // reset meanwhile) cannot move the new state.
    generation: u64,
    opened_at: Option<SystemTime>,
    cooling_until: Option<Instant>,
    // The last local open/close not yet shared with other replicas.
    outbox: Option<SharedCircuit>,
}

#[derive(Clone, Copy, Debug)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: u32, probes: u32 },
}

impl State {
    fn public(self) -> CircuitPhase {
        match self {
            Self::Closed => CircuitPhase::Closed,
            Self::Open { .. } => CircuitPhase::Open,
            Self::HalfOpen { .. } => CircuitPhase::HalfOpen,
        }
    }
}

// === impl Circuit ===

impl Circuit {
    /// A closed circuit for deployment `id`.
    pub fn new(id: Arc<str>) -> Self {
        Self {
            id,
            inner: Mutex::new(Inner {
                state: State::Closed,
                failures: 0,
                generation: 0,
                opened_at: None,
                cooling_until: None,
                outbox: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current state.
    pub fn state(&self) -> CircuitPhase {
        self.lock().state.public()
    }

    /// Whether a request may be sent now, without reserving anything (the router's question).
    /// An open circuit whose cool-down is over is available: the next request is its probe.
    /// A deployment cooling down after a 429 answers `Cooling`: the router tries it only
    /// after every other candidate.
    pub fn availability(&self, now: Instant) -> Result<(), Unavailable> {
        let inner = self.lock();
        if let Some(until) = inner.cooling_until
            && until > now
        {
            return Err(Unavailable::Cooling {
                retry_in: until - now,
            });
        }
        match inner.state {
            State::Closed => Ok(()),
            State::Open { until } if until > now => Err(Unavailable::Open {
                retry_in: until - now,
            }),
            State::Open { .. } => Ok(()),
            State::HalfOpen { in_flight, probes } if in_flight < probes => Ok(()),
            State::HalfOpen { .. } => Err(Unavailable::Open {
                retry_in: PROBE_BUSY_RETRY,
            }),
        }
    }

    /// Reserves the right to send one request: `(is_probe, generation)`.
    fn acquire(&self, config: &BreakerConfig, now: Instant) -> Result<(bool, u64), Unavailable> {
        let mut inner = self.lock();
        // A 429 cool-down is not checked here: the router puts cooling deployments last, and
        // when one is all that is left it is better asked again than refused unasked.
        if inner.cooling_until.is_some_and(|until| until <= now) {
            inner.cooling_until = None;
        }
        match inner.state {
            State::Closed => Ok((false, inner.generation)),
            State::Open { until } if until > now => Err(Unavailable::Open {
                retry_in: until - now,
            }),
            // Open -> half-open: the cool-down is over; this request is the first probe.
            State::Open { .. } => {
                let probes = config.half_open_probes.max(1);
                let generation = self.transition(
                    &mut inner,
                    State::HalfOpen {
                        in_flight: 1,
                        probes,
                    },
                );
                Ok((true, generation))
            }
            State::HalfOpen { in_flight, probes } if in_flight < probes => {
                inner.state = State::HalfOpen {
                    in_flight: in_flight + 1,
                    probes,
                };
                Ok((true, inner.generation))
            }
            State::HalfOpen { .. } => Err(Unavailable::Open {
                retry_in: PROBE_BUSY_RETRY,
            }),
        }
    }

    /// The upstream answered (or a stream's first chunk arrived).
    fn on_success(&self, probe: bool, generation: u64) {
        let mut inner = self.lock();
        match inner.state {
            State::Closed => inner.failures = 0,
            // Half-open -> closed: a probe got through.
            State::HalfOpen { .. } if probe && generation == inner.generation => {
                inner.failures = 0;
                inner.opened_at = None;
                self.transition(&mut inner, State::Closed);
            }
            // Open, or a stale outcome from before the last transition: it decides nothing.
            _ => {}
        }
    }

    /// The deployment failed (`GatewayError::is_deployment_failure`).
    fn on_failure(&self, probe: bool, generation: u64, config: &BreakerConfig, now: Instant) {
        let mut inner = self.lock();
        match inner.state {
            State::Closed => {
                inner.failures = inner.failures.saturating_add(1);
                // Closed -> open: too many consecutive failures.
                if inner.failures >= config.failure_threshold.max(1) {
                    inner.opened_at = Some(SystemTime::now());
                    self.transition(
                        &mut inner,
                        State::Open {
                            until: now + config.cooldown,
                        },
                    );
                }
            }
            // Half-open -> open: the probe failed; a fresh cool-down starts.
            State::HalfOpen { .. } if probe && generation == inner.generation => {
                inner.failures = inner.failures.saturating_add(1);
                inner.opened_at = Some(SystemTime::now());
                self.transition(
                    &mut inner,
                    State::Open {
                        until: now + config.cooldown,
                    },
                );
            }
            _ => {}
        }
    }

    /// A probe ended without an outcome (the caller went away): free its slot.
    fn release_probe(&self, generation: u64) {
        let mut inner = self.lock();
        if let State::HalfOpen { in_flight, probes } = inner.state
            && generation == inner.generation
        {
            inner.state = State::HalfOpen {
                in_flight: in_flight.saturating_sub(1),
                probes,
            };
        }
    }

    /// Skips the deployment until `until` (an upstream 429's `retry-after`).
    pub fn cool_until(&self, until: Instant) {
        let mut inner = self.lock();
        if inner.cooling_until.is_none_or(|u| u < until) {
            inner.cooling_until = Some(until);
            tracing::info!(deployment = %self.id, "upstream rate limited; deployment skipped for {:?}", until.saturating_duration_since(Instant::now()));
        }
    }

    /// Closes the circuit and forgets failures and cool-downs (the admin reset).
    pub fn reset(&self) {
        let mut inner = self.lock();
        inner.failures = 0;
        inner.opened_at = None;
        inner.cooling_until = None;
        // Any state -> closed, by hand.
        self.transition(&mut inner, State::Closed);
    }

    /// The last open or close of this replica that other replicas have not been told of yet.
    pub fn take_outbox(&self) -> Option<SharedCircuit> {
        self.lock().outbox.take()
    }

    /// Adopts the state another replica shared: opens until its wall-clock deadline, or closes.
    /// A local change not yet shared wins (it is newer), and so is kept: returns false then.
    pub fn apply_shared(&self, shared: SharedCircuit) -> bool {
        let mut inner = self.lock();
        if inner.outbox.is_some() {
            return false;
        }
        match (shared, inner.state) {
            // Closed elsewhere (a probe got through, or an admin reset): close here too.
            (SharedCircuit::Closed, State::Closed) => {}
            (SharedCircuit::Closed, _) => {
                inner.failures = 0;
                inner.opened_at = None;
                self.switch(&mut inner, State::Closed, " (shared by another replica)");
            }
            // Opened elsewhere: skip the deployment here until the same deadline.
            (SharedCircuit::Open { until_ms }, _) => {
                let now_ms = wall_ms(Instant::now());
                let until = Instant::now() + Duration::from_millis(until_ms.saturating_sub(now_ms));
                if matches!(inner.state, State::Open { until: u } if u == until) {
                    return true;
                }
                inner.opened_at = Some(SystemTime::now());
                self.switch(
                    &mut inner,
                    State::Open { until },
                    " (shared by another replica)",
                );
            }
        }
        true
    }

    /// What `/admin/circuits` shows.
    pub fn snapshot(&self, now: Instant) -> CircuitSnapshot {
        let inner = self.lock();
        CircuitSnapshot {
            state: inner.state.public(),
            consecutive_failures: inner.failures,
            opened_at: inner.opened_at,
            next_probe_in: match inner.state {
                State::Open { until } => Some(until.saturating_duration_since(now)),
                _ => None,
            },
            cooling_for: inner.cooling_until.filter(|u| *u > now).map(|u| u - now),
        }
    }

    /// Moves to `to`, bumps the generation, logs and publishes the gauge. Returns the new
    /// generation.
    fn transition(&self, inner: &mut Inner, to: State) -> u64 {
        inner.outbox = match to {
            State::Closed => Some(SharedCircuit::Closed),
            State::Open { until } => Some(SharedCircuit::Open {
                until_ms: wall_ms(until),
            }),
            State::HalfOpen { .. } => inner.outbox,
        };
        self.switch(inner, to, "")
    }

    /// Moves to `to` without sharing it (see [`Circuit::apply_shared`]).
    fn switch(&self, inner: &mut Inner, to: State, origin: &'static str) -> u64 {
        let from = inner.state.public();
        inner.state = to;
        inner.generation += 1;
        let to = to.public();
        metrics::gauge!(names::CIRCUIT_STATE, "deployment" => self.id.to_string()).set(to.gauge());
        if from != to {
            tracing::info!(
                deployment = %self.id,
                from = from.as_str(),
                to = to.as_str(),
                failures = inner.failures,
                "circuit {}{origin}",
                to.as_str()
            );
        }
        inner.generation
    }
}

/// A tokio instant as wall-clock milliseconds since the Unix epoch (for sharing deadlines).
fn wall_ms(at: Instant) -> u64 {
    let now = Instant::now();
    let wall = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let ms = if at >= now {
        wall + (at - now)
    } else {
        wall.saturating_sub(now - at)
    };
    ms.as_millis() as u64
}

/// The right to send one request through a circuit, reserved in `call` and moved into the
/// response future. A probe's slot is given back if the permit is dropped without an outcome
/// (the client went away), so a cancelled probe never wedges the circuit half-open.
#[derive(Debug)]
pub struct Permit {
    state: Arc<DeploymentHealth>,
    probe: bool,
    generation: u64,
    settled: bool,
}

// === impl Permit ===

impl Permit {
    /// Reserves a request on `state`'s circuit, or says why not.
    pub fn acquire(
        state: &Arc<DeploymentHealth>,
        config: &BreakerConfig,
        now: Instant,
    ) -> Result<Self, Unavailable> {
        let (probe, generation) = state.circuit().acquire(config, now)?;
        Ok(Self {
            state: state.clone(),
            probe,
            generation,
            settled: false,
        })
    }

    /// Whether this request is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// Reports success.
    pub fn succeed(mut self) {
        self.settled = true;
        self.state.circuit().on_success(self.probe, self.generation);
    }

    /// Reports a deployment failure.
    pub fn fail(mut self, config: &BreakerConfig, now: Instant) {
        self.settled = true;
        self.state
            .circuit()
            .on_failure(self.probe, self.generation, config, now);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.settled && self.probe {
            self.state.circuit().release_probe(self.generation);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(threshold: u32, cooldown_ms: u64, probes: u32) -> BreakerConfig {
        BreakerConfig::default()
            .with_threshold(threshold)
            .with_cooldown(Duration::from_millis(cooldown_ms))
            .with_half_open_probes(probes)
    }

    fn state() -> Arc<DeploymentHealth> {
        Arc::new(DeploymentHealth::new("groq/m"))
    }

    fn fail(s: &Arc<DeploymentHealth>, c: &BreakerConfig) {
        Permit::acquire(s, c, Instant::now())
            .unwrap()
            .fail(c, Instant::now());
    }

    #[tokio::test(start_paused = true)]
    async fn closed_opens_after_threshold_consecutive_failures() {
        let (s, c) = (state(), cfg(3, 1000, 1));
        fail(&s, &c);
        fail(&s, &c);
        assert_eq!(s.circuit().state(), CircuitPhase::Closed);
        assert_eq!(s.circuit().snapshot(Instant::now()).consecutive_failures, 2);
        fail(&s, &c);
        assert_eq!(s.circuit().state(), CircuitPhase::Open);
        let snap = s.circuit().snapshot(Instant::now());
        assert!(snap.opened_at.is_some());
        assert_eq!(snap.next_probe_in, Some(Duration::from_millis(1000)));
        assert_eq!(s.status(), "open");
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_consecutive_count() {
        let (s, c) = (state(), cfg(2, 1000, 1));
        fail(&s, &c);
        Permit::acquire(&s, &c, Instant::now()).unwrap().succeed();
        fail(&s, &c);
        assert_eq!(s.circuit().state(), CircuitPhase::Closed);
        fail(&s, &c);
        assert_eq!(s.circuit().state(), CircuitPhase::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn open_refuses_until_the_cooldown_passes() {
        let (s, c) = (state(), cfg(1, 500, 1));
        fail(&s, &c);
        let err = Permit::acquire(&s, &c, Instant::now()).unwrap_err();
        assert_eq!(
            err,
            Unavailable::Open {
                retry_in: Duration::from_millis(500)
            }
        );
        tokio::time::advance(Duration::from_millis(499)).await;
        assert!(s.circuit().availability(Instant::now()).is_err());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(s.circuit().availability(Instant::now()).is_ok());
        // Still open until a probe actually goes.
        assert_eq!(s.circuit().state(), CircuitPhase::Open);
        let probe = Permit::acquire(&s, &c, Instant::now()).unwrap();
        assert!(probe.is_probe());
        assert_eq!(s.status(), "half_open");
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_admits_exactly_the_configured_probes() {
        let (s, c) = (state(), cfg(1, 100, 2));
        fail(&s, &c);
        tokio::time::advance(Duration::from_millis(100)).await;
        let now = Instant::now();
        let p1 = Permit::acquire(&s, &c, now).unwrap();
        let p2 = Permit::acquire(&s, &c, now).unwrap();
        assert!(p1.is_probe() && p2.is_probe());
        assert!(matches!(
            Permit::acquire(&s, &c, now),
            Err(Unavailable::Open { .. })
        ));
        assert!(s.circuit().availability(now).is_err());
        // A probe dropped without an outcome frees its slot.
        drop(p2);
        let p3 = Permit::acquire(&s, &c, now).unwrap();
        assert!(p3.is_probe());
        drop((p1, p3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_successful_probe_closes() {
        let (s, c) = (state(), cfg(1, 100, 1));
        fail(&s, &c);
        tokio::time::advance(Duration::from_millis(100)).await;
        Permit::acquire(&s, &c, Instant::now()).unwrap().succeed();
        assert_eq!(s.circuit().state(), CircuitPhase::Closed);
        let snap = s.circuit().snapshot(Instant::now());
        assert_eq!((snap.consecutive_failures, snap.opened_at), (0, None));
        assert_eq!(s.status(), "healthy");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens_with_a_fresh_cooldown() {
        let (s, c) = (state(), cfg(1, 100, 1));
        fail(&s, &c);
        tokio::time::advance(Duration::from_millis(250)).await;
        fail(&s, &c); // the probe
        assert_eq!(s.circuit().state(), CircuitPhase::Open);
        assert_eq!(
            s.circuit().snapshot(Instant::now()).next_probe_in,
            Some(Duration::from_millis(100))
        );
        tokio::time::advance(Duration::from_millis(99)).await;
        assert!(Permit::acquire(&s, &c, Instant::now()).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn outcomes_of_non_probes_do_not_decide_half_open() {
        let (s, c) = (state(), cfg(1, 100, 1));
        let old = Permit::acquire(&s, &c, Instant::now()).unwrap(); // taken while closed
        fail(&s, &c);
        tokio::time::advance(Duration::from_millis(100)).await;
        let probe = Permit::acquire(&s, &c, Instant::now()).unwrap();
        old.succeed();
        assert_eq!(s.circuit().state(), CircuitPhase::HalfOpen);
        probe.fail(&c, Instant::now());
        assert_eq!(s.circuit().state(), CircuitPhase::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn cooling_marks_the_deployment_for_the_retry_after() {
        let (s, c) = (state(), cfg(5, 100, 1));
        s.circuit()
            .cool_until(Instant::now() + Duration::from_millis(300));
        assert_eq!(
            s.circuit().availability(Instant::now()),
            Err(Unavailable::Cooling {
                retry_in: Duration::from_millis(300)
            })
        );
        // A shorter retry-after never shortens a cool-down already running.
        s.circuit()
            .cool_until(Instant::now() + Duration::from_millis(10));
        tokio::time::advance(Duration::from_millis(299)).await;
        assert!(s.circuit().availability(Instant::now()).is_err());
        assert!(s.circuit().snapshot(Instant::now()).cooling_for.is_some());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(s.circuit().availability(Instant::now()).is_ok());
        // Cooling is the router's business: the breaker itself lets a request through.
        assert!(Permit::acquire(&s, &c, Instant::now()).is_ok());
        assert_eq!(s.circuit().state(), CircuitPhase::Closed);
        assert_eq!(s.circuit().snapshot(Instant::now()).cooling_for, None);
    }

    #[tokio::test(start_paused = true)]
    async fn reset_closes_and_forgets() {
        let (s, c) = (state(), cfg(1, 10_000, 1));
        fail(&s, &c);
        s.circuit()
            .cool_until(Instant::now() + Duration::from_secs(5));
        s.circuit().reset();
        assert_eq!(s.circuit().state(), CircuitPhase::Closed);
        assert!(Permit::acquire(&s, &c, Instant::now()).is_ok());
        let snap = s.circuit().snapshot(Instant::now());
        assert_eq!(snap.consecutive_failures, 0);
        assert_eq!(snap.cooling_for, None);
    }

    #[tokio::test(start_paused = true)]
    async fn local_opens_and_closes_wait_in_the_outbox_for_other_replicas() {
        let (s, c) = (state(), cfg(1, 1000, 1));
        assert_eq!(s.circuit().take_outbox(), None);
        fail(&s, &c);
        let Some(SharedCircuit::Open { until_ms }) = s.circuit().take_outbox() else {
            panic!("an open circuit is shared");
        };
        let now = wall_ms(Instant::now());
        assert!(
            until_ms >= now + 999 && until_ms <= now + 1001,
            "{until_ms} vs {now}"
        );
        assert_eq!(s.circuit().take_outbox(), None);
        tokio::time::advance(Duration::from_millis(1000)).await;
        let probe = Permit::acquire(&s, &c, Instant::now()).unwrap();
        assert_eq!(s.circuit().take_outbox(), None, "half-open stays local");
        probe.succeed();
        assert_eq!(s.circuit().take_outbox(), Some(SharedCircuit::Closed));
        s.circuit().reset();
        assert_eq!(s.circuit().take_outbox(), Some(SharedCircuit::Closed));
    }

    #[tokio::test(start_paused = true)]
    async fn a_shared_open_skips_the_deployment_until_the_same_deadline() {
        let (s, c) = (state(), cfg(5, 1000, 1));
        let until_ms = wall_ms(Instant::now() + Duration::from_millis(500));
        assert!(s.circuit().apply_shared(SharedCircuit::Open { until_ms }));
        assert_eq!(s.circuit().state(), CircuitPhase::Open);
        assert_eq!(s.circuit().take_outbox(), None, "not echoed back");
        assert!(Permit::acquire(&s, &c, Instant::now()).is_err());
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(s.circuit().availability(Instant::now()).is_ok());
        // Closed elsewhere: closed here, failures forgotten.
        assert!(s.circuit().apply_shared(SharedCircuit::Closed));
        assert_eq!(s.circuit().state(), CircuitPhase::Closed);
        assert_eq!(s.circuit().snapshot(Instant::now()).consecutive_failures, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_local_change_not_yet_shared_wins_over_an_older_shared_state() {
        let (s, c) = (state(), cfg(1, 1000, 1));
        fail(&s, &c);
        assert!(!s.circuit().apply_shared(SharedCircuit::Closed));
        assert_eq!(s.circuit().state(), CircuitPhase::Open);
    }

    #[test]
    fn every_transition_publishes_the_gauge() {
        let recorder = crate::telemetry::build_recorder();
        let handle = recorder.handle();
        let _guard = metrics::set_default_local_recorder(&recorder);
        let (s, c) = (state(), cfg(1, 0, 1));
        let gauge = || {
            handle
                .render()
                .lines()
                .find(|l| l.starts_with("proxygate_circuit_state{deployment=\"groq/m\"}"))
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_owned)
        };
        fail(&s, &c);
        assert_eq!(gauge().as_deref(), Some("2"));
        let probe = Permit::acquire(&s, &c, Instant::now()).unwrap();
        assert_eq!(gauge().as_deref(), Some("1"));
        probe.succeed();
        assert_eq!(gauge().as_deref(), Some("0"));
    }
}
