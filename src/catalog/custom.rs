//! Catalog lines made at run time for the deployments of the config file (`[[deployments]]`).
//!
//! The rest of the gateway holds provider lines as `&'static ProviderSpec`, so a configured
//! deployment's line is allocated once and kept for the life of the process. Lines are interned
//! by their content: loading the same file again (a reload that changed nothing, or changed
//! other deployments) reuses the lines it made before instead of allocating new ones.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use super::{Catalog, Enable, Format, ModelSpec, PROVIDERS, ProviderSpec, Tier, chat};

/// One model of a configured deployment, with its prices (USD per 1M tokens).
#[derive(Clone, Debug, PartialEq)]
pub struct CustomModel {
    /// The model id, sent upstream exactly as written.
    pub id: String,
    /// USD per 1M input tokens.
    pub input: f64,
    /// USD per 1M output tokens.
    pub output: f64,
    /// USD per 1M cached input tokens.
    pub cached_input: Option<f64>,
    /// Whether the file gave its prices; without them the model is unpriced (recorded with
    /// cost 0 and `unpriced`, refused to keys with a budget), unless its tier is free.
    pub priced: bool,
}

/// What a run-time catalog line is made of.
#[derive(Clone, Debug, PartialEq)]
pub struct CustomProvider {
    /// The provider name (the deployment's `name`).
    pub name: String,
    /// Who pays.
    pub tier: Tier,
    /// The wire format.
    pub format: Format,
    /// The models it serves.
    pub models: Vec<CustomModel>,
}

impl CustomProvider {
    fn key(&self) -> String {
        let mut k = format!("{}|{:?}|{:?}", self.name, self.tier, self.format);
        for m in &self.models {
            k.push_str(&format!(
                "|{}={}/{}/{:?}/{}",
                m.id, m.input, m.output, m.cached_input, m.priced
            ));
        }
        k
    }
}

fn leak_str(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

/// The interned lines, and the interned catalogs made of them.
#[derive(Default)]
struct Interned {
    specs: HashMap<String, &'static ProviderSpec>,
    catalogs: HashMap<Vec<usize>, &'static [&'static ProviderSpec]>,
    /// The model lines made without prices, by address.
    unpriced: std::collections::HashSet<usize>,
}

fn interned() -> &'static Mutex<Interned> {
    static CELL: OnceLock<Mutex<Interned>> = OnceLock::new();
    CELL.get_or_init(Mutex::default)
}

/// The catalog line of a configured deployment (made once per distinct content).
pub fn custom_provider(def: &CustomProvider) -> &'static ProviderSpec {
    let key = def.key();
    let mut cache = interned().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(spec) = cache.specs.get(&key) {
        return spec;
    }
    let models: Vec<ModelSpec> = def
        .models
        .iter()
        .map(|m| {
            let mut spec = chat(leak_str(&m.id), &[], 128_000, m.input, m.output);
            spec.cached_input = m.cached_input;
            spec
        })
        .collect();
    let models: &'static [ModelSpec] = Box::leak(models.into_boxed_slice());
    for (line, def) in models.iter().zip(&def.models) {
        if !def.priced {
            cache.unpriced.insert(line as *const ModelSpec as usize);
        }
    }
    let spec: &'static ProviderSpec = Box::leak(Box::new(ProviderSpec {
        name: leak_str(&def.name),
        tier: def.tier,
        format: def.format,
        key_env: &[],
        base_url_env: "",
        base_url: "",
        extra_env: &[],
        enabled_by: Enable::Always,
        models,
    }));
    cache.specs.insert(key, spec);
    spec
}

/// Whether `model` is a configured deployment's line made without prices.
pub fn is_unpriced(model: &ModelSpec) -> bool {
    interned()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .unpriced
        .contains(&(model as *const ModelSpec as usize))
}

/// USD per 1M input and output tokens of `model`, or `None` for a configured deployment's
/// line made without prices (which is not free). A priced line never takes the lock.
pub fn prices(model: &ModelSpec) -> Option<(f64, f64)> {
    (model.input + model.output > 0.0 || !is_unpriced(model)).then_some((model.input, model.output))
}

/// `base` followed by `extra` as one catalog (made once per distinct list).
pub fn extend(base: Catalog, extra: &[&'static ProviderSpec]) -> Catalog {
    if extra.is_empty() {
        return base;
    }
    let list: Vec<&'static ProviderSpec> = base
        .providers()
        .iter()
        .copied()
        .chain(extra.iter().copied())
        .collect();
    let key: Vec<usize> = list
        .iter()
        .map(|s| *s as *const ProviderSpec as usize)
        .collect();
    let mut cache = interned().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(providers) = cache.catalogs.get(&key) {
        return Catalog::new(providers);
    }
    let providers: &'static [&'static ProviderSpec] = Box::leak(list.into_boxed_slice());
    cache.catalogs.insert(key, providers);
    Catalog::new(providers)
}

/// Whether `name` is a built-in provider's.
pub fn is_builtin(name: &str) -> bool {
    PROVIDERS.iter().any(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(price: f64) -> CustomProvider {
        CustomProvider {
            name: "gpu-a".into(),
            tier: Tier::Keyless,
            format: Format::OpenAi,
            models: vec![CustomModel {
                id: "qwen3-32b".into(),
                input: price,
                output: 0.3,
                cached_input: None,
                priced: true,
            }],
        }
    }

    #[test]
    fn the_same_content_gives_the_same_line() {
        let a = custom_provider(&def(0.1));
        let b = custom_provider(&def(0.1));
        let c = custom_provider(&def(0.2));
        assert!(std::ptr::eq(a, b));
        assert!(!std::ptr::eq(a, c));
        assert_eq!(a.model("qwen3-32b").map(|m| m.input), Some(0.1));
        let cat = extend(Catalog::default(), &[a]);
        assert!(std::ptr::eq(
            cat.providers(),
            extend(Catalog::default(), &[b]).providers()
        ));
        assert_eq!(cat.provider("gpu-a").map(|p| p.tier), Some(Tier::Keyless));
    }
}
