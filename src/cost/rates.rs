//! The rate table: USD per 1M tokens for every catalog model, dated, overridable, and the
//! arithmetic of a [`Rate`].

use std::collections::HashMap;

use crate::catalog::{Catalog, Tier};
use crate::catalog::{RATES_DATE, Rate};
use crate::types::Usage;

impl Rate {
    /// Prompt tokens at the input rate (cached ones at the cached rate) plus completion tokens
    /// at the output rate.
    pub fn cost(&self, prompt: u64, cached: u64, completion: u64) -> f64 {
        let cached = cached.min(prompt);
        let fresh = prompt - cached;
        (fresh as f64 * self.input
            + cached as f64 * self.cached_input.unwrap_or(self.input)
            + completion as f64 * self.output)
            / 1_000_000.0
    }

    /// The cost of `usage`.
    pub fn cost_of(&self, usage: &Usage) -> f64 {
        self.cost(
            usage.prompt_tokens,
            cached_tokens(usage),
            usage.completion_tokens,
        )
    }
}

/// `usage.prompt_tokens_details.cached_tokens`, 0 when absent.
pub fn cached_tokens(usage: &Usage) -> u64 {
    usage.cached_tokens()
}

/// Prices by `provider/model` (every catalog model and alias), with config overrides applied.
#[derive(Clone, Debug, Default)]
pub struct RateTable {
    rates: HashMap<String, Rate>,
}

impl RateTable {
    /// The built-in table from `catalog`. Keyless and free-key providers cost 0 unless
    /// `list_free_tiers` (their list prices then apply); `overrides` win over everything.
    pub fn new(
        catalog: &Catalog,
        list_free_tiers: bool,
        overrides: &HashMap<String, Rate>,
    ) -> Self {
        let mut rates = HashMap::new();
        for spec in catalog.providers() {
            let free = matches!(spec.tier, Tier::Keyless | Tier::FreeKey) && !list_free_tiers;
            for m in spec.models {
                let rate = if free {
                    Rate::default()
                } else {
                    Rate {
                        input: m.input,
                        output: m.output,
                        cached_input: m.cached_input,
                    }
                };
                rates.insert(format!("{}/{}", spec.name, m.id), rate);
                for alias in m.aliases {
                    rates
                        .entry(format!("{}/{alias}", spec.name))
                        .or_insert(rate);
                }
            }
        }
        for (k, v) in overrides {
            rates.insert(k.clone(), *v);
        }
        Self { rates }
    }

    /// The rate of a deployment (`provider/model`); unknown models cost 0.
    pub fn get(&self, model: &str) -> Option<&Rate> {
        self.rates.get(model)
    }

    /// The date of the built-in prices.
    pub fn date(&self) -> &'static str {
        RATES_DATE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RateTable {
        RateTable::new(&Catalog::default(), false, &HashMap::new())
    }

    // Hand-computed figures: prompt x input rate + completion x output rate.
    #[test]
    fn gpt_4o_mini_at_15_and_60_cents() {
        let r = *table().get("openai/gpt-4o-mini").unwrap();
        // 1,000 prompt tokens at $0.15/1M = $0.00015; 500 completion at $0.60/1M = $0.0003.
        let c = r.cost(1_000, 0, 500);
        assert!((c - 0.000_45).abs() < 1e-12, "{c}");
        // 400 of the 1,000 prompt tokens cached at $0.075/1M: 600*0.15 + 400*0.075 + 500*0.6 = 420 µ$.
        let c = r.cost(1_000, 400, 500);
        assert!((c - 0.000_42).abs() < 1e-12, "{c}");
    }

    #[test]
    fn claude_sonnet_and_gemini_flash() {
        let t = table();
        let sonnet = *t.get("anthropic/claude-sonnet-4-20250514").unwrap();
        // 2,000 x $3 + 1,000 x $15 per 1M = 0.006 + 0.015.
        assert!((sonnet.cost(2_000, 0, 1_000) - 0.021).abs() < 1e-12);
        let flash = *t.get("gemini/gemini-2.0-flash").unwrap();
        // 10,000 x $0.10 + 2,500 x $0.40 per 1M = 0.001 + 0.001.
        assert!((flash.cost(10_000, 0, 2_500) - 0.002).abs() < 1e-12);
    }

    #[test]
    fn free_tiers_cost_nothing_unless_listed_and_overrides_win() {
        let t = table();
        assert_eq!(
            t.get("groq/llama-3.1-8b-instant")
                .unwrap()
                .cost(1_000_000, 0, 1_000_000),
            0.0
        );
        assert_eq!(t.get("mock/echo").unwrap().cost(1_000, 0, 1_000), 0.0);
        let listed = RateTable::new(&Catalog::default(), true, &HashMap::new());
        let g = listed.get("groq/llama-3.1-8b-instant").unwrap();
        assert!((g.cost(1_000_000, 0, 1_000_000) - 0.13).abs() < 1e-9);
        let o: HashMap<String, Rate> = [(
            "openai/gpt-4o-mini".to_owned(),
            Rate::parse("1/2/0.5").unwrap(),
        )]
        .into();
        let t = RateTable::new(&Catalog::default(), false, &o);
        assert!((t.get("openai/gpt-4o-mini").unwrap().cost(1_000_000, 0, 0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn cached_tokens_come_from_prompt_details() {
        let u: Usage = serde_json::from_value(serde_json::json!({
            "prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11,
            "prompt_tokens_details": {"cached_tokens": 4}
        }))
        .unwrap();
        assert_eq!(cached_tokens(&u), 4);
    }
}
