//! OpenAI-compatible: canonical request -> wire request.

use serde_json::{Map, Value};

use super::{OpenAiCompat, Quirks};
use crate::GatewayError;
use crate::types::{ChatRequest, EmbeddingRequest};

/// The fields of [`ChatRequest`] that it serialises itself, in its order.
pub(super) const TYPED_FIELDS: &[&str] = &[
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
pub(super) struct FastBody<'a> {
    pub(super) model: &'a str,
    pub(super) messages: &'a [crate::types::Message],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) stream_options: Option<std::borrow::Cow<'a, crate::types::StreamOptions>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) max_completion_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) stop: Option<&'a crate::types::Stop>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) n: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tools: Option<&'a Vec<crate::types::Tool>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tool_choice: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) response_format: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) reasoning_effort: Option<crate::types::ReasoningEffort>,
    #[serde(flatten)]
    pub(super) extra: &'a Map<String, Value>,
}

// === impl FastBody ===

impl<'a> FastBody<'a> {
    /// `None` when `req` needs [`openai_body`]: a whitelist, fields present to drop, flattening,
    /// `tool_choice` mapping, `developer` roles to map, message fields that are `null`, or
    /// an `extra` key that shadows a typed field.
    pub(super) fn new(req: &'a ChatRequest, q: &Quirks) -> Option<Self> {
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
            reasoning_effort: req.reasoning_effort,
            extra: &req.extra,
        })
    }
}

impl FastBody<'_> {
    /// Whether this body says what `req` says: the quirks changed neither the output caps nor
    /// `stream_options`.
    fn keeps(&self, req: &ChatRequest) -> bool {
        use std::borrow::Cow;
        self.max_tokens == req.max_tokens
            && self.max_completion_tokens == req.max_completion_tokens
            && matches!(
                (&self.stream_options, &req.stream_options),
                (None, None) | (Some(Cow::Borrowed(_)), Some(_))
            )
    }
}

/// `raw`, a JSON object that parsed as a chat request, with the value of its top-level
/// `"model"` key replaced by `model`. `None` when the object has no such key written plainly
/// with a string value, or holds a `null` anywhere: the typed request leaves fields that are
/// `null` out, and so must the body sent for it.
pub(super) fn splice_model(raw: &[u8], model: &str) -> Option<Vec<u8>> {
    let (mut depth, mut i) = (0usize, 0usize);
    let mut span = None;
    // After a top-level `"model":`, the next value is the one to replace.
    let mut model_value_next = false;
    while let Some(&b) = raw.get(i) {
        match b {
            b'"' => {
                let start = i;
                i += 1;
                // To the closing quote, over escapes.
                loop {
                    i += memchr::memchr2(b'"', b'\\', raw.get(i..)?)?;
                    if raw[i] == b'"' {
                        break;
                    }
                    i += 2;
                }
                let end = i + 1;
                if depth == 1 {
                    if model_value_next {
                        span = Some((start, end));
                        model_value_next = false;
                    } else if &raw[start..end] == b"\"model\"" {
                        let next =
                            end + raw[end..].iter().position(|c| !c.is_ascii_whitespace())?;
                        if raw[next] == b':' {
                            model_value_next = true;
                            i = next;
                        }
                    }
                }
            }
            b'n' => return None,
            b'{' | b'[' => {
                depth += 1;
                model_value_next = false;
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b':' => {}
            c if c.is_ascii_whitespace() => {}
            _ => model_value_next = false,
        }
        i += 1;
    }
    let (start, end) = span?;
    let mut out = Vec::with_capacity(raw.len() - (end - start) + model.len() + 2);
    out.extend_from_slice(&raw[..start]);
    serde_json::to_writer(&mut out, model).ok()?;
    out.extend_from_slice(&raw[end..]);
    Some(out)
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

impl OpenAiCompat {
    /// The upstream body as bytes: one serialisation pass when no quirk needs the `Value`
    /// tree ([`FastBody`]), else [`openai_body`] and `to_vec`. Both give the same JSON.
    pub(super) fn body_bytes(&self, req: &ChatRequest) -> Result<Vec<u8>, GatewayError> {
        let req = &*self.adjusted(req);
        let bytes = match FastBody::new(req, &self.quirks) {
            Some(fast) => {
                // The client's own bytes, when they say what this body would say.
                if let Some(raw) = &req.ctx.verbatim
                    && fast.keeps(req)
                    && let Some(body) = splice_model(raw, &req.model)
                {
                    return Ok(body);
                }
                serde_json::to_vec(&fast)
            }
            None => serde_json::to_vec(&openai_body(req, &self.quirks)?),
        };
        bytes.map_err(|e| GatewayError::Internal(format!("encoding request: {e}")))
    }
}
