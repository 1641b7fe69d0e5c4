//! Cost accounting and the usage store end to end: what the fake
//! upstreams report is what `/v1/usage` adds up, across restarts, in SQLite and Postgres, and a
//! `kill -9` loses no answered request.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::{Value, json};

// === fixtures: two providers that report usage, streamed and not ===

fn openai_completion(prompt: u64, completion: u64) -> Reply {
    Reply::json(json!({
        "id": "chatcmpl-up", "object": "chat.completion", "created": 1730000000, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Fine."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    }))
}

fn openai_stream(prompt: u64, completion: u64) -> Reply {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1730000000, "model": "gpt-4o-mini",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    Reply::openai_sse(&[
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"content": "Fi"}), Value::Null),
        chunk(json!({"content": "ne."}), json!("stop")),
        json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1730000000, "model": "gpt-4o-mini",
               "choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}}),
    ])
}

fn anthropic_message(input: u64, output: u64) -> Reply {
    Reply::json(json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-3-haiku-20240307",
        "content": [{"type": "text", "text": "Fine."}], "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": input, "output_tokens": output}
    }))
}

fn anthropic_stream(input: u64, output: u64) -> Reply {
    let events = [
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_02", "type": "message", "role": "assistant",
            "model": "claude-3-haiku-20240307", "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": input, "output_tokens": 1}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Fine."}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
            "usage": {"output_tokens": output}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    let text: String = events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect();
    Reply::raw(200, "text/event-stream", &text)
}

/// The list prices of the two models served (USD per 1M tokens, from OpenAI's and Anthropic's
/// pricing pages).
const GPT_4O_MINI: (f64, f64) = (0.15, 0.60);
const CLAUDE_3_HAIKU: (f64, f64) = (0.25, 1.25);

fn cost(rate: (f64, f64), prompt: u64, completion: u64) -> f64 {
    (prompt as f64 * rate.0 + completion as f64 * rate.1) / 1e6
}

struct Fakes {
    openai: FakeUpstream,
    anthropic: FakeUpstream,
}

impl Fakes {
    async fn start() -> Self {
        Self {
            openai: FakeUpstream::start(Reply::status_json(500, json!({"error": "unscripted"})))
                .await,
            anthropic: FakeUpstream::start(Reply::status_json(500, json!({"error": "unscripted"})))
                .await,
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("OPENAI_API_KEY", "sk-test-openai".into()),
            ("OPENAI_BASE_URL", self.openai.url("/v1")),
            ("ANTHROPIC_API_KEY", "sk-ant-test".into()),
            ("ANTHROPIC_BASE_URL", self.anthropic.url("")),
        ]
    }
}

/// What one round of traffic should add up to.
#[derive(Debug, Default, PartialEq)]
struct Expected {
    requests: u64,
    prompt: u64,
    completion: u64,
    cost: f64,
}

/// Sends a mixed round (each provider, streamed with and without include_usage, and whole)
/// and returns what the fakes reported.
async fn mixed_round(base: &str, fakes: &Fakes, round: u64) -> Expected {
    let mut e = Expected::default();
    let url = format!("{base}/v1/chat/completions");
    for i in 0..2u64 {
        let (p, c) = (10 + round * 7 + i, 3 + i);
        fakes.openai.script([openai_completion(p, c)]);
        let (status, headers, body) = post_json(&url, &chat("openai/gpt-4o-mini", "Hi")).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let header: f64 = headers["x-proxygate-cost-usd"].parse().unwrap();
        assert!((header - cost(GPT_4O_MINI, p, c)).abs() < 1e-12, "{header}");
        e.add(GPT_4O_MINI, p, c);

        let (p, c) = (20 + round * 5 + i, 6 + i);
        fakes.openai.script([openai_stream(p, c)]);
        let mut req = chat("openai/gpt-4o-mini", "Hi");
        req["stream"] = json!(true);
        if i == 0 {
            req["stream_options"] = json!({"include_usage": true});
        }
        let (status, _, body) = post_json(&url, &req).await;
        assert_eq!(status, 200);
        check_stream_cost(&body, i == 0, cost(GPT_4O_MINI, p, c));
        e.add(GPT_4O_MINI, p, c);

        let (p, c) = (400 + round * 3 + i, 30 + i);
        fakes.anthropic.script([anthropic_message(p, c)]);
        let (status, _, body) = post_json(&url, &chat("anthropic/claude-3-haiku", "Hi")).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        e.add(CLAUDE_3_HAIKU, p, c);

        let (p, c) = (50 + round + i, 9 + i);
        fakes.anthropic.script([anthropic_stream(p, c)]);
        let mut req = chat("anthropic/claude-3-haiku", "Hi");
        req["stream"] = json!(true);
        let (status, _, body) = post_json(&url, &req).await;
        assert_eq!(status, 200);
        check_stream_cost(&body, false, cost(CLAUDE_3_HAIKU, p, c));
        e.add(CLAUDE_3_HAIKU, p, c);
    }
    e
}

impl Expected {
    fn add(&mut self, rate: (f64, f64), p: u64, c: u64) {
        self.requests += 1;
        self.prompt += p;
        self.completion += c;
        self.cost += cost(rate, p, c);
    }
}

/// A stream's cost: in the usage chunk (when asked for) and in the final `: cost_usd=` comment.
fn check_stream_cost(body: &[u8], with_usage: bool, expected: f64) {
    let chunks = sse_chunks(body);
    let text = String::from_utf8_lossy(body);
    let comment = text
        .lines()
        .find_map(|l| l.strip_prefix(": cost_usd="))
        .unwrap_or_else(|| panic!("no cost comment in {text}"));
    let comment: f64 = comment.trim().parse().unwrap();
    assert!((comment - expected).abs() < 1e-9, "{comment} vs {expected}");
    let usage_chunks: Vec<_> = chunks.iter().filter(|c| !c["usage"].is_null()).collect();
    if with_usage {
        assert_eq!(usage_chunks.len(), 1, "{text}");
        let last = chunks.last().unwrap();
        assert_eq!(last["choices"], json!([]));
        let in_chunk = last["cost_usd"].as_f64().unwrap();
        assert!((in_chunk - expected).abs() < 1e-12);
    } else {
        assert!(usage_chunks.is_empty(), "usage shown unasked: {text}");
    }
    // The comment comes before the one `data: [DONE]`, which stays last.
    assert!(text.trim_end().ends_with("data: [DONE]"));
}

/// `/v1/usage` once it shows `n` requests (records are visible within 0.5 s of their answer).
async fn usage_with(base: &str, query: &str, n: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = get(&format!("{base}/v1/usage{query}")).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v: Value = serde_json::from_slice(&body).unwrap();
        if v["totals"]["requests"].as_u64() == Some(n) || Instant::now() > deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn check_totals(v: &Value, e: &Expected) {
    let t = &v["totals"];
    assert_eq!(t["requests"].as_u64(), Some(e.requests), "{v}");
    assert_eq!(t["prompt_tokens"].as_u64(), Some(e.prompt), "{v}");
    assert_eq!(t["completion_tokens"].as_u64(), Some(e.completion), "{v}");
    assert_eq!(t["estimated_tokens"].as_u64(), Some(0), "{v}");
    let c = t["cost_usd"].as_f64().unwrap();
    assert!((c - e.cost).abs() < 1e-9, "{c} vs {}", e.cost);
    let by_p = &v["by_provider"];
    let sum: u64 = ["openai", "anthropic"]
        .iter()
        .map(|p| by_p[p]["requests"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(sum, e.requests, "{v}");
    assert!(
        v["by_model"]["openai/gpt-4o-mini"]["cost_usd"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(
        v["by_model"]["anthropic/claude-3-haiku-20240307"]["prompt_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[tokio::test]
async fn usage_adds_up_what_upstreams_reported_in_sqlite() {
    let fakes = Fakes::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = fakes.env();
    env.push((
        "USAGE_DB_PATH",
        dir.path().join("u.db").display().to_string(),
    ));
    env.push((
        "USAGE_JOURNAL_DIR",
        dir.path().join("journal").display().to_string(),
    ));
    let gw = TestGateway::start(&env).await;
    let e = mixed_round(&gw.base, &fakes, 0).await;
    let v = usage_with(&gw.base, "", e.requests).await;
    check_totals(&v, &e);
    assert_eq!(v["store"], "sqlite");
    // Filters and time buckets.
    let v = usage_with(&gw.base, "?provider=anthropic&bucket=hour", e.requests / 2).await;
    assert_eq!(v["by_provider"].as_object().unwrap().len(), 1);
    assert_eq!(v["by_time"][0]["requests"].as_u64(), Some(e.requests / 2));
    let (status, body) = get(&gw.url("/v1/usage?since=2999-01-01T00:00:00Z")).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["totals"]["requests"], 0);
    let (status, body) = get(&gw.url("/v1/usage?since=yesterday")).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("since"));
}

#[tokio::test]
async fn failures_count_with_cost_zero_and_missing_usage_is_estimated() {
    let fakes = Fakes::start().await;
    let gw = TestGateway::start(&fakes.env()).await;
    let url = gw.url("/v1/chat/completions");
    // An upstream 400 stays 400 and counts, at no cost.
    fakes.openai.script([Reply::status_json(
        400,
        json!({"error": {"message": "bad", "type": "invalid_request_error"}}),
    )]);
    let (status, _, _) = post_json(&url, &chat("openai/gpt-4o-mini", "Hi")).await;
    assert_eq!(status, 400);
    // No usage from the upstream: the tokenizer counts, and the record says so.
    fakes.openai.script([Reply::json(json!({
        "id": "c", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello world"}, "finish_reason": "stop"}]
    }))]);
    let (status, headers, body) = post_json(&url, &chat("openai/gpt-4o-mini", "hello world")).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    // "hello world" is 2 cl100k tokens; the prompt adds 3 for its message, 3 to prime, 1 newline.
    assert_eq!(v["usage"]["completion_tokens"], 2, "{v}");
    assert_eq!(v["usage"]["prompt_tokens"], 9, "{v}");
    let header: f64 = headers["x-proxygate-cost-usd"].parse().unwrap();
    assert!((header - cost(GPT_4O_MINI, 9, 2)).abs() < 1e-12);
    let u = usage_with(&gw.base, "", 2).await;
    assert_eq!(u["totals"]["requests"], 2, "{u}");
    assert_eq!(u["totals"]["errors"], 1, "{u}");
    assert_eq!(u["totals"]["estimated_tokens"], 11, "{u}");
    assert_eq!(u["by_provider"]["none"]["cost_usd"], 0.0, "{u}");
}

#[tokio::test]
async fn free_tiers_cost_zero_unless_billed_and_overrides_apply() {
    let fake = FakeUpstream::start(openai_completion(1_000_000, 1_000_000)).await;
    let base = vec![
        ("GROQ_API_KEY", "gsk-test".to_owned()),
        ("GROQ_BASE_URL", fake.url("/openai/v1")),
    ];
    let gw = TestGateway::start(&base).await;
    let (_, h, _) = post_json(
        &gw.url("/v1/chat/completions"),
        &chat("groq/llama-3.1-8b-instant", "x"),
    )
    .await;
    assert_eq!(h["x-proxygate-cost-usd"], "0");
    let mut billed = base.clone();
    billed.push(("BILL_FREE_TIERS", "true".into()));
    let gw = TestGateway::start(&billed).await;
    let (_, h, _) = post_json(
        &gw.url("/v1/chat/completions"),
        &chat("groq/llama-3.1-8b-instant", "x"),
    )
    .await;
    // 1M tokens each way at Groq's list prices, $0.05 / $0.08.
    assert_eq!(h["x-proxygate-cost-usd"], "0.13");
    let mut over = base;
    over.push(("RATE_OVERRIDES", "groq/llama-3.1-8b-instant=1/2".into()));
    let gw = TestGateway::start(&over).await;
    let (_, h, _) = post_json(
        &gw.url("/v1/chat/completions"),
        &chat("groq/llama-3.1-8b-instant", "x"),
    )
    .await;
    assert_eq!(h["x-proxygate-cost-usd"], "3");
}

/// A fresh Postgres database for one test, dropped at the end.
struct PgDb {
    admin: String,
    name: String,
}

impl PgDb {
    async fn create() -> Self {
        use sqlx::Executor;
        let admin = "postgres://postgres@127.0.0.1:5432/test".to_owned();
        let name = format!("proxygate_usage_{}", uuid::Uuid::new_v4().simple());
        let pool = sqlx::PgPool::connect(&admin)
            .await
            .expect("Postgres on 127.0.0.1:5432 (database test, trust auth): .ci/run starts it");
        pool.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap();
        Self { admin, name }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    async fn drop_db(self) {
        use sqlx::Executor;
        if let Ok(pool) = sqlx::PgPool::connect(&self.admin).await {
            let _ = pool
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                )))
                .await;
        }
    }
}

#[tokio::test]
async fn usage_adds_up_in_postgres_and_another_gateway_reads_it() {
    let db = PgDb::create().await;
    let fakes = Fakes::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = fakes.env();
    env.push(("DATABASE_URL", db.url()));
    env.push((
        "USAGE_JOURNAL_DIR",
        dir.path().join("a").display().to_string(),
    ));
    let a = TestGateway::start(&env).await;
    let e = mixed_round(&a.base, &fakes, 1).await;
    let v = usage_with(&a.base, "", e.requests).await;
    check_totals(&v, &e);
    assert_eq!(v["store"], "postgres");
    env.pop();
    env.push((
        "USAGE_JOURNAL_DIR",
        dir.path().join("b").display().to_string(),
    ));
    let b = TestGateway::start(&env).await;
    check_totals(&usage_with(&b.base, "", e.requests).await, &e);
    drop((a, b));
    db.drop_db().await;
}

// === the binary: restarts and kill -9 ===

struct Proc {
    child: Child,
    base: String,
}

impl Proc {
    fn start(dir: &std::path::Path, env: &[(&str, String)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_proxygate"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", port.to_string())
            .env("MOCK_CHUNK_DELAY_MS", "1")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self {
            child: cmd.spawn().unwrap(),
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = tokio::time::timeout(Duration::from_secs(1), async {
                let client = proxygate::client::build_client();
                let req = http::Request::get(format!("{}/health", self.base))
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                    .unwrap();
                client
                    .request(req)
                    .await
                    .map(|r| r.status() == 200)
                    .unwrap_or(false)
            })
            .await
            .unwrap_or(false);
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "gateway did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn sigterm(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn usage_survives_a_restart_of_the_binary() {
    let fakes = Fakes::start().await;
    let dir = tempfile::tempdir().unwrap();
    let env: Vec<(&str, String)> = fakes.env();
    let mut p = Proc::start(dir.path(), &env);
    p.ready().await;
    let e = mixed_round(&p.base, &fakes, 3).await;
    let mut req = chat("mock/echo", "and one through the mock");
    req["stream"] = json!(true);
    let (status, _, _) = post_json(&format!("{}/v1/chat/completions", p.base), &req).await;
    assert_eq!(status, 200);
    let before = usage_with(&p.base, "", e.requests + 1).await;
    p.sigterm();
    // The default store: a SQLite file in the working directory, created on first start.
    assert!(dir.path().join("proxygate.db").exists());
    let p = Proc::start(dir.path(), &env);
    p.ready().await;
    let after = usage_with(&p.base, "", e.requests + 1).await;
    assert_eq!(after["totals"], before["totals"]);
    assert_eq!(after["by_model"], before["by_model"]);
    let paid = |v: &Value, f: &str| -> f64 {
        ["openai", "anthropic"]
            .iter()
            .map(|p| v["by_provider"][p][f].as_f64().unwrap())
            .sum()
    };
    assert_eq!(paid(&after, "prompt_tokens") as u64, e.prompt);
    assert_eq!(paid(&after, "completion_tokens") as u64, e.completion);
    assert!((paid(&after, "cost_usd") - e.cost).abs() < 1e-9);
}

#[tokio::test]
async fn kill_9_loses_no_answered_request() {
    let dir = tempfile::tempdir().unwrap();
    // A long flush interval: whatever is in the store after the restart came from the journal.
    let env = [("USAGE_FLUSH_MS", "600000".to_owned())];
    let mut p = Proc::start(dir.path(), &env);
    p.ready().await;
    let url = format!("{}/v1/chat/completions", p.base);
    let answered = std::sync::Arc::new(std::sync::Mutex::new(HashSet::<String>::new()));
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (url, answered) = (url.clone(), answered.clone());
        tasks.push(tokio::spawn(async move {
            let client = proxygate::client::build_client();
            for i in 0.. {
                let mut body = chat("mock/echo", &format!("worker {w} request {i}"));
                body["stream"] = json!(i % 2 == 0);
                let req = http::Request::post(&url)
                    .header("content-type", "application/json")
                    .body(http_body_util::Full::new(bytes::Bytes::from(
                        body.to_string(),
                    )))
                    .unwrap();
                let Ok(resp) = client.request(req).await else {
                    return;
                };
                let id = resp
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                use http_body_util::BodyExt;
                let Ok(body) = resp.into_body().collect().await else {
                    return;
                };
                let body = body.to_bytes();
                // Answered: the whole body arrived (a stream through its [DONE]).
                let whole = if i % 2 == 0 {
                    String::from_utf8_lossy(&body).contains("data: [DONE]")
                } else {
                    serde_json::from_slice::<Value>(&body).is_ok()
                };
                if whole && let Some(id) = id {
                    answered.lock().unwrap().insert(id);
                }
            }
        }));
    }
    // Let a load build up, then kill without warning.
    let deadline = Instant::now() + Duration::from_secs(30);
    while answered.lock().unwrap().len() < 200 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p.kill9();
    for t in tasks {
        let _ = t.await;
    }
    let answered = answered.lock().unwrap().clone();
    assert!(answered.len() >= 50, "only {} answered", answered.len());
    // The restart replays the journal into the store before it serves.
    let p = Proc::start(dir.path(), &env);
    p.ready().await;
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("proxygate.db").display()
    ))
    .await
    .unwrap();
    let stored: Vec<(Option<String>,)> = sqlx::query_as("SELECT request_id FROM usage_records")
        .fetch_all(&pool)
        .await
        .unwrap();
    let stored: HashSet<String> = stored.into_iter().filter_map(|(r,)| r).collect();
    let missing: Vec<_> = answered.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered requests lost: {:?}",
        missing.len(),
        answered.len(),
        &missing[..missing.len().min(5)]
    );
}

// === metrics ===

#[tokio::test]
async fn metrics_parse_and_show_every_series_after_traffic() {
    let fakes = Fakes::start().await;
    let gw = TestGateway::start(&fakes.env()).await;
    mixed_round(&gw.base, &fakes, 2).await;
    let (status, body) = get(&gw.url("/metrics")).await;
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("valid Prometheus text");
    let names: HashSet<&str> = scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    for series in [
        "proxygate_requests_total",
        "proxygate_request_duration_seconds_count",
        "proxygate_upstream_duration_seconds_count",
        "proxygate_time_to_first_token_seconds_count",
        "proxygate_tokens_total",
        "proxygate_cost_usd_total",
        "proxygate_circuit_state",
        "proxygate_failovers_total",
        "proxygate_cache_hits_total",
        "proxygate_inflight_requests",
    ] {
        assert!(names.contains(series), "{series} missing from /metrics");
    }
    let tokens = |kind: &str| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| {
                s.metric == "proxygate_tokens_total"
                    && s.labels.get("provider") == Some("openai")
                    && s.labels.get("kind") == Some(kind)
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    assert!(tokens("prompt") > 0.0 && tokens("completion") > 0.0);
    let cost: f64 = scrape
        .samples
        .iter()
        .filter(|s| {
            s.metric == "proxygate_cost_usd_total" && s.labels.get("provider") == Some("anthropic")
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum();
    assert!(cost > 0.0, "no anthropic cost in /metrics");
    // Buckets from 5 ms to 120 s.
    assert!(text.contains("proxygate_request_duration_seconds_bucket{le=\"0.005\"}"));
    assert!(text.contains("proxygate_request_duration_seconds_bucket{le=\"120\"}"));
}
