//! Resilience end to end: the gateway on loopback in front of three fake OpenAI-compatible
//! upstreams (groq, cerebras and together all serve `llama-3.1-8b`), tried in that order.
//! These run in real time, so timeouts and cool-downs are kept to tens or hundreds of ms.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MODEL: &str = "llama-3.1-8b";
const GROQ: &str = "groq/llama-3.1-8b-instant";
const CEREBRAS: &str = "cerebras/llama3.1-8b";

fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-up", "object": "chat.completion", "created": 1730000000, "model": "upstream-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
    })
}

fn chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1730000000, "model": "m",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

fn sse_event(v: &Value) -> Vec<u8> {
    format!("data: {v}\n\n").into_bytes()
}

fn ok(content: &str) -> Reply {
    Reply::json(completion(content))
}

fn server_error() -> Reply {
    Reply::status_json(
        500,
        json!({"error": {"message": "internal upstream failure", "type": "server_error"}}),
    )
}

/// Three fakes (groq, cerebras, together) and a gateway trying them in that order.
struct Three {
    a: FakeUpstream,
    b: FakeUpstream,
    c: FakeUpstream,
    gw: TestGateway,
}

impl Three {
    async fn start(a: Reply, b: Reply, c: Reply, extra: &[(&str, &str)]) -> Self {
        let (a, b, c) = (
            FakeUpstream::start(a).await,
            FakeUpstream::start(b).await,
            FakeUpstream::start(c).await,
        );
        let mut env: Vec<(&str, String)> = vec![
            ("GROQ_API_KEY", "gsk_test_a".into()),
            ("GROQ_BASE_URL", a.url("/openai/v1")),
            ("CEREBRAS_API_KEY", "csk_test_b".into()),
            ("CEREBRAS_BASE_URL", b.url("/v1")),
            ("TOGETHER_API_KEY", "tsk_test_c".into()),
            ("TOGETHER_BASE_URL", c.url("/v1")),
            ("PROVIDER_PRIORITY", "groq,cerebras,together".into()),
        ];
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push((k, (*v).to_owned()));
        }
        let gw = TestGateway::start(&env).await;
        Self { a, b, c, gw }
    }

    fn hits(&self) -> (usize, usize, usize) {
        (self.a.hits(), self.b.hits(), self.c.hits())
    }

    async fn chat(&self) -> (u16, HashMap<String, String>, Value) {
        self.post(&chat(MODEL, "Hi")).await
    }

    async fn post(&self, body: &Value) -> (u16, HashMap<String, String>, Value) {
        let (status, headers, body) = post_json(&self.gw.url("/v1/chat/completions"), body).await;
        let json = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        (status, headers, json)
    }

    async fn stream(&self) -> (u16, HashMap<String, String>, Vec<String>) {
        let mut body = chat(MODEL, "Hi");
        body["stream"] = json!(true);
        let (status, headers, body) = post_json(&self.gw.url("/v1/chat/completions"), &body).await;
        (status, headers, sse_data(&body))
    }
}

fn message(v: &Value) -> String {
    v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Polls `cond` every few ms until it holds or `within` passes.
async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cond()
}

#[tokio::test]
async fn a_500_fails_over_and_the_headers_say_who_served() {
    let t = Three::start(server_error(), ok("from B"), ok("from C"), &[]).await;
    let (status, headers, body) = t.chat().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "from B");
    assert_eq!(headers["x-proxygate-provider"], "cerebras");
    assert_eq!(headers["x-proxygate-deployment"], CEREBRAS);
    assert_eq!(headers["x-proxygate-attempts"], "2");
    assert_eq!(t.hits(), (1, 1, 0));
    // B got the request with its own model id and key.
    let sent = &t.b.requests()[0];
    assert_eq!(sent.json()["model"], "llama3.1-8b");
    assert_eq!(sent.header("authorization"), Some("Bearer csk_test_b"));
}

#[tokio::test]
async fn a_hanging_upstream_times_out_then_the_next_serves() {
    let t = Three::start(
        Reply::Hang,
        ok("from B"),
        ok("from C"),
        &[("REQUEST_TIMEOUT_MS", "200")],
    )
    .await;
    let started = Instant::now();
    let (status, headers, body) = t.chat().await;
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(headers["x-proxygate-provider"], "cerebras");
    assert_eq!(headers["x-proxygate-attempts"], "2");
    // Giving up on A closed its connection.
    assert!(t.a.wait_client_closed(1, Duration::from_secs(2)).await);
}

#[tokio::test]
async fn a_reset_connection_fails_over() {
    let t = Three::start(Reply::Reset, ok("from B"), ok("from C"), &[]).await;
    let (status, headers, body) = t.chat().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-proxygate-deployment"], CEREBRAS);
    assert_eq!(headers["x-proxygate-attempts"], "2");
    assert_eq!(t.a.hits(), 1);
}

#[tokio::test]
async fn the_circuit_opens_after_five_failures_and_probes_once_after_the_cooldown() {
    let t = Three::start(
        server_error(),
        ok("from B"),
        ok("from C"),
        &[("CIRCUIT_BREAKER_COOLDOWN_MS", "400")],
    )
    .await;
    for _ in 0..5 {
        let (status, headers, _) = t.chat().await;
        assert_eq!(
            (status, headers["x-proxygate-attempts"].as_str()),
            (200, "2")
        );
    }
    assert_eq!(t.a.hits(), 5);
    let opened = Instant::now();

    // Open: A is skipped, B serves at the first attempt.
    for _ in 0..3 {
        let (status, headers, _) = t.chat().await;
        assert_eq!(status, 200);
        assert_eq!(headers["x-proxygate-deployment"], CEREBRAS);
        assert_eq!(headers["x-proxygate-attempts"], "1");
    }
    assert_eq!(t.a.hits(), 5, "an open circuit is not contacted");

    let (status, circuits) = get(&t.gw.url("/admin/circuits")).await;
    assert_eq!(status, 200);
    let circuits: Value = serde_json::from_slice(&circuits).unwrap();
    let groq = circuits["circuits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["deployment"] == GROQ)
        .expect("groq's circuit is listed")
        .clone();
    assert_eq!(groq["state"], "open");
    assert_eq!(groq["consecutive_failures"], 5);
    assert!(groq["opened_at"].as_str().unwrap().ends_with('Z'));
    assert!(groq["next_probe_at"].is_string());
    assert!(groq["next_probe_in_ms"].as_u64().unwrap() <= 400);
    let (_, models) = get(&t.gw.url("/v1/models")).await;
    let models: Value = serde_json::from_slice(&models).unwrap();
    let row = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "groq/llama-3.1-8b-instant")
        .unwrap()
        .clone();
    assert_eq!(row["status"], "open");
    let (_, health) = get(&t.gw.url("/health")).await;
    let health: Value = serde_json::from_slice(&health).unwrap();
    assert_eq!(health["providers"]["groq"]["deployments"][GROQ], "open");

    // After the cool-down exactly one probe goes, however many requests arrive meanwhile.
    tokio::time::sleep(Duration::from_millis(450).saturating_sub(opened.elapsed())).await;
    t.a.set_fallback(server_error().after(Duration::from_millis(300)));
    let requests: Vec<_> = (0..4).map(|_| t.chat()).collect();
    for (status, _, body) in futures_util::future::join_all(requests).await {
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(t.a.hits(), 6, "exactly one probe");
    // The probe failed: open again, with a fresh cool-down.
    let (_, headers, _) = t.chat().await;
    assert_eq!(headers["x-proxygate-attempts"], "1");
    assert_eq!(t.a.hits(), 6);
}

#[tokio::test]
async fn a_manual_reset_closes_the_circuit() {
    let t = Three::start(
        server_error(),
        ok("from B"),
        ok("from C"),
        &[("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "1")],
    )
    .await;
    t.chat().await;
    assert_eq!(t.a.hits(), 1);
    t.chat().await;
    assert_eq!(t.a.hits(), 1, "open after one failure");

    let (status, _, body) = post_json(
        &t.gw.url("/admin/circuits/groq/llama-3.1-8b-instant/reset"),
        &json!({}),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (body["deployment"].as_str(), body["state"].as_str()),
        (Some(GROQ), Some("closed"))
    );
    t.a.set_fallback(ok("from A"));
    let (_, headers, _) = t.chat().await;
    assert_eq!(headers["x-proxygate-deployment"], GROQ);

    // A percent-encoded id works too; an unknown one is a 404 in the OpenAI envelope.
    let (status, _, _) = post_json(
        &t.gw
            .url("/admin/circuits/groq%2Fllama-3.1-8b-instant/reset"),
        &json!({}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, body) =
        post_json(&t.gw.url("/admin/circuits/nope/model/reset"), &json!({})).await;
    assert_eq!(status, 404);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(message(&body).contains("nope/model"), "{body}");
}

#[tokio::test]
async fn an_upstream_400_is_returned_as_is_without_failover() {
    let bad = Reply::status_json(
        400,
        json!({"error": {"message": "'messages' must contain at least one user turn", "type": "invalid_request_error"}}),
    );
    let t = Three::start(bad, ok("from B"), ok("from C"), &[]).await;
    let (status, _, body) = t.chat().await;
    assert_eq!(status, 400);
    assert!(message(&body).contains("at least one user turn"), "{body}");
    assert_eq!(t.hits(), (1, 0, 0));
}

#[tokio::test]
async fn a_429_with_retry_after_skips_that_deployment_for_that_long() {
    let t = Three::start(ok("from A"), ok("from B"), ok("from C"), &[]).await;
    t.a.script([Reply::status_json(
        429,
        json!({"error": {"message": "rate limit reached", "type": "rate_limit_error"}}),
    )
    .header("retry-after-ms", "400")]);
    let (status, headers, _) = t.chat().await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-proxygate-deployment"], CEREBRAS);
    let cooled = Instant::now();
    let (_, headers, _) = t.chat().await;
    assert_eq!(headers["x-proxygate-deployment"], CEREBRAS);
    assert_eq!(headers["x-proxygate-attempts"], "1");
    assert_eq!(t.a.hits(), 1, "A is skipped while it cools down");
    tokio::time::sleep(Duration::from_millis(450).saturating_sub(cooled.elapsed())).await;
    let (_, headers, _) = t.chat().await;
    assert_eq!(headers["x-proxygate-deployment"], GROQ);
    assert_eq!(t.a.hits(), 2);
}

#[tokio::test]
async fn a_429_from_the_only_deployment_stays_429() {
    let t = Three::start(ok("from A"), ok("from B"), ok("from C"), &[]).await;
    t.a.script([Reply::status_json(
        429,
        json!({"error": {"message": "rate limit reached", "type": "rate_limit_error"}}),
    )
    .header("retry-after", "7")]);
    let (status, headers, body) = t.post(&chat(GROQ, "Hi")).await;
    assert_eq!(status, 429, "{body}");
    let after: u64 = headers["retry-after"].parse().unwrap();
    assert!((1..=7).contains(&after));
    assert_eq!(t.hits(), (1, 0, 0));
    // While it cools, the gateway answers 429 itself, never later than the upstream said.
    let (status, headers, body) = t.post(&chat(GROQ, "Hi")).await;
    assert_eq!(status, 429, "{body}");
    let again: u64 = headers["retry-after"].parse().unwrap();
    assert!((1..=after).contains(&again));
    assert_eq!(t.hits(), (1, 0, 0));
}

#[tokio::test]
async fn a_stream_failing_midway_is_not_retried_and_ends_with_an_error_event() {
    let b = Reply::Stream {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        pieces: vec![
            (
                Duration::ZERO,
                sse_event(&chunk(json!({"role": "assistant", "content": "Hel"}), None)),
            ),
            (
                Duration::ZERO,
                sse_event(&chunk(json!({"content": "lo"}), None)),
            ),
            // A comment last, so the reset cannot take a chunk with it.
            (Duration::from_millis(30), b": padding\n\n".to_vec()),
        ],
        end: End::Reset,
    };
    let t = Three::start(server_error(), b, ok("from C"), &[]).await;
    let (status, headers, events) = t.stream().await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-proxygate-deployment"], CEREBRAS);
    assert_eq!(headers["x-proxygate-attempts"], "2");
    let text: String = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "Hello");
    let error = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .find(|v| v.get("error").is_some());
    assert!(error.is_some(), "{events:?}");
    assert!(
        events.last().is_some_and(|e| e.contains("\"error\"")),
        "a cut stream ends with its error event: {events:?}"
    );
    assert!(!events.iter().any(|e| e == "[DONE]"), "{events:?}");
    assert_eq!(t.hits(), (1, 1, 0), "no failover after the first chunk");
}

#[tokio::test]
async fn a_stalled_stream_ends_with_an_idle_timeout_event() {
    let a = Reply::openai_sse(&[chunk(json!({"role": "assistant", "content": "Hi"}), None)])
        .ending(End::Hang);
    // openai_sse ends with [DONE]; keep only the first piece so the stream stalls.
    let a = match a {
        Reply::Stream {
            status,
            headers,
            mut pieces,
            end,
        } => {
            pieces.truncate(1);
            Reply::Stream {
                status,
                headers,
                pieces,
                end,
            }
        }
        other => other,
    };
    let t = Three::start(
        a,
        ok("from B"),
        ok("from C"),
        &[("STREAM_IDLE_TIMEOUT_MS", "200")],
    )
    .await;
    let (status, _, events) = t.stream().await;
    assert_eq!(status, 200);
    let last_json: Vec<Value> = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .collect();
    let err = last_json.last().expect("events");
    assert!(message(err).contains("did not answer"), "{events:?}");
    assert!(!events.iter().any(|e| e == "[DONE]"), "{events:?}");
    assert!(t.a.wait_client_closed(1, Duration::from_secs(2)).await);
    assert_eq!(t.hits(), (1, 0, 0));
}

#[tokio::test]
async fn every_circuit_open_is_a_fast_503_with_retry_after_and_no_upstream_call() {
    let t = Three::start(
        server_error(),
        server_error(),
        server_error(),
        &[
            ("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "1"),
            ("CIRCUIT_BREAKER_COOLDOWN_MS", "5000"),
        ],
    )
    .await;
    let (status, _, body) = t.chat().await;
    assert_eq!(status, 502, "{body}");
    let msg = message(&body);
    for provider in ["groq", "cerebras", "together"] {
        assert!(msg.contains(provider), "{msg}");
    }
    assert_eq!(t.hits(), (1, 1, 1));

    let started = Instant::now();
    let (status, headers, body) = t.chat().await;
    assert_eq!(status, 503, "{body}");
    assert!(started.elapsed() < Duration::from_secs(1));
    let after: u64 = headers["retry-after"].parse().unwrap();
    assert!((1..=5).contains(&after), "{after}");
    assert_eq!(body["error"]["type"], "service_unavailable_error");
    assert_eq!(t.hits(), (1, 1, 1), "no upstream contacted");
}

#[tokio::test]
async fn failover_disabled_or_no_retries_make_one_attempt() {
    for (key, value) in [("FAILOVER_ENABLED", "false"), ("MAX_RETRIES", "0")] {
        let t = Three::start(server_error(), ok("from B"), ok("from C"), &[(key, value)]).await;
        let (status, _, body) = t.chat().await;
        assert_eq!(status, 502, "{key}: {body}");
        assert_eq!(t.hits(), (1, 0, 0), "{key}");
    }
}

#[tokio::test]
async fn max_retries_bounds_the_attempts() {
    let t = Three::start(
        server_error(),
        server_error(),
        ok("from C"),
        &[("MAX_RETRIES", "1")],
    )
    .await;
    let (status, _, body) = t.chat().await;
    assert_eq!(status, 502, "{body}");
    assert!(message(&body).contains("groq") && message(&body).contains("cerebras"));
    assert_eq!(t.hits(), (1, 1, 0));
}

#[tokio::test]
async fn a_single_hanging_deployment_is_a_504() {
    let t = Three::start(
        Reply::Hang,
        ok("from B"),
        ok("from C"),
        &[("REQUEST_TIMEOUT_MS", "150")],
    )
    .await;
    let (status, _, body) = t.post(&chat(GROQ, "Hi")).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["type"], "timeout_error");
    assert_eq!(t.hits(), (1, 0, 0));
}

#[tokio::test]
async fn the_overall_deadline_bounds_every_attempt() {
    let t = Three::start(
        Reply::Hang,
        Reply::Hang,
        ok("from C"),
        &[("REQUEST_TIMEOUT_MS", "300"), ("OVERALL_TIMEOUT_MS", "400")],
    )
    .await;
    let started = Instant::now();
    let (status, _, body) = t.chat().await;
    assert_eq!(status, 504, "{body}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        t.c.hits(),
        0,
        "no attempt starts after the overall deadline"
    );
}

#[tokio::test]
async fn a_model_chain_falls_back_to_the_next_model() {
    let b = FakeUpstream::start(ok("from the 70b")).await;
    b.script([server_error()]);
    let gw = TestGateway::start(&[
        ("CEREBRAS_API_KEY", "csk_test_b".into()),
        ("CEREBRAS_BASE_URL", b.url("/v1")),
        ("PROVIDER_PRIORITY", "llama-3.1-8b,llama-3.1-70b".into()),
    ])
    .await;
    let (status, headers, body) =
        post_json(&gw.url("/v1/chat/completions"), &chat(MODEL, "Hi")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["x-proxygate-deployment"], "cerebras/llama-3.3-70b");
    assert_eq!(headers["x-proxygate-attempts"], "2");
    let models: Vec<Value> = b
        .requests()
        .iter()
        .map(|r| r.json()["model"].clone())
        .collect();
    assert_eq!(models, [json!("llama3.1-8b"), json!("llama-3.3-70b")]);
}

/// Sends a chat request over a raw socket and returns the socket (to drop it mid-request).
async fn raw_request(gw: &TestGateway, body: &Value) -> tokio::net::TcpStream {
    let addr = gw.base.trim_start_matches("http://");
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = body.to_string();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(body.as_bytes()).await.unwrap();
    sock
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_the_upstream_request() {
    let t = Three::start(Reply::Hang, ok("from B"), ok("from C"), &[]).await;
    let sock = raw_request(&t.gw, &chat(MODEL, "Hi")).await;
    assert!(eventually(Duration::from_secs(2), || t.a.hits() == 1).await);
    assert_eq!(t.a.client_closed(), 0);
    drop(sock);
    assert!(
        t.a.wait_client_closed(1, Duration::from_secs(2)).await,
        "the upstream request was not cancelled"
    );
    assert_eq!(t.b.hits(), 0, "a cancelled request does not fail over");
}

#[tokio::test]
async fn a_client_that_leaves_a_stream_cancels_the_upstream_stream() {
    let a = Reply::Stream {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        pieces: vec![(
            Duration::ZERO,
            format!(
                "data: {}\n\n",
                chunk(json!({"role": "assistant", "content": "Hi"}), None)
            )
            .into_bytes(),
        )],
        end: End::Hang,
    };
    let t = Three::start(a, ok("from B"), ok("from C"), &[]).await;
    let mut body = chat(MODEL, "Hi");
    body["stream"] = json!(true);
    let mut sock = raw_request(&t.gw, &body).await;
    // Read until the first event has arrived.
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("data: ") {
        let n = tokio::time::timeout(Duration::from_secs(2), sock.read(&mut buf))
            .await
            .expect("the first event arrives")
            .unwrap();
        assert!(n > 0, "gateway closed early");
        seen.extend_from_slice(&buf[..n]);
    }
    assert_eq!(t.a.client_closed(), 0);
    drop(sock);
    assert!(
        t.a.wait_client_closed(1, Duration::from_secs(2)).await,
        "the upstream stream was not cancelled"
    );
}

#[tokio::test]
async fn round_robin_spreads_requests_over_every_deployment() {
    let t = Three::start(
        ok("from A"),
        ok("from B"),
        ok("from C"),
        &[("ROUTING_STRATEGY", "round-robin")],
    )
    .await;
    for _ in 0..6 {
        let (status, headers, _) = t.chat().await;
        assert_eq!(status, 200);
        assert_eq!(headers["x-proxygate-attempts"], "1");
    }
    assert_eq!(t.hits(), (2, 2, 2));
}
