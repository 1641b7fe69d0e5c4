//! The Anthropic adapter end to end: gateway on loopback, a fake speaking the Messages API
//! (as Anthropic's Messages API reference describes it) on loopback.
//!
//! The scenarios every provider shares run in [`crate::conformance`]; this module keeps Anthropic's
//! own behaviour.

use crate::support::*;
use serde_json::{Value, json};

const KEY: &str = "sk-ant-api03-secret-test-key";

async fn gateway(fake: &FakeUpstream) -> TestGateway {
    TestGateway::start(&[
        ("ANTHROPIC_API_KEY", KEY.into()),
        ("ANTHROPIC_BASE_URL", fake.url("")),
    ])
    .await
}

fn message(content: Value, stop_reason: &str) -> Value {
    json!({
        "id": "msg_01XYZ", "type": "message", "role": "assistant", "model": "claude-3-haiku-20240307",
        "content": content, "stop_reason": stop_reason, "stop_sequence": null,
        "usage": {"input_tokens": 412, "output_tokens": 38, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    })
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}

/// Frames `(event, data)` pairs as Anthropic SSE.
fn sse(events: &[(&str, Value)]) -> String {
    events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect()
}

fn chunks_of(body: &[u8]) -> (Vec<Value>, Vec<String>) {
    (sse_chunks(body), sse_data(body))
}

#[tokio::test]
async fn non_stream_tool_call_round_trip() {
    let fake = FakeUpstream::start(Reply::json(message(
        json!([
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_01B", "name": "get_weather", "input": {"city": "Oslo"}}
        ]),
        "tool_use",
    )))
    .await;
    let gw = gateway(&fake).await;
    let body = json!({
        "model": "claude-3-haiku",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Weather in Oslo?"}
        ],
        "tools": weather_tool(),
        "tool_choice": "required",
        "temperature": 1.5
    });
    let (status, headers, resp) = post_json(&gw.url("/v1/chat/completions"), &body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    assert_eq!(headers["x-proxygate-provider"], "anthropic");
    assert_eq!(
        headers["x-proxygate-deployment"],
        "anthropic/claude-3-haiku-20240307"
    );
    let v: Value = serde_json::from_slice(&resp).unwrap();
    let msg = &v["choices"][0]["message"];
    assert_eq!(msg["content"], "Checking.");
    assert_eq!(msg["tool_calls"][0]["id"], "toolu_01B");
    assert_eq!(msg["tool_calls"][0]["type"], "function");
    assert_eq!(msg["tool_calls"][0]["function"]["name"], "get_weather");
    let args: Value = serde_json::from_str(
        msg["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(args, json!({"city": "Oslo"}));
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(v["usage"]["prompt_tokens"], 412);
    assert_eq!(v["usage"]["completion_tokens"], 38);
    assert_eq!(v["usage"]["total_tokens"], 450);

    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/v1/messages")
    );
    assert_eq!(r.query, None);
    assert_eq!(r.header("x-api-key"), Some(KEY));
    assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(r.header("authorization"), None);
    let sent = r.json();
    assert_eq!(sent["model"], "claude-3-haiku-20240307");
    assert_eq!(sent["max_tokens"], 4096);
    assert_eq!(sent["system"], "Be terse.");
    assert_eq!(sent["temperature"], 1.0);
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": "Weather in Oslo?"}])
    );
    assert_eq!(
        sent["tools"][0]["input_schema"]["required"],
        json!(["city"])
    );
    assert_eq!(sent["tool_choice"], json!({"type": "any"}));
    assert!(sent.get("stream").is_none());

    // The tool result goes back as a tool_result block in a user turn.
    let follow_up = json!({
        "model": "anthropic/claude-3-haiku-20240307",
        "messages": [
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": null, "tool_calls": v["choices"][0]["message"]["tool_calls"]},
            {"role": "tool", "tool_call_id": "toolu_01B", "content": "14C, rain"}
        ],
        "tools": weather_tool()
    });
    fake.script([Reply::json(message(
        json!([{"type": "text", "text": "14C and rain."}]),
        "end_turn",
    ))]);
    let (status, _, resp) = post_json(&gw.url("/v1/chat/completions"), &follow_up).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    let v: Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let sent = fake.requests()[1].json();
    assert_eq!(
        sent["messages"][1]["content"][0],
        json!({"type": "tool_use", "id": "toolu_01B", "name": "get_weather", "input": {"city": "Oslo"}})
    );
    assert_eq!(
        sent["messages"][2],
        json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01B", "content": "14C, rain"}]})
    );
}

fn text_stream() -> String {
    sse(&[
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-3-haiku-20240307", "content": [], "stop_reason": null, "usage": {"input_tokens": 25, "output_tokens": 1}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ("ping", json!({"type": "ping"})),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hél"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo ✓"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 12}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ])
}

#[tokio::test]
async fn stream_with_usage_in_awkward_pieces() {
    let raw = text_stream().replace('\n', "\r\n");
    let cut = raw.find("Hél").unwrap() + 2; // inside 'é'
    let tick = raw.find('✓').unwrap() + 1; // inside '✓'
    let reply = Reply::Stream {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        pieces: split_at(
            &raw,
            &[3, 17, 100, cut, cut + 1, tick, raw.len() - 5, raw.len() - 1],
        ),
        end: End::Finish,
    };
    let fake = FakeUpstream::start(reply).await;
    let gw = gateway(&fake).await;
    let url = gw.url("/v1/chat/completions");
    let mut body = chat("anthropic/claude-3-haiku-20240307", "Hi");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, headers, resp) = post_json(&url, &body).await;
    assert_eq!(status, 200);
    assert!(headers["content-type"].starts_with("text/event-stream"));
    let (chunks, data) = chunks_of(&resp);
    assert_eq!(data.last().unwrap(), "[DONE]");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Héllo ✓");
    let finish: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
        .collect();
    assert_eq!(finish, ["stop"]);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["prompt_tokens"], 25);
    assert_eq!(last["usage"]["completion_tokens"], 12);
    assert_eq!(last["usage"]["total_tokens"], 37);
    assert!(
        chunks[..chunks.len() - 1]
            .iter()
            .all(|c| c.get("usage").is_none_or(Value::is_null))
    );

    let r = &fake.requests()[0];
    assert_eq!(r.path, "/v1/messages");
    assert_eq!(r.header("x-api-key"), Some(KEY));
    assert_eq!(r.json()["stream"], true);
    assert!(r.json().get("stream_options").is_none());

    // Without include_usage no chunk carries usage.
    body.as_object_mut().unwrap().remove("stream_options");
    let (_, _, resp) = post_json(&url, &body).await;
    let (chunks, _) = chunks_of(&resp);
    assert!(
        chunks
            .iter()
            .all(|c| c.get("usage").is_none_or(Value::is_null)
                && !c["choices"].as_array().unwrap().is_empty())
    );
}

#[tokio::test]
async fn streamed_parallel_tool_calls_in_fragments() {
    let raw = sse(&[
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_02", "model": "claude-3-haiku-20240307", "usage": {"input_tokens": 40, "output_tokens": 1}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Checking both."}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_A", "name": "get_weather", "input": {}}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"ci"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "ty\": \"Os"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "lo\"}"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_B", "name": "get_weather", "input": {}}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"city\": "}}),
        ),
        ("ping", json!({"type": "ping"})),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "\"Bergen\"}"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 2}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 61}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ]);
    let reply = Reply::Stream {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        pieces: split_at(&raw, &[50, 51, 400, 401, 900]),
        end: End::Finish,
    };
    let fake = FakeUpstream::start(reply).await;
    let gw = gateway(&fake).await;
    let mut body = chat("claude-3-haiku", "Weather in Oslo and Bergen?");
    body["stream"] = json!(true);
    body["tools"] = weather_tool();
    body["parallel_tool_calls"] = json!(true);
    let (status, _, resp) = post_json(&gw.url("/v1/chat/completions"), &body).await;
    assert_eq!(status, 200);
    let (chunks, _) = chunks_of(&resp);
    // Reassemble tool calls by index, as the OpenAI SDKs do.
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for c in &chunks {
        for tc in c["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let i = tc["index"].as_u64().unwrap() as usize;
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
    }
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].0, "toolu_A");
    assert_eq!(calls[1].0, "toolu_B");
    assert!(calls.iter().all(|c| c.1 == "get_weather"));
    assert_eq!(
        serde_json::from_str::<Value>(&calls[0].2).unwrap(),
        json!({"city": "Oslo"})
    );
    assert_eq!(
        serde_json::from_str::<Value>(&calls[1].2).unwrap(),
        json!({"city": "Bergen"})
    );
    let finish: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
        .collect();
    assert_eq!(finish, ["tool_calls"]);
    assert_eq!(fake.requests()[0].json()["tools"][0]["name"], "get_weather");
}

#[tokio::test]
async fn errors_keep_their_meaning() {
    let fake = FakeUpstream::start(Reply::json(message(json!([]), "end_turn"))).await;
    let gw = gateway(&fake).await;
    let url = gw.url("/v1/chat/completions");
    let body = chat("anthropic/claude-3-haiku-20240307", "x");

    fake.script([Reply::status_json(400, json!({"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long: 210000 tokens > 200000 maximum"}, "request_id": "req_011CS"}))]);
    let (status, _, resp) = post_json(&url, &body).await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_slice(&resp).unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("prompt is too long")
    );
    assert_eq!(v["error"]["code"], "context_length_exceeded");

    // A bad key is the gateway's upstream failing (and the key never shows).
    fake.script([Reply::status_json(401, json!({"type": "error", "error": {"type": "authentication_error", "message": format!("invalid x-api-key {KEY}")}}))]);
    let (status, _, resp) = post_json(&url, &body).await;
    assert_eq!(status, 502);
    let text = String::from_utf8_lossy(&resp);
    assert!(!text.contains("sk-ant"), "{text}");

    fake.script([Reply::status_json(
        529,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    )]);
    let (status, _, resp) = post_json(&url, &body).await;
    assert!(status == 502 || status == 503, "{status}");
    assert!(String::from_utf8_lossy(&resp).contains("Overloaded"));
}

#[tokio::test]
async fn mid_stream_error_event_reaches_the_client() {
    let mut raw = text_stream();
    raw.truncate(raw.find("event: content_block_stop").unwrap());
    raw.push_str(&sse(&[(
        "error",
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    )]));
    let fake = FakeUpstream::start(Reply::sse(&[&raw])).await;
    let gw = gateway(&fake).await;
    let mut body = chat("anthropic/claude-3-haiku-20240307", "Hi");
    body["stream"] = json!(true);
    let (status, _, resp) = post_json(&gw.url("/v1/chat/completions"), &body).await;
    assert_eq!(status, 200);
    let (chunks, data) = (
        crate::support::sse_cut_chunks(&resp),
        crate::support::sse_data(&resp),
    );
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["delta"]["content"] == "Hél")
    );
    let err = chunks
        .iter()
        .find(|c| c.get("error").is_some())
        .expect("error event");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Overloaded")
    );
    // A cut stream ends with its error event: no end marker a client could take for a whole answer.
    assert!(!data.iter().any(|d| d == "[DONE]"), "{data:?}");
    assert_eq!(fake.hits(), 1);
}

#[tokio::test]
async fn catalog_lists_anthropic_models_with_aliases() {
    let gw = TestGateway::start(&[]).await;
    let (status, body) = get(&gw.url("/v1/models")).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    let m = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "anthropic/claude-3-5-sonnet-20241022")
        .expect("listed");
    assert_eq!(m["tier"], "paid-key");
    assert_eq!(m["status"], "unconfigured");
    let (status, _, body) = post_json(
        &gw.url("/v1/chat/completions"),
        &chat("claude-3.5-sonnet", "x"),
    )
    .await;
    assert!(status == 503 || status == 404, "{status}");
    assert!(String::from_utf8_lossy(&body).contains("ANTHROPIC_API_KEY"));
}
