//! Cohere's v2 Chat API (Cohere's API reference): typed SSE events (`message-start`,
//! `content-delta`, `tool-call-delta`, `message-end`), usage in `billed_units`, `{message}` errors.

use serde_json::{Value, json};

use super::{
    CALL_ID, Case, ErrorCase, Expect, Fixture, RateLimitCase, STREAM_PIECES, STREAM_USAGE, TEXT,
    TOOL, USAGE, call_args, conformance,
};
use crate::support::{FakeUpstream, Reply};

pub(crate) fn fixture() -> Fixture {
    Fixture {
        provider: "cohere",
        model: "cohere/command-r",
        env: |fake: &FakeUpstream| {
            vec![
                ("COHERE_API_KEY", "co_conformance_key".into()),
                ("COHERE_BASE_URL", fake.url("")),
            ]
        },
        expect: Expect::Canonical,
        plain: || {
            Reply::json(json!({
                "id": "c14c80c3-conf", "finish_reason": "COMPLETE",
                "message": {"role": "assistant", "content": [{"type": "text", "text": TEXT}]},
                "usage": usage(USAGE)
            }))
        },
        stream: || {
            let mut events = vec![
                json!({"type": "message-start", "id": "conf", "delta": {"message": {"role": "assistant"}}}),
                json!({"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}}),
            ];
            events.extend(STREAM_PIECES.iter().map(|p| {
                json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": p}}}})
            }));
            events.push(json!({"type": "content-end", "index": 0}));
            events.push(json!({"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": usage(STREAM_USAGE)}}));
            sse(&events)
        },
        tool_call: Case::Applies(|| {
            Reply::json(json!({
                "id": "conf-t", "finish_reason": "TOOL_CALL",
                "message": {"role": "assistant", "tool_plan": "I will look up the weather.",
                    "tool_calls": [{"id": CALL_ID, "type": "function",
                        "function": {"name": TOOL, "arguments": call_args().to_string()}}]},
                "usage": usage(USAGE)
            }))
        }),
        tool_call_stream: Case::Applies(|| {
            let args = call_args().to_string();
            let (a, b) = args.split_at(args.len() / 2);
            let mut events = vec![
                json!({"type": "message-start", "id": "conf-s", "delta": {"message": {"role": "assistant"}}}),
                json!({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will look up the weather."}}}),
                json!({"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls":
                    {"id": CALL_ID, "type": "function", "function": {"name": TOOL, "arguments": ""}}}}}),
            ];
            for part in [a, b] {
                events.push(json!({"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": part}}}}}));
            }
            events.push(json!({"type": "tool-call-end", "index": 0}));
            events.push(json!({"type": "message-end", "delta": {"finish_reason": "TOOL_CALL", "usage": usage(STREAM_USAGE)}}));
            sse(&events)
        }),
        error: Case::Applies(|| ErrorCase {
            reply: Reply::status_json(
                400,
                json!({"id": "e1", "message": "invalid request: too many stop sequences"}),
            ),
            status: 400,
            message: "too many stop sequences",
        }),
        rate_limit: Case::Applies(|| {
            RateLimitCase {
            reply: Reply::status_json(429, json!({"message": "You are using a Trial key, which is limited to 20 API calls / minute."}))
                .header("retry-after", "9"),
            delay_secs: 9,
            message: "Trial key",
        }
        }),
    }
}

conformance!(fixture);

fn usage((input, output): (u64, u64)) -> Value {
    json!({"billed_units": {"input_tokens": input, "output_tokens": output},
           "tokens": {"input_tokens": input, "output_tokens": output}})
}

fn sse(events: &[Value]) -> Reply {
    let framed: Vec<String> = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    let refs: Vec<&str> = framed.iter().map(String::as_str).collect();
    Reply::sse(&refs)
}
