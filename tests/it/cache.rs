//! The response cache through the whole gateway, in one process: a repeated request is a hit
//! that never reaches the upstream and costs 0 in usage and metrics; anything that changes
//! the answer is a miss; the client's headers bypass it; it never grows past its bound; and
//! it is off unless `CACHE_ENABLED` says otherwise.

use crate::support::{FakeUpstream, Reply, TestGateway, get, post_json, send};
use serde_json::{Value, json};

fn completion() -> Value {
    json!({
        "id": "chatcmpl-up", "object": "chat.completion", "created": 1730000000, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "a priced answer"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}
    })
}

fn request(temperature: f64) -> Value {
    json!({
        "model": "openai/gpt-4o-mini", "temperature": temperature,
        "messages": [{"role": "user", "content": "cache me"}]
    })
}

async fn start(extra: &[(&str, &str)]) -> (FakeUpstream, TestGateway) {
    let upstream = FakeUpstream::start(Reply::json(completion())).await;
    let mut env = vec![
        ("OPENAI_API_KEY", "sk-test".to_owned()),
        ("OPENAI_BASE_URL", upstream.url("/v1")),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let gw = TestGateway::start(&env).await;
    (upstream, gw)
}

async fn cache_hits_metric(gw: &TestGateway) -> u64 {
    let text = String::from_utf8(get(&gw.url("/metrics")).await.1).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("proxygate_cache_hits_total "))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn usage(gw: &TestGateway, want_requests: u64) -> Value {
    for _ in 0..200 {
        let (_, body) = get(&gw.url("/v1/usage")).await;
        let v: Value = serde_json::from_slice(&body).unwrap();
        if v["totals"]["requests"] == json!(want_requests) {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("usage never reached {want_requests} requests");
}

#[tokio::test]
async fn the_same_request_twice_is_a_free_hit_that_never_reaches_the_upstream() {
    let (upstream, gw) = start(&[("CACHE_ENABLED", "true")]).await;
    let url = gw.url("/v1/chat/completions");
    let hits_before = cache_hits_metric(&gw).await;

    let (status, headers, _) = post_json(&url, &request(0.2)).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-proxygate-cache"], "miss");
    let cost: f64 = headers["x-proxygate-cost-usd"].parse().unwrap();
    assert!(cost > 0.0, "gpt-4o-mini is priced");

    let (status, headers, body) = post_json(&url, &request(0.2)).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-proxygate-cache"], "hit");
    assert_eq!(headers["x-proxygate-cost-usd"], "0");
    assert_eq!(headers["x-proxygate-provider"], "openai");
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "a priced answer");
    assert_eq!(upstream.hits(), 1, "the hit reached the upstream");

    let u = usage(&gw, 2).await;
    assert_eq!(u["totals"]["cache_hits"], json!(1));
    let spent = u["totals"]["cost_usd"].as_f64().unwrap();
    assert!(
        (spent - cost).abs() < 1e-12,
        "{spent} != {cost}: the hit was charged"
    );
    assert!(cache_hits_metric(&gw).await > hits_before);

    // A different temperature is another question.
    let (_, headers, _) = post_json(&url, &request(0.7)).await;
    assert_eq!(headers["x-proxygate-cache"], "miss");
    assert_eq!(upstream.hits(), 2);
}

#[tokio::test]
async fn the_client_headers_bypass_the_cache() {
    let (upstream, gw) = start(&[("CACHE_ENABLED", "true")]).await;
    let url = gw.url("/v1/chat/completions");
    post_json(&url, &request(0.2)).await;
    for (name, value) in [
        ("x-proxygate-cache", "bypass"),
        ("cache-control", "no-cache"),
    ] {
        let req = http::Request::post(&url)
            .header("content-type", "application/json")
            .header(name, value);
        let (status, headers, _) = send(req, request(0.2).to_string().into_bytes()).await;
        assert_eq!(status, 200);
        assert_eq!(headers["x-proxygate-cache"], "miss", "{name}: {value}");
    }
    assert_eq!(upstream.hits(), 3);
    let (_, headers, _) = post_json(&url, &request(0.2)).await;
    assert_eq!(headers["x-proxygate-cache"], "hit");
}

#[tokio::test]
async fn the_cache_never_grows_past_its_bound() {
    let (_upstream, gw) = start(&[("CACHE_ENABLED", "true"), ("CACHE_MAX_BYTES", "4096")]).await;
    let url = gw.url("/v1/chat/completions");
    for i in 0..40 {
        let mut r = request(0.2);
        r["messages"][0]["content"] = json!(format!("question number {i}"));
        assert_eq!(post_json(&url, &r).await.0, 200);
        let (entries, bytes) = gw.gateway.state().cache_usage();
        assert!(bytes <= 4096, "{bytes} bytes after {i} answers");
        assert!(entries <= i + 1);
    }
    let (entries, bytes) = gw.gateway.state().cache_usage();
    assert!(
        entries > 0 && entries < 40,
        "{entries} entries, {bytes} bytes"
    );
}

#[tokio::test]
async fn the_cache_is_off_unless_enabled() {
    let (upstream, gw) = start(&[]).await;
    let url = gw.url("/v1/chat/completions");
    for _ in 0..2 {
        let (_, headers, _) = post_json(&url, &request(0.2)).await;
        assert_eq!(headers["x-proxygate-cache"], "miss");
    }
    assert_eq!(upstream.hits(), 2);
}
