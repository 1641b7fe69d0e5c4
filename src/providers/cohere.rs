//! Cohere v2 chat (`POST {COHERE_BASE_URL}/v2/chat`, `Authorization: Bearer`), translated to
//! and from the canonical OpenAI types (providers.md §6).
//!
//! The request is rebuilt field by field, because Cohere names things differently (`p`,
//! `stop_sequences`, upper-case `tool_choice`, the schema directly under
//! `response_format.json_schema`, tool results as `document` parts) and rejects what it does
//! not know. The stream is SSE whose `data` objects carry a `type`: text deltas, tool calls
//! started and continued by index, and a `message-end` with the finish reason and usage, or an
//! `ERROR` finish that is an upstream failure after a 200.

use std::collections::{HashMap, VecDeque};

use http::StatusCode;
use serde_json::{Map, Value, json};

use super::{
    ProviderAdapter, SseEvent, StreamDecoder, UpstreamRequest, embedding_texts, json_post,
    openai_style_error, parse_json, summarise, with_json,
};
use super::{ProviderEndpoint, ProviderSettings};
use crate::GatewayError;
use crate::catalog::ProviderSpec;
use crate::client::HttpClient;
use crate::config::Secret;
use crate::types::{
    ChatChunk, ChatRequest, ChatResponse, Content, Delta, EmbeddingRequest, EmbeddingResponse,
    FunctionCall, FunctionCallDelta, Message, ResponseMessage, Role, ToolCall, ToolCallDelta,
    Usage,
};

const PROVIDER: &str = "cohere";

/// Builds the endpoints of a configured provider: one per credential.
pub(crate) fn build(
    _spec: &'static ProviderSpec,
    settings: &ProviderSettings,
    client: &HttpClient,
) -> Result<Vec<ProviderEndpoint>, String> {
    Ok(super::endpoint_per_key(settings, client, Cohere::new))
}

/// The Cohere v2 adapter for one key.
#[derive(Debug)]
pub struct Cohere {
    url: String,
    embed_url: String,
    key: Secret,
}

// === impl Cohere ===

impl Cohere {
    /// An adapter posting to `{base_url}/v2/chat`.
    pub fn new(base_url: &str, key: Secret) -> Self {
        Self {
            url: format!("{}/v2/chat", base_url.trim_end_matches('/')),
            embed_url: format!("{}/v2/embed", base_url.trim_end_matches('/')),
            key,
        }
    }

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
fn message(i: usize, m: &Message) -> Result<Value, GatewayError> {
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

/// Cohere's finish reason as OpenAI's, or `None` for `ERROR` / `TIMEOUT`.
fn finish_reason(reason: &str) -> Option<&'static str> {
    match reason {
        "MAX_TOKENS" => Some("length"),
        "TOOL_CALL" => Some("tool_calls"),
        "ERROR" | "TIMEOUT" => None,
        // COMPLETE, STOP_SEQUENCE and anything new.
        _ => Some("stop"),
    }
}

/// The error an `ERROR` / `TIMEOUT` finish stands for.
fn finish_error(reason: &str, message: Option<&str>) -> GatewayError {
    let (status, what) = if reason == "TIMEOUT" {
        (StatusCode::GATEWAY_TIMEOUT, "cohere timed out generating")
    } else {
        (StatusCode::BAD_GATEWAY, "cohere failed while generating")
    };
    GatewayError::Upstream {
        provider: PROVIDER,
        status,
        message: message
            .filter(|m| !m.trim().is_empty())
            .map(summarise)
            .unwrap_or_else(|| what.to_owned()),
        code: Some(reason.to_ascii_lowercase()),
        retry_after: None,
    }
}

/// Usage from `billed_units` (what Cohere charges), else the raw `tokens`.
fn usage(u: &Value) -> Option<Usage> {
    let counts = |v: &Value| {
        let input = v.get("input_tokens").and_then(Value::as_f64)?;
        let output = v
            .get("output_tokens")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        Some(Usage::new(input as u64, output as u64))
    };
    u.get("billed_units")
        .and_then(counts)
        .or_else(|| u.get("tokens").and_then(counts))
}

fn tool_call(v: &Value) -> Option<ToolCall> {
    let f = v.get("function")?;
    Some(ToolCall {
        id: v.get("id").and_then(Value::as_str).unwrap_or("").to_owned(),
        kind: "function".to_owned(),
        function: FunctionCall {
            name: f.get("name").and_then(Value::as_str)?.to_owned(),
            arguments: match f.get("arguments") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => "{}".to_owned(),
                Some(other) => other.to_string(),
            },
        },
    })
}

impl ProviderAdapter for Cohere {
    type Decoder = CohereDecoder;

    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn request(&self, req: &ChatRequest) -> Result<UpstreamRequest, GatewayError> {
        let body = self.body(req)?;
        let accept = if req.is_stream() {
            "text/event-stream"
        } else {
            "application/json"
        };
        let builder = json_post(&self.url)?
            .header(http::header::AUTHORIZATION, self.key.bearer()?)
            .header(http::header::ACCEPT, accept);
        with_json(builder, &body)
    }

    /// `POST /v2/embed` with float vectors; `input_type` (required by v3+ models) defaults to
    /// `search_document` and may be set through the request's `input_type`.
    fn embed_request(
        &self,
        req: &ChatRequest,
        emb: &EmbeddingRequest,
    ) -> Result<UpstreamRequest, GatewayError> {
        let texts = embedding_texts(PROVIDER, emb)?;
        let mut body = json!({
            "model": req.model,
            "texts": texts,
            "input_type": emb.extra.get("input_type").cloned().unwrap_or_else(|| "search_document".into()),
            "embedding_types": ["float"],
        });
        if let Some(d) = emb.dimensions {
            body["output_dimension"] = d.into();
        }
        if let Some(t) = emb.extra.get("truncate") {
            body["truncate"] = t.clone();
        }
        let builder = json_post(&self.embed_url)?
            .header(http::header::AUTHORIZATION, self.key.bearer()?)
            .header(http::header::ACCEPT, "application/json");
        with_json(builder, &body)
    }

    fn embed_response(
        &self,
        req: &ChatRequest,
        _emb: &EmbeddingRequest,
        body: &[u8],
    ) -> Result<EmbeddingResponse, GatewayError> {
        let v: Value = parse_json(PROVIDER, body)?;
        // v2 answers `{"embeddings": {"float": [[...]]}}`; v1-style `{"embeddings": [[...]]}`
        // is accepted too.
        let lists = match v.get("embeddings") {
            Some(Value::Object(o)) => o.get("float"),
            other => other,
        };
        let vectors = lists
            .and_then(Value::as_array)
            .and_then(|rows| {
                rows.iter()
                    .map(|row| {
                        row.as_array()?
                            .iter()
                            .map(|x| x.as_f64().map(|f| f as f32))
                            .collect::<Option<Vec<f32>>>()
                    })
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| GatewayError::BadUpstreamResponse {
                provider: PROVIDER,
                reason: "no float `embeddings` in the answer".into(),
            })?;
        let usage = v
            .pointer("/meta/billed_units/input_tokens")
            .and_then(Value::as_u64)
            .map(|p| Usage::new(p, 0));
        Ok(EmbeddingResponse::new(req.model.clone(), vectors, usage))
    }

    fn response(&self, req: &ChatRequest, body: &[u8]) -> Result<ChatResponse, GatewayError> {
        let v: Value = parse_json(PROVIDER, body)?;
        let reason = v
            .get("finish_reason")
            .and_then(Value::as_str)
            .unwrap_or("COMPLETE");
        let Some(finish) = finish_reason(reason) else {
            return Err(finish_error(reason, v.get("error").and_then(Value::as_str)));
        };
        let msg = v
            .get("message")
            .ok_or_else(|| GatewayError::BadUpstreamResponse {
                provider: PROVIDER,
                reason: "no `message` in the answer".into(),
            })?;
        let text: String = match msg.get("content") {
            Some(Value::Array(parts)) => parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str).unwrap_or("text") == "text")
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect(),
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        let calls: Vec<ToolCall> = msg
            .get("tool_calls")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(tool_call).collect())
            .unwrap_or_default();
        let content = (!text.is_empty() || calls.is_empty()).then_some(text);
        let tool_calls = (!calls.is_empty()).then_some(calls);
        let mut resp = ChatResponse::single(
            req.model.clone(),
            ResponseMessage::assistant(content, tool_calls),
            finish,
            v.get("usage").and_then(usage),
        );
        if let Some(id) = v
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            resp.id = id.to_owned();
        }
        Ok(resp)
    }

    fn decoder(&self, req: &ChatRequest) -> CohereDecoder {
        CohereDecoder::new(&req.model)
    }

    fn error(&self, status: StatusCode, headers: &http::HeaderMap, body: &[u8]) -> GatewayError {
        let mut err = openai_style_error(PROVIDER, status, headers, body);
        // 498 is a blocked request (or "invalid token" in the SDK): never worth a retry.
        if status.as_u16() == 498
            && let GatewayError::Upstream { status, .. } = &mut err
        {
            *status = StatusCode::BAD_REQUEST;
        }
        err
    }
}

/// Decodes Cohere's typed SSE events.
#[derive(Debug)]
pub struct CohereDecoder {
    id: String,
    created: u64,
    model: String,
    emitted: bool,
    // Cohere's tool-call index -> the OpenAI index (a running counter).
    tools: HashMap<u64, u32>,
    current_tool: Option<u32>,
    ended: bool,
}

// === impl CohereDecoder ===

impl CohereDecoder {
    /// A decoder for a stream answering for `model`.
    pub fn new(model: &str) -> Self {
        Self {
            id: crate::types::completion_id(),
            created: crate::types::unix_now(),
            model: model.to_owned(),
            emitted: false,
            tools: HashMap::new(),
            current_tool: None,
            ended: false,
        }
    }

    fn push(&mut self, out: &mut VecDeque<ChatChunk>, delta: Delta, finish: Option<&str>) {
        self.emitted = true;
        out.push_back(ChatChunk::delta(
            &self.id,
            self.created,
            &self.model,
            delta,
            finish,
        ));
    }

    fn tool_delta(&mut self, out: &mut VecDeque<ChatChunk>, delta: ToolCallDelta) {
        let d = Delta {
            tool_calls: Some(vec![delta]),
            ..Delta::default()
        };
        self.push(out, d, None);
    }
}

impl StreamDecoder for CohereDecoder {
    fn event(
        &mut self,
        event: SseEvent,
        out: &mut VecDeque<ChatChunk>,
    ) -> Result<(), GatewayError> {
        let data = event.data.trim();
        if data.is_empty() || data == "[DONE]" || self.ended {
            return Ok(());
        }
        let v: Value =
            serde_json::from_str(data).map_err(|e| GatewayError::BadUpstreamResponse {
                provider: PROVIDER,
                reason: format!("invalid stream event: {e}"),
            })?;
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .or(event.event.as_deref())
            .unwrap_or("");
        let delta = v.get("delta").unwrap_or(&Value::Null);
        let message = delta.get("message").unwrap_or(&Value::Null);
        let index = v.get("index").and_then(Value::as_u64);
        match kind {
            "message-start" => {
                if let Some(id) = v.get("id").and_then(Value::as_str)
                    && !id.is_empty()
                    && !self.emitted
                {
                    self.id = id.to_owned();
                }
                self.push(out, Delta::role(), None);
            }
            "content-delta" => {
                let content = message.get("content").unwrap_or(&Value::Null);
                if let Some(text) = content.get("text").and_then(Value::as_str) {
                    if !text.is_empty() {
                        self.push(out, Delta::text(text), None);
                    }
                } else if let Some(thinking) = content.get("thinking").and_then(Value::as_str) {
                    let mut d = Delta::default();
                    d.extra
                        .insert("reasoning_content".into(), thinking.to_owned().into());
                    self.push(out, d, None);
                }
            }
            "tool-call-start" => {
                let tc = match message.get("tool_calls") {
                    Some(Value::Array(a)) => a.first().unwrap_or(&Value::Null),
                    Some(other) => other,
                    None => &Value::Null,
                };
                let ours = self.tools.len() as u32;
                if let Some(i) = index {
                    self.tools.insert(i, ours);
                }
                self.current_tool = Some(ours);
                let f = tc.get("function").unwrap_or(&Value::Null);
                self.tool_delta(
                    out,
                    ToolCallDelta {
                        index: ours,
                        id: tc.get("id").and_then(Value::as_str).map(str::to_owned),
                        kind: Some("function".into()),
                        function: Some(FunctionCallDelta {
                            name: f.get("name").and_then(Value::as_str).map(str::to_owned),
                            arguments: Some(
                                f.get("arguments")
                                    .and_then(Value::as_str)
                                    .unwrap_or("")
                                    .to_owned(),
                            ),
                        }),
                    },
                );
            }
            "tool-call-delta" => {
                let args = message
                    .get("tool_calls")
                    .and_then(|t| t.get("function"))
                    .and_then(|f| f.get("arguments"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let ours = index
                    .and_then(|i| self.tools.get(&i).copied())
                    .or(self.current_tool);
                if let Some(ours) = ours
                    && !args.is_empty()
                {
                    self.tool_delta(
                        out,
                        ToolCallDelta {
                            index: ours,
                            function: Some(FunctionCallDelta {
                                name: None,
                                arguments: Some(args.to_owned()),
                            }),
                            ..ToolCallDelta::default()
                        },
                    );
                }
            }
            "message-end" => {
                self.ended = true;
                let reason = delta
                    .get("finish_reason")
                    .and_then(Value::as_str)
                    .unwrap_or("COMPLETE");
                let Some(finish) = finish_reason(reason) else {
                    return Err(finish_error(
                        reason,
                        delta.get("error").and_then(Value::as_str),
                    ));
                };
                self.push(out, Delta::default(), Some(finish));
                if let Some(u) = delta.get("usage").and_then(usage) {
                    out.push_back(ChatChunk::usage_only(
                        &self.id,
                        self.created,
                        &self.model,
                        u,
                    ));
                }
            }
            // content-start/-end, tool-plan-delta, tool-call-end, citations, debug.
            _ => {}
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut VecDeque<ChatChunk>) -> Result<(), GatewayError> {
        if self.ended {
            return Ok(());
        }
        Err(GatewayError::Connect {
            provider: PROVIDER,
            reason: "stream ended before message-end".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Framing;

    fn adapter() -> Cohere {
        Cohere::new("http://cohere.test/", Secret::new("co-test-key"))
    }

    fn req(v: Value) -> ChatRequest {
        serde_json::from_value(v).unwrap()
    }

    /// The OpenAI request that corresponds to providers.md §6.2.
    fn documented_request() -> ChatRequest {
        req(json!({
            "model": "command-r-plus-08-2024",
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": [
                    {"type": "text", "text": "Describe this."},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR...", "detail": "auto"}}
                ]},
                {"role": "assistant", "content": null,
                 "tool_calls": [{"id": "get_weather_abc", "type": "function",
                                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
                {"role": "tool", "tool_call_id": "get_weather_abc", "content": "{\"temp\":\"14C\"}"}
            ],
            "max_completion_tokens": 512,
            "temperature": 0.3,
            "top_p": 0.75,
            "stop": ["END"],
            "seed": 7,
            "n": 1,
            "logit_bias": {"50256": -100},
            "parallel_tool_calls": true,
            "user": "u1",
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
                       "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
            "tool_choice": "required",
            "response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}}},
            "stream": false
        }))
    }

    #[test]
    fn request_matches_the_documented_example() {
        let body = adapter().body(&documented_request()).unwrap();
        // providers.md §6.2 without the Cohere-only fields an OpenAI request cannot carry.
        let expected = json!({
            "model": "command-r-plus-08-2024",
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": [
                    {"type": "text", "text": "Describe this."},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR...", "detail": "auto"}}
                ]},
                {"role": "assistant",
                 "tool_calls": [{"id": "get_weather_abc", "type": "function",
                                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
                {"role": "tool", "tool_call_id": "get_weather_abc",
                 "content": [{"type": "document", "document": {"data": "{\"temp\":\"14C\"}"}}]}
            ],
            "max_tokens": 512,
            "temperature": 0.3,
            "p": 0.75,
            "stop_sequences": ["END"],
            "seed": 7,
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
                       "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
            "tool_choice": "REQUIRED",
            "response_format": {"type": "json_object", "json_schema": {"type": "object"}},
            "stream": false
        });
        assert_eq!(body, expected);
        let up = adapter().request(&documented_request()).unwrap();
        assert_eq!(up.uri(), "http://cohere.test/v2/chat");
        assert_eq!(up.headers()["authorization"], "Bearer co-test-key");
    }

    #[test]
    fn tool_choice_forms_and_clamped_sampling() {
        let base = json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "a"}}, {"type": "function", "function": {"name": "b"}}]});
        let with = |extra: Value| {
            let mut v = base.clone();
            for (k, val) in extra.as_object().unwrap() {
                v[k] = val.clone();
            }
            adapter().body(&req(v)).unwrap()
        };
        let b = with(json!({"tool_choice": "auto"}));
        assert!(b.get("tool_choice").is_none());
        assert_eq!(b["tools"].as_array().unwrap().len(), 2);
        assert_eq!(b["tools"][0]["function"]["parameters"]["type"], "object");
        assert_eq!(with(json!({"tool_choice": "none"}))["tool_choice"], "NONE");
        let b = with(json!({"tool_choice": {"type": "function", "function": {"name": "b"}}}));
        assert_eq!(b["tool_choice"], "REQUIRED");
        assert_eq!(
            b["tools"],
            json!([{"type": "function", "function": {"name": "b", "parameters": {"type": "object", "properties": {}}}}])
        );
        let mut bad = base.clone();
        bad["tool_choice"] = json!({"type": "function", "function": {"name": "zzz"}});
        assert!(adapter().body(&req(bad)).is_err());
        let b = with(
            json!({"top_p": 1.0, "presence_penalty": -1.5, "frequency_penalty": 1.8, "stop": "X", "max_tokens": 9, "stream": true}),
        );
        assert_eq!(
            (&b["p"], &b["presence_penalty"], &b["frequency_penalty"]),
            (&json!(0.99), &json!(0.0), &json!(1.0))
        );
        assert_eq!(b["stop_sequences"], json!(["X"]));
        assert_eq!((&b["max_tokens"], &b["stream"]), (&json!(9), &json!(true)));
        let b = with(json!({"response_format": {"type": "json_object"}}));
        assert_eq!(b["response_format"], json!({"type": "json_object"}));
    }

    #[test]
    fn unsupported_parts_are_rejected_naming_the_field() {
        let r = req(
            json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}]}),
        );
        let e = adapter().body(&r).unwrap_err();
        assert!(e.to_string().contains("messages[0].content[0].type"), "{e}");
    }

    #[test]
    fn documented_tool_call_response() {
        let r = documented_request();
        let body = br#"{
          "id": "c14c80c3-18eb-4519-9460-6c92edd8cfb4",
          "finish_reason": "TOOL_CALL",
          "message": {"role": "assistant",
            "tool_plan": "I will look up the weather.",
            "tool_calls": [{"id": "get_weather_xyz", "type": "function",
                            "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}],
            "content": [{"type": "text", "text": ""}],
            "citations": []},
          "usage": {"billed_units": {"input_tokens": 31, "output_tokens": 12},
                    "tokens": {"input_tokens": 702, "output_tokens": 40},
                    "cached_tokens": 0}
        }"#;
        let resp = adapter().response(&r, body).unwrap();
        assert_eq!(resp.id, "c14c80c3-18eb-4519-9460-6c92edd8cfb4");
        assert_eq!(resp.model, "command-r-plus-08-2024");
        let c = &resp.choices[0];
        assert_eq!(c.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(c.message.content, None);
        let calls = c.message.tool_calls.as_ref().unwrap();
        assert_eq!(calls[0].id, "get_weather_xyz");
        assert_eq!(calls[0].function.name, "get_weather");
        assert_eq!(calls[0].function.arguments, "{\"city\":\"Oslo\"}");
        assert_eq!(resp.usage, Some(Usage::new(31, 12)));
    }

    #[test]
    fn text_responses_finish_reasons_and_usage_fallback() {
        let r = documented_request();
        let parse = |finish: &str, usage: Value| {
            let body = json!({"id": "x", "finish_reason": finish,
                "message": {"role": "assistant", "content": [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}]},
                "usage": usage});
            adapter().response(&r, body.to_string().as_bytes())
        };
        let resp = parse(
            "COMPLETE",
            json!({"tokens": {"input_tokens": 7, "output_tokens": 2}}),
        )
        .unwrap();
        assert_eq!(resp.choices[0].message.content.as_deref(), Some("Hello"));
        assert_eq!(resp.choices[0].finish_reason.as_deref(), Some("stop"));
        assert_eq!(resp.usage, Some(Usage::new(7, 2)));
        for (finish, ours) in [("STOP_SEQUENCE", "stop"), ("MAX_TOKENS", "length")] {
            let resp = parse(finish, Value::Null).unwrap();
            assert_eq!(resp.choices[0].finish_reason.as_deref(), Some(ours));
            assert_eq!(resp.usage, None);
        }
        let e = parse("ERROR", Value::Null).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
        assert!(e.is_retryable());
        assert!(adapter().response(&r, b"<html>").is_err());
    }

    fn decode(pieces: &[&[u8]]) -> (Vec<ChatChunk>, Result<(), GatewayError>) {
        let mut d = CohereDecoder::new("command-r-08-2024");
        crate::providers::decode_pieces(Framing::Sse, &mut d, pieces)
    }

    /// The documented stream of §6.4, plus a UTF-8 character to cut through.
    const DOCUMENTED_STREAM: &str = concat!(
        "data: {\"type\":\"message-start\",\"id\":\"abc\",\"delta\":{\"message\":{\"role\":\"assistant\"}}}\n\n",
        "data: {\"type\":\"content-start\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"type\":\"text\",\"text\":\"\"}}}}\n\n",
        "data: {\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"text\":\"Hi\"}}}}\n\n",
        "data: {\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"text\":\" thér\"}}}}\r\n\r\n",
        ": keep-alive\n\n",
        "data: {\"type\":\"content-end\",\"index\":0}\n\n",
        "data: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"COMPLETE\",\"usage\":{\"billed_units\":{\"input_tokens\":5,\"output_tokens\":1},\"tokens\":{\"input_tokens\":71,\"output_tokens\":1}}}}\n\n",
    );

    #[test]
    fn documented_stream_in_awkward_pieces() {
        let raw = DOCUMENTED_STREAM.as_bytes();
        let cut = DOCUMENTED_STREAM.find("é").unwrap() + 1; // inside 'é'
        let whole = decode(&[raw]);
        for pieces in [
            vec![&raw[..3], &raw[3..cut], &raw[cut..cut + 7], &raw[cut + 7..]],
            raw.chunks(1).collect::<Vec<_>>(),
        ] {
            let (chunks, end) = decode(&pieces);
            end.unwrap();
            // `created` is per stream: compare the rest.
            let says = |c: &[ChatChunk]| -> Vec<(String, Value, Option<Usage>)> {
                c.iter()
                    .map(|c| {
                        (
                            c.id.clone(),
                            serde_json::to_value(&c.choices).unwrap(),
                            c.usage.clone(),
                        )
                    })
                    .collect()
            };
            assert_eq!(says(&chunks), says(&whole.0));
        }
        let chunks = whole.0;
        assert_eq!(
            chunks[0].choices[0].delta.role.as_deref(),
            Some("assistant")
        );
        assert!(chunks.iter().all(|c| c.id == "abc"));
        let text: String = chunks
            .iter()
            .filter_map(|c| c.choices.first()?.delta.content.clone())
            .collect();
        assert_eq!(text, "Hi thér");
        let n = chunks.len();
        assert_eq!(
            chunks[n - 2].choices[0].finish_reason.as_deref(),
            Some("stop")
        );
        assert!(chunks[n - 1].is_usage_only());
        assert_eq!(chunks[n - 1].usage, Some(Usage::new(5, 1)));
        assert_eq!(chunks.iter().filter(|c| c.usage.is_some()).count(), 1);
    }

    #[test]
    fn streamed_tool_calls_with_fragments_and_two_calls() {
        let events = [
            json!({"type": "message-start", "id": "t1", "delta": {"message": {"role": "assistant"}}}),
            json!({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will"}}}),
            json!({"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}}}}}),
            json!({"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": "{\"city\":"}}}}}),
            json!({"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": "\"Oslo\"}"}}}}}),
            json!({"type": "tool-call-end", "index": 0}),
            json!({"type": "tool-call-start", "index": 1, "delta": {"message": {"tool_calls": {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}}}}),
            json!({"type": "tool-call-end", "index": 1}),
            json!({"type": "message-end", "delta": {"finish_reason": "TOOL_CALL", "usage": {"billed_units": {"input_tokens": 20, "output_tokens": 9}}}}),
        ];
        let mut raw: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
        raw.push_str("data: [DONE]\n\n");
        let (chunks, end) = decode(&raw.as_bytes().chunks(17).collect::<Vec<_>>());
        end.unwrap();
        let calls: Vec<&ToolCallDelta> = chunks
            .iter()
            .filter_map(|c| c.choices.first()?.delta.tool_calls.as_ref())
            .flatten()
            .collect();
        assert_eq!(calls.len(), 4);
        assert_eq!(
            (calls[0].index, calls[0].id.as_deref()),
            (0, Some("call_a"))
        );
        let args: String = calls
            .iter()
            .filter(|c| c.index == 0)
            .filter_map(|c| c.function.as_ref()?.arguments.clone())
            .collect();
        assert_eq!(args, "{\"city\":\"Oslo\"}");
        assert_eq!(
            (calls[3].index, calls[3].id.as_deref()),
            (1, Some("call_b"))
        );
        let finish = chunks
            .iter()
            .find_map(|c| c.choices.first()?.finish_reason.clone());
        assert_eq!(finish.as_deref(), Some("tool_calls"));
    }

    #[test]
    fn error_finish_and_truncation_are_errors() {
        let raw = concat!(
            "data: {\"type\":\"message-start\",\"id\":\"e\",\"delta\":{\"message\":{\"role\":\"assistant\"}}}\n\n",
            "data: {\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"text\":\"par\"}}}}\n\n",
            "data: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"ERROR\",\"error\":\"internal failure\"}}\n\n",
        );
        let (chunks, end) = decode(&[raw.as_bytes()]);
        assert_eq!(chunks.len(), 2);
        let e = end.unwrap_err();
        assert!(e.to_string().contains("internal failure"), "{e}");
        assert!(e.is_retryable());
        let cut = raw.find("data: {\"type\":\"message-end").unwrap();
        let (_, end) = decode(&[&raw.as_bytes()[..cut]]);
        assert!(matches!(end, Err(GatewayError::Connect { .. })));
    }

    #[test]
    fn error_bodies() {
        let a = adapter();
        let h = http::HeaderMap::new();
        let e = a.error(
            StatusCode::UNAUTHORIZED,
            &h,
            br#"{"message":"invalid api token"}"#,
        );
        assert!(e.to_string().contains("invalid api token"));
        assert!(e.is_retryable());
        assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
        let mut h429 = http::HeaderMap::new();
        h429.insert("retry-after", "12".parse().unwrap());
        let e = a.error(
            StatusCode::TOO_MANY_REQUESTS,
            &h429,
            br#"{"id":"x","message":"trial key limit"}"#,
        );
        assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(12)));
        assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
        let e = a.error(
            StatusCode::from_u16(498).unwrap(),
            &h,
            br#"{"message":"blocked"}"#,
        );
        assert!(!e.is_retryable());
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let e = a.error(
            StatusCode::from_u16(499).unwrap(),
            &h,
            br#"{"message":"cancelled"}"#,
        );
        assert!(!e.is_retryable());
        let e = a.error(
            StatusCode::BAD_REQUEST,
            &h,
            br#"{"message":"invalid request: p must be < 1"}"#,
        );
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(!e.is_retryable());
    }
}
