//! The Anthropic Messages API adapter: canonical OpenAI chat requests become `POST /v1/messages`
//! bodies, and Anthropic's messages, named-event streams and error bodies come back as canonical
//! responses, chunks and [`GatewayError`]s, per Anthropic's Messages API reference.
//!
//! The translation: system and developer messages join into the
//! top-level `system`; tool results become `tool_result` blocks in a `user` turn and assistant
//! tool calls `tool_use` blocks with parsed input; consecutive turns of one role are merged, as
//! the API wants strictly alternating roles; `max_tokens`, which Anthropic requires, defaults to
//! [`DEFAULT_MAX_TOKENS`]. `response_format: json_schema` forces a single `json_output` tool
//! whose input is handed back as the message text; `json_object` adds a system instruction.
//!
//! # Example
//! ```
//! use proxygate::types::Secret;
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

use http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::{NATIVE_KEY, ProviderAdapter, UpstreamRequest, json_post, parse_json, with_json};
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
#[cfg(test)]
mod tests;
pub mod wire;

pub use error::map_error;
use error::*;
use request::*;
pub use request::{MIN_THINKING_BUDGET, effort_thinking, request_body, thinking_budget};
use response::*;
pub use stream::AnthropicDecoder;
use wire::WireMessage;
pub use wire::finish_reason;

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

/// Builds the endpoints of a configured provider: one per credential.
pub(crate) fn build(
    spec: &'static ProviderSpec,
    settings: &ProviderSettings,
    client: &HttpClient,
) -> Result<Vec<ProviderEndpoint>, String> {
    Ok(super::endpoint_per_key(
        spec,
        settings,
        client,
        Anthropic::new,
    ))
}
