//! Cohere: canonical request -> wire request.

use serde_json::{Map, Value, json};

use super::Cohere;
use crate::GatewayError;
use crate::types::{ChatRequest, Content, Message, Role};

impl Cohere {
    /// The Cohere request body for `req`.
    pub fn body(&self, req: &ChatRequest) -> Result<Value, GatewayError> {
        let mut body = Map::new();
        body.insert("model".into(), req.model.clone().into());
        let messages = req
            .messages
            .iter()
            .enumerate()
            .map(|(i, m)| message(i, m))
            .collect::<Result<Vec<_>, _>>()?;
        body.insert("messages".into(), Value::Array(messages));
        if let Some(n) = req.output_cap() {
            body.insert("max_tokens".into(), n.into());
        }
        if let Some(t) = req.temperature {
            body.insert("temperature".into(), t.into());
        }
        if let Some(p) = req.top_p {
            body.insert("p".into(), p.clamp(0.01, 0.99).into());
        }
        if let Some(stop) = &req.stop {
            body.insert("stop_sequences".into(), stop.to_vec().into());
        }
        if let Some(seed) = req.extra.get("seed").filter(|s| s.is_number()) {
            body.insert("seed".into(), seed.clone());
        }
        // OpenAI allows -2..2, Cohere 0..1.
        for key in ["frequency_penalty", "presence_penalty"] {
            if let Some(v) = req.extra.get(key).and_then(Value::as_f64) {
                body.insert(key.into(), v.clamp(0.0, 1.0).into());
            }
        }
        if let Some(tools) = &req.tools {
            let mut tools: Vec<Value> = tools
                .iter()
                .map(|t| {
                    let mut f = Map::new();
                    f.insert("name".into(), t.function.name.clone().into());
                    if let Some(d) = &t.function.description {
                        f.insert("description".into(), d.clone().into());
                    }
                    let params = t
                        .function
                        .parameters
                        .clone()
                        .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
                    f.insert("parameters".into(), params);
                    json!({"type": "function", "function": f})
                })
                .collect();
            match &req.tool_choice {
                Some(Value::String(s)) if s == "required" => {
                    body.insert("tool_choice".into(), "REQUIRED".into());
                }
                Some(Value::String(s)) if s == "none" => {
                    body.insert("tool_choice".into(), "NONE".into());
                }
                // No "this function" form: send only that tool, and require a call.
                Some(Value::Object(o)) => {
                    let name = o
                        .get("function")
                        .and_then(|f| f.get("name"))
                        .and_then(Value::as_str)
                        .ok_or_else(|| {
                            GatewayError::invalid("tool_choice", "must name a function")
                        })?;
                    tools.retain(|t| t["function"]["name"] == name);
                    if tools.is_empty() {
                        return Err(GatewayError::invalid(
                            "tool_choice",
                            format!("names `{name}`, which is not in `tools`"),
                        ));
                    }
                    body.insert("tool_choice".into(), "REQUIRED".into());
                }
                _ => {}
            }
            body.insert("tools".into(), Value::Array(tools));
        }
        if let Some(rf) = &req.response_format {
            match rf.get("type").and_then(Value::as_str) {
                Some("json_object") => {
                    body.insert("response_format".into(), json!({"type": "json_object"}));
                }
                Some("json_schema") => {
                    let mut f = json!({"type": "json_object"});
                    if let Some(schema) = rf.get("json_schema").and_then(|s| s.get("schema")) {
                        f["json_schema"] = schema.clone();
                    }
                    body.insert("response_format".into(), f);
                }
                Some("text") => {
                    body.insert("response_format".into(), json!({"type": "text"}));
                }
                _ => {
                    return Err(GatewayError::invalid(
                        "response_format.type",
                        "must be text, json_object or json_schema",
                    ));
                }
            }
        }
        body.insert("stream".into(), req.is_stream().into());
        Ok(Value::Object(body))
    }
}

/// One OpenAI message as a Cohere v2 message.
pub(super) fn message(i: usize, m: &Message) -> Result<Value, GatewayError> {
    Ok(match m.role {
        Role::System | Role::Developer => json!({"role": "system", "content": m.text_content()}),
        Role::User => {
            let content = match &m.content {
                Some(Content::Parts(parts)) => Value::Array(
                    parts
                        .iter()
                        .enumerate()
                        .map(|(j, p)| match (p.kind.as_str(), &p.text, &p.image_url) {
                            ("text", Some(text), _) => Ok(json!({"type": "text", "text": text})),
                            ("image_url", _, Some(img)) => {
                                let mut image = json!({"url": img.url});
                                if let Some(d) = &img.detail {
                                    image["detail"] = d.clone().into();
                                }
                                Ok(json!({"type": "image_url", "image_url": image}))
                            }
                            (kind, ..) => Err(GatewayError::invalid(
                                format!("messages[{i}].content[{j}].type"),
                                format!("`{kind}` parts are not supported by cohere; send text or image_url"),
                            )),
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                _ => m.text_content().into(),
            };
            json!({"role": "user", "content": content})
        }
        Role::Assistant => {
            let mut out = json!({"role": "assistant"});
            let text = m.text_content();
            if !text.is_empty() {
                out["content"] = text.into();
            }
            if let Some(calls) = m.tool_calls.as_ref().filter(|c| !c.is_empty()) {
                out["tool_calls"] = calls
                    .iter()
                    .map(|c| {
                        json!({"id": c.id, "type": "function",
                               "function": {"name": c.function.name, "arguments": c.function.arguments}})
                    })
                    .collect();
            }
            out
        }
        Role::Tool => json!({
            "role": "tool",
            "tool_call_id": m.tool_call_id.clone().unwrap_or_default(),
            "content": [{"type": "document", "document": {"data": m.text_content()}}],
        }),
        Role::Function => {
            return Err(GatewayError::invalid(
                format!("messages[{i}].role"),
                "`function` is not supported by cohere; use `tool` messages",
            ));
        }
    })
}
