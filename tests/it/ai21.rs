//! AI21 end to end: gateway on loopback, a fake speaking AI21's chat completions on loopback.
//!
//! The scenarios every provider shares run in [`crate::conformance`]; this module keeps AI21's
//! own behaviour.

use crate::support::*;
use serde_json::{Value, json};

const KEY: &str = "ai21_secret_test_key";

async fn gateway(fake: &FakeUpstream) -> TestGateway {
    TestGateway::start(&[
        ("AI21_API_KEY", KEY.into()),
        ("AI21_BASE_URL", fake.url("")),
    ])
    .await
}

/// An answer shaped like the AI21 SDK's model: no `object`, `created` or `model`.
fn answer(message: Value, finish: &str) -> Value {
    json!({
        "id": "chat-2b4c",
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    })
}

fn chunk(delta: Value, finish: Option<&str>, usage: Option<Value>) -> Value {
    json!({"id": "chat-s", "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
           "usage": usage})
}

#[tokio::test]
async fn request_path_auth_and_body() {
    let fake = FakeUpstream::start(Reply::json(answer(
        json!({"role": "assistant", "content": "Hello!", "tool_calls": null}),
        "stop",
    )))
    .await;
    let gw = gateway(&fake).await;
    let body = json!({
        "model": "ai21/jamba-mini",
        "messages": [{"role": "system", "content": "Be terse."},
                     {"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        "max_completion_tokens": 50, "temperature": 0.5, "top_p": 0.9, "stop": ["\n\n"],
        "logit_bias": {"1": 2}, "user": "u-1"
    });
    let (status, headers, resp) = post_json(&gw.url("/v1/chat/completions"), &body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    let resp: Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(resp["object"], "chat.completion");
    assert_eq!(resp["model"], "jamba-mini-1.7");
    assert!(resp["created"].as_u64().unwrap() > 0);
    assert_eq!(resp["choices"][0]["message"]["content"], "Hello!");
    assert_eq!(resp["usage"]["total_tokens"], 17);
    assert_eq!(headers["x-proxygate-provider"], "ai21");
    assert_eq!(headers["x-proxygate-deployment"], "ai21/jamba-mini-1.7");

    let r = &fake.requests()[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str(), r.query.as_deref()),
        ("POST", "/studio/v1/chat/completions", None)
    );
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(
        r.json(),
        json!({
            "model": "jamba-mini-1.7",
            "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}],
            "max_tokens": 50, "temperature": 0.5, "top_p": 0.9, "stop": ["\n\n"]
        })
    );
}

#[tokio::test]
async fn stream_with_usage_on_the_final_chunk() {
    let events = [
        chunk(json!({"role": "assistant"}), None, None),
        chunk(json!({"content": "Jam"}), None, None),
        chunk(json!({"content": "bä"}), None, None),
        chunk(
            json!({}),
            Some("stop"),
            Some(json!({"prompt_tokens": 6, "completion_tokens": 2, "total_tokens": 8})),
        ),
    ];
    let mut raw: String = events
        .iter()
        .map(|e| format!("data: {e}\r\n\r\n"))
        .collect();
    raw.push_str("data: [DONE]\r\n\r\n");
    let cut = raw.find('ä').unwrap() + 1;
    let reply = Reply::Stream {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        pieces: split_at(&raw, &[11, cut, cut + 25, raw.len() - 4]),
        end: End::Finish,
    };
    let fake = FakeUpstream::start(reply).await;
    let gw = gateway(&fake).await;
    let url = gw.url("/v1/chat/completions");
    let mut body = chat("jamba-large", "Hi");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, headers, resp) = post_json(&url, &body).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-proxygate-provider"], "ai21");
    let cs = sse_chunks(&resp);
    assert_eq!(cs[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(
        cs.iter()
            .all(|c| c["model"] == "jamba-large-1.7" && c["object"] == "chat.completion.chunk")
    );
    let text: String = cs
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Jambä");
    let last = cs.last().unwrap();
    assert_eq!(
        (&last["choices"], &last["usage"]["total_tokens"]),
        (&json!([]), &json!(8))
    );
    // AI21 gets no stream_options: its usage comes by itself.
    let sent = fake.requests()[0].json();
    assert_eq!(sent["stream"], true);
    assert!(sent.get("stream_options").is_none());
    assert_eq!(
        fake.requests()[0].header("accept"),
        Some("text/event-stream")
    );
}

#[tokio::test]
async fn tool_calls_are_answered_whole_and_replayed_to_streaming_clients() {
    let message = json!({"role": "assistant", "content": null, "tool_calls": [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}},
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]});
    let fake = FakeUpstream::start(Reply::json(answer(message.clone(), "tool_calls"))).await;
    let gw = gateway(&fake).await;
    let url = gw.url("/v1/chat/completions");
    let mut body = chat("ai21/jamba-mini-1.7", "Weather and time in Oslo?");
    body["tools"] = json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}]);
    let (status, _, resp) = post_json(&url, &body).await;
    assert_eq!(status, 200);
    let resp: Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(resp["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        resp["choices"][0]["message"]["tool_calls"],
        message["tool_calls"]
    );
    assert_eq!(
        fake.requests()[0].json()["tools"][0]["function"]["name"],
        "get_weather"
    );

    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, _, resp) = post_json(&url, &body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    // Sent as a complete request: AI21 streams carry no tool calls.
    assert_eq!(fake.requests()[1].json()["stream"], false);
    let cs = sse_chunks(&resp);
    let calls: Vec<&Value> = cs
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
        .flatten()
        .collect();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (&calls[0]["index"], &calls[0]["id"]),
        (&json!(0), &json!("call_a"))
    );
    assert_eq!(calls[0]["function"]["arguments"], "{\"city\": \"Oslo\"}");
    assert_eq!(
        (&calls[1]["index"], &calls[1]["id"]),
        (&json!(1), &json!("call_b"))
    );
    assert!(
        cs.iter()
            .any(|c| c["choices"][0]["finish_reason"] == "tool_calls")
    );
    assert_eq!(cs.last().unwrap()["usage"]["total_tokens"], 17);
}

#[tokio::test]
async fn errors_and_rate_limits() {
    let fake = FakeUpstream::start(Reply::json(answer(
        json!({"role": "assistant", "content": "x"}),
        "stop",
    )))
    .await;
    let gw = gateway(&fake).await;
    let url = gw.url("/v1/chat/completions");

    fake.script([Reply::status_json(
        422,
        json!({"detail": "max_tokens must be at most 4096"}),
    )]);
    let (status, _, body) = post_json(&url, &chat("ai21/jamba-mini", "x")).await;
    assert_eq!(status, 422);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens must be at most 4096")
    );

    fake.script([Reply::status_json(
        401,
        json!({"detail": "Forbidden: Bad or missing API token."}),
    )]);
    let (status, _, body) = post_json(&url, &chat("ai21/jamba-mini", "x")).await;
    assert_eq!(status, 502);
    assert!(!String::from_utf8_lossy(&body).contains("ai21_secret"));

    // Images are refused before any request goes out.
    let hits = fake.hits();
    let body = json!({"model": "ai21/jamba-mini", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is it?"}, {"type": "image_url", "image_url": {"url": "https://x/c.png"}}]}]});
    let (status, _, resp) = post_json(&url, &body).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&resp).contains("messages[0].content"));
    assert_eq!(fake.hits(), hits);

    fake.script([
        Reply::status_json(429, json!({"detail": "Too Many Requests"})).header("retry-after", "4"),
    ]);
    let (status, headers, body) = post_json(&url, &chat("ai21/jamba-mini", "x")).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "4");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");
}
