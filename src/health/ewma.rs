//! A peak-sensitive, time-decayed moving average of upstream latency (tower's `peak_ewma`):
//! a slower observation replaces the estimate at once, a faster one pulls it down by how much
//! time passed since the last update, and an idle estimate decays towards zero so a deployment
//! that was slow once is tried again later.

use std::time::Duration;

use tokio::time::Instant;

/// Default decay period.
pub(crate) const DEFAULT_DECAY: Duration = Duration::from_secs(10);

/// Decayed latency of one deployment.
#[derive(Clone, Copy, Debug)]
pub struct Ewma {
    estimate: Option<f64>,
    updated: Option<Instant>,
    decay: Duration,
}

impl Default for Ewma {
    fn default() -> Self {
        Self::new(DEFAULT_DECAY)
    }
}

// === impl Ewma ===

impl Ewma {
    /// An empty average decaying over `decay`.
    pub fn new(decay: Duration) -> Self {
        Self {
            estimate: None,
            updated: None,
            decay,
        }
    }

    fn decay_factor(&self, now: Instant) -> f64 {
        let elapsed = match self.updated {
            Some(at) => now.saturating_duration_since(at).as_secs_f64(),
            None => return 0.0,
        };
        let tau = self.decay.as_secs_f64();
        if tau <= 0.0 {
            return 0.0;
        }
        (-elapsed / tau).exp()
    }

    /// Folds in one observed latency.
    pub fn observe(&mut self, rtt: Duration, now: Instant) {
        let rtt = rtt.as_secs_f64();
        self.estimate = Some(match self.estimate {
            None => rtt,
            // Peak: a slower answer counts in full at once.
            Some(prev) if rtt > prev => rtt,
            Some(prev) => {
                let decay = self.decay_factor(now);
                prev * decay + rtt * (1.0 - decay)
            }
        });
        self.updated = Some(now);
    }

    /// An average that starts from another replica's `estimate` (seconds) as of `at`.
    pub fn seeded(estimate: f64, at: Instant, decay: Duration) -> Self {
        Self {
            estimate: Some(estimate),
            updated: Some(at),
            decay,
        }
    }

    /// The undecayed estimate and when it was last updated, `None` before any observation.
    pub fn sample(&self) -> Option<(f64, Instant)> {
        self.estimate.zip(self.updated)
    }

    /// The estimate in seconds at `now`, decayed towards zero since the last observation;
    /// `None` before any observation.
    pub fn estimate(&self, now: Instant) -> Option<f64> {
        self.estimate.map(|e| e * self.decay_factor(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_until_observed_then_the_first_sample() {
        let mut e = Ewma::new(Duration::from_secs(10));
        assert_eq!(e.estimate(Instant::now()), None);
        e.observe(ms(200), Instant::now());
        assert!((e.estimate(Instant::now()).unwrap() - 0.2).abs() < 1e-9);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slower_sample_is_taken_at_once() {
        let mut e = Ewma::new(Duration::from_secs(10));
        e.observe(ms(100), Instant::now());
        e.observe(ms(900), Instant::now());
        assert!((e.estimate(Instant::now()).unwrap() - 0.9).abs() < 1e-9);
    }

    #[tokio::test(start_paused = true)]
    async fn a_faster_sample_pulls_down_by_elapsed_time() {
        let mut e = Ewma::new(Duration::from_secs(10));
        e.observe(ms(1000), Instant::now());
        tokio::time::advance(Duration::from_secs(10)).await;
        e.observe(ms(0), Instant::now());
        // decay = e^-1: 1.0 * 0.3679 + 0 * 0.6321
        let got = e.estimate(Instant::now()).unwrap();
        assert!((got - (-1.0f64).exp()).abs() < 1e-6, "{got}");
        // Right after an update a faster sample barely moves the estimate.
        e.observe(ms(0), Instant::now());
        assert!((e.estimate(Instant::now()).unwrap() - got).abs() < 1e-9);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_estimate_decays_towards_zero() {
        let mut e = Ewma::new(Duration::from_secs(1));
        e.observe(ms(500), Instant::now());
        tokio::time::advance(Duration::from_secs(1)).await;
        let got = e.estimate(Instant::now()).unwrap();
        assert!((got - 0.5 * (-1.0f64).exp()).abs() < 1e-6, "{got}");
    }
}
