use std::collections::VecDeque;

use serde_json::Value;
use serde_json::json;

use super::*;
use super::{request::*, response::*, stream::*};
use crate::providers::{SseEvent, StreamDecoder};
use crate::types::{Message, Role};

fn req(json: Value) -> ChatRequest {
    serde_json::from_value(json).unwrap()
}

#[test]
fn unknown_fields_pass_through_and_stream_asks_for_usage() {
    let a = OpenAiCompat::new(
        "groq",
        "http://x/openai/v1/",
        Some(Secret::new("gsk_test")),
        quirks_of("groq"),
    );
    let r = req(
        serde_json::json!({"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"seed":7,"brand_new_param":{"a":1}}),
    );
    let up = a.request(&r).unwrap();
    assert_eq!(up.uri(), "http://x/openai/v1/chat/completions");
    assert_eq!(up.headers()["authorization"], "Bearer gsk_test");
    let body = a.body(&r).unwrap();
    assert_eq!(body["brand_new_param"]["a"], 1);
    assert_eq!(body["seed"], 7);
    assert_eq!(body["stream_options"]["include_usage"], true);
}

#[test]
fn a_plain_http_upstream_gets_the_host_header_the_client_would_write() {
    let r = req(serde_json::json!({"model":"m","messages":[{"role":"user","content":"hi"}]}));
    for (base, host) in [
        ("http://127.0.0.1:8080/v1", Some("127.0.0.1:8080")),
        ("http://ollama/v1", Some("ollama")),
        ("http://ollama:80/v1", Some("ollama")),
        ("http://[::1]:11434/v1", Some("[::1]:11434")),
        // Over TLS the connection may be HTTP/2: the client decides.
        ("https://api.groq.com/openai/v1", None),
    ] {
        let a = OpenAiCompat::new("groq", base, None, quirks_of("groq"));
        let up = a.request(&r).unwrap();
        assert_eq!(
            up.headers().get("host").map(|v| v.to_str().unwrap()),
            host,
            "{base}"
        );
    }
}

#[test]
fn one_pass_body_matches_the_value_path() {
    let bodies = [
        serde_json::json!({"model":"m","messages":[{"role":"user","content":"hi"}]}),
        serde_json::json!({"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}),
        serde_json::json!({"model":"m","messages":[{"role":"developer","content":"d"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],"stream":true,"stream_options":{"include_usage":false,"x":1},"max_completion_tokens":9,"max_tokens":4,"temperature":0.5,"top_p":1.0,"stop":["s"],"n":1,"seed":3,"tool_choice":{"type":"function","function":{"name":"f"}},"response_format":{"type":"json_object"},"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"brand_new":{"a":[1,null]}}),
        serde_json::json!({"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}],"refusal":null},{"role":"tool","tool_call_id":"c","content":"r"}],"stream":false,"stream_options":{"include_usage":true},"max_completion_tokens":7,"tool_choice":"required"}),
        serde_json::json!({"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}),
        serde_json::json!({"model":"m","messages":[{"role":"user","content":"hi"}],"n":2,"logprobs":true,"top_logprobs":2,"logit_bias":{"1":2}}),
    ];
    for p in PROVIDERS_WITH_QUIRKS {
        let q = quirks_of(p);
        let a = OpenAiCompat::new(p, "http://x/v1", None, q);
        for b in &bodies {
            let r = req(b.clone());
            assert_eq!(
                a.body(&r).unwrap(),
                openai_body(&r, &q).unwrap(),
                "{p}: {b}"
            );
        }
    }
    // The plain OpenAI shape takes the one-pass path, even where fields could be dropped.
    let r = req(bodies[0].clone());
    assert!(FastBody::new(&r, &quirks_of("groq")).is_some());
    assert!(FastBody::new(&r, &quirks_of("cerebras")).is_some());
    let r = req(serde_json::json!({"model":"m","messages":[],"logit_bias":{}}));
    assert!(FastBody::new(&r, &quirks_of("groq")).is_none());
    assert!(a_body_lacks(&r, "groq", "logit_bias"));
}

/// A request parsed from `raw` that keeps `raw` as its client's bytes, routed to `upstream`.
fn verbatim(raw: &str, upstream: &str) -> ChatRequest {
    let mut r: ChatRequest = serde_json::from_str(raw).unwrap();
    r.ctx.verbatim = Some(bytes::Bytes::copy_from_slice(raw.as_bytes()));
    r.model = upstream.to_owned();
    r
}

#[test]
fn the_clients_bytes_go_upstream_with_only_the_model_replaced() {
    let raw = r#"{ "messages": [{"role":"user","content":"say \"model\": [x]"}], "model" : "groq/llama-3.1-8b-instant",
        "temperature": 0.50, "user": "model", "metadata": {"model": "not this one"} }"#;
    let r = verbatim(raw, "llama-3.1-8b-instant");
    let a = OpenAiCompat::new("groq", "http://x/openai/v1", None, quirks_of("groq"));
    let sent = a.body_bytes(&r).unwrap();
    assert_eq!(
        String::from_utf8(sent).unwrap(),
        raw.replace(
            r#""groq/llama-3.1-8b-instant""#,
            r#""llama-3.1-8b-instant""#
        )
    );
    // An upstream model id with characters JSON escapes is written escaped.
    let r = verbatim(raw, "odd\"id");
    let sent: Value = serde_json::from_slice(&a.body_bytes(&r).unwrap()).unwrap();
    assert_eq!(sent["model"], "odd\"id");
}

#[test]
fn the_clients_bytes_are_not_sent_when_the_body_would_differ() {
    // Each of these is written anew: a `null`, a stream whose usage the quirks ask for, an
    // output cap the quirks rename, a `model` key written with an escape, stream options the
    // quirks drop.
    let cases = [
        (
            "groq",
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stop":null}"#,
        ),
        (
            "groq",
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}"#,
        ),
        (
            "cerebras",
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":5}"#,
        ),
        (
            "groq",
            r#"{"mod\u0065l":"m","messages":[{"role":"user","content":"hi"}]}"#,
        ),
        (
            "mistral",
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":true}}"#,
        ),
    ];
    for (p, raw) in cases {
        let q = quirks_of(p);
        let a = OpenAiCompat::new(p, "http://x/v1", None, q);
        let r = verbatim(raw, "up");
        let sent = a.body_bytes(&r).unwrap();
        assert_ne!(
            sent,
            raw.replace("\"m\"", "\"up\"").into_bytes(),
            "{p}: {raw}"
        );
        let sent: Value = serde_json::from_slice(&sent).unwrap();
        assert_eq!(sent, openai_body(&r, &q).unwrap(), "{p}: {raw}");
    }
}

#[test]
fn the_clients_bytes_say_what_the_written_body_says() {
    let bodies = [
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
        r#"{"model":"m","messages":[{"role":"developer","content":"d"},{"role":"user","content":[{"type":"text","text":"a"}]}],"stream":true,"stream_options":{"include_usage":true,"x":1},"max_tokens":4,"temperature":0.5,"top_p":1.0,"stop":["s"],"n":1,"seed":3,"tool_choice":{"type":"function","function":{"name":"f"}},"response_format":{"type":"json_object"},"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"brand_new":{"a":[1]}}"#,
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"n":2,"logprobs":true,"top_logprobs":2,"logit_bias":{"1":2},"reasoning_effort":"low"}"#,
    ];
    for p in PROVIDERS_WITH_QUIRKS {
        let q = quirks_of(p);
        let a = OpenAiCompat::new(p, "http://x/v1", None, q);
        for raw in bodies {
            let r = verbatim(raw, "up");
            let sent: Value = serde_json::from_slice(&a.body_bytes(&r).unwrap()).unwrap();
            assert_eq!(sent, openai_body(&r, &q).unwrap(), "{p}: {raw}");
        }
    }
}

fn a_body_lacks(r: &ChatRequest, p: &str, key: &str) -> bool {
    let a = OpenAiCompat::new("x", "http://x/v1", None, quirks_of(p));
    a.body(r).unwrap().get(key).is_none()
}

const PROVIDERS_WITH_QUIRKS: &[&str] = &[
    "openai",
    "groq",
    "together",
    "fireworks",
    "cerebras",
    "sambanova",
    "mistral",
    "openrouter",
    "deepseek",
    "xai",
    "ollama",
];

#[test]
fn embeddings_ask_for_floats_and_read_floats_or_base64_in_input_order() {
    let emb: EmbeddingRequest = serde_json::from_value(json!({
        "model": "openai/text-embedding-3-small", "input": ["a", "b"],
        "encoding_format": "base64", "dimensions": 2, "user": "u"
    }))
    .unwrap();
    let r = req(json!({"model": "text-embedding-3-small", "messages": []}));
    assert_eq!(
        embedding_body(&r, &emb).unwrap(),
        json!({"model": "text-embedding-3-small", "input": ["a", "b"], "encoding_format": "float",
               "dimensions": 2, "user": "u"})
    );
    // [1.0, -2.0] as little-endian f32, base64.
    let resp = embedding_response(
        "openai",
        br#"{"object":"list","model":"m","data":[
            {"object":"embedding","index":1,"embedding":"AACAPwAAAMA="},
            {"object":"embedding","index":0,"embedding":[0.5,0.25]}],
           "usage":{"prompt_tokens":4,"total_tokens":4}}"#,
    )
    .unwrap();
    assert_eq!(resp.data[0].embedding, [0.5, 0.25]);
    assert_eq!(resp.data[1].embedding, [1.0, -2.0]);
    assert_eq!(resp.usage.unwrap().prompt_tokens, 4);
    assert!(embedding_response("openai", br#"{"data":[{"embedding":{}}]}"#).is_err());
}

#[test]
fn mistral_gets_a_whitelist_and_max_tokens() {
    let a = OpenAiCompat::new("mistral", "http://x/v1", None, quirks_of("mistral"));
    let mut r = req(
        serde_json::json!({"model":"m","messages":[],"max_completion_tokens":9,"metadata":{"a":1},"seed":3,"tool_choice":"required","stream":true,"stream_options":{"include_usage":true}}),
    );
    r.messages.push(Message::text(Role::User, "x"));
    let body = a.body(&r).unwrap();
    assert_eq!(body["max_tokens"], 9);
    assert!(body.get("max_completion_tokens").is_none());
    assert!(body.get("metadata").is_none());
    assert!(body.get("stream_options").is_none());
    assert_eq!(body["random_seed"], 3);
    assert_eq!(body["tool_choice"], "any");
}

#[test]
fn decoder_moves_groq_usage_to_a_final_chunk() {
    let mut d = OpenAiDecoder::new("groq");
    let mut out = VecDeque::new();
    let ev = |s: &str| SseEvent {
        event: None,
        data: s.into(),
    };
    d.event(ev(r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}"#), &mut out).unwrap();
    d.event(ev(r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"x_groq":{"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}}"#), &mut out).unwrap();
    d.event(ev("[DONE]"), &mut out).unwrap();
    d.finish(&mut out).unwrap();
    assert_eq!(out.len(), 3);
    assert!(out[1].usage.is_none() && out[1].extra.get("x_groq").is_none());
    assert!(out[2].is_usage_only());
    assert_eq!(out[2].usage.as_ref().unwrap().total_tokens, 4);
}

#[test]
fn truncated_stream_is_an_error_and_in_band_error_too() {
    let mut d = OpenAiDecoder::new("openai");
    let mut out = VecDeque::new();
    d.event(
        SseEvent {
            event: None,
            data: r#"{"id":"c","choices":[{"index":0,"delta":{"content":"a"}}]}"#.into(),
        },
        &mut out,
    )
    .unwrap();
    assert!(d.finish(&mut out).is_err());
    let e = d.event(
        SseEvent {
            event: None,
            data: r#"{"error":{"message":"boom","type":"server_error"}}"#.into(),
        },
        &mut out,
    );
    assert!(e.is_err());
}

#[test]
fn reasoning_models_get_only_the_parameters_they_take() {
    let spec = crate::catalog::Catalog::default()
        .provider("openai")
        .expect("openai in the catalog");
    let a = OpenAiCompat::new("openai", "http://x/v1", None, quirks_of("openai"))
        .with_models(spec.models);
    let req = |model: &str| -> ChatRequest {
        serde_json::from_value(json!({
            "model": model, "temperature": 0.3, "top_p": 0.9, "max_tokens": 500,
            "reasoning_effort": "high",
            "messages": [{"role": "user", "content": "Hi"}]
        }))
        .unwrap()
    };
    for model in ["o3-mini", "o4-mini", "gpt-5", "gpt-5-mini"] {
        let body = a.body(&req(model)).unwrap();
        // Refused by reasoning models: dropped, and the cap moves to max_completion_tokens.
        assert!(body.get("temperature").is_none(), "{model}");
        assert!(body.get("top_p").is_none(), "{model}");
        assert!(body.get("max_tokens").is_none(), "{model}");
        assert_eq!(body["max_completion_tokens"], 500, "{model}");
        assert_eq!(body["reasoning_effort"], "high", "{model}");
    }
    let body = a.body(&req("gpt-4o")).unwrap();
    assert_eq!(body["temperature"], 0.3);
    assert_eq!(body["max_tokens"], 500);
    assert!(
        body.get("reasoning_effort").is_none(),
        "gpt-4o does not reason"
    );
    // A model the catalog does not know gets what the client sent.
    let body = a.body(&req("o9-preview")).unwrap();
    assert_eq!(body["reasoning_effort"], "high");
    assert_eq!(body["temperature"], 0.3);
}

#[test]
fn reasoning_under_either_name_becomes_reasoning_content() {
    let mut resp: ChatResponse = serde_json::from_value(json!({
        "id": "c", "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "Hi", "reasoning": "Greeting."}}]
    }))
    .unwrap();
    normalise_response(&mut resp);
    let m = &resp.choices[0].message;
    assert_eq!(m.reasoning_content.as_deref(), Some("Greeting."));
    assert!(!m.extra.contains_key("reasoning"));

    let raw = concat!(
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":\"Hm\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"m.\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}]}\n\n",
        "data: [DONE]\n\n",
    );
    let mut dec = OpenAiDecoder::new("openrouter");
    let (chunks, end) = crate::providers::decode_pieces(
        crate::providers::Framing::Sse,
        &mut dec,
        &crate::providers::cut(raw.as_bytes(), &[40]),
    );
    assert!(end.is_ok());
    let reasoning: String = chunks
        .iter()
        .filter_map(|c| c.choices.first()?.delta.reasoning_content.clone())
        .collect();
    assert_eq!(reasoning, "Hmm.");
}
