use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::RequestContext;
use super::reasoning::{ReasoningEffort, ThinkingBlock};

/// An OpenAI chat completion request (`POST /v1/chat/completions`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ChatRequest {
    /// `provider/model` or a bare catalog name.
    pub model: String,
    /// The conversation, oldest first.
    pub messages: Vec<Message>,
    /// Stream the answer as server-sent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Stream options (`include_usage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Deprecated output cap, still the one most providers know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// OpenAI's newer output cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u64>,
    /// Sampling temperature, 0..=2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling, 0..=1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// Number of choices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// `"none" | "auto" | "required" | {"type":"function","function":{"name":..}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    /// `{"type":"text"|"json_object"|"json_schema", ...}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
    /// How hard a reasoning model should think.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<ReasoningEffort>,
    /// Every other parameter, passed through untouched to OpenAI-format upstreams.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// Gateway-side context (never serialized).
    #[serde(skip)]
    pub ctx: RequestContext,
}

/// The longest `model` a client may send, in bytes.
pub const MAX_MODEL_BYTES: usize = 256;
/// The most choices (`n`) a client may ask for.
pub const MAX_CHOICES: u32 = 128;

/// Checks a client's `model`: non-empty, at most [`MAX_MODEL_BYTES`] bytes, only
/// `[A-Za-z0-9._:/@+#-]`. Such a bound keeps ids fit for logs, labels and keys.
pub fn check_model(model: &str) -> Result<(), crate::GatewayError> {
    use crate::GatewayError;
    if model.trim().is_empty() {
        return Err(GatewayError::invalid("model", "must be a non-empty string"));
    }
    if model.len() > MAX_MODEL_BYTES {
        return Err(GatewayError::invalid(
            "model",
            format!("is longer than {MAX_MODEL_BYTES} bytes"),
        ));
    }
    if let Some(c) = model
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._:/@+#-".contains(*c)))
    {
        return Err(GatewayError::invalid(
            "model",
            format!("holds {c:?}; use only letters, digits and . _ : / @ + # -"),
        ));
    }
    Ok(())
}

impl ChatRequest {
    /// Whether the client asked for a stream.
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// Whether the client asked for a usage chunk at the end of the stream.
    pub fn wants_stream_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }

    /// Prompt tokens estimated without a tokenizer (about four characters a token, plus a few
    /// per message), for when an upstream reports none.
    pub fn estimate_prompt_tokens(&self) -> u64 {
        let chars: usize = self
            .messages
            .iter()
            .map(|m| m.text_content().len() + 4)
            .sum();
        (chars as u64).div_ceil(4).max(1)
    }

    /// The output cap, whichever field carried it.
    pub fn output_cap(&self) -> Option<u64> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// Checks what serde's types cannot: ranges, emptiness, role-specific shape.
    /// The error names the offending field.
    pub fn validate(&self) -> Result<(), crate::GatewayError> {
        use crate::GatewayError;
        let bad = |field: &str, reason: &str| {
            Err(GatewayError::InvalidRequest {
                field: field.to_owned(),
                reason: reason.to_owned(),
            })
        };
        check_model(&self.model)?;
        if self.messages.is_empty() {
            return bad("messages", "must contain at least one message");
        }
        if let Some(t) = self.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return bad("temperature", "must be between 0 and 2");
        }
        if let Some(p) = self.top_p
            && !(0.0..=1.0).contains(&p)
        {
            return bad("top_p", "must be between 0 and 1");
        }
        if self.n == Some(0) {
            return bad("n", "must be at least 1");
        }
        if self.n.is_some_and(|n| n > MAX_CHOICES) {
            return bad("n", "must be at most 128");
        }
        if self.max_tokens == Some(0) {
            return bad("max_tokens", "must be at least 1");
        }
        if self.max_completion_tokens == Some(0) {
            return bad("max_completion_tokens", "must be at least 1");
        }
        for (i, m) in self.messages.iter().enumerate() {
            match m.role {
                Role::Tool if m.tool_call_id.is_none() => {
                    return bad(
                        &format!("messages[{i}].tool_call_id"),
                        "is required for role `tool`",
                    );
                }
                Role::Assistant => {}
                _ if m.content.is_none() => {
                    return bad(
                        &format!("messages[{i}].content"),
                        "is required for this role",
                    );
                }
                _ => {}
            }
        }
        if let Some(tools) = &self.tools {
            for (i, t) in tools.iter().enumerate() {
                if t.function.name.is_empty() {
                    return bad(
                        &format!("tools[{i}].function.name"),
                        "must be a non-empty string",
                    );
                }
            }
        }
        Ok(())
    }
}

/// `stream_options`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamOptions {
    /// Ask for a final usage chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    /// Other options, passed through.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `stop`: one string or several.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// A single stop sequence.
    One(String),
    /// Up to four stop sequences.
    Many(Vec<String>),
}

impl Stop {
    /// The sequences as a list.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s.clone()],
            Stop::Many(v) => v.clone(),
        }
    }
}

/// A message author.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions.
    System,
    /// Newer name for system on reasoning models.
    Developer,
    /// The human.
    User,
    /// The model.
    Assistant,
    /// A tool result.
    Tool,
    /// Legacy function result.
    Function,
}

/// Read from its name by one string match (a derived enum goes through serde's enum access,
/// several times the work for each message of a request).
impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Role;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a message role")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Role, E> {
                Ok(match v {
                    "system" => Role::System,
                    "developer" => Role::Developer,
                    "user" => Role::User,
                    "assistant" => Role::Assistant,
                    "tool" => Role::Tool,
                    "function" => Role::Function,
                    other => {
                        return Err(E::unknown_variant(
                            other,
                            &[
                                "system",
                                "developer",
                                "user",
                                "assistant",
                                "tool",
                                "function",
                            ],
                        ));
                    }
                })
            }
        }
        d.deserialize_str(V)
    }
}

impl Role {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
            Role::Function => "function",
        }
    }
}

/// One message of the conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Text or parts; `null` on an assistant message that only calls tools.
    #[serde(default)]
    pub content: Option<Content>,
    /// Optional author name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tool calls made by an assistant message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// The call a tool message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// The reasoning text of an assistant message, as the model returned it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// The provider's reasoning blocks of an assistant message, sent back unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_blocks: Option<Vec<ThinkingBlock>>,
    /// Other fields, passed through.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Message {
    /// A plain text message.
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Self {
            role,
            content: Some(Content::Text(text.into())),
            name: None,
            tool_calls: None,
            tool_call_id: None,
            reasoning_content: None,
            thinking_blocks: None,
            extra: Map::new(),
        }
    }

    /// The text of the message: the string, or its text parts joined.
    pub fn text_content(&self) -> String {
        self.content
            .as_ref()
            .map(Content::joined_text)
            .unwrap_or_default()
    }
}

/// Message content: a string, or an array of typed parts.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Text, images, audio, files.
    Parts(Vec<ContentPart>),
}

/// Told apart by the JSON type, read straight into the variant (an untagged derive buffers
/// the value first and tries each variant on the copy).
impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Content;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an array of content parts")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Content, E> {
                Ok(Content::Text(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Content, E> {
                Ok(Content::Text(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Content, A::Error> {
                let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(p) = seq.next_element()? {
                    parts.push(p);
                }
                Ok(Content::Parts(parts))
            }
        }
        d.deserialize_any(V)
    }
}

impl Content {
    /// The text parts, joined with newlines.
    pub fn joined_text(&self) -> String {
        match self {
            Content::Text(s) => s.clone(),
            Content::Parts(parts) => parts
                .iter()
                .filter_map(|p| p.text.as_deref())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// One content part (`text`, `image_url`, `input_audio`, `file`, ...).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContentPart {
    /// The part type.
    #[serde(rename = "type")]
    pub kind: String,
    /// For `text` parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// For `image_url` parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<ImageUrl>,
    /// Other part payloads, passed through.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An image reference: `https://...` or a `data:` URI.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageUrl {
    /// The URL.
    pub url: String,
    /// `auto | low | high`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl ImageUrl {
    /// `(media_type, base64 data)` when the URL is a base64 `data:` URI.
    pub fn as_data_uri(&self) -> Option<(&str, &str)> {
        let rest = self.url.strip_prefix("data:")?;
        let (meta, data) = rest.split_once(',')?;
        let media = meta.strip_suffix(";base64")?;
        Some((media, data))
    }
}

/// A tool definition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// Always `function` today.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// The function.
    pub function: FunctionDef,
    /// Other tool fields (`cache_control`), passed through.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn function_type() -> String {
    "function".to_owned()
}

/// A callable function.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionDef {
    /// Its name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of its arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Other fields (`strict`), passed through.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A tool call made by the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Call id, echoed by the tool message.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// Name and arguments.
    pub function: FunctionCall,
    /// Provider state tied to the call (Gemini's thought signature as
    /// `{"google": {"thought_signature": ...}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_content: Option<Value>,
}

/// The function half of a tool call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// Function name.
    pub name: String,
    /// Arguments as a JSON **string**.
    #[serde(default)]
    pub arguments: String,
}
