//! The routing tables of `proxygate.toml`: `[[deployments]]`, `[models]` and `[rules]`.
//! Every problem is collected, each naming the table and key, so one run shows them all.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value as Json;
use toml::Value;

use super::env::{EnvSource, parse_list};
use crate::catalog::{Format, Rate, Tier};
use crate::router::routes::parse_format;
use crate::router::{DeploymentDef, GroupKind, ModelGroup, Routes, Strategy};
use crate::types::{ParamRules, Secret};

/// The top-level keys of the file this module reads (the rest are settings).
pub const TABLES: &[&str] = &["deployments", "models", "rules"];

/// The most deployments, groups or rules one file may hold.
const MAX_ENTRIES: usize = 1000;

/// Reads the routing tables of `table` (a parsed config file), looking keys up in `env`.
pub fn parse(table: &toml::Table, env: &dyn EnvSource) -> Result<Routes, Vec<String>> {
    let mut p = Vec::new();
    let mut routes = Routes::default();
    match table.get("deployments") {
        None => {}
        Some(Value::Array(items)) if items.len() <= MAX_ENTRIES => {
            let mut names = HashSet::new();
            for (i, item) in items.iter().enumerate() {
                let Value::Table(t) = item else {
                    p.push(format!(
                        "deployments[{i}] is not a table; write it as [[deployments]]"
                    ));
                    continue;
                };
                if let Some(d) = deployment(i, t, env, &mut p) {
                    if !names.insert(d.name.clone()) {
                        p.push(format!("deployment `{}` is defined twice", d.name));
                    }
                    routes.deployments.push(d);
                }
            }
        }
        Some(_) => p.push(format!(
            "`deployments` must be a list of at most {MAX_ENTRIES} [[deployments]] tables"
        )),
    }
    match table.get("models") {
        None => {}
        Some(Value::Table(t)) if t.len() <= MAX_ENTRIES => {
            for (name, v) in t {
                if let Some(g) = group(name, v, &mut p) {
                    routes.groups.insert(name.clone(), g);
                }
            }
        }
        Some(_) => p.push(format!(
            "`models` must be a table of at most {MAX_ENTRIES} groups, e.g. [models] smart = [\"openai/gpt-4o\", \"anthropic/claude-sonnet-4-5\"]"
        )),
    }
    match table.get("rules") {
        None => {}
        Some(Value::Table(t)) if t.len() <= MAX_ENTRIES => {
            for (model, v) in t {
                let ctx = format!("rules.\"{model}\"");
                match v {
                    Value::Table(r) => {
                        if let Some(rules) = rules(&ctx, r, &[], &mut p) {
                            routes.rules.insert(model.clone(), rules);
                        }
                    }
                    _ => p.push(format!(
                        "{ctx} must be a table, e.g. [rules.\"{model}\"] drop = [\"temperature\"]"
                    )),
                }
            }
        }
        Some(_) => p.push(format!(
            "`rules` must be a table of at most {MAX_ENTRIES} [rules.\"provider/model\"] tables"
        )),
    }
    if p.is_empty() { Ok(routes) } else { Err(p) }
}

fn string(ctx: &str, key: &str, v: &Value, p: &mut Vec<String>) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => {
            p.push(format!("{ctx}: `{key}` must be a non-empty string"));
            None
        }
    }
}

fn strings(ctx: &str, key: &str, v: &Value, p: &mut Vec<String>) -> Option<Vec<String>> {
    let Value::Array(items) = v else {
        p.push(format!("{ctx}: `{key}` must be a list of strings"));
        return None;
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::String(s) if !s.trim().is_empty() => out.push(s.trim().to_owned()),
            other => {
                p.push(format!(
                    "{ctx}: `{key}` holds {other}, not a non-empty string"
                ));
                return None;
            }
        }
    }
    Some(out)
}

fn count(ctx: &str, key: &str, v: &Value, p: &mut Vec<String>) -> Option<u64> {
    match v {
        Value::Integer(n) if *n > 0 => Some(*n as u64),
        _ => {
            p.push(format!("{ctx}: `{key}` must be a whole number above 0"));
            None
        }
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn deployment(
    i: usize,
    t: &toml::Table,
    env: &dyn EnvSource,
    p: &mut Vec<String>,
) -> Option<DeploymentDef> {
    let before = p.len();
    let name = match t.get("name") {
        Some(v) => string(&format!("deployments[{i}]"), "name", v, p),
        None => {
            p.push(format!("deployments[{i}] has no `name`"));
            None
        }
    }?;
    let ctx = format!("deployment `{name}`");
    if !valid_name(&name) {
        p.push(format!(
            "{ctx}: the name may hold only letters, digits, '-', '_' and '.' (it becomes the provider in `{name}/<model>`)"
        ));
    } else if crate::catalog::custom::is_builtin(&name) {
        p.push(format!(
            "{ctx}: `{name}` is a built-in provider; pick another name (or set {}_BASE_URL to move the built-in one)",
            name.to_ascii_uppercase()
        ));
    }
    const KNOWN: &[&str] = &[
        "name",
        "format",
        "base_url",
        "endpoint",
        "api_key_env",
        "tier",
        "models",
        "rpm",
        "tpm",
        "weight",
        "prices",
        "api_version",
        "deployments",
    ];
    for k in t.keys() {
        if !KNOWN.contains(&k.as_str()) {
            p.push(format!(
                "{ctx}: unknown key `{k}`; the keys are {}",
                KNOWN.join(", ")
            ));
        }
    }
    let format = match t.get("format") {
        None => {
            p.push(format!(
                "{ctx} has no `format`; use openai, anthropic, gemini, azure, cohere or ai21"
            ));
            Format::OpenAi
        }
        Some(v) => string(&ctx, "format", v, p)
            .and_then(|f| {
                parse_format(&f)
                    .map_err(|e| p.push(format!("{ctx}: {e}")))
                    .ok()
            })
            .unwrap_or(Format::OpenAi),
    };
    let url_key = if format == Format::Azure && t.contains_key("endpoint") {
        "endpoint"
    } else {
        "base_url"
    };
    let base_url = match t.get(url_key) {
        None => {
            p.push(format!("{ctx} has no `{url_key}`"));
            String::new()
        }
        Some(v) => {
            let url = string(&ctx, url_key, v, p).unwrap_or_default();
            let url = url.trim_end_matches('/').to_owned();
            if !url.is_empty()
                && (!(url.starts_with("http://") || url.starts_with("https://"))
                    || url.parse::<http::Uri>().is_err())
            {
                p.push(format!(
                    "{ctx}: `{url_key}` {url:?} is not an http:// or https:// URL"
                ));
            }
            url
        }
    };
    let api_key_env = t
        .get("api_key_env")
        .and_then(|v| string(&ctx, "api_key_env", v, p));
    let keys: Vec<Secret> = match &api_key_env {
        None => Vec::new(),
        Some(var) => match env.get(var).filter(|v| !v.trim().is_empty()) {
            Some(v) => parse_list(&v).into_iter().map(Secret::new).collect(),
            None => {
                p.push(format!(
                    "{ctx}: api_key_env names {var}, which is not set; set {var} to the key"
                ));
                Vec::new()
            }
        },
    };
    if api_key_env.is_none() && format != Format::OpenAi {
        p.push(format!(
            "{ctx}: format {} needs a key; set api_key_env to the variable that holds it",
            crate::router::routes::format_name(format)
        ));
    }
    let tier = match t.get("tier") {
        None => Tier::PaidKey,
        Some(v) => match string(&ctx, "tier", v, p).as_deref() {
            Some("keyless") => Tier::Keyless,
            Some("free-key") | Some("free") => Tier::FreeKey,
            Some("paid-key") | Some("paid") => Tier::PaidKey,
            Some(other) => {
                p.push(format!(
                    "{ctx}: tier {other:?} is not keyless, free-key or paid-key"
                ));
                Tier::PaidKey
            }
            None => Tier::PaidKey,
        },
    };
    let mut azure_deployments = Vec::new();
    let api_version = t
        .get("api_version")
        .and_then(|v| string(&ctx, "api_version", v, p));
    if format == Format::Azure {
        match t
            .get("deployments")
            .and_then(|v| strings(&ctx, "deployments", v, p))
        {
            Some(pairs) if !pairs.is_empty() => {
                for pair in pairs {
                    match pair.split_once('=') {
                        Some((m, d)) if !m.trim().is_empty() && valid_name(d.trim()) => {
                            azure_deployments.push((m.trim().to_owned(), d.trim().to_owned()))
                        }
                        _ => p.push(format!(
                            "{ctx}: deployments entry {pair:?} is not <model>=<deployment>, e.g. \"gpt-4o-mini=my-mini\""
                        )),
                    }
                }
            }
            _ => p.push(format!(
                "{ctx}: format azure needs deployments = [\"<model>=<deployment>\", ...]"
            )),
        }
    } else if t.contains_key("deployments") || t.contains_key("api_version") {
        p.push(format!(
            "{ctx}: `deployments` and `api_version` are for format azure only"
        ));
    }
    let mut models = match t.get("models") {
        Some(v) => strings(&ctx, "models", v, p).unwrap_or_default(),
        None => Vec::new(),
    };
    for (m, _) in &azure_deployments {
        if !models.contains(m) {
            models.push(m.clone());
        }
    }
    if models.is_empty() {
        p.push(format!("{ctx} serves no model; list them in `models`"));
    }
    let mut seen = HashSet::new();
    for m in &models {
        if crate::types::check_model(m).is_err() {
            p.push(format!("{ctx}: model {m:?} is not a model name"));
        }
        if !seen.insert(m.as_str()) {
            p.push(format!("{ctx}: model `{m}` is listed twice"));
        }
    }
    let rpm = t.get("rpm").and_then(|v| count(&ctx, "rpm", v, p));
    let tpm = t.get("tpm").and_then(|v| count(&ctx, "tpm", v, p));
    let weight = match t.get("weight") {
        None => None,
        Some(Value::Integer(n)) if (0..=i64::from(u32::MAX)).contains(n) => Some(*n as u32),
        Some(_) => {
            p.push(format!("{ctx}: `weight` must be a whole number, 0 or more"));
            None
        }
    };
    let mut prices = BTreeMap::new();
    match t.get("prices") {
        None => {}
        Some(Value::Table(pt)) => {
            for (m, v) in pt {
                if !models.contains(m) {
                    p.push(format!(
                        "{ctx}: prices name `{m}`, which is not one of its models"
                    ));
                    continue;
                }
                match v {
                    Value::String(s) => match Rate::parse(s) {
                        Ok(r) => {
                            prices.insert(m.clone(), r);
                        }
                        Err(e) => p.push(format!("{ctx}: price of `{m}`: {e}")),
                    },
                    _ => p.push(format!(
                        "{ctx}: price of `{m}` must be a string \"input/output[/cached]\" in USD per 1M tokens"
                    )),
                }
            }
        }
        Some(_) => p.push(format!(
            "{ctx}: `prices` must be a table, e.g. [deployments.prices] \"my-model\" = \"0.10/0.30\""
        )),
    }
    if p.len() > before {
        return None;
    }
    Some(DeploymentDef {
        name,
        format,
        base_url,
        api_key_env,
        keys,
        tier,
        models,
        rpm,
        tpm,
        weight,
        prices,
        api_version,
        azure_deployments,
    })
}

fn group(name: &str, v: &Value, p: &mut Vec<String>) -> Option<ModelGroup> {
    let ctx = format!("models.{name}");
    let before = p.len();
    if name.contains('/') || crate::types::check_model(name).is_err() {
        p.push(format!(
            "{ctx}: a group name is a bare model name without '/' (clients ask for it as is)"
        ));
    }
    let g = match v {
        Value::Array(_) => strings(&ctx, "targets", v, p).map(|t| ModelGroup::chain(name, t)),
        Value::Table(t) => {
            for k in t.keys() {
                if !["targets", "strategy", "drop", "defaults"].contains(&k.as_str()) {
                    p.push(format!(
                        "{ctx}: unknown key `{k}`; the keys are targets, strategy, drop and defaults"
                    ));
                }
            }
            let targets = match t.get("targets") {
                Some(v) => strings(&ctx, "targets", v, p),
                None => {
                    p.push(format!("{ctx} has no `targets`"));
                    None
                }
            };
            let kind = match t.get("strategy").map(|v| string(&ctx, "strategy", v, p)) {
                None => Some(GroupKind::Chain),
                Some(None) => None,
                Some(Some(s)) if matches!(s.as_str(), "fallback" | "chain" | "order") => {
                    Some(GroupKind::Chain)
                }
                Some(Some(s)) => match Strategy::parse(&format!("{ctx}.strategy"), &s) {
                    Ok(s) => Some(GroupKind::Strategy(s)),
                    Err(e) => {
                        p.push(format!("{e} (or fallback for an ordered chain)"));
                        None
                    }
                },
            };
            let r = rules(&ctx, t, &["targets", "strategy"], p);
            match (targets, kind, r) {
                (Some(targets), Some(kind), Some(r)) => Some(ModelGroup {
                    name: name.to_owned(),
                    kind,
                    targets,
                    rules: r,
                }),
                _ => None,
            }
        }
        _ => {
            p.push(format!(
                "{ctx} must be a list of models or a table with `targets`"
            ));
            None
        }
    };
    if let Some(g) = &g {
        if g.targets.is_empty() {
            p.push(format!("{ctx} has no targets"));
        }
        if g.targets.iter().any(|t| t == name) {
            p.push(format!("{ctx} lists itself as a target"));
        }
    }
    if p.len() > before { None } else { g }
}

fn rules(ctx: &str, t: &toml::Table, other: &[&str], p: &mut Vec<String>) -> Option<ParamRules> {
    let before = p.len();
    for k in t.keys() {
        if !other.contains(&k.as_str()) && !["drop", "defaults"].contains(&k.as_str()) {
            p.push(format!(
                "{ctx}: unknown key `{k}`; rules have drop and defaults"
            ));
        }
    }
    let drop = match t.get("drop") {
        Some(v) => strings(ctx, "drop", v, p).unwrap_or_default(),
        None => Vec::new(),
    };
    let defaults = match t.get("defaults") {
        None => serde_json::Map::new(),
        Some(Value::Table(d)) => match serde_json::to_value(d) {
            Ok(Json::Object(m)) => m,
            _ => {
                p.push(format!("{ctx}: `defaults` holds a value JSON cannot carry"));
                serde_json::Map::new()
            }
        },
        Some(_) => {
            p.push(format!(
                "{ctx}: `defaults` must be a table, e.g. defaults = {{ max_tokens = 1024 }}"
            ));
            serde_json::Map::new()
        }
    };
    let r = ParamRules { drop, defaults };
    if let Err(e) = r.check() {
        p.push(format!("{ctx}: {e}"));
    }
    if p.len() > before { None } else { Some(r) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn routes(text: &str, env: &[(&str, &str)]) -> Result<Routes, Vec<String>> {
        let t: toml::Table = text.parse().unwrap();
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        parse(&t, &env)
    }

    #[test]
    fn a_full_file_reads_into_routes() {
        let r = routes(
            r#"
[[deployments]]
name = "gpu-a"
format = "openai"
base_url = "http://10.0.0.5:8000/v1/"
api_key_env = "GPU_A_KEY"
tier = "keyless"
models = ["meta-llama/Llama-3.3-70B-Instruct", "qwen3-32b"]
rpm = 600
tpm = 2000000
weight = 2
[deployments.prices]
"qwen3-32b" = "0.10/0.30"

[models]
smart = ["anthropic/claude-sonnet-4-5", "openai/gpt-4.1"]
fast = { strategy = "latency", targets = ["groq/llama-3.3-70b-versatile"], drop = ["logit_bias"], defaults = { max_tokens = 1024 } }

[rules."gpu-a/qwen3-32b"]
drop = ["temperature"]
"#,
            &[("GPU_A_KEY", "k1")],
        )
        .unwrap();
        let d = &r.deployments[0];
        assert_eq!(d.base_url, "http://10.0.0.5:8000/v1");
        assert_eq!(
            (d.rpm, d.tpm, d.weight),
            (Some(600), Some(2_000_000), Some(2))
        );
        assert_eq!(d.tier, Tier::Keyless);
        assert_eq!(d.keys.len(), 1);
        assert_eq!(d.prices["qwen3-32b"].output, 0.30);
        assert_eq!(r.groups["smart"].kind, GroupKind::Chain);
        assert_eq!(
            r.groups["fast"].kind,
            GroupKind::Strategy(Strategy::Latency)
        );
        assert_eq!(r.groups["fast"].rules.defaults["max_tokens"], 1024);
        assert_eq!(r.rules["gpu-a/qwen3-32b"].drop, ["temperature"]);
        assert!(!format!("{:?}", r).contains("k1"));
    }

    #[test]
    fn every_problem_is_listed() {
        let e = routes(
            r#"
[[deployments]]
name = "groq"
format = "smoke-signals"
base_url = "ftp://x"
api_key_env = "UNSET_KEY_VAR"
rpm = -1
models = []
colour = "red"

[models]
smart = { targets = ["a"], strategy = "sideways" }
"bad/name" = ["x"]

[rules."x/y"]
defaults = { max_tokens = "lots" }
"#,
            &[],
        )
        .unwrap_err();
        let text = e.join("\n");
        for needle in [
            "built-in provider",
            "smoke-signals",
            "ftp://x",
            "UNSET_KEY_VAR",
            "rpm",
            "serves no model",
            "colour",
            "sideways",
            "bad/name",
            "max_tokens",
        ] {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
    }
}
