//! A chat completion that an OpenAI-format upstream already wrote in the shape a chat client
//! gets (OpenAI's own answers, with `refusal` and `logprobs` present) reaches the client byte
//! for byte, priced and recorded from its usage; anything that would change on the way (a
//! missing field, a key prefix to scrub, a client of another API) takes the decoding path.

use crate::support::{FakeUpstream, Reply, TestGateway, get, post_json};
use serde_json::{Value, json};

/// OpenAI's answer as its chat completions API writes it (its field order is not the one the
/// gateway writes, so a decoded and re-encoded answer would differ in its bytes).
const ANSWER: &str = r#"{"id":"chatcmpl-Bx1","object":"chat.completion","created":1730000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","service_tier":"default","choices":[{"index":0,"message":{"role":"assistant","content":"Oslo is \"cold\"\nin winter.","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":1000,"completion_tokens":500,"total_tokens":1500,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}"#;

const KEY: &str = "sk-proj-passthrough-0123456789";

async fn start(answer: &str, extra: &[(&str, &str)]) -> (FakeUpstream, TestGateway) {
    let upstream = FakeUpstream::start(Reply::raw(200, "application/json", answer)).await;
    let mut env = vec![
        ("OPENAI_API_KEY", KEY.to_owned()),
        ("OPENAI_BASE_URL", upstream.url("/v1")),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    (upstream, TestGateway::start(&env).await)
}

fn request() -> Value {
    json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Oslo?"}]})
}

async fn usage_totals(gw: &TestGateway, requests: u64) -> Value {
    for _ in 0..200 {
        let (_, body) = get(&gw.url("/v1/usage")).await;
        let v: Value = serde_json::from_slice(&body).unwrap_or_default();
        if v["totals"]["requests"] == json!(requests) {
            return v["totals"].clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("usage never reached {requests} requests");
}

#[tokio::test]
async fn an_answer_in_the_clients_shape_arrives_byte_for_byte_priced_and_recorded() {
    let (_upstream, gw) = start(ANSWER, &[]).await;
    let (status, headers, body) = post_json(&gw.url("/v1/chat/completions"), &request()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(String::from_utf8(body).unwrap(), ANSWER);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-proxygate-provider"], "openai");
    assert_eq!(headers["x-proxygate-deployment"], "openai/gpt-4o-mini");
    assert_eq!(headers["x-proxygate-cache"], "miss");
    // gpt-4o-mini: $0.15 per million prompt tokens, $0.60 per million completion tokens.
    let cost: f64 = headers["x-proxygate-cost-usd"].parse().unwrap();
    assert!((cost - 0.00045).abs() < 1e-12, "{cost}");

    let totals = usage_totals(&gw, 1).await;
    assert_eq!(totals["prompt_tokens"], json!(1000), "{totals}");
    assert_eq!(totals["completion_tokens"], json!(500), "{totals}");
    assert!((totals["cost_usd"].as_f64().unwrap() - 0.00045).abs() < 1e-12);
}

#[tokio::test]
async fn an_answer_without_refusal_and_logprobs_gets_them_as_null() {
    let lean = ANSWER
        .replace(r#","refusal":null"#, "")
        .replace(r#""logprobs":null,"#, "");
    let (_upstream, gw) = start(&lean, &[]).await;
    let (status, _, body) = post_json(&gw.url("/v1/chat/completions"), &request()).await;
    assert_eq!(status, 200);
    let got: Value = serde_json::from_slice(&body).unwrap();
    let want: Value = serde_json::from_str(ANSWER).unwrap();
    assert_eq!(got, want);
}

#[tokio::test]
async fn an_answer_that_names_a_key_prefix_is_scrubbed() {
    // Upstreams echo keys masked (`sk-pr***789`): no verbatim pass for such a body.
    let leaky = ANSWER.replace(
        r#"Oslo is \"cold\"\nin winter."#,
        "the key sk-proj***6789 is not valid",
    );
    let (_upstream, gw) = start(&leaky, &[]).await;
    let (status, _, body) = post_json(&gw.url("/v1/chat/completions"), &request()).await;
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    assert!(!text.contains("sk-p"), "{text}");
    let got: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        got["choices"][0]["message"]["content"],
        "the key *** is not valid"
    );
}

#[tokio::test]
async fn the_cache_keeps_a_verbatim_answer_and_serves_the_same_fields() {
    let (upstream, gw) = start(ANSWER, &[("CACHE_ENABLED", "true")]).await;
    let url = gw.url("/v1/chat/completions");
    let (_, headers, first) = post_json(&url, &request()).await;
    assert_eq!(headers["x-proxygate-cache"], "miss");
    assert_eq!(first, ANSWER.as_bytes());
    let (status, headers, second) = post_json(&url, &request()).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-proxygate-cache"], "hit");
    assert_eq!(upstream.hits(), 1);
    let second: Value = serde_json::from_slice(&second).unwrap();
    let want: Value = serde_json::from_str(ANSWER).unwrap();
    assert_eq!(second["choices"], want["choices"]);
    assert_eq!(second["usage"], want["usage"]);
}

#[tokio::test]
async fn a_messages_client_gets_its_own_shape_from_the_same_upstream() {
    let (_upstream, gw) = start(ANSWER, &[]).await;
    let (status, _, body) = post_json(
        &gw.url("/v1/messages"),
        &json!({"model": "openai/gpt-4o-mini", "max_tokens": 64,
                "messages": [{"role": "user", "content": "Oslo?"}]}),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let msg: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(msg["type"], "message");
    assert_eq!(msg["content"][0]["text"], "Oslo is \"cold\"\nin winter.");
    assert_eq!(msg["usage"]["output_tokens"], 500);
}

#[tokio::test]
async fn absurd_token_counts_are_bounded_and_every_request_still_answers() {
    let max = u64::MAX.to_string();
    let huge = ANSWER.replace(
        r#""prompt_tokens":1000,"completion_tokens":500,"total_tokens":1500"#,
        &format!(r#""prompt_tokens":{max},"completion_tokens":{max},"total_tokens":{max}"#),
    );
    // Verbatim, and through the decoding path (no `refusal`).
    for answer in [huge.clone(), huge.replace(r#","refusal":null"#, "")] {
        let (_upstream, gw) = start(&answer, &[]).await;
        for _ in 0..2 {
            let (status, _, body) = post_json(&gw.url("/v1/chat/completions"), &request()).await;
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        }
        let totals = usage_totals(&gw, 2).await;
        // Each record takes at most 2^40 tokens of a kind.
        assert_eq!(totals["prompt_tokens"], json!(2u64 << 40), "{totals}");
        assert_eq!(totals["completion_tokens"], json!(2u64 << 40), "{totals}");
    }
}
