//! Several replicas behave as one gateway: two `proxygate` processes on their own
//! ports share the local Redis (circuits, latency, the response cache) and Postgres (usage).
//! Each test uses its own Redis key prefix and its own model names, so tests running in
//! parallel (and earlier runs' rows in the shared `test` database) never meet.
//!
//! Redis going away is tested twice: an unreachable `REDIS_URL` from the start, and a private
//! `redis-server` the test starts, stops and starts again on a port of its own.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{FakeUpstream, Reply, get, post_json, send};
use serde_json::{Value, json};

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";
const REDIS: &str = "redis://127.0.0.1:6379";

fn unique(name: &str) -> String {
    format!("pgtest-{name}-{:016x}", rand::random::<u64>())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-up", "object": "chat.completion", "created": 1730000000, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
    })
}

fn server_error() -> Reply {
    Reply::status_json(
        500,
        json!({"error": {"message": "upstream is down", "type": "server_error"}}),
    )
}

/// One `proxygate` process, killed when dropped. Its log (stderr) goes to a file.
struct Replica {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    /// Starts the binary with `env` (nothing else from this process's environment) in a
    /// directory of its own, and waits until `GET /health` answers 200.
    async fn start(env: &[(&str, String)]) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(unique("replica"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let log = dir.join("stderr.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_proxygate"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", port.to_string())
            .env("RUST_LOG", "info")
            .env("USAGE_JOURNAL_DIR", "off")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        if !env.iter().any(|(k, _)| *k == "DATABASE_URL") {
            cmd.env("USAGE_DB_PATH", ":memory:");
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("the proxygate binary starts");
        let replica = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        let up = eventually(Duration::from_secs(20), || async {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && get(&replica.url("/health")).await.0 == 200
        })
        .await;
        assert!(up, "replica did not become healthy: {}", replica.logs());
        replica
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn chat(&self, body: &Value) -> (u16, std::collections::HashMap<String, String>, Value) {
        let (status, headers, body) = post_json(&self.url("/v1/chat/completions"), body).await;
        (
            status,
            headers,
            serde_json::from_slice(&body).unwrap_or(Value::Null),
        )
    }

    async fn health(&self) -> Value {
        serde_json::from_slice(&get(&self.url("/health")).await.1).unwrap_or(Value::Null)
    }

    /// The state of deployment `id` in `/health` (`healthy`, `open`, ...).
    async fn deployment_status(&self, provider: &str, id: &str) -> String {
        self.health().await["providers"][provider]["deployments"][id]
            .as_str()
            .unwrap_or("absent")
            .to_owned()
    }

    async fn metric(&self, name: &str) -> Option<f64> {
        let text = String::from_utf8(get(&self.url("/metrics")).await.1).unwrap_or_default();
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }
}

/// Polls `cond` until it holds or `within` passes (a bound, not a timing assertion).
async fn eventually<F, Fut>(within: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if cond().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A Postgres schema of the test's own in the shared `test` database (migrations and rows
/// included), dropped at the end.
struct Schema {
    name: String,
}

impl Schema {
    async fn create() -> Self {
        let name = unique("usage").replace('-', "_");
        let pool = sqlx::PgPool::connect(POSTGRES)
            .await
            .expect("local Postgres");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&pool)
            .await
            .expect("create schema");
        pool.close().await;
        Self { name }
    }

    /// `DATABASE_URL` whose connections use this schema.
    fn url(&self) -> String {
        format!("{POSTGRES}?options=-c%20search_path%3D{}", self.name)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        // Best effort, from a thread of its own (drop may run inside the runtime).
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok(pool) = sqlx::PgPool::connect(POSTGRES).await {
                        let _ =
                            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {name} CASCADE")))
                                .execute(&pool)
                                .await;
                    }
                });
            }
        })
        .join();
    }
}

/// Redis keys under `prefix` matching `pattern`.
async fn redis_keys(url: &str, pattern: &str) -> Vec<String> {
    let Ok(client) = redis::Client::open(url) else {
        return Vec::new();
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return Vec::new();
    };
    redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut conn)
        .await
        .unwrap_or_default()
}

fn shared_env(prefix: &str, redis: &str, upstream: &FakeUpstream) -> Vec<(&'static str, String)> {
    vec![
        ("REDIS_URL", redis.to_owned()),
        ("REDIS_PREFIX", prefix.to_owned()),
        ("STATE_SYNC_MS", "25".to_owned()),
        ("GROQ_API_KEY", "gsk-test".to_owned()),
        ("GROQ_BASE_URL", upstream.url("/openai/v1")),
        ("MAX_RETRIES", "0".to_owned()),
        ("CIRCUIT_BREAKER_COOLDOWN_MS", "60000".to_owned()),
    ]
}

/// Five failures through A open the circuit; B then skips the deployment without a call.
async fn open_through_a_and_see_b_skip(
    a: &Replica,
    b: &Replica,
    upstream: &FakeUpstream,
    model: &str,
) {
    let id = model;
    // B has routed to the deployment once (and seen it fail): it knows it, closed.
    // One deployment that answers 500: the gateway answers 502 naming it.
    assert_eq!(b.chat(&crate::support::chat(model, "warm up")).await.0, 502);
    assert_eq!(b.deployment_status("groq", id).await, "healthy");
    let before = upstream.hits();
    for i in 0..5 {
        let (status, _, _) = a
            .chat(&crate::support::chat(model, &format!("fail {i}")))
            .await;
        assert_eq!(status, 502, "attempt {i} through A");
    }
    assert_eq!(upstream.hits(), before + 5);
    assert_eq!(a.deployment_status("groq", id).await, "open");
    let shared = eventually(Duration::from_secs(10), || async {
        b.deployment_status("groq", id).await == "open"
    })
    .await;
    assert!(shared, "B never saw the circuit A opened: {}", b.logs());
    let (status, headers, body) = b.chat(&crate::support::chat(model, "through B")).await;
    assert_eq!(status, 503, "{body}");
    assert!(headers.contains_key("retry-after"));
    assert_eq!(
        upstream.hits(),
        before + 5,
        "B contacted the open deployment"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_circuit_opened_through_one_replica_is_open_on_the_other_and_a_reset_resets_both() {
    let upstream = FakeUpstream::start(server_error()).await;
    let prefix = unique("circuit");
    let env = shared_env(&prefix, REDIS, &upstream);
    let (a, b) = (Replica::start(&env).await, Replica::start(&env).await);
    let model = "groq/llama-3.1-8b-instant";
    open_through_a_and_see_b_skip(&a, &b, &upstream, model).await;

    // A reset through B closes the circuit on A too.
    let (status, _, _) = send(
        http::Request::post(b.url(&format!("/admin/circuits/{model}/reset"))),
        Vec::new(),
    )
    .await;
    assert!((200..300).contains(&status), "reset answered {status}");
    assert_eq!(b.deployment_status("groq", model).await, "healthy");
    let reset = eventually(Duration::from_secs(10), || async {
        a.deployment_status("groq", model).await == "healthy"
    })
    .await;
    assert!(reset, "the reset through B did not reach A: {}", a.logs());
    upstream.set_fallback(Reply::json(completion("back")));
    assert_eq!(
        a.chat(&crate::support::chat(model, "after reset")).await.0,
        200
    );
    assert!(
        !redis_keys(REDIS, &format!("{prefix}:circuits"))
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_written_through_one_replica_is_read_through_the_other() {
    let upstream = FakeUpstream::start(Reply::json(completion("counted"))).await;
    let prefix = unique("usage");
    let mut env = shared_env(&prefix, REDIS, &upstream);
    let schema = Schema::create().await;
    env.push(("DATABASE_URL", schema.url()));
    let (a, b) = (Replica::start(&env).await, Replica::start(&env).await);
    // A model name no other test or earlier run has used: the rows are this test's alone.
    let model = format!("groq/{}", unique("model"));
    for _ in 0..2 {
        assert_eq!(
            a.chat(&crate::support::chat(&model, "count me")).await.0,
            200
        );
    }
    let seen = eventually(Duration::from_secs(10), || async {
        let (_, body) = get(&b.url("/v1/usage")).await;
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        v["by_model"][&model]["requests"] == json!(2)
            && v["by_model"][&model]["prompt_tokens"] == json!(18)
    })
    .await;
    assert!(
        seen,
        "B's /v1/usage never showed A's two requests for {model}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_cached_through_one_replica_is_a_hit_through_the_other() {
    let upstream = FakeUpstream::start(Reply::json(completion("cached answer"))).await;
    let prefix = unique("cache");
    let mut env = shared_env(&prefix, REDIS, &upstream);
    env.push(("CACHE_ENABLED", "true".to_owned()));
    let (a, b) = (Replica::start(&env).await, Replica::start(&env).await);
    let request = json!({
        "model": "groq/llama-3.1-8b-instant", "temperature": 0.3,
        "messages": [{"role": "user", "content": format!("what is {prefix}?")}]
    });
    let (status, headers, body) = a.chat(&request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        headers.get("x-proxygate-cache").map(String::as_str),
        Some("miss")
    );
    assert_eq!(upstream.hits(), 1);
    let stored = eventually(Duration::from_secs(10), || async {
        redis_keys(REDIS, &format!("{prefix}:cache:*")).await.len() == 1
    })
    .await;
    assert!(stored, "A never wrote the answer to Redis: {}", a.logs());

    let (status, headers, body) = b.chat(&request).await;
    assert_eq!(status, 200);
    assert_eq!(
        headers.get("x-proxygate-cache").map(String::as_str),
        Some("hit")
    );
    assert_eq!(
        headers.get("x-proxygate-cost-usd").map(String::as_str),
        Some("0")
    );
    assert_eq!(body["choices"][0]["message"]["content"], "cached answer");
    // The same question streamed through B is replayed from the cache as chunks.
    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    let (status, headers, bytes) = post_json(&b.url("/v1/chat/completions"), &streamed).await;
    assert_eq!(status, 200);
    assert_eq!(
        headers.get("x-proxygate-cache").map(String::as_str),
        Some("hit")
    );
    let text: String = crate::support::sse_chunks(&bytes)
        .iter()
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "cached answer");
    assert_eq!(upstream.hits(), 1, "a hit reached the upstream");
    // Both hits are in B's usage, at cost 0.
    let counted = eventually(Duration::from_secs(10), || async {
        let (_, usage) = get(&b.url("/v1/usage")).await;
        let usage: Value = serde_json::from_slice(&usage).unwrap_or(Value::Null);
        usage["totals"]["cache_hits"] == json!(2) && usage["totals"]["cost_usd"] == json!(0.0)
    })
    .await;
    assert!(counted, "B's /v1/usage does not count the two hits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_degrades_to_in_process_state_without_failing_requests() {
    let closed = format!("redis://127.0.0.1:{}", free_port());
    let upstream = FakeUpstream::start(Reply::json(completion("still served"))).await;
    let mut env = shared_env(&unique("down"), &closed, &upstream);
    env.push(("CACHE_ENABLED", "true".to_owned()));
    let a = Replica::start(&env).await;
    let request = crate::support::chat("groq/llama-3.1-8b-instant", "hello while redis is away");
    for _ in 0..3 {
        let (status, _, body) = a.chat(&request).await;
        assert_eq!(status, 200, "{body}");
    }
    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    streamed["messages"][0]["content"] = json!("a stream while redis is away");
    upstream.set_fallback(Reply::openai_sse(&[
        json!({"id": "s", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}),
    ]));
    assert_eq!(
        post_json(&a.url("/v1/chat/completions"), &streamed).await.0,
        200
    );
    // The in-process cache still answers the repeated question.
    assert_eq!(upstream.hits(), 2);
    let degraded = eventually(Duration::from_secs(10), || async {
        a.metric("proxygate_state_backend_degraded").await == Some(1.0)
    })
    .await;
    assert!(degraded, "no degraded metric: {}", a.logs());
    assert_eq!(
        a.health().await["state"],
        json!({"backend": "redis", "degraded": true})
    );
    assert!(a.logs().contains("state backend degraded"), "{}", a.logs());
}

/// A `redis-server` of the test's own on a free port, stopped when dropped.
struct PrivateRedis {
    child: Option<Child>,
    port: u16,
}

impl PrivateRedis {
    fn start(port: u16) -> Option<Self> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self {
            child: Some(child),
            port,
        })
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_test_degrades_and_shared_state_resumes_when_it_is_back() {
    let port = free_port();
    let Some(mut redis) = PrivateRedis::start(port) else {
        eprintln!("skipped: redis-server is not installed here");
        return;
    };
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let upstream = FakeUpstream::start(Reply::json(completion("fine"))).await;
    let mut env = shared_env(&unique("restart"), &url, &upstream);
    env.push(("REDIS_TIMEOUT_MS", "200".to_owned()));
    let (a, b) = (Replica::start(&env).await, Replica::start(&env).await);
    let model = "groq/llama-3.1-8b-instant";
    assert_eq!(a.chat(&crate::support::chat(model, "before")).await.0, 200);
    // Before the outage the circuit opens and closes once through the shared state, so both
    // replicas have seen versions of it that a restarted (empty) Redis knows nothing of.
    upstream.set_fallback(server_error());
    open_through_a_and_see_b_skip(&a, &b, &upstream, model).await;
    let reset = http::Request::post(a.url(&format!("/admin/circuits/{model}/reset")));
    assert!((200..300).contains(&send(reset, Vec::new()).await.0));
    let closed = eventually(Duration::from_secs(10), || async {
        b.deployment_status("groq", model).await == "healthy"
    })
    .await;
    assert!(closed, "the reset through A never reached B");
    upstream.set_fallback(Reply::json(completion("fine")));

    redis.stop();
    // Redis is gone: requests are still served, and the circuit A opens meanwhile stays A's.
    for i in 0..3 {
        let (status, _, body) = a
            .chat(&crate::support::chat(model, &format!("during {i}")))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    upstream.set_fallback(server_error());
    for i in 0..5 {
        assert_eq!(
            a.chat(&crate::support::chat(model, &format!("fail {i}")))
                .await
                .0,
            502
        );
    }
    assert_eq!(a.deployment_status("groq", model).await, "open");
    for r in [&a, &b] {
        let degraded = eventually(Duration::from_secs(15), || async {
            r.metric("proxygate_state_backend_degraded").await == Some(1.0)
        })
        .await;
        assert!(degraded, "no degraded metric: {}", r.logs());
        assert!(r.logs().contains("state backend degraded"));
        assert_eq!(r.health().await["state"]["degraded"], json!(true));
    }
    assert_eq!(b.deployment_status("groq", model).await, "healthy");

    let Some(_back) = PrivateRedis::start(port) else {
        panic!("redis-server did not start again on port {port}");
    };
    for r in [&a, &b] {
        let recovered = eventually(Duration::from_secs(30), || async {
            r.metric("proxygate_state_backend_degraded").await == Some(0.0)
        })
        .await;
        assert!(recovered, "never recovered: {}", r.logs());
        assert!(r.logs().contains("state backend recovered"));
    }
    // Shared state resumes: the circuit A opened while Redis was away reaches B.
    let shared = eventually(Duration::from_secs(10), || async {
        b.deployment_status("groq", model).await == "open"
    })
    .await;
    assert!(
        shared,
        "the circuit opened during the outage never reached B"
    );
    let before = upstream.hits();
    assert_eq!(b.chat(&crate::support::chat(model, "after")).await.0, 503);
    assert_eq!(upstream.hits(), before);
}

/// Two in-process gateways sharing the local Redis under `prefix`.
async fn two_in_process(
    prefix: &str,
    upstream: &FakeUpstream,
) -> (crate::support::TestGateway, crate::support::TestGateway) {
    let env = shared_env(prefix, REDIS, upstream);
    (
        crate::support::TestGateway::start(&env).await,
        crate::support::TestGateway::start(&env).await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_never_routed_to_a_deployment_learns_its_open_circuit_and_latency() {
    let model = "groq/llama-3.1-8b-instant";
    let upstream =
        FakeUpstream::start(Reply::json(completion("slow")).after(Duration::from_millis(40))).await;
    let (a, b) = two_in_process(&unique("cold"), &upstream).await;
    let url = a.url("/v1/chat/completions");
    assert_eq!(
        post_json(&url, &crate::support::chat(model, "measure me"))
            .await
            .0,
        200
    );

    // B creates the deployment without sending anything: A's latency arrives with the sync.
    let on_b = b.gateway.registry().resolve(model).unwrap().remove(0);
    let learned = eventually(Duration::from_secs(10), || async {
        on_b.state().latency(tokio::time::Instant::now()).is_some()
    })
    .await;
    assert!(learned, "B never learned A's latency for {model}");
    assert!(
        on_b.state().latency_sample().is_none(),
        "B measured nothing itself"
    );

    upstream.set_fallback(server_error());
    for i in 0..5 {
        assert_eq!(
            post_json(&url, &crate::support::chat(model, &format!("f{i}")))
                .await
                .0,
            502
        );
    }
    let opened = eventually(Duration::from_secs(10), || async {
        on_b.state().status() == "open"
    })
    .await;
    assert!(opened, "B never saw the circuit open");
    let before = upstream.hits();
    let (status, _, _) = post_json(
        &b.url("/v1/chat/completions"),
        &crate::support::chat(model, "b"),
    )
    .await;
    assert_eq!(status, 503);
    assert_eq!(upstream.hits(), before);
}

const MASTER: &str = "mk-scale-test-master-key-0001";

/// Two replicas sharing Redis under a prefix of their own and Postgres in a schema of their
/// own (where the virtual keys live), answering as the mock with a master key.
/// They must not see Redis as away, which would make limits per replica: each test asserts
/// that no replica logged it.
async fn two_with_keys(
    prefix: &str,
    schema: &Schema,
    extra: &[(&'static str, String)],
) -> (Replica, Replica) {
    let mut env = vec![
        ("REDIS_URL", REDIS.to_owned()),
        ("REDIS_PREFIX", prefix.to_owned()),
        ("STATE_SYNC_MS", "25".to_owned()),
        // A busy test machine may stall a Redis answer past the default 250 ms, which counts
        // as Redis away (and limits per replica): these tests are about Redis being there.
        ("REDIS_TIMEOUT_MS", "3000".to_owned()),
        ("PROXYGATE_MASTER_KEY", MASTER.to_owned()),
        ("DATABASE_URL", schema.url()),
        ("MOCK_CHUNK_DELAY_MS", "0".to_owned()),
    ];
    env.extend(extra.iter().cloned());
    (Replica::start(&env).await, Replica::start(&env).await)
}

impl Replica {
    /// A request with `key` as the bearer token.
    async fn call(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: Option<&Value>,
    ) -> (u16, std::collections::HashMap<String, String>, Value) {
        let req = http::Request::builder()
            .method(method)
            .uri(self.url(path))
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json");
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let (status, headers, bytes) = send(req, body).await;
        (
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Creates a virtual key through the admin API; returns (id, plaintext).
    async fn create_key(&self, spec: Value) -> (String, String) {
        let (status, _, body) = self.call("POST", "/admin/keys", MASTER, Some(&spec)).await;
        assert_eq!(status, 201, "{body}");
        (
            body["id"].as_str().unwrap_or_default().to_owned(),
            body["key"].as_str().unwrap_or_default().to_owned(),
        )
    }
}

/// Sends `n` chat requests with `key` at once, alternating between `a` and `b`; returns each
/// answer's status, headers and body.
async fn concurrently(
    a: &Replica,
    b: &Replica,
    key: &str,
    n: usize,
    body: &Value,
) -> Vec<(u16, std::collections::HashMap<String, String>, Value)> {
    let calls = (0..n).map(|i| {
        let r = if i % 2 == 0 { a } else { b };
        r.call("POST", "/v1/chat/completions", key, Some(body))
    });
    futures_util::future::join_all(calls).await
}

/// Waits until the current one-minute window has at least 15 s left, so a burst of requests
/// falls in one window.
async fn early_in_a_window() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let into = now % 60_000;
    if into > 45_000 {
        tokio::time::sleep(Duration::from_millis(60_000 - into + 100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rpm_limit_of_ten_serves_exactly_ten_of_twenty_concurrent_requests_across_replicas() {
    let schema = Schema::create().await;
    let prefix = unique("rpm");
    let (a, b) = two_with_keys(&prefix, &schema, &[]).await;
    let (_, key) = a.create_key(json!({"name": "shared", "rpm": 10})).await;
    early_in_a_window().await;
    let answers = concurrently(&a, &b, &key, 20, &crate::support::chat("mock/echo", "hi")).await;
    let served = answers.iter().filter(|(s, _, _)| *s == 200).count();
    let limited: Vec<_> = answers.iter().filter(|(s, _, _)| *s == 429).collect();
    assert_eq!(served, 10, "{answers:?}");
    assert_eq!(limited.len(), 10, "{answers:?}");
    for (_, headers, body) in limited {
        assert!(headers.contains_key("retry-after"), "{headers:?}");
        assert_eq!(
            headers
                .get("x-ratelimit-remaining-requests")
                .map(String::as_str),
            Some("0")
        );
        assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    }
    assert!(!a.logs().contains("degraded") && !b.logs().contains("degraded"));
    // The counters are in Redis, under the window's name.
    assert!(
        !redis_keys(REDIS, &format!("{prefix}:rl:*"))
            .await
            .is_empty(),
        "no counter in Redis"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_that_fits_ten_serves_at_most_ten_across_replicas_and_is_never_overspent() {
    let schema = Schema::create().await;
    // $1 per completion token on the mock, so costs are whole dollars.
    let extra = [("RATE_OVERRIDES", "mock/echo=0/1000000".to_owned())];
    let (a, b) = two_with_keys(&unique("budget"), &schema, &extra).await;
    let (status, _, one) = a
        .call(
            "POST",
            "/v1/chat/completions",
            MASTER,
            Some(&crate::support::chat("mock/echo", "hi")),
        )
        .await;
    assert_eq!(status, 200, "{one}");
    let n = one["usage"]["completion_tokens"].as_u64().unwrap_or(0);
    assert!(n > 0, "{one}");
    let budget = 10.0 * n as f64;
    let (id, key) = a
        .create_key(json!({"budget_usd": budget, "budget_period": "total"}))
        .await;
    let mut body = crate::support::chat("mock/echo", "hi");
    body["max_tokens"] = json!(n);
    let answers = concurrently(&a, &b, &key, 40, &body).await;
    let mut served = 0;
    for (status, _, v) in &answers {
        match status {
            200 => served += 1,
            429 => assert_eq!(v["error"]["code"], "budget_exceeded", "{v}"),
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert!(
        (1..=10).contains(&served),
        "served {served} of a budget for 10: {}\n{}",
        a.logs(),
        b.logs()
    );
    // What both replicas recorded (in Postgres) never passes the budget.
    let recorded = eventually(Duration::from_secs(10), || async {
        let (_, _, u) = b
            .call("GET", &format!("/v1/usage?key={id}"), MASTER, None)
            .await;
        u["totals"]["requests"].as_u64() == Some(served)
    })
    .await;
    assert!(recorded, "the usage of {served} requests never reached B");
    let (_, _, usage) = b
        .call("GET", &format!("/v1/usage?key={id}"), MASTER, None)
        .await;
    let spent = usage["totals"]["cost_usd"].as_f64().unwrap_or(f64::MAX);
    assert!(spent <= budget + 1e-9, "spent {spent} of {budget}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_deleted_on_one_replica_is_refused_on_the_other_before_its_cache_expires() {
    let schema = Schema::create().await;
    let (a, b) = two_with_keys(&unique("keys"), &schema, &[]).await;
    let (id, key) = a.create_key(json!({"name": "short-lived"})).await;
    let request = crate::support::chat("mock/echo", "hi");
    // B has looked the key up, and caches it for 10 s.
    let (status, _, body) = b
        .call("POST", "/v1/chat/completions", &key, Some(&request))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = a
        .call("DELETE", &format!("/admin/keys/{id}"), MASTER, None)
        .await;
    assert!((200..300).contains(&status), "delete answered {status}");
    // Well within the 10 s the cache would keep it otherwise.
    let refused = eventually(Duration::from_secs(5), || async {
        b.call("POST", "/v1/chat/completions", &key, Some(&request))
            .await
            .0
            == 401
    })
    .await;
    assert!(refused, "B still serves a key deleted on A: {}", b.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_unreachable_limits_hold_per_replica_and_requests_still_succeed() {
    let closed = format!("redis://127.0.0.1:{}", free_port());
    let env = vec![
        ("REDIS_URL", closed),
        ("REDIS_PREFIX", unique("limits-down")),
        ("STATE_SYNC_MS", "25".to_owned()),
        ("PROXYGATE_MASTER_KEY", MASTER.to_owned()),
        ("RATE_OVERRIDES", "mock/echo=0/1000000".to_owned()),
    ];
    let a = Replica::start(&env).await;
    let (_, limited) = a.create_key(json!({"rpm": 2})).await;
    let (_, budgeted) = a
        .create_key(json!({"budget_usd": 1000, "budget_period": "daily"}))
        .await;
    let request = crate::support::chat("mock/echo", "hi");
    early_in_a_window().await;
    for _ in 0..2 {
        let (status, _, body) = a
            .call("POST", "/v1/chat/completions", &limited, Some(&request))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, headers, _) = a
        .call("POST", "/v1/chat/completions", &limited, Some(&request))
        .await;
    assert_eq!(status, 429, "the in-process limit stands in");
    assert!(headers.contains_key("retry-after"));
    let mut small = request.clone();
    small["max_tokens"] = json!(10);
    let (status, _, body) = a
        .call("POST", "/v1/chat/completions", &budgeted, Some(&small))
        .await;
    assert_eq!(status, 200, "{body}");
    // The budget still applies: a reservation larger than it is refused.
    let (status, _, body) = a
        .call("POST", "/v1/chat/completions", &budgeted, Some(&request))
        .await;
    assert_eq!(body["error"]["code"], "budget_exceeded", "{status} {body}");
    let degraded = eventually(Duration::from_secs(10), || async {
        a.metric("proxygate_state_backend_degraded").await == Some(1.0)
    })
    .await;
    assert!(degraded, "no degraded metric: {}", a.logs());
    assert!(a.logs().contains("state backend degraded"), "{}", a.logs());
}
