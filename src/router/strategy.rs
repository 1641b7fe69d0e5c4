//! Routing strategies: how the candidates of one request are ordered.
//!
//! - `priority`: `PROVIDER_PRIORITY` (providers or deployment ids), then catalog order;
//! - `round-robin`: the candidates rotated by one per request;
//! - `latency`: lowest decayed latency first, deployments never measured before all others;
//! - `cost`: cheapest first by the rate table (input + output per 1M tokens);
//! - `weighted`: a random order where each deployment comes first in proportion to its
//!   `ROUTING_WEIGHTS` weight (by deployment id or provider; unlisted ones weigh 1, 0 means
//!   "only when nothing else is left").
//!
//! Ties keep the `PROVIDER_PRIORITY` order, then catalog order. Model names in
//! `PROVIDER_PRIORITY` form a fallback chain ([`RouterConfig::fallbacks`]).

use std::cmp::Ordering;
use std::collections::HashMap;

use rand::Rng;
use tokio::time::Instant;

use crate::catalog::Catalog;
use crate::deployment::Deployment;

/// How the router orders deployments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strategy {
    /// `PROVIDER_PRIORITY` order, then catalog order.
    #[default]
    Priority,
    /// Rotate through the candidates.
    RoundRobin,
    /// Lowest decayed latency first; unknown ones first of all.
    Latency,
    /// Cheapest first, by the rate table.
    Cost,
    /// Random, proportional to configured weights.
    Weighted,
}

impl Strategy {
    /// Parses the `ROUTING_STRATEGY` value.
    pub fn parse(key: &str, v: &str) -> Result<Self, String> {
        match v.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "priority" => Ok(Self::Priority),
            "round-robin" | "roundrobin" => Ok(Self::RoundRobin),
            "latency" => Ok(Self::Latency),
            "cost" => Ok(Self::Cost),
            "weighted" => Ok(Self::Weighted),
            _ => Err(format!(
                "{key}={v:?} is not a strategy; use priority, round-robin, latency, cost or weighted"
            )),
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Priority => "priority",
            Self::RoundRobin => "round-robin",
            Self::Latency => "latency",
            Self::Cost => "cost",
            Self::Weighted => "weighted",
        }
    }
}

/// Routing settings.
#[derive(Clone, Debug, Default)]
pub struct RouterConfig {
    /// How candidates are ordered.
    pub strategy: Strategy,
    /// `PROVIDER_PRIORITY`: providers, deployment ids or models, most preferred first.
    pub priority: Vec<String>,
    /// `ROUTING_WEIGHTS`: weight by deployment id or provider, for the weighted strategy.
    pub weights: HashMap<String, u32>,
}

// === impl RouterConfig ===

impl RouterConfig {
    /// Uses `strategy`.
    pub fn with_strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Sets the priority list.
    pub fn with_priority<I: IntoIterator<Item = S>, S: Into<String>>(mut self, list: I) -> Self {
        self.priority = list.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the weights.
    pub fn with_weights<I: IntoIterator<Item = (S, u32)>, S: Into<String>>(
        mut self,
        weights: I,
    ) -> Self {
        self.weights = weights.into_iter().map(|(k, w)| (k.into(), w)).collect();
        self
    }

    /// Position of a deployment in the priority list (unlisted ones after every listed one).
    fn rank(&self, d: &Deployment) -> usize {
        let id: &str = d.id();
        self.priority
            .iter()
            .position(|p| {
                p == id
                    || p == d.provider().name
                    // `groq#2` names the second key's deployments.
                    || id.strip_prefix(p.as_str()).is_some_and(|rest| rest.starts_with('/'))
            })
            .unwrap_or(self.priority.len())
    }

    fn weight(&self, d: &Deployment) -> u32 {
        self.weights
            .get(&**d.id())
            .or_else(|| self.weights.get(d.provider().name))
            .copied()
            .unwrap_or(1)
    }

    /// The models after `model` in the fallback chain: the `PROVIDER_PRIORITY` entries that
    /// are neither providers nor deployment ids.
    pub fn fallbacks(&self, model: &str, catalog: Catalog) -> Vec<&str> {
        let chain: Vec<&str> = self
            .priority
            .iter()
            .map(String::as_str)
            .filter(|p| !p.contains('/') && !p.contains('#') && catalog.provider(p).is_none())
            .collect();
        match chain.iter().position(|m| *m == model) {
            Some(i) => chain[i + 1..].to_vec(),
            None => Vec::new(),
        }
    }

    /// Orders `candidates` in place. `turn` is this request's round-robin number.
    pub fn order(&self, candidates: &mut [Deployment], turn: usize, now: Instant) {
        self.order_with(candidates, turn, now, &mut rand::rng());
    }

    /// As [`RouterConfig::order`] with a given random source (the weighted strategy's).
    pub fn order_with(
        &self,
        candidates: &mut [Deployment],
        turn: usize,
        now: Instant,
        rng: &mut impl Rng,
    ) {
        self.order_by(self.strategy, candidates, turn, now, rng);
    }

    /// As [`RouterConfig::order_with`] by another strategy (a model group's own), with these
    /// priorities and weights.
    pub fn order_by(
        &self,
        strategy: Strategy,
        candidates: &mut [Deployment],
        turn: usize,
        now: Instant,
        rng: &mut impl Rng,
    ) {
        if candidates.len() < 2 {
            return;
        }
        match strategy {
            Strategy::Priority => candidates.sort_by_key(|d| self.rank(d)),
            Strategy::RoundRobin => {
                let n = candidates.len();
                candidates.rotate_left(turn % n);
            }
            Strategy::Latency => {
                let mut keyed: Vec<(Option<f64>, usize, Deployment)> = candidates
                    .iter()
                    .map(|d| (d.state().latency(now), self.rank(d), d.clone()))
                    .collect();
                // Unknown (never measured) first, so every deployment gets explored.
                keyed.sort_by(|a, b| match (a.0, b.0) {
                    (None, None) => a.1.cmp(&b.1),
                    (None, Some(_)) => Ordering::Less,
                    (Some(_), None) => Ordering::Greater,
                    (Some(x), Some(y)) => x.total_cmp(&y).then(a.1.cmp(&b.1)),
                });
                refill(candidates, keyed.into_iter().map(|k| k.2));
            }
            Strategy::Cost => {
                let mut keyed: Vec<(f64, usize, Deployment)> = candidates
                    .iter()
                    .map(|d| {
                        // A configured model given no prices is not free: it goes last.
                        let rate = d
                            .spec()
                            .and_then(crate::catalog::custom::prices)
                            .map(|(input, output)| input + output)
                            .unwrap_or(f64::INFINITY);
                        (rate, self.rank(d), d.clone())
                    })
                    .collect();
                keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                refill(candidates, keyed.into_iter().map(|k| k.2));
            }
            Strategy::Weighted => {
                // Efraimidis–Spirakis: sorting by u^(1/w) descending draws without replacement
                // with probability proportional to the weights.
                let mut keyed: Vec<(f64, usize, Deployment)> = candidates
                    .iter()
                    .map(|d| {
                        let w = self.weight(d);
                        let key = if w == 0 {
                            -1.0
                        } else {
                            rng.random::<f64>().powf(1.0 / f64::from(w))
                        };
                        (key, self.rank(d), d.clone())
                    })
                    .collect();
                keyed.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                refill(candidates, keyed.into_iter().map(|k| k.2));
            }
        }
    }
}

fn refill(slots: &mut [Deployment], ordered: impl Iterator<Item = Deployment>) {
    for (slot, d) in slots.iter_mut().zip(ordered) {
        *slot = d;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::PROVIDERS;
    use crate::providers::mock::Mock;
    use crate::types::BoxChat;
    use rand::SeedableRng;
    use std::time::Duration;

    fn spec(name: &str) -> &'static crate::catalog::ProviderSpec {
        PROVIDERS.iter().copied().find(|p| p.name == name).unwrap()
    }

    fn dep(provider: &str, model: &str) -> Deployment {
        Deployment::new(
            format!("{provider}/{model}"),
            spec(provider),
            model,
            BoxChat::new(Mock::default()),
        )
    }

    /// groq, together and cerebras serving llama-3.1-8b, in catalog order.
    fn llama() -> Vec<Deployment> {
        vec![
            dep("groq", "llama-3.1-8b-instant"),
            dep("together", "meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo"),
            dep("cerebras", "llama3.1-8b"),
        ]
    }

    fn providers(ds: &[Deployment]) -> Vec<&'static str> {
        ds.iter().map(|d| d.provider().name).collect()
    }

    fn order(cfg: &RouterConfig, ds: &mut [Deployment], turn: usize) {
        cfg.order(ds, turn, Instant::now());
    }

    #[tokio::test(start_paused = true)]
    async fn priority_follows_providers_then_catalog_order() {
        let cfg = RouterConfig::default().with_priority(["cerebras"]);
        let mut ds = llama();
        order(&cfg, &mut ds, 0);
        assert_eq!(providers(&ds), ["cerebras", "groq", "together"]);
        let cfg = RouterConfig::default().with_priority([
            "together/meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo",
            "cerebras",
        ]);
        let mut ds = llama();
        order(&cfg, &mut ds, 0);
        assert_eq!(providers(&ds), ["together", "cerebras", "groq"]);
    }

    #[tokio::test(start_paused = true)]
    async fn round_robin_rotates_per_request() {
        let cfg = RouterConfig::default().with_strategy(Strategy::RoundRobin);
        let firsts: Vec<&str> = (0..4)
            .map(|turn| {
                let mut ds = llama();
                order(&cfg, &mut ds, turn);
                ds[0].provider().name
            })
            .collect();
        assert_eq!(firsts, ["groq", "together", "cerebras", "groq"]);
    }

    #[tokio::test(start_paused = true)]
    async fn latency_explores_unknown_first_then_fastest() {
        let cfg = RouterConfig::default().with_strategy(Strategy::Latency);
        let ds = llama();
        let now = Instant::now();
        ds[0]
            .state()
            .record_latency(Duration::from_millis(300), now);
        ds[1]
            .state()
            .record_latency(Duration::from_millis(100), now);
        let mut ordered = ds.clone();
        order(&cfg, &mut ordered, 0);
        assert_eq!(providers(&ordered), ["cerebras", "together", "groq"]);
        ds[2]
            .state()
            .record_latency(Duration::from_millis(200), now);
        let mut ordered = ds.clone();
        order(&cfg, &mut ordered, 0);
        assert_eq!(providers(&ordered), ["together", "cerebras", "groq"]);
    }

    #[tokio::test(start_paused = true)]
    async fn cost_orders_by_input_plus_output_rate() {
        let cfg = RouterConfig::default().with_strategy(Strategy::Cost);
        let mut ds = llama();
        let rates: Vec<f64> = ds
            .iter()
            .map(|d| d.spec().map(|m| m.input + m.output).unwrap())
            .collect();
        order(&cfg, &mut ds, 0);
        let ordered: Vec<f64> = ds
            .iter()
            .map(|d| d.spec().map(|m| m.input + m.output).unwrap())
            .collect();
        let mut sorted = rates.clone();
        sorted.sort_by(f64::total_cmp);
        assert_eq!(ordered, sorted);
        // A model without a known rate goes last.
        let mut ds = vec![
            dep("groq", "unpriced-model"),
            dep("cerebras", "llama3.1-8b"),
        ];
        order(&cfg, &mut ds, 0);
        assert_eq!(providers(&ds), ["cerebras", "groq"]);
    }

    #[tokio::test(start_paused = true)]
    async fn weighted_picks_first_in_proportion_to_weight() {
        let cfg = RouterConfig::default()
            .with_strategy(Strategy::Weighted)
            .with_weights([("groq", 9u32), ("together", 1), ("cerebras", 0)]);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut groq_first = 0;
        for _ in 0..2000 {
            let mut ds = llama();
            cfg.order_with(&mut ds, 0, Instant::now(), &mut rng);
            assert_eq!(ds[2].provider().name, "cerebras", "weight 0 is always last");
            if ds[0].provider().name == "groq" {
                groq_first += 1;
            }
        }
        let share = f64::from(groq_first) / 2000.0;
        assert!((0.85..0.95).contains(&share), "{share}");
    }

    #[test]
    fn model_names_in_the_priority_list_form_a_chain() {
        let cfg = RouterConfig::default().with_priority([
            "groq",
            "gpt-4o-mini",
            "claude-3.5-sonnet",
            "gemini-2.0-flash",
        ]);
        let c = Catalog::default();
        assert_eq!(
            cfg.fallbacks("gpt-4o-mini", c),
            ["claude-3.5-sonnet", "gemini-2.0-flash"]
        );
        assert_eq!(cfg.fallbacks("gemini-2.0-flash", c), Vec::<&str>::new());
        assert_eq!(cfg.fallbacks("llama-3.1-8b", c), Vec::<&str>::new());
    }
}
