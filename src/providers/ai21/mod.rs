//! AI21 Jamba chat completions (`POST {AI21_BASE_URL}/studio/v1/chat/completions`,
//! `Authorization: Bearer`): OpenAI's format with a restricted parameter list (AI21's Jamba chat API reference).
//!
//! The body is the OpenAI one cut down to what AI21 knows: `max_tokens` only, string content
//! (text parts joined, images refused), `json_object` instead of `json_schema`, no
//! `stream_options` (AI21 puts usage on the final chunk by itself). AI21 streams carry no tool
//! calls, so a streaming request with tools is sent without `stream` and its complete answer
//! is replayed as a stream. AI21 answers leave out `object`, `created` and `model`; they are
//! filled in on the way back.

use http::StatusCode;
use serde_json::Value;

use super::openai_compat::{OpenAiDecoder, Quirks, normalise_response, openai_body};
use super::{
    Framing, ProviderAdapter, UpstreamRequest, json_post, openai_style_error, parse_json,
    summarise, with_json,
};
use super::{ProviderEndpoint, ProviderSettings};
use crate::GatewayError;
use crate::catalog::ProviderSpec;
use crate::client::HttpClient;
use crate::types::Secret;
use crate::types::{ChatRequest, ChatResponse};

mod stream;

pub use stream::Ai21Decoder;

const PROVIDER: &str = "ai21";

/// The request fields AI21 knows (its SDK, plus `seed` and `tool_choice` as LiteLLM sends).
const FIELDS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "n",
    "stream",
    "tools",
    "tool_choice",
    "response_format",
    "documents",
    "seed",
];

const QUIRKS: Quirks = Quirks {
    max_tokens_only: true,
    no_developer_role: true,
    stream_options: false,
    whitelist: FIELDS,
    drop: &[],
    flatten_text_content: true,
    tool_choice_any: false,
};

/// Builds the endpoints of a configured provider: one per credential.
pub(crate) fn build(
    _spec: &'static ProviderSpec,
    settings: &ProviderSettings,
    client: &HttpClient,
) -> Result<Vec<ProviderEndpoint>, String> {
    Ok(super::endpoint_per_key(settings, client, Ai21::new))
}

/// Whether a streaming request is sent as a complete one and replayed.
fn replays(req: &ChatRequest) -> bool {
    req.is_stream() && req.tools.as_ref().is_some_and(|t| !t.is_empty())
}

/// The AI21 adapter for one key.
#[derive(Debug)]
pub struct Ai21 {
    url: String,
    key: Secret,
}

// === impl Ai21 ===

impl Ai21 {
    /// An adapter posting to `{base_url}/studio/v1/chat/completions`.
    pub fn new(base_url: &str, key: Secret) -> Self {
        Self {
            url: format!(
                "{}/studio/v1/chat/completions",
                base_url.trim_end_matches('/')
            ),
            key,
        }
    }

    /// The AI21 body for `req`.
    pub fn body(&self, req: &ChatRequest) -> Result<Value, GatewayError> {
        let mut body = openai_body(req, &QUIRKS)?;
        if let Some(Value::Array(messages)) = body.get_mut("messages") {
            for (i, m) in messages.iter_mut().enumerate() {
                let Value::Object(m) = m else { continue };
                if let Some(Value::Array(parts)) = m.get("content") {
                    // Text-only arrays were joined already: what is left holds something else.
                    let kind = parts
                        .iter()
                        .filter_map(|p| p.get("type").and_then(Value::as_str))
                        .find(|k| *k != "text")
                        .unwrap_or("non-text");
                    return Err(GatewayError::invalid(
                        format!("messages[{i}].content"),
                        format!("ai21 takes text only; remove the `{kind}` parts"),
                    ));
                }
                m.retain(|k, _| {
                    matches!(
                        k.as_str(),
                        "role" | "content" | "tool_calls" | "tool_call_id"
                    )
                });
            }
        }
        if let Some(rf) = body.get_mut("response_format")
            && rf.get("type").and_then(Value::as_str) == Some("json_schema")
        {
            *rf = serde_json::json!({"type": "json_object"});
        }
        if replays(req) {
            body["stream"] = Value::Bool(false);
        }
        Ok(body)
    }
}

/// Fills what AI21 leaves out of an answer.
fn complete(model: &str, body: &[u8]) -> Result<ChatResponse, GatewayError> {
    let mut v: Value = parse_json(PROVIDER, body)?;
    if let Value::Object(o) = &mut v {
        o.entry("id")
            .or_insert_with(|| Value::String(String::new()));
    }
    let mut resp: ChatResponse =
        serde_json::from_value(v).map_err(|e| GatewayError::BadUpstreamResponse {
            provider: PROVIDER,
            reason: format!("unexpected answer: {e}"),
        })?;
    normalise_response(&mut resp);
    if resp.model.is_empty() {
        resp.model = model.to_owned();
    }
    Ok(resp)
}

impl ProviderAdapter for Ai21 {
    type Decoder = Ai21Decoder;

    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn stream_framing(&self, req: &ChatRequest) -> Framing {
        if replays(req) {
            Framing::Whole
        } else {
            Framing::Sse
        }
    }

    fn request(&self, req: &ChatRequest) -> Result<UpstreamRequest, GatewayError> {
        let body = self.body(req)?;
        let mut builder =
            json_post(&self.url)?.header(http::header::AUTHORIZATION, self.key.bearer()?);
        if req.is_stream() && !replays(req) {
            builder = builder.header(http::header::ACCEPT, "text/event-stream");
        }
        with_json(builder, &body)
    }

    fn response(&self, req: &ChatRequest, body: &[u8]) -> Result<ChatResponse, GatewayError> {
        complete(&req.model, body)
    }

    fn decoder(&self, req: &ChatRequest) -> Ai21Decoder {
        Ai21Decoder {
            inner: OpenAiDecoder::new(PROVIDER),
            replays: replays(req),
            model: req.model.clone(),
            created: crate::types::unix_now(),
            replayed: false,
        }
    }

    fn error(&self, status: StatusCode, headers: &http::HeaderMap, body: &[u8]) -> GatewayError {
        let mut err = openai_style_error(PROVIDER, status, headers, body);
        // FastAPI-style `{"detail": ...}` bodies carry the message the generic reader misses.
        if let Ok(v) = serde_json::from_slice::<Value>(body.trim_ascii_start())
            && let Some(detail) = v.get("detail")
            && let GatewayError::Upstream { message, .. } = &mut err
        {
            *message = summarise(&match detail {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        }
        err
    }
}

#[cfg(test)]
mod tests;
