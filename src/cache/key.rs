//! The cache key: SHA-256 of the canonical request.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::types::ChatRequest;

/// Top-level fields that never change the answer: who asks (`user`), how it is delivered
/// (`stream`, `stream_options`), and bookkeeping the provider does not read for sampling.
const IGNORED: &[&str] = &["user", "stream", "stream_options", "metadata", "store"];

/// The hex SHA-256 of the request's endpoint, model, messages and every parameter that can
/// change the answer, with object keys in sorted order so that key order, whitespace and
/// `stream` make no difference.
pub fn cache_key(req: &ChatRequest) -> String {
    cache_key_for(req, true)
}

/// [`cache_key`], scoped to the caller (its virtual key, or the gateway's own master or open
/// access) unless `shared`; both include the answer-changing request headers
/// ([`CacheControl::vary`](crate::types::CacheControl::vary)).
pub fn cache_key_for(req: &ChatRequest, shared: bool) -> String {
    let mut h = Sha256::new();
    h.update(b"proxygate-cache-v1\0");
    h.update(req.ctx.endpoint.as_str().as_bytes());
    h.update(b"\0");
    if req.ctx.cache.vary != 0 {
        h.update(b"vary\0");
        h.update(req.ctx.cache.vary.to_le_bytes());
    }
    if !shared {
        h.update(b"caller\0");
        match &req.ctx.key_id {
            Some(id) => feed_str(id, &mut h),
            None => h.update(b"-"),
        }
    }
    // Embeddings: the embeddings request is the question (the vectors are kept as floats,
    // so the encoding the client wants does not matter). Messages: the client's own body,
    // which holds what the canonical request cannot (documents, thinking, cache_control) and
    // what a pass-through sends.
    let native = req
        .ctx
        .native_body
        .as_ref()
        .and_then(|b| serde_json::from_slice::<Value>(b).ok());
    let question = match (&req.ctx.embedding, native) {
        (Some(emb), _) => serde_json::to_value(&**emb).map(|mut v| {
            if let Some(o) = v.as_object_mut() {
                o.remove("encoding_format");
            }
            v
        }),
        (None, Some(native)) => Ok(native),
        (None, None) => serde_json::to_value(req),
    };
    match question {
        Ok(Value::Object(mut map)) => {
            for k in IGNORED {
                map.remove(*k);
            }
            feed(&Value::Object(map), &mut h);
        }
        // A request always serializes to an object; anything else still gets a stable key.
        Ok(other) => feed(&other, &mut h),
        Err(_) => h.update(req.model.as_bytes()),
    }
    let digest = h.finalize();
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
    out
}

/// Feeds `v` in a canonical, unambiguous form: objects with sorted keys, every value tagged.
fn feed(v: &Value, h: &mut Sha256) {
    match v {
        Value::Null => h.update(b"n"),
        Value::Bool(b) => h.update(if *b { b"t" } else { b"f" }),
        Value::Number(n) => {
            h.update(b"#");
            h.update(n.to_string().as_bytes());
            h.update(b";");
        }
        Value::String(s) => feed_str(s, h),
        Value::Array(items) => {
            h.update(b"[");
            for i in items {
                feed(i, h);
            }
            h.update(b"]");
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            h.update(b"{");
            for k in keys {
                feed_str(k, h);
                feed(&map[k], h);
            }
            h.update(b"}");
        }
    }
}

fn feed_str(s: &str, h: &mut Sha256) {
    h.update(b"\"");
    h.update((s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(json: &str) -> ChatRequest {
        serde_json::from_str(json).unwrap()
    }

    const BASE: &str =
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.2}"#;

    #[test]
    fn the_same_request_has_the_same_key_whatever_the_delivery() {
        let a = cache_key(&req(BASE));
        assert_eq!(a.len(), 64);
        let b = cache_key(&req(
            r#"{"temperature":0.2,"stream":true,"stream_options":{"include_usage":true},"user":"u1","messages":[{"content":"hi","role":"user"}],"model":"m"}"#,
        ));
        assert_eq!(a, b);
    }

    #[test]
    fn callers_and_answer_headers_are_in_the_key() {
        let a = req(BASE);
        let mut b = req(BASE);
        b.ctx.key_id = Some("vk_1".into());
        assert_ne!(cache_key_for(&a, false), cache_key_for(&b, false));
        assert_eq!(cache_key_for(&a, true), cache_key_for(&b, true));
        let mut beta = http::HeaderMap::new();
        beta.insert("anthropic-beta", http::HeaderValue::from_static("x-2025"));
        let mut c = req(BASE);
        c.ctx.cache = crate::types::CacheControl::from_headers(&beta);
        assert_ne!(cache_key_for(&a, true), cache_key_for(&c, true));
        let mut other = http::HeaderMap::new();
        other.insert("x-unrelated", http::HeaderValue::from_static("1"));
        let mut d = req(BASE);
        d.ctx.cache = crate::types::CacheControl::from_headers(&other);
        assert_eq!(cache_key_for(&a, true), cache_key_for(&d, true));
    }

    #[test]
    fn anything_that_changes_the_answer_changes_the_key() {
        let a = cache_key(&req(BASE));
        for other in [
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.3}"#,
            r#"{"model":"m2","messages":[{"role":"user","content":"hi"}],"temperature":0.2}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi!"}],"temperature":0.2}"#,
            r#"{"model":"m","messages":[{"role":"system","content":"hi"}],"temperature":0.2}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.2,"max_tokens":5}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.2,"seed":1}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.2,"tools":[{"type":"function","function":{"name":"f"}}]}"#,
        ] {
            assert_ne!(a, cache_key(&req(other)), "{other}");
        }
    }

    #[test]
    fn embeddings_and_native_bodies_are_the_question() {
        let emb = |v: serde_json::Value| {
            let e: crate::types::EmbeddingRequest = serde_json::from_value(v).unwrap();
            let mut r = ChatRequest {
                model: e.model.clone(),
                ..ChatRequest::default()
            };
            r.ctx.endpoint = crate::types::Api::Embeddings;
            r.ctx.embedding = Some(std::sync::Arc::new(e));
            cache_key(&r)
        };
        let a = emb(serde_json::json!({"model": "m", "input": "a"}));
        assert_eq!(
            a,
            emb(
                serde_json::json!({"model": "m", "input": "a", "encoding_format": "base64", "user": "u"})
            )
        );
        assert_ne!(a, emb(serde_json::json!({"model": "m", "input": "b"})));
        assert_ne!(
            a,
            emb(serde_json::json!({"model": "m", "input": "a", "dimensions": 8}))
        );

        let native = |body: &'static str| {
            let mut r = req(BASE);
            r.ctx.endpoint = crate::types::Api::Messages;
            r.ctx.native_body = Some(bytes::Bytes::from_static(body.as_bytes()));
            cache_key(&r)
        };
        let plain =
            native(r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#);
        let thinking = native(
            r#"{"model":"m","max_tokens":5,"thinking":{"type":"enabled","budget_tokens":9},"messages":[{"role":"user","content":"hi"}]}"#,
        );
        assert_ne!(plain, thinking);
        let streamed = native(
            r#"{"stream":true,"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#,
        );
        assert_eq!(plain, streamed);
    }

    #[test]
    fn the_endpoint_is_part_of_the_key() {
        let a = req(BASE);
        let mut b = req(BASE);
        b.ctx.endpoint = crate::types::Api::Messages;
        assert_ne!(cache_key(&a), cache_key(&b));
    }
}
