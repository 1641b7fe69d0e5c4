//! OpenAI's Chat Completions wire format (OpenAI's API reference), shared by the
//! OpenAI-compatible providers: `usage` in a last chunk with empty `choices` when asked with
//! `stream_options.include_usage`.

use serde_json::{Value, json};

use super::{
    CALL_ID, Case, ErrorCase, Expect, Fixture, RateLimitCase, STREAM_PIECES, STREAM_USAGE, TEXT,
    TOOL, USAGE, call_args, conformance,
};
use crate::support::{FakeUpstream, Reply};

pub(crate) fn fixture() -> Fixture {
    Fixture {
        provider: "openai",
        model: "openai/gpt-4o-mini",
        env: |fake: &FakeUpstream| {
            vec![
                ("OPENAI_API_KEY", "sk-test-conformance".into()),
                ("OPENAI_BASE_URL", fake.url("/v1")),
            ]
        },
        expect: Expect::Canonical,
        plain: || {
            Reply::json(completion(
                json!({"role": "assistant", "content": TEXT}),
                "stop",
            ))
        },
        stream: || {
            let mut chunks = text_chunks();
            chunks.push(usage_chunk(STREAM_USAGE));
            Reply::openai_sse(&chunks)
        },
        tool_call: Case::Applies(|| Reply::json(tool_completion())),
        tool_call_stream: Case::Applies(|| {
            let mut chunks = tool_chunks();
            chunks.push(usage_chunk(STREAM_USAGE));
            Reply::openai_sse(&chunks)
        }),
        error: Case::Applies(|| ErrorCase {
            reply: Reply::status_json(
                400,
                error_body(
                    "This model's maximum context length is 128000 tokens.",
                    "invalid_request_error",
                    "context_length_exceeded",
                ),
            ),
            status: 400,
            message: "maximum context length",
        }),
        rate_limit: Case::Applies(|| RateLimitCase {
            reply: Reply::status_json(
                429,
                error_body(
                    "Rate limit reached for gpt-4o-mini",
                    "requests",
                    "rate_limit_exceeded",
                ),
            )
            .header("retry-after", "7"),
            delay_secs: 7,
            message: "Rate limit reached",
        }),
    }
}

conformance!(fixture);

/// A whole completion with `message` and the canonical usage.
pub(super) fn completion(message: Value, finish: &str) -> Value {
    json!({
        "id": "chatcmpl-conf", "object": "chat.completion", "created": 1730000000, "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": {"prompt_tokens": USAGE.0, "completion_tokens": USAGE.1, "total_tokens": USAGE.0 + USAGE.1},
        "system_fingerprint": "fp_conf"
    })
}

/// The canonical tool call as a whole completion.
pub(super) fn tool_completion() -> Value {
    completion(
        json!({"role": "assistant", "content": null, "tool_calls": [{"id": CALL_ID, "type": "function",
            "function": {"name": TOOL, "arguments": call_args().to_string()}}]}),
        "tool_calls",
    )
}

/// One stream chunk.
pub(super) fn chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({"id": "chatcmpl-conf-s", "object": "chat.completion.chunk", "created": 1730000000, "model": "gpt-4o-mini-2024-07-18",
           "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
}

/// The last chunk of a stream asked for usage: no choices.
pub(super) fn usage_chunk((prompt, completion): (u64, u64)) -> Value {
    json!({"id": "chatcmpl-conf-s", "object": "chat.completion.chunk", "created": 1730000000, "model": "gpt-4o-mini-2024-07-18",
           "choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}})
}

/// Role, the canonical text pieces, and `stop`.
pub(super) fn text_chunks() -> Vec<Value> {
    let mut chunks = vec![chunk(json!({"role": "assistant", "content": ""}), None)];
    chunks.extend(
        STREAM_PIECES
            .iter()
            .map(|p| chunk(json!({"content": p}), None)),
    );
    chunks.push(chunk(json!({}), Some("stop")));
    chunks
}

/// The canonical tool call streamed: id and name first, arguments in fragments, `tool_calls`.
pub(super) fn tool_chunks() -> Vec<Value> {
    let args = call_args().to_string();
    let (a, b) = args.split_at(args.len() / 2);
    vec![
        chunk(
            json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": CALL_ID, "type": "function",
                "function": {"name": TOOL, "arguments": ""}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": a}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": b}}]}),
            None,
        ),
        chunk(json!({}), Some("tool_calls")),
    ]
}

/// OpenAI's error envelope.
pub(super) fn error_body(message: &str, kind: &str, code: &str) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}
