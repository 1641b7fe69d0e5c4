//! The rate table: USD per 1M tokens for every catalog model, dated, overridable, and the
//! arithmetic of a [`Rate`].

use std::collections::HashMap;

use crate::catalog::{Catalog, Tier};
use crate::catalog::{RATES_DATE, Rate};
use crate::types::Usage;
pub use crate::usage::CostBreakdown;

impl Rate {
    /// Prompt tokens at the input rate (cached ones at the cached rate) plus completion tokens
    /// at the output rate.
    pub fn cost(&self, prompt: u64, cached: u64, completion: u64) -> f64 {
        let mut u = Usage::new(prompt, completion);
        if cached > 0 {
            u.set_cache(cached, 0, 0);
        }
        self.cost_of(&u)
    }

    /// The cost of `usage`, per meter. Prompt tokens count once: those read from the cache at
    /// the cached rate, those written to it at the write rate of their lifetime (5-minute
    /// writes at `cache_write`, 1-hour ones at `cache_write_1h`), the rest at the input rate.
    /// A rate without a cache price charges those tokens at the input rate.
    pub fn breakdown(&self, usage: &Usage) -> CostBreakdown {
        let prompt = usage.prompt_tokens;
        let cached = usage.cached_tokens().min(prompt);
        let write = usage.cache_write_tokens().min(prompt - cached);
        let write_1h = usage
            .prompt_tokens_details
            .as_ref()
            .map_or(0, |d| d.cache_write_1h_tokens)
            .min(write);
        let fresh = prompt - cached - write;
        let write_5m_rate = self.cache_write.unwrap_or(self.input);
        let write_1h_rate = self.cache_write_1h.unwrap_or(write_5m_rate);
        let per = |n: u64, rate: f64| n as f64 * rate / 1_000_000.0;
        CostBreakdown {
            input: per(fresh, self.input),
            cached_input: per(cached, self.cached_input.unwrap_or(self.input)),
            cache_write: per(write - write_1h, write_5m_rate) + per(write_1h, write_1h_rate),
            output: per(usage.completion_tokens, self.output),
        }
    }

    /// The cost of `usage`: the sum of its [`breakdown`](Self::breakdown).
    pub fn cost_of(&self, usage: &Usage) -> f64 {
        self.breakdown(usage).total()
    }
}

/// `usage.prompt_tokens_details.cached_tokens`, 0 when absent.
pub fn cached_tokens(usage: &Usage) -> u64 {
    usage.cached_tokens()
}

/// Whether `suffix` (what follows a catalog id in a longer model id) is a date or version:
/// `-2024-08-06`, `-20250929`, `-0125`, `-2411`, `-001`, `-v2`, `-v1.5`, `-latest`, or
/// `@20250514` (Vertex style).
pub fn is_version_suffix(suffix: &str) -> bool {
    let Some(rest) = suffix
        .strip_prefix('-')
        .or_else(|| suffix.strip_prefix('@'))
    else {
        return false;
    };
    let digits = |t: &str, n: usize| t.len() == n && t.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = rest.split('-').collect();
    match parts.as_slice() {
        [y, m, d] => digits(y, 4) && digits(m, 2) && digits(d, 2),
        [one] => {
            digits(one, 8)
                || digits(one, 4)
                || digits(one, 3)
                || *one == "latest"
                || one.strip_prefix('v').is_some_and(|v| {
                    !v.is_empty()
                        && v.split('.')
                            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                })
        }
        _ => false,
    }
}

/// Prices by model (every catalog model and alias of every provider), with config overrides
/// applied. A deployment id is priced by its model, whatever key serves it
/// (`openai#2/gpt-4o` costs what `openai/gpt-4o` costs), and a dated or versioned id by its
/// family (the longest catalog id it begins with, followed by a date or version suffix).
#[derive(Clone, Debug, Default)]
pub struct RateTable {
    rates: FastMap<String, Rate>,
    /// Per provider: its model ids with their rates, longest first (family lookups).
    families: FastMap<String, Vec<(String, Rate)>>,
    /// Providers whose every model is free (keyless tiers).
    free: Vec<&'static str>,
    /// Context window and output limit by `provider/model`, for reservations.
    limits: FastMap<String, u32>,
    /// The table that replaced this one on a configuration reload, when there was one.
    next: std::sync::Arc<arc_swap::ArcSwapOption<RateTable>>,
}

/// The table's maps: looked up on every request, filled from the catalog and the
/// configuration only, so a fast hasher without flooding resistance fits them.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// `provider/model` with the `#n` of an extra key dropped from the provider.
fn model_key(deployment: &str) -> Option<(&str, &str)> {
    let (provider, model) = deployment.split_once('/')?;
    let provider = provider.split_once('#').map_or(provider, |(p, _)| p);
    Some((provider, model))
}

impl RateTable {
    /// The built-in table from `catalog`. Keyless and free-key providers cost 0 unless
    /// `list_free_tiers` (their list prices then apply); `overrides` win over everything.
    pub fn new(
        catalog: &Catalog,
        list_free_tiers: bool,
        overrides: &HashMap<String, Rate>,
    ) -> Self {
        let mut rates = FastMap::default();
        let mut limits = FastMap::default();
        let mut free = Vec::new();
        for spec in catalog.providers() {
            let zero = matches!(spec.tier, Tier::Keyless | Tier::FreeKey) && !list_free_tiers;
            if spec.tier == Tier::Keyless {
                free.push(spec.name);
            }
            for m in spec.models {
                // A configured deployment's model without prices stays unpriced (a keyless
                // deployment's still costs 0, as every keyless provider's).
                if !zero && crate::catalog::custom::is_unpriced(m) {
                    continue;
                }
                let rate = if zero {
                    Rate::default()
                } else {
                    Rate {
                        input: m.input,
                        output: m.output,
                        cached_input: m.cached_input,
                        cache_write: m.cache_write,
                        cache_write_1h: m.cache_write_1h,
                    }
                };
                let key = format!("{}/{}", spec.name, m.id);
                if let Some(max) = m.max_output {
                    limits.insert(key.clone(), max);
                }
                rates.insert(key, rate);
                for alias in m.aliases {
                    let key = format!("{}/{alias}", spec.name);
                    if let Some(max) = m.max_output {
                        limits.entry(key.clone()).or_insert(max);
                    }
                    rates.entry(key).or_insert(rate);
                }
            }
        }
        for (k, v) in overrides {
            rates.insert(k.clone(), *v);
        }
        let mut families: FastMap<String, Vec<(String, Rate)>> = FastMap::default();
        for (k, r) in &rates {
            if let Some((p, m)) = k.split_once('/') {
                families
                    .entry(p.to_owned())
                    .or_default()
                    .push((m.to_owned(), *r));
            }
        }
        for v in families.values_mut() {
            v.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        }
        Self {
            rates,
            families,
            free,
            limits,
            next: Default::default(),
        }
    }

    /// Replaces the prices with `next`'s (a configuration reload); every holder of this table
    /// sees them from its next lookup on.
    pub fn replace(&self, next: RateTable) {
        self.next.store(Some(std::sync::Arc::new(next)));
    }

    /// The rate of a deployment (`provider/model`, `provider#n/model`): the model's own, else
    /// its family's, else 0 on a keyless provider. `None`: the model is unpriced.
    pub fn get(&self, deployment: &str) -> Option<Rate> {
        if let Some(next) = &*self.next.load() {
            return next.get(deployment);
        }
        let Some((provider, model)) = model_key(deployment) else {
            return self.rates.get(deployment).copied();
        };
        // `provider/model` is the deployment id itself unless it carries a `#n` (no key to
        // build on the request path then).
        let direct = if provider.len() + 1 + model.len() == deployment.len() {
            self.rates.get(deployment)
        } else {
            self.rates.get(&format!("{provider}/{model}"))
        };
        if let Some(r) = direct {
            return Some(*r);
        }
        if let Some(r) = self.family(provider, model) {
            return Some(*r);
        }
        self.free.contains(&provider).then_some(Rate::new(0.0, 0.0))
    }

    fn family(&self, provider: &str, model: &str) -> Option<&Rate> {
        self.families.get(provider)?.iter().find_map(|(id, r)| {
            (model.len() > id.len()
                && model.starts_with(id.as_str())
                && is_version_suffix(&model[id.len()..]))
            .then_some(r)
        })
    }

    /// The most completion tokens one answer of a deployment's model may have, when the
    /// catalog knows it (a dated id takes its family's).
    pub fn max_output(&self, deployment: &str) -> Option<u32> {
        if let Some(next) = &*self.next.load() {
            return next.max_output(deployment);
        }
        let (provider, model) = model_key(deployment)?;
        if let Some(n) = self.limits.get(&format!("{provider}/{model}")) {
            return Some(*n);
        }
        let (id, _) = self.families.get(provider)?.iter().find(|(id, _)| {
            model.len() > id.len()
                && model.starts_with(id.as_str())
                && is_version_suffix(&model[id.len()..])
        })?;
        self.limits.get(&format!("{provider}/{id}")).copied()
    }

    /// Every priced `provider/model`, sorted.
    pub fn entries(&self) -> Vec<(&str, &Rate)> {
        let mut v: Vec<(&str, &Rate)> = self.rates.iter().map(|(k, r)| (k.as_str(), r)).collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v
    }

    /// The table as JSON: its date and every rate (`GET /admin/rates`, `proxygate rates`).
    pub fn to_json(&self) -> serde_json::Value {
        if let Some(next) = &*self.next.load() {
            return next.to_json();
        }
        let models: serde_json::Map<String, serde_json::Value> = self
            .entries()
            .into_iter()
            .map(|(k, r)| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                if let (Some(o), Some(max)) = (v.as_object_mut(), self.limits.get(k)) {
                    o.insert("max_output_tokens".into(), (*max).into());
                }
                (k.to_owned(), v)
            })
            .collect();
        serde_json::json!({
            "date": self.date(),
            "unit": "USD per 1M tokens",
            "free_providers": self.free,
            "models": models,
        })
    }

    /// The table as text, one model a line.
    pub fn to_text(&self) -> String {
        if let Some(next) = &*self.next.load() {
            return next.to_text();
        }
        use std::fmt::Write;
        let mut out = format!(
            "rates of {} (USD per 1M tokens; keyless providers: {})\n{:<58} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
            self.date(),
            self.free.join(", "),
            "model",
            "input",
            "output",
            "cached",
            "write 5m",
            "write 1h"
        );
        let opt = |o: Option<f64>| o.map_or_else(|| "-".to_owned(), |v| format!("{v}"));
        for (k, r) in self.entries() {
            let _ = writeln!(
                out,
                "{k:<58} {:>10} {:>10} {:>10} {:>10} {:>10}",
                r.input,
                r.output,
                opt(r.cached_input),
                opt(r.cache_write),
                opt(r.cache_write_1h)
            );
        }
        out
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
        let r = table().get("openai/gpt-4o-mini").unwrap();
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
        let sonnet = t.get("anthropic/claude-sonnet-4-20250514").unwrap();
        // 2,000 x $3 + 1,000 x $15 per 1M = 0.006 + 0.015.
        assert!((sonnet.cost(2_000, 0, 1_000) - 0.021).abs() < 1e-12);
        let flash = t.get("gemini/gemini-2.0-flash").unwrap();
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

    #[test]
    fn every_key_and_dated_id_of_a_model_costs_its_rate() {
        let t = table();
        let base = t.get("openai/gpt-4o").unwrap();
        assert_eq!(t.get("openai#2/gpt-4o"), Some(base));
        assert_eq!(t.get("openai#3/gpt-4o-2024-08-06"), Some(base));
        let sonnet = t.get("anthropic/claude-sonnet-4-5").unwrap();
        // The longest family wins: claude-sonnet-4-5, not claude-sonnet-4.
        assert_eq!(t.get("anthropic/claude-sonnet-4-5-20250929"), Some(sonnet));
        assert_eq!(
            t.get("gemini/gemini-2.5-flash-001"),
            t.get("gemini/gemini-2.5-flash")
        );
        // A different model that merely starts like a known one is not priced as it.
        assert_eq!(t.get("anthropic/claude-sonnet-4-6"), None);
        assert_eq!(t.get("openai/gpt-4o-audio-preview"), None);
        // Keyless providers cost 0 whatever the model.
        assert_eq!(t.get("ollama/some-local-model").map(|r| r.input), Some(0.0));
        assert_eq!(t.max_output("openai#2/gpt-4o-2024-08-06"), Some(16_384));
        assert_eq!(t.max_output("openai/unknown"), None);
    }

    #[test]
    fn version_suffixes() {
        for ok in [
            "-2024-08-06",
            "-20250929",
            "-0125",
            "-001",
            "-v2",
            "-v1.5",
            "-latest",
            "@20250514",
        ] {
            assert!(is_version_suffix(ok), "{ok}");
        }
        for no in [
            "-mini",
            "-5",
            "-5-20250929",
            "-preview",
            "",
            "-v",
            "-v1.",
            "2024",
        ] {
            assert!(!is_version_suffix(no), "{no}");
        }
    }

    #[test]
    fn the_breakdown_prices_each_meter_and_adds_up() {
        let sonnet = table().get("anthropic/claude-sonnet-4-5").unwrap();
        let mut u = Usage::new(3_100, 50);
        u.set_cache(2_000, 1_000, 600);
        let b = sonnet.breakdown(&u);
        // 100 fresh x $3; 2,000 read x $0.30; 400 x $3.75 + 600 x $6; 50 x $15 (per 1M).
        assert!((b.input - 0.000_3).abs() < 1e-12, "{b:?}");
        assert!((b.cached_input - 0.000_6).abs() < 1e-12, "{b:?}");
        assert!((b.cache_write - (0.001_5 + 0.003_6)).abs() < 1e-12, "{b:?}");
        assert!((b.output - 0.000_75).abs() < 1e-12, "{b:?}");
        assert!((b.total() - sonnet.cost_of(&u)).abs() < 1e-15);
        // Meters larger than the prompt are bounded by it.
        let mut odd = Usage::new(10, 0);
        odd.set_cache(8, 50, 50);
        let b = sonnet.breakdown(&odd);
        assert!(
            (b.total() - (8.0 * 0.3 + 2.0 * 6.0) / 1e6).abs() < 1e-15,
            "{b:?}"
        );
    }

    /// The xAI and Mistral models with a published LiteLLM price are in the table at it;
    /// the newer ids with no price from that source (`grok-4`, `grok-4.3`, `grok-code-fast-1`,
    /// `codestral-latest`, `devstral-*`, `magistral-*`) stay unpriced: recorded at 0, flagged,
    /// refused to budgeted keys until `RATE_OVERRIDES` prices them.
    #[test]
    fn xai_and_mistral_are_priced_where_a_price_is_known_and_unpriced_elsewhere() {
        // Mistral's free tier costs 0 unless its list prices are asked for.
        let t = RateTable::new(&Catalog::default(), true, &HashMap::new());
        for (id, input, output) in [
            ("xai/grok-3", 3.00, 15.00),
            ("xai/grok-3-mini", 0.30, 0.50),
            ("xai/grok-4.20-0309-non-reasoning", 1.25, 2.50),
            ("mistral/mistral-small-latest", 0.15, 0.60),
            ("mistral/mistral-large-latest", 0.50, 1.50),
            ("mistral/mistral-medium-latest", 1.50, 7.50),
        ] {
            let r = t.get(id).unwrap_or_else(|| panic!("{id} is priced"));
            assert_eq!((r.input, r.output), (input, output), "{id}");
        }
        for id in [
            "xai/grok-4",
            "xai/grok-4.3",
            "xai/grok-code-fast-1",
            "mistral/codestral-latest",
            "mistral/devstral-medium-latest",
            "mistral/magistral-medium-latest",
        ] {
            assert!(t.get(id).is_none(), "{id} has no known price");
        }
    }
}
