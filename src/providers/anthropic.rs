//! The Anthropic Messages API adapter: canonical OpenAI chat requests become `POST /v1/messages`
//! bodies, and Anthropic's messages, named-event streams and error bodies come back as canonical
//! responses, chunks and [`GatewayError`]s (providers.md §3).
//!
//! The translation follows providers.md §3.7–3.8: system and developer messages join into the
//! top-level `system`; tool results become `tool_result` blocks in a `user` turn and assistant
//! tool calls `tool_use` blocks with parsed input; consecutive turns of one role are merged, as
//! the API wants strictly alternating roles; `max_tokens`, which Anthropic requires, defaults to
//! [`DEFAULT_MAX_TOKENS`]. `response_format: json_schema` forces a single `json_output` tool
//! whose input is handed back as the message text; `json_object` adds a system instruction.
//!
//! # Example
//! ```
//! use proxygate::config::Secret;
//! use proxygate::providers::ProviderAdapter;
//! use proxygate::providers::anthropic::Anthropic;
//! use proxygate::types::ChatRequest;
//!
//! let adapter = Anthropic::new("https://api.anthropic.com", Secret::new("sk-ant-test"));
//! let req: ChatRequest = serde_json::from_value(serde_json::json!({
//!     "model": "claude-haiku-4-5",
//!     "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}]
//! })).unwrap();
//! let up = adapter.request(&req).unwrap();
//! assert_eq!(up.uri(), "https://api.anthropic.com/v1/messages");
//! assert_eq!(up.headers()["anthropic-version"], "2023-06-01");
//! ```

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    NATIVE_KEY, ProviderAdapter, SseEvent, StreamDecoder, UpstreamRequest, json_post,
    openai_style_error, parse_json, retry_after, summarise, tool_arguments, with_json,
};
use super::{ProviderEndpoint, ProviderSettings};
use crate::GatewayError;
use crate::catalog::ProviderSpec;
use crate::client::HttpClient;
use crate::config::Secret;
use crate::types::{
    ChatChunk, ChatRequest, ChatResponse, Choice, Content, Delta, FunctionCall, FunctionCallDelta,
    Message, ResponseMessage, Role, ToolCall, ToolCallDelta, Usage,
};

const PROVIDER: &str = "anthropic";
/// The API version every request names.
pub const API_VERSION: &str = "2023-06-01";
/// `max_tokens` when the client set no output cap (Anthropic requires one).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;
/// The tool forced for `response_format: json_schema`; its input is the answer.
pub const JSON_TOOL: &str = "json_output";
const JSON_OBJECT_INSTRUCTION: &str =
    "Respond only with a single valid JSON object, without any text before or after it.";

/// The adapter for one Anthropic key.
#[derive(Debug)]
pub struct Anthropic {
    url: String,
    key: Secret,
}

// === impl Anthropic ===

impl Anthropic {
    /// An adapter posting to `{base_url}/v1/messages` (the base is the host root).
    pub fn new(base_url: &str, key: Secret) -> Self {
        Self {
            url: format!("{}/v1/messages", base_url.trim_end_matches('/')),
            key,
        }
    }
}

impl ProviderAdapter for Anthropic {
    type Decoder = AnthropicDecoder;

    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn request(&self, req: &ChatRequest) -> Result<UpstreamRequest, GatewayError> {
        let body = match native_body(req) {
            Some(raw) => passthrough_body(raw, &req.model)?,
            None => request_body(req)?,
        };
        let mut builder = json_post(&self.url)?
            .header("x-api-key", self.key.header_value()?)
            .header("anthropic-version", API_VERSION);
        if req.is_stream() {
            builder = builder.header(http::header::ACCEPT, "text/event-stream");
        }
        if native_body(req).is_some()
            && let Some(beta) = &req.ctx.native_beta
        {
            builder = builder.header("anthropic-beta", beta.clone());
        }
        with_json(builder, &body)
    }

    fn response(&self, req: &ChatRequest, body: &[u8]) -> Result<ChatResponse, GatewayError> {
        let msg: WireMessage = parse_json(PROVIDER, body)?;
        let mut resp = translate_response(msg, forces_json_tool(req));
        if native_body(req).is_some() {
            // The message as Anthropic sent it, for the `/v1/messages` client.
            resp.extra.insert(
                NATIVE_KEY.into(),
                Value::String(String::from_utf8_lossy(body.trim_ascii()).into_owned()),
            );
        }
        Ok(resp)
    }

    fn decoder(&self, req: &ChatRequest) -> AnthropicDecoder {
        let mut d = AnthropicDecoder::new(forces_json_tool(req));
        d.native = native_body(req).is_some();
        d
    }

    fn error(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> GatewayError {
        map_error(status, headers, body)
    }

    fn success_is_error(&self, body: &[u8]) -> Option<GatewayError> {
        let v: Value = serde_json::from_slice(body.trim_ascii_start()).ok()?;
        (v.get("type").and_then(Value::as_str) == Some("error"))
            .then(|| error_from_json(StatusCode::BAD_GATEWAY, &HeaderMap::new(), &v))
            .flatten()
    }
}

// === pass-through ===

/// The client's own Anthropic body, when it came through `/v1/messages`: then the request and
/// the reply pass through unchanged apart from `model` (SPEC §13).
fn native_body(req: &ChatRequest) -> Option<&bytes::Bytes> {
    (req.ctx.endpoint == crate::usage::Endpoint::Messages)
        .then_some(req.ctx.native_body.as_ref())
        .flatten()
}

/// The client's body with `model` set to the upstream id.
fn passthrough_body(raw: &[u8], model: &str) -> Result<Value, GatewayError> {
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
    body.insert(
        "max_tokens".into(),
        json!(req.output_cap().unwrap_or(DEFAULT_MAX_TOKENS)),
    );
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

    if let Some(t) = req.temperature {
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
    for key in ["top_k", "thinking"] {
        if let Some(v) = req.extra.get(key) {
            body.insert(key.into(), v.clone());
        }
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
enum ResponseFormat {
    JsonObject,
    JsonSchema(Value),
}

fn response_format(req: &ChatRequest) -> Option<ResponseFormat> {
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
fn forces_json_tool(req: &ChatRequest) -> bool {
    matches!(response_format(req), Some(ResponseFormat::JsonSchema(s))
        if s.get("type").and_then(Value::as_str) == Some("object"))
        && req.tools.as_ref().is_none_or(Vec::is_empty)
}

/// A tool's `input_schema`: the parameters, which must be an object schema.
fn object_schema(params: Option<&Value>) -> Value {
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

fn map_tool_choice(choice: &Value) -> Option<Value> {
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

fn text_blocks(text: &str) -> Vec<Value> {
    if text.is_empty() {
        Vec::new()
    } else {
        vec![json!({"type": "text", "text": text})]
    }
}

fn user_blocks(m: &Message, i: usize) -> Result<Vec<Value>, GatewayError> {
    let parts = match &m.content {
        None => return Ok(Vec::new()),
        Some(Content::Text(s)) => return Ok(text_blocks(s)),
        Some(Content::Parts(parts)) => parts,
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
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
    }
    Ok(blocks)
}

fn assistant_blocks(m: &Message, i: usize) -> Result<Vec<Value>, GatewayError> {
    let mut blocks = text_blocks(&m.text_content());
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

fn tool_result(m: &Message) -> Value {
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

/// Tool ids must match `^[a-zA-Z0-9_-]+$`; ids minted by other providers may not.
fn tool_id(id: &str) -> String {
    let id: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if id.is_empty() { "toolu_0".into() } else { id }
}

// === response translation ===

/// A `/v1/messages` response (and the `message` of `message_start`).
#[derive(Debug, Default, Deserialize)]
struct WireMessage {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    content: Vec<Value>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

impl WireUsage {
    /// Takes the counts `later` reports, keeping ours where it says nothing.
    fn update(&mut self, later: &WireUsage) {
        self.input_tokens = later.input_tokens.or(self.input_tokens);
        self.output_tokens = later.output_tokens.or(self.output_tokens);
        self.cache_creation_input_tokens = later
            .cache_creation_input_tokens
            .or(self.cache_creation_input_tokens);
        self.cache_read_input_tokens = later
            .cache_read_input_tokens
            .or(self.cache_read_input_tokens);
    }

    /// OpenAI usage: the prompt counts cached and cache-writing tokens too.
    fn to_usage(self) -> Usage {
        let cached = self.cache_read_input_tokens.unwrap_or(0);
        let prompt =
            self.input_tokens.unwrap_or(0) + self.cache_creation_input_tokens.unwrap_or(0) + cached;
        let mut usage = Usage::new(prompt, self.output_tokens.unwrap_or(0));
        usage.extra.insert(
            "prompt_tokens_details".into(),
            json!({"cached_tokens": cached}),
        );
        usage
    }
}

/// Anthropic's `stop_reason` as an OpenAI `finish_reason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn and anything new.
        _ => "stop",
    }
}

fn translate_response(msg: WireMessage, json_tool: bool) -> ChatResponse {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    let mut answered_by_json_tool = false;
    for block in &msg.content {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("thinking") => {
                reasoning.push_str(block.get("thinking").and_then(Value::as_str).unwrap_or(""))
            }
            Some("tool_use") => {
                let name = block.get("name").and_then(Value::as_str).unwrap_or("");
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                if json_tool && name == JSON_TOOL {
                    // The forced JSON tool's input is the answer itself.
                    text.push_str(&input.to_string());
                    answered_by_json_tool = true;
                    continue;
                }
                calls.push(ToolCall {
                    id: block
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    kind: "function".into(),
                    function: FunctionCall {
                        name: name.to_owned(),
                        arguments: input.to_string(),
                    },
                });
            }
            _ => {} // redacted_thinking, server tools: nothing to show
        }
    }
    let finish = match msg.stop_reason.as_deref() {
        Some("tool_use") if answered_by_json_tool && calls.is_empty() => "stop",
        Some(r) => finish_reason(r),
        None => "stop",
    };
    let content = if text.is_empty() && !calls.is_empty() {
        None
    } else {
        Some(text)
    };
    let mut message = ResponseMessage::assistant(content, (!calls.is_empty()).then_some(calls));
    if !reasoning.is_empty() {
        message
            .extra
            .insert("reasoning_content".into(), Value::String(reasoning));
    }
    ChatResponse {
        id: if msg.id.is_empty() {
            crate::types::completion_id()
        } else {
            msg.id
        },
        object: "chat.completion".into(),
        created: crate::types::unix_now(),
        model: msg.model,
        choices: vec![Choice {
            index: 0,
            message,
            logprobs: None,
            finish_reason: Some(finish.into()),
        }],
        usage: msg.usage.map(WireUsage::to_usage),
        extra: Map::new(),
    }
}

// === stream translation ===

/// What an Anthropic content block turns into.
#[derive(Clone, Copy, Debug)]
enum Block {
    Text,
    Thinking,
    /// A tool call, OpenAI tool index `index`; `args` once a non-empty fragment went out.
    Tool {
        index: u32,
        args: bool,
    },
    /// The forced JSON tool: its input fragments are content.
    JsonTool,
    Other,
}

/// Decodes Anthropic's named-event stream (`message_start` … `message_stop`) into canonical
/// chunks, with the usage of `message_start` and `message_delta` in one final usage chunk.
#[derive(Debug)]
pub struct AnthropicDecoder {
    json_tool: bool,
    // Pass-through (`/v1/messages`): each event also travels as it came, under NATIVE_KEY.
    native: bool,
    id: String,
    model: String,
    created: u64,
    started: bool,
    blocks: Vec<(u64, Block)>,
    next_tool: u32,
    usage: Option<WireUsage>,
    finished: bool,
    stopped: bool,
    usage_sent: bool,
}

// === impl AnthropicDecoder ===

impl AnthropicDecoder {
    /// A decoder; `json_tool` when the request forced [`JSON_TOOL`].
    pub fn new(json_tool: bool) -> Self {
        Self {
            json_tool,
            native: false,
            id: String::new(),
            model: String::new(),
            created: crate::types::unix_now(),
            started: false,
            blocks: Vec::new(),
            next_tool: 0,
            usage: None,
            finished: false,
            stopped: false,
            usage_sent: false,
        }
    }

    /// Queues a chunk, preceded by the role chunk the first time. The role chunk waits for
    /// the first real delta, so an error right after `message_start` still comes before the
    /// first chunk and may fail over.
    fn emit(&mut self, delta: Delta, finish: Option<&str>, out: &mut VecDeque<ChatChunk>) {
        if self.id.is_empty() {
            self.id = crate::types::completion_id();
        }
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
        out.push_back(ChatChunk::delta(
            &self.id,
            self.created,
            &self.model,
            delta,
            finish,
        ));
    }

    fn tool_delta(index: u32, id: Option<String>, name: Option<String>, args: &str) -> Delta {
        Delta {
            tool_calls: Some(vec![ToolCallDelta {
                index,
                kind: id.as_ref().map(|_| "function".to_owned()),
                id,
                function: Some(FunctionCallDelta {
                    name,
                    arguments: Some(args.to_owned()),
                }),
            }]),
            ..Delta::default()
        }
    }

    fn block(&mut self, index: u64) -> Option<&mut Block> {
        self.blocks
            .iter_mut()
            .find(|(i, _)| *i == index)
            .map(|(_, b)| b)
    }

    fn flush_usage(&mut self, out: &mut VecDeque<ChatChunk>) {
        if self.usage_sent {
            return;
        }
        if let Some(u) = self.usage {
            self.usage_sent = true;
            out.push_back(ChatChunk::usage_only(
                &self.id,
                self.created,
                &self.model,
                u.to_usage(),
            ));
        }
    }

    fn content_block_start(&mut self, v: &Value, out: &mut VecDeque<ChatChunk>) {
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        let cb = v.get("content_block").unwrap_or(&Value::Null);
        let str_of = |k: &str| cb.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let block = match cb.get("type").and_then(Value::as_str) {
            Some("text") => {
                let text = str_of("text");
                if !text.is_empty() {
                    self.emit(Delta::text(text), None, out);
                }
                Block::Text
            }
            Some("thinking") => Block::Thinking,
            Some("tool_use") if self.json_tool && str_of("name") == JSON_TOOL => Block::JsonTool,
            Some("tool_use") => {
                let k = self.next_tool;
                self.next_tool += 1;
                let delta = Self::tool_delta(k, Some(str_of("id")), Some(str_of("name")), "");
                self.emit(delta, None, out);
                Block::Tool {
                    index: k,
                    args: false,
                }
            }
            _ => Block::Other,
        };
        self.blocks.push((index, block));
    }

    fn content_block_delta(&mut self, v: &Value, out: &mut VecDeque<ChatChunk>) {
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        let delta = v.get("delta").unwrap_or(&Value::Null);
        let field = |k: &str| delta.get(k).and_then(Value::as_str).unwrap_or("");
        // A delta for a block that never started is taken as text (tolerant of reordering).
        let block = self.block(index).copied().unwrap_or(Block::Text);
        match (delta.get("type").and_then(Value::as_str), block) {
            (Some("text_delta"), _) => {
                let text = field("text");
                if !text.is_empty() {
                    self.emit(Delta::text(text), None, out);
                }
            }
            (Some("input_json_delta"), Block::Tool { index: k, .. }) => {
                let fragment = field("partial_json");
                // The first fragment is often empty: nothing to forward.
                if !fragment.is_empty() {
                    if let Some(Block::Tool { args, .. }) = self.block(index) {
                        *args = true;
                    }
                    self.emit(Self::tool_delta(k, None, None, fragment), None, out);
                }
            }
            (Some("input_json_delta"), Block::JsonTool) => {
                let fragment = field("partial_json");
                if !fragment.is_empty() {
                    self.emit(Delta::text(fragment), None, out);
                }
            }
            (Some("thinking_delta"), _) => {
                let mut d = Delta::default();
                d.extra
                    .insert("reasoning_content".into(), json!(field("thinking")));
                self.emit(d, None, out);
            }
            _ => {} // signature_delta, citations_delta
        }
    }
}

impl StreamDecoder for AnthropicDecoder {
    fn event(
        &mut self,
        event: SseEvent,
        out: &mut VecDeque<ChatChunk>,
    ) -> Result<(), GatewayError> {
        if !self.native || event.data.trim().is_empty() {
            return self.decode(event, out);
        }
        let before = out.len();
        let name = event.event.clone();
        let data = event.data.clone();
        self.decode(event, out)?;
        let name = name.unwrap_or_else(|| {
            serde_json::from_str::<Value>(&data)
                .ok()
                .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_default()
        });
        let native = json!({"event": name, "data": data});
        // The event rides on the first chunk it produced, or on a chunk of its own (one empty
        // choice, so every layer forwards it) ahead of any usage chunk.
        match out.iter_mut().skip(before).find(|c| !c.choices.is_empty()) {
            Some(c) => {
                c.extra.insert(NATIVE_KEY.into(), native);
            }
            None => {
                let mut carrier =
                    ChatChunk::delta(&self.id, self.created, &self.model, Delta::default(), None);
                carrier.extra.insert(NATIVE_KEY.into(), native);
                out.insert(before, carrier);
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut VecDeque<ChatChunk>) -> Result<(), GatewayError> {
        if self.stopped || self.finished {
            self.flush_usage(out);
            return Ok(());
        }
        Err(GatewayError::Connect {
            provider: PROVIDER,
            reason: "stream ended before message_stop".into(),
        })
    }
}

impl AnthropicDecoder {
    fn decode(
        &mut self,
        event: SseEvent,
        out: &mut VecDeque<ChatChunk>,
    ) -> Result<(), GatewayError> {
        if event.data.trim().is_empty() {
            return Ok(());
        }
        let v: Value =
            serde_json::from_str(&event.data).map_err(|e| GatewayError::BadUpstreamResponse {
                provider: PROVIDER,
                reason: format!("invalid stream event: {e}"),
            })?;
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .or(event.event.as_deref())
            .unwrap_or("");
        match kind {
            "message_start" => {
                let msg: WireMessage = v
                    .get("message")
                    .cloned()
                    .and_then(|m| serde_json::from_value(m).ok())
                    .unwrap_or_default();
                if !msg.id.is_empty() {
                    self.id = msg.id;
                }
                self.model = msg.model;
                if let Some(u) = msg.usage {
                    self.usage.get_or_insert_with(WireUsage::default).update(&u);
                }
            }
            "content_block_start" => self.content_block_start(&v, out),
            "content_block_delta" => self.content_block_delta(&v, out),
            "content_block_stop" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                // An empty input is `{}`: send that rather than an arguments string of "".
                if let Some(Block::Tool { index: k, args }) = self.block(index).copied()
                    && !args
                {
                    self.emit(Self::tool_delta(k, None, None, "{}"), None, out);
                }
            }
            "message_delta" => {
                if let Some(u) = v
                    .get("usage")
                    .and_then(|u| serde_json::from_value::<WireUsage>(u.clone()).ok())
                {
                    self.usage.get_or_insert_with(WireUsage::default).update(&u);
                }
                if let Some(reason) = v
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                    && !self.finished
                {
                    self.finished = true;
                    let only_json_tool = self.next_tool == 0
                        && self
                            .blocks
                            .iter()
                            .any(|(_, b)| matches!(b, Block::JsonTool));
                    let finish = if reason == "tool_use" && only_json_tool {
                        "stop"
                    } else {
                        finish_reason(reason)
                    };
                    self.emit(Delta::default(), Some(finish), out);
                }
            }
            "message_stop" => {
                self.stopped = true;
                self.flush_usage(out);
            }
            "error" => {
                return Err(
                    error_from_json(StatusCode::BAD_GATEWAY, &HeaderMap::new(), &v).unwrap_or_else(
                        || GatewayError::Upstream {
                            provider: PROVIDER,
                            status: StatusCode::BAD_GATEWAY,
                            message: "error event in stream".into(),
                            code: None,
                            retry_after: None,
                        },
                    ),
                );
            }
            _ => {} // ping and event types added later
        }
        Ok(())
    }
}

// === errors ===

/// Maps an Anthropic error response (`{"type":"error","error":{"type","message"}}`).
pub fn map_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> GatewayError {
    serde_json::from_slice::<Value>(body.trim_ascii_start())
        .ok()
        .and_then(|v| error_from_json(status, headers, &v))
        .unwrap_or_else(|| openai_style_error(PROVIDER, status, headers, body))
}

/// An error body (or `error` stream event) as a [`GatewayError`]; `None` if it is not one.
fn error_from_json(status: StatusCode, headers: &HeaderMap, v: &Value) -> Option<GatewayError> {
    let err = v.get("error")?;
    let kind = err.get("type").and_then(Value::as_str).unwrap_or("");
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let lower = message.to_ascii_lowercase();
    let (status, code) = match kind {
        // The provider is overloaded: another deployment may well answer.
        "overloaded_error" => (StatusCode::SERVICE_UNAVAILABLE, Some("overloaded")),
        "rate_limit_error" => (StatusCode::TOO_MANY_REQUESTS, Some("rate_limit_exceeded")),
        // A bad key is this deployment's problem, not the client's: 401 fails over.
        "authentication_error" => (StatusCode::UNAUTHORIZED, Some("invalid_api_key")),
        "permission_error" => (StatusCode::FORBIDDEN, None),
        "billing_error" => (StatusCode::PAYMENT_REQUIRED, Some("insufficient_quota")),
        "not_found_error" => (StatusCode::NOT_FOUND, Some("model_not_found")),
        "request_too_large" => (StatusCode::PAYLOAD_TOO_LARGE, None),
        "timeout_error" => (StatusCode::GATEWAY_TIMEOUT, None),
        "api_error" if status.is_server_error() => (status, None),
        "api_error" => (StatusCode::INTERNAL_SERVER_ERROR, None),
        // An empty balance comes back as a 400 invalid_request_error: it is the key's problem.
        "invalid_request_error" if lower.contains("credit balance") => {
            (StatusCode::PAYMENT_REQUIRED, Some("insufficient_quota"))
        }
        "invalid_request_error" if lower.contains("prompt is too long") => {
            (StatusCode::BAD_REQUEST, Some("context_length_exceeded"))
        }
        "invalid_request_error" => (StatusCode::BAD_REQUEST, Some("invalid_request_error")),
        _ => (status, None),
    };
    let mut after = retry_after(headers);
    if after.is_none() && status == StatusCode::TOO_MANY_REQUESTS {
        after = ratelimit_reset(headers, SystemTime::now());
    }
    Some(GatewayError::Upstream {
        provider: PROVIDER,
        status,
        message: if message.is_empty() {
            format!("{kind} (HTTP {})", status.as_u16())
        } else {
            summarise(&message)
        },
        code: code.map(str::to_owned),
        retry_after: after,
    })
}

/// Without `retry-after`: the latest RFC 3339 reset among the exhausted
/// `anthropic-ratelimit-*` limits.
fn ratelimit_reset(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    ["requests", "tokens", "input-tokens", "output-tokens"]
        .iter()
        .filter(|l| {
            headers
                .get(format!("anthropic-ratelimit-{l}-remaining"))
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim() == "0")
        })
        .filter_map(|l| {
            let reset = headers
                .get(format!("anthropic-ratelimit-{l}-reset"))?
                .to_str()
                .ok()?;
            rfc3339(reset)?.duration_since(now).ok()
        })
        .max()
}

/// Parses an RFC 3339 timestamp (`2025-08-21T12:40:59Z`, fractions and offsets allowed).
fn rfc3339(s: &str) -> Option<SystemTime> {
    let t = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .ok()?;
    Some(SystemTime::from(t))
}

/// Builds the endpoints of a configured provider: one per credential.
pub(crate) fn build(
    _spec: &'static ProviderSpec,
    settings: &ProviderSettings,
    client: &HttpClient,
) -> Result<Vec<ProviderEndpoint>, String> {
    Ok(super::endpoint_per_key(settings, client, Anthropic::new))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Framing;

    fn req(v: Value) -> ChatRequest {
        serde_json::from_value(v).unwrap()
    }

    /// Feeds `raw` to a parser in the given pieces and decodes every event.
    fn decode(
        raw: &str,
        cuts: &[usize],
        json_tool: bool,
    ) -> (Vec<ChatChunk>, Result<(), GatewayError>) {
        let mut dec = AnthropicDecoder::new(json_tool);
        crate::providers::decode_pieces(
            Framing::Sse,
            &mut dec,
            &crate::providers::cut(raw.as_bytes(), cuts),
        )
    }

    /// The documented request (providers.md §1.2 shape, §3.2 answer).
    #[test]
    fn golden_request_with_system_image_tools_and_history() {
        let r = req(json!({
            "model": "claude-sonnet-4-5-20250929",
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is in this image?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR...", "detail": "auto"}}
                ]},
                {"role": "assistant", "content": "Let me check the weather.", "tool_calls": [
                    {"id": "toolu_01A", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "toolu_01A", "content": "14C, rain"}
            ],
            "max_completion_tokens": 1024,
            "temperature": 0.2,
            "stop": ["\n\nHuman:"],
            "stream": true,
            "stream_options": {"include_usage": true},
            "tools": [{"type": "function", "function": {
                "name": "get_weather", "description": "Current weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
            "tool_choice": "auto",
            "user": "end-user-123",
            "seed": 7,
            "logit_bias": {"1": 2}
        }));
        let body = request_body(&r).unwrap();
        assert_eq!(
            body,
            json!({
                "model": "claude-sonnet-4-5-20250929",
                "max_tokens": 1024,
                "system": "Be terse.",
                "messages": [
                    {"role": "user", "content": [
                        {"type": "text", "text": "What is in this image?"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR..."}}
                    ]},
                    {"role": "assistant", "content": [
                        {"type": "text", "text": "Let me check the weather."},
                        {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Oslo"}}
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "14C, rain"}
                    ]}
                ],
                "temperature": 0.2,
                "stop_sequences": ["\n\nHuman:"],
                "stream": true,
                "tools": [{"name": "get_weather", "description": "Current weather",
                           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
                "tool_choice": {"type": "auto"},
                "metadata": {"user_id": "end-user-123"}
            })
        );
    }

    #[test]
    fn request_headers_and_url() {
        let a = Anthropic::new("http://127.0.0.1:9/", Secret::new("sk-ant-xyz"));
        let up = a
            .request(&req(
                json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true}),
            ))
            .unwrap();
        assert_eq!(up.uri(), "http://127.0.0.1:9/v1/messages");
        assert_eq!(up.headers()["x-api-key"], "sk-ant-xyz");
        assert!(up.headers()["x-api-key"].is_sensitive());
        assert_eq!(up.headers()["anthropic-version"], "2023-06-01");
        assert_eq!(up.headers()["accept"], "text/event-stream");
        assert!(up.headers().get("authorization").is_none());
    }

    #[test]
    fn turns_are_merged_and_alternate() {
        let r = req(json!({"model": "m", "messages": [
            {"role": "assistant", "content": "Hello, I am here."},
            {"role": "user", "content": "first"},
            {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "image_url", "image_url": {"url": "https://x.test/cat.png"}}]},
            {"role": "developer", "content": "Use metric units."},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": ""}},
                {"id": "call.b", "type": "function", "function": {"name": "g", "arguments": "{\"x\": [1, 2]}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_a", "content": "A"},
            {"role": "tool", "tool_call_id": "call.b", "content": [{"type": "text", "text": "B"}]},
            {"role": "user", "content": "thanks"}
        ]}));
        let body = request_body(&r).unwrap();
        assert_eq!(body["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(body["system"], "Use metric units.");
        let msgs = body["messages"].as_array().unwrap();
        let roles: Vec<&str> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["user", "assistant", "user", "assistant", "user"]);
        assert_eq!(msgs[0]["content"], ".");
        assert_eq!(
            msgs[2]["content"],
            json!([
                {"type": "text", "text": "first"},
                {"type": "text", "text": "second"},
                {"type": "image", "source": {"type": "url", "url": "https://x.test/cat.png"}}
            ])
        );
        assert_eq!(
            msgs[3]["content"],
            json!([
                {"type": "tool_use", "id": "call_a", "name": "f", "input": {}},
                {"type": "tool_use", "id": "call_b", "name": "g", "input": {"x": [1, 2]}}
            ])
        );
        assert_eq!(
            msgs[4]["content"],
            json!([
                {"type": "tool_result", "tool_use_id": "call_a", "content": "A"},
                {"type": "tool_result", "tool_use_id": "call_b", "content": "B"},
                {"type": "text", "text": "thanks"}
            ])
        );
    }

    #[test]
    fn sampling_limits_and_bad_input() {
        let body = request_body(&req(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
            "temperature": 1.7, "top_p": 0.5, "max_tokens": 99, "stop": "  "}),
        ))
        .unwrap();
        assert_eq!(body["temperature"], 1.0);
        assert!(body.get("top_p").is_none());
        assert_eq!(body["max_tokens"], 99);
        assert!(body.get("stop_sequences").is_none());
        let body = request_body(&req(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "top_p": 0.5, "stop": "END"}),
        ))
        .unwrap();
        assert_eq!(body["top_p"], 0.5);
        assert_eq!(body["stop_sequences"], json!(["END"]));

        let e = request_body(&req(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2}),
        ))
        .unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(e.to_string().contains("`n`"));
        let e = request_body(&req(json!({"model": "m", "messages": [
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}
        ]})))
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("messages[0].tool_calls[0].function.arguments"),
            "{e}"
        );
        let e = request_body(&req(json!({"model": "m", "messages": [
            {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]}
        ]})))
        .unwrap_err();
        assert!(e.to_string().contains("messages[0].content[0].type"));
        // A system-only conversation becomes the prompt.
        let body = request_body(&req(
            json!({"model": "m", "messages": [{"role": "system", "content": "Say hi"}]}),
        ))
        .unwrap();
        assert!(body.get("system").is_none());
        assert_eq!(
            body["messages"],
            json!([{"role": "user", "content": "Say hi"}])
        );
    }

    #[test]
    fn tool_choice_mapping() {
        let base = json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f"}}]});
        let with = |choice: Value, extra: Option<(&str, Value)>| {
            let mut v = base.clone();
            v["tool_choice"] = choice;
            if let Some((k, x)) = extra {
                v[k] = x;
            }
            request_body(&req(v)).unwrap()
        };
        assert_eq!(
            with(json!("required"), None)["tool_choice"],
            json!({"type": "any"})
        );
        assert_eq!(
            with(json!("none"), None)["tool_choice"],
            json!({"type": "none"})
        );
        assert_eq!(
            with(json!({"type": "function", "function": {"name": "f"}}), None)["tool_choice"],
            json!({"type": "tool", "name": "f"})
        );
        assert_eq!(
            with(json!("auto"), Some(("parallel_tool_calls", json!(false))))["tool_choice"],
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        let body = with(json!(null), None);
        assert_eq!(
            body["tools"][0]["input_schema"],
            json!({"type": "object", "properties": {}})
        );
        assert!(body.get("tool_choice").is_none());
        // tool_choice without tools is dropped: Anthropic refuses it.
        let body = request_body(&req(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "required"}),
        ))
        .unwrap();
        assert!(body.get("tool_choice").is_none());
    }

    #[test]
    fn response_format_json() {
        let r = req(
            json!({"model": "m", "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "x"}],
            "response_format": {"type": "json_object"}}),
        );
        let body = request_body(&r).unwrap();
        assert_eq!(body["system"], format!("S\n\n{JSON_OBJECT_INSTRUCTION}"));

        let schema = json!({"type": "object", "properties": {"answer": {"type": "string"}}});
        let r = req(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}}),
        );
        let body = request_body(&r).unwrap();
        assert_eq!(body["tools"][0]["name"], JSON_TOOL);
        assert_eq!(body["tools"][0]["input_schema"], schema);
        assert_eq!(
            body["tool_choice"],
            json!({"type": "tool", "name": JSON_TOOL})
        );

        // The forced tool's input comes back as the text, with a plain stop.
        let a = Anthropic::new("http://x", Secret::new("k"));
        let resp = a.response(&r, br#"{"id":"msg_1","type":"message","role":"assistant","model":"m",
            "content":[{"type":"tool_use","id":"toolu_1","name":"json_output","input":{"answer":"42"}}],
            "stop_reason":"tool_use","usage":{"input_tokens":5,"output_tokens":3}}"#).unwrap();
        let c = &resp.choices[0];
        assert_eq!(c.message.content.as_deref(), Some(r#"{"answer":"42"}"#));
        assert!(c.message.tool_calls.is_none());
        assert_eq!(c.finish_reason.as_deref(), Some("stop"));

        let stream = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"m\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"json_output\",\"input\":{}}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"answer\\\":\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"42\\\"}\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":9}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        let (chunks, res) = decode(stream, &[], true);
        res.unwrap();
        let text: String = chunks
            .iter()
            .filter_map(|c| c.choices.first()?.delta.content.clone())
            .collect();
        assert_eq!(text, r#"{"answer":"42"}"#);
        assert!(
            chunks
                .iter()
                .all(|c| c.choices.iter().all(|ch| ch.delta.tool_calls.is_none()))
        );
        let finish: Vec<_> = chunks
            .iter()
            .filter_map(|c| c.choices.first()?.finish_reason.clone())
            .collect();
        assert_eq!(finish, ["stop"]);
    }

    /// The documented response (providers.md §3.3).
    #[test]
    fn golden_response() {
        let a = Anthropic::new("http://x", Secret::new("k"));
        let r = req(
            json!({"model": "claude-sonnet-4-5-20250929", "messages": [{"role": "user", "content": "x"}]}),
        );
        let resp = a
            .response(
                &r,
                br#"{
  "id": "msg_01XYZ", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
  "content": [
    {"type": "text", "text": "Checking."},
    {"type": "tool_use", "id": "toolu_01B", "name": "get_weather", "input": {"city": "Oslo"}}
  ],
  "stop_reason": "tool_use", "stop_sequence": null,
  "usage": {"input_tokens": 412, "output_tokens": 38, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "service_tier": "standard"}
}"#,
            )
            .unwrap();
        let v = serde_json::to_value(&resp).unwrap();
        assert_eq!(v["id"], "msg_01XYZ");
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "claude-sonnet-4-5-20250929");
        assert_eq!(
            v["choices"],
            json!([{
                "index": 0,
                "message": {"role": "assistant", "content": "Checking.", "refusal": null,
                    "tool_calls": [{"id": "toolu_01B", "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
                "logprobs": null,
                "finish_reason": "tool_calls"
            }])
        );
        assert_eq!(
            v["usage"],
            json!({"prompt_tokens": 412, "completion_tokens": 38, "total_tokens": 450,
                   "prompt_tokens_details": {"cached_tokens": 0}})
        );
    }

    #[test]
    fn stop_reasons_and_cache_usage() {
        for (reason, finish) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("pause_turn", "stop"),
            ("max_tokens", "length"),
            ("model_context_window_exceeded", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
        ] {
            assert_eq!(finish_reason(reason), finish);
        }
        let msg = WireMessage {
            content: vec![
                json!({"type": "thinking", "thinking": "hmm"}),
                json!({"type": "text", "text": "Hi"}),
            ],
            stop_reason: Some("end_turn".into()),
            usage: Some(WireUsage {
                input_tokens: Some(10),
                output_tokens: Some(2),
                cache_creation_input_tokens: Some(5),
                cache_read_input_tokens: Some(100),
            }),
            ..WireMessage::default()
        };
        let resp = translate_response(msg, false);
        let u = resp.usage.unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (115, 2, 117)
        );
        assert_eq!(u.extra["prompt_tokens_details"]["cached_tokens"], 100);
        assert_eq!(resp.choices[0].message.content.as_deref(), Some("Hi"));
        assert_eq!(resp.choices[0].message.extra["reasoning_content"], "hmm");
    }

    /// The documented stream (providers.md §3.4).
    const STREAM: &str = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: ping\n",
        "data: {\"type\":\"ping\"}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Héllo\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Os\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"lo\\\"}\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":31}}\n\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n\n",
    );

    fn check_golden_stream(chunks: &[ChatChunk]) {
        assert_eq!(
            chunks[0].choices[0].delta.role.as_deref(),
            Some("assistant")
        );
        assert!(
            chunks
                .iter()
                .all(|c| c.id == "msg_01" && c.model == "claude-sonnet-4-5-20250929")
        );
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
        assert_eq!(calls[0].id.as_deref(), Some("toolu_01"));
        assert_eq!(calls[0].kind.as_deref(), Some("function"));
        assert_eq!(
            calls[0].function.as_ref().unwrap().name.as_deref(),
            Some("get_weather")
        );
        assert!(calls.iter().all(|c| c.index == 0));
        let args: String = calls
            .iter()
            .filter_map(|c| c.function.as_ref()?.arguments.clone())
            .collect();
        assert_eq!(args, "{\"city\": \"Oslo\"}");
        // No empty fragment is forwarded beyond the opening one.
        assert_eq!(calls.len(), 3);
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
            (25, 31, 56)
        );
        assert!(chunks[..chunks.len() - 1].iter().all(|c| c.usage.is_none()));
    }

    #[test]
    fn golden_stream_in_awkward_pieces() {
        let (chunks, res) = decode(STREAM, &[], false);
        res.unwrap();
        check_golden_stream(&chunks);
        // Every single cut (inside UTF-8, inside JSON strings, between \r and \n) and CRLF.
        let crlf = STREAM.replace('\n', "\r\n");
        for raw in [STREAM.to_owned(), crlf] {
            for cut in 1..raw.len() {
                let (chunks, res) = decode(&raw, &[cut, cut + 7, cut + 300], false);
                res.unwrap();
                check_golden_stream(&chunks);
            }
        }
    }

    #[test]
    fn stream_errors_and_truncation() {
        let start = &STREAM[..STREAM.find("event: content_block_start").unwrap()];
        let with_error = format!(
            "{start}event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}}}\n\n"
        );
        let (chunks, res) = decode(&with_error, &[], false);
        // Nothing went out before the error, so it can still fail over.
        assert!(chunks.is_empty());
        let e = res.unwrap_err();
        assert!(e.is_retryable());
        assert!(e.to_string().contains("Overloaded"));

        let cut = &STREAM[..STREAM.find("event: message_delta").unwrap()];
        let (chunks, res) = decode(cut, &[], false);
        assert!(!chunks.is_empty());
        assert!(matches!(res, Err(GatewayError::Connect { .. })));

        // A tool call without input fragments gets `{}` as its arguments.
        let no_args = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"m\",\"usage\":{\"input_tokens\":1}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"now\",\"input\":{}}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":4}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        let (chunks, res) = decode(no_args, &[], false);
        res.unwrap();
        let args: String = chunks
            .iter()
            .filter_map(|c| c.choices.first()?.delta.tool_calls.as_ref())
            .flatten()
            .filter_map(|c| c.function.as_ref()?.arguments.clone())
            .collect();
        assert_eq!(args, "{}");
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
        let e = err(
            429,
            &[("retry-after", "7")],
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"},"request_id":"req_1"}"#,
        );
        assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert!(e.is_retryable());

        let e = err(
            529,
            &[],
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        assert!(
            matches!(&e, GatewayError::Upstream { status, .. } if *status == StatusCode::SERVICE_UNAVAILABLE)
        );
        assert!(e.is_retryable());

        let e = err(
            400,
            &[],
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#,
        );
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(!e.is_retryable());
        assert!(e.envelope()["error"]["code"] == "context_length_exceeded");
        assert!(e.to_string().contains("prompt is too long"));

        let e = err(
            401,
            &[],
            r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
        );
        assert!(e.is_retryable());
        assert_eq!(e.status(), StatusCode::BAD_GATEWAY);

        let e = err(
            400,
            &[],
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API."}}"#,
        );
        assert!(e.is_retryable());

        let e = err(
            404,
            &[],
            r#"{"type":"error","error":{"type":"not_found_error","message":"model: claude-9"}}"#,
        );
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
        assert!(!e.is_retryable());

        let e = err(502, &[], "<html>bad gateway</html>");
        assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
        assert!(e.is_retryable());
    }

    #[test]
    fn rate_limit_reset_headers_are_a_fallback() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_755_780_000);
        let mut h = HeaderMap::new();
        h.insert(
            "anthropic-ratelimit-requests-remaining",
            "0".parse().unwrap(),
        );
        h.insert(
            "anthropic-ratelimit-requests-reset",
            "2025-08-21T12:40:30Z".parse().unwrap(),
        );
        h.insert(
            "anthropic-ratelimit-tokens-remaining",
            "100".parse().unwrap(),
        );
        h.insert(
            "anthropic-ratelimit-tokens-reset",
            "2025-08-21T13:40:00Z".parse().unwrap(),
        );
        assert_eq!(ratelimit_reset(&h, now), Some(Duration::from_secs(30)));
        assert_eq!(
            rfc3339("2025-08-21T12:40:00Z"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_755_780_000))
        );
        assert_eq!(
            rfc3339("2025-08-21T14:40:00.5+02:00"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_755_780_000_500))
        );
        assert_eq!(
            rfc3339("1970-01-01T00:00:00Z"),
            Some(SystemTime::UNIX_EPOCH)
        );
        for bad in [
            "",
            "2025-13-01T00:00:00Z",
            "2025-08-21 12:40",
            "yesterday",
            "2025-08-21T12:40:00",
        ] {
            assert_eq!(rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn pass_through_keeps_every_event_in_order_and_the_client_body() {
        let mut dec = AnthropicDecoder::new(false);
        dec.native = true;
        let (chunks, res) = crate::providers::decode_pieces(
            Framing::Sse,
            &mut dec,
            &crate::providers::cut(STREAM.as_bytes(), &[7, 101, 333]),
        );
        res.unwrap();
        let relayed: Vec<String> = chunks
            .iter()
            .filter_map(|c| c.extra.get(NATIVE_KEY))
            .map(|n| {
                format!(
                    "event: {}\ndata: {}",
                    n["event"].as_str().unwrap(),
                    n["data"].as_str().unwrap()
                )
            })
            .collect();
        let sent: Vec<&str> = STREAM.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(relayed, sent);
        // The canonical usage still comes last, for the cost layer.
        assert!(chunks.last().unwrap().is_usage_only());

        let mut r = req(
            json!({"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "x"}]}),
        );
        let raw = br#"{"model":"anthropic/claude-haiku-4-5","max_tokens":9,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","data":"d"}}]}],"thinking":{"type":"enabled","budget_tokens":5}}"#;
        r.ctx.endpoint = crate::usage::Endpoint::Messages;
        r.ctx.native_body = Some(bytes::Bytes::from_static(raw));
        let up = Anthropic::new("http://a", Secret::new("k"))
            .request(&r)
            .unwrap();
        use futures_util::FutureExt as _;
        let bytes = http_body_util::BodyExt::collect(up.into_body())
            .now_or_never()
            .unwrap()
            .unwrap()
            .to_bytes();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        let mut expected: Value = serde_json::from_slice(raw).unwrap();
        expected["model"] = json!("claude-haiku-4-5");
        assert_eq!(body, expected);
    }
}
