//! Encoding replies: JSON for whole completions, server-sent events for streams, the OpenAI
//! error envelope for failures, and the `x-proxygate-*` headers.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_core::Stream;
use http::{HeaderName, HeaderValue, StatusCode, header};
use pin_project_lite::pin_project;

use crate::GatewayError;
use crate::types::{ChatChunk, ChatResponse, ChatStream, ReplyMeta, Usage};

/// An error as the client sees it: status, envelope, `retry-after`.
pub fn error_response(err: &GatewayError) -> Response {
    let mut resp = (err.status(), axum::Json(err.envelope())).into_response();
    if let Some(after) = err.retry_after() {
        // Whole seconds, rounded up so the client never comes back too early.
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    resp
}

/// `resp` as a chat completion body: the bytes `serde_json` writes for it, with the known
/// fields' names written as literals and only the free-form parts (usage, tool calls,
/// provider extras) through the serializer.
pub fn completion_body(resp: &ChatResponse) -> Result<Vec<u8>, serde_json::Error> {
    use crate::types::json::field;
    // Sized for a typical answer, instead of grown from nothing.
    let mut out = Vec::with_capacity(1024);
    field(&mut out, b"{\"id\":", &resp.id)?;
    field(&mut out, b",\"object\":", &resp.object)?;
    field(&mut out, b",\"created\":", &resp.created)?;
    field(&mut out, b",\"model\":", &resp.model)?;
    out.extend_from_slice(b",\"choices\":[");
    for (i, c) in resp.choices.iter().enumerate() {
        let m = &c.message;
        let open: &[u8] = if i > 0 {
            b",{\"index\":"
        } else {
            b"{\"index\":"
        };
        field(&mut out, open, &c.index)?;
        field(&mut out, b",\"message\":{\"role\":", &m.role)?;
        field(&mut out, b",\"content\":", &m.content)?;
        field(&mut out, b",\"refusal\":", &m.refusal)?;
        if let Some(calls) = &m.tool_calls {
            field(&mut out, b",\"tool_calls\":", calls)?;
        }
        if let Some(r) = &m.reasoning_content {
            field(&mut out, b",\"reasoning_content\":", r)?;
        }
        if let Some(blocks) = &m.thinking_blocks {
            field(&mut out, b",\"thinking_blocks\":", blocks)?;
        }
        extra_fields(&mut out, &m.extra)?;
        field(&mut out, b"},\"logprobs\":", &c.logprobs)?;
        field(&mut out, b",\"finish_reason\":", &c.finish_reason)?;
        out.push(b'}');
    }
    out.push(b']');
    if let Some(u) = &resp.usage {
        field(&mut out, b",\"usage\":", u)?;
    }
    extra_fields(&mut out, &resp.extra)?;
    out.push(b'}');
    Ok(out)
}

/// The entries of a flattened `extra` map, each after a comma.
fn extra_fields(
    out: &mut Vec<u8>,
    extra: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), serde_json::Error> {
    for (k, v) in extra {
        crate::types::json::field(out, b",", k)?;
        out.push(b':');
        serde_json::to_writer(&mut *out, v)?;
    }
    Ok(())
}

// Header names made once at compile time: a `&str` name is parsed and hashed on every insert.
const PROVIDER: HeaderName = HeaderName::from_static("x-proxygate-provider");
const DEPLOYMENT: HeaderName = HeaderName::from_static("x-proxygate-deployment");
const ATTEMPTS: HeaderName = HeaderName::from_static("x-proxygate-attempts");
const COST_USD: HeaderName = HeaderName::from_static("x-proxygate-cost-usd");
const CACHE: HeaderName = HeaderName::from_static("x-proxygate-cache");

/// Adds the provenance headers.
pub fn meta_headers(resp: &mut Response, meta: &ReplyMeta) {
    let h = resp.headers_mut();
    // Room for the five at once, instead of growing the map while inserting.
    h.reserve(5);
    if !meta.provider.is_empty() {
        h.insert(PROVIDER, HeaderValue::from_static(meta.provider));
    }
    if let Ok(v) = HeaderValue::from_str(&meta.deployment) {
        h.insert(DEPLOYMENT, v);
    }
    // The usual counts as static values: a number is formatted into a new allocation.
    h.insert(
        ATTEMPTS,
        match meta.attempts {
            0 | 1 => HeaderValue::from_static("1"),
            2 => HeaderValue::from_static("2"),
            3 => HeaderValue::from_static("3"),
            n => HeaderValue::from(n),
        },
    );
    match meta.cost_usd {
        // Free tiers and cache hits: no number to format.
        Some(0.0) => {
            h.insert(COST_USD, HeaderValue::from_static("0"));
        }
        Some(cost) => {
            if let Ok(v) = HeaderValue::from_str(&format_cost(cost)) {
                h.insert(COST_USD, v);
            }
        }
        None => {}
    }
    h.insert(
        CACHE,
        HeaderValue::from_static(if meta.cache_hit { "hit" } else { "miss" }),
    );
}

/// A cost as a plain decimal (no exponent).
pub fn format_cost(cost: f64) -> String {
    let s = format!("{cost:.10}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

/// Something told when a stream ends, however it ends (for metrics and accounting).
pub trait StreamObserver: Send + 'static {
    /// The stream ended: `ok` is false after an error or a client disconnect.
    fn finish(self: Box<Self>, ok: bool);

    /// The client went away (or stopped reading and was cut) before the end.
    fn abandon(self: Box<Self>) {
        self.finish(false);
    }
}

pin_project! {
    /// Encodes canonical chunks as OpenAI SSE, chunk by chunk as they come.
    ///
    /// Usage is only shown when the client asked for it, as the last chunk; an error after the
    /// first byte becomes an event with an `error` key and ends the stream with nothing after
    /// it, so a client watching for the end marker never takes a cut answer for a whole one;
    /// `data: [DONE]` ends every complete stream once.
    pub struct SseEncoder {
        #[pin]
        inner: ChatStream,
        include_usage: bool,
        role_sent: bool,
        usage_sent: bool,
        meta: Option<(String, u64, String)>,
        estimated_completion_chars: usize,
        prompt_estimate: u64,
        cost_usd: Option<f64>,
        state: EncState,
        observer: Option<Box<dyn StreamObserver>>,
    }

    impl PinnedDrop for SseEncoder {
        fn drop(this: Pin<&mut Self>) {
            // A client that disconnects drops the body before the end: still report it.
            if let Some(obs) = this.project().observer.take() {
                obs.abandon();
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EncState {
    Streaming,
    Done,
    Finished,
}

impl SseEncoder {
    /// Encodes `inner`. `prompt_estimate` fills a usage chunk the upstream did not send.
    pub fn new(
        inner: ChatStream,
        include_usage: bool,
        prompt_estimate: u64,
        observer: Option<Box<dyn StreamObserver>>,
    ) -> Self {
        Self {
            inner,
            include_usage,
            role_sent: false,
            usage_sent: false,
            meta: None,
            estimated_completion_chars: 0,
            prompt_estimate,
            cost_usd: None,
            state: EncState::Streaming,
            observer,
        }
    }
}

fn event(json: &impl serde::Serialize) -> Bytes {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(b"data: ");
    if serde_json::to_writer(&mut buf, json).is_err() {
        buf.truncate(6);
        buf.extend_from_slice(br#"{"error":{"message":"chunk could not be encoded","type":"server_error","param":null,"code":null}}"#);
    }
    buf.extend_from_slice(b"\n\n");
    // An upstream that echoes a configured key does not get it to the client. A key split
    // across two chunks is caught too: the larger part holds a registered ten-character piece.
    match crate::redact::redact_bytes(&buf) {
        std::borrow::Cow::Borrowed(_) => Bytes::from(buf),
        std::borrow::Cow::Owned(clean) => Bytes::from(clean),
    }
}

impl Stream for SseEncoder {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            match *this.state {
                EncState::Finished => return Poll::Ready(None),
                EncState::Done => {
                    *this.state = EncState::Finished;
                    // The cost, for every client, as a comment parsers skip.
                    let end = match this.cost_usd {
                        Some(c) => Bytes::from(format!(
                            ": cost_usd={}\n\ndata: [DONE]\n\n",
                            format_cost(*c)
                        )),
                        None => Bytes::from_static(b"data: [DONE]\n\n"),
                    };
                    return Poll::Ready(Some(Ok(end)));
                }
                EncState::Streaming => {}
            }
            match ready!(this.inner.as_mut().poll_next(cx)) {
                Some(Ok(mut chunk)) => {
                    if this.meta.is_none() {
                        *this.meta = Some((chunk.id.clone(), chunk.created, chunk.model.clone()));
                    }
                    if chunk.is_usage_only() {
                        if let Some(c) = chunk
                            .extra
                            .get("cost_usd")
                            .and_then(serde_json::Value::as_f64)
                        {
                            *this.cost_usd = Some(c);
                        }
                        if *this.include_usage && !*this.usage_sent {
                            *this.usage_sent = true;
                            return Poll::Ready(Some(Ok(event(&chunk))));
                        }
                        continue;
                    }
                    chunk.usage = None;
                    if chunk.choices.is_empty() {
                        continue;
                    }
                    for c in &chunk.choices {
                        if let Some(t) = &c.delta.content {
                            *this.estimated_completion_chars += t.len();
                        }
                    }
                    if !*this.role_sent {
                        *this.role_sent = true;
                        if let Some(c) = chunk.choices.first_mut() {
                            c.delta.role.get_or_insert_with(|| "assistant".to_owned());
                        }
                    }
                    return Poll::Ready(Some(Ok(event(&chunk))));
                }
                Some(Err(e)) => {
                    *this.state = EncState::Finished;
                    if let Some(obs) = this.observer.take() {
                        obs.finish(false);
                    }
                    return Poll::Ready(Some(Ok(event(&e.envelope()))));
                }
                None => {
                    *this.state = EncState::Done;
                    if let Some(obs) = this.observer.take() {
                        obs.finish(true);
                    }
                    if *this.include_usage && !*this.usage_sent {
                        *this.usage_sent = true;
                        let (id, created, model) = this.meta.clone().unwrap_or_default();
                        let completion = (*this.estimated_completion_chars as u64).div_ceil(4);
                        let usage = Usage::new(*this.prompt_estimate, completion);
                        return Poll::Ready(Some(Ok(event(&ChatChunk::usage_only(
                            &id, created, &model, usage,
                        )))));
                    }
                }
            }
        }
    }
}

/// A streaming response around an SSE encoder (the OpenAI one here, the Anthropic one in
/// `messages`).
pub fn sse_response<S>(encoder: S) -> Response
where
    S: Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
{
    let mut resp = Response::new(Body::from_stream(encoder));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Delta;

    #[test]
    fn a_completion_body_is_what_serde_writes() {
        let answers = [
            serde_json::json!({"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello \"you\"\n\u{1} é"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":24,"completion_tokens":8,"total_tokens":32},"system_fingerprint":"fp"}),
            serde_json::json!({"id":"","object":"chat.completion","created":0,"model":"","choices":[]}),
            serde_json::json!({"id":"c","created":2,"model":"m","choices":[
                {"index":0,"message":{"role":"assistant","content":null,"refusal":"no","tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}],"reasoning_content":"hmm","annotations":[],"zz":{"k":[1.5,null]}},"logprobs":{"content":[]},"finish_reason":"tool_calls"},
                {"index":1,"message":{"role":"assistant","content":"b"},"finish_reason":null}],
              "usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":1,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":2},"queue_time":0.25},
              "service_tier":"default","a key \"quoted\"":true}),
        ];
        for a in answers {
            let resp: ChatResponse = serde_json::from_value(a.clone()).unwrap();
            assert_eq!(
                String::from_utf8(completion_body(&resp).unwrap()).unwrap(),
                serde_json::to_string(&resp).unwrap(),
                "{a}"
            );
        }
    }

    async fn encode(chunks: Vec<Result<ChatChunk, GatewayError>>, include_usage: bool) -> String {
        let stream: ChatStream = Box::pin(futures_util::stream::iter(chunks));
        let mut enc = SseEncoder::new(stream, include_usage, 5, None);
        let mut out = String::new();
        while let Some(Ok(b)) = std::future::poll_fn(|cx| Pin::new(&mut enc).poll_next(cx)).await {
            out.push_str(std::str::from_utf8(&b).unwrap());
        }
        out
    }

    fn chunks() -> Vec<Result<ChatChunk, GatewayError>> {
        vec![
            Ok(ChatChunk::delta("c", 1, "m", Delta::text("Hi"), None)),
            Ok(ChatChunk::delta(
                "c",
                1,
                "m",
                Delta::default(),
                Some("stop"),
            )),
            Ok(ChatChunk::usage_only("c", 1, "m", Usage::new(3, 1))),
        ]
    }

    #[tokio::test]
    async fn usage_only_when_asked_and_done_once_last() {
        let with = encode(chunks(), true).await;
        let events: Vec<&str> = with.split("\n\n").filter(|s| !s.is_empty()).collect();
        assert_eq!(events.len(), 4);
        assert!(events[0].contains(r#""role":"assistant""#));
        assert!(events[2].contains(r#""choices":[]"#) && events[2].contains(r#""total_tokens":4"#));
        assert_eq!(events[3], "data: [DONE]");
        let without = encode(chunks(), false).await;
        assert!(!without.contains("usage"));
        assert_eq!(without.matches("[DONE]").count(), 1);
    }

    #[tokio::test]
    async fn missing_usage_is_estimated_and_errors_become_events() {
        let out = encode(
            vec![Ok(ChatChunk::delta(
                "c",
                1,
                "m",
                Delta::text("Hello"),
                None,
            ))],
            true,
        )
        .await;
        assert!(out.contains(r#""prompt_tokens":5"#));
        let out = encode(
            vec![
                Ok(ChatChunk::delta("c", 1, "m", Delta::text("a"), None)),
                Err(GatewayError::Internal("x".into())),
            ],
            false,
        )
        .await;
        assert!(out.contains(r#"data: {"error":"#));
        assert!(out.ends_with("\n\n"));
        assert!(
            !out.contains("[DONE]"),
            "a cut stream has no end marker: {out}"
        );
    }

    /// Chat completions in the shapes OpenAI-format upstreams write, and the ways they differ.
    mod passthrough {
        use proptest::prelude::*;
        use serde_json::{Value, json};

        use crate::providers::openai_compat::{normalise_response, passthrough_usage};
        use crate::types::ChatResponse;

        /// What the client would get through the canonical path.
        fn canonical(body: &[u8]) -> (Value, ChatResponse) {
            let mut resp: ChatResponse = crate::providers::parse_json("openai", body)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)));
            normalise_response(&mut resp);
            let out = super::completion_body(&resp).unwrap();
            (serde_json::from_slice(&out).unwrap(), resp)
        }

        /// The usage's typed meters, what the bill reads.
        fn meters(mut u: crate::types::Usage) -> crate::types::Usage {
            u.extra.clear();
            if let Some(d) = &mut u.prompt_tokens_details {
                d.extra.clear();
            }
            if let Some(d) = &mut u.completion_tokens_details {
                d.extra.clear();
            }
            u
        }

        /// Where a change applies.
        #[derive(Clone, Copy, Debug)]
        enum Scope {
            Top,
            Choice,
            Message,
            Usage,
        }

        /// Fields and the values OpenAI-format upstreams put there, valid or not for the
        /// pass; a change sets one of them or leaves the field out.
        fn variants() -> Vec<(Scope, &'static str, Vec<Value>)> {
            use Scope::*;
            vec![
                (Top, "id", vec![json!(""), json!(5), json!("chatcmpl-2")]),
                (
                    Top,
                    "object",
                    vec![json!("chat.completion.chunk"), json!(null)],
                ),
                (
                    Top,
                    "created",
                    vec![json!(0), json!(-1), json!(1.5), json!(1)],
                ),
                (Top, "model", vec![json!(null), json!(""), json!("m\u{e9}")]),
                (Top, "system_fingerprint", vec![json!(null), json!("fp_2")]),
                (Top, "service_tier", vec![json!({"tier": 1}), json!("flex")]),
                (Choice, "index", vec![json!(1), json!(-1), json!("0")]),
                (Choice, "logprobs", vec![json!({"content": []}), json!(3)]),
                (
                    Choice,
                    "finish_reason",
                    vec![
                        json!("length"),
                        json!(null),
                        json!("eos"),
                        json!("end_turn"),
                        json!(5),
                    ],
                ),
                (Choice, "native_finish_reason", vec![json!("stop")]),
                (
                    Message,
                    "role",
                    vec![json!("model"), json!(null), json!("user")],
                ),
                (
                    Message,
                    "content",
                    vec![
                        json!(""),
                        json!(null),
                        json!("a \"q\"\n\t\u{e9}"),
                        json!("\u{1}"),
                        json!(3),
                    ],
                ),
                (Message, "refusal", vec![json!("I can't."), json!(false)]),
                (
                    Message,
                    "reasoning_content",
                    vec![json!("I think"), json!(""), json!(null)],
                ),
                (Message, "reasoning", vec![json!("r"), json!({"x": 1})]),
                (
                    Message,
                    "tool_calls",
                    vec![
                        json!([{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]),
                        json!(null),
                    ],
                ),
                (Message, "thinking_blocks", vec![json!([])]),
                (
                    Message,
                    "annotations",
                    vec![json!([{"type": "url_citation"}]), json!(null)],
                ),
                (
                    Message,
                    "audio",
                    vec![json!(null), json!({"id": "audio_1"})],
                ),
                (
                    Usage,
                    "prompt_tokens",
                    vec![json!(0), json!(1000.0), json!(7)],
                ),
                (Usage, "completion_tokens", vec![json!(0), json!(5)]),
                (
                    Usage,
                    "total_tokens",
                    vec![json!(0), json!(13), json!(null)],
                ),
                (
                    Usage,
                    "prompt_tokens_details",
                    vec![
                        json!(null),
                        json!({"cached_tokens": 2, "audio_tokens": 0}),
                        json!({"cached_tokens": 0, "cache_write_tokens": 0}),
                        json!({"audio_tokens": 0}),
                        json!({"cached_tokens": 1, "cache_write_tokens": 5, "cache_write_1h_tokens": 2}),
                    ],
                ),
                (
                    Usage,
                    "completion_tokens_details",
                    vec![
                        json!(null),
                        json!({"reasoning_tokens": 1, "audio_tokens": 0}),
                        json!({"audio_tokens": 0}),
                    ],
                ),
                (Usage, "prompt_cache_hit_tokens", vec![json!(0), json!(4)]),
                (Usage, "queue_time", vec![json!(0.01)]),
            ]
        }

        /// OpenAI's answer with `choices` choices, then up to four changes.
        fn completion() -> impl Strategy<Value = Value> {
            let n = variants().len();
            (
                0usize..3,
                proptest::collection::vec((0..n, any::<usize>(), any::<bool>(), 0usize..3), 0..5),
                proptest::option::weighted(0.95, Just(())),
            )
                .prop_map(|(choices, changes, usage)| {
                    let choice = json!({"index": 0, "message": {"role": "assistant", "content": "Hello!", "refusal": null},
                                        "logprobs": null, "finish_reason": "stop"});
                    let mut body = json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1730000000,
                                          "model": "gpt-4o-mini", "choices": vec![choice; choices]});
                    if usage.is_some() {
                        body["usage"] = json!({"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12});
                    }
                    let variants = variants();
                    for (which, value, remove, at) in changes {
                        let (scope, key, values) = &variants[which];
                        let target = match scope {
                            Scope::Top => Some(&mut body),
                            Scope::Usage => body.get_mut("usage"),
                            Scope::Choice => body["choices"].get_mut(at),
                            Scope::Message => body["choices"].get_mut(at).map(|c| &mut c["message"]),
                        };
                        if let Some(Value::Object(map)) = target {
                            if remove {
                                map.remove(*key);
                            } else {
                                map.insert((*key).to_owned(), values[value % values.len()].clone());
                            }
                        }
                    }
                    body
                })
        }

        /// Whatever passes unchanged is exactly what the canonical path would have written, and
        /// its usage is the one the canonical path bills; a good share of the cases pass.
        #[test]
        fn a_body_that_passes_is_what_the_canonical_path_writes() {
            let config = crate::providers::fuzz::config();
            let cases = config.cases;
            let mut runner = proptest::test_runner::TestRunner::new(config);
            let passed = std::cell::Cell::new(0u32);
            let result = runner.run(&completion(), |body| {
                let bytes = serde_json::to_vec(&body).unwrap();
                if let Some(usage) = passthrough_usage(&bytes) {
                    passed.set(passed.get() + 1);
                    let (written, resp) = canonical(&bytes);
                    prop_assert_eq!(&written, &body);
                    prop_assert_eq!(Some(usage), resp.usage.map(meters));
                }
                Ok(())
            });
            if let Err(e) = result {
                panic!("{e}");
            }
            assert!(
                passed.get() >= cases / 8,
                "only {} of {cases} passed",
                passed.get()
            );
        }

        const OPENAI: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1730000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hi \"you\"\n","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0}},"service_tier":"default","system_fingerprint":"fp_1"}"#;

        #[test]
        fn openais_own_answer_passes_with_its_usage() {
            let usage = passthrough_usage(OPENAI.as_bytes()).expect("passes");
            assert_eq!(
                (
                    usage.prompt_tokens,
                    usage.completion_tokens,
                    usage.total_tokens
                ),
                (9, 3, 12)
            );
            assert_eq!(
                canonical(OPENAI.as_bytes()).0,
                serde_json::from_str::<Value>(OPENAI).unwrap()
            );
            // Leading whitespace and a reasoning string are fine.
            let reasoning = OPENAI.replace(
                r#""refusal":null"#,
                r#""refusal":null,"reasoning_content":"think""#,
            );
            assert!(passthrough_usage(reasoning.as_bytes()).is_some());
        }

        #[test]
        fn what_the_canonical_path_would_change_or_reject_does_not_pass() {
            let cases: &[(&str, &str, &str)] = &[
                ("a missing refusal", r#","refusal":null"#, ""),
                ("a missing logprobs", r#""logprobs":null,"#, ""),
                ("a missing finish_reason", r#","finish_reason":"stop""#, ""),
                (
                    "a finish reason of another provider",
                    r#""finish_reason":"stop""#,
                    r#""finish_reason":"eos""#,
                ),
                ("another role", r#""role":"assistant""#, r#""role":"model""#),
                (
                    "a key twice",
                    r#""role":"assistant""#,
                    r#""role":"assistant","role":"user""#,
                ),
                (
                    "a role hidden behind an escape",
                    r#""role":"assistant""#,
                    r#""role":"\u0061ssistant""#,
                ),
                ("an empty id", r#""id":"chatcmpl-1""#, r#""id":"""#),
                (
                    "a chunk",
                    r#""object":"chat.completion""#,
                    r#""object":"chat.completion.chunk""#,
                ),
                ("no created", r#""created":1730000000,"#, ""),
                (
                    "a zero total",
                    r#""total_tokens":12"#,
                    r#""total_tokens":0"#,
                ),
                (
                    "no tokens",
                    r#""prompt_tokens":9,"completion_tokens":3"#,
                    r#""prompt_tokens":0,"completion_tokens":0"#,
                ),
                (
                    "null details",
                    r#"{"cached_tokens":0,"audio_tokens":0}"#,
                    "null",
                ),
                (
                    "no usage",
                    r#""usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0}},"#,
                    "",
                ),
                (
                    "tool calls",
                    r#""refusal":null"#,
                    r#""refusal":null,"tool_calls":[]"#,
                ),
                (
                    "a reasoning field",
                    r#""refusal":null"#,
                    r#""refusal":null,"reasoning":"r""#,
                ),
                (
                    "a null reasoning_content",
                    r#""refusal":null"#,
                    r#""refusal":null,"reasoning_content":null"#,
                ),
                (
                    "a choice extra",
                    r#""logprobs":null"#,
                    r#""logprobs":null,"native_finish_reason":"stop""#,
                ),
                (
                    "DeepSeek's cache meter alone",
                    r#""total_tokens":12,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0}"#,
                    r#""total_tokens":12,"prompt_cache_hit_tokens":4"#,
                ),
            ];
            for (what, from, to) in cases {
                assert!(OPENAI.contains(from), "{what}");
                let body = OPENAI.replacen(from, to, 1);
                assert_eq!(passthrough_usage(body.as_bytes()), None, "{what}: {body}");
            }
            for (what, body) in [
                ("trailing bytes", format!("{OPENAI} {{}}")),
                ("an array", format!("[{OPENAI}]")),
            ] {
                assert_eq!(passthrough_usage(body.as_bytes()), None, "{what}");
            }
            let mut bad = OPENAI.as_bytes().to_vec();
            bad[90] = 0xff;
            assert_eq!(passthrough_usage(&bad), None, "a byte that is not UTF-8");
        }
    }
}
