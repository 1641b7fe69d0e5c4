//! Failed requests the provider may bill: an upstream that hangs past the request timeout or
//! resets the connection after reading the request is recorded with the error status (504,
//! 502) and the prompt's cost, and settles the key's budget with it; a refused connection
//! costs nothing.

use crate::support::*;
use serde_json::{Value, json};

const MASTER: &str = "mk-billed-failures-master-key-01";

/// gpt-4o-mini's input price, USD per 1M tokens (OpenAI's pricing page).
const GPT_4O_MINI_INPUT: f64 = 0.15;

async fn gateway(base_url: String) -> TestGateway {
    TestGateway::start(&[
        ("PROXYGATE_MASTER_KEY", MASTER.into()),
        ("OPENAI_API_KEY", "sk-billed".into()),
        ("OPENAI_BASE_URL", base_url),
        ("MAX_RETRIES", "0".into()),
        ("REQUEST_TIMEOUT_MS", "400".into()),
    ])
    .await
}

async fn call(gw: &TestGateway, path: &str, key: &str, body: &Value) -> (u16, Value) {
    let req = http::Request::post(gw.url(path))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"));
    let (status, _, bytes) = send(req, body.to_string().into_bytes()).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A key with a budget: (id, key).
async fn budgeted_key(gw: &TestGateway) -> (String, String) {
    let (status, body) = call(
        gw,
        "/admin/keys",
        MASTER,
        &json!({"budget_usd": 10.0, "budget_period": "total"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    (
        body["id"].as_str().unwrap_or_default().to_owned(),
        body["key"].as_str().unwrap_or_default().to_owned(),
    )
}

async fn usage_of(gw: &TestGateway, id: &str) -> Value {
    gw.gateway.usage().flush().await.expect("flush");
    let req = http::Request::get(gw.url(&format!("/v1/usage?key={id}")))
        .header("authorization", format!("Bearer {MASTER}"));
    let (status, _, bytes) = send(req, Vec::new()).await;
    assert_eq!(status, 200);
    serde_json::from_slice(&bytes).expect("json")
}

/// One request with `key` that ends in `want_status`; returns its usage totals.
async fn failed_request(gw: &TestGateway, want_status: u16) -> Value {
    let (id, key) = budgeted_key(gw).await;
    let mut req = chat(
        "openai/gpt-4o-mini",
        "a prompt the provider has read in full",
    );
    req["max_tokens"] = json!(10);
    let (status, body) = call(gw, "/v1/chat/completions", &key, &req).await;
    assert_eq!(status, want_status, "{body}");
    let u = usage_of(gw, &id).await;
    assert_eq!(u["totals"]["requests"], 1, "{u}");
    assert_eq!(u["totals"]["errors"], 1, "{u}");
    assert_eq!(u["totals"]["completion_tokens"], 0, "{u}");
    u["totals"].clone()
}

fn assert_prompt_cost(totals: &Value) {
    let prompt = totals["prompt_tokens"].as_u64().unwrap_or_default();
    assert!(prompt > 0, "{totals}");
    let cost = totals["cost_usd"].as_f64().unwrap_or_default();
    let want = prompt as f64 * GPT_4O_MINI_INPUT / 1e6;
    assert!((cost - want).abs() < 1e-9, "{cost} != {want}: {totals}");
}

#[tokio::test]
async fn an_upstream_timeout_is_recorded_as_504_at_the_prompt_cost() {
    let upstream = FakeUpstream::start(Reply::Hang).await;
    let gw = gateway(upstream.url("/v1")).await;
    let totals = failed_request(&gw, 504).await;
    assert_eq!(upstream.hits(), 1);
    assert_prompt_cost(&totals);
}

#[tokio::test]
async fn a_reset_after_the_request_was_read_is_recorded_as_502_at_the_prompt_cost() {
    let upstream = FakeUpstream::start(Reply::Reset).await;
    let gw = gateway(upstream.url("/v1")).await;
    let totals = failed_request(&gw, 502).await;
    assert_eq!(upstream.hits(), 1, "the fake read the whole request");
    assert_prompt_cost(&totals);
}

#[tokio::test]
async fn a_refused_connection_costs_nothing() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let gw = gateway(format!("http://127.0.0.1:{port}/v1")).await;
    let totals = failed_request(&gw, 502).await;
    assert_eq!(totals["cost_usd"].as_f64(), Some(0.0), "{totals}");
}
