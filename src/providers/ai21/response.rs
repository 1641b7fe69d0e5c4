//! AI21: wire reply -> canonical response.

use serde_json::Value;

use super::PROVIDER;
use crate::GatewayError;
use crate::providers::openai_compat::normalise_response;
use crate::providers::parse_json;
use crate::types::ChatResponse;

/// Fills what AI21 leaves out of an answer.
pub(super) fn complete(model: &str, body: &[u8]) -> Result<ChatResponse, GatewayError> {
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
