//! OpenAI-compatible: wire reply -> canonical response.

use serde_json::Value;

use crate::GatewayError;
use crate::providers::parse_json;
use crate::types::{ChatResponse, EmbeddingResponse, Usage};

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
        if c.message.reasoning_content.is_none() {
            c.message.reasoning_content = reasoning_text(&mut c.message.extra);
        }
        if let Some(f) = &c.finish_reason {
            c.finish_reason = Some(normalise_finish(f).to_owned());
        }
    }
    if let Some(u) = &mut resp.usage {
        u.fill_total();
        u.adopt_provider_meters();
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

/// The reasoning text under `reasoning`, the name OpenRouter and some vLLM and Ollama versions
/// use for what DeepSeek calls `reasoning_content`; taken out of `extra` so it is sent once.
pub(super) fn reasoning_text(extra: &mut serde_json::Map<String, Value>) -> Option<String> {
    match extra.get("reasoning") {
        Some(Value::String(_)) => match extra.remove("reasoning") {
            Some(Value::String(s)) if !s.is_empty() => Some(s),
            _ => None,
        },
        _ => None,
    }
}
