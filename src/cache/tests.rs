use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tower::{Layer, ServiceExt};

use super::*;
use crate::shared::{InProcess, Lookup};
use crate::types::{CacheControl, ChatChunk, ChatStream, Delta, ReplyBody, ResponseMessage, Usage};

/// An upstream that counts its calls: a whole answer, or a stream of the same answer (which
/// fails before its end when `broken`).
#[derive(Clone, Default)]
struct Upstream {
    calls: Arc<AtomicUsize>,
    broken: bool,
}

impl Service<ChatRequest> for Upstream {
    type Response = ChatReply;
    type Error = GatewayError;
    type Future = std::future::Ready<Result<ChatReply, GatewayError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), GatewayError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let meta = ReplyMeta {
            provider: "groq",
            deployment: "groq/m".into(),
            attempts: 1,
            ..Default::default()
        };
        let text = format!("answer {n}");
        std::future::ready(Ok(if req.is_stream() {
            let mut chunks: Vec<Result<ChatChunk, GatewayError>> = vec![
                Ok(ChatChunk::delta("c1", 1, "m", Delta::role(), None)),
                Ok(ChatChunk::delta("c1", 1, "m", Delta::text(text), None)),
                Ok(ChatChunk::delta(
                    "c1",
                    1,
                    "m",
                    Delta::default(),
                    Some("stop"),
                )),
                Ok(ChatChunk::usage_only("c1", 1, "m", Usage::new(5, 2))),
            ];
            if self.broken {
                chunks.truncate(2);
                chunks.push(Err(crate::test_util::upstream(502, None)));
            }
            let s: ChatStream = Box::pin(futures_util::stream::iter(chunks));
            ChatReply::stream(meta, s)
        } else {
            ChatReply::complete(
                meta,
                ChatResponse::single(
                    "m",
                    ResponseMessage::assistant(Some(text), None),
                    "stop",
                    Some(Usage::new(5, 2)),
                ),
            )
        }))
    }
}

fn chat(temperature: f64, stream: bool) -> ChatRequest {
    let mut r: ChatRequest = serde_json::from_value(serde_json::json!({
        "model": "groq/m",
        "messages": [{"role": "user", "content": "hello"}],
        "temperature": temperature,
    }))
    .unwrap();
    r.stream = Some(stream);
    r
}

fn cached(upstream: Upstream) -> Cache<Upstream> {
    let backend = Arc::new(InProcess::new(1 << 20, Duration::from_secs(60)));
    CacheLayer::new(backend, 1 << 20).layer(upstream)
}

fn text(reply: &ChatReply) -> String {
    match &reply.body {
        ReplyBody::Complete(r) => r.choices[0].message.content.clone().unwrap_or_default(),
        ReplyBody::Raw(r) => r.decode("test").unwrap().choices[0]
            .message
            .content
            .clone()
            .unwrap_or_default(),
        ReplyBody::Stream(_) => panic!("a stream"),
        ReplyBody::Embeddings(_) => panic!("embeddings"),
    }
}

async fn streamed_text(reply: ChatReply) -> (String, Vec<ChatChunk>) {
    let ReplyBody::Stream(s) = reply.body else {
        panic!("not a stream")
    };
    let chunks: Vec<ChatChunk> = s.map(|c| c.unwrap()).collect().await;
    let text = chunks
        .iter()
        .flat_map(|c| c.choices.iter())
        .filter_map(|c| c.delta.content.clone())
        .collect();
    (text, chunks)
}

#[tokio::test]
async fn the_same_request_twice_is_a_hit_the_second_time() {
    let up = Upstream::default();
    let svc = cached(up.clone());
    let first = svc.clone().oneshot(chat(0.2, false)).await.unwrap();
    assert!(!first.meta.cache_hit);
    let second = svc.clone().oneshot(chat(0.2, false)).await.unwrap();
    assert!(second.meta.cache_hit);
    assert_eq!(text(&second), "answer 1");
    assert_eq!(second.meta.deployment.as_ref(), "groq/m");
    assert_eq!(second.meta.provider, "groq");
    assert_eq!(up.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_different_temperature_is_a_miss() {
    let up = Upstream::default();
    let svc = cached(up.clone());
    svc.clone().oneshot(chat(0.2, false)).await.unwrap();
    let other = svc.clone().oneshot(chat(0.7, false)).await.unwrap();
    assert!(!other.meta.cache_hit);
    assert_eq!(text(&other), "answer 2");
    assert_eq!(up.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_client_can_bypass_refresh_or_keep_out_of_the_cache() {
    let up = Upstream::default();
    let svc = cached(up.clone());
    let with = |ctl: CacheControl| {
        let mut r = chat(0.2, false);
        r.ctx.cache = ctl;
        r
    };
    let bypass = CacheControl::from_headers(&http::HeaderMap::from_iter([(
        http::HeaderName::from_static("x-proxygate-cache"),
        http::HeaderValue::from_static("bypass"),
    )]));
    assert!(bypass.is_bypass());
    // Neither answered from nor kept in the cache.
    svc.clone().oneshot(with(bypass)).await.unwrap();
    let r = svc.clone().oneshot(chat(0.2, false)).await.unwrap();
    assert!(!r.meta.cache_hit);
    assert_eq!(text(&r), "answer 2");
    // no-cache: a fresh answer, which replaces the cached one.
    let no_cache = CacheControl::from_headers(&http::HeaderMap::from_iter([(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache"),
    )]));
    let r = svc.clone().oneshot(with(no_cache)).await.unwrap();
    assert_eq!((r.meta.cache_hit, text(&r).as_str()), (false, "answer 3"));
    let r = svc.clone().oneshot(chat(0.2, false)).await.unwrap();
    assert_eq!((r.meta.cache_hit, text(&r).as_str()), (true, "answer 3"));
    // no-store: answered from the cache when it can, never kept.
    let no_store = CacheControl {
        no_lookup: false,
        no_store: true,
        vary: 0,
    };
    let mut r = chat(0.9, false);
    r.ctx.cache = no_store;
    svc.clone().oneshot(r).await.unwrap();
    let r = svc.clone().oneshot(chat(0.9, false)).await.unwrap();
    assert!(!r.meta.cache_hit);
    assert_eq!(up.calls.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn a_stream_is_answered_from_a_cached_whole_answer() {
    let up = Upstream::default();
    let svc = cached(up.clone());
    svc.clone().oneshot(chat(0.2, false)).await.unwrap();
    let reply = svc.clone().oneshot(chat(0.2, true)).await.unwrap();
    assert!(reply.meta.cache_hit);
    let (text, chunks) = streamed_text(reply).await;
    assert_eq!(text, "answer 1");
    assert_eq!(
        chunks[0].choices[0].delta.role.as_deref(),
        Some("assistant")
    );
    assert_eq!(chunks.last().unwrap().usage, Some(Usage::new(5, 2)));
    assert_eq!(up.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_stream_that_ends_cleanly_is_kept_and_a_broken_one_is_not() {
    let up = Upstream::default();
    let svc = cached(up.clone());
    let (live, _) = streamed_text(svc.clone().oneshot(chat(0.2, true)).await.unwrap()).await;
    assert_eq!(live, "answer 1");
    let hit = svc.clone().oneshot(chat(0.2, false)).await.unwrap();
    assert!(hit.meta.cache_hit);
    assert_eq!(text(&hit), "answer 1");
    let ReplyBody::Complete(resp) = &hit.body else {
        unreachable!()
    };
    assert_eq!(resp.usage, Some(Usage::new(5, 2)));
    assert_eq!(resp.choices[0].finish_reason.as_deref(), Some("stop"));

    let broken = Upstream {
        broken: true,
        ..Default::default()
    };
    let svc = cached(broken.clone());
    let ReplyBody::Stream(s) = svc.clone().oneshot(chat(0.2, true)).await.unwrap().body else {
        unreachable!()
    };
    let items: Vec<_> = s.collect().await;
    assert!(items.last().unwrap().is_err());
    assert!(
        !svc.clone()
            .oneshot(chat(0.2, false))
            .await
            .unwrap()
            .meta
            .cache_hit
    );
    // A stream dropped half way is not kept either.
    let ReplyBody::Stream(mut s) = svc.clone().oneshot(chat(0.5, true)).await.unwrap().body else {
        unreachable!()
    };
    s.next().await;
    drop(s);
    assert!(
        !svc.clone()
            .oneshot(chat(0.5, false))
            .await
            .unwrap()
            .meta
            .cache_hit
    );
}

#[tokio::test]
async fn a_disabled_cache_passes_everything_through() {
    let up = Upstream::default();
    let svc = CacheLayer::disabled().layer(up.clone());
    for _ in 0..2 {
        assert!(
            !svc.clone()
                .oneshot(chat(0.2, false))
                .await
                .unwrap()
                .meta
                .cache_hit
        );
    }
    assert_eq!(up.calls.load(Ordering::SeqCst), 2);
}

/// A backend whose shared level is a map the test controls (as Redis would be).
#[derive(Debug, Default)]
struct Remote {
    map: Arc<Mutex<std::collections::HashMap<String, Bytes>>>,
    lookups: AtomicUsize,
}

impl StateBackend for Remote {
    fn kind(&self) -> &'static str {
        "remote"
    }
    fn cache_local(&self, _: &str) -> Option<Bytes> {
        None
    }
    fn cache_remote(&self, key: &str) -> Option<Lookup> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let v = self.map.lock().unwrap().get(key).cloned();
        Some(Box::pin(async move {
            tokio::task::yield_now().await;
            v
        }))
    }
    fn cache_put(&self, key: String, value: Bytes) {
        self.map.lock().unwrap().insert(key, value);
    }
}

#[tokio::test]
async fn the_shared_level_answers_after_a_lookup_and_a_miss_reaches_the_upstream() {
    let up = Upstream::default();
    let remote = Arc::new(Remote::default());
    let svc = CacheLayer::new(remote.clone(), 1 << 20).layer(up.clone());
    // Two replicas: the answer kept through one is a hit through the other.
    let other = CacheLayer::new(remote.clone(), 1 << 20).layer(up.clone());
    let mut a = svc.clone();
    let miss = a
        .ready()
        .await
        .unwrap()
        .call(chat(0.2, false))
        .await
        .unwrap();
    assert!(!miss.meta.cache_hit);
    let hit = other.clone().oneshot(chat(0.2, false)).await.unwrap();
    assert!(hit.meta.cache_hit);
    assert_eq!(text(&hit), "answer 1");
    assert_eq!(up.calls.load(Ordering::SeqCst), 1);
    assert_eq!(remote.lookups.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_answer_larger_than_an_entry_may_be_is_not_kept() {
    let up = Upstream::default();
    let backend = Arc::new(InProcess::new(1 << 20, Duration::from_secs(60)));
    let svc = Cache::new(up.clone(), Some(Store::new(backend, 10)));
    svc.clone().oneshot(chat(0.2, false)).await.unwrap();
    assert!(
        !svc.clone()
            .oneshot(chat(0.2, false))
            .await
            .unwrap()
            .meta
            .cache_hit
    );
}
