use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::reasoning::ThinkingBlock;
use super::{ToolCall, Usage};

/// A non-streaming chat completion (`object: "chat.completion"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// `chatcmpl-…`.
    pub id: String,
    /// Always `chat.completion`.
    #[serde(default = "completion_object")]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// One per `n`.
    #[serde(default)]
    pub choices: Vec<Choice>,
    /// Token usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Other fields (`system_fingerprint`, `service_tier`, provider extras).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn completion_object() -> String {
    "chat.completion".to_owned()
}

/// One choice of a completion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// Position.
    #[serde(default)]
    pub index: u32,
    /// The assistant message.
    pub message: ResponseMessage,
    /// Always present, usually null.
    #[serde(default)]
    pub logprobs: Option<Value>,
    /// `stop | length | tool_calls | content_filter | function_call`.
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// The assistant message of a choice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResponseMessage {
    /// Always `assistant`.
    #[serde(default = "assistant_role")]
    pub role: String,
    /// The text, or null with tool calls.
    #[serde(default)]
    pub content: Option<String>,
    /// Present as null when there is no refusal.
    #[serde(default)]
    pub refusal: Option<String>,
    /// Tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// The model's reasoning text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// The provider's reasoning blocks with their signatures, to send back on the next turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_blocks: Option<Vec<ThinkingBlock>>,
    /// Other fields (`annotations`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn assistant_role() -> String {
    "assistant".to_owned()
}

impl ResponseMessage {
    /// An assistant message with text.
    pub fn assistant(content: Option<String>, tool_calls: Option<Vec<ToolCall>>) -> Self {
        Self {
            reasoning_content: None,
            thinking_blocks: None,
            role: assistant_role(),
            content,
            refusal: None,
            tool_calls,
            extra: Map::new(),
        }
    }
}

impl ChatResponse {
    /// A one-choice completion.
    pub fn single(
        model: impl Into<String>,
        message: ResponseMessage,
        finish: &str,
        usage: Option<Usage>,
    ) -> Self {
        Self {
            id: super::completion_id(),
            object: completion_object(),
            created: super::unix_now(),
            model: model.into(),
            choices: vec![Choice {
                index: 0,
                message,
                logprobs: None,
                finish_reason: Some(finish.to_owned()),
            }],
            usage,
            extra: Map::new(),
        }
    }
}
