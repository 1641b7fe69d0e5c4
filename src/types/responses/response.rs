//! The `Response` object and its usage.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Item, ReasoningConfig, TextConfig};

/// The `Response` object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResponseObject {
    /// `resp_...`.
    pub id: String,
    /// Always `response`.
    pub object: String,
    /// Unix seconds.
    pub created_at: u64,
    /// `completed | incomplete | failed | in_progress`.
    pub status: ResponseStatus,
    /// What went wrong, on `failed`.
    pub error: Option<ResponseError>,
    /// Why the response is incomplete.
    pub incomplete_details: Option<IncompleteDetails>,
    /// The request's instructions.
    pub instructions: Option<String>,
    /// The output cap of the request.
    pub max_output_tokens: Option<u64>,
    /// The model asked for.
    pub model: String,
    /// Output items.
    pub output: Vec<Item>,
    /// As requested (default true).
    pub parallel_tool_calls: bool,
    /// The response this one continues.
    pub previous_response_id: Option<String>,
    /// The request's reasoning settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<ReasoningConfig>,
    /// Whether it is kept.
    pub store: bool,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// The request's text settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextConfig>,
    /// As requested (default `auto`).
    pub tool_choice: Value,
    /// The function tools offered.
    pub tools: Vec<Value>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// `disabled` unless the request said otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncation: Option<String>,
    /// Token usage (absent while in progress).
    pub usage: Option<ResponseUsage>,
    /// The end-user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The request's metadata.
    pub metadata: Map<String, Value>,
}

/// `status` of a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseStatus {
    /// Done.
    Completed,
    /// Stopped early (`incomplete_details.reason`).
    Incomplete,
    /// Failed (`error`).
    Failed,
    /// Still streaming.
    InProgress,
}

/// `error` of a failed response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResponseError {
    /// `server_error`, `rate_limit_exceeded`, ...
    pub code: String,
    /// What happened.
    pub message: String,
}

/// `incomplete_details`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncompleteDetails {
    /// `max_output_tokens` or `content_filter`.
    pub reason: String,
}

/// `usage` of a response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseUsage {
    /// Prompt tokens, cached ones included.
    pub input_tokens: u64,
    /// Cached and cache-written prompt tokens.
    pub input_tokens_details: InputTokensDetails,
    /// Output tokens, reasoning included.
    pub output_tokens: u64,
    /// Reasoning tokens.
    pub output_tokens_details: OutputTokensDetails,
    /// `input_tokens + output_tokens`.
    pub total_tokens: u64,
}

/// `usage.input_tokens_details`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InputTokensDetails {
    /// Read from the provider's prompt cache.
    #[serde(default)]
    pub cached_tokens: u64,
    /// Written to the provider's prompt cache.
    #[serde(default)]
    pub cache_write_tokens: u64,
}

/// `usage.output_tokens_details`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OutputTokensDetails {
    /// Spent on reasoning.
    #[serde(default)]
    pub reasoning_tokens: u64,
}

impl From<&crate::types::Usage> for ResponseUsage {
    fn from(u: &crate::types::Usage) -> Self {
        let cached = u.prompt_tokens_details.as_ref();
        Self {
            input_tokens: u.prompt_tokens,
            input_tokens_details: InputTokensDetails {
                cached_tokens: cached.map_or(0, |d| d.cached_tokens),
                cache_write_tokens: cached.map_or(0, |d| d.cache_write_tokens),
            },
            output_tokens: u.completion_tokens,
            output_tokens_details: OutputTokensDetails {
                reasoning_tokens: u
                    .completion_tokens_details
                    .as_ref()
                    .map_or(0, |d| d.reasoning_tokens),
            },
            total_tokens: u.prompt_tokens.saturating_add(u.completion_tokens),
        }
    }
}
