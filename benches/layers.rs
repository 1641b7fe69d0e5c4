//! Per-request cost of each piece of the gateway, measured with criterion.
//!
//! From the edge inwards: decoding and validating the client's JSON, the OpenAI adapter's
//! request and response translation, the SSE parser, the OpenAI stream decoder and the SSE
//! encoder; then whole stacks without sockets: router + dispatch over the in-process mock
//! (`Gateway::chat_service`), the axum router end to end (`tower::ServiceExt::oneshot` on an
//! `http::Request`), and, for scale, the chat stack over the pooled client to a loopback fake
//! upstream. `cargo bench --bench layers` (about a minute); the throughput comparison with a
//! direct call is the load bench (`cargo bench --bench load`).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::hint::black_box;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use futures_core::Stream;
use http_body_util::{BodyExt, Full};
use proxygate::Gateway;
use proxygate::http::encode::SseEncoder;
use proxygate::providers::openai_compat::{OpenAiCompat, OpenAiDecoder, quirks_of};
use proxygate::providers::{EventParser, Framing, ProviderAdapter, SseEvent, StreamDecoder};
use proxygate::types::Secret;
use proxygate::types::{ChatChunk, ChatReply, ChatRequest, ChatStream, Delta, ReplyBody, Usage};
use tokio::runtime::Runtime;
use tower::ServiceExt;

const SMALL_REQUEST: &[u8] = br#"{"model":"mock/echo","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32,"temperature":0.2}"#;

const COMPLETION: &[u8] = br#"{"id":"chatcmpl-bench","object":"chat.completion","created":1730000000,"model":"llama-3.1-8b-instant","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, nice to meet you!","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":24,"completion_tokens":8,"total_tokens":32,"queue_time":0.01},"system_fingerprint":"fp_bench","x_groq":{"id":"req_bench"}}"#;

/// A typical short upstream stream: role, three content deltas, finish, Groq usage, [DONE].
fn upstream_stream() -> Vec<u8> {
    let mut s = String::new();
    let chunk = |delta: &str, finish: &str| {
        format!(
            "data: {{\"id\":\"chatcmpl-b\",\"object\":\"chat.completion.chunk\",\"created\":1730000000,\"model\":\"llama-3.1-8b-instant\",\"system_fingerprint\":\"fp_b\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}]}}\n\n"
        )
    };
    s.push_str(&chunk(r#"{"role":"assistant","content":""}"#, "null"));
    for word in ["Hello", " there", ", nice to meet you!"] {
        s.push_str(&chunk(&format!(r#"{{"content":"{word}"}}"#), "null"));
    }
    s.push_str("data: {\"id\":\"chatcmpl-b\",\"object\":\"chat.completion.chunk\",\"created\":1730000000,\"model\":\"llama-3.1-8b-instant\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"x_groq\":{\"id\":\"req_b\",\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":5,\"total_tokens\":17}}}\n\n");
    s.push_str("data: [DONE]\n\n");
    s.into_bytes()
}

fn large_request() -> Vec<u8> {
    let messages: Vec<serde_json::Value> = (0..20)
        .map(|i| {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            serde_json::json!({"role": role, "content": "The quick brown fox jumps over the lazy dog. ".repeat(8)})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "model": "mock/echo", "messages": messages, "temperature": 0.7, "max_tokens": 512,
        "tools": [{"type": "function", "function": {"name": "lookup", "description": "Look up a word",
            "parameters": {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]}}}],
    }))
    .unwrap_or_default()
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn gateway(env: &[(&str, &str)]) -> Gateway {
    let mut map: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    // Usage records in the bounded in-process store: no file in the working directory.
    map.insert("USAGE_DB_PATH".into(), ":memory:".into());
    let config = proxygate::Config::from_env(&map, proxygate::catalog::Catalog::default())
        .expect("bench config is valid");
    // The global metrics recorder, as the binary runs it: the edge records on every request.
    Gateway::new(config).await.expect("gateway builds")
}

fn request(body: &[u8]) -> ChatRequest {
    proxygate::http::decode::chat_request(body).expect("bench request is valid")
}

// === pure per-request work ===

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    let large = large_request();
    for (name, body) in [
        ("chat_request_small", SMALL_REQUEST),
        ("chat_request_20_messages", &large[..]),
    ] {
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| proxygate::http::decode::chat_request(black_box(body)))
        });
    }
    g.finish();
}

fn adapter(c: &mut Criterion) {
    let mut g = c.benchmark_group("openai_adapter");
    let groq = OpenAiCompat::new(
        "groq",
        "http://127.0.0.1:9/openai/v1",
        Some(Secret::new("gsk_bench_not_a_real_key")),
        quirks_of("groq"),
    );
    let mut req = request(SMALL_REQUEST);
    req.model = "llama-3.1-8b-instant".into();
    g.bench_function("request", |b| b.iter(|| groq.request(black_box(&req))));
    g.bench_function("response", |b| {
        b.iter(|| groq.response(&req, black_box(COMPLETION)))
    });
    g.finish();
}

fn sse(c: &mut Criterion) {
    let raw = upstream_stream();
    let mut g = c.benchmark_group("stream");
    g.throughput(Throughput::Bytes(raw.len() as u64));
    g.bench_function("sse_parse_whole_stream", |b| {
        b.iter(|| {
            let mut p = EventParser::new(Framing::Sse);
            let mut out = Vec::with_capacity(8);
            p.feed(black_box(&raw), &mut out);
            p.finish(&mut out);
            out
        })
    });
    // As it comes off a socket: a read may end anywhere.
    g.bench_function("sse_parse_64_byte_reads", |b| {
        b.iter(|| {
            let mut p = EventParser::new(Framing::Sse);
            let mut out = Vec::with_capacity(8);
            for piece in raw.chunks(64) {
                p.feed(black_box(piece), &mut out);
            }
            p.finish(&mut out);
            out
        })
    });

    let mut events = Vec::new();
    let mut p = EventParser::new(Framing::Sse);
    p.feed(&raw, &mut events);
    p.finish(&mut events);
    g.bench_function("openai_decode_whole_stream", |b| {
        b.iter_batched(
            || events.clone(),
            |events: Vec<SseEvent>| {
                let mut d = OpenAiDecoder::new("groq");
                let mut out = VecDeque::with_capacity(8);
                for e in events {
                    let _ = d.event(e, &mut out);
                }
                let _ = d.finish(&mut out);
                out
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn chunks() -> Vec<ChatChunk> {
    let mut v = vec![ChatChunk::delta(
        "chatcmpl-b",
        1730000000,
        "llama-3.1-8b-instant",
        Delta::role(),
        None,
    )];
    for w in ["Hello", " there", ", nice to meet you!"] {
        v.push(ChatChunk::delta(
            "chatcmpl-b",
            1730000000,
            "llama-3.1-8b-instant",
            Delta::text(w),
            None,
        ));
    }
    v.push(ChatChunk::delta(
        "chatcmpl-b",
        1730000000,
        "llama-3.1-8b-instant",
        Delta::default(),
        Some("stop"),
    ));
    v.push(ChatChunk::usage_only(
        "chatcmpl-b",
        1730000000,
        "llama-3.1-8b-instant",
        Usage::new(12, 5),
    ));
    v
}

async fn drain<S: Stream + Unpin>(mut s: S) -> usize {
    let mut n = 0;
    while std::future::poll_fn(|cx| Pin::new(&mut s).poll_next(cx))
        .await
        .is_some()
    {
        n += 1;
    }
    n
}

fn encode(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("stream");
    let chunks = chunks();
    g.bench_function("sse_encode_whole_stream", |b| {
        b.to_async(&rt).iter_batched(
            || -> ChatStream {
                Box::pin(futures_util::stream::iter(
                    chunks.clone().into_iter().map(Ok),
                ))
            },
            |stream| async move { drain(SseEncoder::new(stream, true, 12, None)).await },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// What the edge records per request (`RequestGuard`): the in-flight gauge up and down, the
/// labelled request counter and the duration histogram, into the global Prometheus recorder.
fn metrics(c: &mut Criterion) {
    use proxygate::telemetry::names;
    let handle = proxygate::telemetry::install();
    let mut g = c.benchmark_group("edge");
    g.bench_function("request_metrics", |b| {
        b.iter(|| {
            metrics::gauge!(names::INFLIGHT_REQUESTS).increment(1.0);
            metrics::gauge!(names::INFLIGHT_REQUESTS).decrement(1.0);
            let status: u16 = black_box(200);
            let model = black_box("groq/llama-3.1-8b-instant").to_string();
            metrics::counter!(names::REQUESTS_TOTAL,
                "provider" => "groq", "model" => model,
                "status" => status.to_string(), "endpoint" => "chat")
            .increment(1);
            metrics::histogram!(names::REQUEST_DURATION_SECONDS).record(black_box(0.000_3));
        })
    });
    g.finish();
    handle.run_upkeep(); // drop the millions of raw samples just recorded
}

// === whole stacks, no sockets ===

async fn consume(reply: Result<ChatReply, proxygate::GatewayError>) -> usize {
    match reply {
        Ok(r) => match r.body {
            ReplyBody::Complete(resp) => resp.choices.len(),
            ReplyBody::Raw(raw) => raw.body.len(),
            ReplyBody::Stream(s) => drain(s).await,
            ReplyBody::Embeddings(e) => e.data.len(),
        },
        Err(e) => panic!("bench request failed: {e}"),
    }
}

fn stack(c: &mut Criterion) {
    let rt = runtime();
    let gw = rt.block_on(async { gateway(&[("MOCK_CHUNK_DELAY_MS", "0")]).await });
    let svc = gw.chat_service();
    let req = request(SMALL_REQUEST);
    let mut stream_req = req.clone();
    stream_req.stream = Some(true);

    let mut g = c.benchmark_group("stack");
    g.bench_function("router_dispatch_mock_echo", |b| {
        b.to_async(&rt).iter(|| {
            let call = svc.clone().oneshot(req.clone());
            async move { consume(call.await).await }
        })
    });
    g.bench_function("router_dispatch_mock_echo_stream", |b| {
        b.to_async(&rt).iter(|| {
            let call = svc.clone().oneshot(stream_req.clone());
            async move { consume(call.await).await }
        })
    });

    let app = gw.router();
    let http_request = |body: &'static [u8]| {
        http::Request::post("/v1/chat/completions")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::from(Bytes::from_static(body)))
            .expect("bench request builds")
    };
    const STREAM_REQUEST: &[u8] = br#"{"model":"mock/echo","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32,"stream":true}"#;
    g.bench_function("http_router_oneshot_mock_echo", |b| {
        b.to_async(&rt).iter(|| {
            let call = app.clone().oneshot(http_request(SMALL_REQUEST));
            async move {
                let resp = call.await.unwrap_or_else(|e: Infallible| match e {});
                assert_eq!(resp.status(), http::StatusCode::OK);
                resp.into_body().collect().await.map(|c| c.to_bytes().len())
            }
        })
    });
    g.bench_function("http_router_oneshot_mock_echo_stream", |b| {
        b.to_async(&rt).iter(|| {
            let call = app.clone().oneshot(http_request(STREAM_REQUEST));
            async move {
                let resp = call.await.unwrap_or_else(|e: Infallible| match e {});
                assert_eq!(resp.status(), http::StatusCode::OK);
                resp.into_body().collect().await.map(|c| c.to_bytes().len())
            }
        })
    });
    g.finish();
}

// === the chat stack over the pooled client, to a loopback fake ===

async fn start_fake() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        let _ = req.into_body().collect().await;
                        let mut resp =
                            http::Response::new(Full::new(Bytes::from_static(COMPLETION)));
                        resp.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static("application/json"),
                        );
                        Ok::<_, Infallible>(resp)
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

fn loopback(c: &mut Criterion) {
    let rt = runtime();
    let gw = rt.block_on(async {
        let addr = start_fake().await;
        let base = format!("http://{addr}/openai/v1");
        gateway(&[
            ("GROQ_API_KEY", "gsk_bench_not_a_real_key"),
            ("GROQ_BASE_URL", &base),
        ])
        .await
    });
    let svc = gw.chat_service();
    let mut req = request(SMALL_REQUEST);
    req.model = "groq/llama-3.1-8b-instant".into();
    let mut g = c.benchmark_group("loopback");
    g.bench_function("chat_stack_groq_over_pooled_client", |b| {
        b.to_async(&rt).iter(|| {
            let call = svc.clone().oneshot(req.clone());
            async move { consume(call.await).await }
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

// === each layer alone, over a service that answers at once ===

fn canned_reply(stream: bool) -> ChatReply {
    use proxygate::types::{ChatResponse, ReplyMeta, ResponseMessage};
    let meta = ReplyMeta {
        provider: "groq",
        deployment: "groq/llama-3.1-8b-instant".into(),
        attempts: 1,
        ..ReplyMeta::default()
    };
    if stream {
        let mut all = chunks();
        all.push(ChatChunk::usage_only("c", 1, "m", Usage::new(24, 8)));
        ChatReply::stream(
            meta,
            Box::pin(futures_util::stream::iter(all.into_iter().map(Ok))),
        )
    } else {
        ChatReply::complete(
            meta,
            ChatResponse::single(
                "llama-3.1-8b-instant",
                ResponseMessage::assistant(Some("Hello there, nice to meet you!".into()), None),
                "stop",
                Some(Usage::new(24, 8)),
            ),
        )
    }
}

/// Times one call of `svc` to its end (a stream drained), on a fresh clone of `req` that is
/// made outside the timing.
fn oneshot_bench<S>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &Runtime,
    name: &str,
    svc: &S,
    req: &ChatRequest,
) where
    S: tower::Service<ChatRequest, Response = ChatReply, Error = proxygate::GatewayError> + Clone,
{
    g.bench_function(name, |b| {
        b.to_async(rt).iter_batched(
            || req.clone(),
            |r| {
                let call = svc.clone().oneshot(r);
                async move { consume(call.await).await }
            },
            BatchSize::SmallInput,
        )
    });
}

fn each_layer(c: &mut Criterion) {
    use proxygate::breaker::BreakerLayer;
    use proxygate::cost::{CostLayer, RateTable};
    use proxygate::health::DeploymentHealth;
    use proxygate::router::RouterLayer;
    use proxygate::usage::{MemoryStore, SinkConfig, UsageSink};
    use std::sync::Arc;
    use tower::Layer;

    let rt = runtime();
    let canned = tower::service_fn(|req: ChatRequest| async move {
        Ok::<_, proxygate::GatewayError>(canned_reply(req.is_stream()))
    });
    let mut req = request(SMALL_REQUEST);
    req.model = "groq/llama-3.1-8b-instant".into();
    let mut stream_req = req.clone();
    stream_req.stream = Some(true);
    let config = proxygate::Config::default();
    let dir = tempfile::tempdir().expect("temp dir");
    let (memory_sink, journal_sink, gw) = rt.block_on(async {
        let memory = UsageSink::in_memory(Arc::new(MemoryStore::new())).await;
        let journal = UsageSink::open(
            Arc::new(MemoryStore::new()),
            SinkConfig {
                journal_dir: Some(dir.path().to_owned()),
                ..SinkConfig::default()
            },
        )
        .await
        .expect("journal opens");
        let gw = gateway(&[
            ("GROQ_API_KEY", "gsk_bench"),
            ("GROQ_BASE_URL", "http://127.0.0.1:9/openai/v1"),
        ])
        .await;
        (memory, journal, gw)
    });
    let rates = Arc::new(RateTable::new(
        &proxygate::catalog::Catalog::default(),
        true,
        &HashMap::new(),
    ));

    let mut g = c.benchmark_group("layer");
    oneshot_bench(&mut g, &rt, "service_fn_alone", &canned, &req);
    for (name, sink) in [
        ("cost_memory_sink", &memory_sink),
        ("cost_journaled_sink", &journal_sink),
    ] {
        let svc = CostLayer::new(rates.clone(), Some(sink.clone())).layer(canned);
        oneshot_bench(&mut g, &rt, name, &svc, &req);
    }
    let svc = CostLayer::new(rates.clone(), Some(journal_sink.clone())).layer(canned);
    oneshot_bench(
        &mut g,
        &rt,
        "cost_journaled_sink_stream_7_chunks",
        &svc,
        &stream_req,
    );
    let svc = BreakerLayer::new(config.breaker_config())
        .with_state(Arc::new(DeploymentHealth::new("groq/llama-3.1-8b-instant")))
        .layer(canned);
    oneshot_bench(&mut g, &rt, "breaker", &svc, &req);
    let svc = RouterLayer::new(gw.registry().clone(), config.router_config()).layer(canned);
    oneshot_bench(&mut g, &rt, "router_resolve_and_order", &svc, &req);
    g.finish();
    // Flush the records made above so the journal does not grow across benches.
    rt.block_on(async {
        let _ = memory_sink.flush().await;
        let _ = journal_sink.flush().await;
    });
}

criterion_group! {
    name = layers;
    config = config();
    targets = decode, adapter, sse, encode, metrics, each_layer, stack, loopback
}
criterion_main!(layers);
