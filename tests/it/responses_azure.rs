//! `POST /v1/responses` on an Azure OpenAI deployment: the client's Responses body goes to the
//! resource's Responses API (`/openai/v1/responses`, the deployment in `model`, the key in
//! `api-key`), and the reply and events come back as Azure sent them.

use crate::support::*;
use serde_json::{Value, json};

const KEY: &str = "azkey_responses_test_value";

fn env(fake: &FakeUpstream) -> Vec<(&'static str, String)> {
    vec![
        ("AZURE_OPENAI_API_KEY", KEY.into()),
        ("AZURE_OPENAI_ENDPOINT", fake.url("")),
        ("AZURE_OPENAI_API_VERSION", "2025-04-01-preview".into()),
        ("AZURE_OPENAI_DEPLOYMENTS", "gpt-4o-mini=team-mini".into()),
    ]
}

#[tokio::test]
async fn azure_deployments_pass_the_body_through_and_relay_the_reply() {
    let upstream = json!({
        "id": "resp_azure1", "object": "response", "created_at": 1, "status": "completed",
        "model": "gpt-4o-mini-2024-07-18", "output": [{"type": "message", "id": "msg_a", "status": "completed",
            "role": "assistant", "content": [{"type": "output_text", "text": "Hello", "annotations": []}]}],
        "usage": {"input_tokens": 2000, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": 700, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 2700}
    });
    let fake = FakeUpstream::start(Reply::json(upstream.clone())).await;
    let gw = TestGateway::start(&env(&fake)).await;
    let client_body = json!({
        "model": "azure/gpt-4o-mini", "input": [{"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "Hi"}]}],
        "tools": [{"type": "web_search"}], "tool_choice": "auto", "store": false,
        "include": ["reasoning.encrypted_content"], "prompt_cache_key": "k", "metadata": {"a": "b"}
    });
    let (status, headers, body) = post_json(&gw.url("/v1/responses"), &client_body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let r = &fake.requests()[0];
    assert_eq!(r.path, "/openai/v1/responses");
    assert_eq!(r.header("api-key"), Some(KEY));
    assert_eq!(r.header("authorization"), None);
    let mut expected = client_body.clone();
    expected["model"] = json!("team-mini");
    assert_eq!(r.json(), expected);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).expect("json"),
        upstream
    );
    assert!(!headers.contains_key("x-proxygate-dropped-tools"));
    let cost: f64 = headers["x-proxygate-cost-usd"].parse().unwrap_or(0.0);
    assert!(cost > 0.0, "usage read for cost: {headers:?}");

    // Streamed: every event relayed as it came.
    let events = [
        json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_azure2", "status": "in_progress"}}),
        json!({"type": "response.output_text.delta", "sequence_number": 1, "item_id": "msg_a",
               "output_index": 0, "content_index": 0, "delta": "Hello", "logprobs": []}),
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
    let r = &fake.requests()[1];
    assert_eq!(r.path, "/openai/v1/responses");
    let mut expected = streamed.clone();
    expected["model"] = json!("team-mini");
    assert_eq!(r.json(), expected);
    let text = String::from_utf8_lossy(&body);
    let got: Vec<Value> = text
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).expect("event json"))
        .collect();
    assert_eq!(got, events);
}

#[tokio::test]
async fn azure_chat_keeps_the_deployment_path() {
    let fake = FakeUpstream::start(Reply::json(json!({
        "id": "chatcmpl-az", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    })))
    .await;
    let gw = TestGateway::start(&env(&fake)).await;
    let (status, _, body) = post_json(
        &gw.url("/v1/chat/completions"),
        &json!({"model": "azure/gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        fake.requests()[0].path,
        "/openai/deployments/team-mini/chat/completions"
    );
}

#[tokio::test]
async fn a_forced_hosted_tool_passes_through_to_azure() {
    let upstream = json!({
        "id": "resp_azure3", "object": "response", "created_at": 1, "status": "completed",
        "model": "gpt-4o-mini-2024-07-18", "output": [],
        "usage": {"input_tokens": 5, "output_tokens": 0, "total_tokens": 5}
    });
    let fake = FakeUpstream::start(Reply::json(upstream.clone())).await;
    let gw = TestGateway::start(&env(&fake)).await;
    let client_body = json!({
        "model": "azure/gpt-4o-mini", "input": "Search the news",
        "tools": [{"type": "web_search"}], "tool_choice": {"type": "web_search"}, "store": false
    });
    let (status, _, body) = post_json(&gw.url("/v1/responses"), &client_body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let mut expected = client_body.clone();
    expected["model"] = json!("team-mini");
    assert_eq!(fake.requests()[0].json(), expected);

    // The same request for a model no OpenAI or Azure deployment serves is refused.
    let (status, _, body) = post_json(
        &gw.url("/v1/responses"),
        &json!({"model": "mock/echo", "input": "Search the news",
                "tools": [{"type": "web_search"}], "tool_choice": {"type": "web_search"}}),
    )
    .await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("web_search"));
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn an_upstream_minted_previous_response_id_goes_to_azure_and_is_404_elsewhere() {
    let upstream = json!({
        "id": "resp_azure5", "object": "response", "created_at": 1, "status": "completed",
        "model": "gpt-4o-mini-2024-07-18", "output": [],
        "usage": {"input_tokens": 5, "output_tokens": 0, "total_tokens": 5}
    });
    let fake = FakeUpstream::start(Reply::json(upstream.clone())).await;
    let db = tempfile::tempdir().expect("tempdir");
    let mut env = env(&fake);
    env.push((
        "USAGE_DB_PATH",
        db.path().join("usage.db").to_string_lossy().into_owned(),
    ));
    env.push(("USAGE_JOURNAL_DIR", "off".to_owned()));
    let gw = TestGateway::start(&env).await;
    let client_body = json!({
        "model": "azure/gpt-4o-mini", "input": "and then?",
        "previous_response_id": "resp_minted_by_azure", "store": true
    });
    let (status, _, body) = post_json(&gw.url("/v1/responses"), &client_body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let mut expected = client_body.clone();
    expected["model"] = json!("team-mini");
    assert_eq!(fake.requests()[0].json(), expected);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).expect("json"),
        upstream
    );

    // No OpenAI or Azure deployment serves the mock: the unknown id is a 404.
    let (status, _, body) = post_json(
        &gw.url("/v1/responses"),
        &json!({"model": "mock/echo", "input": "and then?",
                "previous_response_id": "resp_minted_by_azure"}),
    )
    .await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("previous_response_id"));
    assert_eq!(fake.requests().len(), 1);
}
