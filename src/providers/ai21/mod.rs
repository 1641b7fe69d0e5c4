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

use super::openai_compat::OpenAiDecoder;
use super::{Framing, ProviderAdapter, UpstreamRequest, json_post, with_json};
use super::{ProviderEndpoint, ProviderSettings};
use crate::GatewayError;
use crate::catalog::ProviderSpec;
use crate::client::HttpClient;
use crate::types::Secret;
use crate::types::{ChatRequest, ChatResponse};

mod error;
mod request;
mod response;
mod stream;

use error::map_error;
use request::replays;
use response::complete;
pub use stream::Ai21Decoder;

const PROVIDER: &str = "ai21";

/// Builds the endpoints of a configured provider: one per credential.
pub(crate) fn build(
    spec: &'static ProviderSpec,
    settings: &ProviderSettings,
    client: &HttpClient,
) -> Result<Vec<ProviderEndpoint>, String> {
    Ok(super::endpoint_per_key(spec, settings, client, Ai21::new))
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
        map_error(status, headers, body)
    }
}

#[cfg(test)]
mod tests;
