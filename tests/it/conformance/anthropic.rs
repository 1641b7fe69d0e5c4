//! Anthropic's Messages API (Anthropic's Messages API reference): typed SSE events, usage split
//! between `message_start` and `message_delta`, tool input streamed as `input_json_delta`.

use serde_json::{Value, json};

use super::{
    CALL_ID, Case, ErrorCase, Expect, Fixture, RateLimitCase, STREAM_PIECES, STREAM_USAGE, TEXT,
    TOOL, USAGE, call_args, conformance,
};
use crate::support::{FakeUpstream, Reply};

pub(crate) fn fixture() -> Fixture {
    Fixture {
        provider: "anthropic",
        model: "anthropic/claude-3-haiku-20240307",
        env: |fake: &FakeUpstream| {
            vec![
                ("ANTHROPIC_API_KEY", "sk-ant-api03-conformance".into()),
                ("ANTHROPIC_BASE_URL", fake.url("")),
            ]
        },
        expect: Expect::Canonical,
        plain: || Reply::json(message(json!([{"type": "text", "text": TEXT}]), "end_turn")),
        stream: || {
            let mut events = vec![
                message_start(),
                block_start(0, json!({"type": "text", "text": ""})),
            ];
            events.push(("ping", json!({"type": "ping"})));
            for p in STREAM_PIECES {
                events.push(block_delta(0, json!({"type": "text_delta", "text": p})));
            }
            events.push(block_stop(0));
            events.extend(message_end("end_turn"));
            Reply::sse(&[&sse(&events)])
        },
        tool_call: Case::Applies(|| {
            Reply::json(message(
                json!([{"type": "tool_use", "id": CALL_ID, "name": TOOL, "input": call_args()}]),
                "tool_use",
            ))
        }),
        tool_call_stream: Case::Applies(|| {
            let args = call_args().to_string();
            let (a, b) = args.split_at(args.len() / 2);
            let mut events = vec![
                message_start(),
                block_start(
                    0,
                    json!({"type": "tool_use", "id": CALL_ID, "name": TOOL, "input": {}}),
                ),
            ];
            for part in ["", a, b] {
                events.push(block_delta(
                    0,
                    json!({"type": "input_json_delta", "partial_json": part}),
                ));
            }
            events.push(block_stop(0));
            events.extend(message_end("tool_use"));
            Reply::sse(&[&sse(&events)])
        }),
        error: Case::Applies(|| ErrorCase {
            reply: Reply::status_json(
                400,
                json!({"type": "error", "error": {"type": "invalid_request_error",
                "message": "prompt is too long: 210000 tokens > 200000 maximum"}, "request_id": "req_011CS"}),
            ),
            status: 400,
            message: "prompt is too long",
        }),
        rate_limit: Case::Applies(|| {
            RateLimitCase {
            reply: Reply::status_json(429, json!({"type": "error", "error": {"type": "rate_limit_error",
                "message": "Number of requests has exceeded your per-minute rate limit"}, "request_id": "req_1"}))
                .header("retry-after", "7")
                .header("anthropic-ratelimit-requests-remaining", "0")
                .header("anthropic-ratelimit-requests-reset", "2025-08-21T12:40:59Z"),
            delay_secs: 7,
            message: "per-minute rate limit",
        }
        }),
    }
}

conformance!(fixture);

fn message(content: Value, stop_reason: &str) -> Value {
    json!({
        "id": "msg_01conf", "type": "message", "role": "assistant", "model": "claude-3-haiku-20240307",
        "content": content, "stop_reason": stop_reason, "stop_sequence": null,
        "usage": {"input_tokens": USAGE.0, "output_tokens": USAGE.1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    })
}

type Event = (&'static str, Value);

fn message_start() -> Event {
    (
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_01conf", "type": "message", "role": "assistant",
            "model": "claude-3-haiku-20240307", "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": STREAM_USAGE.0, "output_tokens": 1}}}),
    )
}

fn block_start(index: u32, block: Value) -> Event {
    (
        "content_block_start",
        json!({"type": "content_block_start", "index": index, "content_block": block}),
    )
}

fn block_delta(index: u32, delta: Value) -> Event {
    (
        "content_block_delta",
        json!({"type": "content_block_delta", "index": index, "delta": delta}),
    )
}

fn block_stop(index: u32) -> Event {
    (
        "content_block_stop",
        json!({"type": "content_block_stop", "index": index}),
    )
}

/// `message_delta` with the stop reason and the output tokens, then `message_stop`.
fn message_end(stop_reason: &str) -> [Event; 2] {
    [
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                "usage": {"output_tokens": STREAM_USAGE.1}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ]
}

/// Frames `(event, data)` pairs as Anthropic SSE.
fn sse(events: &[Event]) -> String {
    events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect()
}
