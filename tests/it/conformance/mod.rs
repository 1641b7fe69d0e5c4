//! The provider conformance table: the scenarios every adapter must pass, written once and run
//! against each provider's fake.
//!
//! Each provider is a fixture (one file here): the settings that point the gateway at the fake,
//! the model a client asks for, and functions producing that provider's own wire bodies for each
//! scenario. A fixture ends with `conformance!(fixture);`, which generates one test per scenario
//! in its module. A scenario a provider has no shape for is [`Case::DoesNotApply`], with the
//! reason. Adding a provider means adding a fixture file and its `mod` line below.
//!
//! The scenarios:
//! 1. a plain completion;
//! 2. a stream with `stream_options.include_usage`: usage only in the last chunk, `[DONE]` last;
//! 3. a tool call, not streamed, and 4. streamed: arguments assembled, `finish_reason: "tool_calls"`;
//! 5. the provider's error envelope: the gateway's OpenAI error with the right status;
//! 6. a 429 with the provider's retry delay: a 429 whose `retry-after` is no larger.

pub(crate) mod ai21;
pub(crate) mod anthropic;
pub(crate) mod azure;
pub(crate) mod cohere;
pub(crate) mod gemini;
mod groq;
mod mock;
pub(crate) mod openai;
mod puter;

use serde_json::{Value, json};

use crate::support::{FakeUpstream, Reply, TestGateway, chat, post_json, sse_chunks};

/// The text every fixture's plain reply carries.
pub(crate) const TEXT: &str = "Hello!";
/// Prompt and completion tokens of every fixture's plain reply.
pub(crate) const USAGE: (u64, u64) = (9, 3);
/// The text deltas of every fixture's stream (cut inside nothing: each piece is whole UTF-8).
pub(crate) const STREAM_PIECES: [&str; 2] = ["Hél", "lo"];
/// Prompt and completion tokens of every fixture's stream.
pub(crate) const STREAM_USAGE: (u64, u64) = (5, 2);
/// The tool every tool-call scenario offers, and the call every fixture answers with.
pub(crate) const TOOL: &str = "get_weather";
/// The tool call's id, where the provider gives one.
pub(crate) const CALL_ID: &str = "call_oslo";
/// The tool call's arguments.
pub(crate) fn call_args() -> Value {
    json!({"city": "Oslo"})
}

/// Whether a scenario applies to a provider.
pub(crate) enum Case<T> {
    /// It does: the provider's wire shape for it.
    Applies(T),
    /// It does not, and why.
    DoesNotApply(&'static str),
}

/// What the gateway answers a plain request with, where that is not the fake's canonical reply.
pub(crate) enum Expect {
    /// [`TEXT`] / [`STREAM_PIECES`] with [`USAGE`] / [`STREAM_USAGE`].
    Canonical,
    /// Text and usage the provider computes itself (no upstream): only their presence is checked.
    OwnText,
}

/// An upstream error and what the client sees of it.
pub(crate) struct ErrorCase {
    /// The provider's error reply.
    pub reply: Reply,
    /// The status the gateway answers with.
    pub status: u16,
    /// Text of the provider's message that the gateway's message keeps.
    pub message: &'static str,
}

/// An upstream 429 and the delay it asks for.
pub(crate) struct RateLimitCase {
    /// The provider's 429 reply.
    pub reply: Reply,
    /// The delay the provider asks for, in seconds.
    pub delay_secs: u64,
    /// Text of the provider's message that the gateway's message keeps.
    pub message: &'static str,
}

/// One provider as the table sees it.
pub(crate) struct Fixture {
    /// The `x-proxygate-provider` the gateway reports.
    pub provider: &'static str,
    /// The model a client asks for.
    pub model: &'static str,
    /// Settings that point the gateway at the fake.
    pub env: fn(&FakeUpstream) -> Vec<(&'static str, String)>,
    /// What plain and streamed answers carry.
    pub expect: Expect,
    /// Scenario 1: a whole reply with [`TEXT`] and [`USAGE`].
    pub plain: fn() -> Reply,
    /// Scenario 2: a streamed reply with [`STREAM_PIECES`] and [`STREAM_USAGE`].
    pub stream: fn() -> Reply,
    /// Scenario 3: a whole reply calling [`TOOL`] with [`call_args`].
    pub tool_call: Case<fn() -> Reply>,
    /// Scenario 4: a streamed reply calling [`TOOL`] with [`call_args`].
    pub tool_call_stream: Case<fn() -> Reply>,
    /// Scenario 5: the provider's error envelope.
    pub error: Case<fn() -> ErrorCase>,
    /// Scenario 6: the provider's 429.
    pub rate_limit: Case<fn() -> RateLimitCase>,
}

/// Generates the table's tests for the fixture built by `$fixture`.
macro_rules! conformance {
    ($fixture:path) => {
        #[tokio::test]
        async fn plain_completion() {
            crate::conformance::plain_completion($fixture()).await;
        }

        #[tokio::test]
        async fn stream_with_usage_ends_with_done() {
            crate::conformance::stream_with_usage($fixture()).await;
        }

        #[tokio::test]
        async fn tool_call() {
            crate::conformance::tool_call($fixture()).await;
        }

        #[tokio::test]
        async fn tool_call_streamed() {
            crate::conformance::tool_call_streamed($fixture()).await;
        }

        #[tokio::test]
        async fn error_envelope() {
            crate::conformance::error_envelope($fixture()).await;
        }

        #[tokio::test]
        async fn rate_limit_keeps_the_retry_delay() {
            crate::conformance::rate_limit($fixture()).await;
        }
    };
}
use conformance;

/// A fake answering `reply`, and the gateway pointed at it.
async fn start(fixture: &Fixture, reply: Reply) -> (FakeUpstream, TestGateway) {
    let fake = FakeUpstream::start(reply).await;
    let gw = TestGateway::start(&(fixture.env)(&fake)).await;
    (fake, gw)
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(body)
                .chars()
                .take(500)
                .collect::<String>()
        )
    })
}

fn tool_request(model: &str) -> Value {
    let mut body = chat(model, "Weather in Oslo?");
    body["tools"] = json!([{"type": "function", "function": {"name": TOOL, "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
    body
}

/// The non-null finish reasons of a stream's chunks.
fn finish_reasons(chunks: &[Value]) -> Vec<&str> {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
        .collect()
}

/// Scenario 1.
pub(crate) async fn plain_completion(fx: Fixture) {
    let (_fake, gw) = start(&fx, (fx.plain)()).await;
    let (status, headers, resp) =
        post_json(&gw.url("/v1/chat/completions"), &chat(fx.model, "Hi")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    assert_eq!(headers["x-proxygate-provider"], fx.provider);
    let v = json_of(&resp);
    assert_eq!(v["object"], "chat.completion", "{v}");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant", "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");
    let usage = &v["usage"];
    match fx.expect {
        Expect::Canonical => {
            assert_eq!(v["choices"][0]["message"]["content"], TEXT, "{v}");
            assert_eq!(
                (&usage["prompt_tokens"], &usage["completion_tokens"]),
                (&json!(USAGE.0), &json!(USAGE.1)),
                "{v}"
            );
            assert_eq!(usage["total_tokens"], USAGE.0 + USAGE.1, "{v}");
        }
        Expect::OwnText => {
            assert!(
                v["choices"][0]["message"]["content"]
                    .as_str()
                    .is_some_and(|t| !t.is_empty()),
                "{v}"
            );
            assert!(usage["total_tokens"].as_u64().is_some_and(|t| t > 0), "{v}");
        }
    }
}

/// Scenario 2.
pub(crate) async fn stream_with_usage(fx: Fixture) {
    let (_fake, gw) = start(&fx, (fx.stream)()).await;
    let mut body = chat(fx.model, "Hi");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, headers, resp) = post_json(&gw.url("/v1/chat/completions"), &body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    assert_eq!(headers["x-proxygate-provider"], fx.provider);
    assert!(headers["content-type"].starts_with("text/event-stream"));
    // `[DONE]` last, exactly once.
    let chunks = sse_chunks(&resp);
    assert_eq!(
        chunks[0]["choices"][0]["delta"]["role"], "assistant",
        "{chunks:?}"
    );
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk"),
        "{chunks:?}"
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(finish_reasons(&chunks), ["stop"], "{chunks:?}");
    let (last, before) = chunks.split_last().expect("at least one chunk");
    assert_eq!(last["choices"], json!([]), "{last}");
    assert!(
        before
            .iter()
            .all(|c| c.get("usage").is_none_or(Value::is_null)),
        "usage before the last chunk: {chunks:?}"
    );
    let usage = &last["usage"];
    match fx.expect {
        Expect::Canonical => {
            assert_eq!(text, STREAM_PIECES.concat());
            assert_eq!(
                (&usage["prompt_tokens"], &usage["completion_tokens"]),
                (&json!(STREAM_USAGE.0), &json!(STREAM_USAGE.1)),
                "{last}"
            );
            assert_eq!(usage["total_tokens"], STREAM_USAGE.0 + STREAM_USAGE.1);
        }
        Expect::OwnText => {
            assert!(!text.is_empty());
            assert!(
                usage["total_tokens"].as_u64().is_some_and(|t| t > 0),
                "{last}"
            );
        }
    }
}

/// Scenario 3.
pub(crate) async fn tool_call(fx: Fixture) {
    let reply = match fx.tool_call {
        Case::Applies(reply) => reply(),
        Case::DoesNotApply(why) => return assert!(!why.is_empty()),
    };
    let (fake, gw) = start(&fx, reply).await;
    let (status, _, resp) =
        post_json(&gw.url("/v1/chat/completions"), &tool_request(fx.model)).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    let v = json_of(&resp);
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{v}");
    let calls = v["choices"][0]["message"]["tool_calls"]
        .as_array()
        .unwrap_or_else(|| panic!("no tool_calls: {v}"));
    assert_eq!(calls.len(), 1, "{v}");
    let call = &calls[0];
    assert_eq!(call["type"], "function");
    assert!(call["id"].as_str().is_some_and(|id| !id.is_empty()), "{v}");
    assert_eq!(call["function"]["name"], TOOL);
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap_or(""))
        .unwrap_or_else(|e| panic!("arguments are not JSON ({e}): {v}"));
    assert_eq!(args, call_args());
    // The tool went upstream, under its name.
    assert!(
        fake.requests()[0].json().to_string().contains(TOOL),
        "the tool was not sent"
    );
}

/// Scenario 4.
pub(crate) async fn tool_call_streamed(fx: Fixture) {
    let reply = match fx.tool_call_stream {
        Case::Applies(reply) => reply(),
        Case::DoesNotApply(why) => return assert!(!why.is_empty()),
    };
    let (_fake, gw) = start(&fx, reply).await;
    let mut body = tool_request(fx.model);
    body["stream"] = json!(true);
    let (status, _, resp) = post_json(&gw.url("/v1/chat/completions"), &body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    let chunks = sse_chunks(&resp);
    // Assembled by index, as the OpenAI SDKs do.
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for tc in chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
        .flatten()
    {
        let i = tc["index"].as_u64().expect("tool call index") as usize;
        if calls.len() <= i {
            calls.resize(i + 1, Default::default());
        }
        if let Some(id) = tc["id"].as_str() {
            calls[i].0 = id.into();
        }
        if let Some(n) = tc["function"]["name"].as_str() {
            calls[i].1 = n.into();
        }
        if let Some(a) = tc["function"]["arguments"].as_str() {
            calls[i].2.push_str(a);
        }
    }
    assert_eq!(calls.len(), 1, "{chunks:?}");
    assert!(!calls[0].0.is_empty(), "no id: {chunks:?}");
    assert_eq!(calls[0].1, TOOL);
    let args: Value = serde_json::from_str(&calls[0].2)
        .unwrap_or_else(|e| panic!("arguments {:?} are not JSON ({e})", calls[0].2));
    assert_eq!(args, call_args());
    assert_eq!(finish_reasons(&chunks), ["tool_calls"], "{chunks:?}");
}

/// Scenario 5.
pub(crate) async fn error_envelope(fx: Fixture) {
    let case = match fx.error {
        Case::Applies(case) => case(),
        Case::DoesNotApply(why) => return assert!(!why.is_empty()),
    };
    let (_fake, gw) = start(&fx, case.reply).await;
    let (status, _, resp) = post_json(&gw.url("/v1/chat/completions"), &chat(fx.model, "x")).await;
    assert_eq!(status, case.status, "{}", String::from_utf8_lossy(&resp));
    let v = json_of(&resp);
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(case.message), "{v}");
    assert!(v["error"]["type"].is_string(), "{v}");
}

/// Scenario 6.
pub(crate) async fn rate_limit(fx: Fixture) {
    let case = match fx.rate_limit {
        Case::Applies(case) => case(),
        Case::DoesNotApply(why) => return assert!(!why.is_empty()),
    };
    let (_fake, gw) = start(&fx, case.reply).await;
    let (status, headers, resp) =
        post_json(&gw.url("/v1/chat/completions"), &chat(fx.model, "x")).await;
    assert_eq!(status, 429, "{}", String::from_utf8_lossy(&resp));
    let retry_after: u64 = headers
        .get("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no numeric retry-after: {headers:?}"));
    // No larger than the upstream's delay, and not shortened by more than the second it took.
    assert!(
        (case.delay_secs.saturating_sub(1).max(1)..=case.delay_secs).contains(&retry_after),
        "retry-after {retry_after} for an upstream delay of {} s",
        case.delay_secs
    );
    let v = json_of(&resp);
    assert_eq!(v["error"]["type"], "rate_limit_error", "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(case.message), "{v}");
}
