//! JSON read from an upstream's body, and JSON written straight into a buffer by the hot
//! encoders (the usage journal's line, the chat completion), which know their fields: names as
//! literals, each value through `serde_json` on its own, the same bytes the serializer writes
//! for the whole value without its generic path.

use serde::Serialize;

use crate::GatewayError;

/// Parses JSON from an upstream body, tolerating leading whitespace (DeepSeek keep-alives).
pub fn parse_json<T: serde::de::DeserializeOwned>(
    provider: &'static str,
    body: &[u8],
) -> Result<T, GatewayError> {
    let body = body.trim_ascii_start();
    // UTF-8 checked once for the whole body instead of string by string.
    match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    }
    .map_err(|e| GatewayError::BadUpstreamResponse {
        provider,
        reason: format!("invalid JSON: {e}"),
    })
}

/// `prefix` (the punctuation and the field's name), then `value` as `serde_json` writes it.
pub(crate) fn field(
    out: &mut Vec<u8>,
    prefix: &[u8],
    value: &(impl Serialize + ?Sized),
) -> serde_json::Result<()> {
    out.extend_from_slice(prefix);
    serde_json::to_writer(&mut *out, value)
}
