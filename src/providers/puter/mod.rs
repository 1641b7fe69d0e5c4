//! Puter's drivers API (`POST {PUTER_BASE_URL}/drivers/call`, interface
//! `puter-chat-completion`, method `complete`): the keyless models, paid for by the
//! Puter user whose token is `PUTER_AUTH_TOKEN` (Puter's drivers API documentation).
//!
//! The OpenAI request goes into `args` (messages pass through: Puter normalises OpenAI-style
//! messages itself), the token both in the body's `auth_token` and as a Bearer header, as
//! puter.js does. Answers are provider-shaped under `result`; streams are NDJSON lines
//! (`text`, `tool_use` whole, a last `usage`, or `error`) with no finish reason, so it is
//! inferred. Failures come three ways: v2 real statuses with `{"error","message","code"}`
//! (an upstream outage is a 400 `upstream_*`, treated as a retryable 502), legacy v1 HTTP 200
//! `{"success":false,"error":{...}}`, and `error` lines in a stream.

use std::time::Duration;

use http::StatusCode;
use serde_json::Value;

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

use error::{map_error, v1_failure};
use response::chat_response;
pub use stream::PuterDecoder;

const PROVIDER: &str = "puter";
const ENV_TOKEN: &str = "PUTER_AUTH_TOKEN";
/// Puter's per-user rate window; its 429s carry no `retry-after`.
const RATE_WINDOW: Duration = Duration::from_secs(10);

/// Builds the endpoints of a configured provider: one per credential.
pub(crate) fn build(
    spec: &'static ProviderSpec,
    settings: &ProviderSettings,
    client: &HttpClient,
) -> Result<Vec<ProviderEndpoint>, String> {
    Ok(super::endpoint_per_key(spec, settings, client, Puter::new))
}

/// The Puter adapter for one user token.
#[derive(Debug)]
pub struct Puter {
    url: String,
    token: Secret,
}

// === impl Puter ===

impl Puter {
    /// An adapter posting to `{base_url}/drivers/call`.
    pub fn new(base_url: &str, token: Secret) -> Self {
        Self {
            url: format!("{}/drivers/call", base_url.trim_end_matches('/')),
            token,
        }
    }
}

impl ProviderAdapter for Puter {
    type Decoder = PuterDecoder;

    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn framing(&self) -> Framing {
        Framing::NdJson
    }

    fn request(&self, req: &ChatRequest) -> Result<UpstreamRequest, GatewayError> {
        let body = self.body(req)?;
        let builder =
            json_post(&self.url)?.header(http::header::AUTHORIZATION, self.token.bearer()?);
        with_json(builder, &body)
    }

    fn response(&self, req: &ChatRequest, body: &[u8]) -> Result<ChatResponse, GatewayError> {
        chat_response(req, body)
    }

    fn decoder(&self, req: &ChatRequest) -> PuterDecoder {
        PuterDecoder {
            id: crate::types::completion_id(),
            created: crate::types::unix_now(),
            model: req.model.clone(),
            tools: 0,
            ended: false,
        }
    }

    fn error(&self, status: StatusCode, headers: &http::HeaderMap, body: &[u8]) -> GatewayError {
        map_error(status, headers, body)
    }

    fn success_is_error(&self, body: &[u8]) -> Option<GatewayError> {
        let v: Value = serde_json::from_slice(body.trim_ascii_start()).ok()?;
        v1_failure(&v)
    }
}

#[cfg(test)]
mod tests;
