//! `.env.example` and `proxygate.example.toml` document every setting: every key constant and
//! every provider variable of the catalog appears in both, and the example file parses into a
//! valid configuration.

use std::collections::HashMap;

fn keys_in_source() -> Vec<String> {
    let src = include_str!("../../src/config/env.rs");
    let mut keys: Vec<String> = src
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub const ENV_"))
        .filter_map(|l| l.split('"').nth(1))
        .map(str::to_owned)
        .collect();
    for p in proxygate::catalog::Catalog::default().providers() {
        keys.extend(p.key_env.iter().map(|k| (*k).to_owned()));
        keys.push(p.base_url_env.to_owned());
        keys.extend(p.extra_env.iter().map(|k| (*k).to_owned()));
    }
    keys.retain(|k| k != "MOCK_BASE_URL");
    keys
}

#[test]
fn env_example_lists_every_setting() {
    let doc = include_str!("../../.env.example");
    for key in keys_in_source() {
        assert!(doc.contains(&format!("{key}=")), ".env.example lacks {key}");
    }
}

#[test]
fn toml_example_lists_every_setting_and_parses() {
    let text = include_str!("../../proxygate.example.toml");
    // Uncomment every commented `key = value` line to see the whole documented set.
    let all: String = text
        .lines()
        .map(|l| {
            let t = l.strip_prefix("# ").unwrap_or(l);
            let is_table = t.starts_with('[') && t.ends_with(']');
            let is_setting = t.split_once(" = ").is_some_and(|(k, _)| {
                k.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            });
            if is_table || is_setting {
                t.to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let documented = proxygate::config::file::parse(&all).expect("example parses");
    for key in keys_in_source() {
        if key == "PROXYGATE_CONFIG" || key == "RUST_LOG" {
            continue; // meaningless inside the file itself
        }
        assert!(
            documented.contains_key(&key),
            "proxygate.example.toml lacks {key}"
        );
    }
    let as_is: HashMap<String, String> =
        proxygate::config::file::parse(text).expect("example parses");
    proxygate::Config::from_env(&as_is, proxygate::catalog::Catalog::default())
        .expect("example config is valid");
}
