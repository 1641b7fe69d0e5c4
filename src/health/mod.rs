//! Per-deployment health: what outlives single requests.
//!
//! [`DeploymentHealth`] holds the circuit breaker's state machine ([`Circuit`]) and the decayed
//! latency the `latency` routing strategy reads ([`Ewma`]). The breaker layer writes both; the
//! router, the shared backends and the admin/health endpoints read them.

mod circuit;
pub mod ewma;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

pub use circuit::{Circuit, CircuitPhase, CircuitSnapshot, Permit, SharedCircuit, Unavailable};
pub use ewma::Ewma;

/// Breaker settings (defaults: 5 failures, 30 s, 1 probe).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// How long an open circuit waits before probing.
    pub cooldown: Duration,
    /// Probes allowed at once while half-open.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            cooldown: Duration::from_secs(30),
            half_open_probes: 1,
        }
    }
}

// === impl BreakerConfig ===

impl BreakerConfig {
    /// Consecutive failures that open the circuit (at least 1).
    pub fn with_threshold(mut self, n: u32) -> Self {
        self.failure_threshold = n.max(1);
        self
    }

    /// The cool-down of an open circuit.
    pub fn with_cooldown(mut self, d: Duration) -> Self {
        self.cooldown = d;
        self
    }

    /// Concurrent probes while half-open (at least 1).
    pub fn with_half_open_probes(mut self, n: u32) -> Self {
        self.half_open_probes = n.max(1);
        self
    }
}

/// Per-deployment health that routing and the breaker read and update.
#[derive(Debug)]
pub struct DeploymentHealth {
    id: Arc<str>,
    circuit: Circuit,
    latency: Mutex<Ewma>,
    // The latest estimate another replica shared (see `crate::shared`).
    shared_latency: Mutex<Option<Ewma>>,
}

// === impl DeploymentHealth ===

impl DeploymentHealth {
    /// Fresh state (circuit closed, latency unknown) for the deployment `id`.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        let id = id.into();
        Self {
            circuit: Circuit::new(id.clone()),
            latency: Mutex::new(Ewma::default()),
            shared_latency: Mutex::new(None),
            id,
        }
    }

    /// The deployment id.
    pub fn id(&self) -> &Arc<str> {
        &self.id
    }

    /// The circuit breaker's state machine.
    pub fn circuit(&self) -> &Circuit {
        &self.circuit
    }

    /// `healthy`, `open` or `half_open`, as `/v1/models` and `/health` show it.
    pub fn status(&self) -> &'static str {
        match self.circuit.state() {
            CircuitPhase::Closed => "healthy",
            CircuitPhase::Open => "open",
            CircuitPhase::HalfOpen => "half_open",
        }
    }

    /// Folds one upstream latency (to the answer or first chunk) into the decayed average.
    pub fn record_latency(&self, rtt: Duration, now: Instant) {
        self.latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(rtt, now);
    }

    /// The decayed latency in seconds, `None` before the first observation: this replica's
    /// own, or another replica's when that one is more recent.
    pub fn latency(&self, now: Instant) -> Option<f64> {
        let local = *self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let shared = *self
            .shared_latency
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match (
            local.sample(),
            shared.and_then(|s| s.sample().map(|x| (s, x))),
        ) {
            (Some((_, mine)), Some((theirs, (_, at)))) if at > mine => theirs.estimate(now),
            (None, Some((theirs, _))) => theirs.estimate(now),
            _ => local.estimate(now),
        }
    }

    /// This replica's own undecayed estimate (seconds) and when it was last updated.
    pub fn latency_sample(&self) -> Option<(f64, Instant)> {
        self.latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sample()
    }

    /// Takes in another replica's estimate (seconds) as of `at`.
    pub fn set_shared_latency(&self, estimate: f64, at: Instant) {
        *self
            .shared_latency
            .lock()
            .unwrap_or_else(|e| e.into_inner()) =
            Some(Ewma::seeded(estimate, at, ewma::DEFAULT_DECAY));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_fresher_of_own_and_shared_latency_is_used() {
        let s = DeploymentHealth::new("groq/m");
        assert_eq!(s.latency(Instant::now()), None);
        // Another replica measured it: a deployment never called here is no longer unknown.
        s.set_shared_latency(0.5, Instant::now());
        assert!((s.latency(Instant::now()).unwrap() - 0.5).abs() < 1e-9);
        tokio::time::advance(Duration::from_millis(10)).await;
        s.record_latency(Duration::from_millis(100), Instant::now());
        assert!((s.latency(Instant::now()).unwrap() - 0.1).abs() < 1e-9);
        assert!(s.latency_sample().is_some());
        tokio::time::advance(Duration::from_millis(10)).await;
        s.set_shared_latency(0.3, Instant::now());
        assert!((s.latency(Instant::now()).unwrap() - 0.3).abs() < 1e-9);
    }
}
