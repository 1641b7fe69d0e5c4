//! The /v1/messages edge: Anthropic Messages request -> canonical request.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::GatewayError;
use crate::providers::anthropic::wire::{ContentBlock, split_tool_id};
use crate::types::{
    ChatRequest, Content, ContentPart, FunctionCall, FunctionDef, ImageUrl, Message,
    ReasoningEffort, Role, Stop, Tool, ToolCall,
};

// === the inbound request ===

/// An Anthropic Messages request as clients send it (Anthropic's Messages API reference).
#[derive(Debug, Deserialize)]
pub struct MessagesRequest {
    /// The model.
    pub model: String,
    /// Output cap; required on `/v1/messages`, ignored by `count_tokens`.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// The conversation.
    pub messages: Vec<InMessage>,
    /// The system prompt: a string or text blocks.
    #[serde(default)]
    pub system: Option<InContent>,
    /// Stop sequences.
    #[serde(default)]
    pub stop_sequences: Option<Vec<String>>,
    /// Stream as SSE.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Top-k sampling.
    #[serde(default)]
    pub top_k: Option<u64>,
    /// `{"user_id": ...}`.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    /// Tools.
    #[serde(default)]
    pub tools: Option<Vec<InTool>>,
    /// `{"type":"auto"|"any"|"tool"|"none", "name", "disable_parallel_tool_use"}`.
    #[serde(default)]
    pub tool_choice: Option<Map<String, Value>>,
    /// Extended thinking: `{"type":"enabled","budget_tokens"}`, `{"type":"adaptive"}` or
    /// `{"type":"disabled"}`.
    #[serde(default)]
    pub thinking: Option<Map<String, Value>>,
    /// `{"effort": "low"|"medium"|"high"|"max"}` and other output settings.
    #[serde(default)]
    pub output_config: Option<Map<String, Value>>,
}

/// One message: `user` or `assistant`.
#[derive(Debug, Deserialize)]
pub struct InMessage {
    /// `user` or `assistant`.
    pub role: InRole,
    /// A string or content blocks.
    pub content: InContent,
}

/// The two roles of the Messages API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InRole {
    /// The human.
    User,
    /// The model.
    Assistant,
    /// Instructions given mid-conversation, kept in place.
    System,
}

/// A string, or typed blocks.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum InContent {
    /// Plain text.
    Text(String),
    /// Blocks (`text`, `image`, `tool_use`, `tool_result`, ...).
    Blocks(Vec<Map<String, Value>>),
}

/// A tool definition.
#[derive(Debug, Deserialize)]
pub struct InTool {
    /// Its name.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: Option<String>,
    /// JSON schema of its input.
    #[serde(default)]
    pub input_schema: Option<Value>,
}

pub(super) fn str_field<'a>(block: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    block.get(key).and_then(Value::as_str)
}

/// The text of a string or of text blocks.
pub(super) fn joined_text(content: &InContent) -> String {
    match content {
        InContent::Text(s) => s.clone(),
        InContent::Blocks(blocks) => blocks
            .iter()
            .filter(|b| str_field(b, "type") == Some("text"))
            .filter_map(|b| str_field(b, "text"))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

impl MessagesRequest {
    /// The canonical request: system prompt first, each `tool_result` as a `tool` message,
    /// `tool_use` blocks as tool calls with their input as the arguments string.
    pub fn into_chat(self) -> Result<ChatRequest, GatewayError> {
        crate::types::check_model(&self.model)?;
        if self.messages.is_empty() {
            return Err(GatewayError::invalid(
                "messages",
                "must contain at least one message",
            ));
        }
        if let Some(t) = self.temperature
            && !(0.0..=1.0).contains(&t)
        {
            return Err(GatewayError::invalid(
                "temperature",
                "must be between 0 and 1",
            ));
        }
        let mut messages = Vec::with_capacity(self.messages.len() + 1);
        if let Some(system) = &self.system {
            let text = joined_text(system);
            if !text.is_empty() {
                messages.push(Message::text(Role::System, text));
            }
        }
        for (i, m) in self.messages.into_iter().enumerate() {
            match m.role {
                InRole::User => user_messages(i, m.content, &mut messages)?,
                InRole::Assistant => messages.push(assistant_message(i, m.content)?),
                InRole::System => {
                    let text = joined_text(&m.content);
                    if !text.is_empty() {
                        messages.push(Message::text(Role::System, text));
                    }
                }
            }
        }
        let mut extra = Map::new();
        if let Some(k) = self.top_k {
            extra.insert("top_k".into(), k.into());
        }
        if let Some(user) = self
            .metadata
            .as_ref()
            .and_then(|m| m.get("user_id"))
            .and_then(Value::as_str)
        {
            extra.insert("user".into(), user.into());
        }
        let tools = self.tools.map(|tools| {
            tools
                .into_iter()
                .map(|t| Tool {
                    kind: "function".into(),
                    function: FunctionDef {
                        name: t.name,
                        description: t.description,
                        parameters: t.input_schema,
                        extra: Map::new(),
                    },
                    extra: Map::new(),
                })
                .collect::<Vec<_>>()
        });
        let tool_choice = match &self.tool_choice {
            None => None,
            Some(c) => {
                if c.get("disable_parallel_tool_use") == Some(&Value::Bool(true)) {
                    extra.insert("parallel_tool_calls".into(), false.into());
                }
                match str_field(c, "type") {
                    Some("auto") => Some(json!("auto")),
                    Some("any") => Some(json!("required")),
                    Some("none") => Some(json!("none")),
                    Some("tool") => {
                        let name = str_field(c, "name").ok_or_else(|| {
                            GatewayError::invalid("tool_choice.name", "is required for type `tool`")
                        })?;
                        Some(json!({"type": "function", "function": {"name": name}}))
                    }
                    _ => {
                        return Err(GatewayError::invalid(
                            "tool_choice.type",
                            "must be `auto`, `any`, `tool` or `none`",
                        ));
                    }
                }
            }
        };
        let reasoning_effort =
            requested_effort(self.thinking.as_ref(), self.output_config.as_ref());
        let req = ChatRequest {
            reasoning_effort,
            model: self.model,
            messages,
            stream: self.stream,
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            stop: self.stop_sequences.map(Stop::Many),
            tools,
            tool_choice,
            extra,
            ..ChatRequest::default()
        };
        req.validate()?;
        Ok(req)
    }
}

/// The canonical effort of `thinking` and `output_config.effort`: `output_config.effort` when
/// given (`max` is the most there is), else the budget of enabled thinking (the inverse of the
/// Anthropic adapter's budgets), `medium` for adaptive thinking, `none` when disabled.
pub fn requested_effort(
    thinking: Option<&Map<String, Value>>,
    output_config: Option<&Map<String, Value>>,
) -> Option<ReasoningEffort> {
    let kind = thinking.and_then(|t| str_field(t, "type"));
    if kind == Some("disabled") {
        return Some(ReasoningEffort::None);
    }
    let named = output_config
        .and_then(|o| str_field(o, "effort"))
        .and_then(|e| match e {
            "low" => Some(ReasoningEffort::Low),
            "medium" => Some(ReasoningEffort::Medium),
            "high" => Some(ReasoningEffort::High),
            "max" | "xhigh" => Some(ReasoningEffort::Xhigh),
            _ => None,
        });
    if named.is_some() {
        return named;
    }
    match kind {
        Some("enabled") => {
            let budget = thinking
                .and_then(|t| t.get("budget_tokens"))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            Some(match budget {
                0..2048 => ReasoningEffort::Low,
                2048..4096 => ReasoningEffort::Medium,
                4096..8192 => ReasoningEffort::High,
                _ => ReasoningEffort::Xhigh,
            })
        }
        Some("adaptive") => Some(ReasoningEffort::Medium),
        _ => None,
    }
}

pub(super) fn user_messages(
    i: usize,
    content: InContent,
    out: &mut Vec<Message>,
) -> Result<(), GatewayError> {
    let blocks = match content {
        InContent::Text(s) => {
            out.push(Message::text(Role::User, s));
            return Ok(());
        }
        InContent::Blocks(b) => b,
    };
    let mut parts = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let field = |k: &str| format!("messages[{i}].content[{j}].{k}");
        match str_field(b, "type") {
            Some("text") => parts.push(ContentPart {
                kind: "text".into(),
                text: Some(str_field(b, "text").unwrap_or_default().to_owned()),
                image_url: None,
                extra: Map::new(),
            }),
            Some("image") => {
                let source = b.get("source").and_then(Value::as_object);
                let url = match source.and_then(|s| str_field(s, "type")) {
                    Some("base64") => {
                        let s = source.unwrap_or(b);
                        format!(
                            "data:{};base64,{}",
                            str_field(s, "media_type").unwrap_or("image/png"),
                            str_field(s, "data").unwrap_or_default()
                        )
                    }
                    Some("url") => source
                        .and_then(|s| str_field(s, "url"))
                        .unwrap_or_default()
                        .to_owned(),
                    _ => {
                        return Err(GatewayError::invalid(
                            field("source.type"),
                            "must be `base64` or `url`",
                        ));
                    }
                };
                parts.push(ContentPart {
                    kind: "image_url".into(),
                    text: None,
                    image_url: Some(ImageUrl { url, detail: None }),
                    extra: Map::new(),
                });
            }
            Some("tool_result") => {
                let id = str_field(b, "tool_use_id")
                    .ok_or_else(|| GatewayError::invalid(field("tool_use_id"), "is required"))?;
                let (id, _) = split_tool_id(id);
                let mut text = match b.get("content") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(items)) => items
                        .iter()
                        .filter_map(|v| v.get("text").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join("\n"),
                    _ => String::new(),
                };
                if b.get("is_error") == Some(&Value::Bool(true)) {
                    text = format!("Error: {text}");
                }
                // OpenAI wants tool results right after the call, before any new user text.
                out.push(Message {
                    tool_call_id: Some(id.to_owned()),
                    ..Message::text(Role::Tool, text)
                });
            }
            // Documents, thinking and server-tool blocks have no OpenAI equivalent.
            _ => {}
        }
    }
    if !parts.is_empty() {
        let all_text = parts.iter().all(|p| p.kind == "text");
        let content = if all_text {
            Content::Text(
                parts
                    .iter()
                    .filter_map(|p| p.text.as_deref())
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        } else {
            Content::Parts(parts)
        };
        out.push(Message {
            content: Some(content),
            ..Message::text(Role::User, "")
        });
    }
    Ok(())
}

pub(super) fn assistant_message(i: usize, content: InContent) -> Result<Message, GatewayError> {
    let blocks = match content {
        InContent::Text(s) => return Ok(Message::text(Role::Assistant, s)),
        InContent::Blocks(b) => b,
    };
    let mut text = String::new();
    let mut calls = Vec::new();
    let mut thinking = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        match str_field(b, "type") {
            Some("text") => text.push_str(str_field(b, "text").unwrap_or_default()),
            Some("thinking" | "redacted_thinking") => {
                let block: ContentBlock = serde_json::from_value(Value::Object(b.clone()))
                    .map_err(|e| {
                        GatewayError::invalid(format!("messages[{i}].content[{j}]"), e.to_string())
                    })?;
                thinking.extend(block.to_thinking_block());
            }
            Some("tool_use") => {
                let id = str_field(b, "id").ok_or_else(|| {
                    GatewayError::invalid(format!("messages[{i}].content[{j}].id"), "is required")
                })?;
                let name = str_field(b, "name").ok_or_else(|| {
                    GatewayError::invalid(format!("messages[{i}].content[{j}].name"), "is required")
                })?;
                let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                let (id, signature) = split_tool_id(id);
                calls.push(ToolCall {
                    extra_content: signature.as_deref().map(crate::types::google_extra_content),
                    id: id.to_owned(),
                    kind: "function".into(),
                    function: FunctionCall {
                        name: name.to_owned(),
                        arguments: input.to_string(),
                    },
                });
            }
            _ => {}
        }
    }
    let mut m = Message::text(Role::Assistant, text);
    if !thinking.is_empty() {
        let reasoning: String = thinking
            .iter()
            .filter_map(|b| b.thinking.as_deref())
            .collect();
        m.reasoning_content = (!reasoning.is_empty()).then_some(reasoning);
        m.thinking_blocks = Some(thinking);
    }
    if !calls.is_empty() {
        if m.text_content().is_empty() {
            m.content = None;
        }
        m.tool_calls = Some(calls);
    }
    Ok(m)
}
