//! OpenAI's Responses API (`/v1/responses`), as OpenAI's API reference describes it: the
//! `CreateResponse` request, the items a conversation is made of (the same shapes in `input`
//! and `output`), the `Response` object and the streaming events.
//!
//! Unknown request fields are kept in `extra` maps so nothing a client sends is lost; input
//! items of a type the gateway does not model are a clear error naming the type.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::reasoning::ReasoningEffort;

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

impl From<&super::Usage> for ResponseUsage {
    fn from(u: &super::Usage) -> Self {
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
            total_tokens: u.prompt_tokens + u.completion_tokens,
        }
    }
}

/// One streaming event: its `type` and payload, and its place in the stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamEvent {
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
    /// 0 for the first event of a stream, then one more for each.
    pub sequence_number: u64,
}

impl StreamEvent {
    /// The event's `type`.
    pub fn type_name(&self) -> &'static str {
        self.kind.type_name()
    }
}

/// The events of a response stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum EventKind {
    /// The response exists.
    #[serde(rename = "response.created")]
    Created {
        /// The response so far.
        response: Box<ResponseObject>,
    },
    /// The model is working.
    #[serde(rename = "response.in_progress")]
    InProgress {
        /// The response so far.
        response: Box<ResponseObject>,
    },
    /// An output item begins.
    #[serde(rename = "response.output_item.added")]
    OutputItemAdded {
        /// Its place in `output`.
        output_index: u32,
        /// The item so far.
        item: Item,
    },
    /// A content part of a message begins.
    #[serde(rename = "response.content_part.added")]
    ContentPartAdded {
        /// The message.
        item_id: String,
        /// Its place in `output`.
        output_index: u32,
        /// The part's place in `content`.
        content_index: u32,
        /// The part so far.
        part: ContentPart,
    },
    /// A piece of text.
    #[serde(rename = "response.output_text.delta")]
    OutputTextDelta {
        /// The message.
        item_id: String,
        /// Its place in `output`.
        output_index: u32,
        /// The part's place in `content`.
        content_index: u32,
        /// The new text.
        delta: String,
        /// Log probabilities (empty unless asked for).
        logprobs: Vec<Value>,
    },
    /// The text of a part is complete.
    #[serde(rename = "response.output_text.done")]
    OutputTextDone {
        /// The message.
        item_id: String,
        /// Its place in `output`.
        output_index: u32,
        /// The part's place in `content`.
        content_index: u32,
        /// The whole text.
        text: String,
        /// Log probabilities (empty unless asked for).
        logprobs: Vec<Value>,
    },
    /// A content part is complete.
    #[serde(rename = "response.content_part.done")]
    ContentPartDone {
        /// The message.
        item_id: String,
        /// Its place in `output`.
        output_index: u32,
        /// The part's place in `content`.
        content_index: u32,
        /// The whole part.
        part: ContentPart,
    },
    /// A piece of a function call's arguments.
    #[serde(rename = "response.function_call_arguments.delta")]
    FunctionCallArgumentsDelta {
        /// The function call item.
        item_id: String,
        /// Its place in `output`.
        output_index: u32,
        /// The new piece of the JSON string.
        delta: String,
    },
    /// The arguments are complete.
    #[serde(rename = "response.function_call_arguments.done")]
    FunctionCallArgumentsDone {
        /// The function call item.
        item_id: String,
        /// Its place in `output`.
        output_index: u32,
        /// The function.
        name: String,
        /// The whole JSON string.
        arguments: String,
    },
    /// A summary part of a reasoning item begins.
    #[serde(rename = "response.reasoning_summary_part.added")]
    ReasoningSummaryPartAdded {
        /// The reasoning item.
        item_id: String,
        /// Its place in `output`.
        output_index: u32,
        /// The part's place in `summary`.
        summary_index: u32,
        /// The part so far.
        part: SummaryText,
    },
    /// A piece of reasoning summary.
    #[serde(rename = "response.reasoning_summary_text.delta")]
    ReasoningSummaryTextDelta {
        /// The reasoning item.
        item_id: String,
        /// Its place in `output`.
        output_index: u32,
        /// The part's place in `summary`.
        summary_index: u32,
        /// The new text.
        delta: String,
    },
    /// A summary text is complete.
    #[serde(rename = "response.reasoning_summary_text.done")]
    ReasoningSummaryTextDone {
        /// The reasoning item.
        item_id: String,
        /// Its place in `output`.
        output_index: u32,
        /// The part's place in `summary`.
        summary_index: u32,
        /// The whole text.
        text: String,
    },
    /// A summary part is complete.
    #[serde(rename = "response.reasoning_summary_part.done")]
    ReasoningSummaryPartDone {
        /// The reasoning item.
        item_id: String,
        /// Its place in `output`.
        output_index: u32,
        /// The part's place in `summary`.
        summary_index: u32,
        /// The whole part.
        part: SummaryText,
    },
    /// An output item is complete.
    #[serde(rename = "response.output_item.done")]
    OutputItemDone {
        /// Its place in `output`.
        output_index: u32,
        /// The whole item.
        item: Item,
    },
    /// The response is complete, with usage.
    #[serde(rename = "response.completed")]
    Completed {
        /// The whole response.
        response: Box<ResponseObject>,
    },
    /// The response stopped early (output cap).
    #[serde(rename = "response.incomplete")]
    Incomplete {
        /// The response as far as it got.
        response: Box<ResponseObject>,
    },
    /// The response failed after it began.
    #[serde(rename = "response.failed")]
    Failed {
        /// The response with its `error`.
        response: Box<ResponseObject>,
    },
}

impl EventKind {
    /// The wire `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Created { .. } => "response.created",
            Self::InProgress { .. } => "response.in_progress",
            Self::OutputItemAdded { .. } => "response.output_item.added",
            Self::ContentPartAdded { .. } => "response.content_part.added",
            Self::OutputTextDelta { .. } => "response.output_text.delta",
            Self::OutputTextDone { .. } => "response.output_text.done",
            Self::ContentPartDone { .. } => "response.content_part.done",
            Self::FunctionCallArgumentsDelta { .. } => "response.function_call_arguments.delta",
            Self::FunctionCallArgumentsDone { .. } => "response.function_call_arguments.done",
            Self::ReasoningSummaryPartAdded { .. } => "response.reasoning_summary_part.added",
            Self::ReasoningSummaryTextDelta { .. } => "response.reasoning_summary_text.delta",
            Self::ReasoningSummaryTextDone { .. } => "response.reasoning_summary_text.done",
            Self::ReasoningSummaryPartDone { .. } => "response.reasoning_summary_part.done",
            Self::OutputItemDone { .. } => "response.output_item.done",
            Self::Completed { .. } => "response.completed",
            Self::Incomplete { .. } => "response.incomplete",
            Self::Failed { .. } => "response.failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Deserializes, serializes, and checks the JSON is unchanged.
    fn round_trip<T: Serialize + for<'de> Deserialize<'de>>(v: Value) -> T {
        let typed: T = serde_json::from_value(v.clone()).expect("deserializes");
        let back = serde_json::to_value(&typed).expect("serializes");
        assert_eq!(back, v, "round trip changed the JSON");
        typed
    }

    #[test]
    fn create_response_with_every_item_kind_round_trips() {
        // Shaped like the "Create a model response" examples of OpenAI's API reference.
        let req: CreateResponse = round_trip(json!({
            "model": "gpt-4.1",
            "instructions": "Be terse.",
            "input": [
                {"type": "message", "id": "msg_1", "role": "developer",
                 "content": [{"type": "input_text", "text": "rules"}]},
                {"type": "message", "role": "user", "content": [
                    {"type": "input_text", "text": "what is in this image?"},
                    {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"}]},
                {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "hm"}],
                 "encrypted_content": "abc"},
                {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
                 "arguments": "{\"city\":\"Paris\"}", "status": "completed"},
                {"type": "function_call_output", "call_id": "call_1", "output": "{\"temp\":21}"},
                {"type": "message", "id": "msg_2", "role": "assistant", "status": "completed",
                 "content": [{"type": "output_text", "text": "21C", "annotations": []}]},
                {"type": "item_reference", "id": "msg_0"}
            ],
            "tools": [
                {"type": "function", "name": "get_weather", "description": "Weather",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                 "strict": true},
                {"type": "namespace", "name": "agents", "description": "sub-agents",
                 "tools": [{"type": "function", "name": "spawn", "parameters": null, "strict": null}]},
                {"type": "web_search", "external_web_access": false}
            ],
            "tool_choice": "auto",
            "parallel_tool_calls": true,
            "max_output_tokens": 256,
            "temperature": 0.5,
            "stream": true,
            "store": false,
            "reasoning": {"effort": "high", "summary": "auto"},
            "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}},
                     "verbosity": "low"},
            "include": ["reasoning.encrypted_content"],
            "metadata": {"k": "v"},
            "prompt_cache_key": "abc",
            "client_metadata": {"thread_id": "t"}
        }));
        assert!(req.is_stream());
        assert!(!req.is_stored());
        assert!(req.includes("reasoning.encrypted_content"));
        assert_eq!(req.extra["prompt_cache_key"], "abc");
        let tools = req.tools.as_deref().unwrap_or_default();
        assert_eq!(
            tools.iter().map(ResponseTool::kind).collect::<Vec<_>>(),
            ["function", "namespace", "web_search"]
        );
        let Some(Input::Items(items)) = &req.input else {
            panic!("items expected")
        };
        assert_eq!(items.len(), 7);
        assert!(
            matches!(&items[2], Item::Reasoning(r) if r.encrypted_content.as_deref() == Some("abc"))
        );
    }

    #[test]
    fn string_input_and_typeless_messages_are_read() {
        let req: CreateResponse = round_trip(json!({"model": "m", "input": "Hi"}));
        assert_eq!(req.input.map(Input::into_items).map(|v| v.len()), Some(1));
        let item = item_from_value(json!({"role": "user", "content": "Weather in Paris?"}))
            .expect("an easy input message");
        assert!(matches!(
            item,
            Item::Message(MessageItem {
                role: ItemRole::User,
                ..
            })
        ));
        let err = items_from_values(vec![
            json!({"role": "user", "content": "a"}),
            json!({"type": "local_shell_call"}),
        ])
        .expect_err("an unknown item type");
        assert_eq!(err.0, 1);
    }

    #[test]
    fn response_object_round_trips() {
        // Shaped like the `Response` example of OpenAI's API reference.
        let resp: ResponseObject = round_trip(json!({
            "id": "resp_67ccd3a9da748190baa7f1570fe91ac604becb25c45c1d41",
            "object": "response",
            "created_at": 1_741_476_777,
            "status": "completed",
            "error": null,
            "incomplete_details": null,
            "instructions": null,
            "max_output_tokens": null,
            "model": "gpt-4o-2024-08-06",
            "output": [
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "e"},
                {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f",
                 "arguments": "{}", "status": "completed"},
                {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                 "content": [{"type": "output_text", "text": "The image depicts a scenic landscape.",
                              "annotations": []}]}
            ],
            "parallel_tool_calls": true,
            "previous_response_id": null,
            "reasoning": {"effort": null, "summary": null},
            "store": true,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": {"input_tokens": 328, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                      "output_tokens": 52, "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": 380},
            "user": null,
            "metadata": {}
        }).as_object().map(|m| {
            // `reasoning` with nulls and `user: null` are not re-serialized; compare without them.
            let mut m = m.clone();
            m.insert("reasoning".into(), json!({}));
            m.remove("user");
            Value::Object(m)
        }).unwrap_or_default());
        assert_eq!(resp.status, ResponseStatus::Completed);
        assert_eq!(resp.output.len(), 3);
    }

    #[test]
    fn stream_events_round_trip() {
        for ev in [
            json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0,
                   "content_index": 0, "delta": "Hi", "logprobs": [], "sequence_number": 4}),
            json!({"type": "response.function_call_arguments.done", "item_id": "fc_1",
                   "output_index": 1, "name": "f", "arguments": "{}", "sequence_number": 9}),
            json!({"type": "response.output_item.added", "output_index": 0, "sequence_number": 2,
                   "item": {"type": "message", "id": "msg_1", "status": "in_progress",
                            "role": "assistant", "content": []}}),
            json!({"type": "response.content_part.added", "item_id": "msg_1", "output_index": 0,
                   "content_index": 0, "sequence_number": 3,
                   "part": {"type": "output_text", "text": "", "annotations": []}}),
            json!({"type": "response.reasoning_summary_text.delta", "item_id": "rs_1",
                   "output_index": 0, "summary_index": 0, "delta": "hm", "sequence_number": 3}),
        ] {
            let e: StreamEvent = round_trip(ev.clone());
            assert_eq!(Some(e.type_name()), ev["type"].as_str());
        }
    }
}
