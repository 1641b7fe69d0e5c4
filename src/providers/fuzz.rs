//! The adapters' decoders under arbitrary input: every provider's response, error and stream
//! decoder takes random bytes and mutations of real wire samples (the committed seeds below)
//! cut at random places, and must never panic; a failure is a typed error whose envelope is a
//! 4xx/5xx (502 for an upstream's unreadable bytes). The client request decoder runs the same
//! strategies in `http`.
//!
//! Runs inside `cargo test` (so in `.ci/run`) with a fixed case count and a fixed RNG seed,
//! so it takes bounded time and a failure reproduces; set `PROPTEST_CASES` for a longer run.

use std::sync::Arc;

use http::{HeaderMap, StatusCode};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

use super::openai_compat::{OpenAiCompat, Quirks};
use super::sse::Framing;
use super::{ProviderAdapter, decode_pieces};
use crate::GatewayError;
use crate::types::ChatRequest;
use crate::types::Secret;

/// Seeds: one real sample per wire shape, mutated by the strategies.
const SEEDS: &[&[u8]] = &[
    br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#,
    b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"h\"},\"finish_reason\":null}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n",
    br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[{"type":"text","text":"hi"},{"type":"tool_use","id":"t","name":"f","input":{}}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":2}}"#,
    b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":3}}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"h\"}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":1}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    br#"{"candidates":[{"content":{"role":"model","parts":[{"text":"hi"},{"functionCall":{"name":"f","args":{}}}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":1,"candidatesTokenCount":1,"totalTokenCount":2}}"#,
    b"data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"h\"}]},\"index\":0}]}\r\n\r\ndata: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"i\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":1}}\r\n\r\n",
    br#"{"id":"c","message":{"role":"assistant","content":[{"type":"text","text":"hi"}],"tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"COMPLETE","usage":{"tokens":{"input_tokens":1,"output_tokens":1}}}"#,
    b"event: content-delta\ndata: {\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"text\":\"h\"}}}}\n\nevent: message-end\ndata: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"COMPLETE\",\"usage\":{\"tokens\":{\"input_tokens\":1,\"output_tokens\":1}}}}\n\n",
    br#"{"success":true,"result":{"message":{"role":"assistant","content":"hi"},"usage":[{"type":"prompt","amount":1},{"type":"completion","amount":1}]}}"#,
    b"{\"type\":\"text\",\"text\":\"h\"}\n{\"type\":\"text\",\"text\":\"i\"}\n",
    br#"{"error":{"message":"bad","type":"invalid_request_error","code":"x"}}"#,
    br#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#,
    b"",
    b"\xff\xfe\x00garbage",
];

fn req(stream: bool) -> ChatRequest {
    let mut r: ChatRequest = serde_json::from_value(serde_json::json!({
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    }))
    .unwrap_or_default();
    r.stream = Some(stream);
    r
}

/// Bytes: random ones, or a seed with random flips, cuts and insertions.
pub(crate) fn bytes() -> impl Strategy<Value = Vec<u8>> {
    let mutated = (
        0..SEEDS.len(),
        proptest::collection::vec((any::<u16>(), any::<u8>(), 0u8..3), 0..8),
        any::<u16>(),
    )
        .prop_map(|(i, edits, cut)| {
            let mut b = SEEDS[i].to_vec();
            for (at, byte, op) in edits {
                let at = if b.is_empty() {
                    0
                } else {
                    at as usize % b.len()
                };
                match op {
                    0 if !b.is_empty() => b[at] = byte,
                    1 => b.insert(at.min(b.len()), byte),
                    _ if !b.is_empty() => {
                        b.remove(at);
                    }
                    _ => {}
                }
            }
            if cut % 4 == 0 && !b.is_empty() {
                b.truncate(cut as usize % b.len());
            }
            b
        });
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        mutated.clone(),
        mutated,
    ]
}

pub(crate) fn config() -> Config {
    Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(512),
        rng_seed: RngSeed::Fixed(0x5eed_0009),
        failure_persistence: None,
        ..Config::default()
    }
}

pub(crate) fn assert_enveloped(e: &GatewayError) {
    let status = e.status();
    assert!(
        status.is_client_error() || status.is_server_error(),
        "{e:?} -> {status}"
    );
    let env = e.envelope();
    assert!(env["error"]["message"].is_string(), "{env}");
}

/// Every decoder of one adapter on `body` (as a whole answer, an error of a few statuses, and
/// a stream cut at `cuts`).
fn exercise<A: ProviderAdapter>(a: &A, framing: Framing, body: &[u8], cuts: &[usize]) {
    for stream in [false, true] {
        let r = req(stream);
        if !stream {
            let decoded = a.response(&r, body);
            if let Err(e) = &decoded {
                assert_enveloped(e);
            }
            // A body that may pass to the client unchanged is one the canonical path reads.
            if a.passthrough(&r, body).is_some() {
                assert!(decoded.is_ok(), "{}", String::from_utf8_lossy(body));
            }
            if let Some(e) = a.success_is_error(body) {
                assert_enveloped(&e);
            }
            for s in [400u16, 401, 429, 500, 503] {
                let status = StatusCode::from_u16(s).unwrap_or(StatusCode::BAD_GATEWAY);
                assert_enveloped(&a.error(status, &HeaderMap::new(), body));
            }
            continue;
        }
        let mut d = a.decoder(&r);
        let pieces = super::cut(body, cuts);
        let (_chunks, end) = decode_pieces(framing, &mut d, &pieces);
        if let Err(e) = end {
            assert_enveloped(&e);
        }
    }
}

fn key() -> Secret {
    Secret::new("fuzz-key-0000")
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_provider_decoder_survives_arbitrary_bytes(
        body in bytes(),
        cuts in proptest::collection::vec(any::<u16>().prop_map(usize::from), 0..6),
    ) {
        let mut cuts = cuts;
        cuts.sort_unstable();
        let openai = OpenAiCompat::new("groq", "http://127.0.0.1:9/v1", Some(key()), Quirks::default());
        exercise(&openai, Framing::Sse, &body, &cuts);
        let anthropic = super::anthropic::Anthropic::new("http://127.0.0.1:9", key());
        exercise(&anthropic, anthropic.framing(), &body, &cuts);
        let gemini = super::gemini::Gemini::new("http://127.0.0.1:9", key());
        exercise(&gemini, gemini.framing(), &body, &cuts);
        let cohere = super::cohere::Cohere::new("http://127.0.0.1:9", key());
        exercise(&cohere, cohere.framing(), &body, &cuts);
        let ai21 = super::ai21::Ai21::new("http://127.0.0.1:9", key());
        exercise(&ai21, ai21.framing(), &body, &cuts);
        let puter = super::puter::Puter::new("http://127.0.0.1:9", key());
        let r = req(true);
        exercise(&puter, puter.stream_framing(&r), &body, &cuts);
        let azure = super::azure::Azure::new(
            "http://127.0.0.1:9",
            "2024-10-21",
            Arc::new([("m".to_owned(), "d".to_owned())].into_iter().collect()),
            key(),
        );
        exercise(&azure, azure.framing(), &body, &cuts);
    }
}

#[test]
fn the_seeds_themselves_decode() {
    // The committed seeds are real samples: each parses for at least one adapter.
    let openai = OpenAiCompat::new(
        "groq",
        "http://127.0.0.1:9/v1",
        Some(key()),
        Quirks::default(),
    );
    assert!(openai.response(&req(false), SEEDS[0]).is_ok());
    let (chunks, end) = decode_pieces(Framing::Sse, &mut openai.decoder(&req(true)), &[SEEDS[1]]);
    assert!(end.is_ok() && !chunks.is_empty());
    let gemini = super::gemini::Gemini::new("http://127.0.0.1:9", key());
    assert!(gemini.response(&req(false), SEEDS[4]).is_ok());
}
