//! OpenAI's Responses API passed through (OpenAI's API reference, "Responses"): a request that
//! came through `/v1/responses` goes to OpenAI's `/responses` with the client's body unchanged
//! apart from `model`; the reply and each event travel back as they came under
//! [`NATIVE_KEY`], with the usage read for cost.

use std::collections::VecDeque;

use serde_json::{Map, Value, json};

use crate::GatewayError;
use crate::providers::{NATIVE_KEY, SseEvent};
use crate::types::{
    Api, ChatChunk, ChatRequest, ChatResponse, Choice, CompletionTokensDetails, Delta,
    PromptTokensDetails, ResponseMessage, Usage,
};

/// The client's own Responses body, when the request came through `/v1/responses`.
pub(crate) fn native_body(req: &ChatRequest) -> Option<&bytes::Bytes> {
    (req.ctx.endpoint == Api::Responses)
        .then_some(req.ctx.native_body.as_ref())
        .flatten()
}

/// The client's body with `model` set to the upstream id.
pub(crate) fn passthrough_body(raw: &[u8], model: &str) -> Result<Vec<u8>, GatewayError> {
    let mut body: Map<String, Value> = serde_json::from_slice(raw)
        .map_err(|e| GatewayError::invalid("json", format!("is malformed: {e} (invalid json)")))?;
    body.insert("model".into(), Value::String(model.to_owned()));
    serde_json::to_vec(&body).map_err(|e| GatewayError::Internal(format!("encoding request: {e}")))
}

/// The canonical usage of a Responses `usage` object.
fn usage_of(u: &Value) -> Option<Usage> {
    let n = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let input = u.get("input_tokens")?.as_u64()?;
    let output = n(u, "output_tokens");
    let details = u
        .get("input_tokens_details")
        .cloned()
        .unwrap_or(Value::Null);
    let reasoning = u
        .get("output_tokens_details")
        .map(|d| n(d, "reasoning_tokens"))
        .unwrap_or(0);
    Some(Usage {
        prompt_tokens: input,
        completion_tokens: output,
        total_tokens: input + output,
        prompt_tokens_details: Some(PromptTokensDetails {
            cached_tokens: n(&details, "cached_tokens"),
            ..PromptTokensDetails::default()
        }),
        completion_tokens_details: (reasoning > 0).then(|| CompletionTokensDetails {
            reasoning_tokens: reasoning,
            ..CompletionTokensDetails::default()
        }),
        extra: Map::new(),
    })
}

/// The text of a Response's `message` items (what the cost layer counts when usage is absent).
fn output_text(v: &Value) -> String {
    v.get("output")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|item| {
            item.get("content")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(|part| part.get("text").and_then(Value::as_str))
        .collect()
}

/// A complete Response, as a canonical reply carrying the body under [`NATIVE_KEY`].
pub(crate) fn response(provider: &'static str, body: &[u8]) -> Result<ChatResponse, GatewayError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| GatewayError::BadUpstreamResponse {
        provider,
        reason: format!("invalid Response object: {e}"),
    })?;
    let mut extra = Map::new();
    extra.insert(
        NATIVE_KEY.into(),
        Value::String(String::from_utf8_lossy(body.trim_ascii()).into_owned()),
    );
    Ok(ChatResponse {
        id: v
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        object: "chat.completion".into(),
        created: v.get("created_at").and_then(Value::as_u64).unwrap_or(0),
        model: v
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        choices: vec![Choice {
            index: 0,
            message: ResponseMessage::assistant(Some(output_text(&v)), None),
            logprobs: None,
            finish_reason: Some("stop".into()),
        }],
        usage: v.get("usage").and_then(usage_of),
        extra,
    })
}

/// Decodes one Responses event: a carrier chunk with the event as it came, and the usage of
/// the final event. Returns whether the event ends the stream.
pub(super) fn event(
    provider: &'static str,
    event: &SseEvent,
    usage: &mut Option<Usage>,
    out: &mut VecDeque<ChatChunk>,
) -> Result<bool, GatewayError> {
    let data = event.data.trim();
    if data.is_empty() || data == "[DONE]" {
        return Ok(false);
    }
    let v: Value = serde_json::from_str(data).map_err(|e| GatewayError::BadUpstreamResponse {
        provider,
        reason: format!("invalid Responses event: {e}"),
    })?;
    let kind = v
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let end = matches!(
        kind.as_str(),
        "response.completed" | "response.incomplete" | "response.failed"
    );
    if end
        && let Some(u) = v
            .get("response")
            .and_then(|r| r.get("usage"))
            .and_then(usage_of)
    {
        *usage = Some(u);
    }
    let delta = Delta {
        content: (kind == "response.output_text.delta")
            .then(|| v.get("delta").and_then(Value::as_str).map(str::to_owned))
            .flatten(),
        ..Delta::default()
    };
    let mut chunk = ChatChunk::delta("", 0, "", delta, None);
    let name = event.event.clone().unwrap_or(kind);
    chunk
        .extra
        .insert(NATIVE_KEY.into(), json!({"event": name, "data": data}));
    out.push_back(chunk);
    Ok(end)
}
