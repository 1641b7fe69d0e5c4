//! The OpenAI-compatible family: openai, groq, together, fireworks, cerebras, sambanova,
//! mistral, openrouter, deepseek, xai and ollama, as one adapter parametrised by base URL, auth
//! and [`Quirks`].
//!
//! The body passes through (unknown fields included) apart from what a provider is known to
//! reject (providers.md §2.2): Mistral gets a whitelist, `max_completion_tokens` becomes
//! `max_tokens` where only that is known, `developer` becomes `system` where it is not.
//! Streams always ask for usage when the provider accepts `stream_options`, and usage is read
//! wherever it arrives (`usage` on any chunk, `x_groq.usage`).

use std::collections::VecDeque;

use serde_json::{Map, Value};

use super::{
    ProviderAdapter, SseEvent, StreamDecoder, Translate, UpstreamRequest, json_post, parse_json,
    with_bytes, with_json,
};
use super::{ProviderEndpoint, ProviderSettings};
use crate::GatewayError;
use crate::catalog::ProviderSpec;
use crate::client::HttpClient;
use crate::config::Secret;
use crate::deployment::DeploymentService;
use crate::types::{
    ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, Usage,
};

/// What differs between OpenAI-compatible providers.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quirks {
    /// Send `max_tokens` instead of `max_completion_tokens`.
    pub max_tokens_only: bool,
    /// Map the `developer` role to `system`.
    pub no_developer_role: bool,
    /// The provider accepts `stream_options.include_usage`.
    pub stream_options: bool,
    /// Only these top-level fields may be sent (Mistral's strict schema); empty = all.
    pub whitelist: &'static [&'static str],
    /// Fields to drop before sending.
    pub drop: &'static [&'static str],
    /// Flatten array content of text-only messages into a string (SambaNova).
    pub flatten_text_content: bool,
    /// Map `tool_choice: "required"` / object form to `"any"` (Mistral, Fireworks).
    pub tool_choice_any: bool,
}

const OPENAI_QUIRKS: Quirks = Quirks {
    max_tokens_only: false,
    no_developer_role: false,
    stream_options: true,
    whitelist: &[],
    drop: &[],
    flatten_text_content: false,
    tool_choice_any: false,
};

const MISTRAL_FIELDS: &[&str] = &[
    "model",
    "messages",
    "temperature",
    "top_p",
    "max_tokens",
    "stream",
    "stop",
    "random_seed",
    "response_format",
    "tools",
    "tool_choice",
    "presence_penalty",
    "frequency_penalty",
    "safe_prompt",
    "parallel_tool_calls",
    "prediction",
    "n",
];

/// The adapter for one OpenAI-compatible provider and key.
#[derive(Debug)]
pub struct OpenAiCompat {
    provider: &'static str,
    url: String,
    embeddings_url: String,
    key: Option<Secret>,
    quirks: Quirks,
}

impl OpenAiCompat {
    /// An adapter posting to `{base_url}/chat/completions`.
    pub fn new(
        provider: &'static str,
        base_url: &str,
        key: Option<Secret>,
        quirks: Quirks,
    ) -> Self {
        Self {
            provider,
            url: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            embeddings_url: format!("{}/embeddings", base_url.trim_end_matches('/')),
            key,
            quirks,
        }
    }

    /// The upstream body as bytes: one serialisation pass when no quirk needs the `Value`
    /// tree ([`FastBody`]), else [`openai_body`] and `to_vec`. Both give the same JSON.
    fn body_bytes(&self, req: &ChatRequest) -> Result<Vec<u8>, GatewayError> {
        let bytes = match FastBody::new(req, &self.quirks) {
            Some(fast) => serde_json::to_vec(&fast),
            None => serde_json::to_vec(&openai_body(req, &self.quirks)?),
        };
        bytes.map_err(|e| GatewayError::Internal(format!("encoding request: {e}")))
    }

    #[cfg(test)]
    fn body(&self, req: &ChatRequest) -> Result<Value, GatewayError> {
        serde_json::from_slice(&self.body_bytes(req)?)
            .map_err(|e| GatewayError::Internal(format!("re-reading request: {e}")))
    }
}

/// The fields of [`ChatRequest`] that it serialises itself, in its order.
const TYPED_FIELDS: &[&str] = &[
    "model",
    "messages",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "n",
    "tools",
    "tool_choice",
    "response_format",
];

/// `req` as [`openai_body`] would send it, borrowed and serialised in one pass. Only built
/// when the quirks leave the `Value` tree nothing to do beyond the two typed fields it
/// adjusts (`max_tokens`, `stream_options`).
#[derive(serde::Serialize)]
struct FastBody<'a> {
    model: &'a str,
    messages: &'a [crate::types::Message],
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<std::borrow::Cow<'a, crate::types::StreamOptions>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<&'a crate::types::Stop>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<&'a Vec<crate::types::Tool>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<&'a Value>,
    #[serde(flatten)]
    extra: &'a Map<String, Value>,
}

// === impl FastBody ===

impl<'a> FastBody<'a> {
    /// `None` when `req` needs [`openai_body`]: a whitelist, fields present to drop, flattening,
    /// `tool_choice` mapping, `developer` roles to map, message fields that are `null`, or
    /// an `extra` key that shadows a typed field.
    fn new(req: &'a ChatRequest, q: &Quirks) -> Option<Self> {
        use crate::types::{Role, StreamOptions};
        use std::borrow::Cow;
        if !q.whitelist.is_empty()
            || q.drop.iter().any(|k| {
                // A typed field to drop forces the slow path unless it is an absent `n`.
                req.extra.contains_key(*k)
                    || (TYPED_FIELDS.contains(k) && !(*k == "n" && req.n.is_none()))
            })
            || q.flatten_text_content
            || (q.tool_choice_any && req.tool_choice.is_some())
            || req.extra.keys().any(|k| TYPED_FIELDS.contains(&k.as_str()))
        {
            return None;
        }
        for m in &req.messages {
            if (q.no_developer_role && m.role == Role::Developer)
                || m.extra.values().any(Value::is_null)
            {
                return None;
            }
        }
        let (max_tokens, max_completion_tokens) = match req.max_completion_tokens {
            Some(v) if q.max_tokens_only => (req.max_tokens.or(Some(v)), None),
            other => (req.max_tokens, other),
        };
        let stream_options = if req.is_stream() && q.stream_options {
            Some(match &req.stream_options {
                Some(o) if o.include_usage == Some(true) => Cow::Borrowed(o),
                Some(o) => Cow::Owned(StreamOptions {
                    include_usage: Some(true),
                    extra: o.extra.clone(),
                }),
                None => Cow::Owned(StreamOptions {
                    include_usage: Some(true),
                    extra: Map::new(),
                }),
            })
        } else if q.stream_options {
            req.stream_options.as_ref().map(Cow::Borrowed)
        } else {
            None
        };
        Some(Self {
            model: &req.model,
            messages: &req.messages,
            stream: req.stream,
            stream_options,
            max_tokens,
            max_completion_tokens,
            temperature: req.temperature,
            top_p: req.top_p,
            stop: req.stop.as_ref(),
            n: req.n,
            tools: req.tools.as_ref(),
            tool_choice: req.tool_choice.as_ref(),
            response_format: req.response_format.as_ref(),
            extra: &req.extra,
        })
    }
}

/// The OpenAI-format body for `req`, adjusted by `q`. Shared by every adapter whose upstream
/// speaks OpenAI's request format (this family, Azure, AI21).
pub(crate) fn openai_body(req: &ChatRequest, q: &Quirks) -> Result<Value, GatewayError> {
    let mut body = serde_json::to_value(req)
        .map_err(|e| GatewayError::Internal(format!("encoding request: {e}")))?;
    let Value::Object(obj) = &mut body else {
        return Err(GatewayError::Internal("request is not an object".into()));
    };
    if q.max_tokens_only
        && let Some(v) = obj.remove("max_completion_tokens")
    {
        obj.entry("max_tokens").or_insert(v);
    }
    if req.is_stream() && q.stream_options {
        let opts = obj
            .entry("stream_options")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(o) = opts {
            o.insert("include_usage".into(), Value::Bool(true));
        }
    } else if !q.stream_options {
        obj.remove("stream_options");
    }
    if let Some(Value::Array(messages)) = obj.get_mut("messages") {
        for m in messages.iter_mut() {
            let Value::Object(m) = m else { continue };
            if q.no_developer_role && m.get("role").and_then(Value::as_str) == Some("developer") {
                m.insert("role".into(), Value::String("system".into()));
            }
            // Groq and Mistral reject explicit nulls on assistant messages.
            m.retain(|k, v| !(v.is_null() && k != "content"));
            if q.flatten_text_content
                && let Some(Value::Array(parts)) = m.get("content")
                && parts
                    .iter()
                    .all(|p| p.get("type").and_then(Value::as_str) == Some("text"))
            {
                let text: Vec<&str> = parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect();
                let joined = text.join("\n");
                m.insert("content".into(), Value::String(joined));
            }
        }
    }
    if q.tool_choice_any
        && let Some(tc) = obj.get("tool_choice")
        && (tc.is_object() || tc.as_str() == Some("required"))
    {
        obj.insert("tool_choice".into(), Value::String("any".into()));
    }
    if let Some(seed) = obj.get("seed").cloned()
        && !q.whitelist.is_empty()
    {
        obj.insert("random_seed".into(), seed);
    }
    if !q.whitelist.is_empty() {
        obj.retain(|k, _| q.whitelist.contains(&k.as_str()));
    }
    for k in q.drop {
        obj.remove(*k);
    }
    Ok(body)
}

impl ProviderAdapter for OpenAiCompat {
    type Decoder = OpenAiDecoder;

    fn provider(&self) -> &'static str {
        self.provider
    }

    fn request(&self, req: &ChatRequest) -> Result<UpstreamRequest, GatewayError> {
        let body = self.body_bytes(req)?;
        let mut builder = json_post(&self.url)?;
        if let Some(key) = &self.key {
            builder = builder.header(http::header::AUTHORIZATION, key.bearer()?);
        }
        if req.is_stream() {
            builder = builder.header(http::header::ACCEPT, "text/event-stream");
        }
        with_bytes(builder, body)
    }

    fn response(&self, _req: &ChatRequest, body: &[u8]) -> Result<ChatResponse, GatewayError> {
        let mut resp: ChatResponse = parse_json(self.provider, body)?;
        normalise_response(&mut resp);
        Ok(resp)
    }

    fn decoder(&self, _req: &ChatRequest) -> OpenAiDecoder {
        OpenAiDecoder::new(self.provider)
    }

    fn embed_request(
        &self,
        req: &ChatRequest,
        emb: &EmbeddingRequest,
    ) -> Result<UpstreamRequest, GatewayError> {
        let mut builder = json_post(&self.embeddings_url)?;
        if let Some(key) = &self.key {
            builder = builder.header(http::header::AUTHORIZATION, key.bearer()?);
        }
        with_json(builder, &embedding_body(req, emb)?)
    }

    fn embed_response(
        &self,
        _req: &ChatRequest,
        _emb: &EmbeddingRequest,
        body: &[u8],
    ) -> Result<EmbeddingResponse, GatewayError> {
        embedding_response(self.provider, body)
    }
}

/// The OpenAI embeddings body for the upstream: the client's, with the upstream model id, and
/// float vectors asked for whatever the client wants (the edge encodes base64 itself).
pub fn embedding_body(req: &ChatRequest, emb: &EmbeddingRequest) -> Result<Value, GatewayError> {
    let mut body = serde_json::to_value(emb)
        .map_err(|e| GatewayError::Internal(format!("encoding embeddings request: {e}")))?;
    if let Some(o) = body.as_object_mut() {
        o.insert("model".into(), Value::String(req.model.clone()));
        o.insert("encoding_format".into(), Value::String("float".into()));
    }
    Ok(body)
}

/// Parses an OpenAI embeddings answer (float arrays, or base64 from an upstream that ignored
/// `encoding_format`), vectors in input order.
pub fn embedding_response(
    provider: &'static str,
    body: &[u8],
) -> Result<EmbeddingResponse, GatewayError> {
    #[derive(serde::Deserialize)]
    struct Wire {
        #[serde(default)]
        data: Vec<WireItem>,
        #[serde(default)]
        model: String,
        #[serde(default)]
        usage: Option<Usage>,
    }
    #[derive(serde::Deserialize)]
    struct WireItem {
        #[serde(default)]
        index: u32,
        embedding: Value,
    }
    let mut wire: Wire = parse_json(provider, body)?;
    wire.data.sort_by_key(|d| d.index);
    let bad = |reason: String| GatewayError::BadUpstreamResponse { provider, reason };
    let vectors = wire
        .data
        .into_iter()
        .map(|d| match d.embedding {
            Value::Array(items) => items
                .iter()
                .map(|x| x.as_f64().map(|f| f as f32))
                .collect::<Option<Vec<f32>>>()
                .ok_or_else(|| bad("an embedding with a non-number".into())),
            Value::String(b64) => {
                use base64::Engine as _;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64.as_bytes())
                    .map_err(|e| bad(format!("a base64 embedding that does not decode: {e}")))?;
                Ok(bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect())
            }
            _ => Err(bad("an embedding that is neither numbers nor base64".into())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let usage = wire.usage.map(|mut u| {
        u.completion_tokens = 0;
        u.total_tokens = u.prompt_tokens;
        u
    });
    Ok(EmbeddingResponse::new(wire.model, vectors, usage))
}

/// Fills what OpenAI's schema requires and some providers leave out.
pub fn normalise_response(resp: &mut ChatResponse) {
    if resp.id.is_empty() {
        resp.id = crate::types::completion_id();
    }
    resp.object = "chat.completion".into();
    if resp.created == 0 {
        resp.created = crate::types::unix_now();
    }
    for c in &mut resp.choices {
        c.message.role = "assistant".into();
        if let Some(f) = &c.finish_reason {
            c.finish_reason = Some(normalise_finish(f).to_owned());
        }
    }
    if let Some(u) = &mut resp.usage {
        u.fill_total();
    }
}

/// Maps non-OpenAI finish reasons (`eos`, `error`, ...) to OpenAI's set.
pub fn normalise_finish(reason: &str) -> &str {
    match reason {
        "stop" | "length" | "tool_calls" | "content_filter" | "function_call" => reason,
        "eos" | "end_turn" | "stop_sequence" => "stop",
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        _ => "stop",
    }
}

/// Decodes an OpenAI-format SSE stream, moving usage to one final usage-only chunk.
#[derive(Debug)]
pub struct OpenAiDecoder {
    provider: &'static str,
    usage: Option<Usage>,
    last: Option<(String, u64, String)>,
    saw_done: bool,
    saw_finish: bool,
}

impl OpenAiDecoder {
    /// A decoder for `provider`'s stream.
    pub fn new(provider: &'static str) -> Self {
        Self {
            provider,
            usage: None,
            last: None,
            saw_done: false,
            saw_finish: false,
        }
    }

    /// An error event in the stream (`data: {"error": {...}}`).
    fn in_band_error(&self, err: &Value) -> GatewayError {
        let message = err
            .get("message")
            .and_then(Value::as_str)
            .or_else(|| err.as_str())
            .map(super::summarise)
            .unwrap_or_else(|| "error event in stream".into());
        GatewayError::Upstream {
            provider: self.provider,
            status: http::StatusCode::BAD_GATEWAY,
            message,
            code: err.get("code").map(|c| {
                c.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| c.to_string())
            }),
            retry_after: None,
        }
    }

    fn flush_usage(&mut self, out: &mut VecDeque<ChatChunk>) {
        if let Some(u) = self.usage.take() {
            let (id, created, model) = self.last.clone().unwrap_or_default();
            out.push_back(ChatChunk::usage_only(&id, created, &model, u));
        }
    }
}

impl StreamDecoder for OpenAiDecoder {
    fn event(
        &mut self,
        event: SseEvent,
        out: &mut VecDeque<ChatChunk>,
    ) -> Result<(), GatewayError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            self.saw_done = true;
            self.flush_usage(out);
            return Ok(());
        }
        if self.saw_done || data.is_empty() {
            return Ok(());
        }
        // One parse on the hot path: every field of a chunk has a default, so an error event
        // parses too, with its `error` in `extra`. Only a body that is no chunk at all is read
        // again, as a plain value, for the error it may carry.
        let mut chunk: ChatChunk = match serde_json::from_str(data) {
            Ok(chunk) => chunk,
            Err(e) => {
                let value: Value =
                    serde_json::from_str(data).map_err(|_| GatewayError::BadUpstreamResponse {
                        provider: self.provider,
                        reason: format!("invalid stream event: {e}"),
                    })?;
                return Err(match value.get("error") {
                    Some(err) => self.in_band_error(err),
                    None => GatewayError::BadUpstreamResponse {
                        provider: self.provider,
                        reason: format!("unexpected stream chunk: {e}"),
                    },
                });
            }
        };
        if let Some(err) = chunk.extra.get("error") {
            return Err(self.in_band_error(err));
        }
        let groq_usage = chunk
            .extra
            .remove("x_groq")
            .and_then(|mut x| x.get_mut("usage").map(Value::take));
        chunk.object = "chat.completion.chunk".into();
        if let Some(u) = chunk
            .usage
            .take()
            .or_else(|| groq_usage.and_then(|u| serde_json::from_value(u).ok()))
        {
            let mut u: Usage = u;
            u.fill_total();
            self.usage = Some(u);
        }
        // Azure's first chunk has `id: ""` and `model: ""`: take the ids from a real one.
        if self.last.as_ref().is_none_or(|(id, ..)| id.is_empty()) {
            self.last = Some((chunk.id.clone(), chunk.created, chunk.model.clone()));
        }
        for c in &mut chunk.choices {
            if let Some(f) = &c.finish_reason {
                if f == "error" {
                    return Err(GatewayError::Upstream {
                        provider: self.provider,
                        status: http::StatusCode::BAD_GATEWAY,
                        message: "the upstream ended the stream with an error".into(),
                        code: None,
                        retry_after: None,
                    });
                }
                self.saw_finish = true;
                c.finish_reason = Some(normalise_finish(f).to_owned());
            }
        }
        // Azure's first chunk (prompt filter results) and usage-only chunks carry no delta.
        if !chunk.choices.is_empty() {
            out.push_back(chunk);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut VecDeque<ChatChunk>) -> Result<(), GatewayError> {
        if self.saw_done || self.saw_finish {
            self.flush_usage(out);
            return Ok(());
        }
        Err(GatewayError::Connect {
            provider: self.provider,
            reason: "stream ended without [DONE]".into(),
        })
    }
}

/// Builds one endpoint per key for an OpenAI-compatible provider.
/// Builds the endpoints of a configured provider: one per credential.
pub(crate) fn build(
    spec: &'static ProviderSpec,
    settings: &ProviderSettings,
    client: &HttpClient,
) -> Result<Vec<ProviderEndpoint>, String> {
    let quirks = quirks_of(spec.name);
    let keys: Vec<Option<Secret>> = if settings.keys.is_empty() {
        vec![None]
    } else {
        settings.keys.iter().cloned().map(Some).collect()
    };
    Ok(keys
        .into_iter()
        .map(|key| {
            let secrets = key.iter().cloned().collect();
            let adapter = OpenAiCompat::new(spec.name, &settings.base_url, key, quirks);
            ProviderEndpoint {
                service: DeploymentService::new(Translate::new(adapter, client.clone(), secrets)),
                extra_models: Vec::new(),
            }
        })
        .collect())
}

/// The quirks of a named provider.
pub fn quirks_of(name: &str) -> Quirks {
    match name {
        "mistral" => Quirks {
            max_tokens_only: true,
            stream_options: false,
            whitelist: MISTRAL_FIELDS,
            tool_choice_any: true,
            ..OPENAI_QUIRKS
        },
        "cerebras" => Quirks {
            max_tokens_only: true,
            no_developer_role: true,
            drop: &[
                "frequency_penalty",
                "presence_penalty",
                "logit_bias",
                "n",
                "logprobs",
                "top_logprobs",
            ],
            ..OPENAI_QUIRKS
        },
        "sambanova" => Quirks {
            max_tokens_only: true,
            flatten_text_content: true,
            ..OPENAI_QUIRKS
        },
        "fireworks" => Quirks {
            max_tokens_only: true,
            tool_choice_any: true,
            ..OPENAI_QUIRKS
        },
        "groq" => Quirks {
            drop: &["logit_bias", "top_logprobs"],
            ..OPENAI_QUIRKS
        },
        _ => OPENAI_QUIRKS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Message, Role};
    use serde_json::json;

    fn req(json: Value) -> ChatRequest {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn unknown_fields_pass_through_and_stream_asks_for_usage() {
        let a = OpenAiCompat::new(
            "groq",
            "http://x/openai/v1/",
            Some(Secret::new("gsk_test")),
            quirks_of("groq"),
        );
        let r = req(
            serde_json::json!({"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"seed":7,"brand_new_param":{"a":1}}),
        );
        let up = a.request(&r).unwrap();
        assert_eq!(up.uri(), "http://x/openai/v1/chat/completions");
        assert_eq!(up.headers()["authorization"], "Bearer gsk_test");
        let body = a.body(&r).unwrap();
        assert_eq!(body["brand_new_param"]["a"], 1);
        assert_eq!(body["seed"], 7);
        assert_eq!(body["stream_options"]["include_usage"], true);
    }

    #[test]
    fn one_pass_body_matches_the_value_path() {
        let bodies = [
            serde_json::json!({"model":"m","messages":[{"role":"user","content":"hi"}]}),
            serde_json::json!({"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}),
            serde_json::json!({"model":"m","messages":[{"role":"developer","content":"d"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],"stream":true,"stream_options":{"include_usage":false,"x":1},"max_completion_tokens":9,"max_tokens":4,"temperature":0.5,"top_p":1.0,"stop":["s"],"n":1,"seed":3,"tool_choice":{"type":"function","function":{"name":"f"}},"response_format":{"type":"json_object"},"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"brand_new":{"a":[1,null]}}),
            serde_json::json!({"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}],"refusal":null},{"role":"tool","tool_call_id":"c","content":"r"}],"stream":false,"stream_options":{"include_usage":true},"max_completion_tokens":7,"tool_choice":"required"}),
            serde_json::json!({"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}),
            serde_json::json!({"model":"m","messages":[{"role":"user","content":"hi"}],"n":2,"logprobs":true,"top_logprobs":2,"logit_bias":{"1":2}}),
        ];
        for p in PROVIDERS_WITH_QUIRKS {
            let q = quirks_of(p);
            let a = OpenAiCompat::new(p, "http://x/v1", None, q);
            for b in &bodies {
                let r = req(b.clone());
                assert_eq!(
                    a.body(&r).unwrap(),
                    openai_body(&r, &q).unwrap(),
                    "{p}: {b}"
                );
            }
        }
        // The plain OpenAI shape takes the one-pass path, even where fields could be dropped.
        let r = req(bodies[0].clone());
        assert!(FastBody::new(&r, &quirks_of("groq")).is_some());
        assert!(FastBody::new(&r, &quirks_of("cerebras")).is_some());
        let r = req(serde_json::json!({"model":"m","messages":[],"logit_bias":{}}));
        assert!(FastBody::new(&r, &quirks_of("groq")).is_none());
        assert!(a_body_lacks(&r, "groq", "logit_bias"));
    }

    fn a_body_lacks(r: &ChatRequest, p: &str, key: &str) -> bool {
        let a = OpenAiCompat::new("x", "http://x/v1", None, quirks_of(p));
        a.body(r).unwrap().get(key).is_none()
    }

    const PROVIDERS_WITH_QUIRKS: &[&str] = &[
        "openai",
        "groq",
        "together",
        "fireworks",
        "cerebras",
        "sambanova",
        "mistral",
        "openrouter",
        "deepseek",
        "xai",
        "ollama",
    ];

    #[test]
    fn embeddings_ask_for_floats_and_read_floats_or_base64_in_input_order() {
        let emb: EmbeddingRequest = serde_json::from_value(json!({
            "model": "openai/text-embedding-3-small", "input": ["a", "b"],
            "encoding_format": "base64", "dimensions": 2, "user": "u"
        }))
        .unwrap();
        let r = req(json!({"model": "text-embedding-3-small", "messages": []}));
        assert_eq!(
            embedding_body(&r, &emb).unwrap(),
            json!({"model": "text-embedding-3-small", "input": ["a", "b"], "encoding_format": "float",
                   "dimensions": 2, "user": "u"})
        );
        // [1.0, -2.0] as little-endian f32, base64.
        let resp = embedding_response(
            "openai",
            br#"{"object":"list","model":"m","data":[
                {"object":"embedding","index":1,"embedding":"AACAPwAAAMA="},
                {"object":"embedding","index":0,"embedding":[0.5,0.25]}],
               "usage":{"prompt_tokens":4,"total_tokens":4}}"#,
        )
        .unwrap();
        assert_eq!(resp.data[0].embedding, [0.5, 0.25]);
        assert_eq!(resp.data[1].embedding, [1.0, -2.0]);
        assert_eq!(resp.usage.unwrap().prompt_tokens, 4);
        assert!(embedding_response("openai", br#"{"data":[{"embedding":{}}]}"#).is_err());
    }

    #[test]
    fn mistral_gets_a_whitelist_and_max_tokens() {
        let a = OpenAiCompat::new("mistral", "http://x/v1", None, quirks_of("mistral"));
        let mut r = req(
            serde_json::json!({"model":"m","messages":[],"max_completion_tokens":9,"metadata":{"a":1},"seed":3,"tool_choice":"required","stream":true,"stream_options":{"include_usage":true}}),
        );
        r.messages.push(Message::text(Role::User, "x"));
        let body = a.body(&r).unwrap();
        assert_eq!(body["max_tokens"], 9);
        assert!(body.get("max_completion_tokens").is_none());
        assert!(body.get("metadata").is_none());
        assert!(body.get("stream_options").is_none());
        assert_eq!(body["random_seed"], 3);
        assert_eq!(body["tool_choice"], "any");
    }

    #[test]
    fn decoder_moves_groq_usage_to_a_final_chunk() {
        let mut d = OpenAiDecoder::new("groq");
        let mut out = VecDeque::new();
        let ev = |s: &str| SseEvent {
            event: None,
            data: s.into(),
        };
        d.event(ev(r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}"#), &mut out).unwrap();
        d.event(ev(r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"x_groq":{"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}}"#), &mut out).unwrap();
        d.event(ev("[DONE]"), &mut out).unwrap();
        d.finish(&mut out).unwrap();
        assert_eq!(out.len(), 3);
        assert!(out[1].usage.is_none() && out[1].extra.get("x_groq").is_none());
        assert!(out[2].is_usage_only());
        assert_eq!(out[2].usage.as_ref().unwrap().total_tokens, 4);
    }

    #[test]
    fn truncated_stream_is_an_error_and_in_band_error_too() {
        let mut d = OpenAiDecoder::new("openai");
        let mut out = VecDeque::new();
        d.event(
            SseEvent {
                event: None,
                data: r#"{"id":"c","choices":[{"index":0,"delta":{"content":"a"}}]}"#.into(),
            },
            &mut out,
        )
        .unwrap();
        assert!(d.finish(&mut out).is_err());
        let e = d.event(
            SseEvent {
                event: None,
                data: r#"{"error":{"message":"boom","type":"server_error"}}"#.into(),
            },
            &mut out,
        );
        assert!(e.is_err());
    }
}
