//! Gemini: wire reply -> canonical response.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::PROVIDER;
use crate::GatewayError;
use crate::types::{
    ChatResponse, Choice, FunctionCall, ResponseMessage, ToolCall, Usage, google_extra_content,
};

// === response translation ===

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireResponse {
    #[serde(default)]
    pub(super) candidates: Vec<WireCandidate>,
    #[serde(default)]
    pub(super) prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    pub(super) usage_metadata: Option<WireUsage>,
    #[serde(default)]
    pub(super) model_version: Option<String>,
    #[serde(default)]
    pub(super) response_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireCandidate {
    #[serde(default)]
    pub(super) content: Option<WireContent>,
    #[serde(default)]
    pub(super) finish_reason: Option<String>,
    #[serde(default)]
    pub(super) index: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct WireContent {
    #[serde(default)]
    pub(super) parts: Vec<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PromptFeedback {
    #[serde(default)]
    pub(super) block_reason: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireUsage {
    #[serde(default)]
    pub(super) prompt_token_count: Option<u64>,
    #[serde(default)]
    pub(super) candidates_token_count: Option<u64>,
    #[serde(default)]
    pub(super) cached_content_token_count: Option<u64>,
    #[serde(default)]
    pub(super) thoughts_token_count: Option<u64>,
    #[serde(default)]
    pub(super) tool_use_prompt_token_count: Option<u64>,
}

impl WireUsage {
    /// OpenAI usage: tool-use prompt tokens are prompt, thinking tokens are completion.
    pub(super) fn to_usage(self) -> Usage {
        let prompt =
            self.prompt_token_count.unwrap_or(0) + self.tool_use_prompt_token_count.unwrap_or(0);
        let thoughts = self.thoughts_token_count.unwrap_or(0);
        let mut usage = Usage::new(prompt, self.candidates_token_count.unwrap_or(0) + thoughts);
        usage.set_cache(self.cached_content_token_count.unwrap_or(0), 0, 0);
        usage.set_reasoning(thoughts);
        usage
    }
}

/// Gemini's `finishReason` as an OpenAI `finish_reason`. `STOP` with a function call is
/// `tool_calls`; the function-call failures (`MALFORMED_FUNCTION_CALL`, ...) and `OTHER` are
/// reported as `stop`, a policy Google's Gemini API reference leaves open.
pub fn finish_reason(reason: &str, called_function: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "LANGUAGE" => {
            "content_filter"
        }
        r if r.starts_with("IMAGE_") => "content_filter",
        _ if called_function => "tool_calls",
        _ => "stop",
    }
}

/// A prefix for the tool-call ids of one response (Gemini sends none).
pub(super) fn id_prefix() -> String {
    use rand::Rng;
    let n: u64 = rand::rng().random();
    format!("call_{n:016x}")
}

/// What one candidate's parts say.
#[derive(Debug, Default)]
pub(super) struct Parts {
    pub(super) text: String,
    pub(super) thoughts: String,
    /// `(id, name, arguments, thoughtSignature)` of each function call.
    pub(super) calls: Vec<(Option<String>, String, String, Option<String>)>,
}

pub(super) fn read_parts(parts: &[Value]) -> Parts {
    let mut out = Parts::default();
    for part in parts {
        if let Some(text) = part.get("text").and_then(Value::as_str) {
            if part.get("thought").and_then(Value::as_bool) == Some(true) {
                out.thoughts.push_str(text);
            } else {
                out.text.push_str(text);
            }
        } else if let Some(call) = part.get("functionCall") {
            let name = call.get("name").and_then(Value::as_str).unwrap_or("");
            let args = call.get("args").cloned().unwrap_or_else(|| json!({}));
            let id = call.get("id").and_then(Value::as_str).map(str::to_owned);
            // Gemini's thinking documentation: the signature rides on the part, and must come
            // back on the same functionCall part next turn.
            let signature = part
                .get("thoughtSignature")
                .and_then(Value::as_str)
                .map(str::to_owned);
            out.calls
                .push((id, name.to_owned(), args.to_string(), signature));
        }
    }
    out
}

pub(super) fn translate_response(
    resp: WireResponse,
    model: &str,
) -> Result<ChatResponse, GatewayError> {
    let prefix = id_prefix();
    let mut choices = Vec::with_capacity(resp.candidates.len().max(1));
    for (pos, cand) in resp.candidates.iter().enumerate() {
        let parts = read_parts(cand.content.as_ref().map_or(&[][..], |c| &c.parts));
        let calls: Vec<ToolCall> = parts
            .calls
            .into_iter()
            .enumerate()
            .map(|(k, (id, name, arguments, signature))| ToolCall {
                extra_content: signature.as_deref().map(google_extra_content),
                id: id.unwrap_or_else(|| format!("{prefix}_{pos}_{k}")),
                kind: "function".into(),
                function: FunctionCall { name, arguments },
            })
            .collect();
        let finish = finish_reason(
            cand.finish_reason.as_deref().unwrap_or("STOP"),
            !calls.is_empty(),
        );
        let content = if parts.text.is_empty() && !calls.is_empty() {
            None
        } else {
            Some(parts.text)
        };
        let mut message = ResponseMessage::assistant(content, (!calls.is_empty()).then_some(calls));
        if !parts.thoughts.is_empty() {
            message.reasoning_content = Some(parts.thoughts);
        }
        choices.push(Choice {
            index: cand.index.unwrap_or(pos as u32),
            message,
            logprobs: None,
            finish_reason: Some(finish.into()),
        });
    }
    if choices.is_empty() {
        let Some(reason) = resp.prompt_feedback.and_then(|f| f.block_reason) else {
            return Err(GatewayError::BadUpstreamResponse {
                provider: PROVIDER,
                reason: "response has neither candidates nor a block reason".into(),
            });
        };
        // The prompt itself was blocked: an empty, filtered answer.
        let mut message = ResponseMessage::assistant(None, None);
        message.refusal = Some(format!("the prompt was blocked by gemini ({reason})"));
        choices.push(Choice {
            index: 0,
            message,
            logprobs: None,
            finish_reason: Some("content_filter".into()),
        });
    }
    Ok(ChatResponse {
        id: resp
            .response_id
            .map(|id| format!("chatcmpl-{id}"))
            .unwrap_or_else(crate::types::completion_id),
        object: "chat.completion".into(),
        created: crate::types::unix_now(),
        model: resp.model_version.unwrap_or_else(|| model.to_owned()),
        choices,
        usage: resp.usage_metadata.map(WireUsage::to_usage),
        extra: Map::new(),
    })
}
