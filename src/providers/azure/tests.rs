use crate::catalog::models::azure::AZURE;
use serde_json::{Value, json};

use super::request::parse_deployments;
use super::*;
use crate::providers::Framing;
use crate::types::Usage;

fn adapter() -> Azure {
    let deployments =
        parse_deployments(Some(&"gpt-4o-mini=my-mini, gpt-4o = big-4o".into())).unwrap();
    Azure::new(
        "https://res.openai.azure.com/",
        "2024-10-21",
        Arc::new(deployments),
        Secret::new("az-test-key"),
    )
}

fn req(v: Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

#[test]
fn deployment_url_api_version_and_api_key() {
    let r = req(
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": true, "seed": 3}),
    );
    let up = adapter().request(&r).unwrap();
    assert_eq!(
        up.uri(),
        "https://res.openai.azure.com/openai/deployments/my-mini/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(up.headers()["api-key"], "az-test-key");
    assert!(up.headers().get("authorization").is_none());
    let body = openai_body(&r, &quirks_of(PROVIDER)).unwrap();
    assert_eq!(body["stream_options"]["include_usage"], true);
    assert_eq!(body["seed"], 3);
    // The deployment name itself also works; an unknown model fails over with a hint.
    let r = req(json!({"model": "big-4o", "messages": [{"role": "user", "content": "hi"}]}));
    assert!(
        adapter()
            .request(&r)
            .unwrap()
            .uri()
            .path()
            .contains("/big-4o/")
    );
    let r = req(json!({"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]}));
    let e = adapter().request(&r).unwrap_err();
    assert!(e.is_retryable());
    assert!(e.to_string().contains("AZURE_OPENAI_DEPLOYMENTS"), "{e}");
}

#[test]
fn deployments_config_is_validated_naming_the_variable() {
    for bad in [
        None,
        Some(""),
        Some("gpt-4o"),
        Some("gpt-4o=my deployment"),
        Some("=x"),
    ] {
        let v = bad.map(str::to_owned);
        let e = parse_deployments(v.as_ref()).unwrap_err();
        assert!(e.contains("AZURE_OPENAI_DEPLOYMENTS"), "{e}");
    }
    let settings = ProviderSettings {
        keys: vec![Secret::new("k")],
        base_url: AZURE.base_url.to_owned(),
        extra: HashMap::from([(ENV_AZURE_DEPLOYMENTS.to_owned(), "gpt-4o=x".to_owned())]),
    };
    let client = crate::client::build_client();
    let e = build(&AZURE, &settings, &client).unwrap_err();
    assert!(e.contains("AZURE_OPENAI_ENDPOINT"), "{e}");
    let settings = ProviderSettings {
        base_url: "https://res.openai.azure.com".into(),
        ..settings
    };
    let eps = build(&AZURE, &settings, &client).unwrap();
    assert_eq!(eps[0].extra_models, ["gpt-4o"]);
}

#[test]
fn documented_errors() {
    let a = adapter();
    let h = http::HeaderMap::new();
    let e = a.error(StatusCode::NOT_FOUND, &h, br#"{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again."}}"#);
    assert!(e.is_retryable());
    assert!(
        e.to_string().contains("does not exist")
            && e.to_string().contains("AZURE_OPENAI_DEPLOYMENTS")
    );
    let e = a.error(StatusCode::BAD_REQUEST, &h, br#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":true,"severity":"high"}}}}}"#);
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    assert!(!e.is_retryable());
    assert_eq!(e.envelope()["error"]["code"], "content_filter");
    let e = a.error(StatusCode::UNAUTHORIZED, &h, br#"{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}"#);
    assert!(e.is_retryable());
    let mut h = http::HeaderMap::new();
    h.insert("retry-after", "21".parse().unwrap());
    h.insert("retry-after-ms", "20500".parse().unwrap());
    let e = a.error(StatusCode::TOO_MANY_REQUESTS, &h, br#"{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 21 seconds."}}"#);
    assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        e.retry_after(),
        Some(std::time::Duration::from_millis(20_500))
    );
}

#[test]
fn filter_only_first_chunk_is_skipped_and_ids_come_from_real_chunks() {
    let events = [
        json!({"choices": [], "created": 0, "id": "", "model": "", "object": "",
               "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {"hate": {"filtered": false, "severity": "safe"}}}]}),
        json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null,
                            "content_filter_results": {}}],
               "created": 1730000000, "id": "chatcmpl-az", "model": "gpt-4o-mini-2024-07-18", "object": "chat.completion.chunk"}),
        json!({"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": null}],
               "created": 1730000000, "id": "chatcmpl-az", "model": "gpt-4o-mini-2024-07-18", "object": "chat.completion.chunk"}),
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
               "created": 1730000000, "id": "chatcmpl-az", "model": "gpt-4o-mini-2024-07-18", "object": "chat.completion.chunk"}),
        json!({"choices": [], "created": 1730000000, "id": "chatcmpl-az", "model": "gpt-4o-mini-2024-07-18",
               "object": "chat.completion.chunk", "usage": {"prompt_tokens": 8, "completion_tokens": 1, "total_tokens": 9}}),
    ];
    let mut raw: String = events
        .iter()
        .map(|e| format!("data: {e}\r\n\r\n"))
        .collect();
    raw.push_str("data: [DONE]\r\n\r\n");
    let mut d = adapter().decoder(&ChatRequest::default());
    let pieces: Vec<&[u8]> = raw.as_bytes().chunks(13).collect();
    let (out, end) = crate::providers::decode_pieces(Framing::Sse, &mut d, &pieces);
    end.unwrap();
    assert_eq!(out.len(), 4);
    assert!(out.iter().all(|c| c.id == "chatcmpl-az"));
    assert_eq!(out[3].usage, Some(Usage::new(8, 1)));
    assert!(out[3].is_usage_only());
}

#[test]
fn response_keeps_filter_results_and_fills_the_schema() {
    let body = json!({"id": "chatcmpl-az", "object": "chat.completion", "created": 1730000000, "model": "gpt-4o-2024-11-20",
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
        "choices": [{"index": 0, "finish_reason": "content_filter", "message": {"role": "assistant", "content": null},
                     "content_filter_results": {"violence": {"filtered": true, "severity": "medium"}}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 0, "total_tokens": 10}});
    let resp = adapter()
        .response(&ChatRequest::default(), body.to_string().as_bytes())
        .unwrap();
    assert_eq!(
        resp.choices[0].finish_reason.as_deref(),
        Some("content_filter")
    );
    assert_eq!(resp.model, "gpt-4o-2024-11-20");
    assert!(resp.extra.contains_key("prompt_filter_results"));
}
