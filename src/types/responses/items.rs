//! The items a conversation is made of: the same shapes in `input` and `output`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The author of a message item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemRole {
    /// The human.
    User,
    /// The model.
    Assistant,
    /// Instructions.
    System,
    /// Instructions (newer name).
    Developer,
}

/// One item of a conversation: what `input` holds and `output` returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Item {
    /// A message.
    Message(MessageItem),
    /// A call of a function tool by the model.
    FunctionCall(FunctionCallItem),
    /// The result of a function call.
    FunctionCallOutput(FunctionCallOutputItem),
    /// The model's reasoning.
    Reasoning(ReasoningItem),
    /// A reference to an item of a stored response.
    ItemReference(ItemReference),
}

/// A `message` item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageItem {
    /// `msg_...`; required on output messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Who wrote it.
    pub role: ItemRole,
    /// A string or parts.
    pub content: MessageContent,
    /// `in_progress | completed | incomplete`; required on output messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Other fields (`phase`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The content of a message item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Typed parts.
    Parts(Vec<ContentPart>),
}

/// One part of a message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// Text from the user or the instructions.
    InputText {
        /// The text.
        text: String,
    },
    /// An image, by URL (`https://` or `data:`) or file id.
    InputImage {
        /// The image URL.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image_url: Option<String>,
        /// An uploaded file's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file_id: Option<String>,
        /// `auto | low | high`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// Text the model wrote.
    OutputText {
        /// The text.
        text: String,
        /// Citations; empty when there are none.
        #[serde(default)]
        annotations: Vec<Value>,
        /// Token log probabilities, when asked for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        logprobs: Option<Vec<Value>>,
    },
    /// A refusal by the model.
    Refusal {
        /// Why.
        refusal: String,
    },
}

impl ContentPart {
    /// An `output_text` part without annotations.
    pub fn output_text(text: impl Into<String>) -> Self {
        Self::OutputText {
            text: text.into(),
            annotations: Vec::new(),
            logprobs: None,
        }
    }

    /// The part's text, if it has one.
    pub fn text(&self) -> Option<&str> {
        match self {
            Self::InputText { text } | Self::OutputText { text, .. } => Some(text),
            Self::Refusal { refusal } => Some(refusal),
            Self::InputImage { .. } => None,
        }
    }
}

/// A `function_call` item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionCallItem {
    /// `fc_...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The id the `function_call_output` answers.
    pub call_id: String,
    /// The function.
    pub name: String,
    /// Arguments as a JSON string.
    #[serde(default)]
    pub arguments: String,
    /// The namespace tool the function belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `in_progress | completed | incomplete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// A `function_call_output` item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionCallOutputItem {
    /// `fco_...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The call it answers.
    pub call_id: String,
    /// A string, or content parts.
    pub output: Value,
    /// `in_progress | completed | incomplete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

impl FunctionCallOutputItem {
    /// The output as text: the string, or the text of its parts joined.
    pub fn output_text(&self) -> String {
        match &self.output {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            other => other.to_string(),
        }
    }
}

/// A `reasoning` item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReasoningItem {
    /// `rs_...`.
    #[serde(default)]
    pub id: String,
    /// Summary texts.
    #[serde(default)]
    pub summary: Vec<SummaryText>,
    /// The reasoning text itself, where the provider shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<ReasoningText>>,
    /// Opaque reasoning state to send back on the next turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted_content: Option<String>,
    /// `in_progress | completed | incomplete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// `{"type":"summary_text","text":...}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SummaryText {
    /// Always `summary_text`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The summary.
    pub text: String,
}

impl SummaryText {
    /// A summary part.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            kind: "summary_text".into(),
            text: text.into(),
        }
    }
}

/// `{"type":"reasoning_text","text":...}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReasoningText {
    /// Always `reasoning_text`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The reasoning.
    pub text: String,
}

/// An `item_reference` item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemReference {
    /// The referenced item's id.
    pub id: String,
}

/// Reads an item, taking a `{"role","content"}` object without `type` as a message (the
/// "easy input message" of OpenAI's API reference, which the Agents SDK sends).
pub fn item_from_value(mut v: Value) -> Result<Item, serde_json::Error> {
    if let Value::Object(m) = &mut v
        && !m.contains_key("type")
        && m.contains_key("role")
    {
        m.insert("type".into(), Value::String("message".into()));
    }
    serde_json::from_value(v)
}

/// `items` read with [`item_from_value`], the error naming the index.
pub fn items_from_values(values: Vec<Value>) -> Result<Vec<Item>, (usize, serde_json::Error)> {
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| item_from_value(v).map_err(|e| (i, e)))
        .collect()
}
