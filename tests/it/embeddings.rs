//! `POST /v1/embeddings` end to end: the mock, and loopback fakes of OpenAI, Gemini
//! (embedContent / batchEmbedContents), Cohere (embed v2) and Azure OpenAI.

use crate::support::*;
use base64::Engine as _;
use serde_json::{Value, json};

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("a float array")
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn from_base64(v: &Value) -> Vec<f32> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.as_str().expect("a base64 string"))
        .unwrap();
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

async fn embed(
    gw: &TestGateway,
    body: Value,
) -> (u16, std::collections::HashMap<String, String>, Value) {
    let (status, headers, body) = post_json(&gw.url("/v1/embeddings"), &body).await;
    let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, headers, v)
}

#[tokio::test]
async fn mock_vectors_are_deterministic_and_base64_matches_floats() {
    let gw = TestGateway::start(&[]).await;
    let (status, headers, a) = embed(
        &gw,
        json!({"model": "mock/embed", "input": ["hello", "world"], "encoding_format": "float"}),
    )
    .await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(headers["x-proxygate-provider"], "mock");
    assert_eq!(a["object"], "list");
    assert_eq!(a["data"].as_array().unwrap().len(), 2);
    assert_eq!(a["data"][1]["index"], 1);
    assert_eq!(a["data"][0]["object"], "embedding");
    assert!(a["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let hello = floats(&a["data"][0]["embedding"]);
    assert_eq!(hello.len(), 64);
    assert_ne!(hello, floats(&a["data"][1]["embedding"]));
    let (_, _, b) = embed(
        &gw,
        json!({"model": "mock/embed", "input": "hello", "encoding_format": "base64"}),
    )
    .await;
    assert_eq!(from_base64(&b["data"][0]["embedding"]), hello);
    let (_, _, d) = embed(
        &gw,
        json!({"model": "mock/embed", "input": "hello", "dimensions": 8}),
    )
    .await;
    assert_eq!(floats(&d["data"][0]["embedding"]).len(), 8);
}

#[tokio::test]
async fn endpoints_only_route_to_models_of_their_mode() {
    let gw = TestGateway::start(&[]).await;
    let (status, _, v) = embed(&gw, json!({"model": "mock/echo", "input": "x"})).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["param"], "model");
    let (status, _, body) =
        post_json(&gw.url("/v1/chat/completions"), &chat("mock/embed", "x")).await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let (status, _, v) = embed(&gw, json!({"model": "mock/embed", "input": []})).await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["param"], "input");
    let (status, _, v) = embed(
        &gw,
        json!({"model": "mock/embed", "input": "x", "encoding_format": "hex"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["param"], "encoding_format");
}

#[tokio::test]
async fn models_list_marks_chat_and_embedding_modes() {
    let gw = TestGateway::start(&[]).await;
    let (_, body) = get(&gw.url("/v1/models")).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    let mode = |id: &str| {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .map(|m| m["mode"].clone())
            .unwrap_or_else(|| panic!("{id} listed"))
    };
    assert_eq!(mode("mock/embed"), "embedding");
    assert_eq!(mode("mock/echo"), "chat");
    assert_eq!(mode("openai/text-embedding-3-small"), "embedding");
    assert_eq!(mode("openai/gpt-4o-mini"), "chat");
    assert_eq!(mode("gemini/text-embedding-004"), "embedding");
    assert_eq!(mode("cohere/embed-english-v3.0"), "embedding");
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["mode"] == "chat" || m["mode"] == "embedding")
    );
}

#[tokio::test]
async fn openai_upstream_gets_floats_asked_and_usage_is_costed() {
    let fake = FakeUpstream::start(Reply::json(json!({
        "object": "list", "model": "text-embedding-3-small",
        "data": [{"object": "embedding", "index": 1, "embedding": [0.5, -0.25]},
                 {"object": "embedding", "index": 0, "embedding": [0.125, 1.0]}],
        "usage": {"prompt_tokens": 1000000, "total_tokens": 1000000}
    })))
    .await;
    let gw = TestGateway::start(&[
        ("OPENAI_API_KEY", "sk-embed-test".into()),
        ("OPENAI_BASE_URL", fake.url("/v1")),
    ])
    .await;
    let (status, headers, v) = embed(
        &gw,
        json!({"model": "text-embedding-3-small", "input": ["a", "b"], "encoding_format": "base64", "dimensions": 2}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let got = &fake.requests()[0];
    assert_eq!(got.path, "/v1/embeddings");
    assert_eq!(got.header("authorization"), Some("Bearer sk-embed-test"));
    let sent = got.json();
    assert_eq!(sent["model"], "text-embedding-3-small");
    assert_eq!(sent["input"], json!(["a", "b"]));
    assert_eq!(sent["encoding_format"], "float");
    assert_eq!(sent["dimensions"], 2);
    // In input order, whatever order the upstream sent.
    assert_eq!(from_base64(&v["data"][0]["embedding"]), [0.125, 1.0]);
    assert_eq!(from_base64(&v["data"][1]["embedding"]), [0.5, -0.25]);
    assert_eq!(v["usage"]["prompt_tokens"], 1_000_000);
    // $0.02 per 1M input tokens.
    assert_eq!(headers["x-proxygate-cost-usd"], "0.02");
    gw.gateway.usage().flush().await.unwrap();
    let (_, body) = get(&gw.url("/v1/usage")).await;
    let u: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(u["totals"]["prompt_tokens"], 1_000_000);
    assert!((u["totals"]["cost_usd"].as_f64().unwrap() - 0.02).abs() < 1e-9);
}

#[tokio::test]
async fn gemini_single_and_batch_embeddings() {
    let fake = FakeUpstream::start(Reply::json(
        json!({"embedding": {"values": [0.1, 0.2, 0.3]}}),
    ))
    .await;
    let gw = TestGateway::start(&[
        ("GEMINI_API_KEY", "AIza-embed-test".into()),
        ("GEMINI_BASE_URL", fake.url("")),
    ])
    .await;
    let (status, _, v) = embed(
        &gw,
        json!({"model": "gemini/text-embedding-004", "input": "hello world", "dimensions": 3}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let got = &fake.requests()[0];
    assert_eq!(got.path, "/v1beta/models/text-embedding-004:embedContent");
    assert_eq!(got.header("x-goog-api-key"), Some("AIza-embed-test"));
    assert_eq!(
        got.json(),
        json!({"model": "models/text-embedding-004", "content": {"parts": [{"text": "hello world"}]}, "outputDimensionality": 3})
    );
    assert_eq!(floats(&v["data"][0]["embedding"]), [0.1, 0.2, 0.3]);
    // Gemini reports no tokens: the tokenizer counts them ("hello world" is 2).
    assert_eq!(v["usage"]["prompt_tokens"], 2);

    fake.script([Reply::json(
        json!({"embeddings": [{"values": [1.0]}, {"values": [2.0]}]}),
    )]);
    let (status, _, v) = embed(
        &gw,
        json!({"model": "text-embedding-004", "input": ["a", "b"]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let got = &fake.requests()[1];
    assert_eq!(
        got.path,
        "/v1beta/models/text-embedding-004:batchEmbedContents"
    );
    assert_eq!(
        got.json()["requests"][1]["content"]["parts"][0]["text"],
        "b"
    );
    assert_eq!(floats(&v["data"][1]["embedding"]), [2.0]);
    gw.gateway.usage().flush().await.unwrap();
    let (_, body) = get(&gw.url("/v1/usage")).await;
    let u: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        u["totals"]["estimated_tokens"].as_u64().unwrap() >= 2,
        "{u}"
    );
}

#[tokio::test]
async fn cohere_embed_v2() {
    let fake = FakeUpstream::start(Reply::json(json!({
        "id": "e1", "embeddings": {"float": [[0.5, 0.5], [0.25, -1.0]]}, "texts": ["a", "b"],
        "meta": {"billed_units": {"input_tokens": 4}}
    })))
    .await;
    let gw = TestGateway::start(&[
        ("COHERE_API_KEY", "co-embed-test".into()),
        ("COHERE_BASE_URL", fake.url("")),
    ])
    .await;
    let (status, _, v) = embed(
        &gw,
        json!({"model": "cohere/embed-english-v3.0", "input": ["a", "b"], "input_type": "search_query"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let got = &fake.requests()[0];
    assert_eq!(got.path, "/v2/embed");
    assert_eq!(got.header("authorization"), Some("Bearer co-embed-test"));
    assert_eq!(
        got.json(),
        json!({"model": "embed-english-v3.0", "texts": ["a", "b"], "input_type": "search_query", "embedding_types": ["float"]})
    );
    assert_eq!(floats(&v["data"][1]["embedding"]), [0.25, -1.0]);
    assert_eq!(v["usage"]["prompt_tokens"], 4);
}

#[tokio::test]
async fn azure_embeddings_use_the_deployment_path() {
    let fake = FakeUpstream::start(Reply::json(json!({
        "object": "list", "model": "text-embedding-3-small",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.75]}],
        "usage": {"prompt_tokens": 3, "total_tokens": 3}
    })))
    .await;
    let gw = TestGateway::start(&[
        ("AZURE_OPENAI_API_KEY", "az-embed-test".into()),
        ("AZURE_OPENAI_ENDPOINT", fake.url("")),
        ("AZURE_OPENAI_API_VERSION", "2024-10-21".into()),
        (
            "AZURE_OPENAI_DEPLOYMENTS",
            "text-embedding-3-small=my-emb".into(),
        ),
    ])
    .await;
    let (status, _, v) = embed(
        &gw,
        json!({"model": "azure/text-embedding-3-small", "input": "x"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let got = &fake.requests()[0];
    assert_eq!(got.path, "/openai/deployments/my-emb/embeddings");
    assert_eq!(got.query.as_deref(), Some("api-version=2024-10-21"));
    assert_eq!(got.header("api-key"), Some("az-embed-test"));
    assert_eq!(floats(&v["data"][0]["embedding"]), [0.75]);
}

#[tokio::test]
async fn an_upstream_failure_fails_over_to_the_next_embedding_deployment() {
    let fake = FakeUpstream::start(Reply::json(json!({
        "object": "list", "model": "text-embedding-3-small",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}],
        "usage": {"prompt_tokens": 1, "total_tokens": 1}
    })))
    .await;
    fake.script([Reply::status_json(
        503,
        json!({"error": {"message": "overloaded"}}),
    )]);
    let gw = TestGateway::start(&[
        ("OPENAI_API_KEY", "sk-one,sk-two".into()),
        ("OPENAI_BASE_URL", fake.url("/v1")),
    ])
    .await;
    let (status, headers, v) = embed(
        &gw,
        json!({"model": "openai/text-embedding-3-small", "input": "x"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(headers["x-proxygate-attempts"], "2");
    assert_eq!(fake.hits(), 2);
}

#[tokio::test]
async fn the_response_cache_keeps_embeddings_per_input() {
    let fake = FakeUpstream::start(Reply::json(json!({
        "object": "list", "model": "text-embedding-3-small",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.5, 0.25]}],
        "usage": {"prompt_tokens": 3, "total_tokens": 3}
    })))
    .await;
    let gw = TestGateway::start(&[
        ("OPENAI_API_KEY", "sk-embed-cache".into()),
        ("OPENAI_BASE_URL", fake.url("/v1")),
        ("CACHE_ENABLED", "true".into()),
    ])
    .await;
    let body = json!({"model": "openai/text-embedding-3-small", "input": "same text"});
    let (status, headers, first) = embed(&gw, body.clone()).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(headers["x-proxygate-cache"], "miss");
    // Another encoding of the same question is a hit, and decodes to the same floats.
    let mut b64 = body.clone();
    b64["encoding_format"] = json!("base64");
    let (status, headers, second) = embed(&gw, b64).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-proxygate-cache"], "hit");
    assert_eq!(headers["x-proxygate-cost-usd"], "0");
    assert_eq!(
        from_base64(&second["data"][0]["embedding"]),
        floats(&first["data"][0]["embedding"])
    );
    assert_eq!(fake.hits(), 1);
    // Another input is another question.
    let (_, headers, _) = embed(
        &gw,
        json!({"model": "openai/text-embedding-3-small", "input": "other text"}),
    )
    .await;
    assert_eq!(headers["x-proxygate-cache"], "miss");
    assert_eq!(fake.hits(), 2);
}
