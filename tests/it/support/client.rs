//! A minimal HTTP client for tests (the crate's own pooled client) and request bodies.

use std::collections::HashMap;

/// A minimal HTTP client for tests (the crate's own pooled client).
pub async fn post_json(
    url: &str,
    body: &serde_json::Value,
) -> (u16, HashMap<String, String>, Vec<u8>) {
    post_raw(url, body.to_string().into_bytes(), "application/json").await
}

/// POSTs raw bytes.
pub async fn post_raw(
    url: &str,
    body: Vec<u8>,
    content_type: &str,
) -> (u16, HashMap<String, String>, Vec<u8>) {
    let req = http::Request::post(url).header("content-type", content_type);
    send(req, body).await
}

/// GETs a URL.
pub async fn get(url: &str) -> (u16, Vec<u8>) {
    let (status, _, body) = send(http::Request::get(url), Vec::new()).await;
    (status, body)
}

/// Sends a request with the crate's own pooled client; returns status, headers and body.
pub async fn send(
    req: http::request::Builder,
    body: Vec<u8>,
) -> (u16, HashMap<String, String>, Vec<u8>) {
    use http_body_util::BodyExt;
    let client = proxygate::client::build_client();
    let req = req
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .expect("request");
    let resp = client.request(req).await.expect("gateway answers");
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes().to_vec())
        .unwrap_or_default();
    (status, headers, body)
}

/// A user message request.
pub fn chat(model: &str, text: &str) -> serde_json::Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": text}]})
}
