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

/// `docs/examples/deployments.toml` loads as it is, and serves: its mock group at once, and
/// its own deployments once their base URLs point at a fake.
#[tokio::test]
async fn deployments_example_loads_and_serves() {
    use crate::support::{FakeUpstream, Reply, TestGateway, chat, post_json};
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples/deployments.toml");
    let keys = [
        ("GPU_A_KEY", "gpu-a-example-key".to_owned()),
        ("ANTHROPIC_EU_KEY", "anthropic-eu-example-key".to_owned()),
        ("AZURE_WEST_KEY", "azure-west-example-key".to_owned()),
    ];
    let gw = TestGateway::from_file(&example, &keys).await;
    let config = gw.gateway.config();
    assert_eq!(config.routes.deployments.len(), 4);
    assert_eq!(config.routes.groups.len(), 3);
    assert_eq!(config.routes.rules.len(), 1);
    let (status, headers, body) =
        post_json(&gw.url("/v1/chat/completions"), &chat("demo", "hello")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["x-proxygate-provider"], "mock");

    let fake = FakeUpstream::start(Reply::json(serde_json::json!({
        "id": "c", "object": "chat.completion", "created": 1, "model": "qwen3-32b",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "from gpu"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    })))
    .await;
    let text = std::fs::read_to_string(&example)
        .expect("example")
        .replace("http://10.0.0.5:8000/v1", &fake.url("/v1"))
        .replace("http://10.0.0.6:8000/v1", &fake.url("/v1"));
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("proxygate.toml");
    std::fs::write(&local, text).expect("write");
    let gw = TestGateway::from_file(&local, &keys).await;
    let (status, headers, body) =
        post_json(&gw.url("/v1/chat/completions"), &chat("local", "hello")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(headers["x-proxygate-provider"].starts_with("gpu-"));
    let sent = fake.requests()[0].json();
    assert_eq!(sent["model"], "qwen3-32b");
    assert_eq!(sent["max_tokens"], 1024, "the group's default");
    // The listed price is the deployment's own.
    let reply: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(reply["choices"][0]["message"]["content"], "from gpu");
}
