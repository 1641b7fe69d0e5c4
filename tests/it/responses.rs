//! `POST /v1/responses` end to end: Responses requests in, `Response` objects and Responses
//! events out, served by the mock provider and loopback fakes of an OpenAI-compatible upstream
//! (Groq) and Anthropic; stored responses in a SQLite file.

use crate::support::*;
use serde_json::{Value, json};

const GROQ: &str = "groq/llama-3.1-8b-instant";
const CLAUDE: &str = "anthropic/claude-sonnet-4-5";

/// A gateway that keeps stored responses in a SQLite file under `db`.
pub(crate) async fn gateway(db: &tempfile::TempDir, extra: &[(&str, String)]) -> TestGateway {
    let mut env = vec![
        (
            "USAGE_DB_PATH",
            db.path().join("usage.db").to_string_lossy().into_owned(),
        ),
        ("USAGE_JOURNAL_DIR", "off".to_owned()),
    ];
    env.extend(extra.iter().cloned());
    TestGateway::start(&env).await
}

/// Responses SSE events, checking each `event:` line names its data's `type`, that the
/// sequence numbers count from 0 and that no `[DONE]` is sent.
fn events(body: &[u8]) -> Vec<Value> {
    let text = String::from_utf8_lossy(body);
    assert!(!text.lines().any(|l| l == "data: [DONE]"), "{text}");
    let out: Vec<Value> = text
        .split("\n\n")
        .filter(|e| e.lines().any(|l| l.starts_with("data: ")))
        .map(|e| {
            let event = e
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("");
            let data = e
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or("");
            let data: Value = serde_json::from_str(data).expect("data is JSON");
            assert_eq!(data["type"], event, "event line equals data.type");
            data
        })
        .collect();
    for (i, e) in out.iter().enumerate() {
        assert_eq!(e["sequence_number"], i as u64, "{e}");
    }
    out
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e["type"].as_str()).collect()
}

async fn delete(url: &str) -> u16 {
    send(http::Request::delete(url), Vec::new()).await.0
}

fn groq_reply(message: Value, finish: &str) -> Reply {
    Reply::json(json!({
        "id": "chatcmpl-up", "object": "chat.completion", "created": 1, "model": "llama-3.1-8b-instant",
        "choices": [{"index": 0, "finish_reason": finish, "message": message}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25,
                  "prompt_tokens_details": {"cached_tokens": 8}}
    }))
}

#[tokio::test]
async fn mock_answers_and_previous_response_id_works_on_the_next_request() {
    let db = tempfile::tempdir().expect("tempdir");
    let gw = gateway(&db, &[]).await;
    let (status, headers, body) = post_json(
        &gw.url("/v1/responses"),
        &json!({"model": "mock/echo", "instructions": "Be terse.", "input": "Hello there"}),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["x-proxygate-provider"], "mock");
    let first: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(first["object"], "response");
    assert_eq!(first["status"], "completed");
    assert!(
        first["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("resp_"))
    );
    assert_eq!(first["output"][0]["type"], "message");
    assert_eq!(first["output"][0]["role"], "assistant");
    assert_eq!(first["output"][0]["content"][0]["type"], "output_text");
    assert!(
        first["usage"]["input_tokens"]
            .as_u64()
            .is_some_and(|n| n > 0)
    );
    let id = first["id"].as_str().unwrap_or_default().to_owned();

    // The very next request continues it.
    let (status, _, body) = post_json(
        &gw.url("/v1/responses"),
        &json!({"model": "mock/echo", "input": "And again", "previous_response_id": id}),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let second: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(second["previous_response_id"], id.as_str());
    let second_id = second["id"].as_str().unwrap_or_default().to_owned();

    let (status, body) = get(&gw.url(&format!("/v1/responses/{second_id}/input_items"))).await;
    assert_eq!(status, 200);
    let items: Value = serde_json::from_slice(&body).expect("json");
    let data = items["data"].as_array().cloned().unwrap_or_default();
    // The first input, the first answer, the new input.
    assert_eq!(data.len(), 3, "{items}");
    assert_eq!(data[0]["content"], "Hello there");
    assert_eq!(data[1]["role"], "assistant");
    assert_eq!(data[2]["content"], "And again");
    assert!(data.iter().all(|i| i["id"].is_string()));

    let (status, body) = get(&gw.url(&format!("/v1/responses/{id}"))).await;
    assert_eq!(status, 200);
    let got: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(got["output"], first["output"]);

    assert_eq!(delete(&gw.url(&format!("/v1/responses/{id}"))).await, 200);
    assert_eq!(get(&gw.url(&format!("/v1/responses/{id}"))).await.0, 404);
    assert_eq!(delete(&gw.url(&format!("/v1/responses/{id}"))).await, 404);
    let (status, _, body) = post_json(
        &gw.url("/v1/responses"),
        &json!({"model": "mock/echo", "input": "x", "previous_response_id": id}),
    )
    .await;
    assert_eq!(status, 404);
    let err: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(err["error"]["param"], "previous_response_id");

    // `store: false` keeps nothing.
    let (_, _, body) = post_json(
        &gw.url("/v1/responses"),
        &json!({"model": "mock/echo", "input": "x", "store": false}),
    )
    .await;
    let unstored: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(unstored["store"], false);
    let path = format!(
        "/v1/responses/{}",
        unstored["id"].as_str().unwrap_or_default()
    );
    assert_eq!(get(&gw.url(&path)).await.0, 404);
}

#[tokio::test]
async fn stored_responses_belong_to_their_caller() {
    let db = tempfile::tempdir().expect("tempdir");
    let gw = gateway(&db, &[("PROXYGATE_MASTER_KEY", "master-secret-key".into())]).await;
    let master = |r: http::request::Builder| r.header("authorization", "Bearer master-secret-key");
    let req = master(http::Request::post(gw.url("/v1/responses")))
        .header("content-type", "application/json");
    let (status, _, body) = send(
        req,
        json!({"model": "mock/echo", "input": "mine"})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    let id = serde_json::from_slice::<Value>(&body).expect("json")["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // The master key reads it; a virtual key does not see it.
    let path = gw.url(&format!("/v1/responses/{id}"));
    assert_eq!(
        send(master(http::Request::get(&path)), Vec::new()).await.0,
        200
    );
    let (status, _, body) = send(
        master(http::Request::post(gw.url("/admin/keys")))
            .header("content-type", "application/json"),
        json!({"name": "other"}).to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let key = serde_json::from_slice::<Value>(&body).expect("json")["key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let other = http::Request::get(&path).header("authorization", format!("Bearer {key}"));
    assert_eq!(send(other, Vec::new()).await.0, 404);
}

#[tokio::test]
async fn openai_compatible_stream_with_a_tool_call_follows_the_event_grammar() {
    let args = "{\"city\": \"Oslo\"}";
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let fake = FakeUpstream::start(Reply::openai_sse(&[
        chunk(json!({"role": "assistant", "content": "Let me "}), Value::Null),
        chunk(json!({"content": "check."}), Value::Null),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_7", "type": "function",
                                  "function": {"name": "get_weather", "arguments": ""}}]}),
            Value::Null,
        ),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": &args[..7]}}]}), Value::Null),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": &args[7..]}}]}), Value::Null),
        chunk(json!({}), json!("tool_calls")),
        json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [], "usage": {"prompt_tokens": 33, "completion_tokens": 21, "total_tokens": 54}}),
    ]))
    .await;
    let db = tempfile::tempdir().expect("tempdir");
    let gw = gateway(
        &db,
        &[
            ("GROQ_API_KEY", "gsk-test".into()),
            ("GROQ_BASE_URL", fake.url("/openai/v1")),
        ],
    )
    .await;
    let (status, headers, body) = post_json(
        &gw.url("/v1/responses"),
        &json!({"model": GROQ, "stream": true, "input": [{"role": "user", "content": "Weather in Oslo?"}],
                "tools": [{"type": "function", "name": "get_weather", "strict": true,
                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
                          {"type": "namespace", "name": "ns", "tools": [
                              {"type": "function", "name": "inner", "parameters": {"type": "object"}}]},
                          {"type": "web_search"}]}),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(headers["x-proxygate-dropped-tools"], "web_search");
    let sent = fake.requests()[0].json();
    let names: Vec<&str> = sent["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert_eq!(names, ["get_weather", "inner"]);
    let ev = events(&body);
    assert_eq!(
        kinds(&ev),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let done = ev.last().cloned().unwrap_or_default();
    assert_eq!(done["response"]["usage"]["total_tokens"], 54);
    assert_eq!(done["response"]["output"][1]["call_id"], "call_7");
    assert_eq!(done["response"]["output"][1]["arguments"], args);
    assert_eq!(ev[12]["arguments"], args);
    // Stored before the last byte left: the next request continues with the tool's output.
    fake.set_fallback(groq_reply(
        json!({"role": "assistant", "content": "14C."}),
        "stop",
    ));
    let (status, _, body) = post_json(
        &gw.url("/v1/responses"),
        &json!({"model": GROQ, "previous_response_id": done["response"]["id"],
                "input": [{"type": "function_call_output", "call_id": "call_7", "output": "14C"}]}),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let sent = fake.requests()[1].json();
    let msgs = sent["messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(msgs.len(), 3, "{sent}");
    assert_eq!(msgs[1]["content"], "Let me check.");
    assert_eq!(msgs[1]["tool_calls"][0]["id"], "call_7");
    assert_eq!(
        msgs[2],
        json!({"role": "tool", "content": "14C", "tool_call_id": "call_7"})
    );
    let answer: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(answer["usage"]["input_tokens_details"]["cached_tokens"], 8);
}

#[tokio::test]
async fn upstream_failure_mid_stream_is_response_failed() {
    let fake = FakeUpstream::start(Reply::sse(&[
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n",
    ]))
    .await;
    let db = tempfile::tempdir().expect("tempdir");
    let gw = gateway(
        &db,
        &[
            ("GROQ_API_KEY", "gsk-test".into()),
            ("GROQ_BASE_URL", fake.url("/openai/v1")),
        ],
    )
    .await;
    let (status, _, body) = post_json(
        &gw.url("/v1/responses"),
        &json!({"model": GROQ, "stream": true, "input": "Hi"}),
    )
    .await;
    assert_eq!(status, 200);
    let ev = events(&body);
    let k = kinds(&ev);
    assert_eq!(k.last(), Some(&"response.failed"), "{k:?}");
    assert!(!k.contains(&"response.completed"));
    assert_eq!(
        ev.last().cloned().unwrap_or_default()["response"]["status"],
        "failed"
    );
}

#[tokio::test]
async fn anthropic_tool_round_trip_without_stored_state() {
    let fake = FakeUpstream::start(Reply::json(json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 30, "output_tokens": 12}
    })))
    .await;
    let db = tempfile::tempdir().expect("tempdir");
    let gw = gateway(
        &db,
        &[
            ("ANTHROPIC_API_KEY", "sk-ant-test".into()),
            ("ANTHROPIC_BASE_URL", fake.url("")),
        ],
    )
    .await;
    let tools = json!([{"type": "function", "name": "get_weather",
                        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    let (status, _, body) = post_json(
        &gw.url("/v1/responses"),
        &json!({"model": CLAUDE, "store": false, "include": ["reasoning.encrypted_content"],
                "instructions": "Be terse.", "tools": tools, "input": "Weather in Oslo?"}),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let first: Value = serde_json::from_slice(&body).expect("json");
    let output = first["output"].as_array().cloned().unwrap_or_default();
    assert_eq!(output.len(), 2, "{first}");
    assert_eq!(output[0]["content"][0]["text"], "Checking.");
    assert_eq!(output[1]["type"], "function_call");
    assert_eq!(output[1]["call_id"], "toolu_1");
    assert_eq!(output[1]["arguments"], "{\"city\":\"Oslo\"}");
    assert_eq!(fake.requests()[0].json()["system"], "Be terse.");

    // Stateless (`store: false`), as Codex runs: the client sends the items back.
    fake.set_fallback(Reply::json(json!({
        "id": "msg_2", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "14C."}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 50, "output_tokens": 3}
    })));
    let mut input = vec![json!({"role": "user", "content": "Weather in Oslo?"})];
    input.extend(output);
    input.push(json!({"type": "function_call_output", "call_id": "toolu_1", "output": "14C"}));
    let (status, _, body) = post_json(
        &gw.url("/v1/responses"),
        &json!({"model": CLAUDE, "store": false, "tools": tools, "input": input}),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let sent = fake.requests()[1].json();
    let msgs = sent["messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(msgs.len(), 3, "{sent}");
    assert_eq!(msgs[1]["role"], "assistant");
    assert_eq!(
        msgs[1]["content"][0],
        json!({"type": "text", "text": "Checking."})
    );
    assert_eq!(msgs[1]["content"][1]["type"], "tool_use");
    assert_eq!(msgs[1]["content"][1]["id"], "toolu_1");
    assert_eq!(msgs[2]["content"][0]["type"], "tool_result");
    assert_eq!(msgs[2]["content"][0]["tool_use_id"], "toolu_1");
    let answer: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(answer["output"][0]["content"][0]["text"], "14C.");
}

#[tokio::test]
async fn forcing_a_hosted_tool_is_a_400_naming_it() {
    let db = tempfile::tempdir().expect("tempdir");
    let gw = gateway(&db, &[]).await;
    let (status, _, body) = post_json(
        &gw.url("/v1/responses"),
        &json!({"model": "mock/echo", "input": "x", "tools": [{"type": "web_search"}],
                "tool_choice": {"type": "web_search"}}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("web_search"));
}

#[tokio::test]
async fn openai_deployments_pass_the_body_through_and_relay_the_reply() {
    let upstream = json!({
        "id": "resp_upstream1", "object": "response", "created_at": 1, "status": "completed",
        "model": "gpt-4.1-mini-2025-04-14", "output": [{"type": "message", "id": "msg_u", "status": "completed",
            "role": "assistant", "content": [{"type": "output_text", "text": "Hi!", "annotations": []}]}],
        "usage": {"input_tokens": 1000, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": 500, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 1500}
    });
    let fake = FakeUpstream::start(Reply::json(upstream.clone())).await;
    let db = tempfile::tempdir().expect("tempdir");
    let gw = gateway(
        &db,
        &[
            ("OPENAI_API_KEY", "sk-openai-test".into()),
            ("OPENAI_BASE_URL", fake.url("/v1")),
        ],
    )
    .await;
    let client_body = json!({
        "model": "openai/gpt-4.1-mini", "input": [{"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "Hi"}]}],
        "tools": [{"type": "web_search"}], "tool_choice": "auto", "store": false,
        "include": ["reasoning.encrypted_content"], "prompt_cache_key": "k", "client_metadata": {"a": "b"}
    });
    let (status, headers, body) = post_json(&gw.url("/v1/responses"), &client_body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(fake.requests()[0].path, "/v1/responses");
    let mut expected = client_body.clone();
    expected["model"] = json!("gpt-4.1-mini");
    assert_eq!(fake.requests()[0].json(), expected);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).expect("json"),
        upstream
    );
    assert!(!headers.contains_key("x-proxygate-dropped-tools"));
    let cost: f64 = headers["x-proxygate-cost-usd"].parse().unwrap_or(0.0);
    assert!(cost > 0.0, "usage read for cost: {headers:?}");

    // Streamed: every event relayed as it came.
    let events = [
        json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_u2", "status": "in_progress"}}),
        json!({"type": "response.output_text.delta", "sequence_number": 1, "item_id": "msg_u",
               "output_index": 0, "content_index": 0, "delta": "Hi", "logprobs": []}),
        json!({"type": "response.completed", "sequence_number": 2, "response": upstream}),
    ];
    let raw: Vec<String> = events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap_or("")))
        .collect();
    let raw_refs: Vec<&str> = raw.iter().map(String::as_str).collect();
    fake.set_fallback(Reply::sse(&raw_refs));
    let mut streamed = client_body.clone();
    streamed["stream"] = json!(true);
    let (status, _, body) = post_json(&gw.url("/v1/responses"), &streamed).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let mut expected = streamed.clone();
    expected["model"] = json!("gpt-4.1-mini");
    assert_eq!(fake.requests()[1].json(), expected);
    assert_eq!(self::events(&body), events);
}

#[tokio::test]
async fn anthropic_thinking_becomes_a_reasoning_item() {
    let fake = FakeUpstream::start(Reply::json(json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [
            {"type": "thinking", "thinking": "Short answer wanted.", "signature": "sig-abc"},
            {"type": "text", "text": "Hi."}
        ],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 30, "output_tokens": 12}
    })))
    .await;
    let db = tempfile::tempdir().expect("tempdir");
    let gw = gateway(
        &db,
        &[
            ("ANTHROPIC_API_KEY", "sk-ant-test".into()),
            ("ANTHROPIC_BASE_URL", fake.url("")),
        ],
    )
    .await;
    let (status, _, body) = post_json(
        &gw.url("/v1/responses"),
        &json!({"model": CLAUDE, "input": "Hi", "reasoning": {"effort": "low", "summary": "auto"},
                "include": ["reasoning.encrypted_content"]}),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let resp: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(resp["output"][0]["type"], "reasoning", "{resp}");
    assert_eq!(
        resp["output"][0]["summary"][0]["text"],
        "Short answer wanted."
    );
    assert!(
        resp["output"][0]["encrypted_content"]
            .as_str()
            .is_some_and(|e| e.starts_with("pg1."))
    );
    assert_eq!(resp["output"][1]["content"][0]["text"], "Hi.");
}

#[tokio::test]
async fn usage_records_and_metrics_name_the_responses_endpoint() {
    let db = tempfile::tempdir().expect("tempdir");
    let gw = gateway(&db, &[]).await;
    let endpoints = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = endpoints.clone();
    gw.gateway.usage().observe(std::sync::Arc::new(move |r| {
        if let Ok(mut v) = seen.lock() {
            v.push((r.endpoint.as_str(), r.prompt_tokens > 0));
        }
    }));
    for stream in [false, true] {
        let (s, _, _) = post_json(
            &gw.url("/v1/responses"),
            &json!({"model": "mock/echo", "input": "one two", "stream": stream}),
        )
        .await;
        assert_eq!(s, 200);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while endpoints.lock().map(|v| v.len()).unwrap_or(0) < 2 && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let got = endpoints.lock().map(|v| v.clone()).unwrap_or_default();
    assert_eq!(got, [("responses", true), ("responses", true)]);
    let (_, metrics) = get(&gw.url("/metrics")).await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("proxygate_requests_total")
                && l.contains("endpoint=\"responses\"")
                && !l.ends_with(" 0")),
        "{metrics}"
    );
}

#[tokio::test]
async fn gemini_tool_round_trip_with_previous_response_id() {
    let gemini = |parts: Value, finish: &str| {
        json!({
            "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}],
            "usageMetadata": {"promptTokenCount": 52, "candidatesTokenCount": 17, "totalTokenCount": 69},
            "modelVersion": "gemini-2.0-flash", "responseId": "abc123"
        })
    };
    let fake = FakeUpstream::start(Reply::json(gemini(
        json!([{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}]),
        "STOP",
    )))
    .await;
    let db = tempfile::tempdir().expect("tempdir");
    let gw = gateway(
        &db,
        &[
            ("GEMINI_API_KEY", "AIza-test".into()),
            ("GEMINI_BASE_URL", fake.url("")),
        ],
    )
    .await;
    let tools = json!([{"type": "function", "name": "get_weather",
                        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    let (status, _, body) = post_json(
        &gw.url("/v1/responses"),
        &json!({"model": "gemini/gemini-2.0-flash", "tools": tools, "input": "Weather in Oslo?"}),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let first: Value = serde_json::from_slice(&body).expect("json");
    let call = first["output"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["type"] == "function_call")
        .cloned()
        .unwrap_or_default();
    assert_eq!(call["name"], "get_weather", "{first}");
    assert_eq!(call["arguments"], "{\"city\":\"Oslo\"}");

    fake.set_fallback(Reply::json(gemini(json!([{"text": "14C, rain."}]), "STOP")));
    let (status, _, body) = post_json(
        &gw.url("/v1/responses"),
        &json!({"model": "gemini/gemini-2.0-flash", "tools": tools, "previous_response_id": first["id"],
                "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "14C, rain"}]}),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let second: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(second["output"][0]["content"][0]["text"], "14C, rain.");
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
async fn anthropic_thinking_signatures_round_trip_through_encrypted_content() {
    let fake = FakeUpstream::start(Reply::json(json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [
            {"type": "thinking", "thinking": "Need the weather tool.", "signature": "sig-abc=="},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 30, "output_tokens": 12}
    })))
    .await;
    let db = tempfile::tempdir().expect("tempdir");
    let gw = gateway(
        &db,
        &[
            ("ANTHROPIC_API_KEY", "sk-ant-test".into()),
            ("ANTHROPIC_BASE_URL", fake.url("")),
        ],
    )
    .await;
    let tools = json!([{"type": "function", "name": "get_weather",
                        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    let (status, _, body) = post_json(
        &gw.url("/v1/responses"),
        &json!({"model": CLAUDE, "store": false, "include": ["reasoning.encrypted_content"],
                "reasoning": {"effort": "medium"}, "tools": tools, "input": "Weather in Oslo?"}),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let first: Value = serde_json::from_slice(&body).expect("json");
    let output = first["output"].as_array().cloned().unwrap_or_default();
    assert_eq!(output[0]["type"], "reasoning", "{first}");
    assert!(output[0]["encrypted_content"].is_string());
    assert_eq!(output[1]["call_id"], "toolu_1");

    // Stateless (`store: false`), as Codex runs: the items go back with the tool's output.
    fake.set_fallback(Reply::json(json!({
        "id": "msg_2", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "14C."}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 50, "output_tokens": 3}
    })));
    let mut input = vec![json!({"role": "user", "content": "Weather in Oslo?"})];
    input.extend(output);
    input.push(json!({"type": "function_call_output", "call_id": "toolu_1", "output": "14C"}));
    let (status, _, body) = post_json(
        &gw.url("/v1/responses"),
        &json!({"model": CLAUDE, "store": false, "reasoning": {"effort": "medium"}, "tools": tools,
                "input": input}),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let sent = fake.requests()[1].json();
    let assistant = &sent["messages"][1];
    assert_eq!(
        assistant["content"][0],
        json!({"type": "thinking", "thinking": "Need the weather tool.", "signature": "sig-abc=="}),
        "{sent}"
    );
    assert_eq!(assistant["content"][1]["type"], "tool_use");
}
