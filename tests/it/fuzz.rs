//! Every body decoder of the edge (chat, messages, embeddings, count_tokens and responses) fed arbitrary
//! JSON, mutated valid bodies and mangled bytes: the router never panics, and every answer is
//! a 2xx or a 4xx in the endpoint's own error shape. A bounded number of cases, so it runs in
//! seconds with `cargo test`.

use std::collections::HashMap;

use http_body_util::BodyExt;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use serde_json::{Value, json};
use tower::ServiceExt;

const CASES: u32 = 48;

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("user"),
            Just("assistant"),
            Just("system"),
            Just("tool"),
            Just("mock/echo"),
            Just("mock/embed"),
            Just("text"),
            Just("image_url"),
            Just("tool_use"),
            Just("base64")
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("model".to_owned()),
                        Just("messages".to_owned()),
                        Just("role".to_owned()),
                        Just("content".to_owned()),
                        Just("input".to_owned()),
                        Just("n".to_owned()),
                        Just("dimensions".to_owned()),
                        Just("max_tokens".to_owned()),
                        Just("stream".to_owned()),
                        Just("tools".to_owned()),
                        Just("system".to_owned()),
                        Just("type".to_owned()),
                        "[a-z_]{1,8}",
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A valid body for `path`, with fields replaced, removed or added.
fn mutated(path: &'static str) -> impl Strategy<Value = Value> {
    let base = match path {
        "/v1/embeddings" => json!({"model": "mock/embed", "input": ["a", "b"], "dimensions": 8}),
        "/v1/messages" | "/v1/messages/count_tokens" => json!({
            "model": "mock/echo", "max_tokens": 16, "system": "be brief",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}),
        "/v1/responses" => json!({
            "model": "mock/echo", "instructions": "be brief", "max_output_tokens": 16,
            "store": false, "tool_choice": "auto", "include": ["reasoning.encrypted_content"],
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
            "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
                      {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                      {"type": "function_call_output", "call_id": "c1", "output": "ok"}]}),
        _ => json!({"model": "mock/echo", "n": 1, "temperature": 0.5,
            "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}]}),
    };
    let fields: Vec<String> = base
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    (
        prop::sample::select(fields),
        arb_json(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(move |(field, value, remove, stream)| {
            let mut body = base.clone();
            if let Some(o) = body.as_object_mut() {
                if remove {
                    o.remove(&field);
                } else {
                    o.insert(field, value);
                }
                if stream {
                    o.insert("stream".into(), json!(true));
                }
            }
            body
        })
}

/// Bytes: a JSON body, possibly cut short or with one byte changed.
fn bytes_of(body: impl Strategy<Value = Value>) -> impl Strategy<Value = Vec<u8>> {
    (body, any::<u8>(), any::<prop::sample::Index>(), 0u8..4).prop_map(|(v, byte, at, how)| {
        let mut b = v.to_string().into_bytes();
        if b.is_empty() {
            return b;
        }
        let i = at.index(b.len());
        match how {
            0 => b.truncate(i),
            1 => b[i] = byte,
            2 => b.extend_from_slice(b" {}"),
            _ => {}
        }
        b
    })
}

async fn answer(app: &axum::Router, path: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let req = http::Request::post(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body))
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes().to_vec())
        .unwrap_or_default();
    (status, body)
}

fn check(path: &str, status: u16, body: &[u8]) -> Result<(), TestCaseError> {
    prop_assert!(
        (200..300).contains(&status) || (400..500).contains(&status),
        "{path}: {status} {}",
        String::from_utf8_lossy(body)
    );
    if status >= 400 {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| TestCaseError::fail(format!("{path}: {status} body is not JSON: {e}")))?;
        if path.starts_with("/v1/messages") {
            prop_assert_eq!(v["type"].as_str(), Some("error"), "{}", v);
            prop_assert!(v["error"]["message"].is_string(), "{}", v);
        } else {
            prop_assert!(v["error"]["message"].is_string(), "{}", v);
        }
    }
    Ok(())
}

#[test]
fn every_edge_decoder_answers_any_body_with_a_2xx_or_a_4xx_in_its_shape() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let app = rt.block_on(async {
        let env: HashMap<String, String> =
            [("USAGE_DB_PATH".to_owned(), ":memory:".to_owned())].into();
        let config = proxygate::Config::from_env(&env, proxygate::catalog::Catalog::default())
            .expect("config");
        let gateway = proxygate::Gateway::new(config).await.expect("gateway");
        gateway.router()
    });
    for path in [
        "/v1/chat/completions",
        "/v1/messages",
        "/v1/messages/count_tokens",
        "/v1/embeddings",
        "/v1/responses",
    ] {
        let mut runner = TestRunner::new(RunnerConfig {
            cases: CASES,
            failure_persistence: None,
            ..RunnerConfig::default()
        });
        let strategy = prop_oneof![
            bytes_of(arb_json()),
            bytes_of(mutated(path)),
            prop::collection::vec(any::<u8>(), 0..64),
        ];
        let result = runner.run(&strategy, |body| {
            let (status, out) = rt.block_on(answer(&app, path, body));
            check(path, status, &out)
        });
        if let Err(e) = result {
            panic!("{path}: {e}");
        }
    }
}
