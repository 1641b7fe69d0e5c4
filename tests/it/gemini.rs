//! The Gemini adapter end to end: gateway on loopback, a fake speaking the generateContent API
//! (as Google's Gemini API reference describes it) on loopback.
//!
//! The scenarios every provider shares run in [`crate::conformance`]; this module keeps Gemini's
//! own behaviour.

use crate::support::*;
use serde_json::{Value, json};

const KEY: &str = "AIzaSy-secret-test-key-0123456789";

async fn gateway(fake: &FakeUpstream) -> TestGateway {
    TestGateway::start(&[
        ("GEMINI_API_KEY", KEY.into()),
        ("GEMINI_BASE_URL", fake.url("")),
    ])
    .await
}

fn response(parts: Value, finish: &str) -> Value {
    json!({
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0,
                        "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}]}],
        "usageMetadata": {"promptTokenCount": 52, "candidatesTokenCount": 17, "totalTokenCount": 69},
        "modelVersion": "gemini-2.0-flash",
        "responseId": "abc123"
    })
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                       "additionalProperties": false, "$schema": "http://json-schema.org/draft-07/schema#"}}}])
}

fn chunks_of(body: &[u8]) -> (Vec<Value>, Vec<String>) {
    (sse_chunks(body), sse_data(body))
}

fn sse(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| format!("data: {e}\r\n\r\n"))
        .collect()
}

#[tokio::test]
async fn non_stream_tool_call_round_trip() {
    let fake = FakeUpstream::start(Reply::json(response(
        json!([{"text": "Checking."}, {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}]),
        "STOP",
    )))
    .await;
    let gw = gateway(&fake).await;
    let body = json!({
        "model": "gemini-2.0-flash",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": [
                {"type": "text", "text": "Weather where this photo was taken?"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}
            ]}
        ],
        "tools": weather_tool(),
        "tool_choice": "auto",
        "max_tokens": 300,
        "stop": "END",
        "response_format": {"type": "json_object"}
    });
    let (status, headers, resp) = post_json(&gw.url("/v1/chat/completions"), &body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    assert_eq!(headers["x-proxygate-provider"], "gemini");
    let v: Value = serde_json::from_slice(&resp).unwrap();
    let msg = &v["choices"][0]["message"];
    assert_eq!(msg["content"], "Checking.");
    let call = &msg["tool_calls"][0];
    let call_id = call["id"].as_str().unwrap().to_owned();
    assert!(call_id.starts_with("call_"));
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"city": "Oslo"})
    );
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(v["usage"]["prompt_tokens"], 52);
    assert_eq!(v["usage"]["completion_tokens"], 17);
    assert_eq!(v["usage"]["total_tokens"], 69);

    let r = &fake.requests()[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/v1beta/models/gemini-2.0-flash:generateContent")
    );
    assert_eq!(r.query, None);
    assert_eq!(r.header("x-goog-api-key"), Some(KEY));
    assert_eq!(r.header("authorization"), None);
    let sent = r.json();
    assert_eq!(
        sent["systemInstruction"],
        json!({"parts": [{"text": "Be terse."}]})
    );
    assert_eq!(
        sent["contents"],
        json!([{"role": "user", "parts": [
            {"text": "Weather where this photo was taken?"},
            {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}}
        ]}])
    );
    assert_eq!(sent["generationConfig"]["maxOutputTokens"], 300);
    assert_eq!(sent["generationConfig"]["stopSequences"], json!(["END"]));
    assert_eq!(
        sent["generationConfig"]["responseMimeType"],
        "application/json"
    );
    assert_eq!(
        sent["tools"][0]["functionDeclarations"][0]["parameters"],
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    );
    assert_eq!(sent["toolConfig"]["functionCallingConfig"]["mode"], "AUTO");
    assert!(sent.get("model").is_none() && sent.get("messages").is_none());

    // The result is matched back to the call by name.
    fake.script([Reply::json(response(
        json!([{"text": "14C, rain."}]),
        "STOP",
    ))]);
    let follow_up = json!({
        "model": "gemini/gemini-2.0-flash",
        "messages": [
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": null, "tool_calls": msg["tool_calls"]},
            {"role": "tool", "tool_call_id": call_id, "content": "14C, rain"}
        ],
        "tools": weather_tool()
    });
    let (status, _, resp) = post_json(&gw.url("/v1/chat/completions"), &follow_up).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    let v: Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["choices"][0]["message"]["content"], "14C, rain.");
    let sent = fake.requests()[1].json();
    assert_eq!(
        sent["contents"][1],
        json!({"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}]})
    );
    assert_eq!(
        sent["contents"][2],
        json!({"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"result": "14C, rain"}}}]})
    );
}

#[tokio::test]
async fn stream_with_usage_ends_at_close() {
    let raw = sse(&[
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hél"}]}, "index": 0}], "usageMetadata": {"promptTokenCount": 9}, "modelVersion": "gemini-2.0-flash", "responseId": "r1"}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "lo ✓"}]}, "index": 0}], "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 2}, "modelVersion": "gemini-2.0-flash", "responseId": "r1"}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "!"}]}, "finishReason": "STOP", "index": 0}], "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 3, "totalTokenCount": 12}, "modelVersion": "gemini-2.0-flash", "responseId": "r1"}),
    ]);
    let cut = raw.find("Hél").unwrap() + 2;
    let reply = Reply::Stream {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        pieces: split_at(&raw, &[4, 30, cut, cut + 60, raw.len() - 2]),
        end: End::Finish,
    };
    let fake = FakeUpstream::start(reply).await;
    let gw = gateway(&fake).await;
    let url = gw.url("/v1/chat/completions");
    let mut body = chat("gemini-2.0-flash", "Hi");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, _, resp) = post_json(&url, &body).await;
    assert_eq!(status, 200);
    let (chunks, data) = chunks_of(&resp);
    assert_eq!(data.last().unwrap(), "[DONE]");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Héllo ✓!");
    let finish: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
        .collect();
    assert_eq!(finish, ["stop"]);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["prompt_tokens"], 9);
    assert_eq!(last["usage"]["completion_tokens"], 3);
    assert_eq!(last["usage"]["total_tokens"], 12);

    let r = &fake.requests()[0];
    assert_eq!(
        r.path,
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
    );
    assert_eq!(r.query.as_deref(), Some("alt=sse"));
    assert_eq!(r.header("x-goog-api-key"), Some(KEY));

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
async fn streamed_function_calls_arrive_whole() {
    let raw = sse(&[
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Checking both."}]}, "index": 0}], "responseId": "r2"}),
        json!({"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
            {"functionCall": {"name": "get_weather", "args": {"city": "Bergen"}}}
        ]}, "finishReason": "STOP", "index": 0}], "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 10, "totalTokenCount": 40}, "responseId": "r2"}),
    ]);
    let reply = Reply::Stream {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        pieces: split_at(&raw, &[10, 150, 151, 250]),
        end: End::Finish,
    };
    let fake = FakeUpstream::start(reply).await;
    let gw = gateway(&fake).await;
    let mut body = chat("gemini/gemini-2.0-flash", "Weather in Oslo and Bergen?");
    body["stream"] = json!(true);
    body["tools"] = weather_tool();
    let (status, _, resp) = post_json(&gw.url("/v1/chat/completions"), &body).await;
    assert_eq!(status, 200);
    let (chunks, _) = chunks_of(&resp);
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
        .flatten()
        .collect();
    assert_eq!(calls.len(), 2);
    for (i, city) in ["Oslo", "Bergen"].iter().enumerate() {
        assert_eq!(calls[i]["index"], i);
        assert!(calls[i]["id"].as_str().unwrap().starts_with("call_"));
        assert_eq!(calls[i]["type"], "function");
        assert_eq!(calls[i]["function"]["name"], "get_weather");
        let args: Value =
            serde_json::from_str(calls[i]["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({"city": city}));
    }
    let finish: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
        .collect();
    assert_eq!(finish, ["tool_calls"]);
}

#[tokio::test]
async fn errors_keep_their_meaning() {
    let fake = FakeUpstream::start(Reply::json(response(json!([{"text": "x"}]), "STOP"))).await;
    let gw = gateway(&fake).await;
    let url = gw.url("/v1/chat/completions");
    let body = chat("gemini/gemini-2.0-flash", "x");

    // A bad key is a 400 on the wire but not the client's fault: 502, key not shown.
    fake.script([Reply::status_json(400, json!({"error": {"code": 400, "message": format!("API key not valid. Please pass a valid API key. ({KEY})"), "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}}))]);
    let (status, _, resp) = post_json(&url, &body).await;
    assert_eq!(status, 502);
    assert!(!String::from_utf8_lossy(&resp).contains("AIza"));

    fake.script([Reply::status_json(400, json!({"error": {"code": 400, "message": "Invalid value at 'contents[0]'", "status": "INVALID_ARGUMENT"}}))]);
    let (status, _, resp) = post_json(&url, &body).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&resp).contains("Invalid value"));

    fake.script([Reply::status_json(503, json!({"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}))]);
    let (status, _, resp) = post_json(&url, &body).await;
    assert_eq!(status, 502);
    assert!(String::from_utf8_lossy(&resp).contains("overloaded"));

    // A blocked prompt is an answer, filtered.
    fake.script([Reply::json(json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}}))]);
    let (status, _, resp) = post_json(&url, &body).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
}

#[tokio::test]
async fn error_object_inside_a_200_stream() {
    let mut raw = sse(&[
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "partial"}]}, "index": 0}], "responseId": "r3"}),
    ]);
    raw.push_str("{\n  \"error\": {\n    \"code\": 500,\n    \"message\": \"An internal error has occurred.\",\n    \"status\": \"INTERNAL\"\n  }\n}\n");
    let fake = FakeUpstream::start(Reply::sse(&[&raw])).await;
    let gw = gateway(&fake).await;
    let mut body = chat("gemini/gemini-2.0-flash", "Hi");
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
            .any(|c| c["choices"][0]["delta"]["content"] == "partial")
    );
    let err = chunks
        .iter()
        .find(|c| c.get("error").is_some())
        .expect("error event");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("internal error")
    );
    assert!(!data.iter().any(|d| d == "[DONE]"), "{data:?}");

    // The same error before any chunk is a plain error response.
    fake.set_fallback(Reply::sse(&["{\"error\": {\"code\": 503, \"message\": \"The model is overloaded.\", \"status\": \"UNAVAILABLE\"}}\n"]));
    let (status, _, resp) = post_json(&gw.url("/v1/chat/completions"), &body).await;
    assert_eq!(status, 502, "{}", String::from_utf8_lossy(&resp));
    assert!(String::from_utf8_lossy(&resp).contains("overloaded"));
}

#[tokio::test]
async fn google_api_key_also_enables_gemini_and_catalog_lists_embeddings() {
    let fake = FakeUpstream::start(Reply::json(response(json!([{"text": "hi"}]), "STOP"))).await;
    let gw = TestGateway::start(&[
        ("GOOGLE_API_KEY", KEY.into()),
        ("GEMINI_BASE_URL", fake.url("")),
    ])
    .await;
    let (status, _, _) = post_json(
        &gw.url("/v1/chat/completions"),
        &chat("gemini-1.5-pro", "x"),
    )
    .await;
    assert_eq!(status, 200);
    let r = &fake.requests()[0];
    assert_eq!(r.path, "/v1beta/models/gemini-1.5-pro:generateContent");
    assert_eq!(r.header("x-goog-api-key"), Some(KEY));

    let (status, body) = get(&gw.url("/v1/models")).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    let data = v["data"].as_array().unwrap();
    let flash = data
        .iter()
        .find(|m| m["id"] == "gemini/gemini-2.0-flash")
        .expect("listed");
    assert_eq!(flash["tier"], "paid-key");
    assert_eq!(flash["status"], "healthy");
    let embed = data
        .iter()
        .find(|m| m["id"] == "gemini/text-embedding-004")
        .expect("listed");
    assert_eq!(embed["mode"], "embedding");
}
