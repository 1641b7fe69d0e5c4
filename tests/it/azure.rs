//! Azure OpenAI end to end: gateway on loopback, a fake Azure resource on loopback.
//!
//! The scenarios every provider shares run in [`crate::conformance`]; this module keeps Azure's
//! own behaviour.

use crate::support::*;
use serde_json::{Value, json};

const KEY: &str = "azkey_secret_test_value";

fn env(fake: &FakeUpstream) -> Vec<(&'static str, String)> {
    vec![
        ("AZURE_OPENAI_API_KEY", KEY.into()),
        ("AZURE_OPENAI_ENDPOINT", fake.url("")),
        ("AZURE_OPENAI_API_VERSION", "2025-01-01-preview".into()),
        (
            "AZURE_OPENAI_DEPLOYMENTS",
            "gpt-4o-mini=my-mini,gpt-4.1=team-41".into(),
        ),
    ]
}

async fn gateway(fake: &FakeUpstream) -> TestGateway {
    TestGateway::start(&env(fake)).await
}

fn completion(message: Value, finish: &str) -> Value {
    json!({
        "id": "chatcmpl-az1", "object": "chat.completion", "created": 1730000000, "model": "gpt-4o-mini-2024-07-18",
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {"hate": {"filtered": false, "severity": "safe"}}}],
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": null,
                     "content_filter_results": {"hate": {"filtered": false, "severity": "safe"}}}],
        "usage": {"prompt_tokens": 13, "completion_tokens": 2, "total_tokens": 15}
    })
}

fn chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({"id": "chatcmpl-az2", "object": "chat.completion.chunk", "created": 1730000000, "model": "gpt-4o-mini-2024-07-18",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "content_filter_results": {}}]})
}

/// Azure's stream: a filter-only first chunk, deltas, a usage chunk, `[DONE]`; in pieces.
fn stream(deltas: &[(Value, Option<&str>)]) -> Reply {
    let first = json!({"choices": [], "created": 0, "id": "", "model": "", "object": "",
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {"hate": {"filtered": false, "severity": "safe"}}}]});
    let mut raw = format!("data: {first}\n\n");
    for (d, f) in deltas {
        raw.push_str(&format!("data: {}\n\n", chunk(d.clone(), *f)));
    }
    let usage = json!({"choices": [], "created": 1730000000, "id": "chatcmpl-az2", "model": "gpt-4o-mini-2024-07-18",
        "object": "chat.completion.chunk", "usage": {"prompt_tokens": 8, "completion_tokens": 3, "total_tokens": 11}});
    raw.push_str(&format!("data: {usage}\n\ndata: [DONE]\n\n"));
    let mut cuts = vec![9, raw.len() / 3, raw.len() / 2, raw.len() - 6];
    if let Some(p) = raw.find('ø') {
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

#[tokio::test]
async fn deployment_path_api_version_and_api_key() {
    let fake = FakeUpstream::start(Reply::json(completion(
        json!({"role": "assistant", "content": "Hello!", "refusal": null}),
        "stop",
    )))
    .await;
    let gw = gateway(&fake).await;
    let mut body = chat("azure/gpt-4o-mini", "Hi");
    body["max_completion_tokens"] = json!(30);
    body["seed"] = json!(4);
    let (status, headers, resp) = post_json(&gw.url("/v1/chat/completions"), &body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    let resp: Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(resp["choices"][0]["message"]["content"], "Hello!");
    assert_eq!(resp["model"], "gpt-4o-mini-2024-07-18");
    assert_eq!(resp["usage"]["total_tokens"], 15);
    assert_eq!(headers["x-proxygate-provider"], "azure");
    assert_eq!(headers["x-proxygate-deployment"], "azure/gpt-4o-mini");

    let r = &fake.requests()[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str(), r.query.as_deref()),
        (
            "POST",
            "/openai/deployments/my-mini/chat/completions",
            Some("api-version=2025-01-01-preview")
        )
    );
    assert_eq!(r.header("api-key"), Some(KEY));
    assert_eq!(r.header("authorization"), None);
    let sent = r.json();
    assert_eq!(sent["messages"][0]["content"], "Hi");
    assert_eq!(
        (&sent["max_completion_tokens"], &sent["seed"]),
        (&json!(30), &json!(4))
    );
}

#[tokio::test]
async fn bare_and_configured_extra_models_resolve_to_azure() {
    let fake = FakeUpstream::start(Reply::json(completion(
        json!({"role": "assistant", "content": "ok"}),
        "stop",
    )))
    .await;
    let gw = gateway(&fake).await;
    let url = gw.url("/v1/chat/completions");
    let (status, headers, _) = post_json(&url, &chat("gpt-4o-mini", "Hi")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-proxygate-provider"], "azure");
    // A model only the deployments list knows.
    let (status, headers, _) = post_json(&url, &chat("gpt-4.1", "Hi")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-proxygate-deployment"], "azure/gpt-4.1");
    assert_eq!(
        fake.requests()[1].path,
        "/openai/deployments/team-41/chat/completions"
    );
    // A catalog model with no deployment says which variable to set, without a call.
    let (status, _, body) = post_json(&url, &chat("azure/gpt-4o", "Hi")).await;
    assert_eq!(status, 502);
    assert!(String::from_utf8_lossy(&body).contains("AZURE_OPENAI_DEPLOYMENTS"));
    assert_eq!(fake.hits(), 2);
    let (_, models) = get(&gw.url("/v1/models")).await;
    let models: Value = serde_json::from_slice(&models).unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    for id in ["azure/gpt-4o", "azure/gpt-4o-mini", "azure/gpt-4.1"] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
}

#[tokio::test]
async fn stream_skips_the_filter_only_first_chunk_and_keeps_usage() {
    let fake = FakeUpstream::start(stream(&[
        (json!({"role": "assistant", "content": ""}), None),
        (json!({"content": "Hei fra Tromsø"}), None),
        (json!({}), Some("stop")),
    ]))
    .await;
    let gw = gateway(&fake).await;
    let mut body = chat("azure/gpt-4o-mini", "Hi");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, _, resp) = post_json(&gw.url("/v1/chat/completions"), &body).await;
    assert_eq!(status, 200);
    let cs = sse_chunks(&resp);
    assert_eq!(cs[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(cs.iter().all(|c| c["id"] == "chatcmpl-az2"), "{cs:?}");
    let text: String = cs
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hei fra Tromsø");
    let last = cs.last().unwrap();
    assert_eq!(
        (&last["choices"], &last["usage"]["total_tokens"]),
        (&json!([]), &json!(11))
    );
    assert_eq!(cs.iter().filter(|c| c["choices"] == json!([])).count(), 1);
    let r = &fake.requests()[0];
    assert_eq!(r.json()["stream_options"]["include_usage"], true);
    assert_eq!(r.query.as_deref(), Some("api-version=2025-01-01-preview"));
}

#[tokio::test]
async fn tool_calls_streamed_and_not() {
    let calls = json!([{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]);
    let fake = FakeUpstream::start(Reply::json(completion(
        json!({"role": "assistant", "content": null, "tool_calls": calls}),
        "tool_calls",
    )))
    .await;
    let gw = gateway(&fake).await;
    let url = gw.url("/v1/chat/completions");
    let mut body = chat("azure/gpt-4o-mini", "Weather?");
    body["tools"] = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
    let (status, _, resp) = post_json(&url, &body).await;
    assert_eq!(status, 200);
    let resp: Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(resp["choices"][0]["message"]["tool_calls"], calls);
    assert_eq!(resp["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        fake.requests()[0].json()["tools"][0]["function"]["name"],
        "get_weather"
    );

    fake.script([stream(&[
        (json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}), None),
        (json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}), None),
        (json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Bodø\"}"}}]}), None),
        (json!({}), Some("tool_calls")),
    ])]);
    body["stream"] = json!(true);
    let (status, _, resp) = post_json(&url, &body).await;
    assert_eq!(status, 200);
    let cs = sse_chunks(&resp);
    let args: String = cs
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(args, "{\"city\":\"Bodø\"}");
    assert!(
        cs.iter()
            .any(|c| c["choices"][0]["finish_reason"] == "tool_calls")
    );
    // Usage not asked for: none shown, though the gateway asked Azure for it.
    assert!(cs.iter().all(|c| c.get("usage").is_none_or(Value::is_null)));
}

#[tokio::test]
async fn documented_errors_and_rate_limit() {
    let fake = FakeUpstream::start(Reply::json(completion(
        json!({"role": "assistant", "content": "x"}),
        "stop",
    )))
    .await;
    let gw = gateway(&fake).await;
    let url = gw.url("/v1/chat/completions");

    fake.script([Reply::status_json(400, json!({"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
        "type": null, "param": "prompt", "code": "content_filter", "status": 400,
        "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {"violence": {"filtered": true, "severity": "medium"}}}}}))]);
    let (status, _, body) = post_json(&url, &chat("azure/gpt-4o-mini", "x")).await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "content_filter");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("content management policy")
    );

    fake.script([Reply::status_json(404, json!({"error": {"code": "DeploymentNotFound", "message": "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again."}}))]);
    let (status, _, body) = post_json(&url, &chat("azure/gpt-4o-mini", "x")).await;
    assert_eq!(status, 502);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "DeploymentNotFound");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("AZURE_OPENAI_DEPLOYMENTS")
    );

    fake.script([Reply::status_json(401, json!({"error": {"code": "401", "message": format!("Access denied due to invalid subscription key {KEY} or wrong API endpoint.")}}))]);
    let (status, _, body) = post_json(&url, &chat("azure/gpt-4o-mini", "x")).await;
    assert_eq!(status, 502);
    assert!(!String::from_utf8_lossy(&body).contains("azkey_"));

    fake.script([Reply::status_json(429, json!({"error": {"code": "429", "message": "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2025-01-01-preview have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 21 seconds."}}))
        .header("retry-after", "21")
        .header("retry-after-ms", "20500")]);
    let (status, headers, body) = post_json(&url, &chat("azure/gpt-4o-mini", "x")).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "21");
    assert!(String::from_utf8_lossy(&body).contains("exceeded token rate limit"));
}

#[tokio::test]
async fn missing_endpoint_or_deployments_fail_startup_naming_the_variable() {
    let fake = FakeUpstream::start(Reply::Hang).await;
    for missing in ["AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_DEPLOYMENTS"] {
        let map: std::collections::HashMap<String, String> = env(&fake)
            .into_iter()
            .filter(|(k, _)| *k != missing)
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let config =
            proxygate::Config::from_env(&map, proxygate::catalog::Catalog::default()).unwrap();
        let Err(err) = proxygate::Gateway::new(config).await else {
            panic!("startup must fail without {missing}");
        };
        assert!(
            matches!(
                &err,
                proxygate::BuildError::Provider {
                    provider: "azure",
                    ..
                }
            ),
            "{err:?}"
        );
        let err = err.to_string();
        assert!(
            err.starts_with("provider azure: ") && err.contains(missing),
            "{err}"
        );
    }
}
