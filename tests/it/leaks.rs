//! Keys never leak: a key planted as `GROQ_API_KEY` and another as `GEMINI_API_KEY`
//! appear nowhere, whole or in part: not in the binary's log at trace level, not in any
//! response or error body, not in /metrics, /health, /admin/*, /v1/usage, /v1/models or the
//! dashboard, across successes, upstream 401/500 bodies that echo the key, and connection
//! failures.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{FakeUpstream, Reply, chat, send};
use serde_json::json;

const GROQ_KEY: &str = "gsk_PLANTEDgroqKEY_8f3a9c1d2e7b6054aa";
const GEMINI_KEY: &str = "AIzaPLANTEDgeminiKEY_55d0c9e8f7a6b1x";
const MASTER: &str = "mk-leak-test-master-key-42";

fn groq_ok() -> serde_json::Value {
    json!({"id": "chatcmpl-up", "object": "chat.completion", "created": 1730000000, "model": "llama-3.1-8b-instant",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}})
}

fn groq_chunk(content: &str) -> serde_json::Value {
    json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1730000000, "model": "m",
           "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]})
}

fn gemini_ok() -> serde_json::Value {
    json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "hello"}]}, "finishReason": "STOP", "index": 0}],
           "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 1, "totalTokenCount": 6},
           "modelVersion": "gemini-2.0-flash", "responseId": "r1"})
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Every piece of `key` long enough to identify it (ten characters), and the key itself.
fn pieces(key: &str) -> Vec<&str> {
    let mut out = vec![key];
    for i in 0..=key.len() - 10 {
        out.push(&key[i..i + 10]);
    }
    out
}

fn assert_clean(what: &str, text: &str) {
    for key in [GROQ_KEY, GEMINI_KEY] {
        for p in pieces(key) {
            assert!(
                !text.contains(p),
                "{what} leaks `{p}` of a provider key:\n{}",
                &text[..text.len().min(4000)]
            );
        }
    }
}

#[tokio::test]
async fn provider_keys_appear_nowhere_across_successes_echoing_errors_and_failures() {
    let echo_401 = format!("Invalid API Key: {GROQ_KEY}. Check the key you sent ({GROQ_KEY}).");
    let groq = FakeUpstream::start(Reply::json(groq_ok())).await;
    groq.script([
        Reply::json(groq_ok()),
        Reply::openai_sse(&[groq_chunk("hel"), groq_chunk("lo")]),
        Reply::status_json(
            401,
            json!({"error": {"message": echo_401, "type": "invalid_request_error", "code": "invalid_api_key"}}),
        ),
        Reply::raw(500, "text/plain", &format!("internal error handling key={GROQ_KEY}")),
        Reply::status_json(500, json!({"error": {"message": format!("upstream saw Authorization: Bearer {GROQ_KEY}")}})),
        Reply::Reset,
    ]);
    let gemini = FakeUpstream::start(Reply::json(gemini_ok())).await;
    gemini.script([
        Reply::json(gemini_ok()),
        Reply::status_json(
            401,
            json!({"error": {"code": 401, "message": format!("API key not valid: {GEMINI_KEY}"), "status": "UNAUTHENTICATED"}}),
        ),
        Reply::status_json(
            500,
            json!({"error": {"code": 500, "message": format!("Internal error for https://generativelanguage.googleapis.com/v1beta/models/x:generateContent?key={GEMINI_KEY} (a shared proxy also saw {GROQ_KEY})"), "status": "INTERNAL"}}),
        ),
        Reply::Reset,
    ]);

    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_proxygate"))
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORT", port.to_string())
        .env("RUST_LOG", "trace")
        .env("USAGE_DB_PATH", ":memory:")
        .env("PROXYGATE_MASTER_KEY", MASTER)
        .env("GROQ_API_KEY", GROQ_KEY)
        .env("GROQ_BASE_URL", groq.url("/openai/v1"))
        .env("GEMINI_API_KEY", GEMINI_KEY)
        .env("GEMINI_BASE_URL", gemini.url(""))
        .env("OPENAI_API_KEY", GROQ_KEY)
        .env(
            "OPENAI_BASE_URL",
            format!("http://127.0.0.1:{}/v1", free_port()),
        )
        .env("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "100")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("binary starts");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "the binary did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut bodies: Vec<(String, String)> = Vec::new();
    let post = |model: &str, stream: bool| {
        let mut body = chat(model, "hi");
        if stream {
            body["stream"] = json!(true);
        }
        let req = http::Request::post(format!("{base}/v1/chat/completions"))
            .header("authorization", format!("Bearer {MASTER}"))
            .header("content-type", "application/json");
        send(req, body.to_string().into_bytes())
    };
    // groq: success, stream, 401 echo, 500 text echo, 500 JSON echo, reset.
    let mut statuses = Vec::new();
    for stream in [false, true, false, false, false, false] {
        let (status, headers, body) = post("groq/llama-3.1-8b-instant", stream).await;
        statuses.push(status);
        bodies.push((
            format!("groq reply {status} headers"),
            format!("{headers:?}"),
        ));
        bodies.push((
            format!("groq reply {status}"),
            String::from_utf8_lossy(&body).into_owned(),
        ));
    }
    assert_eq!(statuses[..2], [200, 200], "{bodies:?}");
    assert!(statuses[2..].iter().all(|s| *s >= 500), "{statuses:?}");
    // gemini: success, 401 echo, 500 echo with ?key= in a URL, reset.
    for _ in 0..4 {
        let (status, headers, body) = post("gemini/gemini-2.0-flash", false).await;
        bodies.push((
            format!("gemini reply {status} headers"),
            format!("{headers:?}"),
        ));
        bodies.push((
            format!("gemini reply {status}"),
            String::from_utf8_lossy(&body).into_owned(),
        ));
    }
    // A connection refused: the same key, planted for a provider whose URL has no listener.
    let (status, _, body) = post("openai/gpt-4o-mini", false).await;
    assert!(status >= 500);
    bodies.push((
        "connection refused".into(),
        String::from_utf8_lossy(&body).into_owned(),
    ));

    for path in [
        "/metrics",
        "/health",
        "/v1/models",
        "/v1/usage",
        "/admin/circuits",
        "/admin/keys",
        "/admin/stats",
        "/dashboard",
        "/dashboard/stats",
    ] {
        let req = http::Request::get(format!("{base}{path}"))
            .header("authorization", format!("Bearer {MASTER}"));
        let (status, headers, body) = send(req, Vec::new()).await;
        bodies.push((format!("{path} ({status}) headers"), format!("{headers:?}")));
        bodies.push((
            format!("{path} ({status})"),
            String::from_utf8_lossy(&body).into_owned(),
        ));
    }
    // Give the log writer a moment, then stop the binary (as a crash would).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = child.kill();
    let _ = child.wait();

    for (what, text) in &bodies {
        assert_clean(what, text);
    }
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("TRACE") && log.len() > 10_000,
        "trace logging was on: {} bytes",
        log.len()
    );
    assert_clean("the trace log", &log);
}
