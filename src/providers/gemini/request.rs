//! Gemini: canonical request -> wire request.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::MAX_STOP_SEQUENCES;
use crate::GatewayError;
use crate::providers::tool_arguments;
use crate::types::{
    ChatRequest, Content, ImageUrl, Message, ReasoningEffort, Role, google_thought_signature,
};

// === request translation ===

/// Builds the `generateContent` body for `req`.
pub fn request_body(req: &ChatRequest) -> Result<Value, GatewayError> {
    let mut system: Vec<Value> = Vec::new();
    let mut contents: Vec<(&'static str, Vec<Value>)> = Vec::new();
    // Gemini matches a function result to its call by name: remember each call id's name.
    let mut call_names: HashMap<&str, &str> = HashMap::new();
    for (i, m) in req.messages.iter().enumerate() {
        let (role, parts) = match m.role {
            Role::System | Role::Developer => {
                let text = m.text_content();
                if !text.trim().is_empty() {
                    system.push(json!({"text": text}));
                }
                continue;
            }
            Role::User | Role::Function => ("user", user_parts(m, i)?),
            Role::Assistant => {
                for call in m.tool_calls.iter().flatten() {
                    call_names.insert(&call.id, &call.function.name);
                }
                ("model", model_parts(m, i)?)
            }
            Role::Tool => {
                let id = m.tool_call_id.as_deref().unwrap_or("");
                let Some(name) = call_names.get(id).copied().or(m.name.as_deref()) else {
                    return Err(GatewayError::invalid(
                        format!("messages[{i}].tool_call_id"),
                        "does not match a tool call of an earlier assistant message",
                    ));
                };
                let part = json!({"functionResponse": {
                    "name": name,
                    "response": {"result": m.text_content()},
                }});
                ("user", vec![part])
            }
        };
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            // Same-role turns are merged; this also puts parallel results in one turn.
            Some((last, prev)) if *last == role => prev.extend(parts),
            _ => contents.push((role, parts)),
        }
    }
    if contents.is_empty() {
        if system.is_empty() {
            return Err(GatewayError::invalid(
                "messages",
                "must contain a message with content",
            ));
        }
        // A system-only conversation: the instructions are the prompt.
        contents.push(("user", std::mem::take(&mut system)));
    }

    let mut body = Map::new();
    body.insert(
        "contents".into(),
        Value::Array(
            contents
                .into_iter()
                .map(|(role, parts)| json!({"role": role, "parts": parts}))
                .collect(),
        ),
    );
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({"parts": system}));
    }

    let mut config = Map::new();
    if let Some(n) = req.output_cap() {
        config.insert("maxOutputTokens".into(), json!(n));
    }
    if let Some(t) = req.temperature {
        config.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        config.insert("topP".into(), json!(p));
    }
    if let Some(stop) = &req.stop {
        let mut seqs = stop.to_vec();
        seqs.truncate(MAX_STOP_SEQUENCES);
        config.insert("stopSequences".into(), json!(seqs));
    }
    if let Some(n) = req.n {
        config.insert("candidateCount".into(), json!(n));
    }
    for (from, to) in [
        ("seed", "seed"),
        ("top_k", "topK"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ] {
        if let Some(v) = req.extra.get(from).filter(|v| !v.is_null()) {
            config.insert(to.into(), v.clone());
        }
    }
    if let Some(rf) = &req.response_format {
        match rf.get("type").and_then(Value::as_str) {
            Some("json_object") => {
                config.insert("responseMimeType".into(), json!("application/json"));
            }
            Some("json_schema") => {
                config.insert("responseMimeType".into(), json!("application/json"));
                if let Some(schema) = rf.get("json_schema").and_then(|s| s.get("schema")) {
                    config.insert("responseSchema".into(), clean_schema(schema));
                }
            }
            _ => {}
        }
    }
    if let Some(thinking) = req
        .reasoning_effort
        .filter(|_| thinks(&req.model))
        .map(|e| thinking_config(&req.model, e))
    {
        config.insert("thinkingConfig".into(), thinking);
    }
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }

    let declarations: Vec<Value> = req
        .tools
        .iter()
        .flatten()
        .filter(|t| t.kind == "function")
        .map(|t| {
            let mut decl = Map::new();
            decl.insert("name".into(), json!(t.function.name));
            if let Some(d) = &t.function.description {
                decl.insert("description".into(), json!(d));
            }
            // An object schema without properties is refused: leave the parameters out.
            if let Some(p) = &t.function.parameters
                && p.get("properties")
                    .and_then(Value::as_object)
                    .is_some_and(|props| !props.is_empty())
            {
                decl.insert("parameters".into(), clean_schema(p));
            }
            Value::Object(decl)
        })
        .collect();
    if !declarations.is_empty() {
        body.insert(
            "tools".into(),
            json!([{"functionDeclarations": declarations}]),
        );
        if let Some(config) = req.tool_choice.as_ref().and_then(map_tool_choice) {
            body.insert(
                "toolConfig".into(),
                json!({"functionCallingConfig": config}),
            );
        }
    }
    for key in ["safetySettings", "safety_settings"] {
        if let Some(v) = req.extra.get(key) {
            body.insert("safetySettings".into(), v.clone());
        }
    }
    Ok(Value::Object(body))
}

pub(super) fn map_tool_choice(choice: &Value) -> Option<Value> {
    match choice {
        Value::String(s) => match s.as_str() {
            "auto" => Some(json!({"mode": "AUTO"})),
            "required" => Some(json!({"mode": "ANY"})),
            "none" => Some(json!({"mode": "NONE"})),
            _ => None,
        },
        Value::Object(o) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)?;
            Some(json!({"mode": "ANY", "allowedFunctionNames": [name]}))
        }
        _ => None,
    }
}

pub(super) fn text_parts(text: &str) -> Vec<Value> {
    if text.is_empty() {
        Vec::new()
    } else {
        vec![json!({"text": text})]
    }
}

/// A media type from a URL's extension, for `fileData` (which requires one).
pub(super) fn guess_mime(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        _ => "image/jpeg",
    }
}

pub(super) fn user_parts(m: &Message, i: usize) -> Result<Vec<Value>, GatewayError> {
    let parts = match &m.content {
        None => return Ok(Vec::new()),
        Some(Content::Text(s)) => return Ok(text_parts(s)),
        Some(Content::Parts(parts)) => parts,
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        match part.kind.as_str() {
            "text" => out.extend(text_parts(part.text.as_deref().unwrap_or(""))),
            "image_url" => {
                let Some(image) = &part.image_url else {
                    return Err(GatewayError::invalid(
                        format!("messages[{i}].content[{j}].image_url"),
                        "is required for an image_url part",
                    ));
                };
                out.push(media_part(image, || {
                    format!("messages[{i}].content[{j}].image_url.url")
                })?);
            }
            "input_audio" => {
                let audio = part.extra.get("input_audio");
                let data = audio.and_then(|a| a.get("data")).and_then(Value::as_str);
                let format = audio.and_then(|a| a.get("format")).and_then(Value::as_str);
                let (Some(data), Some(format)) = (data, format) else {
                    return Err(GatewayError::invalid(
                        format!("messages[{i}].content[{j}].input_audio"),
                        "needs `data` and `format`",
                    ));
                };
                out.push(
                    json!({"inlineData": {"mimeType": format!("audio/{format}"), "data": data}}),
                );
            }
            "file" => {
                let data = part
                    .extra
                    .get("file")
                    .and_then(|f| f.get("file_data"))
                    .and_then(Value::as_str);
                let Some(data) = data else {
                    return Err(GatewayError::invalid(
                        format!("messages[{i}].content[{j}].file"),
                        "gemini takes files only as a data: URI in `file_data`",
                    ));
                };
                let url = ImageUrl {
                    url: data.to_owned(),
                    detail: None,
                };
                out.push(media_part(&url, || {
                    format!("messages[{i}].content[{j}].file.file_data")
                })?);
            }
            other => {
                return Err(GatewayError::invalid(
                    format!("messages[{i}].content[{j}].type"),
                    format!("`{other}` parts are not supported by gemini"),
                ));
            }
        }
    }
    Ok(out)
}

/// A base64 `data:` URI becomes `inlineData`; an http(s) URL `fileData`.
pub(super) fn media_part(
    url: &ImageUrl,
    field: impl FnOnce() -> String,
) -> Result<Value, GatewayError> {
    if let Some((mime, data)) = url.as_data_uri() {
        Ok(json!({"inlineData": {"mimeType": mime, "data": data}}))
    } else if url.url.starts_with("https://") || url.url.starts_with("http://") {
        Ok(json!({"fileData": {"mimeType": guess_mime(&url.url), "fileUri": url.url}}))
    } else {
        Err(GatewayError::invalid(
            field(),
            "must be an http(s) URL or a base64 data: URI",
        ))
    }
}

pub(super) fn model_parts(m: &Message, i: usize) -> Result<Vec<Value>, GatewayError> {
    let mut parts = text_parts(&m.text_content());
    for (j, call) in m.tool_calls.iter().flatten().enumerate() {
        let args = tool_arguments(&call.function.arguments, || {
            format!("messages[{i}].tool_calls[{j}].function.arguments")
        })?;
        let mut part = json!({"functionCall": {"name": call.function.name, "args": args}});
        if let Some(sig) = google_thought_signature(call.extra_content.as_ref()) {
            part["thoughtSignature"] = Value::String(sig.to_owned());
        }
        parts.push(part);
    }
    Ok(parts)
}

/// Keywords of JSON Schema that Gemini's OpenAPI-subset `Schema` refuses.
pub(super) const UNSUPPORTED_SCHEMA_KEYS: &[&str] = &[
    "$schema",
    "$id",
    "$defs",
    "$comment",
    "definitions",
    "additionalProperties",
    "default",
    "examples",
    "strict",
    "const",
];

/// Turns a JSON Schema into Gemini's OpenAPI subset: unsupported keywords dropped, local
/// `$ref`s inlined, `oneOf` as `anyOf`, `type: [T, "null"]` as `type: T, nullable: true`.
pub fn clean_schema(schema: &Value) -> Value {
    let defs = schema
        .get("$defs")
        .or_else(|| schema.get("definitions"))
        .and_then(Value::as_object);
    clean_node(schema, defs, 0)
}

/// How deep `$ref`s are followed (recursive schemas cannot be inlined).
pub(super) const MAX_REF_DEPTH: usize = 8;

pub(super) fn clean_node(v: &Value, defs: Option<&Map<String, Value>>, depth: usize) -> Value {
    let Value::Object(obj) = v else {
        return v.clone();
    };
    if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
        let name = r
            .strip_prefix("#/$defs/")
            .or_else(|| r.strip_prefix("#/definitions/"));
        return match name.and_then(|n| defs?.get(n)) {
            Some(target) if depth < MAX_REF_DEPTH => clean_node(target, defs, depth + 1),
            _ => json!({"type": "object"}),
        };
    }
    let mut out = Map::new();
    for (k, v) in obj {
        match k.as_str() {
            k if UNSUPPORTED_SCHEMA_KEYS.contains(&k) => {}
            "properties" => {
                let props = v
                    .as_object()
                    .map(|p| {
                        p.iter()
                            .map(|(name, s)| (name.clone(), clean_node(s, defs, depth)))
                            .collect()
                    })
                    .unwrap_or_default();
                out.insert(k.clone(), Value::Object(props));
            }
            "items" => {
                out.insert(k.clone(), clean_node(v, defs, depth));
            }
            "anyOf" | "oneOf" => {
                let alts = v
                    .as_array()
                    .map(|a| a.iter().map(|s| clean_node(s, defs, depth)).collect())
                    .unwrap_or_default();
                out.insert("anyOf".into(), Value::Array(alts));
            }
            "type" => match v {
                Value::Array(types) => {
                    let mut non_null = types.iter().filter(|t| t.as_str() != Some("null"));
                    if let Some(t) = non_null.next() {
                        out.insert("type".into(), t.clone());
                    }
                    if types.len() > 1 && types.iter().any(|t| t.as_str() == Some("null")) {
                        out.insert("nullable".into(), Value::Bool(true));
                    }
                }
                other => {
                    out.insert("type".into(), other.clone());
                }
            },
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// Whether `model` is of the Gemini 3 family, which takes a `thinkingLevel` rather than a
/// `thinkingBudget` (Gemini's thinking documentation).
pub fn uses_thinking_level(model: &str) -> bool {
    model.trim_start_matches("models/").starts_with("gemini-3")
}

/// The `thinkingBudget` of each reasoning effort on Gemini 2.5: monotonic, `high` well above
/// 1024; `none` is 0 (off) except on Pro, which cannot stop thinking and gets its minimum, 128.
pub fn thinking_budget(model: &str, effort: ReasoningEffort) -> u64 {
    match effort {
        ReasoningEffort::None if model.contains("pro") => 128,
        ReasoningEffort::None => 0,
        ReasoningEffort::Minimal => 512,
        ReasoningEffort::Low => 1024,
        ReasoningEffort::Medium => 8192,
        ReasoningEffort::High => 24576,
        ReasoningEffort::Xhigh => 32768,
    }
}

/// `thinkingConfig` for a reasoning effort: a level (Gemini 3) or a budget, with the thoughts
/// included so they reach `reasoning_content`.
pub fn thinking_config(model: &str, effort: ReasoningEffort) -> Value {
    if uses_thinking_level(model) {
        let level = match effort {
            ReasoningEffort::None | ReasoningEffort::Minimal | ReasoningEffort::Low => "low",
            ReasoningEffort::Medium | ReasoningEffort::High | ReasoningEffort::Xhigh => "high",
        };
        return json!({"thinkingLevel": level, "includeThoughts": true});
    }
    let budget = thinking_budget(model, effort);
    json!({"thinkingBudget": budget, "includeThoughts": budget > 0})
}

/// Whether `model` thinks and takes a `thinkingConfig` (Gemini 1.5 and 2.0 refuse it).
pub(super) fn thinks(model: &str) -> bool {
    let id = model.trim_start_matches("models/");
    !(id.starts_with("gemini-1") || id.starts_with("gemini-2.0"))
}
