//! The `CreateResponse` request and the tools it offers.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::types::reasoning::ReasoningEffort;

use super::{Item, ItemRole, MessageContent, MessageItem};

/// `POST /v1/responses`: OpenAI's `CreateResponse`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateResponse {
    /// `provider/model` or a catalog name.
    pub model: String,
    /// A string (one user message) or items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Input>,
    /// A system (developer) message placed before the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Function, namespace and hosted tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ResponseTool>>,
    /// `none | auto | required`, or `{"type":"function","name":..}`, or a hosted tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    /// Whether the model may call several tools in one turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// The output cap, reasoning included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Stream server-sent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Keep the response for `previous_response_id` and `GET` (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<bool>,
    /// Continue the conversation of a stored response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_response_id: Option<String>,
    /// `effort` and `summary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<ReasoningConfig>,
    /// `format` (`text`, `json_object`, `json_schema`) and `verbosity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextConfig>,
    /// Extra output to include (`reasoning.encrypted_content`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<String>>,
    /// Up to 16 string pairs kept with the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// An end-user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Other fields (`prompt_cache_key`, `service_tier`, `truncation`, `client_metadata`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl CreateResponse {
    /// Whether the client asked for a stream.
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// Whether the response is to be kept (OpenAI's default is true).
    pub fn is_stored(&self) -> bool {
        self.store.unwrap_or(true)
    }

    /// Whether `include` asks for `what`.
    pub fn includes(&self, what: &str) -> bool {
        self.include.iter().flatten().any(|i| i == what)
    }
}

/// `input`: a string or a list of items.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Input {
    /// One user message.
    Text(String),
    /// Items, oldest first.
    Items(Vec<Item>),
}

impl Input {
    /// The input as items (a string becomes one user message).
    pub fn into_items(self) -> Vec<Item> {
        match self {
            Input::Text(text) => vec![Item::Message(MessageItem {
                id: None,
                role: ItemRole::User,
                content: MessageContent::Text(text),
                status: None,
                extra: Map::new(),
            })],
            Input::Items(items) => items,
        }
    }
}

/// `reasoning` of a request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReasoningConfig {
    /// How hard to think.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<ReasoningEffort>,
    /// `auto | concise | detailed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `text` of a request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TextConfig {
    /// `{"type":"text"}`, `{"type":"json_object"}` or
    /// `{"type":"json_schema","name","schema","strict"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Value>,
    /// Other fields (`verbosity`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A tool offered to the model.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ResponseTool {
    /// `{"type":"function","name","description","parameters","strict"}`.
    Function(FunctionTool),
    /// `{"type":"namespace","name","tools":[...]}`: its function tools are offered like
    /// top-level ones.
    Namespace(NamespaceTool),
    /// A tool OpenAI runs itself (`web_search`, `file_search`, `code_interpreter`, ...).
    Hosted(Map<String, Value>),
}

impl ResponseTool {
    /// The `type` of the tool.
    pub fn kind(&self) -> &str {
        match self {
            Self::Function(_) => "function",
            Self::Namespace(_) => "namespace",
            Self::Hosted(m) => m.get("type").and_then(Value::as_str).unwrap_or(""),
        }
    }
}

impl<'de> Deserialize<'de> for ResponseTool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let map = Map::<String, Value>::deserialize(d)?;
        let kind = map.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "function" => serde_json::from_value(Value::Object(map))
                .map(Self::Function)
                .map_err(D::Error::custom),
            "namespace" => serde_json::from_value(Value::Object(map))
                .map(Self::Namespace)
                .map_err(D::Error::custom),
            "" => Err(D::Error::custom("a tool needs a `type`")),
            _ => Ok(Self::Hosted(map)),
        }
    }
}

/// A function tool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionTool {
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of its arguments.
    #[serde(default)]
    pub parameters: Option<Value>,
    /// Whether the arguments must match the schema exactly.
    #[serde(default)]
    pub strict: Option<bool>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A namespace of tools.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NamespaceTool {
    /// Always `namespace`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The namespace's name.
    pub name: String,
    /// What the namespace is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its tools.
    #[serde(default)]
    pub tools: Vec<ResponseTool>,
}
