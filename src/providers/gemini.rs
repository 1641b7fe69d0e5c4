//! The Google Gemini (AI Studio, "generativelanguage") adapter: canonical OpenAI chat requests
//! become `generateContent` / `streamGenerateContent?alt=sse` bodies, and Gemini's responses,
//! SSE chunks and `google.rpc` errors come back as canonical responses, chunks and
//! [`GatewayError`]s (providers.md §4).
//!
//! Gemini differs from OpenAI in ways the gateway must paper over: roles are `user`/`model`
//! with the system prompt apart; tool results are matched by function *name*, so the adapter
//! remembers which name each `tool_call_id` belongs to; function calls carry no ids, so the
//! adapter mints them; `finishReason` is `STOP` even when the model called a function; a bad
//! key is a 400 (`API_KEY_INVALID`) that must fail over rather than reach the client as its own
//! mistake; a 429's delay sits in the body (`google.rpc.RetryInfo.retryDelay`); and a stream
//! ends at connection close, possibly with a bare error object instead of a `data:` event.
//!
//! # Example
//! ```
//! use proxygate::config::Secret;
//! use proxygate::providers::ProviderAdapter;
//! use proxygate::providers::gemini::Gemini;
//! use proxygate::types::ChatRequest;
//!
//! let adapter = Gemini::new("https://generativelanguage.googleapis.com", Secret::new("AIza-test"));
//! let req: ChatRequest = serde_json::from_value(serde_json::json!({
//!     "model": "gemini-2.5-flash", "stream": true,
//!     "messages": [{"role": "user", "content": "Hi"}]
//! })).unwrap();
//! let up = adapter.request(&req).unwrap();
//! assert_eq!(
//!     up.uri(),
//!     "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
//! );
//! ```

use std::collections::{HashMap, VecDeque};

use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    Framing, ProviderAdapter, RAW_JSON_EVENT, SseEvent, StreamDecoder, UpstreamRequest,
    embedding_texts, go_duration, json_post, openai_style_error, parse_json, retry_after,
    summarise, tool_arguments, with_json,
};
use super::{ProviderEndpoint, ProviderSettings};
use crate::GatewayError;
use crate::catalog::ProviderSpec;
use crate::client::HttpClient;
use crate::config::Secret;
use crate::types::{
    ChatChunk, ChatRequest, ChatResponse, Choice, ChunkChoice, Content, Delta, EmbeddingRequest,
    EmbeddingResponse, FunctionCall, FunctionCallDelta, ImageUrl, Message, ResponseMessage, Role,
    ToolCall, ToolCallDelta, Usage,
};

const PROVIDER: &str = "gemini";
/// Gemini accepts at most this many stop sequences.
const MAX_STOP_SEQUENCES: usize = 5;

/// The adapter for one Gemini API key.
#[derive(Debug)]
pub struct Gemini {
    base: String,
    key: Secret,
}

// === impl Gemini ===

impl Gemini {
    /// An adapter for the API at `base_url` (the host root; `/v1beta/models/...` is appended).
    pub fn new(base_url: &str, key: Secret) -> Self {
        Self {
            base: base_url.trim_end_matches('/').to_owned(),
            key,
        }
    }

    fn url(&self, req: &ChatRequest) -> Result<String, GatewayError> {
        let model = Self::model_id(req)?;
        Ok(if req.is_stream() {
            format!(
                "{}/v1beta/models/{model}:streamGenerateContent?alt=sse",
                self.base
            )
        } else {
            format!("{}/v1beta/models/{model}:generateContent", self.base)
        })
    }

    /// The bare model id of `req`, checked to be one path segment.
    fn model_id(req: &ChatRequest) -> Result<&str, GatewayError> {
        let model = req.model.strip_prefix("models/").unwrap_or(&req.model);
        // The model is a path segment: anything beyond these characters would change the path.
        if model.is_empty()
            || !model
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(GatewayError::invalid(
                "model",
                "is not a valid Gemini model id",
            ));
        }
        Ok(model)
    }
}

impl ProviderAdapter for Gemini {
    type Decoder = GeminiDecoder;

    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn framing(&self) -> Framing {
        Framing::SseOrRawJson
    }

    fn request(&self, req: &ChatRequest) -> Result<UpstreamRequest, GatewayError> {
        let body = request_body(req)?;
        let mut builder =
            json_post(&self.url(req)?)?.header("x-goog-api-key", self.key.header_value()?);
        if req.is_stream() {
            builder = builder.header(http::header::ACCEPT, "text/event-stream");
        }
        with_json(builder, &body)
    }

    fn response(&self, req: &ChatRequest, body: &[u8]) -> Result<ChatResponse, GatewayError> {
        let resp: WireResponse = parse_json(PROVIDER, body)?;
        translate_response(resp, &req.model)
    }

    fn decoder(&self, req: &ChatRequest) -> GeminiDecoder {
        GeminiDecoder::new(&req.model)
    }

    fn error(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> GatewayError {
        map_error(status, headers, body)
    }

    fn success_is_error(&self, body: &[u8]) -> Option<GatewayError> {
        let v: Value = serde_json::from_slice(body.trim_ascii_start()).ok()?;
        v.get("error")?;
        error_from_json(StatusCode::BAD_GATEWAY, &HeaderMap::new(), &v)
    }

    /// One text: `:embedContent`; several: `:batchEmbedContents`, one request per text.
    fn embed_request(
        &self,
        req: &ChatRequest,
        emb: &EmbeddingRequest,
    ) -> Result<UpstreamRequest, GatewayError> {
        let model = Self::model_id(req)?;
        let texts = embedding_texts(PROVIDER, emb)?;
        let one = |text: &str| {
            let mut r =
                json!({"model": format!("models/{model}"), "content": {"parts": [{"text": text}]}});
            if let Some(d) = emb.dimensions {
                r["outputDimensionality"] = d.into();
            }
            if let Some(t) = emb
                .extra
                .get("task_type")
                .or_else(|| emb.extra.get("taskType"))
            {
                r["taskType"] = t.clone();
            }
            r
        };
        let (url, body) = if let [text] = texts.as_slice() {
            (
                format!("{}/v1beta/models/{model}:embedContent", self.base),
                one(text),
            )
        } else {
            (
                format!("{}/v1beta/models/{model}:batchEmbedContents", self.base),
                json!({"requests": texts.iter().map(|t| one(t)).collect::<Vec<_>>()}),
            )
        };
        let builder = json_post(&url)?.header("x-goog-api-key", self.key.header_value()?);
        with_json(builder, &body)
    }

    fn embed_response(
        &self,
        req: &ChatRequest,
        _emb: &EmbeddingRequest,
        body: &[u8],
    ) -> Result<EmbeddingResponse, GatewayError> {
        #[derive(Deserialize)]
        struct Values {
            #[serde(default)]
            values: Vec<f32>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire {
            #[serde(default)]
            embedding: Option<Values>,
            #[serde(default)]
            embeddings: Option<Vec<Values>>,
            #[serde(default)]
            usage_metadata: Option<Value>,
        }
        let wire: Wire = parse_json(PROVIDER, body)?;
        let vectors: Vec<Vec<f32>> = match (wire.embedding, wire.embeddings) {
            (Some(one), _) => vec![one.values],
            (None, Some(many)) => many.into_iter().map(|v| v.values).collect(),
            (None, None) => {
                return Err(GatewayError::BadUpstreamResponse {
                    provider: PROVIDER,
                    reason: "no `embedding` or `embeddings` in the answer".into(),
                });
            }
        };
        // Gemini usually reports no tokens for embeddings: the cost layer counts them then.
        let usage = wire
            .usage_metadata
            .as_ref()
            .and_then(|u| u.get("promptTokenCount"))
            .and_then(Value::as_u64)
            .map(|p| Usage::new(p, 0));
        Ok(EmbeddingResponse::new(
            Self::model_id(req).unwrap_or(&req.model),
            vectors,
            usage,
        ))
    }
}

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

fn map_tool_choice(choice: &Value) -> Option<Value> {
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

fn text_parts(text: &str) -> Vec<Value> {
    if text.is_empty() {
        Vec::new()
    } else {
        vec![json!({"text": text})]
    }
}

/// A media type from a URL's extension, for `fileData` (which requires one).
fn guess_mime(url: &str) -> &'static str {
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

fn user_parts(m: &Message, i: usize) -> Result<Vec<Value>, GatewayError> {
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
fn media_part(url: &ImageUrl, field: impl FnOnce() -> String) -> Result<Value, GatewayError> {
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

fn model_parts(m: &Message, i: usize) -> Result<Vec<Value>, GatewayError> {
    let mut parts = text_parts(&m.text_content());
    for (j, call) in m.tool_calls.iter().flatten().enumerate() {
        let args = tool_arguments(&call.function.arguments, || {
            format!("messages[{i}].tool_calls[{j}].function.arguments")
        })?;
        parts.push(json!({"functionCall": {"name": call.function.name, "args": args}}));
    }
    Ok(parts)
}

/// Keywords of JSON Schema that Gemini's OpenAPI-subset `Schema` refuses.
const UNSUPPORTED_SCHEMA_KEYS: &[&str] = &[
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
const MAX_REF_DEPTH: usize = 8;

fn clean_node(v: &Value, defs: Option<&Map<String, Value>>, depth: usize) -> Value {
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

// === response translation ===

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireResponse {
    #[serde(default)]
    candidates: Vec<WireCandidate>,
    #[serde(default)]
    prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    usage_metadata: Option<WireUsage>,
    #[serde(default)]
    model_version: Option<String>,
    #[serde(default)]
    response_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCandidate {
    #[serde(default)]
    content: Option<WireContent>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    index: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
struct WireContent {
    #[serde(default)]
    parts: Vec<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireUsage {
    #[serde(default)]
    prompt_token_count: Option<u64>,
    #[serde(default)]
    candidates_token_count: Option<u64>,
    #[serde(default)]
    cached_content_token_count: Option<u64>,
    #[serde(default)]
    thoughts_token_count: Option<u64>,
    #[serde(default)]
    tool_use_prompt_token_count: Option<u64>,
}

impl WireUsage {
    /// OpenAI usage: tool-use prompt tokens are prompt, thinking tokens are completion.
    fn to_usage(self) -> Usage {
        let prompt =
            self.prompt_token_count.unwrap_or(0) + self.tool_use_prompt_token_count.unwrap_or(0);
        let thoughts = self.thoughts_token_count.unwrap_or(0);
        let mut usage = Usage::new(prompt, self.candidates_token_count.unwrap_or(0) + thoughts);
        usage.extra.insert(
            "prompt_tokens_details".into(),
            json!({"cached_tokens": self.cached_content_token_count.unwrap_or(0)}),
        );
        usage.extra.insert(
            "completion_tokens_details".into(),
            json!({"reasoning_tokens": thoughts}),
        );
        usage
    }
}

/// Gemini's `finishReason` as an OpenAI `finish_reason`. `STOP` with a function call is
/// `tool_calls`; the function-call failures (`MALFORMED_FUNCTION_CALL`, ...) and `OTHER` are
/// reported as `stop`, the policy providers.md §4.7 leaves open.
pub fn finish_reason(reason: &str, called_function: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "LANGUAGE" => {
            "content_filter"
        }
        r if r.starts_with("IMAGE_") => "content_filter",
        _ if called_function => "tool_calls",
        _ => "stop",
    }
}

/// A prefix for the tool-call ids of one response (Gemini sends none).
fn id_prefix() -> String {
    use rand::Rng;
    let n: u64 = rand::rng().random();
    format!("call_{n:016x}")
}

/// What one candidate's parts say.
#[derive(Debug, Default)]
struct Parts {
    text: String,
    thoughts: String,
    calls: Vec<(Option<String>, String, String)>,
}

fn read_parts(parts: &[Value]) -> Parts {
    let mut out = Parts::default();
    for part in parts {
        if let Some(text) = part.get("text").and_then(Value::as_str) {
            if part.get("thought").and_then(Value::as_bool) == Some(true) {
                out.thoughts.push_str(text);
            } else {
                out.text.push_str(text);
            }
        } else if let Some(call) = part.get("functionCall") {
            let name = call.get("name").and_then(Value::as_str).unwrap_or("");
            let args = call.get("args").cloned().unwrap_or_else(|| json!({}));
            let id = call.get("id").and_then(Value::as_str).map(str::to_owned);
            out.calls.push((id, name.to_owned(), args.to_string()));
        }
    }
    out
}

fn translate_response(resp: WireResponse, model: &str) -> Result<ChatResponse, GatewayError> {
    let prefix = id_prefix();
    let mut choices = Vec::with_capacity(resp.candidates.len().max(1));
    for (pos, cand) in resp.candidates.iter().enumerate() {
        let parts = read_parts(cand.content.as_ref().map_or(&[][..], |c| &c.parts));
        let calls: Vec<ToolCall> = parts
            .calls
            .into_iter()
            .enumerate()
            .map(|(k, (id, name, arguments))| ToolCall {
                id: id.unwrap_or_else(|| format!("{prefix}_{pos}_{k}")),
                kind: "function".into(),
                function: FunctionCall { name, arguments },
            })
            .collect();
        let finish = finish_reason(
            cand.finish_reason.as_deref().unwrap_or("STOP"),
            !calls.is_empty(),
        );
        let content = if parts.text.is_empty() && !calls.is_empty() {
            None
        } else {
            Some(parts.text)
        };
        let mut message = ResponseMessage::assistant(content, (!calls.is_empty()).then_some(calls));
        if !parts.thoughts.is_empty() {
            message
                .extra
                .insert("reasoning_content".into(), Value::String(parts.thoughts));
        }
        choices.push(Choice {
            index: cand.index.unwrap_or(pos as u32),
            message,
            logprobs: None,
            finish_reason: Some(finish.into()),
        });
    }
    if choices.is_empty() {
        let Some(reason) = resp.prompt_feedback.and_then(|f| f.block_reason) else {
            return Err(GatewayError::BadUpstreamResponse {
                provider: PROVIDER,
                reason: "response has neither candidates nor a block reason".into(),
            });
        };
        // The prompt itself was blocked: an empty, filtered answer.
        let mut message = ResponseMessage::assistant(None, None);
        message.refusal = Some(format!("the prompt was blocked by gemini ({reason})"));
        choices.push(Choice {
            index: 0,
            message,
            logprobs: None,
            finish_reason: Some("content_filter".into()),
        });
    }
    Ok(ChatResponse {
        id: resp
            .response_id
            .map(|id| format!("chatcmpl-{id}"))
            .unwrap_or_else(crate::types::completion_id),
        object: "chat.completion".into(),
        created: crate::types::unix_now(),
        model: resp.model_version.unwrap_or_else(|| model.to_owned()),
        choices,
        usage: resp.usage_metadata.map(WireUsage::to_usage),
        extra: Map::new(),
    })
}

// === stream translation ===

/// Decodes Gemini's `?alt=sse` stream: every event is a whole `GenerateContentResponse` with
/// only the new parts. The stream has no terminator; it is complete when some chunk carried a
/// `finishReason` (or a prompt block) before the connection closed.
#[derive(Debug)]
pub struct GeminiDecoder {
    id: String,
    model: String,
    created: u64,
    prefix: String,
    started: bool,
    /// Per candidate: next OpenAI tool index, and whether a function was called.
    candidates: HashMap<u32, (u32, bool)>,
    usage: Option<WireUsage>,
    finished: bool,
}

// === impl GeminiDecoder ===

impl GeminiDecoder {
    /// A decoder for a stream from `model`.
    pub fn new(model: &str) -> Self {
        Self {
            id: String::new(),
            model: model.to_owned(),
            created: crate::types::unix_now(),
            prefix: id_prefix(),
            started: false,
            candidates: HashMap::new(),
            usage: None,
            finished: false,
        }
    }

    fn emit(
        &mut self,
        index: u32,
        delta: Delta,
        finish: Option<&str>,
        out: &mut VecDeque<ChatChunk>,
    ) {
        if !self.started {
            self.started = true;
            out.push_back(ChatChunk::delta(
                &self.id,
                self.created,
                &self.model,
                Delta::role(),
                None,
            ));
        }
        let mut chunk = ChatChunk::delta(&self.id, self.created, &self.model, delta, finish);
        if let Some(ChunkChoice { index: i, .. }) = chunk.choices.first_mut() {
            *i = index;
        }
        out.push_back(chunk);
    }
}

impl StreamDecoder for GeminiDecoder {
    fn event(
        &mut self,
        event: SseEvent,
        out: &mut VecDeque<ChatChunk>,
    ) -> Result<(), GatewayError> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(());
        }
        let v: Value =
            serde_json::from_str(data).map_err(|e| GatewayError::BadUpstreamResponse {
                provider: PROVIDER,
                reason: if event.event.as_deref() == Some(RAW_JSON_EVENT) {
                    format!("unreadable text in the stream: {e}")
                } else {
                    format!("invalid stream event: {e}")
                },
            })?;
        // An error written into the stream, as a bare object or a `data:` event.
        if v.get("error").is_some() {
            return Err(
                error_from_json(StatusCode::BAD_GATEWAY, &HeaderMap::new(), &v).unwrap_or_else(
                    || GatewayError::BadUpstreamResponse {
                        provider: PROVIDER,
                        reason: "error object in stream".into(),
                    },
                ),
            );
        }
        let resp: WireResponse =
            serde_json::from_value(v).map_err(|e| GatewayError::BadUpstreamResponse {
                provider: PROVIDER,
                reason: format!("unexpected stream chunk: {e}"),
            })?;
        if self.id.is_empty() {
            self.id = resp
                .response_id
                .as_ref()
                .map(|id| format!("chatcmpl-{id}"))
                .unwrap_or_else(crate::types::completion_id);
        }
        // Every chunk names the same model: take the upstream's only before the first one.
        if let Some(m) = resp.model_version
            && !self.started
        {
            self.model = m;
        }
        if let Some(u) = resp.usage_metadata {
            // Later chunks carry running or final totals: keep the last seen.
            self.usage = Some(u);
        }
        for (pos, cand) in resp.candidates.iter().enumerate() {
            let index = cand.index.unwrap_or(pos as u32);
            let parts = read_parts(cand.content.as_ref().map_or(&[][..], |c| &c.parts));
            if !parts.thoughts.is_empty() {
                let mut d = Delta::default();
                d.extra
                    .insert("reasoning_content".into(), Value::String(parts.thoughts));
                self.emit(index, d, None, out);
            }
            if !parts.text.is_empty() {
                self.emit(index, Delta::text(parts.text), None, out);
            }
            for (id, name, arguments) in parts.calls {
                // Function calls arrive whole: one delta with id, name and all arguments.
                let state = self.candidates.entry(index).or_default();
                let k = state.0;
                *state = (k + 1, true);
                let delta = Delta {
                    tool_calls: Some(vec![ToolCallDelta {
                        index: k,
                        id: Some(id.unwrap_or_else(|| format!("{}_{index}_{k}", self.prefix))),
                        kind: Some("function".into()),
                        function: Some(FunctionCallDelta {
                            name: Some(name),
                            arguments: Some(arguments),
                        }),
                    }]),
                    ..Delta::default()
                };
                self.emit(index, delta, None, out);
            }
            if let Some(reason) = cand
                .finish_reason
                .as_deref()
                .filter(|r| !r.is_empty() && *r != "FINISH_REASON_UNSPECIFIED")
            {
                let called = self.candidates.get(&index).is_some_and(|s| s.1);
                self.finished = true;
                self.emit(
                    index,
                    Delta::default(),
                    Some(finish_reason(reason, called)),
                    out,
                );
            }
        }
        if resp.candidates.is_empty()
            && resp
                .prompt_feedback
                .as_ref()
                .is_some_and(|f| f.block_reason.is_some())
        {
            self.finished = true;
            self.emit(0, Delta::default(), Some("content_filter"), out);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut VecDeque<ChatChunk>) -> Result<(), GatewayError> {
        if !self.finished {
            return Err(GatewayError::Connect {
                provider: PROVIDER,
                reason: "stream ended before any chunk carried a finishReason".into(),
            });
        }
        if let Some(u) = self.usage.take() {
            out.push_back(ChatChunk::usage_only(
                &self.id,
                self.created,
                &self.model,
                u.to_usage(),
            ));
        }
        Ok(())
    }
}

// === errors ===

/// Maps a Gemini error response (`{"error":{"code","message","status","details"}}`).
pub fn map_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> GatewayError {
    let v: Option<Value> = serde_json::from_slice(body.trim_ascii_start()).ok();
    // The non-SSE stream mode wraps everything in an array.
    let v = match v {
        Some(Value::Array(mut a)) if !a.is_empty() => Some(a.swap_remove(0)),
        other => other,
    };
    v.and_then(|v| error_from_json(status, headers, &v))
        .unwrap_or_else(|| openai_style_error(PROVIDER, status, headers, body))
}

/// An error object as a [`GatewayError`]; `status` is used when the body names none.
fn error_from_json(status: StatusCode, headers: &HeaderMap, v: &Value) -> Option<GatewayError> {
    let err = v.get("error")?.as_object()?;
    let message = err.get("message").and_then(Value::as_str).unwrap_or("");
    let rpc_status = err.get("status").and_then(Value::as_str).unwrap_or("");
    let details = err.get("details").and_then(Value::as_array);
    let detail_reason = |want: &str| {
        details.is_some_and(|d| {
            d.iter()
                .any(|x| x.get("reason").and_then(Value::as_str) == Some(want))
        })
    };
    // A 200 stream names its status only in the body.
    let status = if status.is_success() || status == StatusCode::BAD_GATEWAY {
        err.get("code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .and_then(|c| StatusCode::from_u16(c).ok())
            .filter(|s| s.is_client_error() || s.is_server_error())
            .unwrap_or(status)
    } else {
        status
    };
    let lower = message.to_ascii_lowercase();
    let (status, code) = if detail_reason("API_KEY_INVALID")
        || lower.contains("api key not valid")
        || lower.contains("api key expired")
    {
        // Gemini answers a bad key with 400: it is the deployment's credentials, not the
        // client's request, so it must fail over like a 401.
        (StatusCode::UNAUTHORIZED, Some("invalid_api_key"))
    } else if rpc_status == "FAILED_PRECONDITION" {
        // Billing or region: this key cannot serve, another deployment may.
        (StatusCode::FORBIDDEN, None)
    } else if rpc_status == "RESOURCE_EXHAUSTED" || status == StatusCode::TOO_MANY_REQUESTS {
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limit_exceeded"))
    } else if rpc_status == "UNAVAILABLE" {
        (StatusCode::SERVICE_UNAVAILABLE, None)
    } else {
        (status, None)
    };
    let after = retry_after(headers).or_else(|| {
        details?
            .iter()
            .filter(|d| {
                d.get("@type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.ends_with("google.rpc.RetryInfo"))
            })
            .find_map(|d| retry_delay(d.get("retryDelay")?))
    });
    Some(GatewayError::Upstream {
        provider: PROVIDER,
        status,
        message: if message.is_empty() {
            format!("{rpc_status} (HTTP {})", status.as_u16())
        } else {
            summarise(message)
        },
        code: code.map(str::to_owned),
        retry_after: after,
    })
}

/// A protobuf `Duration` in JSON: `"33s"`, `"1.5s"`, or `{"seconds":..,"nanos":..}`.
fn retry_delay(v: &Value) -> Option<std::time::Duration> {
    match v {
        Value::String(s) => go_duration(s),
        Value::Object(o) => {
            let secs = match o.get("seconds")? {
                Value::String(s) => s.parse().ok()?,
                other => other.as_u64()?,
            };
            let nanos = o.get("nanos").and_then(Value::as_u64).unwrap_or(0);
            Some(std::time::Duration::from_secs(secs) + std::time::Duration::from_nanos(nanos))
        }
        _ => None,
    }
}

/// Builds the endpoints of a configured provider: one per credential.
pub(crate) fn build(
    _spec: &'static ProviderSpec,
    settings: &ProviderSettings,
    client: &HttpClient,
) -> Result<Vec<ProviderEndpoint>, String> {
    Ok(super::endpoint_per_key(settings, client, Gemini::new))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn req(v: Value) -> ChatRequest {
        serde_json::from_value(v).unwrap()
    }

    fn decode(raw: &str, cuts: &[usize]) -> (Vec<ChatChunk>, Result<(), GatewayError>) {
        let mut dec = GeminiDecoder::new("gemini-2.5-flash");
        crate::providers::decode_pieces(
            Framing::SseOrRawJson,
            &mut dec,
            &crate::providers::cut(raw.as_bytes(), cuts),
        )
    }

    /// The documented request (providers.md §4.2), from its OpenAI form.
    #[test]
    fn golden_request_with_system_image_tools_and_history() {
        let r = req(json!({
            "model": "gemini-2.5-flash",
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR..."}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "14C, rain"}
            ],
            "max_tokens": 1024,
            "temperature": 0.2,
            "top_p": 0.9,
            "top_k": 40,
            "stop": ["END"],
            "n": 1,
            "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema":
                {"type": "object", "properties": {"answer": {"type": "string"}}, "additionalProperties": false}}},
            "tools": [{"type": "function", "function": {
                "name": "get_weather", "description": "Current weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
            "tool_choice": "auto"
        }));
        assert_eq!(
            request_body(&r).unwrap(),
            json!({
                "systemInstruction": {"parts": [{"text": "Be terse."}]},
                "contents": [
                    {"role": "user", "parts": [
                        {"text": "What is in this picture?"},
                        {"inlineData": {"mimeType": "image/png", "data": "iVBOR..."}}
                    ]},
                    {"role": "model", "parts": [
                        {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}
                    ]},
                    {"role": "user", "parts": [
                        {"functionResponse": {"name": "get_weather", "response": {"result": "14C, rain"}}}
                    ]}
                ],
                "generationConfig": {
                    "maxOutputTokens": 1024,
                    "temperature": 0.2,
                    "topP": 0.9,
                    "topK": 40,
                    "stopSequences": ["END"],
                    "candidateCount": 1,
                    "responseMimeType": "application/json",
                    "responseSchema": {"type": "object", "properties": {"answer": {"type": "string"}}}
                },
                "tools": [{"functionDeclarations": [{
                    "name": "get_weather", "description": "Current weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]}],
                "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}}
            })
        );
    }

    #[test]
    fn urls_auth_and_model_ids() {
        let a = Gemini::new("http://127.0.0.1:9/", Secret::new("AIza-secret"));
        let mut r = req(
            json!({"model": "models/gemini-2.0-flash", "messages": [{"role": "user", "content": "hi"}]}),
        );
        let up = a.request(&r).unwrap();
        assert_eq!(
            up.uri(),
            "http://127.0.0.1:9/v1beta/models/gemini-2.0-flash:generateContent"
        );
        assert_eq!(up.headers()["x-goog-api-key"], "AIza-secret");
        assert!(up.headers()["x-goog-api-key"].is_sensitive());
        assert!(!up.uri().to_string().contains("key="));
        r.stream = Some(true);
        assert_eq!(
            a.request(&r).unwrap().uri(),
            "http://127.0.0.1:9/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
        );
        r.model = "../../v1/evil?x=1".into();
        let e = a.request(&r).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn turns_tools_images_and_json_mode() {
        let r = req(json!({"model": "m", "messages": [
            {"role": "developer", "content": "A"},
            {"role": "system", "content": "B"},
            {"role": "user", "content": "first"},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a/cat.PNG?s=1"}}]},
            {"role": "assistant", "content": "Let me look.", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}},
                {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{\"n\":1}"}}
            ]},
            {"role": "tool", "tool_call_id": "c2", "content": "G"},
            {"role": "tool", "tool_call_id": "c1", "content": "F"},
            {"role": "user", "content": "thanks"}
        ], "response_format": {"type": "json_object"}, "stop": ["1","2","3","4","5","6"],
           "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}},
                     {"type": "function", "function": {"name": "g", "parameters": {"type": "object", "properties": {"n": {"type": "integer"}}}}}],
           "tool_choice": {"type": "function", "function": {"name": "g"}}}));
        let body = request_body(&r).unwrap();
        assert_eq!(
            body["systemInstruction"],
            json!({"parts": [{"text": "A"}, {"text": "B"}]})
        );
        let contents = body["contents"].as_array().unwrap();
        let roles: Vec<&str> = contents
            .iter()
            .map(|c| c["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["user", "model", "user"]);
        assert_eq!(
            contents[0]["parts"],
            json!([{"text": "first"}, {"fileData": {"mimeType": "image/png", "fileUri": "https://x.test/a/cat.PNG?s=1"}}])
        );
        assert_eq!(
            contents[1]["parts"],
            json!([{"text": "Let me look."},
                   {"functionCall": {"name": "f", "args": {}}},
                   {"functionCall": {"name": "g", "args": {"n": 1}}}])
        );
        assert_eq!(
            contents[2]["parts"],
            json!([{"functionResponse": {"name": "g", "response": {"result": "G"}}},
                   {"functionResponse": {"name": "f", "response": {"result": "F"}}},
                   {"text": "thanks"}])
        );
        assert_eq!(
            body["generationConfig"]["responseMimeType"],
            "application/json"
        );
        assert!(body["generationConfig"].get("responseSchema").is_none());
        assert_eq!(
            body["generationConfig"]["stopSequences"]
                .as_array()
                .unwrap()
                .len(),
            5
        );
        // A parameterless function is declared without parameters.
        assert!(
            body["tools"][0]["functionDeclarations"][0]
                .get("parameters")
                .is_none()
        );
        assert_eq!(
            body["toolConfig"],
            json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["g"]}})
        );
        for (choice, mode) in [("required", "ANY"), ("none", "NONE")] {
            let mut v = serde_json::to_value(&r).unwrap();
            v["tool_choice"] = json!(choice);
            let body = request_body(&req(v)).unwrap();
            assert_eq!(body["toolConfig"]["functionCallingConfig"]["mode"], mode);
        }

        let e = request_body(&req(json!({"model": "m", "messages": [
            {"role": "user", "content": "x"},
            {"role": "tool", "tool_call_id": "nope", "content": "?"}
        ]})))
        .unwrap_err();
        assert!(e.to_string().contains("messages[1].tool_call_id"), "{e}");
        let body = request_body(&req(
            json!({"model": "m", "messages": [{"role": "system", "content": "Say hi"}]}),
        ))
        .unwrap();
        assert!(body.get("systemInstruction").is_none());
        assert_eq!(
            body["contents"],
            json!([{"role": "user", "parts": [{"text": "Say hi"}]}])
        );
    }

    #[test]
    fn schemas_are_cleaned_for_gemini() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "default": {"type": ["string", "null"], "default": "x"},
                "item": {"$ref": "#/$defs/Item"},
                "kind": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                "list": {"type": "array", "items": {"$ref": "#/$defs/Item"}}
            },
            "$defs": {"Item": {"type": "object", "properties": {"id": {"type": "integer"}}, "additionalProperties": false}}
        });
        assert_eq!(
            clean_schema(&schema),
            json!({
                "type": "object",
                "properties": {
                    "default": {"type": "string", "nullable": true},
                    "item": {"type": "object", "properties": {"id": {"type": "integer"}}},
                    "kind": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                    "list": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "integer"}}}}
                }
            })
        );
        // A recursive schema stops at the depth limit instead of looping.
        let recursive = json!({"$defs": {"N": {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}}}}, "$ref": "#/$defs/N"});
        let cleaned = clean_schema(&recursive);
        assert_eq!(cleaned["type"], "object");
    }

    /// The documented response (providers.md §4.3).
    #[test]
    fn golden_response() {
        let a = Gemini::new("http://x", Secret::new("k"));
        let r = req(
            json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "x"}]}),
        );
        let resp = a
            .response(
                &r,
                br#"{
  "candidates": [{
    "content": {"role": "model", "parts": [
      {"text": "Checking."},
      {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}
    ]},
    "finishReason": "STOP",
    "index": 0,
    "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}]
  }],
  "usageMetadata": {"promptTokenCount": 52, "candidatesTokenCount": 17, "totalTokenCount": 69,
                    "cachedContentTokenCount": 0, "thoughtsTokenCount": 0},
  "modelVersion": "gemini-2.5-flash",
  "responseId": "abc123"
}"#,
            )
            .unwrap();
        let v = serde_json::to_value(&resp).unwrap();
        assert_eq!(v["id"], "chatcmpl-abc123");
        assert_eq!(v["model"], "gemini-2.5-flash");
        let call_id = v["choices"][0]["message"]["tool_calls"][0]["id"]
            .as_str()
            .unwrap();
        assert!(call_id.starts_with("call_"));
        assert_eq!(
            v["choices"],
            json!([{
                "index": 0,
                "message": {"role": "assistant", "content": "Checking.", "refusal": null,
                    "tool_calls": [{"id": call_id, "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
                "logprobs": null,
                "finish_reason": "tool_calls"
            }])
        );
        assert_eq!(
            v["usage"],
            json!({"prompt_tokens": 52, "completion_tokens": 17, "total_tokens": 69,
                   "prompt_tokens_details": {"cached_tokens": 0},
                   "completion_tokens_details": {"reasoning_tokens": 0}})
        );
    }

    #[test]
    fn finish_reasons_blocked_prompts_and_thinking() {
        assert_eq!(finish_reason("STOP", false), "stop");
        assert_eq!(finish_reason("STOP", true), "tool_calls");
        assert_eq!(finish_reason("MAX_TOKENS", true), "length");
        for r in [
            "SAFETY",
            "RECITATION",
            "BLOCKLIST",
            "PROHIBITED_CONTENT",
            "SPII",
            "IMAGE_SAFETY",
        ] {
            assert_eq!(finish_reason(r, false), "content_filter", "{r}");
        }
        assert_eq!(finish_reason("MALFORMED_FUNCTION_CALL", false), "stop");

        let a = Gemini::new("http://x", Secret::new("k"));
        let r = req(
            json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "x"}]}),
        );
        let resp = a
            .response(&r, br#"{"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}}"#)
            .unwrap();
        assert_eq!(
            resp.choices[0].finish_reason.as_deref(),
            Some("content_filter")
        );
        assert_eq!(resp.choices[0].message.content, None);
        assert_eq!(resp.model, "gemini-2.5-flash");
        assert_eq!(resp.usage.as_ref().unwrap().prompt_tokens, 8);

        let resp = a
            .response(
                &r,
                br#"{"candidates": [{"finishReason": "SAFETY", "index": 0}]}"#,
            )
            .unwrap();
        assert_eq!(
            resp.choices[0].finish_reason.as_deref(),
            Some("content_filter")
        );
        assert_eq!(resp.choices[0].message.content.as_deref(), Some(""));

        let resp = a
            .response(&r, br#"{"candidates": [{"content": {"parts": [{"text": "think", "thought": true}, {"text": "Hi"}]}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1, "thoughtsTokenCount": 10, "totalTokenCount": 14}}"#)
            .unwrap();
        assert_eq!(resp.choices[0].message.content.as_deref(), Some("Hi"));
        assert_eq!(resp.choices[0].message.extra["reasoning_content"], "think");
        let u = resp.usage.unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (3, 11, 14)
        );

        assert!(matches!(
            a.response(&r, b"{}"),
            Err(GatewayError::BadUpstreamResponse { .. })
        ));
        assert!(a.response(&r, b"<html>").is_err());
    }

    /// A stream as providers.md §4.4 describes it: whole responses per event, usage on each,
    /// a function call whole in one chunk with `finishReason: STOP`, end at close.
    const STREAM: &str = concat!(
        "data: {\"candidates\": [{\"content\": {\"role\": \"model\", \"parts\": [{\"text\": \"Hél\"}]}, \"index\": 0}], \"usageMetadata\": {\"promptTokenCount\": 52}, \"modelVersion\": \"gemini-2.5-flash\", \"responseId\": \"r1\"}\r\n\r\n",
        "data: {\"candidates\": [{\"content\": {\"role\": \"model\", \"parts\": [{\"text\": \"lo\"}]}, \"index\": 0}], \"usageMetadata\": {\"promptTokenCount\": 52, \"candidatesTokenCount\": 2}, \"modelVersion\": \"gemini-2.5-flash\", \"responseId\": \"r1\"}\r\n\r\n",
        "data: {\"candidates\": [{\"content\": {\"role\": \"model\", \"parts\": [{\"functionCall\": {\"name\": \"get_weather\", \"args\": {\"city\": \"Oslo\"}}}, {\"functionCall\": {\"name\": \"get_time\", \"args\": {}}}]}, \"finishReason\": \"STOP\", \"index\": 0}], \"usageMetadata\": {\"promptTokenCount\": 52, \"candidatesTokenCount\": 17, \"totalTokenCount\": 69}, \"modelVersion\": \"gemini-2.5-flash\", \"responseId\": \"r1\"}\r\n\r\n",
    );

    fn check_golden_stream(chunks: &[ChatChunk]) {
        assert_eq!(
            chunks[0].choices[0].delta.role.as_deref(),
            Some("assistant")
        );
        assert!(chunks.iter().all(|c| c.id == "chatcmpl-r1"));
        let text: String = chunks
            .iter()
            .filter_map(|c| c.choices.first()?.delta.content.clone())
            .collect();
        assert_eq!(text, "Héllo");
        let calls: Vec<&ToolCallDelta> = chunks
            .iter()
            .filter_map(|c| c.choices.first()?.delta.tool_calls.as_ref())
            .flatten()
            .collect();
        assert_eq!(calls.len(), 2);
        assert_eq!((calls[0].index, calls[1].index), (0, 1));
        let f0 = calls[0].function.as_ref().unwrap();
        assert_eq!(f0.name.as_deref(), Some("get_weather"));
        assert_eq!(f0.arguments.as_deref(), Some("{\"city\":\"Oslo\"}"));
        assert_eq!(
            calls[1].function.as_ref().unwrap().arguments.as_deref(),
            Some("{}")
        );
        assert!(
            calls
                .iter()
                .all(|c| c.id.as_deref().is_some_and(|i| i.starts_with("call_")))
        );
        assert_ne!(calls[0].id, calls[1].id);
        let finishes: Vec<_> = chunks
            .iter()
            .filter_map(|c| c.choices.first()?.finish_reason.clone())
            .collect();
        assert_eq!(finishes, ["tool_calls"]);
        let last = chunks.last().unwrap();
        assert!(last.is_usage_only());
        let u = last.usage.as_ref().unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (52, 17, 69)
        );
        assert!(chunks[..chunks.len() - 1].iter().all(|c| c.usage.is_none()));
    }

    #[test]
    fn golden_stream_in_awkward_pieces() {
        let lf = STREAM.replace("\r\n", "\n");
        for raw in [STREAM.to_owned(), lf] {
            let (chunks, res) = decode(&raw, &[]);
            res.unwrap();
            check_golden_stream(&chunks);
            for cut in 1..raw.len() {
                let (chunks, res) = decode(&raw, &[cut, cut + 5, cut + 200]);
                res.unwrap();
                check_golden_stream(&chunks);
            }
        }
    }

    #[test]
    fn stream_errors_blocks_and_truncation() {
        let first =
            &STREAM[..STREAM.find("data:").unwrap() + STREAM[5..].find("data:").unwrap() + 5];
        // A pretty-printed error object written into the 200 stream.
        let raw = format!(
            "{first}{{\n  \"error\": {{\n    \"code\": 503,\n    \"message\": \"The model is overloaded.\",\n    \"status\": \"UNAVAILABLE\"\n  }}\n}}\n"
        );
        let (chunks, res) = decode(&raw, &[]);
        assert!(!chunks.is_empty());
        let e = res.unwrap_err();
        assert!(e.is_retryable());
        assert!(e.to_string().contains("overloaded"), "{e}");

        // Closed before any finishReason: truncated.
        let (_, res) = decode(first, &[]);
        assert!(matches!(res, Err(GatewayError::Connect { .. })));

        // A blocked prompt in a stream.
        let (chunks, res) = decode(
            "data: {\"promptFeedback\": {\"blockReason\": \"PROHIBITED_CONTENT\"}, \"usageMetadata\": {\"promptTokenCount\": 4}}\n\n",
            &[],
        );
        res.unwrap();
        assert_eq!(
            chunks[1].choices[0].finish_reason.as_deref(),
            Some("content_filter")
        );
        assert!(chunks.last().unwrap().is_usage_only());

        // An error as a data: event.
        let (_, res) = decode(
            "data: {\"error\": {\"code\": 500, \"message\": \"Internal error\", \"status\": \"INTERNAL\"}}\n\n",
            &[],
        );
        assert!(res.unwrap_err().is_retryable());
    }

    fn err(status: u16, headers: &[(&str, &str)], body: &str) -> GatewayError {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map_error(StatusCode::from_u16(status).unwrap(), &h, body.as_bytes())
    }

    #[test]
    fn error_mapping() {
        // A bad key is a 400 on the wire, but the deployment's failure.
        let e = err(
            400,
            &[],
            r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT",
            "details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#,
        );
        assert!(e.is_retryable());
        assert_eq!(e.status(), StatusCode::BAD_GATEWAY);

        let e = err(
            400,
            &[],
            r#"{"error":{"code":400,"message":"Invalid JSON payload received.","status":"INVALID_ARGUMENT"}}"#,
        );
        assert!(!e.is_retryable());
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(e.to_string().contains("Invalid JSON payload"));

        let e = err(
            429,
            &[],
            r#"{"error":{"code":429,"message":"You exceeded your current quota.","status":"RESOURCE_EXHAUSTED",
            "details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
                       {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"33s"}]}}"#,
        );
        assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(33)));
        assert!(e.is_retryable());
        // A retry-after header, when there is one, wins.
        let e = err(
            429,
            &[("retry-after", "5")],
            r#"{"error":{"code":429,"message":"q","status":"RESOURCE_EXHAUSTED",
            "details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"33s"}]}}"#,
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(5)));
        assert_eq!(
            retry_delay(&json!({"seconds": "2", "nanos": 500_000_000})),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(
            retry_delay(&json!("1.5s")),
            Some(Duration::from_millis(1500))
        );

        let e = err(
            503,
            &[],
            r#"{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}"#,
        );
        assert!(e.is_retryable());
        let e = err(
            400,
            &[],
            r#"{"error":{"code":400,"message":"User location is not supported for the API use.","status":"FAILED_PRECONDITION"}}"#,
        );
        assert!(e.is_retryable());
        let e = err(
            404,
            &[],
            r#"{"error":{"code":404,"message":"models/gemini-9 is not found","status":"NOT_FOUND"}}"#,
        );
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
        let e = err(
            429,
            &[],
            r#"[{"error":{"code":429,"message":"q","status":"RESOURCE_EXHAUSTED"}}]"#,
        );
        assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
        let e = err(502, &[], "<html>bad gateway</html>");
        assert!(e.is_retryable());
    }
}
