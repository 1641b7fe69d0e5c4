//! Cohere v2 chat (`POST {COHERE_BASE_URL}/v2/chat`, `Authorization: Bearer`), translated to
//! and from the canonical OpenAI types, per Cohere's v2 chat API reference.
//!
//! The request is rebuilt field by field, because Cohere names things differently (`p`,
//! `stop_sequences`, upper-case `tool_choice`, the schema directly under
//! `response_format.json_schema`, tool results as `document` parts) and rejects what it does
//! not know. The stream is SSE whose `data` objects carry a `type`: text deltas, tool calls
//! started and continued by index, and a `message-end` with the finish reason and usage, or an
//! `ERROR` finish that is an upstream failure after a 200.

use http::StatusCode;
use serde_json::json;

use super::{
    ProviderAdapter, UpstreamRequest, embedding_texts, json_post, openai_style_error, with_json,
};
use super::{ProviderEndpoint, ProviderSettings};
use crate::GatewayError;
use crate::catalog::ProviderSpec;
use crate::client::HttpClient;
use crate::types::Secret;
use crate::types::{ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse};

mod error;
mod request;
mod response;
mod stream;
#[cfg(test)]
mod tests;

use response::*;
pub use stream::CohereDecoder;

const PROVIDER: &str = "cohere";

/// Builds the endpoints of a configured provider: one per credential.
pub(crate) fn build(
    spec: &'static ProviderSpec,
    settings: &ProviderSettings,
    client: &HttpClient,
) -> Result<Vec<ProviderEndpoint>, String> {
    Ok(super::endpoint_per_key(spec, settings, client, Cohere::new))
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
        embedding_response(req, body)
    }

    fn response(&self, req: &ChatRequest, body: &[u8]) -> Result<ChatResponse, GatewayError> {
        chat_response(req, body)
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
