//! The OpenAI-compatible family end to end: gateway on loopback, fake upstream on loopback.
//!
//! The scenarios every provider shares run in [`crate::conformance`]; this module keeps the
//! family's own behaviour and the gateway's edge (validation, limits, routes, the master key).

use std::time::Duration;

use crate::support::*;
use serde_json::{Value, json};

fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-up", "object": "chat.completion", "created": 1730000000, "model": "llama-3.1-8b-instant",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12, "queue_time": 0.01}
    })
}

fn chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1730000000, "model": "m",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

async fn groq_gateway(fake: &FakeUpstream) -> TestGateway {
    TestGateway::start(&[
        ("GROQ_API_KEY", "gsk_secret_test_key".into()),
        ("GROQ_BASE_URL", fake.url("/openai/v1")),
    ])
    .await
}

#[tokio::test]
async fn groq_is_called_with_path_auth_and_body() {
    let fake = FakeUpstream::start(Reply::json(completion("Hello!"))).await;
    let gw = groq_gateway(&fake).await;
    let mut body = chat("groq/llama-3.1-8b-instant", "Hi");
    body["temperature"] = json!(0.3);
    body["some_new_param"] = json!({"x": 1});
    let (status, headers, resp) = post_json(&gw.url("/v1/chat/completions"), &body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    let resp: Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(resp["choices"][0]["message"]["content"], "Hello!");
    assert_eq!(resp["object"], "chat.completion");
    assert!(
        resp["choices"][0]["message"]
            .as_object()
            .unwrap()
            .contains_key("refusal")
    );
    assert!(
        resp["choices"][0]
            .as_object()
            .unwrap()
            .contains_key("logprobs")
    );
    assert_eq!(headers["x-proxygate-provider"], "groq");
    assert_eq!(
        headers["x-proxygate-deployment"],
        "groq/llama-3.1-8b-instant"
    );
    assert_eq!(headers["x-proxygate-attempts"], "1");
    // Groq is a free-key provider: it costs 0 unless BILL_FREE_TIERS (tests/it/usage.rs).
    assert_eq!(headers["x-proxygate-cost-usd"], "0");
    assert_eq!(headers["x-proxygate-cache"], "miss");

    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/openai/v1/chat/completions")
    );
    assert_eq!(
        r.header("authorization"),
        Some("Bearer gsk_secret_test_key")
    );
    assert_eq!(r.header("host"), Some(fake.addr().to_string().as_str()));
    let sent = r.json();
    assert_eq!(sent["model"], "llama-3.1-8b-instant");
    assert_eq!(sent["temperature"], 0.3);
    assert_eq!(sent["some_new_param"]["x"], 1);
    assert_eq!(sent["messages"][0]["content"], "Hi");
}

#[tokio::test]
async fn bare_catalog_name_reaches_the_configured_provider() {
    let fake = FakeUpstream::start(Reply::json(completion("ok"))).await;
    let gw = groq_gateway(&fake).await;
    let (status, headers, _) =
        post_json(&gw.url("/v1/chat/completions"), &chat("llama-3.1-8b", "Hi")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-proxygate-provider"], "groq");
    assert_eq!(fake.requests()[0].json()["model"], "llama-3.1-8b-instant");
}

#[tokio::test]
async fn upstream_errors_come_back_in_the_openai_envelope() {
    let fake = FakeUpstream::start(Reply::json(completion("unused"))).await;
    let gw = groq_gateway(&fake).await;
    let url = gw.url("/v1/chat/completions");

    fake.script([Reply::status_json(400, json!({"error": {"message": "context_length_exceeded: too long", "type": "invalid_request_error", "code": "context_length_exceeded"}}))]);
    let (status, _, body) = post_json(&url, &chat("groq/m", "x")).await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("too long"));
    assert_eq!(v["error"]["code"], "context_length_exceeded");

    fake.script([Reply::raw(
        502,
        "text/html",
        "<html><body>Bad gateway</body></html>",
    )]);
    let (status, _, body) = post_json(&url, &chat("groq/m", "x")).await;
    assert_eq!(status, 502);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!(v["error"]["message"].is_string());

    // A bad provider key must not leak, whole or in part, even when the upstream echoes it.
    fake.script([Reply::status_json(401, json!({"error": {"message": "Incorrect API key provided: gsk_secret_test_key", "code": "invalid_api_key"}}))]);
    let (status, _, body) = post_json(&url, &chat("groq/m", "x")).await;
    assert_eq!(status, 502);
    let text = String::from_utf8_lossy(&body);
    assert!(!text.contains("gsk_"), "{text}");

    // Last: a 429 cools the deployment for its retry-after.
    fake.script([Reply::status_json(429, json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}})).header("retry-after", "7")]);
    let (status, headers, body) = post_json(&url, &chat("groq/m", "x")).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "7");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");
    // The deployment now cools for the retry-after: the gateway answers 429 itself.
    let hits = fake.hits();
    let (status, headers, _) = post_json(&url, &chat("groq/m", "x")).await;
    assert_eq!(status, 429);
    assert!(headers["retry-after"].parse::<u64>().unwrap() <= 7);
    assert_eq!(fake.hits(), hits);
}

#[tokio::test]
async fn streams_are_forwarded_chunk_by_chunk_with_usage_only_when_asked() {
    let events = [
        chunk(json!({"role": "assistant", "content": ""}), None),
        chunk(json!({"content": "Hél"}), None),
        chunk(json!({"content": "lo"}), None),
        {
            let mut c = chunk(json!({}), Some("stop"));
            c["x_groq"] =
                json!({"usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}});
            c
        },
    ];
    // Written in awkward pieces: inside a UTF-8 character, inside JSON, CRLF, keep-alive comments.
    let mut raw = String::from(": keep-alive\r\n\r\n");
    for e in &events {
        raw.push_str(&format!("data: {e}\r\n\r\n"));
    }
    raw.push_str("data: [DONE]\r\n\r\n");
    let cut = raw.find("Hél").unwrap() + 2; // inside 'é'
    let reply = Reply::Stream {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        pieces: split_at(&raw, &[5, 40, cut, cut + 30, raw.len() - 3]),
        end: End::Finish,
    };
    let fake = FakeUpstream::start(reply.clone()).await;
    let gw = groq_gateway(&fake).await;
    let url = gw.url("/v1/chat/completions");

    let mut body = chat("groq/m", "Hi");
    body["stream"] = json!(true);
    let (status, headers, resp) = post_json(&url, &body).await;
    assert_eq!(status, 200);
    assert!(headers["content-type"].starts_with("text/event-stream"));
    let data = sse_data(&resp);
    assert_eq!(data.last().unwrap(), "[DONE]");
    assert_eq!(data.iter().filter(|d| *d == "[DONE]").count(), 1);
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Héllo");
    assert!(
        chunks
            .iter()
            .all(|c| c.get("usage").is_none_or(Value::is_null)
                && !c["choices"].as_array().unwrap().is_empty())
    );
    // The gateway asked the upstream for usage anyway.
    assert_eq!(
        fake.requests()[0].json()["stream_options"]["include_usage"],
        true
    );

    body["stream_options"] = json!({"include_usage": true});
    let (_, _, resp) = post_json(&url, &body).await;
    let data = sse_data(&resp);
    let last: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["total_tokens"], 7);
}

#[tokio::test]
async fn a_stream_cut_midway_ends_with_an_error_event() {
    let reply = Reply::sse(&[&format!(
        "data: {}\n\n",
        chunk(json!({"role": "assistant", "content": "partial"}), None)
    )])
    .ending(End::Reset);
    let fake = FakeUpstream::start(reply).await;
    let gw = groq_gateway(&fake).await;
    let mut body = chat("groq/m", "Hi");
    body["stream"] = json!(true);
    let (status, _, resp) = post_json(&gw.url("/v1/chat/completions"), &body).await;
    assert_eq!(status, 200);
    let data = sse_data(&resp);
    assert!(data[0].contains("partial"));
    assert!(
        data.iter().any(|d| serde_json::from_str::<Value>(d)
            .map(|v| v.get("error").is_some())
            .unwrap_or(false)),
        "{data:?}"
    );
}

#[tokio::test]
async fn connections_are_reused() {
    let fake = FakeUpstream::start(Reply::json(completion("ok"))).await;
    let gw = groq_gateway(&fake).await;
    for _ in 0..5 {
        let (status, _, _) =
            post_json(&gw.url("/v1/chat/completions"), &chat("groq/m", "Hi")).await;
        assert_eq!(status, 200);
    }
    assert_eq!(fake.hits(), 5);
    assert!(
        fake.connections() < 5,
        "{} connections for 5 requests",
        fake.connections()
    );
}

#[tokio::test]
async fn unreachable_upstream_is_a_502() {
    // Bound but not listening, and held until the end: connections are refused, and no other
    // socket in this process (a fake, a gateway, an outgoing connection) can take the port.
    let dead_socket = tokio::net::TcpSocket::new_v4().unwrap();
    dead_socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let dead = format!("http://{}/v1", dead_socket.local_addr().unwrap());
    let gw = TestGateway::start(&[("GROQ_API_KEY", "k".into()), ("GROQ_BASE_URL", dead)]).await;
    let (status, _, body) = post_json(&gw.url("/v1/chat/completions"), &chat("groq/m", "Hi")).await;
    assert_eq!(status, 502, "{}", String::from_utf8_lossy(&body));
    drop(dead_socket);
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_field() {
    let gw = TestGateway::start(&[]).await;
    let url = gw.url("/v1/chat/completions");
    let cases: &[(&[u8], &str)] = &[
        (b"", "body"),
        (b"{oops", "json"),
        (br#"{"model":"mock/echo"}"#, "messages"),
        (br#"{"messages":[{"role":"user","content":"x"}]}"#, "model"),
        (br#"{"model":"mock/echo","messages":[{"role":"robot","content":"x"}]}"#, "role"),
        (br#"{"model":"mock/echo","messages":[{"role":"user","content":"x"}],"temperature":"warm"}"#, "temperature"),
        (br#"{"model":"mock/echo","messages":[{"role":"user","content":"x"}],"stream":3}"#, "stream"),
    ];
    for (body, field) in cases {
        let (status, _, resp) = post_raw(&url, body.to_vec(), "application/json").await;
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(body));
        let v: Value = serde_json::from_slice(&resp).unwrap();
        let text = format!("{} {}", v["error"]["message"], v["error"]["param"]);
        assert!(text.contains(field), "{field} not named in {text}");
    }
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_and_nine_mib_passes() {
    let gw = TestGateway::start(&[]).await;
    let url = gw.url("/v1/chat/completions");
    let big = "a".repeat(11 * 1024 * 1024);
    let (status, _, resp) = post_json(&url, &chat("mock/echo", &big)).await;
    assert_eq!(status, 413);
    let v: Value = serde_json::from_slice(&resp).unwrap();
    assert!(v["error"]["message"].is_string());
    let ok = "a ".repeat(9 * 1024 * 1024 / 2 - 100);
    let (status, _, _) = post_json(&url, &chat("mock/echo", &ok)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn unknown_model_is_404_and_unconfigured_names_the_env_var() {
    let gw = TestGateway::start(&[]).await;
    let url = gw.url("/v1/chat/completions");
    let (status, _, body) = post_json(&url, &chat("no-such-model-xyz", "x")).await;
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("no-such-model-xyz"));
    let (status, _, body) = post_json(&url, &chat("groq/llama-3.1-8b-instant", "x")).await;
    assert!(status == 503 || status == 404);
    assert!(String::from_utf8_lossy(&body).contains("GROQ_API_KEY"));
}

#[tokio::test]
async fn models_health_and_metrics() {
    let gw = TestGateway::start(&[]).await;
    let (status, body) = get(&gw.url("/v1/models")).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["object"], "list");
    let data = v["data"].as_array().unwrap();
    let echo = data.iter().find(|m| m["id"] == "mock/echo").unwrap();
    assert_eq!(
        (
            echo["provider"].as_str(),
            echo["tier"].as_str(),
            echo["status"].as_str()
        ),
        (Some("mock"), Some("keyless"), Some("healthy"))
    );
    let groq = data
        .iter()
        .find(|m| m["id"] == "groq/llama-3.1-8b-instant")
        .unwrap();
    assert_eq!(groq["status"], "unconfigured");
    assert_eq!(groq["tier"], "free-key");

    let (status, body) = get(&gw.url("/health")).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["providers"]["mock"]["status"], "healthy");

    let _ = post_json(&gw.url("/v1/chat/completions"), &chat("mock/echo", "hi")).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    let (status, body) = get(&gw.url("/metrics")).await;
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    for name in [
        "proxygate_requests_total",
        "proxygate_inflight_requests",
        "proxygate_request_duration_seconds",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
}

#[tokio::test]
async fn wrong_method_and_unknown_path_answer_in_the_envelope() {
    let gw = TestGateway::start(&[]).await;
    let (status, body) = get(&gw.url("/v1/chat/completions")).await;
    assert_eq!(status, 405);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("GET"));
    let (status, body) = get(&gw.url("/v1/nothing-here")).await;
    assert_eq!(status, 404);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/v1/nothing-here")
    );
}

#[tokio::test]
async fn the_master_key_guards_v1_and_admin_but_not_health() {
    let gw = TestGateway::start(&[("PROXYGATE_MASTER_KEY", "pg-master-secret".into())]).await;
    let url = gw.url("/v1/chat/completions");
    let body = chat("mock/echo", "hi").to_string().into_bytes();

    let (status, _, resp) = post_raw(&url, body.clone(), "application/json").await;
    assert_eq!(status, 401);
    let v: Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(v["error"]["type"], "authentication_error");

    let wrong = http::Request::post(&url)
        .header("content-type", "application/json")
        .header("authorization", "Bearer nope");
    let (status, _, resp) = send(wrong, body.clone()).await;
    assert_eq!(status, 401);
    assert!(!String::from_utf8_lossy(&resp).contains("pg-master-secret"));

    let right = http::Request::post(&url)
        .header("content-type", "application/json")
        .header("authorization", "Bearer pg-master-secret");
    let (status, _, _) = send(right, body).await;
    assert_eq!(status, 200);

    assert_eq!(get(&gw.url("/v1/models")).await.0, 401);
    assert_eq!(get(&gw.url("/admin/circuits")).await.0, 401);
    assert_eq!(get(&gw.url("/health")).await.0, 200);
}

#[tokio::test]
async fn the_upstream_gets_the_clients_bytes_with_only_the_model_replaced() {
    let fake = FakeUpstream::start(Reply::json(completion("Hello!"))).await;
    let gw = groq_gateway(&fake).await;
    let answered = async |raw: &str| {
        let (status, _, resp) = post_raw(
            &gw.url("/v1/chat/completions"),
            raw.as_bytes().to_vec(),
            "application/json",
        )
        .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    };
    // Field order, spacing and number spelling are the client's own.
    let raw = r#"{ "temperature": 0.30, "messages": [ {"role": "user", "content": "say \"model\": 1"} ],
  "model": "groq/llama-3.1-8b-instant", "metadata": {"model": "kept"}, "max_tokens": 8 }"#;
    answered(raw).await;
    let sent = String::from_utf8(fake.requests()[0].body.clone()).unwrap();
    assert_eq!(
        sent,
        raw.replace(
            r#""groq/llama-3.1-8b-instant""#,
            r#""llama-3.1-8b-instant""#
        )
    );

    // A fallback list is the gateway's, not the upstream's: that body is written anew.
    answered(r#"{"model":"groq/llama-3.1-8b-instant","models":["groq/llama-3.3-70b-versatile"],"messages":[{"role":"user","content":"hi"}]}"#).await;
    let sent = fake.requests()[1].json();
    assert_eq!(sent["model"], "llama-3.1-8b-instant");
    assert!(sent.get("models").is_none(), "{sent}");
}

/// What a subscriber on this thread writes while the returned guard lives.
fn capture_logs() -> (
    std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    tracing::subscriber::DefaultGuard,
) {
    #[derive(Clone)]
    struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf(Default::default());
    let out = buf.0.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || buf.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    (out, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn an_upstream_failure_answered_with_a_5xx_is_not_an_error_line_per_request() {
    let (log, _guard) = capture_logs();
    let fake = FakeUpstream::start(Reply::status_json(
        500,
        json!({"error": {"message": "boom", "type": "server_error"}}),
    ))
    .await;
    let gw = groq_gateway(&fake).await;
    for _ in 0..3 {
        let (status, _, _) = post_json(
            &gw.url("/v1/chat/completions"),
            &chat("groq/llama-3.1-8b-instant", "Hi"),
        )
        .await;
        assert!(status >= 500, "{status}");
    }
    let log = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    assert!(!log.contains("response failed"), "{log}");
    assert!(!log.contains("ERROR"), "{log}");
}

#[tokio::test]
async fn the_gateway_mounted_under_a_prefix_of_another_axum_app_answers_there() {
    let mut env = std::collections::HashMap::new();
    env.insert("USAGE_DB_PATH".to_owned(), ":memory:".to_owned());
    let config = proxygate::Config::from_env(&env, proxygate::catalog::Catalog::default())
        .expect("valid config");
    let gateway = proxygate::Gateway::new(config)
        .await
        .expect("gateway builds");
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "the app" }))
        .nest("/llm", gateway.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let (status, _, body) = post_json(
        &format!("http://{addr}/llm/v1/chat/completions"),
        &chat("mock/echo", "hi"),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (status, _) = get(&format!("http://{addr}/llm/health")).await;
    assert_eq!(status, 200);
    let (status, body) = get(&format!("http://{addr}/")).await;
    assert_eq!((status, body.as_slice()), (200, b"the app".as_slice()));
    server.abort();
}
