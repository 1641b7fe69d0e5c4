use std::time::{Duration, SystemTime};

use serde_json::json;

use super::wire::{ContentBlock, WireUsage};
use super::*;
use super::{error::*, request::*, response::*, stream::*};
use crate::providers::Framing;
use crate::types::{ChatChunk, ToolCallDelta};

fn req(v: Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

/// Feeds `raw` to a parser in the given pieces and decodes every event.
fn decode(
    raw: &str,
    cuts: &[usize],
    json_tool: bool,
) -> (Vec<ChatChunk>, Result<(), GatewayError>) {
    let mut dec = AnthropicDecoder::new(json_tool);
    crate::providers::decode_pieces(
        Framing::Sse,
        &mut dec,
        &crate::providers::cut(raw.as_bytes(), cuts),
    )
}

/// The request of Anthropic's Messages API reference, from its OpenAI form.
#[test]
fn golden_request_with_system_image_tools_and_history() {
    let r = req(json!({
        "model": "claude-sonnet-4-5-20250929",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this image?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR...", "detail": "auto"}}
            ]},
            {"role": "assistant", "content": "Let me check the weather.", "tool_calls": [
                {"id": "toolu_01A", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "toolu_01A", "content": "14C, rain"}
        ],
        "max_completion_tokens": 1024,
        "temperature": 0.2,
        "stop": ["\n\nHuman:"],
        "stream": true,
        "stream_options": {"include_usage": true},
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "description": "Current weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
        "tool_choice": "auto",
        "user": "end-user-123",
        "seed": 7,
        "logit_bias": {"1": 2}
    }));
    let body = request_body(&r).unwrap();
    assert_eq!(
        body,
        json!({
            "model": "claude-sonnet-4-5-20250929",
            "max_tokens": 1024,
            "system": "Be terse.",
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "What is in this image?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR..."}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Let me check the weather."},
                    {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Oslo"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "14C, rain"}
                ]}
            ],
            "temperature": 0.2,
            "stop_sequences": ["\n\nHuman:"],
            "stream": true,
            "tools": [{"name": "get_weather", "description": "Current weather",
                       "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
            "tool_choice": {"type": "auto"},
            "metadata": {"user_id": "end-user-123"}
        })
    );
}

#[test]
fn request_headers_and_url() {
    let a = Anthropic::new("http://127.0.0.1:9/", Secret::new("sk-ant-xyz"));
    let up = a
        .request(&req(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true}),
        ))
        .unwrap();
    assert_eq!(up.uri(), "http://127.0.0.1:9/v1/messages");
    assert_eq!(up.headers()["x-api-key"], "sk-ant-xyz");
    assert!(up.headers()["x-api-key"].is_sensitive());
    assert_eq!(up.headers()["anthropic-version"], "2023-06-01");
    assert_eq!(up.headers()["accept"], "text/event-stream");
    assert!(up.headers().get("authorization").is_none());
}

#[test]
fn turns_are_merged_and_alternate() {
    let r = req(json!({"model": "m", "messages": [
        {"role": "assistant", "content": "Hello, I am here."},
        {"role": "user", "content": "first"},
        {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "image_url", "image_url": {"url": "https://x.test/cat.png"}}]},
        {"role": "developer", "content": "Use metric units."},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": ""}},
            {"id": "call.b", "type": "function", "function": {"name": "g", "arguments": "{\"x\": [1, 2]}"}}
        ]},
        {"role": "tool", "tool_call_id": "call_a", "content": "A"},
        {"role": "tool", "tool_call_id": "call.b", "content": [{"type": "text", "text": "B"}]},
        {"role": "user", "content": "thanks"}
    ]}));
    let body = request_body(&r).unwrap();
    assert_eq!(body["max_tokens"], DEFAULT_MAX_TOKENS);
    assert_eq!(body["system"], "Use metric units.");
    let msgs = body["messages"].as_array().unwrap();
    let roles: Vec<&str> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant", "user"]);
    assert_eq!(msgs[0]["content"], ".");
    assert_eq!(
        msgs[2]["content"],
        json!([
            {"type": "text", "text": "first"},
            {"type": "text", "text": "second"},
            {"type": "image", "source": {"type": "url", "url": "https://x.test/cat.png"}}
        ])
    );
    assert_eq!(
        msgs[3]["content"],
        json!([
            {"type": "tool_use", "id": "call_a", "name": "f", "input": {}},
            {"type": "tool_use", "id": "call_b", "name": "g", "input": {"x": [1, 2]}}
        ])
    );
    assert_eq!(
        msgs[4]["content"],
        json!([
            {"type": "tool_result", "tool_use_id": "call_a", "content": "A"},
            {"type": "tool_result", "tool_use_id": "call_b", "content": "B"},
            {"type": "text", "text": "thanks"}
        ])
    );
}

#[test]
fn sampling_limits_and_bad_input() {
    let body = request_body(&req(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "temperature": 1.7, "top_p": 0.5, "max_tokens": 99, "stop": "  "}),
    ))
    .unwrap();
    assert_eq!(body["temperature"], 1.0);
    assert!(body.get("top_p").is_none());
    assert_eq!(body["max_tokens"], 99);
    assert!(body.get("stop_sequences").is_none());
    let body = request_body(&req(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "top_p": 0.5, "stop": "END"}),
    ))
    .unwrap();
    assert_eq!(body["top_p"], 0.5);
    assert_eq!(body["stop_sequences"], json!(["END"]));

    let e = request_body(&req(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2}),
    ))
    .unwrap_err();
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    assert!(e.to_string().contains("`n`"));
    let e = request_body(&req(json!({"model": "m", "messages": [
        {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}
    ]})))
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("messages[0].tool_calls[0].function.arguments"),
        "{e}"
    );
    let e = request_body(&req(json!({"model": "m", "messages": [
        {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]}
    ]})))
    .unwrap_err();
    assert!(e.to_string().contains("messages[0].content[0].type"));
    // A system-only conversation becomes the prompt.
    let body = request_body(&req(
        json!({"model": "m", "messages": [{"role": "system", "content": "Say hi"}]}),
    ))
    .unwrap();
    assert!(body.get("system").is_none());
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": "Say hi"}])
    );
}

#[test]
fn tool_choice_mapping() {
    let base = json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "f"}}]});
    let with = |choice: Value, extra: Option<(&str, Value)>| {
        let mut v = base.clone();
        v["tool_choice"] = choice;
        if let Some((k, x)) = extra {
            v[k] = x;
        }
        request_body(&req(v)).unwrap()
    };
    assert_eq!(
        with(json!("required"), None)["tool_choice"],
        json!({"type": "any"})
    );
    assert_eq!(
        with(json!("none"), None)["tool_choice"],
        json!({"type": "none"})
    );
    assert_eq!(
        with(json!({"type": "function", "function": {"name": "f"}}), None)["tool_choice"],
        json!({"type": "tool", "name": "f"})
    );
    assert_eq!(
        with(json!("auto"), Some(("parallel_tool_calls", json!(false))))["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    let body = with(json!(null), None);
    assert_eq!(
        body["tools"][0]["input_schema"],
        json!({"type": "object", "properties": {}})
    );
    assert!(body.get("tool_choice").is_none());
    // tool_choice without tools is dropped: Anthropic refuses it.
    let body = request_body(&req(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "required"}),
    ))
    .unwrap();
    assert!(body.get("tool_choice").is_none());
}

#[test]
fn response_format_json() {
    let r = req(
        json!({"model": "m", "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "x"}],
        "response_format": {"type": "json_object"}}),
    );
    let body = request_body(&r).unwrap();
    assert_eq!(body["system"], format!("S\n\n{JSON_OBJECT_INSTRUCTION}"));

    let schema = json!({"type": "object", "properties": {"answer": {"type": "string"}}});
    let r = req(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}}),
    );
    let body = request_body(&r).unwrap();
    assert_eq!(body["tools"][0]["name"], JSON_TOOL);
    assert_eq!(body["tools"][0]["input_schema"], schema);
    assert_eq!(
        body["tool_choice"],
        json!({"type": "tool", "name": JSON_TOOL})
    );

    // The forced tool's input comes back as the text, with a plain stop.
    let a = Anthropic::new("http://x", Secret::new("k"));
    let resp = a
        .response(
            &r,
            br#"{"id":"msg_1","type":"message","role":"assistant","model":"m",
        "content":[{"type":"tool_use","id":"toolu_1","name":"json_output","input":{"answer":"42"}}],
        "stop_reason":"tool_use","usage":{"input_tokens":5,"output_tokens":3}}"#,
        )
        .unwrap();
    let c = &resp.choices[0];
    assert_eq!(c.message.content.as_deref(), Some(r#"{"answer":"42"}"#));
    assert!(c.message.tool_calls.is_none());
    assert_eq!(c.finish_reason.as_deref(), Some("stop"));

    let stream = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"m\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"json_output\",\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"answer\\\":\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"42\\\"}\"}}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":9}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let (chunks, res) = decode(stream, &[], true);
    res.unwrap();
    let text: String = chunks
        .iter()
        .filter_map(|c| c.choices.first()?.delta.content.clone())
        .collect();
    assert_eq!(text, r#"{"answer":"42"}"#);
    assert!(
        chunks
            .iter()
            .all(|c| c.choices.iter().all(|ch| ch.delta.tool_calls.is_none()))
    );
    let finish: Vec<_> = chunks
        .iter()
        .filter_map(|c| c.choices.first()?.finish_reason.clone())
        .collect();
    assert_eq!(finish, ["stop"]);
}

/// The response of Anthropic's Messages API reference.
#[test]
fn golden_response() {
    let a = Anthropic::new("http://x", Secret::new("k"));
    let r = req(
        json!({"model": "claude-sonnet-4-5-20250929", "messages": [{"role": "user", "content": "x"}]}),
    );
    let resp = a
        .response(
            &r,
            br#"{
  "id": "msg_01XYZ", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
  "content": [
{"type": "text", "text": "Checking."},
{"type": "tool_use", "id": "toolu_01B", "name": "get_weather", "input": {"city": "Oslo"}}
  ],
  "stop_reason": "tool_use", "stop_sequence": null,
  "usage": {"input_tokens": 412, "output_tokens": 38, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "service_tier": "standard"}
}"#,
        )
        .unwrap();
    let v = serde_json::to_value(&resp).unwrap();
    assert_eq!(v["id"], "msg_01XYZ");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "claude-sonnet-4-5-20250929");
    assert_eq!(
        v["choices"],
        json!([{
            "index": 0,
            "message": {"role": "assistant", "content": "Checking.", "refusal": null,
                "tool_calls": [{"id": "toolu_01B", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
            "logprobs": null,
            "finish_reason": "tool_calls"
        }])
    );
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 412, "completion_tokens": 38, "total_tokens": 450,
               "prompt_tokens_details": {"cached_tokens": 0}})
    );
}

#[test]
fn stop_reasons_and_cache_usage() {
    for (reason, finish) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ] {
        assert_eq!(finish_reason(reason), finish);
    }
    let msg = WireMessage {
        content: vec![
            ContentBlock::Thinking {
                thinking: "hmm".into(),
                signature: "sig".into(),
            },
            ContentBlock::Text { text: "Hi".into() },
        ],
        stop_reason: Some("end_turn".into()),
        usage: Some(WireUsage {
            input_tokens: Some(10),
            output_tokens: Some(2),
            cache_creation_input_tokens: Some(5),
            cache_read_input_tokens: Some(100),
            cache_creation: None,
        }),
        ..WireMessage::default()
    };
    let resp = translate_response(msg, false);
    let u = resp.usage.unwrap();
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens),
        (115, 2, 117)
    );
    assert_eq!(u.cached_tokens(), 100);
    assert_eq!(resp.choices[0].message.content.as_deref(), Some("Hi"));
    assert_eq!(
        resp.choices[0].message.reasoning_content.as_deref(),
        Some("hmm")
    );
    assert_eq!(
        resp.choices[0].message.thinking_blocks,
        Some(vec![crate::types::ThinkingBlock::thinking(
            "hmm",
            Some("sig".into())
        )])
    );
}

/// The stream of Anthropic's streaming Messages documentation.
const STREAM: &str = concat!(
    "event: message_start\n",
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n",
    "event: content_block_start\n",
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: ping\n",
    "data: {\"type\":\"ping\"}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Héllo\"}}\n\n",
    "event: content_block_stop\n",
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: content_block_start\n",
    "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Os\"}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"lo\\\"}\"}}\n\n",
    "event: content_block_stop\n",
    "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
    "event: message_delta\n",
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":31}}\n\n",
    "event: message_stop\n",
    "data: {\"type\":\"message_stop\"}\n\n",
);

fn check_golden_stream(chunks: &[ChatChunk]) {
    assert_eq!(
        chunks[0].choices[0].delta.role.as_deref(),
        Some("assistant")
    );
    assert!(
        chunks
            .iter()
            .all(|c| c.id == "msg_01" && c.model == "claude-sonnet-4-5-20250929")
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c.choices.first()?.delta.content.clone())
        .collect();
    assert_eq!(text, "Héllo");
    let calls: Vec<&ToolCallDelta> = chunks
        .iter()
        .filter_map(|c| c.choices.first()?.delta.tool_calls.as_ref())
        .flatten()
        .collect();
    assert_eq!(calls[0].id.as_deref(), Some("toolu_01"));
    assert_eq!(calls[0].kind.as_deref(), Some("function"));
    assert_eq!(
        calls[0].function.as_ref().unwrap().name.as_deref(),
        Some("get_weather")
    );
    assert!(calls.iter().all(|c| c.index == 0));
    let args: String = calls
        .iter()
        .filter_map(|c| c.function.as_ref()?.arguments.clone())
        .collect();
    assert_eq!(args, "{\"city\": \"Oslo\"}");
    // No empty fragment is forwarded beyond the opening one.
    assert_eq!(calls.len(), 3);
    let finishes: Vec<_> = chunks
        .iter()
        .filter_map(|c| c.choices.first()?.finish_reason.clone())
        .collect();
    assert_eq!(finishes, ["tool_calls"]);
    let last = chunks.last().unwrap();
    assert!(last.is_usage_only());
    let u = last.usage.as_ref().unwrap();
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens),
        (25, 31, 56)
    );
    assert!(chunks[..chunks.len() - 1].iter().all(|c| c.usage.is_none()));
}

#[test]
fn golden_stream_in_awkward_pieces() {
    let (chunks, res) = decode(STREAM, &[], false);
    res.unwrap();
    check_golden_stream(&chunks);
    // Every single cut (inside UTF-8, inside JSON strings, between \r and \n) and CRLF.
    let crlf = STREAM.replace('\n', "\r\n");
    for raw in [STREAM.to_owned(), crlf] {
        for cut in 1..raw.len() {
            let (chunks, res) = decode(&raw, &[cut, cut + 7, cut + 300], false);
            res.unwrap();
            check_golden_stream(&chunks);
        }
    }
}

#[test]
fn stream_errors_and_truncation() {
    let start = &STREAM[..STREAM.find("event: content_block_start").unwrap()];
    let with_error = format!(
        "{start}event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}}}\n\n"
    );
    let (chunks, res) = decode(&with_error, &[], false);
    // Nothing went out before the error, so it can still fail over.
    assert!(chunks.is_empty());
    let e = res.unwrap_err();
    assert!(e.is_retryable());
    assert!(e.to_string().contains("Overloaded"));

    let cut = &STREAM[..STREAM.find("event: message_delta").unwrap()];
    let (chunks, res) = decode(cut, &[], false);
    assert!(!chunks.is_empty());
    assert!(matches!(res, Err(GatewayError::Connect { .. })));

    // A tool call without input fragments gets `{}` as its arguments.
    let no_args = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"m\",\"usage\":{\"input_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"now\",\"input\":{}}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":4}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let (chunks, res) = decode(no_args, &[], false);
    res.unwrap();
    let args: String = chunks
        .iter()
        .filter_map(|c| c.choices.first()?.delta.tool_calls.as_ref())
        .flatten()
        .filter_map(|c| c.function.as_ref()?.arguments.clone())
        .collect();
    assert_eq!(args, "{}");
}

fn err(status: u16, headers: &[(&str, &str)], body: &str) -> GatewayError {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    map_error(StatusCode::from_u16(status).unwrap(), &h, body.as_bytes())
}

#[test]
fn error_mapping() {
    let e = err(
        429,
        &[("retry-after", "7")],
        r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"},"request_id":"req_1"}"#,
    );
    assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    assert!(e.is_retryable());

    let e = err(
        529,
        &[],
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    );
    assert!(
        matches!(&e, GatewayError::Upstream { status, .. } if *status == StatusCode::SERVICE_UNAVAILABLE)
    );
    assert!(e.is_retryable());

    let e = err(
        400,
        &[],
        r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#,
    );
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    assert!(!e.is_retryable());
    assert!(e.envelope()["error"]["code"] == "context_length_exceeded");
    assert!(e.to_string().contains("prompt is too long"));

    let e = err(
        401,
        &[],
        r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
    );
    assert!(e.is_retryable());
    assert_eq!(e.status(), StatusCode::BAD_GATEWAY);

    let e = err(
        400,
        &[],
        r#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API."}}"#,
    );
    assert!(e.is_retryable());

    let e = err(
        404,
        &[],
        r#"{"type":"error","error":{"type":"not_found_error","message":"model: claude-9"}}"#,
    );
    assert_eq!(e.status(), StatusCode::NOT_FOUND);
    assert!(!e.is_retryable());

    let e = err(502, &[], "<html>bad gateway</html>");
    assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
    assert!(e.is_retryable());
}

#[test]
fn rate_limit_reset_headers_are_a_fallback() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_755_780_000);
    let mut h = HeaderMap::new();
    h.insert(
        "anthropic-ratelimit-requests-remaining",
        "0".parse().unwrap(),
    );
    h.insert(
        "anthropic-ratelimit-requests-reset",
        "2025-08-21T12:40:30Z".parse().unwrap(),
    );
    h.insert(
        "anthropic-ratelimit-tokens-remaining",
        "100".parse().unwrap(),
    );
    h.insert(
        "anthropic-ratelimit-tokens-reset",
        "2025-08-21T13:40:00Z".parse().unwrap(),
    );
    assert_eq!(ratelimit_reset(&h, now), Some(Duration::from_secs(30)));
    assert_eq!(
        rfc3339("2025-08-21T12:40:00Z"),
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_755_780_000))
    );
    assert_eq!(
        rfc3339("2025-08-21T14:40:00.5+02:00"),
        Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_755_780_000_500))
    );
    assert_eq!(
        rfc3339("1970-01-01T00:00:00Z"),
        Some(SystemTime::UNIX_EPOCH)
    );
    for bad in [
        "",
        "2025-13-01T00:00:00Z",
        "2025-08-21 12:40",
        "yesterday",
        "2025-08-21T12:40:00",
    ] {
        assert_eq!(rfc3339(bad), None, "{bad}");
    }
}

#[test]
fn pass_through_keeps_every_event_in_order_and_the_client_body() {
    let mut dec = AnthropicDecoder::new(false);
    dec.native = true;
    let (chunks, res) = crate::providers::decode_pieces(
        Framing::Sse,
        &mut dec,
        &crate::providers::cut(STREAM.as_bytes(), &[7, 101, 333]),
    );
    res.unwrap();
    let relayed: Vec<String> = chunks
        .iter()
        .filter_map(|c| c.extra.get(NATIVE_KEY))
        .map(|n| {
            format!(
                "event: {}\ndata: {}",
                n["event"].as_str().unwrap(),
                n["data"].as_str().unwrap()
            )
        })
        .collect();
    let sent: Vec<&str> = STREAM.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(relayed, sent);
    // The canonical usage still comes last, for the cost layer.
    assert!(chunks.last().unwrap().is_usage_only());

    let mut r =
        req(json!({"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "x"}]}));
    let raw = br#"{"model":"anthropic/claude-haiku-4-5","max_tokens":9,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","data":"d"}}]}],"thinking":{"type":"enabled","budget_tokens":5}}"#;
    r.ctx.endpoint = crate::types::Api::Messages;
    r.ctx.native_body = Some(bytes::Bytes::from_static(raw));
    let up = Anthropic::new("http://a", Secret::new("k"))
        .request(&r)
        .unwrap();
    use futures_util::FutureExt as _;
    let bytes = http_body_util::BodyExt::collect(up.into_body())
        .now_or_never()
        .unwrap()
        .unwrap()
        .to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    let mut expected: Value = serde_json::from_slice(raw).unwrap();
    expected["model"] = json!("claude-haiku-4-5");
    assert_eq!(body, expected);
}

/// Extended thinking streamed as Anthropic's extended thinking documentation shows it, with the
/// signature arriving in a `signature_delta` just before the block stops.
const THINKING_STREAM: &str = concat!(
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_t\",\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Need the \"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"weather.\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQBCgIYAhIM\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"redacted_thinking\",\"data\":\"ENC\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_9\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\":\\\"Oslo\\\"}\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":2}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":40}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
);

#[test]
fn streamed_thinking_keeps_text_signature_and_redacted_blocks() {
    let (chunks, end) = decode(THINKING_STREAM, &[100, 900], false);
    assert!(end.is_ok());
    let reasoning: String = chunks
        .iter()
        .filter_map(|c| c.choices.first()?.delta.reasoning_content.clone())
        .collect();
    assert_eq!(reasoning, "Need the weather.");
    let blocks: Vec<crate::types::ThinkingBlock> = chunks
        .iter()
        .filter_map(|c| c.choices.first()?.delta.thinking_blocks.clone())
        .flatten()
        .collect();
    assert_eq!(
        blocks,
        vec![
            crate::types::ThinkingBlock::thinking("Need the weather.", Some("EqQBCgIYAhIM".into())),
            crate::types::ThinkingBlock::redacted("ENC"),
        ]
    );
}

#[test]
fn thinking_blocks_go_back_first_in_the_assistant_turn() {
    let req: ChatRequest = serde_json::from_value(json!({
        "model": "claude-sonnet-4-5",
        "messages": [
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": null,
             "thinking_blocks": [{"type": "thinking", "thinking": "Need it.", "signature": "SIG"},
                                 {"type": "redacted_thinking", "data": "ENC"}],
             "tool_calls": [{"id": "toolu_9", "type": "function",
                             "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
            {"role": "tool", "tool_call_id": "toolu_9", "content": "14C"}
        ]
    }))
    .unwrap();
    let body = request_body(&req).unwrap();
    assert_eq!(
        body["messages"][1]["content"],
        json!([
            {"type": "thinking", "thinking": "Need it.", "signature": "SIG"},
            {"type": "redacted_thinking", "data": "ENC"},
            {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Oslo"}}
        ])
    );
}

#[test]
fn reasoning_effort_maps_to_a_thinking_budget_below_max_tokens() {
    use crate::types::ReasoningEffort as E;
    let budgets: Vec<Option<u64>> = [E::Minimal, E::Low, E::Medium, E::High, E::Xhigh]
        .into_iter()
        .map(thinking_budget)
        .collect();
    assert!(budgets.windows(2).all(|w| w[0] <= w[1]), "monotonic");
    assert!(budgets.iter().all(|b| b.is_some_and(|b| b >= 1024)));
    assert_eq!(thinking_budget(E::None), None);
    for (effort, cap, budget, max) in [
        (E::Low, 4096, 1024, 4096),
        (E::High, 32000, 4096, 32000),
        (E::High, 2000, 1999, 2000),
        (E::Medium, 500, 1024, 1524),
    ] {
        let (t, m) = effort_thinking(effort, cap).unwrap();
        assert_eq!(t, json!({"type": "enabled", "budget_tokens": budget}));
        assert_eq!(m, max);
        assert!(budget < m && budget >= MIN_THINKING_BUDGET);
    }
    let mut req: ChatRequest = serde_json::from_value(json!({
        "model": "claude-sonnet-4-5", "max_tokens": 8000, "temperature": 0.2, "top_k": 5,
        "reasoning_effort": "medium",
        "messages": [{"role": "user", "content": "Hi"}]
    }))
    .unwrap();
    let body = request_body(&req).unwrap();
    assert_eq!(
        body["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
    );
    assert_eq!(body["max_tokens"], 8000);
    // Extended thinking refuses temperature and top_k.
    assert!(body.get("temperature").is_none() && body.get("top_k").is_none());
    req.reasoning_effort = Some(E::None);
    let body = request_body(&req).unwrap();
    assert_eq!(body["thinking"], json!({"type": "disabled"}));
    assert_eq!(body["temperature"], 0.2);
}
