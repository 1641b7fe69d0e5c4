//! `POST /v1/messages` end to end: Anthropic requests in, Anthropic messages and SSE out, served
//! by loopback fakes of an OpenAI-compatible upstream, Gemini, and Anthropic itself (pass-through).

use crate::support::*;
use serde_json::{Value, json};

const OPENAI_KEY: &str = "sk-openai-messages-test-key";
const ANTHROPIC_KEY: &str = "sk-ant-messages-test-key";
const GEMINI_KEY: &str = "AIza-messages-test-key";

async fn openai_gateway(fake: &FakeUpstream) -> TestGateway {
    TestGateway::start(&[
        ("OPENAI_API_KEY", OPENAI_KEY.into()),
        ("OPENAI_BASE_URL", fake.url("/v1")),
    ])
    .await
}

/// Anthropic SSE as (event line, data JSON), checking each event names its data's type and
/// that no `[DONE]` is sent.
fn anthropic_events(body: &[u8]) -> Vec<(String, Value)> {
    let text = String::from_utf8_lossy(body);
    assert!(!text.contains("[DONE]"), "{text}");
    text.split("\n\n")
        .filter(|e| e.lines().any(|l| l.starts_with("data: ")))
        .map(|e| {
            let event = e
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or_else(|| panic!("no event line in {e:?}"))
                .to_owned();
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            let data: Value = serde_json::from_str(data).expect("data is JSON");
            assert_eq!(data["type"], event.as_str(), "event line equals data.type");
            (event, data)
        })
        .collect()
}

fn weather_tool() -> Value {
    json!({"name": "get_weather", "description": "Current weather",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}})
}

#[tokio::test]
async fn openai_upstream_serves_a_tool_use_round_trip() {
    let fake = FakeUpstream::start(Reply::json(json!({
        "id": "chatcmpl-123", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "It is 14C in Oslo."}}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 8, "total_tokens": 48}
    })))
    .await;
    fake.script([Reply::json(json!({
        "id": "chatcmpl-122", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": "call_abc", "type": "function",
                            "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]}}],
        "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42}
    }))]);
    let gw = openai_gateway(&fake).await;
    let first = json!({
        "model": "openai/gpt-4o-mini", "max_tokens": 100, "system": "Be terse.",
        "tools": [weather_tool()], "metadata": {"user_id": "u-1"},
        "messages": [{"role": "user", "content": "Weather in Oslo?"}]
    });
    let (status, headers, body) = post_json(&gw.url("/v1/messages"), &first).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["x-proxygate-provider"], "openai");
    let msg: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(msg["type"], "message");
    assert_eq!(msg["role"], "assistant");
    assert!(msg["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(msg["stop_reason"], "tool_use");
    assert_eq!(msg["content"][0]["type"], "tool_use");
    assert_eq!(msg["content"][0]["id"], "call_abc");
    assert_eq!(msg["content"][0]["input"], json!({"city": "Oslo"}));
    assert_eq!(
        msg["usage"],
        json!({"input_tokens": 30, "output_tokens": 12})
    );
    let sent = fake.requests()[0].json();
    assert_eq!(fake.requests()[0].path, "/v1/chat/completions");
    assert_eq!(sent["model"], "gpt-4o-mini");
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Be terse."})
    );
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(
        sent["tools"][0]["function"]["parameters"]["required"],
        json!(["city"])
    );
    assert_eq!(sent["max_tokens"], 100);
    assert_eq!(sent["user"], "u-1");

    // The client answers the tool call; the upstream sees it as an OpenAI tool message.
    let second = json!({
        "model": "openai/gpt-4o-mini", "max_tokens": 100, "tools": [weather_tool()],
        "messages": [
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": msg["content"]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_abc", "content": "14C"}]}
        ]
    });
    let (status, _, body) = post_json(&gw.url("/v1/messages"), &second).await;
    assert_eq!(status, 200);
    let msg: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(msg["stop_reason"], "end_turn");
    assert_eq!(
        msg["content"],
        json!([{"type": "text", "text": "It is 14C in Oslo."}])
    );
    let sent = fake.requests()[1].json();
    let msgs = sent["messages"].as_array().unwrap();
    assert_eq!(msgs[1]["tool_calls"][0]["id"], "call_abc");
    assert_eq!(
        msgs[1]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Oslo\"}"
    );
    assert_eq!(
        msgs[2],
        json!({"role": "tool", "content": "14C", "tool_call_id": "call_abc"})
    );
}

#[tokio::test]
async fn streamed_openai_tool_call_becomes_input_json_deltas_with_exact_usage() {
    let args = "{\"city\": \"Oslo\", \"unit\": \"celsius\"}";
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let fake = FakeUpstream::start(Reply::openai_sse(&[
        chunk(json!({"role": "assistant", "content": "Let me check."}), Value::Null),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_7", "type": "function",
                                  "function": {"name": "get_weather", "arguments": ""}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": &args[..9]}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": &args[9..20]}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": &args[20..]}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
        json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
               "choices": [], "usage": {"prompt_tokens": 33, "completion_tokens": 21, "total_tokens": 54}}),
    ]))
    .await;
    let gw = openai_gateway(&fake).await;
    let req = json!({
        "model": "openai/gpt-4o-mini", "max_tokens": 100, "stream": true, "tools": [weather_tool()],
        "messages": [{"role": "user", "content": "Weather in Oslo?"}]
    });
    let (status, headers, body) = post_json(&gw.url("/v1/messages"), &req).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/event-stream");
    // The upstream was asked for stream usage although the Anthropic client cannot ask.
    assert_eq!(
        fake.requests()[0].json()["stream_options"]["include_usage"],
        true
    );
    let events = anthropic_events(&body);
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"message_start"));
    assert_eq!(kinds.last(), Some(&"message_stop"));
    assert!(kinds.contains(&"ping"));
    assert_eq!(kinds.iter().filter(|k| **k == "message_delta").count(), 1);
    let tool_start = events
        .iter()
        .find(|(k, d)| k == "content_block_start" && d["content_block"]["type"] == "tool_use")
        .expect("a tool_use block");
    let index = tool_start.1["index"].clone();
    assert_eq!(tool_start.1["content_block"]["name"], "get_weather");
    let joined: String = events
        .iter()
        .filter(|(_, d)| d["index"] == index && d["delta"]["type"] == "input_json_delta")
        .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(joined, args);
    let text: String = events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "text_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, "Let me check.");
    // Every block opened is closed.
    let starts = kinds
        .iter()
        .filter(|k| **k == "content_block_start")
        .count();
    let stops = kinds.iter().filter(|k| **k == "content_block_stop").count();
    assert_eq!((starts, stops), (2, 2));
    let delta = &events.iter().find(|(k, _)| k == "message_delta").unwrap().1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta["usage"]["output_tokens"], 21);
    assert_eq!(delta["usage"]["input_tokens"], 33);
}

#[tokio::test]
async fn gemini_function_call_ends_as_tool_use() {
    let fake = FakeUpstream::start(Reply::sse(&[&format!(
        "data: {}\r\n\r\n",
        json!({"candidates": [{"content": {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}]},
                "finishReason": "STOP", "index": 0}],
               "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 5, "totalTokenCount": 25}})
    )]))
    .await;
    let gw = TestGateway::start(&[
        ("GEMINI_API_KEY", GEMINI_KEY.into()),
        ("GEMINI_BASE_URL", fake.url("")),
    ])
    .await;
    let req = json!({
        "model": "gemini/gemini-2.0-flash", "max_tokens": 50, "stream": true, "tools": [weather_tool()],
        "messages": [{"role": "user", "content": "Weather in Oslo?"}]
    });
    let (status, _, body) = post_json(&gw.url("/v1/messages"), &req).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(fake.requests()[0].path.ends_with(":streamGenerateContent"));
    let events = anthropic_events(&body);
    let delta = &events.iter().find(|(k, _)| k == "message_delta").unwrap().1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta["usage"]["output_tokens"], 5);
    let joined: String = events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
        .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&joined).unwrap(),
        json!({"city": "Oslo"})
    );
}

#[tokio::test]
async fn anthropic_upstream_passes_request_and_reply_through() {
    let reply = json!({
        "id": "msg_01XYZ", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
        "content": [{"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "text", "text": "Hi!", "citations": null}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 12, "output_tokens": 4, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0, "service_tier": "standard"}
    });
    let fake = FakeUpstream::start(Reply::json(reply.clone())).await;
    let gw = TestGateway::start(&[
        ("ANTHROPIC_API_KEY", ANTHROPIC_KEY.into()),
        ("ANTHROPIC_BASE_URL", fake.url("")),
    ])
    .await;
    let req = json!({
        "model": "anthropic/claude-haiku-4-5", "max_tokens": 1024,
        "system": [{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}],
        "thinking": {"type": "enabled", "budget_tokens": 512},
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc"}}]}],
        "top_k": 3, "service_tier": "auto"
    });
    let post = http::Request::post(gw.url("/v1/messages"))
        .header("content-type", "application/json")
        .header("anthropic-beta", "interleaved-thinking-2025-05-14");
    let (status, _, body) = send(post, req.to_string().into_bytes()).await;
    assert_eq!(status, 200);
    // As sent, apart from `model`: the answer names the id the client asked for.
    let mut named = reply.clone();
    named["model"] = json!("anthropic/claude-haiku-4-5");
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), named);
    let got = &fake.requests()[0];
    assert_eq!(got.path, "/v1/messages");
    assert_eq!(got.header("x-api-key"), Some(ANTHROPIC_KEY));
    assert_eq!(got.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        got.header("anthropic-beta"),
        Some("interleaved-thinking-2025-05-14")
    );
    let mut expected = req.clone();
    expected["model"] = json!("claude-haiku-4-5");
    assert_eq!(got.json(), expected);

    // Streams: every upstream event reaches the client as it was, `message_start` naming the
    // client's model id.
    let events = [
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_02\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-haiku-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n",
        "event: ping\ndata: {\"type\":\"ping\"}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"abc\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":7}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    ];
    fake.script([Reply::sse(&events)]);
    let mut req = req;
    req["stream"] = json!(true);
    let (status, _, body) = post_json(&gw.url("/v1/messages"), &req).await;
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    let relayed: Vec<&str> = text
        .split("\n\n")
        .filter(|e| !e.is_empty() && !e.starts_with(':'))
        .collect();
    let sent: Vec<&str> = events.iter().map(|e| e.trim_end_matches("\n\n")).collect();
    assert_eq!(relayed.len(), sent.len());
    assert_eq!(relayed[1..], sent[1..]);
    let start: Value = serde_json::from_str(
        relayed[0]
            .strip_prefix("event: message_start\ndata: ")
            .expect("message_start first"),
    )
    .unwrap();
    let mut expected_start: Value = serde_json::from_str(
        sent[0]
            .strip_prefix("event: message_start\ndata: ")
            .expect("message_start sent"),
    )
    .unwrap();
    expected_start["message"]["model"] = json!("anthropic/claude-haiku-4-5");
    assert_eq!(start, expected_start);
    let got = fake.requests()[1].json();
    assert_eq!(got["stream"], true);
    assert_eq!(got["thinking"], req["thinking"]);
}

#[tokio::test]
async fn errors_have_anthropic_shape_and_status() {
    let fake = FakeUpstream::start(
        Reply::status_json(
            429,
            json!({"error": {"message": "slow down", "type": "rate_limit_error", "code": "rate_limit_exceeded"}}),
        )
        .header("retry-after", "7"),
    )
    .await;
    let gw = openai_gateway(&fake).await;
    let msg = |model: &str| json!({"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let error_of = |body: &[u8]| -> Value {
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["type"], "error", "{v}");
        v["error"].clone()
    };

    let mut no_max = msg("mock/echo");
    no_max.as_object_mut().unwrap().remove("max_tokens");
    let (status, _, body) = post_json(&gw.url("/v1/messages"), &no_max).await;
    assert_eq!(status, 400);
    let e = error_of(&body);
    assert_eq!(e["type"], "invalid_request_error");
    assert!(e["message"].as_str().unwrap().contains("max_tokens"));

    let (status, _, body) = post_json(&gw.url("/v1/messages"), &msg("no-such-model-9")).await;
    assert_eq!(status, 404);
    assert_eq!(error_of(&body)["type"], "not_found_error");

    let (status, _, body) = post_raw(
        &gw.url("/v1/messages"),
        b"{nope".to_vec(),
        "application/json",
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        error_of(&body)["message"]
            .as_str()
            .unwrap()
            .contains("json")
    );

    let (status, headers, body) =
        post_json(&gw.url("/v1/messages"), &msg("openai/gpt-4o-mini")).await;
    assert_eq!(status, 429);
    assert_eq!(error_of(&body)["type"], "rate_limit_error");
    let after: u64 = headers["retry-after"].parse().unwrap();
    assert!((1..=7).contains(&after), "{after}");
}

#[tokio::test]
async fn master_key_is_accepted_as_x_api_key_and_refusals_have_anthropic_shape() {
    let gw = TestGateway::start(&[("PROXYGATE_MASTER_KEY", "pg-master-key-123".into())]).await;
    let body = json!({"model": "mock/echo", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let send_with = |name: &'static str, value: &'static str| {
        let req = http::Request::post(gw.url("/v1/messages"))
            .header("content-type", "application/json")
            .header(name, value);
        send(req, body.to_string().into_bytes())
    };
    let (status, _, _) = send_with("x-api-key", "pg-master-key-123").await;
    assert_eq!(status, 200);
    let (status, _, _) = send_with("authorization", "Bearer pg-master-key-123").await;
    assert_eq!(status, 200);
    let (status, _, resp) = send_with("x-api-key", "wrong").await;
    assert_eq!(status, 401);
    let v: Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "authentication_error");
}

#[tokio::test]
async fn count_tokens_counts_system_messages_and_tools_without_an_upstream() {
    let fake = FakeUpstream::start(Reply::status_json(500, json!({}))).await;
    let gw = openai_gateway(&fake).await;
    let base = json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hello world"}]});
    let count = |body: Value| {
        let url = gw.url("/v1/messages/count_tokens");
        async move {
            let (status, _, resp) = post_json(&url, &body).await;
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
            let v: Value = serde_json::from_slice(&resp).unwrap();
            v["input_tokens"].as_u64().unwrap()
        }
    };
    let plain = count(base.clone()).await;
    // "hello world\n" (3 tokens), 3 for the message, 3 to prime the answer.
    assert_eq!(plain, 9);
    let mut with_system = base.clone();
    with_system["system"] = json!("Be terse and precise in every answer.");
    let with_system = count(with_system).await;
    assert!(with_system > plain);
    let mut with_tools = base.clone();
    with_tools["tools"] = json!([weather_tool()]);
    assert!(count(with_tools).await > plain);
    assert_eq!(fake.hits(), 0);
}

#[tokio::test]
async fn usage_and_metrics_count_every_endpoint_like_chat() {
    let gw = TestGateway::start(&[]).await;
    let endpoints = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = endpoints.clone();
    gw.gateway.usage().observe(std::sync::Arc::new(move |r| {
        assert!(
            r.request_id.is_some(),
            "every record carries its request id"
        );
        seen.lock().unwrap().push(r.endpoint.as_str());
    }));
    let (s, _, _) = post_json(
        &gw.url("/v1/chat/completions"),
        &chat("mock/echo", "one two"),
    )
    .await;
    assert_eq!(s, 200);
    let m = json!({"model": "mock/echo", "max_tokens": 10, "messages": [{"role": "user", "content": "one two"}]});
    let (s, _, _) = post_json(&gw.url("/v1/messages"), &m).await;
    assert_eq!(s, 200);
    let mut ms = m.clone();
    ms["stream"] = json!(true);
    let (s, _, _) = post_json(&gw.url("/v1/messages"), &ms).await;
    assert_eq!(s, 200);
    let (s, _, _) = post_json(
        &gw.url("/v1/embeddings"),
        &json!({"model": "mock/embed", "input": ["one two", "three"]}),
    )
    .await;
    assert_eq!(s, 200);
    gw.gateway.usage().flush().await.unwrap();
    let (s, body) = get(&gw.url("/v1/usage")).await;
    assert_eq!(s, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["totals"]["requests"], 4, "{v}");
    assert_eq!(v["by_model"]["mock/embed"]["requests"], 1, "{v}");
    assert!(
        v["by_model"]["mock/embed"]["prompt_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(v["by_model"]["mock/echo"]["requests"], 3, "{v}");
    let mut got = endpoints.lock().unwrap().clone();
    got.sort();
    assert_eq!(got, ["chat", "embeddings", "messages", "messages"]);

    let (_, metrics) = get(&gw.url("/metrics")).await;
    let metrics = String::from_utf8_lossy(&metrics);
    let counted = |endpoint: &str| {
        metrics.lines().any(|l| {
            l.starts_with("proxygate_requests_total")
                && l.contains(&format!("endpoint=\"{endpoint}\""))
                && !l.ends_with(" 0")
        })
    };
    assert!(
        counted("chat") && counted("messages") && counted("embeddings"),
        "{metrics}"
    );
}

#[tokio::test]
async fn usage_totals_equal_the_upstream_usage_through_every_endpoint() {
    let fake = FakeUpstream::start(Reply::status_json(500, json!({}))).await;
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-5", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    fake.script([
        // chat, whole
        Reply::json(json!({
            "id": "chatcmpl-4", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42}
        })),
        // messages, streamed
        Reply::openai_sse(&[
            chunk(json!({"role": "assistant", "content": "fine"}), Value::Null),
            chunk(json!({}), json!("stop")),
            json!({"id": "chatcmpl-5", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
                   "choices": [], "usage": {"prompt_tokens": 33, "completion_tokens": 21, "total_tokens": 54}}),
        ]),
        // embeddings
        Reply::json(json!({
            "object": "list", "model": "text-embedding-3-small",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}],
            "usage": {"prompt_tokens": 1000, "total_tokens": 1000}
        })),
    ]);
    let gw = openai_gateway(&fake).await;
    let (s, _, _) = post_json(
        &gw.url("/v1/chat/completions"),
        &chat("openai/gpt-4o-mini", "hi"),
    )
    .await;
    assert_eq!(s, 200);
    let m = json!({"model": "openai/gpt-4o-mini", "max_tokens": 10, "stream": true,
                   "messages": [{"role": "user", "content": "hi"}]});
    let (s, _, body) = post_json(&gw.url("/v1/messages"), &m).await;
    assert_eq!(s, 200);
    assert!(String::from_utf8_lossy(&body).contains(": cost_usd="));
    let e = json!({"model": "openai/text-embedding-3-small", "input": "hi"});
    let (s, _, _) = post_json(&gw.url("/v1/embeddings"), &e).await;
    assert_eq!(s, 200);
    gw.gateway.usage().flush().await.unwrap();
    let (_, body) = get(&gw.url("/v1/usage")).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    let t = &v["totals"];
    assert_eq!(t["requests"], 3, "{v}");
    assert_eq!(t["prompt_tokens"], 30 + 33 + 1000, "{v}");
    assert_eq!(t["completion_tokens"], 12 + 21, "{v}");
    assert_eq!(t["estimated_tokens"], 0, "{v}");
    let cost = (30.0 + 33.0) * 0.15e-6 + (12.0 + 21.0) * 0.60e-6 + 1000.0 * 0.02e-6;
    assert!(
        (t["cost_usd"].as_f64().unwrap() - cost).abs() < 1e-12,
        "{v}"
    );
}

#[tokio::test]
async fn the_response_cache_answers_a_repeated_message_in_anthropic_shape() {
    let reply = json!({
        "id": "msg_c", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": "Cached hello."}], "stop_reason": "end_turn",
        "stop_sequence": null, "usage": {"input_tokens": 5, "output_tokens": 3}
    });
    let fake = FakeUpstream::start(Reply::json(reply.clone())).await;
    let gw = TestGateway::start(&[
        ("ANTHROPIC_API_KEY", ANTHROPIC_KEY.into()),
        ("ANTHROPIC_BASE_URL", fake.url("")),
        ("CACHE_ENABLED", "true".into()),
    ])
    .await;
    let req = json!({"model": "anthropic/claude-haiku-4-5", "max_tokens": 50,
                     "messages": [{"role": "user", "content": "hello"}]});
    let (_, headers, _) = post_json(&gw.url("/v1/messages"), &req).await;
    assert_eq!(headers["x-proxygate-cache"], "miss");
    let (status, headers, body) = post_json(&gw.url("/v1/messages"), &req).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-proxygate-cache"], "hit");
    let mut named = reply.clone();
    named["model"] = json!("anthropic/claude-haiku-4-5");
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), named);
    // Streamed, the cached answer is replayed as Anthropic events.
    let mut streamed = req.clone();
    streamed["stream"] = json!(true);
    let (status, headers, body) = post_json(&gw.url("/v1/messages"), &streamed).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-proxygate-cache"], "hit");
    let events = anthropic_events(&body);
    assert!(
        events
            .iter()
            .any(|(_, d)| d["delta"]["text"] == "Cached hello.")
    );
    // A field the canonical request cannot hold still makes another question.
    let mut thinking = req.clone();
    thinking["thinking"] = json!({"type": "enabled", "budget_tokens": 16});
    let (_, headers, _) = post_json(&gw.url("/v1/messages"), &thinking).await;
    assert_eq!(headers["x-proxygate-cache"], "miss");
    assert_eq!(fake.hits(), 2);
    // The same words on the chat endpoint are not this answer.
    let (_, headers, _) = post_json(
        &gw.url("/v1/chat/completions"),
        &chat("anthropic/claude-haiku-4-5", "hello"),
    )
    .await;
    assert_eq!(headers["x-proxygate-cache"], "miss");
}
