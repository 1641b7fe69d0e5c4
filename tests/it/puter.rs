//! Puter end to end: gateway on loopback, a fake Puter drivers API on loopback.
//!
//! The scenarios every provider shares run in [`crate::conformance`]; this module keeps Puter's
//! own behaviour.

use crate::support::*;
use serde_json::{Value, json};

const TOKEN: &str = "puter_secret_test_token";

async fn gateway(fake: &FakeUpstream) -> TestGateway {
    TestGateway::start(&[
        ("PUTER_AUTH_TOKEN", TOKEN.into()),
        ("PUTER_BASE_URL", fake.url("")),
    ])
    .await
}

fn answer(message: Value, finish: &str, usage: Value) -> Value {
    json!({"success": true, "service": {"name": "ai-chat"},
           "metadata": {"service_used": "openai-completion", "providerUsed": "gpt-4o-mini"},
           "result": {"index": 0, "message": message, "finish_reason": finish, "logprobs": null,
                      "usage": usage, "via_ai_chat_service": true}})
}

/// An NDJSON stream of `lines`, cut at awkward places.
fn ndjson(lines: &[Value]) -> Reply {
    let raw: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let mut cuts = vec![3, raw.len() / 2, raw.len() - 2];
    if let Some(p) = raw.find('é') {
        cuts.push(p + 1);
    }
    cuts.sort_unstable();
    Reply::Stream {
        status: 200,
        headers: vec![("content-type".into(), "application/x-ndjson".into())],
        pieces: split_at(&raw, &cuts),
        end: End::Finish,
    }
}

#[tokio::test]
async fn drivers_call_with_token_in_body_and_header() {
    let fake = FakeUpstream::start(Reply::json(answer(
        json!({"role": "assistant", "content": "Hello!", "refusal": null}),
        "stop",
        json!({"prompt_tokens": 9, "completion_tokens": 2, "cached_tokens": 0, "usd_cents": 0.0012}),
    )))
    .await;
    let gw = gateway(&fake).await;
    let mut body = chat("gpt-4o-mini", "Hi");
    body["max_tokens"] = json!(40);
    body["temperature"] = json!(0.7);
    let (status, headers, resp) = post_json(&gw.url("/v1/chat/completions"), &body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    let resp: Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(resp["object"], "chat.completion");
    assert_eq!(resp["model"], "gpt-4o-mini");
    assert_eq!(resp["choices"][0]["message"]["content"], "Hello!");
    assert_eq!(resp["choices"][0]["finish_reason"], "stop");
    assert_eq!(resp["usage"]["total_tokens"], 11);
    assert_eq!(headers["x-proxygate-provider"], "puter");
    assert_eq!(headers["x-proxygate-deployment"], "puter/gpt-4o-mini");
    // The Puter user pays: nothing to the gateway.
    if let Some(cost) = headers.get("x-proxygate-cost-usd") {
        assert_eq!(cost.parse::<f64>().unwrap(), 0.0);
    }

    let r = &fake.requests()[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str(), r.query.as_deref()),
        ("POST", "/drivers/call", None)
    );
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let sent = r.json();
    assert_eq!(
        sent,
        json!({
            "interface": "puter-chat-completion", "driver": "ai-chat", "method": "complete",
            "auth_token": TOKEN,
            "args": {"messages": [{"role": "user", "content": "Hi"}], "model": "gpt-4o-mini", "stream": false,
                     "max_tokens": 40, "temperature": 0.7, "response": {"normalize": true}}
        })
    );
}

#[tokio::test]
async fn names_map_to_puter_model_names() {
    let fake = FakeUpstream::start(Reply::json(answer(
        json!({"role": "assistant", "content": "ok"}),
        "stop",
        json!({}),
    )))
    .await;
    let gw = gateway(&fake).await;
    let url = gw.url("/v1/chat/completions");
    let cases = [
        ("gpt-4o", "gpt-4o"),
        (
            "claude-3.5-sonnet",
            "openrouter:anthropic/claude-3.5-sonnet",
        ),
        ("gemini-1.5-pro", "gemini-2.5-pro"),
        ("llama-3.1-8b", "llama-3.1-8b-instant"),
        (
            "puter/command-r-plus",
            "openrouter:cohere/command-r-plus-08-2024",
        ),
    ];
    for (i, (asked, sent)) in cases.iter().enumerate() {
        let (status, headers, _) = post_json(&url, &chat(asked, "Hi")).await;
        assert_eq!(status, 200, "{asked}");
        assert_eq!(headers["x-proxygate-provider"], "puter");
        assert_eq!(fake.requests()[i].json()["args"]["model"], *sent, "{asked}");
    }
    let (_, models) = get(&gw.url("/v1/models")).await;
    let models: Value = serde_json::from_slice(&models).unwrap();
    let puter: Vec<&Value> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["provider"] == "puter")
        .collect();
    assert_eq!(puter.len(), 10);
    assert!(puter.iter().all(|m| m["tier"] == "keyless"));
}

#[tokio::test]
async fn ndjson_stream_with_usage_only_when_asked() {
    let fake = FakeUpstream::start(ndjson(&[
        json!({"type": "text", "text": "Hé"}),
        json!({"type": "extra_content", "extra_content": {"google": {}}}),
        json!({"type": "text", "text": "llo"}),
        json!({"type": "usage", "usage": {"prompt_tokens": 9, "completion_tokens": 2, "cached_tokens": 0, "usd_cents": 0.0012}}),
    ]))
    .await;
    let gw = gateway(&fake).await;
    let url = gw.url("/v1/chat/completions");
    let mut body = chat("puter/gpt-4o-mini", "Hi");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, headers, resp) = post_json(&url, &body).await;
    assert_eq!(status, 200);
    assert!(headers["content-type"].starts_with("text/event-stream"));
    let cs = sse_chunks(&resp);
    assert_eq!(cs[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = cs
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Héllo");
    assert_eq!(cs[cs.len() - 2]["choices"][0]["finish_reason"], "stop");
    let last = cs.last().unwrap();
    assert_eq!(
        (&last["choices"], &last["usage"]["total_tokens"]),
        (&json!([]), &json!(11))
    );
    let sent = fake.requests()[0].json();
    assert_eq!(sent["args"]["stream"], true);
    assert_eq!(sent["auth_token"], TOKEN);

    body.as_object_mut().unwrap().remove("stream_options");
    let (_, _, resp) = post_json(&url, &body).await;
    assert!(
        sse_chunks(&resp)
            .iter()
            .all(|c| c.get("usage").is_none_or(Value::is_null))
    );
}

#[tokio::test]
async fn tool_use_streamed_and_not() {
    let fake = FakeUpstream::start(Reply::json(answer(
        json!({"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}]}),
        "stop",
        json!({"input_tokens": 30, "output_tokens": 12}),
    )))
    .await;
    let gw = gateway(&fake).await;
    let url = gw.url("/v1/chat/completions");
    let mut body = chat("claude-3-haiku", "Weather?");
    body["tools"] = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
    let (status, _, resp) = post_json(&url, &body).await;
    assert_eq!(status, 200);
    let resp: Value = serde_json::from_slice(&resp).unwrap();
    let c = &resp["choices"][0];
    assert_eq!(c["finish_reason"], "tool_calls");
    assert_eq!(c["message"]["tool_calls"][0]["id"], "toolu_1");
    let args: Value = serde_json::from_str(
        c["message"]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(args, json!({"city": "Oslo"}));
    assert_eq!(resp["usage"]["total_tokens"], 42);
    assert_eq!(
        fake.requests()[0].json()["args"]["tools"][0]["function"]["name"],
        "get_weather"
    );

    fake.script([ndjson(&[
        json!({"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {"city": "Oslo"}, "text": ""}),
        json!({"type": "tool_use", "id": "call_b", "name": "get_weather", "input": {"city": "Bergen"}, "text": ""}),
        json!({"type": "usage", "usage": {}}),
    ])]);
    body["stream"] = json!(true);
    let (status, _, resp) = post_json(&url, &body).await;
    assert_eq!(status, 200);
    let cs = sse_chunks(&resp);
    let calls: Vec<&Value> = cs
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
        .flatten()
        .collect();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (&calls[1]["index"], &calls[1]["id"]),
        (&json!(1), &json!("call_b"))
    );
    assert_eq!(calls[1]["function"]["arguments"], "{\"city\":\"Bergen\"}");
    assert!(
        cs.iter()
            .any(|c| c["choices"][0]["finish_reason"] == "tool_calls")
    );
}

#[tokio::test]
async fn v2_and_v1_errors_and_in_band_error_lines() {
    let fake = FakeUpstream::start(Reply::json(answer(
        json!({"role": "assistant", "content": "x"}),
        "stop",
        json!({}),
    )))
    .await;
    let gw = gateway(&fake).await;
    let url = gw.url("/v1/chat/completions");
    let err = |v: &[u8]| -> Value { serde_json::from_slice(v).unwrap() };

    fake.script([Reply::status_json(400, json!({"error": "Model not found: gpt-9", "message": "Model not found: gpt-9", "code": "bad_request"}))]);
    let (status, _, body) = post_json(&url, &chat("puter/gpt-9", "x")).await;
    assert_eq!(status, 400);
    assert!(
        err(&body)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Model not found: gpt-9")
    );

    // Every upstream down: Puter says 400, the gateway says 502 (and would fail over).
    fake.script([Reply::status_json(400, json!({"error": "AI provider unavailable", "message": "AI provider unavailable", "code": "upstream_provider_unavailable"}))]);
    let (status, _, body) = post_json(&url, &chat("puter/gpt-4o", "x")).await;
    assert_eq!(status, 502);
    assert_eq!(err(&body)["error"]["code"], "upstream_provider_unavailable");

    fake.script([Reply::status_json(402, json!({"error": "No usage left for request.", "message": "No usage left for request.", "code": "insufficient_funds"})).header("x-needs-upgrade", "true")]);
    let (status, _, body) = post_json(&url, &chat("puter/gpt-4o", "x")).await;
    assert_eq!(status, 502);
    assert!(
        err(&body)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("out of credits")
    );

    // Legacy v1: HTTP 200 with success: false.
    fake.script([Reply::json(json!({"success": false, "error": {"code": "permission_denied", "message": format!("Permission denied for token {TOKEN}")}}))]);
    let (status, _, body) = post_json(&url, &chat("puter/gpt-4o", "x")).await;
    assert_eq!(status, 502);
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("Permission denied") && !text.contains("puter_secret"),
        "{text}"
    );

    // An error line before anything else is a plain error; after text it is an error event.
    fake.script([ndjson(&[
        json!({"type": "error", "message": "upstream exploded"}),
    ])]);
    let mut body = chat("puter/gpt-4o", "x");
    body["stream"] = json!(true);
    let (status, _, resp) = post_json(&url, &body).await;
    assert_eq!(status, 502);
    assert!(String::from_utf8_lossy(&resp).contains("upstream exploded"));
    fake.script([ndjson(&[
        json!({"type": "text", "text": "partial"}),
        json!({"type": "error", "message": "upstream exploded"}),
    ])]);
    let (status, _, resp) = post_json(&url, &body).await;
    assert_eq!(status, 200);
    let data = sse_data(&resp);
    assert!(data[0].contains("partial"));
    assert!(
        data.iter()
            .any(|d| d.contains("\"error\"") && d.contains("upstream exploded")),
        "{data:?}"
    );
    assert!(!data.iter().any(|d| d == "[DONE]"), "{data:?}");
}

#[tokio::test]
async fn rate_limits_with_and_without_retry_after() {
    let fake = FakeUpstream::start(Reply::status_json(429, json!({"error": "Too many requests", "message": "Too many requests", "code": "too_many_requests"}))).await;
    let gw = gateway(&fake).await;
    let url = gw.url("/v1/chat/completions");
    // Puter sends no retry-after: its 10 s window stands in.
    let (status, headers, body) = post_json(&url, &chat("puter/gpt-4o-mini", "x")).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "10");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");
    fake.script([Reply::status_json(
        429,
        json!({"error": "slow down", "message": "slow down", "code": "upstream_rate_limited"}),
    )
    .header("retry-after", "3")]);
    // Another deployment: the first one now cools for its 10 s.
    let (status, headers, _) = post_json(&url, &chat("puter/gpt-4o", "x")).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "3");
}
