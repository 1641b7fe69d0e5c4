//! The /v1/responses edge: a `CreateResponse` -> the canonical [`ChatRequest`].

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::opaque::Opaque;
use crate::GatewayError;
use crate::types::responses::{
    ContentPart as InPart, CreateResponse, Item, ItemRole, MessageContent, ResponseTool,
};
use crate::types::{
    ChatRequest, Content, ContentPart, FunctionCall, FunctionDef, ImageUrl, Message, Role,
    StreamOptions, Tool, ToolCall,
};

/// The canonical request and what the encoder needs to answer in the Responses shape.
#[derive(Debug)]
pub struct Decoded {
    /// The request for the chat stack.
    pub chat: ChatRequest,
    /// Hosted tools removed from the request (named in `x-proxygate-dropped-tools`).
    pub dropped_tools: Vec<String>,
    /// The namespace of each function offered inside a namespace tool.
    pub namespaces: HashMap<String, String>,
    /// The function tools offered, in the Response object's shape.
    pub tools: Vec<Value>,
}

/// Decodes `req`, whose items are `items` (the stored conversation first, if any).
/// `hosted_served`: an OpenAI or Azure deployment serves the model by pass-through, so a
/// `tool_choice` forcing a hosted tool goes there unchanged and is left out of the translation.
pub fn decode(
    req: &CreateResponse,
    items: &[Item],
    hosted_served: bool,
) -> Result<Decoded, GatewayError> {
    if req.model.trim().is_empty() {
        return Err(GatewayError::invalid("model", "must be a non-empty string"));
    }
    let mut messages = Vec::new();
    if let Some(instructions) = req.instructions.as_deref().filter(|s| !s.is_empty()) {
        messages.push(Message::text(Role::System, instructions));
    }
    append_items(items, &mut messages)?;
    if messages.iter().all(|m| m.role == Role::System) {
        return Err(GatewayError::invalid(
            "input",
            "must contain at least one item besides instructions",
        ));
    }
    let (tools, dropped_tools, namespaces, shown) = tools(req.tools.as_deref().unwrap_or(&[]));
    let tool_choice = match &req.tool_choice {
        None => None,
        Some(v) => match tool_choice(v, &dropped_tools) {
            Err(_) if hosted_served && forces_hosted(v) => None,
            other => other?,
        },
    };
    let mut chat = ChatRequest {
        model: req.model.clone(),
        messages,
        stream: Some(req.is_stream()),
        temperature: req.temperature,
        top_p: req.top_p,
        max_tokens: req.max_output_tokens,
        tools: (!tools.is_empty()).then_some(tools),
        tool_choice,
        reasoning_effort: req.reasoning.as_ref().and_then(|r| r.effort),
        response_format: req
            .text
            .as_ref()
            .and_then(|t| t.format.as_ref())
            .map(response_format)
            .transpose()?
            .flatten(),
        ..ChatRequest::default()
    };
    if req.max_output_tokens == Some(0) {
        return Err(GatewayError::invalid(
            "max_output_tokens",
            "must be at least 1",
        ));
    }
    if chat.tools.is_some()
        && let Some(p) = req.parallel_tool_calls
    {
        chat.extra
            .insert("parallel_tool_calls".into(), Value::Bool(p));
    }
    if let Some(user) = &req.user {
        chat.extra
            .insert("user".into(), Value::String(user.clone()));
    }
    // The request's own fallback list (OpenRouter's field): the router takes it out.
    if let Some(models) = req.extra.get("models") {
        chat.extra.insert("models".into(), models.clone());
    }
    if req.is_stream() {
        chat.stream_options = Some(StreamOptions {
            include_usage: Some(true),
            extra: Map::new(),
        });
    }
    chat.validate()?;
    Ok(Decoded {
        chat,
        dropped_tools,
        namespaces,
        tools: shown,
    })
}

/// Appends the canonical messages of `items`.
///
/// Function calls join the assistant message before them; reasoning state carried in a
/// gateway-minted `encrypted_content` goes back onto the assistant turn that follows it, and
/// the per-call state (thought signatures) onto the calls it names.
fn append_items(items: &[Item], out: &mut Vec<Message>) -> Result<(), GatewayError> {
    let mut call_state: HashMap<String, Value> = HashMap::new();
    for item in items {
        if let Item::Reasoning(r) = item
            && let Some(o) = r.encrypted_content.as_deref().and_then(Opaque::read)
        {
            call_state.extend(o.calls);
        }
    }
    let mut pending: Option<Opaque> = None;
    // Whether the last message is an assistant turn that later calls may still join.
    let mut open_assistant = false;
    for (i, item) in items.iter().enumerate() {
        match item {
            Item::Message(m) => {
                let role = match m.role {
                    ItemRole::User => Role::User,
                    ItemRole::Assistant => Role::Assistant,
                    ItemRole::System => Role::System,
                    ItemRole::Developer => Role::Developer,
                };
                let content = content(&m.content, i)?;
                let mut msg = Message::text(role, "");
                msg.content = Some(content);
                if role == Role::Assistant {
                    if let Some(o) = pending.take() {
                        msg.reasoning_content = o.reasoning;
                        msg.thinking_blocks = o.blocks;
                    }
                    open_assistant = true;
                } else {
                    open_assistant = false;
                }
                out.push(msg);
            }
            Item::FunctionCall(c) => {
                let call = ToolCall {
                    id: c.call_id.clone(),
                    kind: "function".into(),
                    function: FunctionCall {
                        name: c.name.clone(),
                        arguments: c.arguments.clone(),
                    },
                    extra_content: call_state.get(&c.call_id).cloned(),
                };
                match out.last_mut() {
                    Some(last) if open_assistant && last.role == Role::Assistant => {
                        last.tool_calls.get_or_insert_with(Vec::new).push(call);
                    }
                    _ => {
                        let mut msg = Message::text(Role::Assistant, "");
                        msg.content = None;
                        msg.tool_calls = Some(vec![call]);
                        if let Some(o) = pending.take() {
                            msg.reasoning_content = o.reasoning;
                            msg.thinking_blocks = o.blocks;
                        }
                        out.push(msg);
                        open_assistant = true;
                    }
                }
            }
            Item::FunctionCallOutput(o) => {
                let mut msg = Message::text(Role::Tool, o.output_text());
                msg.tool_call_id = Some(o.call_id.clone());
                out.push(msg);
                open_assistant = false;
            }
            Item::Reasoning(r) => {
                if let Some(o) = r.encrypted_content.as_deref().and_then(Opaque::read)
                    && (o.reasoning.is_some() || o.blocks.is_some())
                {
                    pending = Some(o);
                }
                open_assistant = false;
            }
            Item::ItemReference(_) => {
                return Err(GatewayError::invalid(
                    format!("input[{i}]"),
                    "is an `item_reference`, which only OpenAI and Azure deployments resolve; send the item itself",
                ));
            }
        }
    }
    Ok(())
}

/// A message's content in the canonical shape.
fn content(c: &MessageContent, i: usize) -> Result<Content, GatewayError> {
    let parts = match c {
        MessageContent::Text(s) => return Ok(Content::Text(s.clone())),
        MessageContent::Parts(p) => p,
    };
    if parts.iter().all(|p| p.text().is_some()) {
        let texts: Vec<&str> = parts.iter().filter_map(InPart::text).collect();
        return Ok(Content::Text(texts.join("\n")));
    }
    parts
        .iter()
        .enumerate()
        .map(|(j, p)| match p {
            InPart::InputImage {
                image_url: Some(url),
                detail,
                ..
            } => Ok(ContentPart {
                kind: "image_url".into(),
                text: None,
                image_url: Some(ImageUrl {
                    url: url.clone(),
                    detail: detail.clone(),
                }),
                extra: Map::new(),
            }),
            InPart::InputImage { .. } => Err(GatewayError::invalid(
                format!("input[{i}].content[{j}].image_url"),
                "is required (uploaded file ids are resolved only by OpenAI)",
            )),
            other => Ok(ContentPart {
                kind: "text".into(),
                text: other.text().map(str::to_owned),
                image_url: None,
                extra: Map::new(),
            }),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Content::Parts)
}

type ToolParts = (Vec<Tool>, Vec<String>, HashMap<String, String>, Vec<Value>);

/// Function tools (namespace ones flattened), the hosted tools dropped, the namespace of each
/// namespaced function, and the tools as the Response object lists them.
fn tools(list: &[ResponseTool]) -> ToolParts {
    let mut out = (Vec::new(), Vec::new(), HashMap::new(), Vec::new());
    for t in list {
        match t {
            ResponseTool::Function(f) => push_function(f, None, &mut out),
            ResponseTool::Namespace(ns) => {
                for inner in &ns.tools {
                    match inner {
                        ResponseTool::Function(f) => push_function(f, Some(&ns.name), &mut out),
                        other => out.1.push(other.kind().to_owned()),
                    }
                }
            }
            ResponseTool::Hosted(_) => out.1.push(t.kind().to_owned()),
        }
    }
    out
}

fn push_function(
    f: &crate::types::responses::FunctionTool,
    namespace: Option<&str>,
    out: &mut ToolParts,
) {
    let mut extra = Map::new();
    if let Some(strict) = f.strict {
        extra.insert("strict".into(), Value::Bool(strict));
    }
    out.0.push(Tool {
        kind: "function".into(),
        function: FunctionDef {
            name: f.name.clone(),
            description: f.description.clone(),
            parameters: f.parameters.clone(),
            extra,
        },
        extra: Map::new(),
    });
    if let Some(ns) = namespace {
        out.2.insert(f.name.clone(), ns.to_owned());
    }
    out.3.push(
        json!({"type": "function", "name": f.name, "description": f.description,
        "parameters": f.parameters, "strict": f.strict}),
    );
}

/// Whether `tool_choice` forces a hosted tool (an object of a type other than `function`
/// and `allowed_tools`).
fn forces_hosted(v: &Value) -> bool {
    v.get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| !matches!(t, "function" | "allowed_tools"))
}

/// `tool_choice` in the chat shape; forcing a hosted tool is an error naming it.
fn tool_choice(v: &Value, dropped: &[String]) -> Result<Option<Value>, GatewayError> {
    match v {
        Value::String(_) => Ok(Some(v.clone())),
        Value::Object(m) => match m.get("type").and_then(Value::as_str) {
            Some("function") => {
                let name = m.get("name").and_then(Value::as_str).ok_or_else(|| {
                    GatewayError::invalid("tool_choice.name", "is required for a function")
                })?;
                Ok(Some(
                    json!({"type": "function", "function": {"name": name}}),
                ))
            }
            Some("allowed_tools") => Ok(m.get("mode").cloned()),
            Some(kind) => Err(GatewayError::invalid(
                "tool_choice",
                format!(
                    "forces the hosted tool `{kind}`, which runs only on OpenAI and Azure deployments{}",
                    if dropped.iter().any(|d| d == kind) {
                        " (it was dropped from `tools` for this model)"
                    } else {
                        ""
                    }
                ),
            )),
            None => Err(GatewayError::invalid("tool_choice.type", "is required")),
        },
        _ => Err(GatewayError::invalid(
            "tool_choice",
            "must be a string or an object",
        )),
    }
}

/// `text.format` as the chat `response_format`.
fn response_format(f: &Value) -> Result<Option<Value>, GatewayError> {
    match f.get("type").and_then(Value::as_str) {
        Some("text") | None => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let mut schema = Map::new();
            for k in ["name", "schema", "strict", "description"] {
                if let Some(v) = f.get(k) {
                    schema.insert(k.into(), v.clone());
                }
            }
            if !schema.contains_key("schema") {
                return Err(GatewayError::invalid(
                    "text.format.schema",
                    "is required for `json_schema`",
                ));
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": schema})))
        }
        Some(other) => Err(GatewayError::invalid(
            "text.format.type",
            format!("`{other}` is not one of text, json_object, json_schema"),
        )),
    }
}
