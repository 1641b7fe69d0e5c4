//! A model's reasoning, as it travels through the canonical types.
//!
//! Providers that reason return two things a client may have to send back on the next turn:
//! the reasoning text, and opaque state that proves it (Anthropic's `thinking` blocks with their
//! `signature`, or `redacted_thinking` blocks; Gemini's `thoughtSignature` on a function call).
//! The chat completions shape carries them as LiteLLM and DeepSeek do: `reasoning_content` (text),
//! `thinking_blocks` (Anthropic's blocks as sent), and `tool_calls[].extra_content` (Google's
//! OpenAI-compatibility field for thought signatures).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The kind of a [`ThinkingBlock`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThinkingKind {
    /// Readable reasoning with its `signature`.
    Thinking,
    /// Reasoning the provider encrypted; `data` must be sent back unchanged.
    RedactedThinking,
}

/// One block of reasoning with the opaque state a provider needs back (Anthropic's Messages API
/// "extended thinking": `thinking` and `redacted_thinking` content blocks).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThinkingBlock {
    /// `thinking` or `redacted_thinking`.
    #[serde(rename = "type")]
    pub kind: ThinkingKind,
    /// The reasoning text (`thinking` blocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    /// The provider's signature over the text (`thinking` blocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// The encrypted reasoning (`redacted_thinking` blocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

impl ThinkingBlock {
    /// A readable block.
    pub fn thinking(text: impl Into<String>, signature: Option<String>) -> Self {
        Self {
            kind: ThinkingKind::Thinking,
            thinking: Some(text.into()),
            signature,
            data: None,
        }
    }

    /// An encrypted block.
    pub fn redacted(data: impl Into<String>) -> Self {
        Self {
            kind: ThinkingKind::RedactedThinking,
            thinking: None,
            signature: None,
            data: Some(data.into()),
        }
    }
}

/// How hard a model should think: OpenAI's `reasoning_effort` values.
///
/// Anthropic's `output_config.effort` and `thinking` budgets and Gemini's `thinkingConfig` map to
/// and from it; the mapping is monotonic (`Low` never thinks more than `Medium`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReasoningEffort {
    /// No reasoning.
    None,
    /// The least reasoning a reasoning model does.
    Minimal,
    /// Little reasoning.
    Low,
    /// The default of most reasoning models.
    Medium,
    /// Much reasoning.
    High,
    /// The most reasoning a model offers.
    Xhigh,
}

impl ReasoningEffort {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Minimal => "minimal",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Xhigh => "xhigh",
        }
    }
}

/// Google's OpenAI-compatibility field on a tool call: `{"google": {"thought_signature": ...}}`.
pub fn google_thought_signature(extra_content: Option<&Value>) -> Option<&str> {
    extra_content?
        .get("google")?
        .get("thought_signature")?
        .as_str()
}

/// The `extra_content` value carrying a Gemini thought signature.
pub fn google_extra_content(signature: &str) -> Value {
    json!({"google": {"thought_signature": signature}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinking_blocks_keep_litellm_shape() {
        let b = ThinkingBlock::thinking("hmm", Some("sig".into()));
        let v = serde_json::to_value(&b).expect("serializes");
        assert_eq!(
            v,
            json!({"type": "thinking", "thinking": "hmm", "signature": "sig"})
        );
        let r: ThinkingBlock =
            serde_json::from_value(json!({"type": "redacted_thinking", "data": "enc"}))
                .expect("parses");
        assert_eq!(r, ThinkingBlock::redacted("enc"));
    }

    #[test]
    fn effort_orders_and_rejects_unknown_values() {
        assert!(ReasoningEffort::Low < ReasoningEffort::Medium);
        assert!(ReasoningEffort::Medium < ReasoningEffort::High);
        let e: ReasoningEffort = serde_json::from_value(json!("high")).expect("parses");
        assert_eq!(e.as_str(), "high");
        assert!(serde_json::from_value::<ReasoningEffort>(json!("extreme")).is_err());
    }

    #[test]
    fn thought_signature_round_trips_through_extra_content() {
        let v = google_extra_content("c2ln");
        assert_eq!(google_thought_signature(Some(&v)), Some("c2ln"));
        assert_eq!(google_thought_signature(Some(&json!({"other": 1}))), None);
        assert_eq!(google_thought_signature(None), None);
    }
}
