//! Cohere v2 end to end: gateway on loopback, a fake speaking Cohere's wire format on loopback.
//!
//! The scenarios every provider shares run in [`crate::conformance`]; this module keeps Cohere's
//! own behaviour.

use crate::support::*;
use serde_json::{Value, json};

const KEY: &str = "co_secret_test_key";

async fn gateway(fake: &FakeUpstream) -> TestGateway {
    TestGateway::start(&[
        ("COHERE_API_KEY", KEY.into()),
        ("COHERE_BASE_URL", fake.url("")),
    ])
    .await
}

fn answer(text: &str) -> Value {
    json!({
        "id": "c14c80c3-18eb-4519-9460-6c92edd8cfb4",
        "finish_reason": "COMPLETE",
        "message": {"role": "assistant", "content": [{"type": "text", "text": text}]},
        "usage": {"billed_units": {"input_tokens": 11, "output_tokens": 4},
                  "tokens": {"input_tokens": 180, "output_tokens": 4}}
    })
}

/// A Cohere SSE body of typed events, cut at awkward places (inside `é`, inside JSON).
fn sse_reply(events: &[Value]) -> Reply {
    let mut raw = String::from(": ping\n\n");
    for (i, e) in events.iter().enumerate() {
        let sep = if i % 2 == 0 { "\r\n\r\n" } else { "\n\n" };
        raw.push_str(&format!("data: {e}{sep}"));
    }
    let mut cuts = vec![7, raw.len() / 2, raw.len() - 5];
    if let Some(p) = raw.find('é') {
        cuts.push(p + 1);
    }
    cuts.sort_unstable();
    Reply::Stream {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        pieces: split_at(&raw, &cuts),
        end: End::Finish,
    }
}

fn text_events() -> Vec<Value> {
    vec![
        json!({"type": "message-start", "id": "abc", "delta": {"message": {"role": "assistant"}}}),
        json!({"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}}),
        json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Hé"}}}}),
        json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "llo"}}}}),
        json!({"type": "content-end", "index": 0}),
        json!({"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": {
            "billed_units": {"input_tokens": 5, "output_tokens": 2}, "tokens": {"input_tokens": 71, "output_tokens": 2}}}}),
    ]
}

#[tokio::test]
async fn request_is_translated_and_sent_with_bearer_auth() {
    let fake = FakeUpstream::start(Reply::json(answer("Hello!"))).await;
    let gw = gateway(&fake).await;
    let body = json!({
        "model": "cohere/command-r-plus",
        "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}],
        "temperature": 0.3, "top_p": 0.75, "stop": "END", "max_tokens": 64, "n": 1, "user": "u-1"
    });
    let (status, headers, resp) = post_json(&gw.url("/v1/chat/completions"), &body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    let resp: Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(resp["object"], "chat.completion");
    assert_eq!(resp["choices"][0]["message"]["content"], "Hello!");
    assert_eq!(resp["choices"][0]["finish_reason"], "stop");
    assert!(
        resp["choices"][0]["message"]
            .as_object()
            .unwrap()
            .contains_key("refusal")
    );
    assert_eq!(
        (
            &resp["usage"]["prompt_tokens"],
            &resp["usage"]["completion_tokens"],
            &resp["usage"]["total_tokens"]
        ),
        (&json!(11), &json!(4), &json!(15))
    );
    assert_eq!(headers["x-proxygate-provider"], "cohere");
    assert_eq!(
        headers["x-proxygate-deployment"],
        "cohere/command-r-plus-08-2024"
    );

    let r = &fake.requests()[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str(), r.query.as_deref()),
        ("POST", "/v2/chat", None)
    );
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    let sent = r.json();
    assert_eq!(
        sent,
        json!({
            "model": "command-r-plus-08-2024",
            "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}],
            "temperature": 0.3, "p": 0.75, "stop_sequences": ["END"], "max_tokens": 64, "stream": false
        })
    );
}

#[tokio::test]
async fn bare_name_resolves_to_cohere() {
    let fake = FakeUpstream::start(Reply::json(answer("ok"))).await;
    let gw = gateway(&fake).await;
    let (status, headers, _) =
        post_json(&gw.url("/v1/chat/completions"), &chat("command-r", "Hi")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-proxygate-provider"], "cohere");
    assert_eq!(fake.requests()[0].json()["model"], "command-r-08-2024");
}

#[tokio::test]
async fn stream_in_awkward_pieces_with_usage_only_when_asked() {
    let fake = FakeUpstream::start(sse_reply(&text_events())).await;
    let gw = gateway(&fake).await;
    let url = gw.url("/v1/chat/completions");
    let mut body = chat("cohere/command-r7b-12-2024", "Hi");
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
    let last = cs.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["total_tokens"], 7);
    assert_eq!(cs[cs.len() - 2]["choices"][0]["finish_reason"], "stop");
    assert!(
        cs[..cs.len() - 1]
            .iter()
            .all(|c| c.get("usage").is_none_or(Value::is_null))
    );
    let sent = fake.requests()[0].json();
    assert_eq!(sent["stream"], true);
    assert!(sent.get("stream_options").is_none());

    body.as_object_mut().unwrap().remove("stream_options");
    let (_, _, resp) = post_json(&url, &body).await;
    let cs = sse_chunks(&resp);
    assert!(cs.iter().all(|c| c.get("usage").is_none_or(Value::is_null)
        && !c["choices"].as_array().unwrap().is_empty()));
}

#[tokio::test]
async fn tool_calls_streamed_and_not() {
    let call = json!({"id": "get_weather_xyz", "type": "function",
                      "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}});
    let fake = FakeUpstream::start(Reply::json(json!({
        "id": "t", "finish_reason": "TOOL_CALL",
        "message": {"role": "assistant", "tool_plan": "I will look up the weather.",
                    "tool_calls": [call], "content": [{"type": "text", "text": ""}]},
        "usage": {"billed_units": {"input_tokens": 31, "output_tokens": 12}}
    })))
    .await;
    let gw = gateway(&fake).await;
    let url = gw.url("/v1/chat/completions");
    let mut body = chat("cohere/command-a-03-2025", "Weather in Oslo?");
    body["tools"] = json!([{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
    body["tool_choice"] = json!({"type": "function", "function": {"name": "get_weather"}});
    let (status, _, resp) = post_json(&url, &body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    let resp: Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(resp["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(resp["choices"][0]["message"]["tool_calls"][0], call);
    assert!(resp["choices"][0]["message"]["content"].is_null());
    let sent = fake.requests()[0].json();
    assert_eq!(sent["tool_choice"], "REQUIRED");
    assert_eq!(
        sent["tools"][0]["function"]["parameters"]["required"],
        json!(["city"])
    );

    // The conversation continues with the tool result; the answer streams a second call.
    fake.script([sse_reply(&[
        json!({"type": "message-start", "id": "s", "delta": {"message": {"role": "assistant"}}}),
        json!({"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls":
            {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": ""}}}}}),
        json!({"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": "{\"city\":"}}}}}),
        json!({"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": "\"Bergen\"}"}}}}}),
        json!({"type": "tool-call-end", "index": 0}),
        json!({"type": "message-end", "delta": {"finish_reason": "TOOL_CALL", "usage": {"billed_units": {"input_tokens": 40, "output_tokens": 9}}}}),
    ])]);
    body["stream"] = json!(true);
    body["messages"] = json!([
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "get_weather_xyz", "content": "{\"temp\":\"14C\"}"},
        {"role": "user", "content": "And Bergen?"}
    ]);
    let (status, _, resp) = post_json(&url, &body).await;
    assert_eq!(status, 200);
    let cs = sse_chunks(&resp);
    let calls: Vec<&Value> = cs
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
        .flatten()
        .collect();
    assert_eq!(calls[0]["id"], "call_2");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let args: String = calls
        .iter()
        .filter_map(|c| c["function"]["arguments"].as_str())
        .collect();
    assert_eq!(args, "{\"city\":\"Bergen\"}");
    assert!(
        cs.iter()
            .any(|c| c["choices"][0]["finish_reason"] == "tool_calls")
    );
    let sent = fake.requests()[1].json();
    assert_eq!(
        sent["messages"][1]["tool_calls"][0]["id"],
        "get_weather_xyz"
    );
    assert_eq!(
        sent["messages"][2],
        json!({"role": "tool", "tool_call_id": "get_weather_xyz",
               "content": [{"type": "document", "document": {"data": "{\"temp\":\"14C\"}"}}]})
    );
}

#[tokio::test]
async fn errors_come_back_in_the_openai_envelope() {
    let fake = FakeUpstream::start(Reply::json(answer("unused"))).await;
    let gw = gateway(&fake).await;
    let url = gw.url("/v1/chat/completions");

    fake.script([Reply::status_json(
        400,
        json!({"id": "e1", "message": "invalid request: too many stop sequences"}),
    )]);
    let (status, _, body) = post_json(&url, &chat("cohere/command-r", "x")).await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too many stop sequences")
    );

    // A bad key is the gateway's upstream failing, and the key never shows.
    fake.script([Reply::status_json(
        401,
        json!({"message": format!("invalid api token {KEY}")}),
    )]);
    let (status, _, body) = post_json(&url, &chat("cohere/command-r", "x")).await;
    assert_eq!(status, 502);
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("invalid api token") && !text.contains("co_secret"),
        "{text}"
    );

    fake.script([Reply::status_json(498, json!({"message": "blocked input"}))]);
    let (status, _, _) = post_json(&url, &chat("cohere/command-r", "x")).await;
    assert_eq!(status, 400);

    // An ERROR finish after text: the client gets the text, then an error event.
    let mut events = text_events();
    events.truncate(3);
    events.push(json!({"type": "message-end", "delta": {"finish_reason": "ERROR", "error": "model overloaded"}}));
    fake.script([sse_reply(&events)]);
    let mut body = chat("cohere/command-r", "x");
    body["stream"] = json!(true);
    let (status, _, resp) = post_json(&url, &body).await;
    assert_eq!(status, 200);
    let data = sse_data(&resp);
    assert!(data.iter().any(|d| d.contains("Hé")));
    let err = data
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|v| v.get("error").is_some())
        .expect("an error event");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("model overloaded")
    );
}
