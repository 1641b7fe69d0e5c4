//! Gemini's generateContent API (Google's Gemini API reference): `candidates` with `parts`,
//! cumulative `usageMetadata`, whole function calls, the retry delay of a 429 in the body's
//! `google.rpc.RetryInfo.retryDelay`.

use serde_json::{Value, json};

use super::{
    Case, ErrorCase, Expect, Fixture, RateLimitCase, STREAM_PIECES, STREAM_USAGE, TEXT, TOOL,
    USAGE, call_args, conformance,
};
use crate::support::{FakeUpstream, Reply};

pub(crate) fn fixture() -> Fixture {
    Fixture {
        provider: "gemini",
        model: "gemini/gemini-2.0-flash",
        env: |fake: &FakeUpstream| {
            vec![
                ("GEMINI_API_KEY", "AIzaSy-conformance-key".into()),
                ("GEMINI_BASE_URL", fake.url("")),
            ]
        },
        expect: Expect::Canonical,
        plain: || Reply::json(response(json!([{"text": TEXT}]), Some("STOP"), USAGE)),
        stream: || {
            let last = STREAM_PIECES.len() - 1;
            let events: Vec<Value> = STREAM_PIECES
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let done = i == last;
                    let completion = if done { STREAM_USAGE.1 } else { 1 };
                    response(
                        json!([{"text": p}]),
                        done.then_some("STOP"),
                        (STREAM_USAGE.0, completion),
                    )
                })
                .collect();
            sse(&events)
        },
        tool_call: Case::Applies(|| {
            Reply::json(response(
                json!([{"functionCall": {"name": TOOL, "args": call_args()}}]),
                Some("STOP"),
                USAGE,
            ))
        }),
        tool_call_stream: Case::Applies(|| {
            sse(&[response(
                json!([{"functionCall": {"name": TOOL, "args": call_args()}}]),
                Some("STOP"),
                STREAM_USAGE,
            )])
        }),
        error: Case::Applies(|| ErrorCase {
            reply: Reply::status_json(
                400,
                json!({"error": {"code": 400, "message": "Invalid value at 'contents[0]'",
                "status": "INVALID_ARGUMENT"}}),
            ),
            status: 400,
            message: "Invalid value",
        }),
        rate_limit: Case::Applies(|| RateLimitCase {
            reply: Reply::status_json(
                429,
                json!({"error": {"code": 429,
                "message": "You exceeded your current quota, please check your plan and billing details.",
                "status": "RESOURCE_EXHAUSTED", "details": [
                    {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                        "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "33s"}
                ]}}),
            ),
            delay_secs: 33,
            message: "exceeded your current quota",
        }),
    }
}

conformance!(fixture);

fn response(parts: Value, finish: Option<&str>, (prompt, completion): (u64, u64)) -> Value {
    let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
    if let Some(finish) = finish {
        candidate["finishReason"] = json!(finish);
    }
    json!({
        "candidates": [candidate],
        "usageMetadata": {"promptTokenCount": prompt, "candidatesTokenCount": completion, "totalTokenCount": prompt + completion},
        "modelVersion": "gemini-2.0-flash",
        "responseId": "conf123"
    })
}

/// Gemini's `alt=sse` stream: one `data:` event per response, no terminator.
fn sse(events: &[Value]) -> Reply {
    let framed: Vec<String> = events
        .iter()
        .map(|e| format!("data: {e}\r\n\r\n"))
        .collect();
    let refs: Vec<&str> = framed.iter().map(String::as_str).collect();
    Reply::sse(&refs)
}
