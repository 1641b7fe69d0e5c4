use std::time::Duration;

use super::*;
use super::{error::*, request::*, response::*, stream::*};
use crate::types::{ChatChunk, ToolCallDelta};

fn req(v: Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

fn decode(raw: &str, cuts: &[usize]) -> (Vec<ChatChunk>, Result<(), GatewayError>) {
    let mut dec = GeminiDecoder::new("gemini-2.5-flash");
    crate::providers::decode_pieces(
        Framing::SseOrRawJson,
        &mut dec,
        &crate::providers::cut(raw.as_bytes(), cuts),
    )
}

/// The request of Google's Gemini API reference, from its OpenAI form.
#[test]
fn golden_request_with_system_image_tools_and_history() {
    let r = req(json!({
        "model": "gemini-2.5-flash",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR..."}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "14C, rain"}
        ],
        "max_tokens": 1024,
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 40,
        "stop": ["END"],
        "n": 1,
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema":
            {"type": "object", "properties": {"answer": {"type": "string"}}, "additionalProperties": false}}},
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "description": "Current weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
        "tool_choice": "auto"
    }));
    assert_eq!(
        request_body(&r).unwrap(),
        json!({
            "systemInstruction": {"parts": [{"text": "Be terse."}]},
            "contents": [
                {"role": "user", "parts": [
                    {"text": "What is in this picture?"},
                    {"inlineData": {"mimeType": "image/png", "data": "iVBOR..."}}
                ]},
                {"role": "model", "parts": [
                    {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"result": "14C, rain"}}}
                ]}
            ],
            "generationConfig": {
                "maxOutputTokens": 1024,
                "temperature": 0.2,
                "topP": 0.9,
                "topK": 40,
                "stopSequences": ["END"],
                "candidateCount": 1,
                "responseMimeType": "application/json",
                "responseSchema": {"type": "object", "properties": {"answer": {"type": "string"}}}
            },
            "tools": [{"functionDeclarations": [{
                "name": "get_weather", "description": "Current weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}}
        })
    );
}

#[test]
fn urls_auth_and_model_ids() {
    let a = Gemini::new("http://127.0.0.1:9/", Secret::new("AIza-secret"));
    let mut r = req(
        json!({"model": "models/gemini-2.0-flash", "messages": [{"role": "user", "content": "hi"}]}),
    );
    let up = a.request(&r).unwrap();
    assert_eq!(
        up.uri(),
        "http://127.0.0.1:9/v1beta/models/gemini-2.0-flash:generateContent"
    );
    assert_eq!(up.headers()["x-goog-api-key"], "AIza-secret");
    assert!(up.headers()["x-goog-api-key"].is_sensitive());
    assert!(!up.uri().to_string().contains("key="));
    r.stream = Some(true);
    assert_eq!(
        a.request(&r).unwrap().uri(),
        "http://127.0.0.1:9/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    );
    r.model = "../../v1/evil?x=1".into();
    let e = a.request(&r).unwrap_err();
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);
}

#[test]
fn turns_tools_images_and_json_mode() {
    let r = req(json!({"model": "m", "messages": [
        {"role": "developer", "content": "A"},
        {"role": "system", "content": "B"},
        {"role": "user", "content": "first"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a/cat.PNG?s=1"}}]},
        {"role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}},
            {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{\"n\":1}"}}
        ]},
        {"role": "tool", "tool_call_id": "c2", "content": "G"},
        {"role": "tool", "tool_call_id": "c1", "content": "F"},
        {"role": "user", "content": "thanks"}
    ], "response_format": {"type": "json_object"}, "stop": ["1","2","3","4","5","6"],
       "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}},
                 {"type": "function", "function": {"name": "g", "parameters": {"type": "object", "properties": {"n": {"type": "integer"}}}}}],
       "tool_choice": {"type": "function", "function": {"name": "g"}}}));
    let body = request_body(&r).unwrap();
    assert_eq!(
        body["systemInstruction"],
        json!({"parts": [{"text": "A"}, {"text": "B"}]})
    );
    let contents = body["contents"].as_array().unwrap();
    let roles: Vec<&str> = contents
        .iter()
        .map(|c| c["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "model", "user"]);
    assert_eq!(
        contents[0]["parts"],
        json!([{"text": "first"}, {"fileData": {"mimeType": "image/png", "fileUri": "https://x.test/a/cat.PNG?s=1"}}])
    );
    assert_eq!(
        contents[1]["parts"],
        json!([{"text": "Let me look."},
               {"functionCall": {"name": "f", "args": {}}},
               {"functionCall": {"name": "g", "args": {"n": 1}}}])
    );
    assert_eq!(
        contents[2]["parts"],
        json!([{"functionResponse": {"name": "g", "response": {"result": "G"}}},
               {"functionResponse": {"name": "f", "response": {"result": "F"}}},
               {"text": "thanks"}])
    );
    assert_eq!(
        body["generationConfig"]["responseMimeType"],
        "application/json"
    );
    assert!(body["generationConfig"].get("responseSchema").is_none());
    assert_eq!(
        body["generationConfig"]["stopSequences"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    // A parameterless function is declared without parameters.
    assert!(
        body["tools"][0]["functionDeclarations"][0]
            .get("parameters")
            .is_none()
    );
    assert_eq!(
        body["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["g"]}})
    );
    for (choice, mode) in [("required", "ANY"), ("none", "NONE")] {
        let mut v = serde_json::to_value(&r).unwrap();
        v["tool_choice"] = json!(choice);
        let body = request_body(&req(v)).unwrap();
        assert_eq!(body["toolConfig"]["functionCallingConfig"]["mode"], mode);
    }

    let e = request_body(&req(json!({"model": "m", "messages": [
        {"role": "user", "content": "x"},
        {"role": "tool", "tool_call_id": "nope", "content": "?"}
    ]})))
    .unwrap_err();
    assert!(e.to_string().contains("messages[1].tool_call_id"), "{e}");
    let body = request_body(&req(
        json!({"model": "m", "messages": [{"role": "system", "content": "Say hi"}]}),
    ))
    .unwrap();
    assert!(body.get("systemInstruction").is_none());
    assert_eq!(
        body["contents"],
        json!([{"role": "user", "parts": [{"text": "Say hi"}]}])
    );
}

#[test]
fn schemas_are_cleaned_for_gemini() {
    let schema = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "default": {"type": ["string", "null"], "default": "x"},
            "item": {"$ref": "#/$defs/Item"},
            "kind": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
            "list": {"type": "array", "items": {"$ref": "#/$defs/Item"}}
        },
        "$defs": {"Item": {"type": "object", "properties": {"id": {"type": "integer"}}, "additionalProperties": false}}
    });
    assert_eq!(
        clean_schema(&schema),
        json!({
            "type": "object",
            "properties": {
                "default": {"type": "string", "nullable": true},
                "item": {"type": "object", "properties": {"id": {"type": "integer"}}},
                "kind": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                "list": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "integer"}}}}
            }
        })
    );
    // A recursive schema stops at the depth limit instead of looping.
    let recursive = json!({"$defs": {"N": {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}}}}, "$ref": "#/$defs/N"});
    let cleaned = clean_schema(&recursive);
    assert_eq!(cleaned["type"], "object");
}

/// The response of Google's Gemini API reference.
#[test]
fn golden_response() {
    let a = Gemini::new("http://x", Secret::new("k"));
    let r =
        req(json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "x"}]}));
    let resp = a
        .response(
            &r,
            br#"{
  "candidates": [{
"content": {"role": "model", "parts": [
  {"text": "Checking."},
  {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}
]},
"finishReason": "STOP",
"index": 0,
"safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}]
  }],
  "usageMetadata": {"promptTokenCount": 52, "candidatesTokenCount": 17, "totalTokenCount": 69,
                "cachedContentTokenCount": 0, "thoughtsTokenCount": 0},
  "modelVersion": "gemini-2.5-flash",
  "responseId": "abc123"
}"#,
        )
        .unwrap();
    let v = serde_json::to_value(&resp).unwrap();
    assert_eq!(v["id"], "chatcmpl-abc123");
    assert_eq!(v["model"], "gemini-2.5-flash");
    let call_id = v["choices"][0]["message"]["tool_calls"][0]["id"]
        .as_str()
        .unwrap();
    assert!(call_id.starts_with("call_"));
    assert_eq!(
        v["choices"],
        json!([{
            "index": 0,
            "message": {"role": "assistant", "content": "Checking.", "refusal": null,
                "tool_calls": [{"id": call_id, "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
            "logprobs": null,
            "finish_reason": "tool_calls"
        }])
    );
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 52, "completion_tokens": 17, "total_tokens": 69,
               "prompt_tokens_details": {"cached_tokens": 0},
               "completion_tokens_details": {"reasoning_tokens": 0}})
    );
}

#[test]
fn finish_reasons_blocked_prompts_and_thinking() {
    assert_eq!(finish_reason("STOP", false), "stop");
    assert_eq!(finish_reason("STOP", true), "tool_calls");
    assert_eq!(finish_reason("MAX_TOKENS", true), "length");
    for r in [
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
    ] {
        assert_eq!(finish_reason(r, false), "content_filter", "{r}");
    }
    assert_eq!(finish_reason("MALFORMED_FUNCTION_CALL", false), "stop");

    let a = Gemini::new("http://x", Secret::new("k"));
    let r =
        req(json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "x"}]}));
    let resp = a
        .response(&r, br#"{"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}}"#)
        .unwrap();
    assert_eq!(
        resp.choices[0].finish_reason.as_deref(),
        Some("content_filter")
    );
    assert_eq!(resp.choices[0].message.content, None);
    assert_eq!(resp.model, "gemini-2.5-flash");
    assert_eq!(resp.usage.as_ref().unwrap().prompt_tokens, 8);

    let resp = a
        .response(
            &r,
            br#"{"candidates": [{"finishReason": "SAFETY", "index": 0}]}"#,
        )
        .unwrap();
    assert_eq!(
        resp.choices[0].finish_reason.as_deref(),
        Some("content_filter")
    );
    assert_eq!(resp.choices[0].message.content.as_deref(), Some(""));

    let resp = a
        .response(&r, br#"{"candidates": [{"content": {"parts": [{"text": "think", "thought": true}, {"text": "Hi"}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1, "thoughtsTokenCount": 10, "totalTokenCount": 14}}"#)
        .unwrap();
    assert_eq!(resp.choices[0].message.content.as_deref(), Some("Hi"));
    assert_eq!(
        resp.choices[0].message.reasoning_content.as_deref(),
        Some("think")
    );
    let u = resp.usage.unwrap();
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens),
        (3, 11, 14)
    );

    assert!(matches!(
        a.response(&r, b"{}"),
        Err(GatewayError::BadUpstreamResponse { .. })
    ));
    assert!(a.response(&r, b"<html>").is_err());
}

/// A stream as Google's Gemini API reference describes it: whole responses per event, usage on each,
/// a function call whole in one chunk with `finishReason: STOP`, end at close.
const STREAM: &str = concat!(
    "data: {\"candidates\": [{\"content\": {\"role\": \"model\", \"parts\": [{\"text\": \"Hél\"}]}, \"index\": 0}], \"usageMetadata\": {\"promptTokenCount\": 52}, \"modelVersion\": \"gemini-2.5-flash\", \"responseId\": \"r1\"}\r\n\r\n",
    "data: {\"candidates\": [{\"content\": {\"role\": \"model\", \"parts\": [{\"text\": \"lo\"}]}, \"index\": 0}], \"usageMetadata\": {\"promptTokenCount\": 52, \"candidatesTokenCount\": 2}, \"modelVersion\": \"gemini-2.5-flash\", \"responseId\": \"r1\"}\r\n\r\n",
    "data: {\"candidates\": [{\"content\": {\"role\": \"model\", \"parts\": [{\"functionCall\": {\"name\": \"get_weather\", \"args\": {\"city\": \"Oslo\"}}}, {\"functionCall\": {\"name\": \"get_time\", \"args\": {}}}]}, \"finishReason\": \"STOP\", \"index\": 0}], \"usageMetadata\": {\"promptTokenCount\": 52, \"candidatesTokenCount\": 17, \"totalTokenCount\": 69}, \"modelVersion\": \"gemini-2.5-flash\", \"responseId\": \"r1\"}\r\n\r\n",
);

fn check_golden_stream(chunks: &[ChatChunk]) {
    assert_eq!(
        chunks[0].choices[0].delta.role.as_deref(),
        Some("assistant")
    );
    assert!(chunks.iter().all(|c| c.id == "chatcmpl-r1"));
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
    assert_eq!(calls.len(), 2);
    assert_eq!((calls[0].index, calls[1].index), (0, 1));
    let f0 = calls[0].function.as_ref().unwrap();
    assert_eq!(f0.name.as_deref(), Some("get_weather"));
    assert_eq!(f0.arguments.as_deref(), Some("{\"city\":\"Oslo\"}"));
    assert_eq!(
        calls[1].function.as_ref().unwrap().arguments.as_deref(),
        Some("{}")
    );
    assert!(
        calls
            .iter()
            .all(|c| c.id.as_deref().is_some_and(|i| i.starts_with("call_")))
    );
    assert_ne!(calls[0].id, calls[1].id);
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
        (52, 17, 69)
    );
    assert!(chunks[..chunks.len() - 1].iter().all(|c| c.usage.is_none()));
}

#[test]
fn golden_stream_in_awkward_pieces() {
    let lf = STREAM.replace("\r\n", "\n");
    for raw in [STREAM.to_owned(), lf] {
        let (chunks, res) = decode(&raw, &[]);
        res.unwrap();
        check_golden_stream(&chunks);
        for cut in 1..raw.len() {
            let (chunks, res) = decode(&raw, &[cut, cut + 5, cut + 200]);
            res.unwrap();
            check_golden_stream(&chunks);
        }
    }
}

#[test]
fn stream_errors_blocks_and_truncation() {
    let first = &STREAM[..STREAM.find("data:").unwrap() + STREAM[5..].find("data:").unwrap() + 5];
    // A pretty-printed error object written into the 200 stream.
    let raw = format!(
        "{first}{{\n  \"error\": {{\n    \"code\": 503,\n    \"message\": \"The model is overloaded.\",\n    \"status\": \"UNAVAILABLE\"\n  }}\n}}\n"
    );
    let (chunks, res) = decode(&raw, &[]);
    assert!(!chunks.is_empty());
    let e = res.unwrap_err();
    assert!(e.is_retryable());
    assert!(e.to_string().contains("overloaded"), "{e}");

    // Closed before any finishReason: truncated.
    let (_, res) = decode(first, &[]);
    assert!(matches!(res, Err(GatewayError::Connect { .. })));

    // A blocked prompt in a stream.
    let (chunks, res) = decode(
        "data: {\"promptFeedback\": {\"blockReason\": \"PROHIBITED_CONTENT\"}, \"usageMetadata\": {\"promptTokenCount\": 4}}\n\n",
        &[],
    );
    res.unwrap();
    assert_eq!(
        chunks[1].choices[0].finish_reason.as_deref(),
        Some("content_filter")
    );
    assert!(chunks.last().unwrap().is_usage_only());

    // An error as a data: event.
    let (_, res) = decode(
        "data: {\"error\": {\"code\": 500, \"message\": \"Internal error\", \"status\": \"INTERNAL\"}}\n\n",
        &[],
    );
    assert!(res.unwrap_err().is_retryable());
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
    // A bad key is a 400 on the wire, but the deployment's failure.
    let e = err(
        400,
        &[],
        r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT",
        "details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#,
    );
    assert!(e.is_retryable());
    assert_eq!(e.status(), StatusCode::BAD_GATEWAY);

    let e = err(
        400,
        &[],
        r#"{"error":{"code":400,"message":"Invalid JSON payload received.","status":"INVALID_ARGUMENT"}}"#,
    );
    assert!(!e.is_retryable());
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    assert!(e.to_string().contains("Invalid JSON payload"));

    let e = err(
        429,
        &[],
        r#"{"error":{"code":429,"message":"You exceeded your current quota.","status":"RESOURCE_EXHAUSTED",
        "details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
                   {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"33s"}]}}"#,
    );
    assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(33)));
    assert!(e.is_retryable());
    // A retry-after header, when there is one, wins.
    let e = err(
        429,
        &[("retry-after", "5")],
        r#"{"error":{"code":429,"message":"q","status":"RESOURCE_EXHAUSTED",
        "details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"33s"}]}}"#,
    );
    assert_eq!(e.retry_after(), Some(Duration::from_secs(5)));
    assert_eq!(
        retry_delay(&json!({"seconds": "2", "nanos": 500_000_000})),
        Some(Duration::from_millis(2500))
    );
    assert_eq!(
        retry_delay(&json!("1.5s")),
        Some(Duration::from_millis(1500))
    );

    let e = err(
        503,
        &[],
        r#"{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}"#,
    );
    assert!(e.is_retryable());
    let e = err(
        400,
        &[],
        r#"{"error":{"code":400,"message":"User location is not supported for the API use.","status":"FAILED_PRECONDITION"}}"#,
    );
    assert!(e.is_retryable());
    let e = err(
        404,
        &[],
        r#"{"error":{"code":404,"message":"models/gemini-9 is not found","status":"NOT_FOUND"}}"#,
    );
    assert_eq!(e.status(), StatusCode::NOT_FOUND);
    let e = err(
        429,
        &[],
        r#"[{"error":{"code":429,"message":"q","status":"RESOURCE_EXHAUSTED"}}]"#,
    );
    assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
    let e = err(502, &[], "<html>bad gateway</html>");
    assert!(e.is_retryable());
}

#[test]
fn thought_signatures_come_out_on_tool_calls_and_go_back_on_function_calls() {
    let a = Gemini::new("http://x", Secret::new("k"));
    let r = req(
        json!({"model": "gemini-3-pro-preview", "messages": [{"role": "user", "content": "x"}]}),
    );
    let resp = a
        .response(&r, br#"{"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}, "thoughtSignature": "c2ln"}]},
            "finishReason": "STOP"}]}"#)
        .unwrap();
    let call = &resp.choices[0].message.tool_calls.as_ref().unwrap()[0];
    assert_eq!(
        call.extra_content,
        Some(json!({"google": {"thought_signature": "c2ln"}}))
    );

    let raw = "data: {\"candidates\": [{\"content\": {\"parts\": [{\"functionCall\": {\"name\": \"f\", \"args\": {}}, \"thoughtSignature\": \"c2ln\"}]}, \"finishReason\": \"STOP\"}]}\n\n";
    let (chunks, end) = decode(raw, &[]);
    assert!(end.is_ok());
    let streamed = chunks
        .iter()
        .filter_map(|c| c.choices.first()?.delta.tool_calls.clone())
        .flatten()
        .find_map(|c| c.extra_content);
    assert_eq!(
        streamed,
        Some(json!({"google": {"thought_signature": "c2ln"}}))
    );

    let back = req(json!({
        "model": "gemini-3-pro-preview",
        "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{}"},
                "extra_content": {"google": {"thought_signature": "c2ln"}}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "14C"}
        ]
    }));
    let body = request_body(&back).unwrap();
    assert_eq!(body["contents"][1]["parts"][0]["thoughtSignature"], "c2ln");
}

#[test]
fn reasoning_effort_maps_to_thinking_budget_or_level() {
    use crate::types::ReasoningEffort as E;
    let efforts = [E::None, E::Minimal, E::Low, E::Medium, E::High, E::Xhigh];
    let budgets: Vec<u64> = efforts
        .iter()
        .map(|e| thinking_budget("gemini-2.5-flash", *e))
        .collect();
    assert!(budgets.windows(2).all(|w| w[0] <= w[1]), "monotonic");
    assert_eq!(budgets[0], 0);
    assert!(thinking_budget("gemini-2.5-flash", E::High) >= 1024);
    assert_eq!(thinking_budget("gemini-2.5-pro", E::None), 128);
    assert_eq!(
        thinking_config("gemini-2.5-flash", E::Low),
        json!({"thinkingBudget": 1024, "includeThoughts": true})
    );
    assert_eq!(
        thinking_config("gemini-2.5-flash", E::None),
        json!({"thinkingBudget": 0, "includeThoughts": false})
    );
    assert_eq!(
        thinking_config("gemini-3-pro-preview", E::Low)["thinkingLevel"],
        "low"
    );
    assert_eq!(
        thinking_config("gemini-3-flash-preview", E::High)["thinkingLevel"],
        "high"
    );
    let body = request_body(&req(json!({
        "model": "gemini-3-pro-preview", "reasoning_effort": "high",
        "messages": [{"role": "system", "content": "A"}, {"role": "user", "content": "x"},
                     {"role": "system", "content": "B"}]
    })))
    .unwrap();
    assert_eq!(
        body["generationConfig"]["thinkingConfig"],
        json!({"thinkingLevel": "high", "includeThoughts": true})
    );
    // Mid-conversation system messages join the one system instruction.
    assert_eq!(
        body["systemInstruction"],
        json!({"parts": [{"text": "A"}, {"text": "B"}]})
    );
    let plain = request_body(&req(
        json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "x"}]}),
    ))
    .unwrap();
    assert!(plain.get("generationConfig").is_none());
}
