//! Traces end to end: the gateway exports its spans over OTLP/HTTP protobuf to a loopback
//! collector that decodes them with the OpenTelemetry protocol's own types, in front of fake
//! OpenAI-compatible upstreams. Checks the span tree (a server span per request, a client span
//! per upstream attempt), the GenAI attributes, W3C `traceparent` in and out, that streams end
//! their spans with the stream, and that prompts stay out of spans unless asked for.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_sdk::trace::SdkTracerProvider;
use prost::Message;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::support::*;

/// One exported span, flattened.
#[derive(Clone, Debug)]
struct SpanRec {
    name: String,
    /// 2 server, 3 client (the protocol's `SpanKind`).
    kind: i32,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    start_ns: u64,
    end_ns: u64,
    attrs: HashMap<String, Value>,
    /// 2 is error (the protocol's `StatusCode`).
    status: i32,
    service: Option<String>,
}

impl SpanRec {
    fn attr(&self, key: &str) -> Option<&Value> {
        self.attrs.get(key)
    }
    fn str(&self, key: &str) -> Option<&str> {
        self.attr(key).and_then(Value::as_str)
    }
}

fn any_to_json(v: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> Value {
    match v.and_then(|v| v.value.as_ref()) {
        Some(Any::StringValue(s)) => json!(s),
        Some(Any::BoolValue(b)) => json!(b),
        Some(Any::IntValue(i)) => json!(i),
        Some(Any::DoubleValue(d)) => json!(d),
        Some(Any::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(|v| any_to_json(Some(v))).collect())
        }
        _ => Value::Null,
    }
}

/// A loopback OTLP/HTTP collector: decodes each `POST /v1/traces` and keeps its spans and raw
/// bytes.
#[derive(Clone)]
struct Collector {
    url: String,
    spans: Arc<Mutex<Vec<SpanRec>>>,
    raw: Arc<Mutex<Vec<u8>>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

impl Collector {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let spans: Arc<Mutex<Vec<SpanRec>>> = Arc::default();
        let raw: Arc<Mutex<Vec<u8>>> = Arc::default();
        let (s, r) = (spans.clone(), raw.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (s, r) = (s.clone(), r.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let (s, r) = (s.clone(), r.clone());
                            async move {
                                let path = req.uri().path().to_owned();
                                let ctype = req
                                    .headers()
                                    .get("content-type")
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("")
                                    .to_owned();
                                let body = req
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|c| c.to_bytes())
                                    .unwrap_or_default();
                                let status =
                                    if path != "/v1/traces" || ctype != "application/x-protobuf" {
                                        404
                                    } else if let Ok(export) =
                                        ExportTraceServiceRequest::decode(body.as_ref())
                                    {
                                        r.lock().unwrap().extend_from_slice(&body);
                                        let mut out = s.lock().unwrap();
                                        for rs in export.resource_spans {
                                            let service = rs.resource.as_ref().and_then(|res| {
                                                res.attributes
                                                    .iter()
                                                    .find(|kv| kv.key == "service.name")
                                                    .and_then(|kv| {
                                                        any_to_json(kv.value.as_ref())
                                                            .as_str()
                                                            .map(str::to_owned)
                                                    })
                                            });
                                            for ss in rs.scope_spans {
                                                for sp in ss.spans {
                                                    out.push(SpanRec {
                                                        name: sp.name,
                                                        kind: sp.kind,
                                                        trace_id: sp.trace_id,
                                                        span_id: sp.span_id,
                                                        parent_span_id: sp.parent_span_id,
                                                        start_ns: sp.start_time_unix_nano,
                                                        end_ns: sp.end_time_unix_nano,
                                                        attrs: sp
                                                            .attributes
                                                            .iter()
                                                            .map(|kv| {
                                                                (
                                                                    kv.key.clone(),
                                                                    any_to_json(kv.value.as_ref()),
                                                                )
                                                            })
                                                            .collect(),
                                                        status: sp
                                                            .status
                                                            .map(|st| st.code)
                                                            .unwrap_or(0),
                                                        service: service.clone(),
                                                    });
                                                }
                                            }
                                        }
                                        200
                                    } else {
                                        400
                                    };
                                Ok::<_, Infallible>(
                                    http::Response::builder()
                                        .status(status)
                                        .header("content-type", "application/x-protobuf")
                                        .body(Full::new(Bytes::new()))
                                        .expect("response"),
                                )
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Self {
            url: format!("http://{addr}/v1/traces"),
            spans,
            raw,
            task: Arc::new(task),
        }
    }

    fn spans(&self) -> Vec<SpanRec> {
        self.spans.lock().unwrap().clone()
    }

    fn raw(&self) -> Vec<u8> {
        self.raw.lock().unwrap().clone()
    }
}

/// A gateway exporting to a fresh collector.
struct Traced {
    collector: Collector,
    provider: SdkTracerProvider,
    gw: TestGateway2,
}

/// The gateway on loopback, built with a tracer (the shared `TestGateway` builds without).
struct TestGateway2 {
    base: String,
    task: tokio::task::JoinHandle<()>,
}

impl TestGateway2 {
    /// Serves a gateway configured by `env` (with an in-memory usage store) on loopback,
    /// spans going to `tracer`; `status`, when given, is its exporter's collector status.
    async fn serve(
        env: &[(&str, String)],
        tracer: opentelemetry_sdk::trace::SdkTracer,
        status: Option<proxygate::traces::CollectorStatus>,
        capture: bool,
    ) -> Self {
        let mut map: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        map.insert("USAGE_DB_PATH".into(), ":memory:".into());
        let config = proxygate::Config::from_env(&map, proxygate::catalog::Catalog::default())
            .expect("valid test config");
        let mut builder = proxygate::Gateway::builder(config)
            .metrics(false)
            .tracer(tracer)
            .capture_content(capture);
        if let Some(status) = status {
            builder = builder.collector_status(status);
        }
        let gateway = builder.build().await.expect("gateway builds");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = gateway.router();
        Self {
            base: format!("http://{addr}"),
            task: tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }),
        }
    }
}

impl Drop for TestGateway2 {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Traced {
    async fn start(env: &[(&str, String)], capture: bool) -> Self {
        let collector = Collector::start().await;
        let provider =
            proxygate::traces::otlp_provider(&collector.url, proxygate::client::build_client())
                .expect("provider")
                .provider;
        let gw = TestGateway2::serve(env, provider.tracer("proxygate"), None, capture).await;
        Self {
            collector,
            provider,
            gw,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gw.base)
    }

    /// Flushes the batch and waits until `n` spans have arrived.
    async fn spans(&self, n: usize) -> Vec<SpanRec> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let p = self.provider.clone();
            let _ = tokio::task::spawn_blocking(move || p.force_flush()).await;
            let spans = self.collector.spans();
            if spans.len() >= n || tokio::time::Instant::now() > deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        // Shut down off the runtime's threads: it waits for the exporter thread.
        let p = self.provider.clone();
        std::thread::spawn(move || {
            let _ = p.shutdown();
        });
    }
}

fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-up", "object": "chat.completion", "created": 1730000000, "model": "upstream-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
    })
}

fn server_error() -> Reply {
    Reply::status_json(
        500,
        json!({"error": {"message": "internal upstream failure", "type": "server_error"}}),
    )
}

fn now_ns() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    )
    .unwrap()
}

/// Two OpenAI-compatible fakes serving `llama-3.1-8b`, groq first.
async fn two(a: Reply, b: Reply) -> (FakeUpstream, FakeUpstream, Vec<(&'static str, String)>) {
    let (a, b) = (FakeUpstream::start(a).await, FakeUpstream::start(b).await);
    let env = vec![
        ("GROQ_API_KEY", "gsk_test_a".to_owned()),
        ("GROQ_BASE_URL", a.url("/openai/v1")),
        ("CEREBRAS_API_KEY", "csk_test_b".to_owned()),
        ("CEREBRAS_BASE_URL", b.url("/v1")),
        ("PROVIDER_PRIORITY", "groq,cerebras".to_owned()),
    ];
    (a, b, env)
}

const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const ERROR: i32 = 2;

fn one(spans: &[SpanRec], kind: i32) -> &SpanRec {
    let of_kind: Vec<&SpanRec> = spans.iter().filter(|s| s.kind == kind).collect();
    assert_eq!(of_kind.len(), 1, "one span of kind {kind}: {spans:#?}");
    of_kind[0]
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test]
async fn a_request_is_a_server_span_with_one_attempt_span_carrying_genai_attributes() {
    let (a, _b, env) = two(Reply::json(completion("hi there")), server_error()).await;
    let t = Traced::start(&env, false).await;
    let before = now_ns();
    let (status, _, _) = post_json(
        &t.url("/v1/chat/completions"),
        &chat("llama-3.1-8b", "say hi"),
    )
    .await;
    assert_eq!(status, 200);
    let spans = t.spans(2).await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let server = one(&spans, SERVER);
    let attempt = one(&spans, CLIENT);
    assert_eq!(server.name, "POST /v1/chat/completions");
    assert_eq!(server.str("http.route"), Some("/v1/chat/completions"));
    assert_eq!(server.attr("http.response.status_code"), Some(&json!(200)));
    assert!(
        server.parent_span_id.is_empty(),
        "a root span without traceparent"
    );
    assert_eq!(server.service.as_deref(), Some("proxygate"));

    assert_eq!(attempt.name, "chat llama-3.1-8b");
    assert_eq!(attempt.trace_id, server.trace_id);
    assert_eq!(attempt.parent_span_id, server.span_id);
    assert_eq!(attempt.str("gen_ai.operation.name"), Some("chat"));
    assert_eq!(attempt.str("gen_ai.provider.name"), Some("groq"));
    assert_eq!(attempt.str("gen_ai.request.model"), Some("llama-3.1-8b"));
    assert_eq!(attempt.str("gen_ai.response.model"), Some("upstream-model"));
    assert_eq!(attempt.attr("gen_ai.usage.input_tokens"), Some(&json!(9)));
    assert_eq!(attempt.attr("gen_ai.usage.output_tokens"), Some(&json!(3)));
    assert_eq!(
        attempt.attr("gen_ai.response.finish_reasons"),
        Some(&json!(["stop"]))
    );
    assert_eq!(attempt.str("server.address"), Some("127.0.0.1"));
    assert_eq!(
        attempt.attr("server.port"),
        Some(&json!(i64::from(a.addr().port())))
    );
    assert!(attempt.attr("error.type").is_none());
    // Real wall-clock times, the attempt inside the request.
    let after = now_ns();
    for s in [server, attempt] {
        assert!(s.start_ns >= before && s.end_ns <= after, "{s:#?}");
        assert!(s.end_ns >= s.start_ns);
    }
    assert!(attempt.start_ns >= server.start_ns && attempt.end_ns <= server.end_ns);
}

#[tokio::test]
async fn a_failover_shows_as_two_attempt_spans_under_the_server_span() {
    let (a, b, env) = two(server_error(), Reply::json(completion("from b"))).await;
    let t = Traced::start(&env, false).await;
    let (status, headers, _) = post_json(
        &t.url("/v1/chat/completions"),
        &chat("llama-3.1-8b", "fail over please"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        headers.get("x-proxygate-attempts").map(String::as_str),
        Some("2")
    );
    assert_eq!((a.hits(), b.hits()), (1, 1));
    let spans = t.spans(3).await;
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let server = one(&spans, SERVER);
    let mut attempts: Vec<&SpanRec> = spans.iter().filter(|s| s.kind == CLIENT).collect();
    attempts.sort_by_key(|s| s.start_ns);
    assert_eq!(attempts.len(), 2);
    for s in &attempts {
        assert_eq!(s.parent_span_id, server.span_id, "attempts are siblings");
        assert_eq!(s.name, "chat llama-3.1-8b");
    }
    assert_eq!(attempts[0].str("gen_ai.provider.name"), Some("groq"));
    assert_eq!(attempts[0].str("error.type"), Some("upstream"));
    assert_eq!(attempts[0].status, ERROR);
    assert_eq!(attempts[1].str("gen_ai.provider.name"), Some("cerebras"));
    assert!(attempts[1].attr("error.type").is_none());
    assert_eq!(
        attempts[1].attr("gen_ai.usage.output_tokens"),
        Some(&json!(3))
    );
    // Each attempt sent its own span id upstream.
    let sent = |f: &FakeUpstream| {
        f.requests()[0]
            .header("traceparent")
            .expect("traceparent sent upstream")
            .to_owned()
    };
    assert_eq!(
        sent(&a),
        format!(
            "00-{}-{}-01",
            hex(&server.trace_id),
            hex(&attempts[0].span_id)
        )
    );
    assert_eq!(
        sent(&b),
        format!(
            "00-{}-{}-01",
            hex(&server.trace_id),
            hex(&attempts[1].span_id)
        )
    );
}

#[tokio::test]
async fn a_client_traceparent_makes_the_server_span_its_child_and_reaches_upstream() {
    let (a, _b, env) = two(Reply::json(completion("hi")), server_error()).await;
    let t = Traced::start(&env, false).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_id = "00f067aa0ba902b7";
    let req = http::Request::post(t.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .header("traceparent", format!("00-{trace_id}-{parent_id}-01"));
    let (status, _, _) = send(req, chat("llama-3.1-8b", "hello").to_string().into_bytes()).await;
    assert_eq!(status, 200);
    let spans = t.spans(2).await;
    let server = one(&spans, SERVER);
    let attempt = one(&spans, CLIENT);
    assert_eq!(hex(&server.trace_id), trace_id);
    assert_eq!(hex(&server.parent_span_id), parent_id);
    assert_eq!(attempt.trace_id, server.trace_id);
    let upstream = a.requests()[0]
        .header("traceparent")
        .expect("traceparent sent upstream")
        .to_owned();
    assert_eq!(
        upstream,
        format!("00-{trace_id}-{}-01", hex(&attempt.span_id))
    );
}

fn chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1730000000, "model": "stream-model",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

#[tokio::test]
async fn a_stream_ends_its_spans_when_it_ends_and_carries_its_usage() {
    let pace = Duration::from_millis(150);
    let stream = Reply::openai_sse(&[
        chunk(json!({"role": "assistant", "content": ""}), None),
        chunk(json!({"content": "Hel"}), None),
        chunk(json!({"content": "lo"}), Some("stop")),
        json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1730000000, "model": "stream-model",
               "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}),
    ])
    .paced(pace, End::Finish);
    let (_a, _b, env) = two(stream, server_error()).await;
    let t = Traced::start(&env, false).await;
    let mut body = chat("llama-3.1-8b", "stream it");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, _, bytes) = post_json(&t.url("/v1/chat/completions"), &body).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&bytes).contains("[DONE]"));
    let spans = t.spans(2).await;
    let server = one(&spans, SERVER);
    let attempt = one(&spans, CLIENT);
    assert_eq!(attempt.parent_span_id, server.span_id);
    assert_eq!(attempt.attr("gen_ai.request.stream"), Some(&json!(true)));
    assert_eq!(attempt.str("gen_ai.response.model"), Some("stream-model"));
    assert_eq!(attempt.attr("gen_ai.usage.input_tokens"), Some(&json!(5)));
    assert_eq!(attempt.attr("gen_ai.usage.output_tokens"), Some(&json!(2)));
    assert_eq!(
        attempt.attr("gen_ai.response.finish_reasons"),
        Some(&json!(["stop"]))
    );
    assert!(attempt.attr("error.type").is_none(), "{attempt:#?}");
    // Four chunks and the end, each after the pace: the spans last until the stream's end,
    // not until its first chunk.
    let lasted = |s: &SpanRec| Duration::from_nanos(s.end_ns - s.start_ns);
    assert!(lasted(attempt) >= pace * 4, "{:?}", lasted(attempt));
    assert!(lasted(server) >= lasted(attempt));
    assert!(server.end_ns >= attempt.end_ns);
}

#[tokio::test]
async fn a_messages_request_is_traced_like_a_chat_request() {
    let (_a, _b, env) = two(Reply::json(completion("hi")), server_error()).await;
    let t = Traced::start(&env, false).await;
    let body = json!({"model": "llama-3.1-8b", "max_tokens": 64,
                      "messages": [{"role": "user", "content": "hello"}]});
    let (status, _, _) = post_json(&t.url("/v1/messages"), &body).await;
    assert_eq!(status, 200);
    let spans = t.spans(2).await;
    let server = one(&spans, SERVER);
    let attempt = one(&spans, CLIENT);
    assert_eq!(server.name, "POST /v1/messages");
    assert_eq!(attempt.parent_span_id, server.span_id);
    assert_eq!(attempt.name, "chat llama-3.1-8b");
    assert_eq!(attempt.str("gen_ai.provider.name"), Some("groq"));
    assert_eq!(attempt.attr("gen_ai.request.max_tokens"), Some(&json!(64)));
}

#[tokio::test]
async fn an_embeddings_request_is_traced_with_its_operation() {
    let reply = json!({"object": "list", "model": "embed-model",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
        "usage": {"prompt_tokens": 4, "total_tokens": 4}});
    let up = FakeUpstream::start(Reply::json(reply)).await;
    let env = vec![
        ("OPENAI_API_KEY", "sk-test-embed".to_owned()),
        ("OPENAI_BASE_URL", up.url("/v1")),
    ];
    let t = Traced::start(&env, false).await;
    let body = json!({"model": "openai/text-embedding-3-small", "input": "some text"});
    let (status, _, out) = post_json(&t.url("/v1/embeddings"), &body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&out));
    let spans = t.spans(2).await;
    let server = one(&spans, SERVER);
    let attempt = one(&spans, CLIENT);
    assert_eq!(server.name, "POST /v1/embeddings");
    assert_eq!(attempt.parent_span_id, server.span_id);
    assert_eq!(attempt.name, "embeddings openai/text-embedding-3-small");
    assert_eq!(attempt.str("gen_ai.operation.name"), Some("embeddings"));
    assert_eq!(attempt.attr("gen_ai.usage.input_tokens"), Some(&json!(4)));
    assert!(up.requests()[0].header("traceparent").is_some());
}

#[tokio::test]
async fn prompts_and_answers_stay_out_of_spans_unless_capture_is_on() {
    let prompt = "my-secret-prompt-text-7f3a";
    let answer = "the-answer-text-9c2e";
    for capture in [false, true] {
        let (_a, _b, env) = two(Reply::json(completion(answer)), server_error()).await;
        let t = Traced::start(&env, capture).await;
        let (status, _, _) = post_json(
            &t.url("/v1/chat/completions"),
            &chat("llama-3.1-8b", prompt),
        )
        .await;
        assert_eq!(status, 200);
        let spans = t.spans(2).await;
        assert_eq!(spans.len(), 2);
        let raw = String::from_utf8_lossy(&t.collector.raw()).into_owned();
        assert_eq!(
            raw.contains(prompt),
            capture,
            "prompt in spans: capture={capture}"
        );
        assert_eq!(
            raw.contains(answer),
            capture,
            "answer in spans: capture={capture}"
        );
        let attempt = one(&spans, CLIENT);
        assert_eq!(attempt.attr("gen_ai.input.messages").is_some(), capture);
    }
}

#[tokio::test]
async fn requests_off_the_chat_path_get_a_server_span_named_by_route() {
    let (_a, _b, env) = two(Reply::json(completion("hi")), server_error()).await;
    let t = Traced::start(&env, false).await;
    let (status, _) = get(&t.url("/v1/models")).await;
    assert_eq!(status, 200);
    let (status, _) = get(&t.url("/no/such/path/123")).await;
    assert_eq!(status, 404);
    let spans = t.spans(2).await;
    let mut names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["GET", "GET /v1/models"], "{spans:#?}");
    assert!(spans.iter().all(|s| s.kind == SERVER));
}

// === the binary: switched on by the OTEL_* variables; the JSON access log ===

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The binary on a free port with `env` (and nothing from this process's environment), its
/// stdout lines collected as they come.
async fn run_binary(env: &[(&str, String)]) -> (Child, u16, Arc<Mutex<Vec<String>>>) {
    use std::io::BufRead;
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("proxygate-traces-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_proxygate"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORT", port.to_string())
        .env("USAGE_DB_PATH", ":memory:")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(&dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("binary starts");
    let stdout = child.stdout.take().expect("stdout piped");
    let child = Child(child);
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            match line {
                Ok(l) => sink.lock().unwrap().push(l),
                Err(_) => return,
            }
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "binary never listened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (child, port, lines)
}

#[tokio::test]
async fn the_binary_exports_spans_when_the_otel_endpoint_is_set() {
    let collector = Collector::start().await;
    let endpoint = collector.url.trim_end_matches("/v1/traces").to_owned();
    let (_child, port, _) = run_binary(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", "50".to_owned()),
        ("OTEL_SERVICE_NAME", "gateway-under-test".to_owned()),
    ])
    .await;
    let (status, _, _) = post_json(
        &format!("http://127.0.0.1:{port}/v1/chat/completions"),
        &chat("mock/echo", "hello"),
    )
    .await;
    assert_eq!(status, 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let spans = loop {
        let spans = collector.spans();
        if spans.len() >= 2 || tokio::time::Instant::now() > deadline {
            break spans;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let server = one(&spans, SERVER);
    let attempt = one(&spans, CLIENT);
    assert_eq!(server.name, "POST /v1/chat/completions");
    assert_eq!(server.service.as_deref(), Some("gateway-under-test"));
    assert_eq!(attempt.parent_span_id, server.span_id);
    assert_eq!(attempt.str("gen_ai.provider.name"), Some("mock"));
}

#[tokio::test]
async fn log_format_json_writes_one_access_line_per_request_without_the_prompt() {
    let prompt = "access-log-prompt-text-51d0";
    let (child, port, lines) = run_binary(&[("LOG_FORMAT", "json".to_owned())]).await;
    let (status, headers, _) = post_json(
        &format!("http://127.0.0.1:{port}/v1/chat/completions"),
        &chat("mock/echo", prompt),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = get(&format!("http://127.0.0.1:{port}/v1/models")).await;
    assert_eq!(status, 200);
    let access = |lines: &[String]| -> Vec<Value> {
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == "proxygate::access")
            .collect()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while access(&lines.lock().unwrap()).len() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(child);
    let all = lines.lock().unwrap().clone();
    for l in &all {
        assert!(serde_json::from_str::<Value>(l).is_ok(), "not JSON: {l}");
        assert!(!l.contains(prompt), "prompt in the log: {l}");
    }
    let access = access(&all);
    assert_eq!(access.len(), 2, "{all:#?}");
    let chat_line = &access[0];
    assert_eq!(chat_line["level"], "INFO");
    assert_eq!(chat_line["endpoint"], "/v1/chat/completions");
    assert_eq!(
        chat_line["request_id"].as_str(),
        headers.get("x-request-id").map(String::as_str)
    );
    assert_eq!(chat_line["model"], "mock/echo");
    assert_eq!(
        chat_line["deployment"].as_str(),
        headers.get("x-proxygate-deployment").map(String::as_str)
    );
    assert_eq!(chat_line["status"], 200);
    assert_eq!(chat_line["attempts"], 1);
    assert_eq!(chat_line["cache"], "miss");
    assert_eq!(chat_line["cost_usd"], 0.0);
    assert!(chat_line["latency_ms"].as_f64().is_some_and(|l| l > 0.0));
    assert!(chat_line["input_tokens"].as_u64().is_some_and(|t| t > 0));
    assert!(chat_line["output_tokens"].as_u64().is_some_and(|t| t > 0));
    let models_line = &access[1];
    assert_eq!(models_line["endpoint"], "/v1/models");
    assert_eq!(models_line["status"], 200);
    assert!(models_line.get("model").is_none());
}

#[test]
fn the_compose_monitoring_profile_has_a_trace_backend_the_gateways_send_to() {
    let compose: serde_yaml::Value =
        serde_yaml::from_str(include_str!("../../deploy/compose.yaml")).unwrap();
    let services = &compose["services"];
    let jaeger = &services["jaeger"];
    assert_eq!(jaeger["profiles"][0].as_str(), Some("monitoring"));
    assert!(
        jaeger["expose"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|p| p.as_str() == Some("4318")),
        "OTLP/HTTP port"
    );
    for name in ["gateway-1", "gateway-2"] {
        let endpoint = services[name]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
            .as_str()
            .unwrap();
        assert!(
            endpoint.contains("http://jaeger:4318"),
            "{name}: {endpoint}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_served_while_the_collector_is_away() {
    let (a, _b, env) = two(Reply::json(completion("hi")), server_error()).await;
    // A port nothing listens on.
    let closed = free_port();
    let otlp = proxygate::traces::otlp_provider(
        &format!("http://127.0.0.1:{closed}/v1/traces"),
        proxygate::client::build_client(),
    )
    .expect("provider");
    let provider = otlp.provider.clone();
    let gw = TestGateway2::serve(
        &env,
        provider.tracer("proxygate"),
        Some(otlp.status.clone()),
        false,
    )
    .await;
    let base = gw.base.clone();
    for i in 0..20 {
        let (status, _, _) = post_json(
            &format!("{base}/v1/chat/completions"),
            &chat("llama-3.1-8b", &format!("request {i}")),
        )
        .await;
        assert_eq!(status, 200);
        // The attempt still carried its trace upstream.
        assert!(a.requests()[i].header("traceparent").is_some());
    }
    // The failed exports end without a panic or a hang.
    let p = provider.clone();
    let flushed = tokio::task::spawn_blocking(move || p.force_flush()).await;
    assert!(flushed.is_ok());
    // The failed export marks the collector away: later requests make no spans. One that
    // brings no trace passes through with none; one that brings a traceparent still has it
    // continued upstream, by an attempt id of the gateway's own.
    assert!(otlp.status.is_away());
    let before = a.requests().len();
    let (status, _, _) = post_json(
        &format!("{base}/v1/chat/completions"),
        &chat("llama-3.1-8b", "while away"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(a.requests()[before].header("traceparent").is_none());
    let client_parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for i in 0..2 {
        let req = http::Request::post(format!("{base}/v1/chat/completions"))
            .header("content-type", "application/json")
            .header("traceparent", client_parent);
        let body = chat("llama-3.1-8b", &format!("while away, traced {i}"));
        let (status, _, _) = send(req, body.to_string().into_bytes()).await;
        assert_eq!(status, 200);
    }
    let sent: Vec<String> = a.requests()[before + 1..]
        .iter()
        .filter_map(|r| r.header("traceparent").map(str::to_owned))
        .collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    for tp in &sent {
        assert!(
            tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "the client's trace: {tp}"
        );
        assert!(
            !tp.contains("00f067aa0ba902b7"),
            "an id of the gateway's own: {tp}"
        );
    }
    assert_ne!(sent[0], sent[1], "each attempt has its own span id");
    let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
}
