//! Groq, an OpenAI-compatible provider whose streams carry usage in `x_groq.usage` on the last
//! chunk (Groq's API reference).

use serde_json::json;

use super::openai::{chunk, completion, error_body, text_chunks, tool_chunks, tool_completion};
use super::{Case, ErrorCase, Expect, Fixture, RateLimitCase, STREAM_USAGE, TEXT, conformance};
use crate::support::{FakeUpstream, Reply};

fn fixture() -> Fixture {
    Fixture {
        provider: "groq",
        model: "groq/llama-3.1-8b-instant",
        env: |fake: &FakeUpstream| {
            vec![
                ("GROQ_API_KEY", "gsk_conformance_key".into()),
                ("GROQ_BASE_URL", fake.url("/openai/v1")),
            ]
        },
        expect: Expect::Canonical,
        plain: || {
            Reply::json(completion(
                json!({"role": "assistant", "content": TEXT}),
                "stop",
            ))
        },
        stream: || Reply::openai_sse(&with_x_groq_usage(text_chunks())),
        tool_call: Case::Applies(|| Reply::json(tool_completion())),
        tool_call_stream: Case::Applies(|| Reply::openai_sse(&with_x_groq_usage(tool_chunks()))),
        error: Case::Applies(|| ErrorCase {
            reply: Reply::status_json(
                400,
                error_body(
                    "context_length_exceeded: too long",
                    "invalid_request_error",
                    "context_length_exceeded",
                ),
            ),
            status: 400,
            message: "too long",
        }),
        rate_limit: Case::Applies(|| RateLimitCase {
            reply: Reply::status_json(
                429,
                error_body(
                    "Rate limit reached for model llama-3.1-8b-instant",
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

/// Moves the stream's usage into `x_groq` on its last chunk, as Groq sends it.
fn with_x_groq_usage(mut chunks: Vec<serde_json::Value>) -> Vec<serde_json::Value> {
    let (prompt, completion) = STREAM_USAGE;
    let last = chunks
        .pop()
        .unwrap_or_else(|| chunk(json!({}), Some("stop")));
    let mut last = last;
    last["x_groq"] = json!({"id": "req_conf", "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
        "total_tokens": prompt + completion}});
    chunks.push(last);
    chunks
}
