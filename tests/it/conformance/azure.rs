//! Azure OpenAI (Microsoft's Azure OpenAI REST API reference): OpenAI bodies with content filter
//! results, a filter-only first stream chunk with no choices, `retry-after` and `retry-after-ms`.

use serde_json::{Value, json};

use super::openai::{completion, text_chunks, tool_chunks, tool_completion, usage_chunk};
use super::{Case, ErrorCase, Expect, Fixture, RateLimitCase, STREAM_USAGE, TEXT, conformance};
use crate::support::{FakeUpstream, Reply};

pub(crate) fn fixture() -> Fixture {
    Fixture {
        provider: "azure",
        model: "azure/gpt-4o-mini",
        env: |fake: &FakeUpstream| {
            vec![
                ("AZURE_OPENAI_API_KEY", "azkey_conformance".into()),
                ("AZURE_OPENAI_ENDPOINT", fake.url("")),
                ("AZURE_OPENAI_API_VERSION", "2025-01-01-preview".into()),
                ("AZURE_OPENAI_DEPLOYMENTS", "gpt-4o-mini=my-mini".into()),
            ]
        },
        expect: Expect::Canonical,
        plain: || {
            Reply::json(filtered(completion(
                json!({"role": "assistant", "content": TEXT}),
                "stop",
            )))
        },
        stream: || stream(text_chunks()),
        tool_call: Case::Applies(|| Reply::json(filtered(tool_completion()))),
        tool_call_stream: Case::Applies(|| stream(tool_chunks())),
        error: Case::Applies(|| ErrorCase {
            reply: Reply::status_json(
                400,
                json!({"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
                "type": null, "param": "prompt", "code": "content_filter", "status": 400,
                "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {"violence": {"filtered": true, "severity": "medium"}}}}}),
            ),
            status: 400,
            message: "content management policy",
        }),
        rate_limit: Case::Applies(|| {
            RateLimitCase {
            reply: Reply::status_json(429, json!({"error": {"code": "429", "message": "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2025-01-01-preview have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 21 seconds."}}))
                .header("retry-after", "21")
                .header("retry-after-ms", "20500"),
            delay_secs: 21,
            message: "exceeded token rate limit",
        }
        }),
    }
}

conformance!(fixture);

fn filter_results() -> Value {
    json!({"hate": {"filtered": false, "severity": "safe"}})
}

/// Adds Azure's prompt and choice filter results to a completion.
fn filtered(mut body: Value) -> Value {
    body["prompt_filter_results"] =
        json!([{"prompt_index": 0, "content_filter_results": filter_results()}]);
    body["choices"][0]["content_filter_results"] = filter_results();
    body
}

/// Azure's stream: a filter-only first chunk, the chunks, a usage chunk, `[DONE]`.
fn stream(chunks: Vec<Value>) -> Reply {
    let first = json!({"choices": [], "created": 0, "id": "", "model": "", "object": "",
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": filter_results()}]});
    let mut all = vec![first];
    all.extend(chunks.into_iter().map(|mut c| {
        c["choices"][0]["content_filter_results"] = json!({});
        c
    }));
    all.push(usage_chunk(STREAM_USAGE));
    Reply::openai_sse(&all)
}
