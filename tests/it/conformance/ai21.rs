//! AI21's chat completions (AI21's API reference): OpenAI-like bodies without `object`,
//! `created` or `model`, usage on the final stream chunk, `{detail}` errors. AI21 streams carry no
//! tool calls: the gateway asks for a whole answer and replays it as a stream.

use serde_json::{Value, json};

use super::{
    CALL_ID, Case, ErrorCase, Expect, Fixture, RateLimitCase, STREAM_PIECES, STREAM_USAGE, TEXT,
    TOOL, USAGE, call_args, conformance,
};
use crate::support::{FakeUpstream, Reply};

pub(crate) fn fixture() -> Fixture {
    Fixture {
        provider: "ai21",
        model: "ai21/jamba-mini",
        env: |fake: &FakeUpstream| {
            vec![
                ("AI21_API_KEY", "ai21_conformance_key".into()),
                ("AI21_BASE_URL", fake.url("")),
            ]
        },
        expect: Expect::Canonical,
        plain: || {
            Reply::json(answer(
                json!({"role": "assistant", "content": TEXT, "tool_calls": null}),
                "stop",
            ))
        },
        stream: || {
            let mut chunks = vec![chunk(json!({"role": "assistant"}), None, None)];
            chunks.extend(
                STREAM_PIECES
                    .iter()
                    .map(|p| chunk(json!({"content": p}), None, None)),
            );
            let (prompt, completion) = STREAM_USAGE;
            chunks.push(chunk(
                json!({}),
                Some("stop"),
                Some(json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})),
            ));
            Reply::openai_sse(&chunks)
        },
        tool_call: Case::Applies(tool_answer),
        // Asked without streaming, answered whole.
        tool_call_stream: Case::Applies(tool_answer),
        error: Case::Applies(|| ErrorCase {
            reply: Reply::status_json(422, json!({"detail": "max_tokens must be at most 4096"})),
            status: 422,
            message: "max_tokens must be at most 4096",
        }),
        rate_limit: Case::Applies(|| RateLimitCase {
            reply: Reply::status_json(429, json!({"detail": "Too Many Requests"}))
                .header("retry-after", "4"),
            delay_secs: 4,
            message: "Too Many Requests",
        }),
    }
}

conformance!(fixture);

fn tool_answer() -> Reply {
    Reply::json(answer(
        json!({"role": "assistant", "content": null, "tool_calls": [{"id": CALL_ID, "type": "function",
            "function": {"name": TOOL, "arguments": call_args().to_string()}}]}),
        "tool_calls",
    ))
}

fn answer(message: Value, finish: &str) -> Value {
    json!({
        "id": "chat-conf",
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": {"prompt_tokens": USAGE.0, "completion_tokens": USAGE.1, "total_tokens": USAGE.0 + USAGE.1}
    })
}

fn chunk(delta: Value, finish: Option<&str>, usage: Option<Value>) -> Value {
    json!({"id": "chat-conf-s", "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
           "usage": usage})
}
