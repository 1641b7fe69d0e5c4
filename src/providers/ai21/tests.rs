use serde_json::{Value, json};

use super::*;
use crate::types::ChatChunk;

use crate::types::Usage;

fn adapter() -> Ai21 {
    Ai21::new("http://ai21.test", Secret::new("ai21-test-key"))
}

fn req(v: Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

#[test]
fn request_is_cut_to_what_ai21_knows() {
    let r = req(json!({
        "model": "jamba-mini-1.7",
        "messages": [
            {"role": "developer", "content": "Be terse."},
            {"role": "user", "name": "ann", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "there"}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "42"}
        ],
        "max_completion_tokens": 200, "temperature": 0.4, "top_p": 0.9, "stop": ["END"], "seed": 1,
        "stream": true, "stream_options": {"include_usage": true}, "logprobs": true, "user": "u",
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    }));
    let body = adapter().body(&r).unwrap();
    assert_eq!(
        body,
        json!({
            "model": "jamba-mini-1.7",
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": "Hello\nthere"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "42"}
            ],
            "max_tokens": 200, "temperature": 0.4, "top_p": 0.9, "stop": ["END"], "seed": 1,
            "stream": true, "response_format": {"type": "json_object"}
        })
    );
    let up = adapter().request(&r).unwrap();
    assert_eq!(up.uri(), "http://ai21.test/studio/v1/chat/completions");
    assert_eq!(up.headers()["authorization"], "Bearer ai21-test-key");
}

#[test]
fn images_are_refused_naming_the_message() {
    let r = req(
        json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://x/cat.png"}}]}]}),
    );
    let e = adapter().body(&r).unwrap_err();
    assert!(
        e.to_string().contains("messages[0].content") && e.to_string().contains("image_url"),
        "{e}"
    );
}

#[test]
fn sdk_shaped_response_gets_object_created_and_model() {
    let r =
        req(json!({"model": "jamba-mini-1.7", "messages": [{"role": "user", "content": "hi"}]}));
    let body = br#"{"id":"chat-1","choices":[{"index":0,"message":{"role":"assistant","content":"Hi!","tool_calls":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#;
    let resp = adapter().response(&r, body).unwrap();
    assert_eq!(
        (resp.object.as_str(), resp.model.as_str()),
        ("chat.completion", "jamba-mini-1.7")
    );
    assert!(resp.created > 0);
    assert_eq!(resp.choices[0].message.content.as_deref(), Some("Hi!"));
    assert_eq!(resp.usage, Some(Usage::new(12, 3)));
}

fn run(
    framing: Framing,
    d: &mut Ai21Decoder,
    pieces: &[&[u8]],
) -> Result<Vec<ChatChunk>, GatewayError> {
    let (out, end) = crate::providers::decode_pieces(framing, d, pieces);
    end.map(|()| out)
}

#[test]
fn stream_with_usage_on_the_final_chunk_in_pieces() {
    let r = req(
        json!({"model": "jamba-large-1.7", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );
    let raw = concat!(
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Grüß\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" dich\"},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2,\"total_tokens\":6}}\n\n",
        "data: [DONE]\n\n",
    );
    let cut = raw.find('ü').unwrap() + 1;
    let a = adapter();
    assert_eq!(a.stream_framing(&r), Framing::Sse);
    let mut d = a.decoder(&r);
    let b = raw.as_bytes();
    let out = run(
        Framing::Sse,
        &mut d,
        &[&b[..cut], &b[cut..cut + 40], &b[cut + 40..]],
    )
    .unwrap();
    assert_eq!(out.len(), 4);
    assert!(
        out.iter()
            .all(|c| c.model == "jamba-large-1.7" && c.created > 0 && c.id == "c1")
    );
    let text: String = out
        .iter()
        .filter_map(|c| c.choices.first()?.delta.content.clone())
        .collect();
    assert_eq!(text, "Grüß dich");
    assert!(out[3].is_usage_only());
    assert_eq!(out[3].usage, Some(Usage::new(4, 2)));
    assert!(out[..3].iter().all(|c| c.usage.is_none()));
}

#[test]
fn streaming_with_tools_is_asked_whole_and_replayed() {
    let r = req(json!({"model": "jamba-mini-1.7", "stream": true,
        "messages": [{"role": "user", "content": "weather?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]}));
    let a = adapter();
    assert_eq!(a.body(&r).unwrap()["stream"], false);
    assert!(a.request(&r).unwrap().headers().get("accept").is_none());
    assert_eq!(a.stream_framing(&r), Framing::Whole);
    let body = "{\n \"id\": \"chat-t\",\n \"choices\": [{\"index\": 0, \"message\": {\"role\": \"assistant\", \"content\": null,\n  \"tool_calls\": [{\"id\": \"call_w\", \"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Oslo\\\"}\"}}]},\n  \"finish_reason\": \"tool_calls\"}],\n \"usage\": {\"prompt_tokens\": 30, \"completion_tokens\": 10, \"total_tokens\": 40}\n}\n";
    let mut d = a.decoder(&r);
    let b = body.as_bytes();
    let out = run(Framing::Whole, &mut d, &[&b[..20], &b[20..]]).unwrap();
    assert_eq!(out.len(), 4);
    assert_eq!(out[0].choices[0].delta.role.as_deref(), Some("assistant"));
    let call = &out[1].choices[0].delta.tool_calls.as_ref().unwrap()[0];
    assert_eq!(call.id.as_deref(), Some("call_w"));
    assert_eq!(
        call.function.as_ref().unwrap().arguments.as_deref(),
        Some("{\"city\": \"Oslo\"}")
    );
    assert_eq!(
        out[2].choices[0].finish_reason.as_deref(),
        Some("tool_calls")
    );
    assert_eq!(out[3].usage, Some(Usage::new(30, 10)));
    assert!(out.iter().all(|c| c.model == "jamba-mini-1.7"));
    let mut d = a.decoder(&r);
    assert!(run(Framing::Whole, &mut d, &[b""]).is_err());
}

#[test]
fn detail_bodies_are_read() {
    let h = http::HeaderMap::new();
    let e = adapter().error(
        StatusCode::UNPROCESSABLE_ENTITY,
        &h,
        br#"{"detail":[{"loc":["body","messages"],"msg":"field required"}]}"#,
    );
    assert!(e.to_string().contains("field required"), "{e}");
    assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let e = adapter().error(
        StatusCode::UNAUTHORIZED,
        &h,
        br#"{"detail":"Forbidden: Bad or missing API token."}"#,
    );
    assert!(e.to_string().contains("Bad or missing API token") && e.is_retryable());
}
