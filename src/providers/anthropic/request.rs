//! Anthropic: canonical request -> wire request.

use serde_json::{Map, Value, json};

use super::wire::{ContentBlock, tool_id};
use super::{DEFAULT_MAX_TOKENS, JSON_OBJECT_INSTRUCTION, JSON_TOOL};
use crate::GatewayError;
use crate::providers::tool_arguments;
use crate::types::{ChatRequest, Content, Message, ReasoningEffort, Role};

// === pass-through ===

/// The client's own Anthropic body, when it came through `/v1/messages`: then the request and
/// the reply pass through unchanged apart from `model`.
pub(super) fn native_body(req: &ChatRequest) -> Option<&bytes::Bytes> {
    (req.ctx.endpoint == crate::types::Api::Messages)
        .then_some(req.ctx.native_body.as_ref())
        .flatten()
}

/// The client's body with `model` set to the upstream id.
pub(super) fn passthrough_body(raw: &[u8], model: &str) -> Result<Value, GatewayError> {
    let mut body: Map<String, Value> = serde_json::from_slice(raw)
        .map_err(|e| GatewayError::invalid("json", format!("is malformed: {e} (invalid json)")))?;
    body.insert("model".into(), Value::String(model.to_owned()));
    Ok(Value::Object(body))
}

// === request translation ===

/// Builds the `/v1/messages` body for `req` (its `model` is already the upstream id).
pub fn request_body(req: &ChatRequest) -> Result<Value, GatewayError> {
    if req.n.is_some_and(|n| n > 1) {
        return Err(GatewayError::invalid(
            "n",
            "must be 1: anthropic returns a single choice",
        ));
    }
    let mut system: Vec<String> = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        let (role, blocks) = match m.role {
            Role::System | Role::Developer => {
                let text = m.text_content();
                if !text.trim().is_empty() {
                    system.push(text);
                }
                continue;
            }
            Role::User => ("user", user_blocks(m, i)?),
            Role::Assistant => ("assistant", assistant_blocks(m, i)?),
            Role::Tool => ("user", vec![tool_result(m)]),
            // Legacy function results carry no call id to pair with: plain text.
            Role::Function => ("user", text_blocks(&m.text_content())),
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            // Anthropic wants alternating roles: merge consecutive turns of one role.
            Some((last, prev)) if *last == role => prev.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    if turns.is_empty() {
        if system.is_empty() {
            return Err(GatewayError::invalid(
                "messages",
                "must contain a message with content",
            ));
        }
        // A system-only conversation: the instructions are the prompt.
        turns.push(("user", text_blocks(&system.join("\n\n"))));
        system.clear();
    }
    if turns.first().is_some_and(|(role, _)| *role == "assistant") {
        turns.insert(0, ("user", text_blocks(".")));
    }

    let mut body = Map::new();
    body.insert("model".into(), Value::String(req.model.clone()));
    let cap = req.output_cap().unwrap_or(DEFAULT_MAX_TOKENS);
    let thinking = match (req.extra.get("thinking"), req.reasoning_effort) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(effort)) => effort_thinking(effort, cap).map(|(t, max)| {
            body.insert("max_tokens".into(), json!(max));
            t
        }),
        (None, None) => None,
    };
    let thinks = thinking
        .as_ref()
        .is_some_and(|t| t.get("type").and_then(Value::as_str) != Some("disabled"));
    body.entry("max_tokens").or_insert_with(|| json!(cap));
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, mut blocks)| {
            let content = match blocks.as_slice() {
                [b] if b.get("type").and_then(Value::as_str) == Some("text") => {
                    b.get("text").cloned().unwrap_or_default()
                }
                _ => Value::Array(std::mem::take(&mut blocks)),
            };
            json!({"role": role, "content": content})
        })
        .collect();
    body.insert("messages".into(), Value::Array(messages));

    if thinks {
        // With extended thinking the API accepts neither a temperature nor top_k, and top_p
        // only from 0.95 (Anthropic's extended thinking documentation): they are left out.
    } else if let Some(t) = req.temperature {
        // OpenAI allows 0..2, Anthropic 0..1.
        body.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    } else if let Some(p) = req.top_p {
        // Recent models refuse both at once: temperature wins when both are set.
        body.insert("top_p".into(), json!(p));
    }
    if let Some(stop) = &req.stop {
        // Whitespace-only stop sequences are rejected by the API.
        let seqs: Vec<String> = stop
            .to_vec()
            .into_iter()
            .filter(|s| !s.trim().is_empty())
            .collect();
        if !seqs.is_empty() {
            body.insert("stop_sequences".into(), json!(seqs));
        }
    }
    if req.is_stream() {
        body.insert("stream".into(), Value::Bool(true));
    }
    if let Some(k) = req.extra.get("top_k")
        && !thinks
    {
        body.insert("top_k".into(), k.clone());
    }
    if let Some(t) = thinking {
        body.insert("thinking".into(), t);
    }
    if let Some(user) = req.extra.get("user").and_then(Value::as_str) {
        body.insert("metadata".into(), json!({"user_id": user}));
    }

    let mut tools: Vec<Value> = req
        .tools
        .iter()
        .flatten()
        .filter(|t| t.kind == "function")
        .map(|t| {
            let mut tool = Map::new();
            tool.insert("name".into(), Value::String(t.function.name.clone()));
            if let Some(d) = &t.function.description {
                tool.insert("description".into(), Value::String(d.clone()));
            }
            tool.insert(
                "input_schema".into(),
                object_schema(t.function.parameters.as_ref()),
            );
            if let Some(cc) = t.extra.get("cache_control") {
                tool.insert("cache_control".into(), cc.clone());
            }
            Value::Object(tool)
        })
        .collect();
    let mut tool_choice = req.tool_choice.as_ref().and_then(map_tool_choice);

    match response_format(req) {
        Some(ResponseFormat::JsonObject) => system.push(JSON_OBJECT_INSTRUCTION.into()),
        Some(ResponseFormat::JsonSchema(schema)) if forces_json_tool(req) => {
            tools.push(json!({
                "name": JSON_TOOL,
                "description": "Respond with the answer as this tool's input.",
                "input_schema": schema,
            }));
            tool_choice = Some(json!({"type": "tool", "name": JSON_TOOL}));
        }
        Some(ResponseFormat::JsonSchema(schema)) => system.push(format!(
            "{JSON_OBJECT_INSTRUCTION} It must match this JSON schema: {schema}"
        )),
        None => {}
    }
    if !system.is_empty() {
        body.insert("system".into(), Value::String(system.join("\n\n")));
    }
    if !tools.is_empty() {
        body.insert("tools".into(), Value::Array(tools));
        if req.extra.get("parallel_tool_calls") == Some(&Value::Bool(false)) {
            let choice = tool_choice.get_or_insert_with(|| json!({"type": "auto"}));
            if choice.get("type").and_then(Value::as_str) != Some("none")
                && let Value::Object(c) = choice
            {
                c.insert("disable_parallel_tool_use".into(), Value::Bool(true));
            }
        }
        if let Some(choice) = tool_choice {
            body.insert("tool_choice".into(), choice);
        }
    }
    Ok(Value::Object(body))
}

/// `response_format`, as far as Anthropic needs to know.
pub(super) enum ResponseFormat {
    JsonObject,
    JsonSchema(Value),
}

pub(super) fn response_format(req: &ChatRequest) -> Option<ResponseFormat> {
    let rf = req.response_format.as_ref()?;
    match rf.get("type").and_then(Value::as_str)? {
        "json_object" => Some(ResponseFormat::JsonObject),
        "json_schema" => {
            let schema = rf
                .get("json_schema")
                .and_then(|s| s.get("schema"))
                .cloned()
                .unwrap_or_else(|| json!({"type": "object"}));
            Some(ResponseFormat::JsonSchema(schema))
        }
        _ => None,
    }
}

/// Whether `json_schema` is served by forcing [`JSON_TOOL`]: only when the client brought no
/// tools of its own (forcing one would forbid them) and the schema describes an object (a tool
/// input must be one).
pub(super) fn forces_json_tool(req: &ChatRequest) -> bool {
    matches!(response_format(req), Some(ResponseFormat::JsonSchema(s))
        if s.get("type").and_then(Value::as_str) == Some("object"))
        && req.tools.as_ref().is_none_or(Vec::is_empty)
}

/// A tool's `input_schema`: the parameters, which must be an object schema.
pub(super) fn object_schema(params: Option<&Value>) -> Value {
    match params {
        Some(Value::Object(p)) => {
            let mut p = p.clone();
            p.entry("type")
                .or_insert_with(|| Value::String("object".into()));
            Value::Object(p)
        }
        _ => json!({"type": "object", "properties": {}}),
    }
}

pub(super) fn map_tool_choice(choice: &Value) -> Option<Value> {
    match choice {
        Value::String(s) => match s.as_str() {
            "auto" => Some(json!({"type": "auto"})),
            "required" => Some(json!({"type": "any"})),
            "none" => Some(json!({"type": "none"})),
            _ => None,
        },
        Value::Object(o) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)?;
            Some(json!({"type": "tool", "name": name}))
        }
        _ => None,
    }
}

pub(super) fn text_blocks(text: &str) -> Vec<Value> {
    if text.is_empty() {
        Vec::new()
    } else {
        vec![json!({"type": "text", "text": text})]
    }
}

pub(super) fn user_blocks(m: &Message, i: usize) -> Result<Vec<Value>, GatewayError> {
    let parts = match &m.content {
        None => return Ok(Vec::new()),
        Some(Content::Text(s)) => return Ok(text_blocks(s)),
        Some(Content::Parts(parts)) => parts,
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let before = blocks.len();
        match part.kind.as_str() {
            "text" => blocks.extend(text_blocks(part.text.as_deref().unwrap_or(""))),
            "image_url" => {
                let Some(image) = &part.image_url else {
                    return Err(GatewayError::invalid(
                        format!("messages[{i}].content[{j}].image_url"),
                        "is required for an image_url part",
                    ));
                };
                let source = if let Some((media, data)) = image.as_data_uri() {
                    json!({"type": "base64", "media_type": media, "data": data})
                } else if image.url.starts_with("https://") || image.url.starts_with("http://") {
                    json!({"type": "url", "url": image.url})
                } else {
                    return Err(GatewayError::invalid(
                        format!("messages[{i}].content[{j}].image_url.url"),
                        "must be an http(s) URL or a base64 data: URI",
                    ));
                };
                blocks.push(json!({"type": "image", "source": source}));
            }
            "file" => {
                let data = part
                    .extra
                    .get("file")
                    .and_then(|f| f.get("file_data"))
                    .and_then(Value::as_str)
                    .and_then(|d| {
                        crate::types::ImageUrl {
                            url: d.to_owned(),
                            detail: None,
                        }
                        .as_data_uri()
                        .map(|(m, d)| (m.to_owned(), d.to_owned()))
                    });
                let Some((media, data)) = data.filter(|(m, _)| m == "application/pdf") else {
                    return Err(GatewayError::invalid(
                        format!("messages[{i}].content[{j}].file"),
                        "anthropic takes files only as a base64 PDF in `file_data`",
                    ));
                };
                blocks.push(json!({"type": "document", "source": {"type": "base64", "media_type": media, "data": data}}));
            }
            other => {
                return Err(GatewayError::invalid(
                    format!("messages[{i}].content[{j}].type"),
                    format!("`{other}` parts are not supported by anthropic"),
                ));
            }
        }
        // A part's prompt-caching marker goes on the block it became, as sent (Anthropic's
        // prompt caching documentation: `cache_control` on a content block).
        if let (Some(cc), Some(Value::Object(block))) =
            (part.extra.get("cache_control"), blocks.get_mut(before))
        {
            block.insert("cache_control".into(), cc.clone());
        }
    }
    Ok(blocks)
}

pub(super) fn assistant_blocks(m: &Message, i: usize) -> Result<Vec<Value>, GatewayError> {
    // Thinking blocks go first, unchanged: with extended thinking on, the API rejects a tool
    // turn whose assistant message lost the block that preceded its tool calls.
    let mut blocks: Vec<Value> = m
        .thinking_blocks
        .iter()
        .flatten()
        .filter_map(|b| serde_json::to_value(ContentBlock::from_thinking_block(b)).ok())
        .collect();
    blocks.extend(text_blocks(&m.text_content()));
    for (j, call) in m.tool_calls.iter().flatten().enumerate() {
        let input = tool_arguments(&call.function.arguments, || {
            format!("messages[{i}].tool_calls[{j}].function.arguments")
        })?;
        blocks.push(json!({
            "type": "tool_use",
            "id": tool_id(&call.id),
            "name": call.function.name,
            "input": input,
        }));
    }
    Ok(blocks)
}

pub(super) fn tool_result(m: &Message) -> Value {
    let mut block = Map::new();
    block.insert("type".into(), Value::String("tool_result".into()));
    block.insert(
        "tool_use_id".into(),
        Value::String(tool_id(m.tool_call_id.as_deref().unwrap_or(""))),
    );
    let text = m.text_content();
    if !text.is_empty() {
        block.insert("content".into(), Value::String(text));
    }
    Value::Object(block)
}

/// The thinking budget of each reasoning effort: monotonic, and never under the API's
/// minimum of 1024 tokens.
pub fn thinking_budget(effort: ReasoningEffort) -> Option<u64> {
    match effort {
        ReasoningEffort::None => None,
        ReasoningEffort::Minimal | ReasoningEffort::Low => Some(1024),
        ReasoningEffort::Medium => Some(2048),
        ReasoningEffort::High => Some(4096),
        ReasoningEffort::Xhigh => Some(8192),
    }
}

/// `thinking` and `max_tokens` for a reasoning effort and the client's output cap. The budget
/// must stay below `max_tokens`; when the cap leaves no room for it, `max_tokens` grows by the
/// budget so the answer keeps the cap the client asked for.
pub fn effort_thinking(effort: ReasoningEffort, cap: u64) -> Option<(Value, u64)> {
    let Some(budget) = thinking_budget(effort) else {
        return Some((json!({"type": "disabled"}), cap));
    };
    let (budget, max) = if cap > budget {
        (budget, cap)
    } else if cap > MIN_THINKING_BUDGET {
        (cap - 1, cap)
    } else {
        (MIN_THINKING_BUDGET, cap.saturating_add(MIN_THINKING_BUDGET))
    };
    Some((json!({"type": "enabled", "budget_tokens": budget}), max))
}

/// The smallest thinking budget the API accepts.
pub const MIN_THINKING_BUDGET: u64 = 1024;
