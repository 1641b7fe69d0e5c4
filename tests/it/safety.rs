//! The built binary under attack from a web page, a tenant and a slow or malformed client:
//! each attack is refused with the right status (or the connection closed), and the same
//! process still answers `/health` and a normal request afterwards.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{FakeUpstream, Reply, chat, send};

const MASTER: &str = "sk-master-safety-test";

/// A `proxygate` process on a free loopback port, killed on drop.
struct Bin {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Bin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Bin {
    async fn start(env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_proxygate"));
        cmd.current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", port.to_string())
            .env("USAGE_DB_PATH", ":memory:")
            .env("USAGE_JOURNAL_DIR", "off")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("binary starts");
        let bin = Self {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the binary did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bin
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// POSTs JSON with the given extra headers.
    async fn post(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> (u16, HashMap<String, String>, Value) {
        let mut req =
            http::Request::post(self.url(path)).header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let (status, headers, body) = send(req, body.to_string().into_bytes()).await;
        (
            status,
            headers,
            serde_json::from_slice(&body).unwrap_or(Value::Null),
        )
    }

    /// The process still answers `/health` and a normal chat request.
    async fn assert_alive(&self, auth: Option<&str>) {
        let (status, _, _) = send(http::Request::get(self.url("/health")), Vec::new()).await;
        assert_eq!(status, 200, "/health after the attack");
        let bearer = auth.map(|k| format!("Bearer {k}"));
        let headers: Vec<(&str, &str)> = bearer
            .as_deref()
            .map(|b| vec![("authorization", b)])
            .unwrap_or_default();
        let (status, _, body) = self
            .post(
                "/v1/chat/completions",
                &chat("mock/echo", "still there?"),
                &headers,
            )
            .await;
        assert_eq!(status, 200, "a normal request after the attack: {body}");
    }
}

fn error_names(body: &Value, field: &str) -> bool {
    let e = &body["error"];
    e["param"].as_str() == Some(field) || e["message"].as_str().is_some_and(|m| m.contains(field))
}

/// Sends raw bytes and returns everything read until the server closes or `within` passes.
async fn raw(port: u16, bytes: &[u8], within: Duration) -> (String, bool) {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

#[tokio::test]
async fn a_forged_host_is_refused_on_an_open_gateway() {
    let gw = Bin::start(&[("ALLOWED_HOSTS", "gateway.internal")]).await;
    for path in ["/v1/models", "/health", "/admin/keys"] {
        let req = http::Request::get(gw.url(path)).header("host", "attacker.example:3333");
        let (status, _, _) = send(req, Vec::new()).await;
        assert_eq!(status, 403, "{path} with a rebound Host");
    }
    let (status, _, body) = gw
        .post(
            "/v1/chat/completions",
            &chat("mock/echo", "hi"),
            &[("host", "attacker.example")],
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("ALLOWED_HOSTS")
    );
    for ok in ["localhost:1", "127.0.0.1", "gateway.internal"] {
        let req = http::Request::get(gw.url("/v1/models")).header("host", ok);
        assert_eq!(send(req, Vec::new()).await.0, 200, "{ok}");
    }
    gw.assert_alive(None).await;
}

#[tokio::test]
async fn cross_origin_posts_are_refused_and_allowed_origins_get_cors() {
    let gw = Bin::start(&[("CORS_ALLOWED_ORIGINS", "https://app.example.com")]).await;
    let body = chat("mock/echo", "hi");
    let (status, _, _) = gw
        .post(
            "/v1/chat/completions",
            &body,
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(status, 403);
    let (status, _, _) = gw
        .post(
            "/admin/keys",
            &json!({"name": "x"}),
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(status, 403, "creating keys from a web page");
    // The gateway's own origin (the dashboard) passes.
    let own = format!("http://127.0.0.1:{}", gw.port);
    let (status, _, _) = gw
        .post("/v1/chat/completions", &body, &[("origin", &own)])
        .await;
    assert_eq!(status, 200);
    // A listed origin: CORS headers on the answer, and a preflight answer.
    let (status, headers, _) = gw
        .post(
            "/v1/chat/completions",
            &body,
            &[("origin", "https://app.example.com")],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    let pre = http::Request::options(gw.url("/v1/chat/completions"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        );
    let (status, headers, _) = send(pre, Vec::new()).await;
    assert!((200..300).contains(&status), "preflight {status}");
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert!(headers["access-control-allow-methods"].contains("POST"));
    assert!(headers["access-control-allow-headers"].contains("authorization"));
    let pre = http::Request::options(gw.url("/v1/chat/completions"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST");
    let (status, headers, _) = send(pre, Vec::new()).await;
    assert!(status >= 400 && !headers.contains_key("access-control-allow-origin"));
    gw.assert_alive(None).await;
}

#[tokio::test]
async fn a_text_plain_post_is_415() {
    let gw = Bin::start(&[]).await;
    let body = chat("mock/echo", "hi").to_string().into_bytes();
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let req = http::Request::post(gw.url("/v1/chat/completions")).header("content-type", ct);
        let (status, _, _) = send(req, body.clone()).await;
        assert_eq!(status, 415, "{ct}");
    }
    let req = http::Request::post(gw.url("/v1/messages")).header("content-type", "text/plain");
    let (status, _, raw) = send(req, body.clone()).await;
    assert_eq!(status, 415);
    let v: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    assert_eq!(v["type"], "error", "Anthropic's shape on /v1/messages: {v}");
    let req = http::Request::post(gw.url("/v1/chat/completions"))
        .header("content-type", "application/json; charset=utf-8");
    assert_eq!(send(req, body).await.0, 200);
    gw.assert_alive(None).await;
}

#[tokio::test]
async fn client_numbers_and_names_are_bounded() {
    let gw = Bin::start(&[]).await;
    let (status, _, body) = gw
        .post(
            "/v1/embeddings",
            &json!({"model": "mock/embed", "input": "a", "dimensions": 4294967295u64}),
            &[],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(error_names(&body, "dimensions"), "{body}");
    let (status, _, body) = gw
        .post(
            "/v1/embeddings",
            &json!({"model": "mock/embed", "input": "a", "dimensions": 65537}),
            &[],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let mut n = chat("mock/echo", "hi");
    n["n"] = json!(129);
    let (status, _, body) = gw.post("/v1/chat/completions", &n, &[]).await;
    assert_eq!(status, 400);
    assert!(error_names(&body, "n"), "{body}");
    for model in [
        "mock/".to_owned() + &"a".repeat(300),
        "mock/<script>".into(),
        "mock/a b".into(),
    ] {
        let (status, _, body) = gw
            .post("/v1/chat/completions", &chat(&model, "hi"), &[])
            .await;
        assert_eq!(status, 400);
        assert!(error_names(&body, "model"), "{body}");
        let (status, _, body) = gw
            .post(
                "/v1/messages",
                &json!({"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
                &[],
            )
            .await;
        assert_eq!(status, 400);
        assert_eq!(body["type"], "error", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("model")
        );
    }
    gw.assert_alive(None).await;
}

#[tokio::test]
async fn strict_json_names_json_and_the_field() {
    let gw = Bin::start(&[]).await;
    let good = chat("mock/echo", "hi").to_string();
    let req = http::Request::post(gw.url("/v1/chat/completions"))
        .header("content-type", "application/json");
    let (status, _, raw) = send(req, format!("{good}{{\"model\":\"x\"}}").into_bytes()).await;
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    assert_eq!(status, 400);
    assert!(error_names(&body, "json"), "{body}");
    let (status, _, body) = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "mock/echo", "messages": [{"role": 7, "content": "x"}]}),
            &[],
        )
        .await;
    assert_eq!(status, 400);
    assert!(error_names(&body, "role"), "{body}");
    let (status, _, body) = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "mock/echo", "messages": [{"role": "user", "content": "x"}, {"role": "user", "content": 5}]}),
            &[],
        )
        .await;
    assert_eq!(status, 400);
    assert!(error_names(&body, "messages[1].content"), "{body}");
    gw.assert_alive(None).await;
}

#[tokio::test]
async fn pass_through_model_ids_beyond_the_bound_count_as_other() {
    // The default bound (256), and 300 distinct ids a client made up.
    let gw = Bin::start(&[]).await;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..300 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let (status, headers, body) = gw
            .post(
                "/v1/chat/completions",
                &chat(&format!("mock/rnd-{seed:x}"), "hi"),
                &[],
            )
            .await;
        assert_eq!(status, 200, "a pass-through id is still served: {body}");
        assert!(headers.contains_key("x-proxygate-deployment"));
    }
    let (_, text) = crate::support::get(&gw.url("/metrics")).await;
    let text = String::from_utf8_lossy(&text);
    let named: std::collections::HashSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("proxygate_requests_total"))
        .filter_map(|l| l.split("model=\"mock/rnd-").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(named.len() <= 256, "{} pass-through labels", named.len());
    assert!(text.contains("model=\"other\""), "the rest count as other");
    let (_, models) = crate::support::get(&gw.url("/admin/circuits")).await;
    let models = String::from_utf8_lossy(&models);
    assert!(models.matches("mock/rnd-").count() <= 256);
    gw.assert_alive(None).await;
}

async fn create_key(gw: &Bin, name: &str) -> String {
    let (status, _, body) = gw
        .post(
            "/admin/keys",
            &json!({"name": name}),
            &[("authorization", &format!("Bearer {MASTER}"))],
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["key"].as_str().expect("plaintext key").to_owned()
}

#[tokio::test]
async fn two_keys_never_share_a_cached_answer_unless_configured() {
    for (shared, second_hit) in [("false", "miss"), ("true", "hit")] {
        let gw = Bin::start(&[
            ("PROXYGATE_MASTER_KEY", MASTER),
            ("CACHE_ENABLED", "true"),
            ("CACHE_SHARED", shared),
        ])
        .await;
        let (a, b) = (create_key(&gw, "a").await, create_key(&gw, "b").await);
        let ask = |key: String, beta: Option<&'static str>| {
            let gw = &gw;
            async move {
                let auth = format!("Bearer {key}");
                let mut h = vec![("authorization", auth.as_str())];
                if let Some(beta) = beta {
                    h.push(("openai-organization", beta));
                }
                let (status, headers, _) = gw
                    .post(
                        "/v1/chat/completions",
                        &chat("mock/echo", "the shared question"),
                        &h,
                    )
                    .await;
                assert_eq!(status, 200);
                headers["x-proxygate-cache"].clone()
            }
        };
        assert_eq!(ask(a.clone(), None).await, "miss");
        assert_eq!(ask(a.clone(), None).await, "hit");
        assert_eq!(
            ask(b.clone(), None).await,
            second_hit,
            "CACHE_SHARED={shared}"
        );
        assert_eq!(
            ask(a.clone(), Some("org-2")).await,
            "miss",
            "an answer-changing header"
        );
        gw.assert_alive(Some(MASTER)).await;
    }
}

#[tokio::test]
async fn half_a_request_line_is_closed_after_the_header_timeout() {
    let gw = Bin::start(&[("HEADER_READ_TIMEOUT_MS", "300")]).await;
    let started = Instant::now();
    let (_, closed) = raw(gw.port, b"GET /heal", Duration::from_secs(5)).await;
    assert!(closed, "the connection stayed open");
    assert!(started.elapsed() < Duration::from_secs(4));
    gw.assert_alive(None).await;
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_cut_after_the_body_timeout() {
    let gw = Bin::start(&[("BODY_READ_TIMEOUT_MS", "300")]).await;
    let started = Instant::now();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"model\":",
        gw.port
    );
    let (answer, closed) = raw(gw.port, head.as_bytes(), Duration::from_secs(5)).await;
    assert!(closed, "the connection stayed open: {answer}");
    assert!(answer.is_empty() || answer.contains("body"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(4));
    gw.assert_alive(None).await;
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let gw = Bin::start(&[("MAX_CONNECTIONS", "2")]).await;
    let idle1 = TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .expect("connect");
    let idle2 = TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .expect("connect");
    let req = "GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n";
    let (answer, _) = raw(gw.port, req.as_bytes(), Duration::from_millis(500)).await;
    assert!(answer.is_empty(), "a third connection was served: {answer}");
    drop(idle1);
    let (answer, _) = raw(gw.port, req.as_bytes(), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(idle2);
    gw.assert_alive(None).await;
}

#[tokio::test]
async fn a_client_that_stops_reading_a_stream_is_cut_and_its_upstream_cancelled() {
    // An upstream that streams far more than the socket buffers hold, then hangs.
    let piece = format!(
        "data: {}\n\n",
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": {"content": "x".repeat(16 * 1024)}, "finish_reason": null}]})
    );
    let pieces: Vec<(Duration, Vec<u8>)> = (0..2000)
        .map(|_| (Duration::ZERO, piece.clone().into_bytes()))
        .collect();
    let upstream = FakeUpstream::start(Reply::Stream {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        pieces,
        end: crate::support::End::Hang,
    })
    .await;
    let base = upstream.url("/openai/v1");
    let gw = Bin::start(&[
        ("GROQ_API_KEY", "gsk-test"),
        ("GROQ_BASE_URL", &base),
        ("CLIENT_WRITE_TIMEOUT_MS", "500"),
        ("STREAM_IDLE_TIMEOUT_MS", "60000"),
    ])
    .await;
    let body = json!({"model": "groq/llama-3.1-8b-instant", "stream": true,
        "messages": [{"role": "user", "content": "hi"}]})
    .to_string();
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    // A small receive window, so the gateway's writes stall soon.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut s = socket
        .connect(([127, 0, 0, 1], gw.port).into())
        .await
        .expect("connect");
    s.write_all(req.as_bytes()).await.expect("write");
    // Never read: the gateway's writes stall, and it must give up on this client.
    assert!(
        upstream
            .wait_client_closed(1, Duration::from_secs(40))
            .await,
        "the upstream stream was not cancelled"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, text) = crate::support::get(&gw.url("/metrics")).await;
        let text = String::from_utf8_lossy(&text).into_owned();
        if text.lines().any(|l| {
            l.starts_with("proxygate_requests_total")
                && l.contains("status=\"499\"")
                && l.contains("groq")
        }) {
            break;
        }
        assert!(Instant::now() < deadline, "no 499 recorded:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(s);
    gw.assert_alive(None).await;
}

#[tokio::test]
async fn health_and_metrics_hide_tenants_without_the_master_key() {
    let gw = Bin::start(&[("PROXYGATE_MASTER_KEY", MASTER)]).await;
    let key = create_key(&gw, "tenant").await;
    let auth = format!("Bearer {key}");
    let (status, _, _) = gw
        .post(
            "/v1/chat/completions",
            &chat("mock/tenant-secret-model", "hi"),
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(status, 200);
    for path in ["/health", "/metrics"] {
        let (status, body) = crate::support::get(&gw.url(path)).await;
        assert_eq!(status, 200);
        let body = String::from_utf8_lossy(&body);
        assert!(
            !body.contains("tenant-secret-model"),
            "{path} shows a tenant model:\n{body}"
        );
        assert!(!body.contains("key=\""), "{path} shows spend by key");
        let full =
            http::Request::get(gw.url(path)).header("authorization", format!("Bearer {MASTER}"));
        let (_, _, full) = send(full, Vec::new()).await;
        assert!(
            String::from_utf8_lossy(&full).contains("tenant-secret-model"),
            "{path} with the master key shows everything"
        );
    }
    gw.assert_alive(Some(MASTER)).await;
}

#[tokio::test]
async fn count_tokens_passes_the_key_checks_of_messages() {
    let gw = Bin::start(&[("PROXYGATE_MASTER_KEY", MASTER)]).await;
    let (status, _, body) = gw
        .post(
            "/admin/keys",
            &json!({"name": "limited", "models": ["mock/echo"], "rpm": 1}),
            &[("authorization", &format!("Bearer {MASTER}"))],
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let key = format!("Bearer {}", body["key"].as_str().unwrap_or_default());
    let count =
        |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    let (status, _, body) = gw
        .post("/v1/messages/count_tokens", &count("mock/echo"), &[])
        .await;
    assert_eq!(status, 401, "no key: {body}");
    let (status, _, body) = gw
        .post(
            "/v1/messages/count_tokens",
            &count("mock/lorem"),
            &[("authorization", &key)],
        )
        .await;
    assert_eq!(status, 403, "a model the key may not use: {body}");
    assert_eq!(body["type"], "error");
    let (status, _, body) = gw
        .post(
            "/v1/messages/count_tokens",
            &count("mock/echo"),
            &[("authorization", &key)],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["input_tokens"].as_u64().is_some_and(|n| n > 0));
    let (status, _, body) = gw
        .post(
            "/v1/messages/count_tokens",
            &count("mock/echo"),
            &[("authorization", &key)],
        )
        .await;
    assert_eq!(status, 429, "rpm 1: {body}");
    gw.assert_alive(Some(MASTER)).await;
}

#[tokio::test]
async fn a_key_echoed_in_two_pieces_is_redacted_and_words_are_kept() {
    const KEY: &str = "gsk_safety_0123456789abcdefghijklmnopqrstuvwxyz";
    let chunk = |text: &str| {
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
    };
    let (a, b) = KEY.split_at(30);
    let upstream = FakeUpstream::start(Reply::openai_sse(&[
        chunk(&format!("your key is {a}")),
        chunk(&format!("{b}, enjoy the weather")),
    ]))
    .await;
    let base = upstream.url("/openai/v1");
    let gw = Bin::start(&[("GROQ_API_KEY", KEY), ("GROQ_BASE_URL", &base)]).await;
    let mut body = chat("groq/llama-3.1-8b-instant", "echo my key");
    body["stream"] = json!(true);
    let req = http::Request::post(gw.url("/v1/chat/completions"))
        .header("content-type", "application/json");
    let (status, _, raw) = send(req, body.to_string().into_bytes()).await;
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&raw);
    for start in 0..=KEY.len() - 10 {
        assert!(
            !text.contains(&KEY[start..start + 10]),
            "a piece of the key leaked: {text}"
        );
    }
    assert!(
        text.contains("your key is") && text.contains("enjoy the weather"),
        "{text}"
    );
    gw.assert_alive(None).await;
}
