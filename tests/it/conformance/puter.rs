//! Puter's drivers API (Puter's developer documentation): a `{success, result}` envelope around
//! an OpenAI-like message, NDJSON streams of typed lines, tool use as content blocks.

use serde_json::{Value, json};

use super::{
    CALL_ID, Case, ErrorCase, Expect, Fixture, RateLimitCase, STREAM_PIECES, STREAM_USAGE, TEXT,
    TOOL, USAGE, call_args, conformance,
};
use crate::support::{FakeUpstream, Reply};

fn fixture() -> Fixture {
    Fixture {
        provider: "puter",
        model: "puter/gpt-4o-mini",
        env: |fake: &FakeUpstream| {
            vec![
                ("PUTER_AUTH_TOKEN", "puter_conformance_token".into()),
                ("PUTER_BASE_URL", fake.url("")),
            ]
        },
        expect: Expect::Canonical,
        plain: || {
            Reply::json(answer(
                json!({"role": "assistant", "content": TEXT, "refusal": null}),
                USAGE,
            ))
        },
        stream: || {
            let mut lines: Vec<Value> = STREAM_PIECES
                .iter()
                .map(|p| json!({"type": "text", "text": p}))
                .collect();
            lines.push(json!({"type": "usage", "usage": usage(STREAM_USAGE)}));
            ndjson(&lines)
        },
        tool_call: Case::Applies(|| {
            Reply::json(answer(
                json!({"role": "assistant", "content": [
                    {"type": "tool_use", "id": CALL_ID, "name": TOOL, "input": call_args()}]}),
                USAGE,
            ))
        }),
        tool_call_stream: Case::Applies(|| {
            ndjson(&[
                json!({"type": "tool_use", "id": CALL_ID, "name": TOOL, "input": call_args(), "text": ""}),
                json!({"type": "usage", "usage": usage(STREAM_USAGE)}),
            ])
        }),
        error: Case::Applies(|| ErrorCase {
            reply: Reply::status_json(
                400,
                json!({"error": "Model not found: gpt-9", "message": "Model not found: gpt-9", "code": "bad_request"}),
            ),
            status: 400,
            message: "Model not found: gpt-9",
        }),
        rate_limit: Case::Applies(|| {
            RateLimitCase {
            reply: Reply::status_json(429, json!({"error": "slow down", "message": "slow down", "code": "upstream_rate_limited"}))
                .header("retry-after", "3"),
            delay_secs: 3,
            message: "slow down",
        }
        }),
    }
}

conformance!(fixture);

fn usage((prompt, completion): (u64, u64)) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "cached_tokens": 0, "usd_cents": 0.0012})
}

fn answer(message: Value, tokens: (u64, u64)) -> Value {
    json!({"success": true, "service": {"name": "ai-chat"},
           "metadata": {"service_used": "openai-completion", "providerUsed": "gpt-4o-mini"},
           "result": {"index": 0, "message": message, "finish_reason": "stop", "logprobs": null,
                      "usage": usage(tokens), "via_ai_chat_service": true}})
}

fn ndjson(lines: &[Value]) -> Reply {
    let raw: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let mut reply = Reply::sse(&[&raw]);
    if let Reply::Stream { headers, .. } = &mut reply {
        *headers = vec![("content-type".into(), "application/x-ndjson".into())];
    }
    reply
}
