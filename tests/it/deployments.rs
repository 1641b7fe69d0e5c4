//! The config file's own deployments, model groups and parameter rules, end to end against
//! loopback fakes: two deployments of one model (round robin, failover, per-deployment
//! ceilings, shared through Redis), every wire format as a custom deployment, fallback and
//! strategy groups, key globs on groups, parameter rules, a request's own `models` list, and
//! reloads (by the admin API and by `SIGHUP` to the binary) that change nothing when the file
//! is bad and keep the circuits of deployments that still exist.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{FakeUpstream, Reply, TestGateway, chat, get, post_json, send};

fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "upstream",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
            "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    })
}

async fn fake(content: &str) -> FakeUpstream {
    FakeUpstream::start(Reply::json(completion(content))).await
}

fn failing() -> Reply {
    Reply::status_json(
        503,
        json!({"error": {"message": "overloaded", "type": "server_error"}}),
    )
}

/// A fresh file path in a directory of its own.
fn temp_file(name: &str) -> PathBuf {
    let dir = tempfile::tempdir().expect("tempdir").keep();
    dir.join(name)
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write config file");
}

/// A `[[deployments]]` table of format openai at `fake`.
fn openai_deployment(name: &str, fake: &FakeUpstream, models: &[&str], extra: &str) -> String {
    format!(
        "[[deployments]]\nname = \"{name}\"\nformat = \"openai\"\nbase_url = \"{}\"\ntier = \"keyless\"\nmodels = {}\n{extra}\n",
        fake.url("/v1"),
        serde_json::to_string(models).expect("json")
    )
}

async fn ask(gw: &TestGateway, body: &Value) -> (u16, HashMap<String, String>, Value) {
    let (status, headers, body) = post_json(&gw.url("/v1/chat/completions"), body).await;
    (
        status,
        headers,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

async fn ask_with_key(
    gw: &TestGateway,
    key: &str,
    body: &Value,
) -> (u16, HashMap<String, String>, Value) {
    let req = http::Request::post(gw.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"));
    let (status, headers, body) = send(req, body.to_string().into_bytes()).await;
    (
        status,
        headers,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

async fn admin(
    gw: &TestGateway,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http::Request::builder().method(method).uri(gw.url(path));
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    if !body.is_empty() {
        req = req.header("content-type", "application/json");
    }
    let (status, _, body) = send(req, body).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn create_key(gw: &TestGateway, master: &str, models: Value) -> String {
    let (status, body) = admin(
        gw,
        "POST",
        "/admin/keys",
        Some(master),
        Some(json!({"models": models})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["key"].as_str().expect("key").to_owned()
}

/// Waits, when the wall clock is near the end of a minute, until the next one starts, so the
/// requests of a test share one rate window.
async fn start_of_a_window() {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
        % 60.0;
    if secs > 50.0 {
        tokio::time::sleep(Duration::from_secs_f64(60.0 - secs + 0.2)).await;
    }
}

#[tokio::test]
async fn two_deployments_of_one_model_share_it_round_robin_and_fail_over() {
    let (a, b) = (fake("from a").await, fake("from b").await);
    let path = temp_file("proxygate.toml");
    write(
        &path,
        &format!(
            "{}{}",
            openai_deployment("gpu-a", &a, &["qwen3-32b"], ""),
            openai_deployment("gpu-b", &b, &["qwen3-32b"], "")
        ),
    );
    let gw = TestGateway::from_file(&path, &[("ROUTING_STRATEGY", "round-robin".into())]).await;
    let mut served = Vec::new();
    for _ in 0..4 {
        let (status, headers, _) = ask(&gw, &chat("qwen3-32b", "hi")).await;
        assert_eq!(status, 200);
        served.push(headers["x-proxygate-provider"].clone());
    }
    assert_eq!((a.hits(), b.hits()), (2, 2), "{served:?}");
    assert!(served.windows(2).all(|w| w[0] != w[1]), "{served:?}");
    // The upstream gets the model exactly as listed.
    assert_eq!(a.requests()[0].json()["model"], "qwen3-32b");
    // One fails: every request is still served, by the other.
    a.set_fallback(failing());
    for _ in 0..4 {
        let (status, headers, body) = ask(&gw, &chat("qwen3-32b", "hi")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(headers["x-proxygate-deployment"], "gpu-b/qwen3-32b");
    }
}

#[tokio::test]
async fn a_deployment_at_its_rpm_ceiling_is_skipped_and_the_last_one_says_429() {
    start_of_a_window().await;
    let (a, b) = (fake("from a").await, fake("from b").await);
    let path = temp_file("proxygate.toml");
    write(
        &path,
        &format!(
            "{}{}",
            openai_deployment("cap-a", &a, &["m"], "rpm = 2"),
            openai_deployment("cap-b", &b, &["m"], "rpm = 1")
        ),
    );
    let gw = TestGateway::from_file(&path, &[("PROVIDER_PRIORITY", "cap-a,cap-b".into())]).await;
    let mut by = Vec::new();
    for _ in 0..3 {
        let (status, headers, body) = ask(&gw, &chat("m", "hi")).await;
        assert_eq!(status, 200, "{body}");
        // Skipping a deployment at its ceiling is no attempt.
        assert_eq!(headers["x-proxygate-attempts"], "1");
        by.push(headers["x-proxygate-provider"].clone());
    }
    assert_eq!(by, ["cap-a", "cap-a", "cap-b"]);
    assert_eq!(
        (a.hits(), b.hits()),
        (2, 1),
        "a deployment at its ceiling is not contacted"
    );
    // Both at their ceilings: a 429 with retry-after, nothing contacted.
    let (status, headers, body) = ask(&gw, &chat("m", "hi")).await;
    assert_eq!(status, 429, "{body}");
    let retry: u64 = headers["retry-after"]
        .parse()
        .expect("retry-after in seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!((a.hits(), b.hits()), (2, 1));
}

#[tokio::test]
async fn ceilings_are_shared_by_replicas_through_redis() {
    if std::net::TcpStream::connect("127.0.0.1:6379").is_err() {
        eprintln!("skipped: no Redis on 127.0.0.1:6379");
        return;
    }
    start_of_a_window().await;
    let a = fake("from a").await;
    let path = temp_file("proxygate.toml");
    write(
        &path,
        &openai_deployment("shared-cap", &a, &["m"], "rpm = 2"),
    );
    let prefix = format!(
        "pg-ceiling-test-{}",
        std::process::id() as u64 * 1000 + rand_u16() as u64
    );
    let flags = [
        ("REDIS_URL", "redis://127.0.0.1:6379".to_owned()),
        ("REDIS_PREFIX", prefix),
    ];
    let one = TestGateway::from_file(&path, &flags).await;
    let two = TestGateway::from_file(&path, &flags).await;
    assert_eq!(ask(&one, &chat("m", "hi")).await.0, 200);
    assert_eq!(ask(&two, &chat("m", "hi")).await.0, 200);
    let (status, _, body) = ask(&one, &chat("m", "hi")).await;
    assert_eq!(
        status, 429,
        "the third request of the minute over both replicas: {body}"
    );
    assert_eq!(a.hits(), 2);
}

fn rand_u16() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now()) as u16
}

#[tokio::test]
async fn every_wire_format_serves_as_a_custom_deployment() {
    use crate::conformance::{TEXT, ai21, anthropic, azure, cohere, gemini, openai};
    let fixtures = [
        ("openai", openai::fixture()),
        ("anthropic", anthropic::fixture()),
        ("gemini", gemini::fixture()),
        ("cohere", cohere::fixture()),
        ("ai21", ai21::fixture()),
        ("azure", azure::fixture()),
    ];
    let mut file = String::new();
    let mut fakes = Vec::new();
    for (format, fx) in &fixtures {
        let fake = FakeUpstream::start((fx.plain)()).await;
        let base = if *format == "openai" {
            fake.url("/v1")
        } else {
            fake.url("")
        };
        let name = format!("own-{format}");
        if *format == "azure" {
            file.push_str(&format!(
                "[[deployments]]\nname = \"{name}\"\nformat = \"azure\"\nendpoint = \"{base}\"\napi_key_env = \"OWN_KEY\"\napi_version = \"2025-01-01-preview\"\ndeployments = [\"my-model=my-dep\"]\n"
            ));
        } else {
            file.push_str(&format!(
                "[[deployments]]\nname = \"{name}\"\nformat = \"{format}\"\nbase_url = \"{base}\"\napi_key_env = \"OWN_KEY\"\nmodels = [\"my-model\"]\n"
            ));
        }
        fakes.push((name, fake));
    }
    let path = temp_file("proxygate.toml");
    write(&path, &file);
    let gw = TestGateway::from_file(&path, &[("OWN_KEY", "own-key-0123456789".into())]).await;
    for (name, fake) in &fakes {
        let (status, headers, body) = ask(&gw, &chat(&format!("{name}/my-model"), "hi")).await;
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(headers["x-proxygate-provider"], *name);
        assert_eq!(body["choices"][0]["message"]["content"], TEXT, "{name}");
        assert_eq!(fake.hits(), 1, "{name}");
        let sent = &fake.requests()[0];
        let path = sent.path.clone();
        let expected = match name.as_str() {
            "own-openai" => "/v1/chat/completions",
            "own-anthropic" => "/v1/messages",
            "own-gemini" => "/v1beta/models/my-model:generateContent",
            "own-cohere" => "/v2/chat",
            "own-ai21" => "/studio/v1/chat/completions",
            _ => "/openai/deployments/my-dep/chat/completions",
        };
        assert!(path.starts_with(expected), "{name} sent to {path}");
    }
}

#[tokio::test]
async fn groups_fall_back_in_order_or_route_by_their_strategy_and_are_listed() {
    let (a, b, c) = (
        fake("from a").await,
        fake("from b").await,
        fake("from c").await,
    );
    let path = temp_file("proxygate.toml");
    write(
        &path,
        &format!(
            "{}{}{}[models]\nsmart = [\"g-a/big\", \"g-b/other\"]\nfast = {{ strategy = \"round-robin\", targets = [\"g-b/other\", \"g-c/small\"] }}\n",
            openai_deployment("g-a", &a, &["big"], ""),
            openai_deployment("g-b", &b, &["other"], ""),
            openai_deployment("g-c", &c, &["small"], ""),
        ),
    );
    let gw = TestGateway::from_file(&path, &[]).await;
    // A chain: the first target while it works.
    let (status, headers, _) = ask(&gw, &chat("smart", "hi")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-proxygate-deployment"], "g-a/big");
    // Then the next, with its own model name upstream.
    a.set_fallback(failing());
    let (status, headers, body) = ask(&gw, &chat("smart", "hi")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-proxygate-deployment"], "g-b/other");
    assert_eq!(
        b.requests().last().expect("b called").json()["model"],
        "other"
    );
    // A strategy group spreads across its targets.
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (status, headers, _) = ask(&gw, &chat("fast", "hi")).await;
        assert_eq!(status, 200);
        seen.push(headers["x-proxygate-provider"].clone());
    }
    assert!(
        seen.contains(&"g-b".to_owned()) && seen.contains(&"g-c".to_owned()),
        "{seen:?}"
    );
    // Listed with provider "group"; every entry has its aliases.
    let (status, body) = get(&gw.url("/v1/models")).await;
    assert_eq!(status, 200);
    let list: Value = serde_json::from_slice(&body).expect("json");
    let data = list["data"].as_array().expect("data");
    let smart = data
        .iter()
        .find(|m| m["id"] == "smart")
        .expect("smart listed");
    assert_eq!(smart["provider"], "group");
    assert_eq!(smart["targets"], json!(["g-a/big", "g-b/other"]));
    let big = data
        .iter()
        .find(|m| m["id"] == "g-a/big")
        .expect("g-a/big listed");
    assert_eq!(big["provider"], "g-a");
    assert_eq!(big["tier"], "keyless");
    assert!(data.iter().all(|m| m["aliases"].is_array()));
    assert_eq!(big["aliases"], json!(["big"]));
    let mini = data
        .iter()
        .find(|m| m["id"] == "groq/llama-3.1-8b-instant")
        .expect("catalog");
    assert!(
        mini["aliases"]
            .as_array()
            .expect("aliases")
            .contains(&json!("llama-3.1-8b"))
    );
}

#[tokio::test]
async fn key_globs_apply_to_the_group_and_to_every_target() {
    let (a, b) = (fake("from a").await, fake("from b").await);
    let path = temp_file("proxygate.toml");
    write(
        &path,
        &format!(
            "{}{}[models]\nsmart = [\"k-a/big\", \"k-b/other\"]\n",
            openai_deployment("k-a", &a, &["big"], ""),
            openai_deployment("k-b", &b, &["other"], ""),
        ),
    );
    let master = "sk-master-groups-0123456789";
    let gw = TestGateway::from_file(&path, &[("PROXYGATE_MASTER_KEY", master.into())]).await;
    let key_for = |models: Value| create_key(&gw, master, models);
    // The group and one target: only that target is used.
    let k = key_for(json!(["smart", "k-b/*"])).await;
    let (status, headers, body) = ask_with_key(&gw, &k, &chat("smart", "hi")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-proxygate-provider"], "k-b");
    assert_eq!(
        a.hits(),
        0,
        "a target outside the key's globs is never tried"
    );
    // The group name alone allows none of its targets.
    let k = key_for(json!(["smart"])).await;
    let (status, _, _) = ask_with_key(&gw, &k, &chat("smart", "hi")).await;
    assert_eq!(status, 403);
    // One target alone does not open the group.
    let k = key_for(json!(["k-a/*"])).await;
    let (status, _, body) = ask_with_key(&gw, &k, &chat("smart", "hi")).await;
    assert_eq!(status, 403, "{body}");
    // Every target: the group is allowed without naming it.
    let k = key_for(json!(["k-a/*", "k-b/*"])).await;
    let (status, headers, _) = ask_with_key(&gw, &k, &chat("smart", "hi")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-proxygate-provider"], "k-a");
}

#[tokio::test]
async fn parameter_rules_drop_and_default_per_model_and_per_group() {
    let a = fake("from a").await;
    let path = temp_file("proxygate.toml");
    write(
        &path,
        &format!(
            "{}[models]\ntidy = {{ targets = [\"r-a/plain\"], drop = [\"top_p\"], defaults = {{ max_tokens = 33 }} }}\n[rules.\"r-a/strict\"]\ndrop = [\"temperature\", \"logit_bias\"]\ndefaults = {{ max_tokens = 77, seed = 5 }}\n",
            openai_deployment("r-a", &a, &["strict", "plain"], ""),
        ),
    );
    let gw = TestGateway::from_file(&path, &[]).await;
    let mut body = chat("r-a/strict", "hi");
    body["temperature"] = json!(0.2);
    body["logit_bias"] = json!({"50256": -100});
    body["top_p"] = json!(0.5);
    assert_eq!(ask(&gw, &body).await.0, 200);
    let sent = a.requests().last().expect("sent").json();
    assert!(
        sent.get("temperature").is_none() && sent.get("logit_bias").is_none(),
        "{sent}"
    );
    assert_eq!(
        (
            sent["max_tokens"].clone(),
            sent["seed"].clone(),
            sent["top_p"].clone()
        ),
        (json!(77), json!(5), json!(0.5))
    );
    // A client's own value wins over a default.
    let mut body = chat("r-a/strict", "hi");
    body["max_tokens"] = json!(9);
    assert_eq!(ask(&gw, &body).await.0, 200);
    assert_eq!(a.requests().last().expect("sent").json()["max_tokens"], 9);
    // A group's rules apply when the group is asked for, and not otherwise.
    let mut body = chat("tidy", "hi");
    body["top_p"] = json!(0.5);
    body["temperature"] = json!(0.3);
    assert_eq!(ask(&gw, &body).await.0, 200);
    let sent = a.requests().last().expect("sent").json();
    assert!(sent.get("top_p").is_none(), "{sent}");
    assert_eq!(
        (sent["max_tokens"].clone(), sent["temperature"].clone()),
        (json!(33), json!(0.3))
    );
    let mut body = chat("r-a/plain", "hi");
    body["top_p"] = json!(0.5);
    assert_eq!(ask(&gw, &body).await.0, 200);
    let sent = a.requests().last().expect("sent").json();
    assert_eq!(sent["top_p"], 0.5);
    assert!(sent.get("max_tokens").is_none());
}

#[tokio::test]
async fn a_requests_own_models_list_is_its_fallback_chain_within_the_keys_models() {
    let (a, b) = (fake("from a").await, fake("from b").await);
    a.set_fallback(failing());
    let path = temp_file("proxygate.toml");
    write(
        &path,
        &format!(
            "{}{}",
            openai_deployment("l-a", &a, &["one"], ""),
            openai_deployment("l-b", &b, &["two"], ""),
        ),
    );
    let master = "sk-master-models-0123456789";
    let gw = TestGateway::from_file(&path, &[("PROXYGATE_MASTER_KEY", master.into())]).await;
    let mut body = chat("l-a/one", "hi");
    body["models"] = json!(["l-b/two"]);
    let (status, headers, reply) = ask_with_key(&gw, master, &body).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(headers["x-proxygate-deployment"], "l-b/two");
    assert_eq!(headers["x-proxygate-attempts"], "2");
    let sent = b.requests().last().expect("sent").json();
    assert!(
        sent.get("models").is_none(),
        "the list is the gateway's, not sent upstream: {sent}"
    );
    // Without the list, the failing model alone.
    let (status, _, _) = ask_with_key(&gw, master, &chat("l-a/one", "hi")).await;
    assert_eq!(status, 502);
    // An entry outside the key's allowed models is refused.
    let (status, key) = admin(
        &gw,
        "POST",
        "/admin/keys",
        Some(master),
        Some(json!({"models": ["l-a/*"]})),
    )
    .await;
    assert_eq!(status, 201);
    let key = key["key"].as_str().expect("key");
    let hits = b.hits();
    let (status, _, reply) = ask_with_key(&gw, key, &body).await;
    assert_eq!(status, 403, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .expect("message")
            .contains("l-b/two")
    );
    assert_eq!(b.hits(), hits);
    // A malformed list is a 400 naming the field.
    let mut bad = chat("l-a/one", "hi");
    bad["models"] = json!("l-b/two");
    let (status, _, reply) = ask_with_key(&gw, master, &bad).await;
    assert_eq!(status, 400);
    assert!(reply["error"].to_string().contains("models"), "{reply}");
}

#[tokio::test]
async fn reload_by_the_admin_api_swaps_routes_and_a_broken_file_changes_nothing() {
    let (a, b) = (fake("from a").await, fake("from b").await);
    let path = temp_file("proxygate.toml");
    let secret = "gpu-secret-key-0123456789";
    write(
        &path,
        &openai_deployment("re-a", &a, &["m"], "api_key_env = \"RE_KEY\"\n"),
    );
    let master = "sk-master-reload-0123456789";
    let gw = TestGateway::from_file(
        &path,
        &[
            ("PROXYGATE_MASTER_KEY", master.into()),
            ("RE_KEY", secret.into()),
            ("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "1".into()),
        ],
    )
    .await;
    assert_eq!(ask_with_key(&gw, master, &chat("m", "hi")).await.0, 200);
    assert_eq!(
        a.requests()[0].header("authorization"),
        Some(format!("Bearer {secret}").as_str())
    );
    // Reload needs the master key.
    assert_eq!(admin(&gw, "POST", "/admin/reload", None, None).await.0, 401);
    // A new deployment and a group: served after the reload.
    write(
        &path,
        &format!(
            "{}{}[models]\nboth = [\"re-a/m\", \"re-b/n\"]\n",
            openai_deployment("re-a", &a, &["m"], "api_key_env = \"RE_KEY\"\n"),
            openai_deployment("re-b", &b, &["n"], ""),
        ),
    );
    let (status, summary) = admin(&gw, "POST", "/admin/reload", Some(master), None).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["deployments"], json!(["re-a", "re-b"]));
    assert_eq!(summary["models"], json!(["both"]));
    let (status, headers, _) = ask_with_key(&gw, master, &chat("re-b/n", "hi")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-proxygate-provider"], "re-b");
    // The running configuration, secrets as ***.
    let (status, config) = admin(&gw, "GET", "/admin/config", Some(master), None).await;
    assert_eq!(status, 200);
    let text = config.to_string();
    assert!(!text.contains(secret) && !text.contains(master), "{text}");
    assert!(!text.contains(&secret[..12]), "no piece of a key either");
    assert_eq!(config["deployments"][0]["keys"], json!(["***"]));
    assert_eq!(config["master_key"], "***");
    assert_eq!(config["models"][0]["name"], "both");
    // A broken file: 400 with every problem, nothing changed.
    write(
        &path,
        "[[deployments]]\nname = \"re-a\"\nformat = \"telegraph\"\nbase_url = \"ftp://nowhere\"\nmodels = [\"m\"]\n[models]\nboth = { targets = [\"re-a/m\"], strategy = \"sideways\" }\n",
    );
    let (status, err) = admin(&gw, "POST", "/admin/reload", Some(master), None).await;
    assert_eq!(status, 400, "{err}");
    let problems = err["error"]["problems"].as_array().expect("problems");
    assert!(problems.len() >= 3, "{problems:?}");
    let all = err.to_string();
    for needle in ["telegraph", "ftp://nowhere", "sideways"] {
        assert!(all.contains(needle), "{needle} missing: {all}");
    }
    let (status, headers, _) = ask_with_key(&gw, master, &chat("both", "hi")).await;
    assert_eq!(status, 200, "the old routes still serve");
    assert_eq!(headers["x-proxygate-provider"], "re-a");
    let (_, after) = admin(&gw, "GET", "/admin/config", Some(master), None).await;
    assert_eq!(after, config, "a refused reload changes nothing");
}

#[tokio::test]
async fn circuits_and_latency_of_kept_deployments_survive_a_reload() {
    let (a, b) = (fake("from a").await, fake("from b").await);
    a.set_fallback(failing());
    let path = temp_file("proxygate.toml");
    let file = format!(
        "{}{}",
        openai_deployment("cb-a", &a, &["m"], ""),
        openai_deployment("cb-b", &b, &["m"], ""),
    );
    write(&path, &file);
    let gw = TestGateway::from_file(
        &path,
        &[
            ("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "1".into()),
            ("CIRCUIT_BREAKER_COOLDOWN_MS", "600000".into()),
            ("PROVIDER_PRIORITY", "cb-a,cb-b".into()),
        ],
    )
    .await;
    let (status, headers, _) = ask(&gw, &chat("m", "hi")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-proxygate-provider"], "cb-b");
    assert_eq!(a.hits(), 1);
    let state = |gw: &TestGateway, id: &str| {
        gw.gateway.registry().deployment(id).map(|d| {
            (
                d.state().status(),
                d.state().latency(tokio::time::Instant::now()).is_some(),
            )
        })
    };
    assert_eq!(state(&gw, "cb-a/m"), Some(("open", false)));
    assert_eq!(state(&gw, "cb-b/m"), Some(("healthy", true)));
    // Reload with a group added: both deployments still exist and keep their state.
    write(&path, &format!("{file}[models]\ng = [\"cb-a/m\"]\n"));
    let summary = gw.gateway.reload().await.expect("reloads");
    assert_eq!(summary["generation"], 1);
    assert_eq!(state(&gw, "cb-a/m"), Some(("open", false)));
    assert_eq!(state(&gw, "cb-b/m"), Some(("healthy", true)));
    let (status, headers, _) = ask(&gw, &chat("m", "hi")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-proxygate-provider"], "cb-b");
    assert_eq!(
        a.hits(),
        1,
        "the open circuit is not contacted after the reload"
    );
    // A deployment removed and added again starts afresh.
    write(&path, &openai_deployment("cb-b", &b, &["m"], ""));
    gw.gateway.reload().await.expect("reloads");
    assert!(state(&gw, "cb-a/m").is_none());
    write(&path, &file);
    gw.gateway.reload().await.expect("reloads");
    assert_eq!(state(&gw, "cb-a/m"), Some(("healthy", false)));
}

#[tokio::test]
async fn in_flight_requests_finish_on_the_routes_they_started_with() {
    let a =
        FakeUpstream::start(Reply::json(completion("slow a")).after(Duration::from_millis(400)))
            .await;
    let b = fake("from b").await;
    let path = temp_file("proxygate.toml");
    write(&path, &openai_deployment("fl-a", &a, &["m"], ""));
    let gw = TestGateway::from_file(&path, &[]).await;
    let url = gw.url("/v1/chat/completions");
    let slow = tokio::spawn(async move { post_json(&url, &chat("m", "hi")).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    write(&path, &openai_deployment("fl-b", &b, &["m"], ""));
    gw.gateway.reload().await.expect("reloads");
    let (status, headers, _) = slow.await.expect("joins");
    assert_eq!(status, 200);
    assert_eq!(headers["x-proxygate-provider"], "fl-a");
    let (status, headers, _) = ask(&gw, &chat("m", "hi")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-proxygate-provider"], "fl-b");
}

#[test]
fn sighup_reloads_the_binary_and_a_broken_file_keeps_it_serving() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (a, b) = rt.block_on(async { (fake("from a").await, fake("from b").await) });
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("proxygate.toml");
    write(&path, &openai_deployment("hup-a", &a, &["m"], ""));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_proxygate"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORT", port.to_string())
        .env("USAGE_DB_PATH", ":memory:")
        .arg("--config")
        .arg(&path)
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("binary starts");
    let base = format!("http://127.0.0.1:{port}");
    let provider = |model: &str| {
        let url = format!("{base}/v1/chat/completions");
        let body = chat(model, "hi");
        rt.block_on(async move {
            let (status, headers, _) = post_json(&url, &body).await;
            (status, headers.get("x-proxygate-provider").cloned())
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "binary did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let hup = |pid: u32| {
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok);
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert_eq!(provider("m"), (200, Some("hup-a".into())));
        write(&path, &openai_deployment("hup-b", &b, &["m"], ""));
        hup(child.id());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while provider("m") != (200, Some("hup-b".into())) {
            assert!(
                std::time::Instant::now() < deadline,
                "SIGHUP did not reload"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // A broken file: still serving the last good routes.
        write(&path, "[[deployments]]\nname = \"hup-c\"\n");
        hup(child.id());
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(provider("m"), (200, Some("hup-b".into())));
    }));
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[tokio::test]
async fn a_deployments_own_prices_cost_its_requests_and_unlisted_ones_stay_unpriced() {
    let a = fake("from a").await;
    let path = temp_file("proxygate.toml");
    write(
        &path,
        &format!(
            "[[deployments]]\nname = \"pr-a\"\nformat = \"openai\"\nbase_url = \"{}\"\nmodels = [\"priced\", \"unlisted\"]\n[deployments.prices]\n\"priced\" = \"1/2\"\n",
            a.url("/v1")
        ),
    );
    let master = "sk-master-prices-0123456789";
    let gw = TestGateway::from_file(&path, &[("PROXYGATE_MASTER_KEY", master.into())]).await;
    // 5 prompt tokens at $1 per 1M plus 2 completion tokens at $2 per 1M.
    let (status, headers, _) = ask_with_key(&gw, master, &chat("pr-a/priced", "hi")).await;
    assert_eq!(status, 200);
    let cost: f64 = headers["x-proxygate-cost-usd"].parse().expect("cost");
    assert!((cost - 0.000_009).abs() < 1e-12, "{cost}");
    // A paid deployment's model without a price is unpriced: a key with a budget may not use it.
    let (status, key) = admin(
        &gw,
        "POST",
        "/admin/keys",
        Some(master),
        Some(json!({"budget_usd": 1.0, "budget_period": "total"})),
    )
    .await;
    assert_eq!(status, 201, "{key}");
    let key = key["key"].as_str().expect("key");
    let (status, _, body) = ask_with_key(&gw, key, &chat("pr-a/unlisted", "hi")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "model_unpriced");
    assert_eq!(
        ask_with_key(&gw, key, &chat("pr-a/priced", "hi")).await.0,
        200
    );
    // `/v1/models` shows the unpriced model without prices, not as free.
    let (status, models) = admin(&gw, "GET", "/v1/models", Some(master), None).await;
    assert_eq!(status, 200, "{models}");
    let row = |id: &str| {
        models["data"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["id"] == id).cloned())
            .unwrap_or_else(|| panic!("{id} listed: {models}"))
    };
    assert_eq!(row("pr-a/unlisted")["pricing"], Value::Null);
    assert_eq!(row("pr-a/priced")["pricing"]["input_per_1m"], 1.0);
    // A reload brings new prices.
    let text = std::fs::read_to_string(&path).expect("read");
    write(&path, &text.replace("\"1/2\"", "\"2/4\""));
    gw.gateway.reload().await.expect("reloads");
    let (_, headers, _) = ask_with_key(&gw, master, &chat("pr-a/priced", "hi")).await;
    let cost: f64 = headers["x-proxygate-cost-usd"].parse().expect("cost");
    assert!((cost - 0.000_018).abs() < 1e-12, "{cost}");
}

#[tokio::test]
async fn a_config_built_in_code_has_the_same_deployments_groups_and_rules() {
    use proxygate::catalog::{Format, Tier};
    use proxygate::router::{DeploymentDef, ModelGroup, Routes, Strategy};
    use proxygate::types::ParamRules;
    let (a, b) = (fake("from a").await, fake("from b").await);
    let mut gpu = DeploymentDef::new("code-a", Format::OpenAi, a.url("/v1"), ["m"]);
    gpu.tier = Tier::Keyless;
    let rules = ParamRules {
        drop: vec!["temperature".into()],
        defaults: serde_json::Map::new(),
    };
    let routes = Routes::default()
        .with_deployment(gpu)
        .with_group(ModelGroup::strategy(
            "pool",
            Strategy::Priority,
            ["code-a/m"],
        ))
        .with_rules("code-a/m", rules);
    let map: HashMap<String, String> = [("USAGE_DB_PATH".to_owned(), ":memory:".to_owned())].into();
    let config = proxygate::Config::from_env(&map, proxygate::catalog::Catalog::default())
        .expect("config")
        .with_routes(routes);
    let gw = TestGateway::with_config(config.clone()).await;
    let mut body = chat("pool", "hi");
    body["temperature"] = json!(1.0);
    let (status, headers, _) = ask(&gw, &body).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-proxygate-provider"], "code-a");
    assert!(a.requests()[0].json().get("temperature").is_none());
    // Built in code, it has no file to read again, but takes a new configuration.
    assert!(gw.gateway.reload().await.is_err());
    let next = config.with_routes(
        Routes::default()
            .with_deployment(DeploymentDef::new(
                "code-b",
                Format::OpenAi,
                b.url("/v1"),
                ["m"],
            ))
            .with_group(ModelGroup::chain("pool", ["code-b/m"])),
    );
    gw.gateway.reload_with(next).await.expect("reloads");
    let (status, headers, _) = ask(&gw, &chat("pool", "hi")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-proxygate-provider"], "code-b");
    // A bad one is refused whole.
    let bad =
        gw.gateway.config().clone().with_routes(
            Routes::default().with_group(ModelGroup::chain("pool", ["nowhere/at-all"])),
        );
    let problems = gw.gateway.reload_with(bad).await.expect_err("refused");
    assert!(
        problems.iter().any(|p| p.contains("nowhere/at-all")),
        "{problems:?}"
    );
    assert_eq!(
        ask(&gw, &chat("pool", "hi")).await.1["x-proxygate-provider"],
        "code-b"
    );
}

#[tokio::test]
async fn a_tpm_ceiling_counts_the_real_tokens_once_the_answer_is_in() {
    start_of_a_window().await;
    let a = fake("from a").await;
    let path = temp_file("proxygate.toml");
    write(&path, &openai_deployment("tpm-a", &a, &["m"], "tpm = 100"));
    let gw = TestGateway::from_file(&path, &[]).await;
    // Each is admitted as its prompt estimate plus max_tokens (over 80) but really uses 7.
    let mut body = chat("m", "hi");
    body["max_tokens"] = json!(80);
    for i in 0..3 {
        let (status, _, reply) = ask(&gw, &body).await;
        assert_eq!(status, 200, "request {i}: {reply}");
    }
    // One that cannot fit even alone is refused.
    body["max_tokens"] = json!(200);
    let (status, _, _) = ask(&gw, &body).await;
    assert_eq!(status, 429);
    assert_eq!(a.hits(), 3);
}

#[tokio::test]
async fn the_cost_strategy_puts_a_model_without_prices_after_a_priced_one() {
    let (a, b) = (fake("from a").await, fake("from b").await);
    let path = temp_file("proxygate.toml");
    write(
        &path,
        &format!(
            "routing_strategy = \"cost\"\n\
             [[deployments]]\nname = \"cs-a\"\nformat = \"openai\"\nbase_url = \"{}\"\nmodels = [\"m\"]\n\
             [[deployments]]\nname = \"cs-b\"\nformat = \"openai\"\nbase_url = \"{}\"\nmodels = [\"m\"]\n\
             [deployments.prices]\n\"m\" = \"5/10\"\n",
            a.url("/v1"),
            b.url("/v1")
        ),
    );
    let gw = TestGateway::from_file(&path, &[]).await;
    for _ in 0..3 {
        let (status, headers, body) = ask(&gw, &chat("m", "hi")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(headers["x-proxygate-provider"], "cs-b", "{body}");
    }
}
