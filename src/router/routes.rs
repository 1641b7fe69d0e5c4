//! What the config file adds to the built-in providers: the operator's own deployments
//! (`[[deployments]]`), model groups (`[models]`) and parameter rules (`[rules]`). `config`
//! reads them from `proxygate.toml`; a library user builds them in code.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::Strategy;
use crate::catalog::custom::{CustomModel, CustomProvider};
use crate::catalog::{Format, Rate, Tier};
use crate::types::{ParamRules, Secret};

/// One `[[deployments]]` table: an upstream of a known wire format at any base URL.
#[derive(Clone, Debug)]
pub struct DeploymentDef {
    /// The provider name in ids, headers, metrics and usage (`gpu-a` in `gpu-a/<model>`).
    pub name: String,
    /// The wire format.
    pub format: Format,
    /// Base URL: with the version prefix for `openai` (`http://10.0.0.5:8000/v1`), the host
    /// root for the others, the resource endpoint for `azure`.
    pub base_url: String,
    /// The environment variable holding the key (comma-separated keys make one deployment
    /// per key), when the upstream wants one.
    pub api_key_env: Option<String>,
    /// The keys read from `api_key_env`.
    pub keys: Vec<Secret>,
    /// Who pays (default paid-key).
    pub tier: Tier,
    /// The model ids it serves, sent upstream exactly as written.
    pub models: Vec<String>,
    /// Requests per minute this deployment takes at most, over every replica.
    pub rpm: Option<u64>,
    /// Tokens per minute (prompt estimate plus the output cap) it takes at most.
    pub tpm: Option<u64>,
    /// Weight for the weighted strategy (default 1).
    pub weight: Option<u32>,
    /// Prices by model id.
    pub prices: BTreeMap<String, Rate>,
    /// `azure` only: the `api-version` query value.
    pub api_version: Option<String>,
    /// `azure` only: `(model, deployment)` pairs.
    pub azure_deployments: Vec<(String, String)>,
}

impl DeploymentDef {
    /// A deployment of `format` named `name` at `base_url` serving `models` (keyless,
    /// paid-key tier, no ceilings).
    pub fn new(
        name: impl Into<String>,
        format: Format,
        base_url: impl Into<String>,
        models: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            name: name.into(),
            format,
            base_url: base_url.into(),
            api_key_env: None,
            keys: Vec::new(),
            tier: Tier::PaidKey,
            models: models.into_iter().map(Into::into).collect(),
            rpm: None,
            tpm: None,
            weight: None,
            prices: BTreeMap::new(),
            api_version: None,
            azure_deployments: Vec::new(),
        }
    }

    /// The catalog line it makes.
    pub fn provider(&self) -> CustomProvider {
        CustomProvider {
            name: self.name.clone(),
            tier: self.tier,
            format: self.format,
            models: self
                .models
                .iter()
                .map(|m| {
                    let rate = self.prices.get(m);
                    let r = rate.copied().unwrap_or_default();
                    CustomModel {
                        id: m.clone(),
                        input: r.input,
                        output: r.output,
                        cached_input: r.cached_input,
                        priced: rate.is_some(),
                    }
                })
                .collect(),
        }
    }

    /// The running definition as JSON, the keys as `***`.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "name": self.name,
            "format": format_name(self.format),
            "base_url": self.base_url,
            "tier": self.tier.as_str(),
            "models": self.models,
            "keys": self.keys.iter().map(|_| "***").collect::<Vec<_>>(),
        });
        let o = v.as_object_mut().expect("a JSON object");
        if let Some(env) = &self.api_key_env {
            o.insert("api_key_env".into(), env.clone().into());
        }
        if let Some(n) = self.rpm {
            o.insert("rpm".into(), n.into());
        }
        if let Some(n) = self.tpm {
            o.insert("tpm".into(), n.into());
        }
        if let Some(n) = self.weight {
            o.insert("weight".into(), n.into());
        }
        if !self.prices.is_empty() {
            let prices: serde_json::Map<String, Value> = self
                .prices
                .iter()
                .map(|(m, r)| (m.clone(), serde_json::to_value(r).unwrap_or_default()))
                .collect();
            o.insert("prices".into(), prices.into());
        }
        if let Some(v) = &self.api_version {
            o.insert("api_version".into(), v.clone().into());
        }
        if !self.azure_deployments.is_empty() {
            let pairs: Vec<String> = self
                .azure_deployments
                .iter()
                .map(|(m, d)| format!("{m}={d}"))
                .collect();
            o.insert("deployments".into(), pairs.into());
        }
        v
    }
}

/// The config-file name of a wire format.
pub fn format_name(f: Format) -> &'static str {
    match f {
        Format::OpenAi => "openai",
        Format::Anthropic => "anthropic",
        Format::Gemini => "gemini",
        Format::Azure => "azure",
        Format::Cohere => "cohere",
        Format::Ai21 => "ai21",
        Format::Puter => "puter",
        Format::Mock => "mock",
    }
}

/// Parses a deployment's `format`.
pub fn parse_format(v: &str) -> Result<Format, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "openai" | "openai-compatible" => Ok(Format::OpenAi),
        "anthropic" => Ok(Format::Anthropic),
        "gemini" => Ok(Format::Gemini),
        "azure" | "azure-openai" => Ok(Format::Azure),
        "cohere" | "cohere-v2" => Ok(Format::Cohere),
        "ai21" => Ok(Format::Ai21),
        other => Err(format!(
            "format {other:?} is not one the gateway speaks; use openai, anthropic, gemini, azure, cohere or ai21"
        )),
    }
}

/// How a group orders its targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupKind {
    /// An ordered fallback chain: every deployment of the first target, then the next target.
    Chain,
    /// One pool of every target's deployments, ordered by this strategy.
    Strategy(Strategy),
}

/// One `[models]` entry: a name clients ask for and what serves it.
#[derive(Clone, Debug)]
pub struct ModelGroup {
    /// The bare name clients send (`smart`).
    pub name: String,
    /// Chain or strategy group.
    pub kind: GroupKind,
    /// Models (`provider/model` or bare names), in order.
    pub targets: Vec<String>,
    /// Applied when the group is asked for.
    pub rules: ParamRules,
}

impl ModelGroup {
    /// An ordered fallback chain.
    pub fn chain(
        name: impl Into<String>,
        targets: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            name: name.into(),
            kind: GroupKind::Chain,
            targets: targets.into_iter().map(Into::into).collect(),
            rules: ParamRules::default(),
        }
    }

    /// A group routed across its targets by `strategy`.
    pub fn strategy(
        name: impl Into<String>,
        strategy: Strategy,
        targets: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            kind: GroupKind::Strategy(strategy),
            ..Self::chain(name, targets)
        }
    }

    /// The same group with parameter rules.
    pub fn with_rules(mut self, rules: ParamRules) -> Self {
        self.rules = rules;
        self
    }

    /// The running definition as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "strategy": match self.kind {
                GroupKind::Chain => "fallback",
                GroupKind::Strategy(s) => s.as_str(),
            },
            "targets": self.targets,
            "drop": self.rules.drop,
            "defaults": self.rules.defaults,
        })
    }
}

/// Everything the config file adds to routing.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    /// `[[deployments]]`, in file order.
    pub deployments: Vec<DeploymentDef>,
    /// `[models]`, by name.
    pub groups: BTreeMap<String, ModelGroup>,
    /// `[rules."provider/model"]`.
    pub rules: BTreeMap<String, ParamRules>,
}

impl Routes {
    /// Whether nothing is configured.
    pub fn is_empty(&self) -> bool {
        self.deployments.is_empty() && self.groups.is_empty() && self.rules.is_empty()
    }

    /// Adds a deployment.
    pub fn with_deployment(mut self, d: DeploymentDef) -> Self {
        self.deployments.push(d);
        self
    }

    /// Adds a group.
    pub fn with_group(mut self, g: ModelGroup) -> Self {
        self.groups.insert(g.name.clone(), g);
        self
    }

    /// Adds the rules of one `provider/model`.
    pub fn with_rules(mut self, model: impl Into<String>, rules: ParamRules) -> Self {
        self.rules.insert(model.into(), rules);
        self
    }

    /// The running routes as JSON, keys as `***`.
    pub fn to_json(&self) -> Value {
        json!({
            "deployments": self.deployments.iter().map(DeploymentDef::to_json).collect::<Vec<_>>(),
            "models": self.groups.values().map(ModelGroup::to_json).collect::<Vec<_>>(),
            "rules": self.rules.iter().map(|(k, r)| (k.clone(), json!({"drop": r.drop, "defaults": r.defaults}))).collect::<serde_json::Map<_, _>>(),
        })
    }
}
