use serde_json::Value;

use super::stream::*;
use super::*;
use crate::providers::Framing;
use crate::types::{ChatChunk, ToolCallDelta, Usage};

fn adapter() -> Cohere {
    Cohere::new("http://cohere.test/", Secret::new("co-test-key"))
}

fn req(v: Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

/// The OpenAI request that corresponds to the request of Cohere's v2 chat API reference.
fn documented_request() -> ChatRequest {
    req(json!({
        "model": "command-r-plus-08-2024",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": [
                {"type": "text", "text": "Describe this."},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR...", "detail": "auto"}}
            ]},
            {"role": "assistant", "content": null,
             "tool_calls": [{"id": "get_weather_abc", "type": "function",
                             "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
            {"role": "tool", "tool_call_id": "get_weather_abc", "content": "{\"temp\":\"14C\"}"}
        ],
        "max_completion_tokens": 512,
        "temperature": 0.3,
        "top_p": 0.75,
        "stop": ["END"],
        "seed": 7,
        "n": 1,
        "logit_bias": {"50256": -100},
        "parallel_tool_calls": true,
        "user": "u1",
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
        "tool_choice": "required",
        "response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}}},
        "stream": false
    }))
}

#[test]
fn request_matches_the_documented_example() {
    let body = adapter().body(&documented_request()).unwrap();
    // Cohere's v2 chat API reference request without the Cohere-only fields an OpenAI request cannot carry.
    let expected = json!({
        "model": "command-r-plus-08-2024",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": [
                {"type": "text", "text": "Describe this."},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR...", "detail": "auto"}}
            ]},
            {"role": "assistant",
             "tool_calls": [{"id": "get_weather_abc", "type": "function",
                             "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
            {"role": "tool", "tool_call_id": "get_weather_abc",
             "content": [{"type": "document", "document": {"data": "{\"temp\":\"14C\"}"}}]}
        ],
        "max_tokens": 512,
        "temperature": 0.3,
        "p": 0.75,
        "stop_sequences": ["END"],
        "seed": 7,
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
        "tool_choice": "REQUIRED",
        "response_format": {"type": "json_object", "json_schema": {"type": "object"}},
        "stream": false
    });
    assert_eq!(body, expected);
    let up = adapter().request(&documented_request()).unwrap();
    assert_eq!(up.uri(), "http://cohere.test/v2/chat");
    assert_eq!(up.headers()["authorization"], "Bearer co-test-key");
}

#[test]
fn tool_choice_forms_and_clamped_sampling() {
    let base = json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "a"}}, {"type": "function", "function": {"name": "b"}}]});
    let with = |extra: Value| {
        let mut v = base.clone();
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        adapter().body(&req(v)).unwrap()
    };
    let b = with(json!({"tool_choice": "auto"}));
    assert!(b.get("tool_choice").is_none());
    assert_eq!(b["tools"].as_array().unwrap().len(), 2);
    assert_eq!(b["tools"][0]["function"]["parameters"]["type"], "object");
    assert_eq!(with(json!({"tool_choice": "none"}))["tool_choice"], "NONE");
    let b = with(json!({"tool_choice": {"type": "function", "function": {"name": "b"}}}));
    assert_eq!(b["tool_choice"], "REQUIRED");
    assert_eq!(
        b["tools"],
        json!([{"type": "function", "function": {"name": "b", "parameters": {"type": "object", "properties": {}}}}])
    );
    let mut bad = base.clone();
    bad["tool_choice"] = json!({"type": "function", "function": {"name": "zzz"}});
    assert!(adapter().body(&req(bad)).is_err());
    let b = with(
        json!({"top_p": 1.0, "presence_penalty": -1.5, "frequency_penalty": 1.8, "stop": "X", "max_tokens": 9, "stream": true}),
    );
    assert_eq!(
        (&b["p"], &b["presence_penalty"], &b["frequency_penalty"]),
        (&json!(0.99), &json!(0.0), &json!(1.0))
    );
    assert_eq!(b["stop_sequences"], json!(["X"]));
    assert_eq!((&b["max_tokens"], &b["stream"]), (&json!(9), &json!(true)));
    let b = with(json!({"response_format": {"type": "json_object"}}));
    assert_eq!(b["response_format"], json!({"type": "json_object"}));
}

#[test]
fn unsupported_parts_are_rejected_naming_the_field() {
    let r = req(
        json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}]}),
    );
    let e = adapter().body(&r).unwrap_err();
    assert!(e.to_string().contains("messages[0].content[0].type"), "{e}");
}

#[test]
fn documented_tool_call_response() {
    let r = documented_request();
    let body = br#"{
      "id": "c14c80c3-18eb-4519-9460-6c92edd8cfb4",
      "finish_reason": "TOOL_CALL",
      "message": {"role": "assistant",
        "tool_plan": "I will look up the weather.",
        "tool_calls": [{"id": "get_weather_xyz", "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}],
        "content": [{"type": "text", "text": ""}],
        "citations": []},
      "usage": {"billed_units": {"input_tokens": 31, "output_tokens": 12},
                "tokens": {"input_tokens": 702, "output_tokens": 40},
                "cached_tokens": 0}
    }"#;
    let resp = adapter().response(&r, body).unwrap();
    assert_eq!(resp.id, "c14c80c3-18eb-4519-9460-6c92edd8cfb4");
    assert_eq!(resp.model, "command-r-plus-08-2024");
    let c = &resp.choices[0];
    assert_eq!(c.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(c.message.content, None);
    let calls = c.message.tool_calls.as_ref().unwrap();
    assert_eq!(calls[0].id, "get_weather_xyz");
    assert_eq!(calls[0].function.name, "get_weather");
    assert_eq!(calls[0].function.arguments, "{\"city\":\"Oslo\"}");
    assert_eq!(resp.usage, Some(Usage::new(31, 12)));
}

#[test]
fn text_responses_finish_reasons_and_usage_fallback() {
    let r = documented_request();
    let parse = |finish: &str, usage: Value| {
        let body = json!({"id": "x", "finish_reason": finish,
            "message": {"role": "assistant", "content": [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}]},
            "usage": usage});
        adapter().response(&r, body.to_string().as_bytes())
    };
    let resp = parse(
        "COMPLETE",
        json!({"tokens": {"input_tokens": 7, "output_tokens": 2}}),
    )
    .unwrap();
    assert_eq!(resp.choices[0].message.content.as_deref(), Some("Hello"));
    assert_eq!(resp.choices[0].finish_reason.as_deref(), Some("stop"));
    assert_eq!(resp.usage, Some(Usage::new(7, 2)));
    for (finish, ours) in [("STOP_SEQUENCE", "stop"), ("MAX_TOKENS", "length")] {
        let resp = parse(finish, Value::Null).unwrap();
        assert_eq!(resp.choices[0].finish_reason.as_deref(), Some(ours));
        assert_eq!(resp.usage, None);
    }
    let e = parse("ERROR", Value::Null).unwrap_err();
    assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
    assert!(e.is_retryable());
    assert!(adapter().response(&r, b"<html>").is_err());
}

fn decode(pieces: &[&[u8]]) -> (Vec<ChatChunk>, Result<(), GatewayError>) {
    let mut d = CohereDecoder::new("command-r-08-2024");
    crate::providers::decode_pieces(Framing::Sse, &mut d, pieces)
}

/// The stream of Cohere's v2 chat streaming reference, plus a UTF-8 character to cut through.
const DOCUMENTED_STREAM: &str = concat!(
    "data: {\"type\":\"message-start\",\"id\":\"abc\",\"delta\":{\"message\":{\"role\":\"assistant\"}}}\n\n",
    "data: {\"type\":\"content-start\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"type\":\"text\",\"text\":\"\"}}}}\n\n",
    "data: {\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"text\":\"Hi\"}}}}\n\n",
    "data: {\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"text\":\" thér\"}}}}\r\n\r\n",
    ": keep-alive\n\n",
    "data: {\"type\":\"content-end\",\"index\":0}\n\n",
    "data: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"COMPLETE\",\"usage\":{\"billed_units\":{\"input_tokens\":5,\"output_tokens\":1},\"tokens\":{\"input_tokens\":71,\"output_tokens\":1}}}}\n\n",
);

#[test]
fn documented_stream_in_awkward_pieces() {
    let raw = DOCUMENTED_STREAM.as_bytes();
    let cut = DOCUMENTED_STREAM.find("é").unwrap() + 1; // inside 'é'
    let whole = decode(&[raw]);
    for pieces in [
        vec![&raw[..3], &raw[3..cut], &raw[cut..cut + 7], &raw[cut + 7..]],
        raw.chunks(1).collect::<Vec<_>>(),
    ] {
        let (chunks, end) = decode(&pieces);
        end.unwrap();
        // `created` is per stream: compare the rest.
        let says = |c: &[ChatChunk]| -> Vec<(String, Value, Option<Usage>)> {
            c.iter()
                .map(|c| {
                    (
                        c.id.clone(),
                        serde_json::to_value(&c.choices).unwrap(),
                        c.usage.clone(),
                    )
                })
                .collect()
        };
        assert_eq!(says(&chunks), says(&whole.0));
    }
    let chunks = whole.0;
    assert_eq!(
        chunks[0].choices[0].delta.role.as_deref(),
        Some("assistant")
    );
    assert!(chunks.iter().all(|c| c.id == "abc"));
    let text: String = chunks
        .iter()
        .filter_map(|c| c.choices.first()?.delta.content.clone())
        .collect();
    assert_eq!(text, "Hi thér");
    let n = chunks.len();
    assert_eq!(
        chunks[n - 2].choices[0].finish_reason.as_deref(),
        Some("stop")
    );
    assert!(chunks[n - 1].is_usage_only());
    assert_eq!(chunks[n - 1].usage, Some(Usage::new(5, 1)));
    assert_eq!(chunks.iter().filter(|c| c.usage.is_some()).count(), 1);
}

#[test]
fn streamed_tool_calls_with_fragments_and_two_calls() {
    let events = [
        json!({"type": "message-start", "id": "t1", "delta": {"message": {"role": "assistant"}}}),
        json!({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will"}}}),
        json!({"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}}}}}),
        json!({"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": "{\"city\":"}}}}}),
        json!({"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": "\"Oslo\"}"}}}}}),
        json!({"type": "tool-call-end", "index": 0}),
        json!({"type": "tool-call-start", "index": 1, "delta": {"message": {"tool_calls": {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}}}}),
        json!({"type": "tool-call-end", "index": 1}),
        json!({"type": "message-end", "delta": {"finish_reason": "TOOL_CALL", "usage": {"billed_units": {"input_tokens": 20, "output_tokens": 9}}}}),
    ];
    let mut raw: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    raw.push_str("data: [DONE]\n\n");
    let (chunks, end) = decode(&raw.as_bytes().chunks(17).collect::<Vec<_>>());
    end.unwrap();
    let calls: Vec<&ToolCallDelta> = chunks
        .iter()
        .filter_map(|c| c.choices.first()?.delta.tool_calls.as_ref())
        .flatten()
        .collect();
    assert_eq!(calls.len(), 4);
    assert_eq!(
        (calls[0].index, calls[0].id.as_deref()),
        (0, Some("call_a"))
    );
    let args: String = calls
        .iter()
        .filter(|c| c.index == 0)
        .filter_map(|c| c.function.as_ref()?.arguments.clone())
        .collect();
    assert_eq!(args, "{\"city\":\"Oslo\"}");
    assert_eq!(
        (calls[3].index, calls[3].id.as_deref()),
        (1, Some("call_b"))
    );
    let finish = chunks
        .iter()
        .find_map(|c| c.choices.first()?.finish_reason.clone());
    assert_eq!(finish.as_deref(), Some("tool_calls"));
}

#[test]
fn error_finish_and_truncation_are_errors() {
    let raw = concat!(
        "data: {\"type\":\"message-start\",\"id\":\"e\",\"delta\":{\"message\":{\"role\":\"assistant\"}}}\n\n",
        "data: {\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"text\":\"par\"}}}}\n\n",
        "data: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"ERROR\",\"error\":\"internal failure\"}}\n\n",
    );
    let (chunks, end) = decode(&[raw.as_bytes()]);
    assert_eq!(chunks.len(), 2);
    let e = end.unwrap_err();
    assert!(e.to_string().contains("internal failure"), "{e}");
    assert!(e.is_retryable());
    let cut = raw.find("data: {\"type\":\"message-end").unwrap();
    let (_, end) = decode(&[&raw.as_bytes()[..cut]]);
    assert!(matches!(end, Err(GatewayError::Connect { .. })));
}

#[test]
fn error_bodies() {
    let a = adapter();
    let h = http::HeaderMap::new();
    let e = a.error(
        StatusCode::UNAUTHORIZED,
        &h,
        br#"{"message":"invalid api token"}"#,
    );
    assert!(e.to_string().contains("invalid api token"));
    assert!(e.is_retryable());
    assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
    let mut h429 = http::HeaderMap::new();
    h429.insert("retry-after", "12".parse().unwrap());
    let e = a.error(
        StatusCode::TOO_MANY_REQUESTS,
        &h429,
        br#"{"id":"x","message":"trial key limit"}"#,
    );
    assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(12)));
    assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
    let e = a.error(
        StatusCode::from_u16(498).unwrap(),
        &h,
        br#"{"message":"blocked"}"#,
    );
    assert!(!e.is_retryable());
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    let e = a.error(
        StatusCode::from_u16(499).unwrap(),
        &h,
        br#"{"message":"cancelled"}"#,
    );
    assert!(!e.is_retryable());
    let e = a.error(
        StatusCode::BAD_REQUEST,
        &h,
        br#"{"message":"invalid request: p must be < 1"}"#,
    );
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    assert!(!e.is_retryable());
}
