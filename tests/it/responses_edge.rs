//! The edge's guards on `/v1/responses` and `/responses`: the Host allow-list, cross-origin
//! posts, non-JSON content types and strict JSON, each answered in the endpoint's error shape.

use crate::support::*;
use serde_json::{Value, json};

fn body() -> Vec<u8> {
    json!({"model": "mock/echo", "input": "hi", "store": false})
        .to_string()
        .into_bytes()
}

fn error_of(raw: &[u8]) -> Value {
    serde_json::from_slice::<Value>(raw).unwrap_or(Value::Null)["error"].clone()
}

#[tokio::test]
async fn the_host_origin_and_content_type_guards_cover_the_responses_paths() {
    let gw = TestGateway::start(&[
        ("ALLOWED_HOSTS", "gateway.internal".into()),
        ("CORS_ALLOWED_ORIGINS", "https://app.example.com".into()),
    ])
    .await;
    for path in ["/v1/responses", "/responses"] {
        let post = || http::Request::post(gw.url(path)).header("content-type", "application/json");
        let (status, _, raw) = send(post().header("host", "attacker.example"), body()).await;
        assert_eq!(status, 403, "{path} with a rebound Host");
        assert!(error_of(&raw)["message"].is_string(), "{path}");
        let (status, _, raw) = send(post().header("origin", "https://evil.example"), body()).await;
        assert_eq!(status, 403, "{path} from another origin");
        assert!(error_of(&raw)["message"].is_string(), "{path}");
        let req = http::Request::post(gw.url(path)).header("content-type", "text/plain");
        let (status, _, raw) = send(req, body()).await;
        assert_eq!(status, 415, "{path} as text/plain");
        assert!(error_of(&raw)["message"].is_string(), "{path}");
        let (status, headers, _) =
            send(post().header("origin", "https://app.example.com"), body()).await;
        assert_eq!(status, 200, "{path} from a listed origin");
        assert_eq!(
            headers["access-control-allow-origin"],
            "https://app.example.com"
        );
    }
}

#[tokio::test]
async fn strict_json_on_responses_names_json_and_the_field() {
    let gw = TestGateway::start(&[]).await;
    let post =
        || http::Request::post(gw.url("/v1/responses")).header("content-type", "application/json");
    let mut trailing = body();
    trailing.extend_from_slice(b"{\"model\":\"x\"}");
    let (status, _, raw) = send(post(), trailing).await;
    assert_eq!(status, 400);
    let e = error_of(&raw);
    assert!(e["message"].as_str().unwrap_or("").contains("json"), "{e}");
    let bad = |v: Value| v.to_string().into_bytes();
    let (status, _, raw) = send(
        post(),
        bad(json!({"model": "mock/echo", "input": "hi", "temperature": "hot"})),
    )
    .await;
    assert_eq!(status, 400);
    let e = error_of(&raw);
    assert!(e.to_string().contains("temperature"), "{e}");
    let (status, _, raw) = send(
        post(),
        bad(json!({"model": "mock/echo\u{0007}", "input": "hi"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(error_of(&raw).to_string().contains("model"));
    let (status, _, raw) = send(
        post(),
        bad(json!({"model": "m".repeat(5000), "input": "hi"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(error_of(&raw).to_string().contains("model"));
}
