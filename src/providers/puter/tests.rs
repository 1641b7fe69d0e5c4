use serde_json::{Value, json};

use super::*;
use crate::types::{ChatChunk, Usage};

fn adapter() -> Puter {
    Puter::new("http://puter.test/", Secret::new("puter-test-token"))
}

fn req(v: Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

#[test]
fn drivers_call_envelope_args_and_token() {
    let r = req(json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "developer", "content": "Be terse."},
            {"role": "user", "content": [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": "https://x/cat.png"}}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "42"}
        ],
        "max_tokens": 100, "temperature": 0.2, "top_p": 0.5, "stop": ["x"], "n": 1,
        "response_format": {"type": "json_object"}, "parallel_tool_calls": false,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": "auto"
    }));
    let a = adapter();
    let body = a.body(&r).unwrap();
    assert_eq!(body["interface"], "puter-chat-completion");
    assert_eq!(body["driver"], "ai-chat");
    assert_eq!(body["method"], "complete");
    assert_eq!(body["auth_token"], "puter-test-token");
    let args = &body["args"];
    assert_eq!(args["model"], "gpt-4o-mini");
    assert_eq!(args["stream"], false);
    assert_eq!(args["response"], json!({"normalize": true}));
    assert_eq!(
        (&args["max_tokens"], &args["temperature"], &args["top_p"]),
        (&json!(100), &json!(0.2), &json!(0.5))
    );
    assert_eq!(args["messages"][0]["role"], "system");
    assert_eq!(
        args["messages"][1]["content"][1]["image_url"]["url"],
        "https://x/cat.png"
    );
    assert_eq!(args["messages"][2]["content"], "");
    assert_eq!(args["messages"][2]["tool_calls"][0]["id"], "call_1");
    assert_eq!(args["messages"][3]["tool_call_id"], "call_1");
    assert_eq!(args["tools"][0]["function"]["name"], "f");
    assert_eq!(
        (&args["tool_choice"], &args["parallel_tool_calls"]),
        (&json!("auto"), &json!(false))
    );
    for absent in ["stop", "n", "response_format"] {
        assert!(args.get(absent).is_none(), "{absent}");
    }
    let up = a.request(&r).unwrap();
    assert_eq!(up.uri(), "http://puter.test/drivers/call");
    assert_eq!(up.headers()["authorization"], "Bearer puter-test-token");
}

#[test]
fn documented_v2_response() {
    let r = req(json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}));
    let body = br#"{"success": true,
     "service": {"name": "ai-chat"},
     "metadata": {"service_used": "openai-completion", "providerUsed": "gpt-4o-mini"},
     "result": {
       "index": 0,
       "message": {"role": "assistant", "content": "Hello!", "refusal": null},
       "finish_reason": "stop",
       "logprobs": null,
       "usage": {"prompt_tokens": 9, "completion_tokens": 2, "cached_tokens": 0, "usd_cents": 0.0012},
       "via_ai_chat_service": true}}"#;
    let resp = adapter().response(&r, body).unwrap();
    assert_eq!(resp.model, "gpt-4o-mini");
    assert!(resp.id.starts_with("chatcmpl-"));
    assert_eq!(resp.choices[0].message.content.as_deref(), Some("Hello!"));
    assert_eq!(resp.choices[0].finish_reason.as_deref(), Some("stop"));
    assert_eq!(resp.usage, Some(Usage::new(9, 2)));
}

#[test]
fn normalised_and_claude_shaped_results_with_tool_use() {
    let r = req(
        json!({"model": "openrouter:anthropic/claude-3.5-sonnet", "messages": [{"role": "user", "content": "hi"}]}),
    );
    let body = json!({"success": true, "result": {
        "message": {"role": "assistant", "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}]},
        "finish_reason": "stop", "normalized": true,
        "usage": {"input_tokens": 20, "output_tokens": 8, "cache_read_input_tokens": 5}}});
    let resp = adapter().response(&r, body.to_string().as_bytes()).unwrap();
    let c = &resp.choices[0];
    assert_eq!(c.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(c.message.content.as_deref(), Some("Let me check."));
    let call = &c.message.tool_calls.as_ref().unwrap()[0];
    assert_eq!(
        (call.id.as_str(), call.function.name.as_str()),
        ("toolu_1", "get_weather")
    );
    assert_eq!(
        serde_json::from_str::<Value>(&call.function.arguments).unwrap(),
        json!({"city": "Oslo"})
    );
    let u = resp.usage.unwrap();
    assert_eq!((u.prompt_tokens, u.completion_tokens), (25, 8));
    assert_eq!(u.cached_tokens(), 5);
}

#[test]
fn legacy_v1_failure_with_200() {
    let a = adapter();
    let body = br#"{"success": false, "error": {"code": "insufficient_funds", "message": "Not enough funds"}}"#;
    let e = a.success_is_error(body).unwrap();
    assert!(
        matches!(e, GatewayError::Upstream { status, .. } if status == StatusCode::PAYMENT_REQUIRED)
    );
    assert!(e.is_retryable());
    assert!(e.to_string().contains("Not enough funds"));
    let e = a
        .success_is_error(
            br#"{"success": false, "error": {"code": "whatever", "message": "boom"}}"#,
        )
        .unwrap();
    assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
    assert!(
        a.success_is_error(br#"{"success": true, "result": {}}"#)
            .is_none()
    );
}

#[test]
fn v2_error_bodies() {
    let a = adapter();
    let h = http::HeaderMap::new();
    let e = a.error(StatusCode::BAD_REQUEST, &h, br#"{"error":"AI provider unavailable","message":"AI provider unavailable","code":"upstream_provider_unavailable"}"#);
    assert!(e.is_retryable());
    assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        e.envelope()["error"]["code"],
        "upstream_provider_unavailable"
    );
    let e = a.error(StatusCode::BAD_REQUEST, &h, br#"{"error":"Model not found: gpt-9","message":"Model not found: gpt-9","code":"bad_request"}"#);
    assert!(!e.is_retryable());
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    assert!(e.to_string().contains("Model not found: gpt-9"));
    let e = a.error(StatusCode::PAYMENT_REQUIRED, &h, br#"{"error":"No usage left for request.","message":"No usage left for request.","code":"insufficient_funds"}"#);
    assert!(e.is_retryable());
    assert!(e.to_string().contains("out of credits"));
    let e = a.error(StatusCode::TOO_MANY_REQUESTS, &h, br#"{"error":"Too many requests","message":"Too many requests","code":"too_many_requests"}"#);
    assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(e.retry_after(), Some(RATE_WINDOW));
    let mut h5 = http::HeaderMap::new();
    h5.insert("retry-after", "5".parse().unwrap());
    let e = a.error(
        StatusCode::SERVICE_UNAVAILABLE,
        &h5,
        br#"{"error":"db","message":"db","code":"db_unavailable"}"#,
    );
    assert_eq!(e.retry_after(), Some(Duration::from_secs(5)));
    let e = a.error(StatusCode::UNAUTHORIZED, &h, br#"{"error":"Authentication required","message":"Authentication required","code":"token_auth_failed"}"#);
    assert!(e.is_retryable() && e.to_string().contains(ENV_TOKEN));
    let e = a.error(StatusCode::BAD_GATEWAY, &h, b"<html>bad gateway</html>");
    assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
}

fn decode(pieces: &[&[u8]]) -> (Vec<ChatChunk>, Result<(), GatewayError>) {
    let a = adapter();
    let r = req(
        json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );
    crate::providers::decode_pieces(a.framing(), &mut a.decoder(&r), pieces)
}

const DOCUMENTED_STREAM: &str = concat!(
    "{\"type\":\"text\",\"text\":\"Hél\"}\n",
    "{\"type\":\"text\",\"text\":\"lo\"}\r\n",
    "{\"type\":\"extra_content\",\"extra_content\":{}}\n",
    "{\"type\":\"tool_use\",\"id\":\"call_abc\",\"name\":\"get_weather\",\"input\":{\"city\":\"Oslo\"},\"text\":\"\"}\n",
    "{\"type\":\"usage\",\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"cached_tokens\":0,\"usd_cents\":0.0012}}\n",
);

#[test]
fn documented_stream_in_awkward_pieces() {
    let raw = DOCUMENTED_STREAM.as_bytes();
    let cut = DOCUMENTED_STREAM.find('é').unwrap() + 1;
    // Ids and timestamps are per stream: compare what the chunks say.
    let says = |chunks: &[ChatChunk]| -> Vec<(Value, Option<Usage>)> {
        chunks
            .iter()
            .map(|c| (serde_json::to_value(&c.choices).unwrap(), c.usage.clone()))
            .collect()
    };
    let (whole, end) = decode(&[raw]);
    end.unwrap();
    let (pieces, end) = decode(&[&raw[..cut], &raw[cut..cut + 30], &raw[cut + 30..]]);
    end.unwrap();
    assert_eq!(says(&pieces), says(&whole));
    let (bytes, _) = decode(&raw.chunks(1).collect::<Vec<_>>());
    assert_eq!(says(&bytes), says(&whole));
    let text: String = whole
        .iter()
        .filter_map(|c| c.choices.first()?.delta.content.clone())
        .collect();
    assert_eq!(text, "Héllo");
    let call = whole
        .iter()
        .find_map(|c| c.choices.first()?.delta.tool_calls.clone())
        .unwrap();
    assert_eq!(call[0].id.as_deref(), Some("call_abc"));
    assert_eq!(
        call[0].function.as_ref().unwrap().arguments.as_deref(),
        Some("{\"city\":\"Oslo\"}")
    );
    let n = whole.len();
    assert_eq!(
        whole[n - 2].choices[0].finish_reason.as_deref(),
        Some("tool_calls")
    );
    assert_eq!(whole[n - 1].usage, Some(Usage::new(9, 2)));
}

#[test]
fn empty_usage_error_lines_and_truncation() {
    let (out, end) =
        decode(&[b"{\"type\":\"text\",\"text\":\"Hi\"}\n{\"type\":\"usage\",\"usage\":{}}\n"]);
    end.unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].choices[0].finish_reason.as_deref(), Some("stop"));
    assert!(out.iter().all(|c| c.usage.is_none()));
    let (out, end) = decode(&[b"{\"type\":\"text\",\"text\":\"Hi\"}\n{\"type\":\"error\",\"message\":\"upstream exploded\"}\n"]);
    assert_eq!(out.len(), 1);
    let e = end.unwrap_err();
    assert!(e.to_string().contains("upstream exploded") && e.is_retryable());
    let (_, end) = decode(&[
        b"{\"success\":false,\"error\":{\"code\":\"rate_limited\",\"message\":\"slow\"}}\n",
    ]);
    assert_eq!(end.unwrap_err().status(), StatusCode::TOO_MANY_REQUESTS);
    let (_, end) = decode(&[b"{\"type\":\"text\",\"text\":\"Hi\"}\n"]);
    assert!(matches!(end, Err(GatewayError::Connect { .. })));
}
