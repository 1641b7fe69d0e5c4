//! Access control end to end: the master key, virtual keys through the admin API,
//! allowed models, rate limits that reset, budgets under concurrency, expiry, and usage
//! attributed to the key.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::support::{chat, send};
use proxygate::access::MemoryCounters;
use proxygate::access::limit::{ManualClock, WINDOW};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const MASTER: &str = "mk-access-test-master-key-0001";

/// A gateway on a loopback port, with rate limits counted on a clock the test moves.
struct Gw {
    base: String,
    gateway: proxygate::Gateway,
    clock: Arc<ManualClock>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Gw {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Gw {
    async fn start(extra: &[(&str, &str)]) -> Self {
        let mut env: HashMap<String, String> = [
            ("USAGE_DB_PATH", ":memory:"),
            ("PROXYGATE_MASTER_KEY", MASTER),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        env.retain(|_, v| !v.is_empty());
        let config = proxygate::Config::from_env(&env, proxygate::catalog::Catalog::default())
            .expect("valid config");
        // A window boundary plus a bit, so one test window is one minute of this clock.
        let clock = Arc::new(ManualClock::at(1_800_000_000_000 + 1_000));
        let gateway = proxygate::Gateway::builder(config)
            .metrics(false)
            .counters(Arc::new(MemoryCounters::new(clock.clone())))
            .build()
            .await
            .expect("gateway builds");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = gateway.router();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base: format!("http://{addr}"),
            gateway,
            clock,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, HashMap<String, String>, Value) {
        let mut req = http::Request::builder()
            .method(method)
            .uri(self.url(path))
            .header("content-type", "application/json");
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let (status, headers, bytes) = send(req, body).await;
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, v)
    }

    async fn chat(&self, key: Option<&str>, model: &str) -> (u16, HashMap<String, String>, Value) {
        self.call("POST", "/v1/chat/completions", key, Some(chat(model, "hi")))
            .await
    }

    /// Writes the usage records out, then reads key `id`'s usage as the master key.
    async fn usage_of(&self, id: &str) -> Value {
        self.gateway.usage().flush().await.unwrap();
        let (status, _, usage) = self
            .call("GET", &format!("/v1/usage?key={id}"), Some(MASTER), None)
            .await;
        assert_eq!(status, 200, "{usage}");
        usage
    }

    /// Creates a virtual key; returns (id, plaintext).
    async fn key(&self, spec: Value) -> (String, String) {
        let (status, _, body) = self
            .call("POST", "/admin/keys", Some(MASTER), Some(spec))
            .await;
        assert_eq!(status, 201, "{body}");
        (
            body["id"].as_str().unwrap().to_owned(),
            body["key"].as_str().unwrap().to_owned(),
        )
    }
}

fn assert_envelope(body: &Value, kind: &str) {
    assert_eq!(body["error"]["type"], kind, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

#[tokio::test]
async fn no_key_and_a_wrong_key_get_401_and_health_stays_open() {
    let gw = Gw::start(&[]).await;
    let (status, _, body) = gw.chat(None, "mock/echo").await;
    assert_eq!(status, 401);
    assert_envelope(&body, "authentication_error");
    let (status, _, body) = gw.chat(Some("not-the-key"), "mock/echo").await;
    assert_eq!(status, 401);
    assert_envelope(&body, "authentication_error");
    let (status, _, body) = gw.chat(Some("sk-pg-made-up-key"), "mock/echo").await;
    assert_eq!(status, 401, "{body}");
    let (status, _, _) = gw.call("GET", "/admin/keys", None, None).await;
    assert_eq!(status, 401);
    let (status, _, _) = gw.call("GET", "/health", None, None).await;
    assert_eq!(status, 200);
    let (status, _, _) = gw.chat(Some(MASTER), "mock/echo").await;
    assert_eq!(status, 200);
    // x-api-key works as well (Anthropic clients).
    let req = http::Request::post(gw.url("/v1/chat/completions"))
        .header("x-api-key", MASTER)
        .header("content-type", "application/json");
    let (status, _, _) = send(req, chat("mock/echo", "hi").to_string().into_bytes()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn admin_api_creates_lists_changes_and_deletes_keys_and_only_the_master_key_may() {
    let gw = Gw::start(&[]).await;
    let (status, _, created) = gw
        .call(
            "POST",
            "/admin/keys",
            Some(MASTER),
            Some(json!({"name": "team a", "models": ["mock/*"], "rpm": 100, "metadata": {"team": "a"}})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let plain = created["key"].as_str().unwrap().to_owned();
    assert!(plain.starts_with("sk-pg-"));
    assert_eq!(created["tpm"], Value::Null, "left out means no limit");
    assert_eq!(created["metadata"]["team"], "a");

    // A virtual key may not administer.
    let (status, _, body) = gw.call("GET", "/admin/keys", Some(&plain), None).await;
    assert_eq!(status, 403);
    assert_envelope(&body, "permission_error");
    let (status, _, _) = gw
        .call("POST", "/admin/keys", Some(&plain), Some(json!({})))
        .await;
    assert_eq!(status, 403);

    let (status, _, list) = gw.call("GET", "/admin/keys", Some(MASTER), None).await;
    assert_eq!(status, 200);
    let text = list.to_string();
    assert!(text.contains(&id) && text.contains(&plain[..10]));
    assert!(!text.contains(&plain), "the plaintext is shown once only");

    // Bad input names the field.
    let (status, _, body) = gw
        .call(
            "POST",
            "/admin/keys",
            Some(MASTER),
            Some(json!({"budget_period": "weekly"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.to_string().contains("budget_period"), "{body}");

    let (status, _, _) = gw.chat(Some(&plain), "mock/echo").await;
    assert_eq!(status, 200);
    // PATCH takes effect at once: the model list shrinks.
    let (status, _, body) = gw
        .call(
            "PATCH",
            &format!("/admin/keys/{id}"),
            Some(MASTER),
            Some(json!({"models": ["groq/*"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = gw.chat(Some(&plain), "mock/echo").await;
    assert_eq!(status, 403);
    // DELETE too.
    let (status, _, _) = gw
        .call("DELETE", &format!("/admin/keys/{id}"), Some(MASTER), None)
        .await;
    assert_eq!(status, 200);
    let (status, _, _) = gw.chat(Some(&plain), "mock/echo").await;
    assert_eq!(status, 401);
    let (status, _, _) = gw
        .call("DELETE", &format!("/admin/keys/{id}"), Some(MASTER), None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_virtual_key_outside_its_allowed_models_gets_403() {
    let gw = Gw::start(&[("GROQ_API_KEY", "gsk_unused_in_this_test_000")]).await;
    let (_, key) = gw.key(json!({"models": ["mock/*"]})).await;
    let (status, _, _) = gw.chat(Some(&key), "mock/echo").await;
    assert_eq!(status, 200);
    let (status, _, body) = gw.chat(Some(&key), "groq/llama-3.1-8b-instant").await;
    assert_eq!(status, 403, "{body}");
    assert_envelope(&body, "permission_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("groq/llama-3.1-8b-instant")
    );
}

#[tokio::test]
async fn a_key_over_its_rpm_gets_429_with_retry_after_and_the_limit_resets() {
    let gw = Gw::start(&[]).await;
    let (_, key) = gw.key(json!({"rpm": 2, "tpm": 100000})).await;
    let (status, h, _) = gw.chat(Some(&key), "mock/echo").await;
    assert_eq!(status, 200);
    assert_eq!(h["x-ratelimit-remaining-requests"], "1");
    assert!(h.contains_key("x-ratelimit-remaining-tokens"));
    let (status, h, _) = gw.chat(Some(&key), "mock/echo").await;
    assert_eq!(status, 200);
    assert_eq!(h["x-ratelimit-remaining-requests"], "0");
    let (status, h, body) = gw.chat(Some(&key), "mock/echo").await;
    assert_eq!(status, 429, "{body}");
    assert_envelope(&body, "rate_limit_error");
    let retry: u64 = h["retry-after"].parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(h["x-ratelimit-remaining-requests"], "0");
    // Another key is not affected.
    let (_, other) = gw.key(json!({"rpm": 2})).await;
    assert_eq!(gw.chat(Some(&other), "mock/echo").await.0, 200);
    // The window turns: the key may call again.
    gw.clock.advance(WINDOW);
    let (status, h, _) = gw.chat(Some(&key), "mock/echo").await;
    assert_eq!(status, 200);
    assert_eq!(h["x-ratelimit-remaining-requests"], "1");
}

#[tokio::test]
async fn the_gateway_wide_limit_applies_to_every_caller() {
    let gw = Gw::start(&[("RATE_LIMIT_RPM", "1")]).await;
    assert_eq!(gw.chat(Some(MASTER), "mock/echo").await.0, 200);
    let (status, h, _) = gw.chat(Some(MASTER), "mock/echo").await;
    assert_eq!(status, 429);
    assert!(h.contains_key("retry-after"));
}

#[tokio::test]
async fn fifty_concurrent_requests_against_a_budget_that_fits_ten_serve_at_most_ten() {
    // $1 per completion token on the mock, so costs are whole dollars.
    let gw = Gw::start(&[("RATE_OVERRIDES", "mock/echo=0/1000000")]).await;
    let (status, _, one) = gw.chat(Some(MASTER), "mock/echo").await;
    assert_eq!(status, 200);
    let n = one["usage"]["completion_tokens"].as_u64().unwrap();
    let cost_of_one = n as f64;
    let budget = 10.0 * cost_of_one;
    let (id, key) = gw
        .key(json!({"budget_usd": budget, "budget_period": "total"}))
        .await;

    let mut calls = Vec::new();
    for _ in 0..50 {
        let base = gw.base.clone();
        let key = key.clone();
        calls.push(tokio::spawn(async move {
            let mut body = chat("mock/echo", "hi");
            body["max_tokens"] = json!(n);
            let req = http::Request::post(format!("{base}/v1/chat/completions"))
                .header("authorization", format!("Bearer {key}"))
                .header("content-type", "application/json");
            send(req, body.to_string().into_bytes()).await
        }));
    }
    let mut served = 0;
    for c in calls {
        let (status, _, body) = c.await.unwrap();
        match status {
            200 => served += 1,
            429 => {
                let v: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(v["error"]["type"], "insufficient_quota", "{v}");
                assert_eq!(v["error"]["code"], "budget_exceeded", "{v}");
            }
            other => panic!("unexpected {other}: {}", String::from_utf8_lossy(&body)),
        }
    }
    assert!((1..=10).contains(&served), "served {served}");
    let usage = gw.usage_of(&id).await;
    let spent = usage["totals"]["cost_usd"].as_f64().unwrap();
    assert!(spent <= budget + 1e-9, "spent {spent} of {budget}");
    assert!(spent > 0.0);
    assert_eq!(usage["by_key"][&id]["cost_usd"].as_f64().unwrap(), spent);
}

#[tokio::test]
async fn a_spent_periodic_budget_says_when_it_renews() {
    let gw = Gw::start(&[("RATE_OVERRIDES", "mock/echo=0/1000000")]).await;
    let (_, key) = gw
        .key(json!({"budget_usd": 0.5, "budget_period": "daily"}))
        .await;
    // The most this request can cost ($1 per token x 4096 tokens) does not fit.
    let (status, h, body) = gw.chat(Some(&key), "mock/echo").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["type"], "insufficient_quota");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("budget")
    );
    let retry: u64 = h["retry-after"].parse().unwrap();
    assert!((1..=86_400).contains(&retry), "{retry}");
    // A free model still fits.
    let (status, _, _) = gw.chat(Some(&key), "mock/fast").await;
    assert!(status == 200 || status == 404, "{status}");
}

#[tokio::test]
async fn an_expired_key_gets_401_and_expiry_set_later_applies_at_once() {
    let gw = Gw::start(&[]).await;
    let (_, old) = gw.key(json!({"expires_at": "2020-01-01T00:00:00Z"})).await;
    let (status, _, body) = gw.chat(Some(&old), "mock/echo").await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    let (id, key) = gw.key(json!({"expires_at": "2999-01-01T00:00:00Z"})).await;
    assert_eq!(gw.chat(Some(&key), "mock/echo").await.0, 200);
    let (status, _, _) = gw
        .call(
            "PATCH",
            &format!("/admin/keys/{id}"),
            Some(MASTER),
            Some(json!({"expires_at": "2021-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(gw.chat(Some(&key), "mock/echo").await.0, 401);
}

#[tokio::test]
async fn usage_is_attributed_to_the_key_and_a_key_sees_only_its_own() {
    let gw = Gw::start(&[]).await;
    let (id, key) = gw.key(json!({"name": "usage"})).await;
    let (other_id, other) = gw.key(json!({"name": "other"})).await;
    for _ in 0..3 {
        assert_eq!(gw.chat(Some(&key), "mock/echo").await.0, 200);
    }
    assert_eq!(gw.chat(Some(&other), "mock/echo").await.0, 200);
    assert_eq!(gw.chat(Some(MASTER), "mock/echo").await.0, 200);
    let usage = gw.usage_of(&id).await;
    assert_eq!(usage["totals"]["requests"], 3, "{usage}");
    let (_, _, all) = gw.call("GET", "/v1/usage", Some(MASTER), None).await;
    assert_eq!(all["totals"]["requests"], 5);
    assert_eq!(all["by_key"][&id]["requests"], 3);
    assert_eq!(all["by_key"][&other_id]["requests"], 1);
    // A virtual key reading usage sees its own only.
    let (status, _, mine) = gw.call("GET", "/v1/usage", Some(&other), None).await;
    assert_eq!(status, 200);
    assert_eq!(mine["totals"]["requests"], 1);
    let (status, _, _) = gw
        .call("GET", &format!("/v1/usage?key={id}"), Some(&other), None)
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn keys_survive_a_restart_in_sqlite_and_spend_is_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keys.db");
    let db = db.to_str().unwrap();
    let journal = dir.path().join("journal");
    let journal = journal.to_str().unwrap();
    let env = [
        ("USAGE_DB_PATH", db),
        ("USAGE_JOURNAL_DIR", journal),
        ("RATE_OVERRIDES", "mock/echo=0/1000000"),
    ];
    let (key, n) = {
        let gw = Gw::start(&env).await;
        let (_, one) = (0, gw.chat(Some(MASTER), "mock/echo").await.2);
        let n = one["usage"]["completion_tokens"].as_u64().unwrap();
        let (_, key) = gw
            .key(json!({"budget_usd": n as f64, "budget_period": "monthly"}))
            .await;
        let mut body = chat("mock/echo", "hi");
        body["max_tokens"] = json!(n);
        let (status, _, b) = gw
            .call("POST", "/v1/chat/completions", Some(&key), Some(body))
            .await;
        assert_eq!(status, 200, "{b}");
        gw.gateway.usage().flush().await.unwrap();
        (key, n)
    };
    tokio::time::sleep(Duration::from_millis(50)).await; // let the first gateway's tasks go
    let gw = Gw::start(&env).await;
    let mut body = chat("mock/echo", "hi");
    body["max_tokens"] = json!(n);
    let (status, h, b) = gw
        .call("POST", "/v1/chat/completions", Some(&key), Some(body))
        .await;
    assert_eq!(status, 429, "the spend before the restart counts: {b}");
    assert!(h.contains_key("retry-after"));
}

#[tokio::test]
async fn a_stream_settles_its_reservation_with_the_real_cost_when_it_ends() {
    let gw = Gw::start(&[("RATE_OVERRIDES", "mock/echo=0/1000000")]).await;
    let (_, _, one) = gw.chat(Some(MASTER), "mock/echo").await;
    let n = one["usage"]["completion_tokens"].as_u64().unwrap();
    // Each request reserves 2n but costs n: two fit in 3n only if the first one's
    // reservation was settled down to its real cost.
    let (id, key) = gw
        .key(json!({"budget_usd": 3.0 * n as f64, "budget_period": "total"}))
        .await;
    let stream = || {
        let mut body = chat("mock/echo", "hi");
        body["max_tokens"] = json!(2 * n);
        body["stream"] = json!(true);
        let req = http::Request::post(gw.url("/v1/chat/completions"))
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json");
        send(req, body.to_string().into_bytes())
    };
    let (status, _, body) = stream().await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("[DONE]"));
    let (status, _, _) = stream().await;
    assert_eq!(
        status, 200,
        "the first stream's reservation was not settled"
    );
    let (status, _, body) = stream().await;
    assert_eq!(status, 429, "{}", String::from_utf8_lossy(&body));
    let usage = gw.usage_of(&id).await;
    assert_eq!(
        usage["totals"]["cost_usd"].as_f64().unwrap(),
        2.0 * n as f64
    );
}

#[tokio::test]
async fn virtual_keys_apply_to_the_messages_and_embeddings_endpoints() {
    let gw = Gw::start(&[("GROQ_API_KEY", "gsk_unused_in_this_test_000")]).await;
    let (id, key) = gw.key(json!({"models": ["mock/*"]})).await;
    let anthropic = |model: &str| {
        let body = json!({"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]});
        let req = http::Request::post(gw.url("/v1/messages"))
            .header("x-api-key", key.as_str())
            .header("content-type", "application/json");
        send(req, body.to_string().into_bytes())
    };
    let (status, _, body) = anthropic("mock/echo").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (status, _, body) = anthropic("groq/llama-3.1-8b-instant").await;
    assert_eq!(status, 403);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "permission_error", "{v}");
    let (status, _, body) = gw
        .call(
            "POST",
            "/v1/embeddings",
            Some(&key),
            Some(json!({"model": "mock/embed", "input": "hi"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // No key at all on the Messages API: 401 in Anthropic's shape.
    let req =
        http::Request::post(gw.url("/v1/messages")).header("content-type", "application/json");
    let (status, _, body) = send(req, b"{}".to_vec()).await;
    assert_eq!(status, 401);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["error"]["type"],
        "authentication_error"
    );
    let usage = gw.usage_of(&id).await;
    assert_eq!(usage["totals"]["requests"], 2, "{usage}");
}

/// A key's usage after [`spend_until_refused`]: some cost, never past `budget`, and one request
/// counted per answer served.
fn assert_spent_within(usage: &Value, budget: f64, served: usize) {
    let spent = usage["totals"]["cost_usd"].as_f64().unwrap();
    assert!(
        spent > 0.0 && spent <= budget + 1e-9,
        "spent {spent} of {budget}"
    );
    assert_eq!(
        usage["totals"]["requests"].as_u64(),
        Some(served as u64),
        "{usage}"
    );
}

/// Spends a key's budget through `/v1/messages` or `/v1/embeddings` (`send_one` makes one
/// request with the key) until the gateway refuses; returns (served, refusal bodies).
async fn spend_until_refused<F, Fut>(send_one: F) -> (usize, Vec<Value>)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = (u16, HashMap<String, String>, Vec<u8>)>,
{
    let (mut served, mut refused) = (0, Vec::new());
    for _ in 0..8 {
        let (status, _, body) = send_one().await;
        match status {
            200 => served += 1,
            429 => refused.push(serde_json::from_slice(&body).unwrap()),
            other => panic!("unexpected {other}: {}", String::from_utf8_lossy(&body)),
        }
    }
    (served, refused)
}

#[tokio::test]
async fn budgets_are_spent_through_messages_and_embeddings_like_chat() {
    // $1 per completion token of mock/echo and per input token of mock/embed.
    let gw = Gw::start(&[("RATE_OVERRIDES", "mock/echo=0/1000000,mock/embed=1000000/0")]).await;
    let message = |key: String| {
        let url = gw.url("/v1/messages");
        async move {
            let body = json!({"model": "mock/echo", "max_tokens": 8,
                "messages": [{"role": "user", "content": "hi"}]});
            let req = http::Request::post(url)
                .header("x-api-key", key)
                .header("content-type", "application/json");
            send(req, body.to_string().into_bytes()).await
        }
    };
    // What one message costs: its output tokens, at $1 each.
    let (status, _, one) = message(MASTER.to_owned()).await;
    assert_eq!(status, 200);
    let one: Value = serde_json::from_slice(&one).unwrap();
    let cost_of_one = one["usage"]["output_tokens"].as_f64().unwrap();
    assert!((1.0..=8.0).contains(&cost_of_one), "{one}");

    // A budget of 8 output tokens' worth: each message reserves its max_tokens (8).
    let budget = 8.0;
    let (id, key) = gw
        .key(json!({"budget_usd": budget, "budget_period": "total"}))
        .await;
    let (served, refused) = spend_until_refused(|| message(key.clone())).await;
    assert!(served >= 1, "no message served");
    assert!(!refused.is_empty(), "the budget never ran out");
    for v in &refused {
        // Anthropic's shape on this endpoint, and the message says why.
        assert_eq!(v["type"], "error", "{v}");
        assert_eq!(v["error"]["type"], "rate_limit_error", "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("budget"),
            "{v}"
        );
    }
    let usage = gw.usage_of(&id).await;
    assert_spent_within(&usage, budget, served);

    // Embeddings: "hi" is one input token, $1; a budget of $3.
    let budget = 3.0;
    let (id, key) = gw
        .key(json!({"budget_usd": budget, "budget_period": "total"}))
        .await;
    let embed = || {
        let req = http::Request::post(gw.url("/v1/embeddings"))
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json");
        send(
            req,
            json!({"model": "mock/embed", "input": "hi"})
                .to_string()
                .into_bytes(),
        )
    };
    let (served, refused) = spend_until_refused(embed).await;
    assert!(served >= 1, "no embedding served");
    assert!(!refused.is_empty(), "the budget never ran out");
    for v in &refused {
        assert_eq!(v["error"]["type"], "insufficient_quota", "{v}");
        assert_eq!(v["error"]["code"], "budget_exceeded", "{v}");
    }
    let usage = gw.usage_of(&id).await;
    assert_spent_within(&usage, budget, served);
}
