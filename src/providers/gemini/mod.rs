//! The Google Gemini (AI Studio, "generativelanguage") adapter: canonical OpenAI chat requests
//! become `generateContent` / `streamGenerateContent?alt=sse` bodies, and Gemini's responses,
//! SSE chunks and `google.rpc` errors come back as canonical responses, chunks and
//! [`GatewayError`]s, per Google's Gemini API reference.
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
//! use proxygate::types::Secret;
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

use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Framing, ProviderAdapter, UpstreamRequest, embedding_texts, json_post, parse_json, with_json,
};
use super::{ProviderEndpoint, ProviderSettings};
use crate::GatewayError;
use crate::catalog::ProviderSpec;
use crate::client::HttpClient;
use crate::types::Secret;
use crate::types::{ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, Usage};

mod error;
mod request;
mod response;
mod stream;
#[cfg(test)]
mod tests;

pub use error::map_error;
use error::*;
pub use request::{
    clean_schema, request_body, thinking_budget, thinking_config, uses_thinking_level,
};
pub use response::finish_reason;
use response::*;
pub use stream::GeminiDecoder;

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

/// Builds the endpoints of a configured provider: one per credential.
pub(crate) fn build(
    spec: &'static ProviderSpec,
    settings: &ProviderSettings,
    client: &HttpClient,
) -> Result<Vec<ProviderEndpoint>, String> {
    Ok(super::endpoint_per_key(spec, settings, client, Gemini::new))
}
