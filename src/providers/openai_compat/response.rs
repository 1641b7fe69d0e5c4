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

/// The usage meters of `body` (what the bill reads) when it is a chat completion that the
/// canonical path would hand an OpenAI chat client with the same fields and values, so its
/// bytes can go to that client unchanged; `None` when anything would change or is not plain,
/// and the canonical path decides (it also reports what is malformed).
///
/// What passes: UTF-8 without a `\u` escape (so no key hides from a byte scan), nothing after
/// the object, no key twice; a non-empty `id`, `object` `chat.completion`, a non-zero
/// `created`, a `model` string, `choices`, and a `usage` with prompt or completion tokens that
/// [`normalise_response`] leaves as it is. Each choice has an `index`, `logprobs` and a
/// `finish_reason` of OpenAI's set or null; its message has the role `assistant`, a string or
/// null `content` and `refusal`, `reasoning_content` only as a string, and neither tool calls,
/// thinking blocks nor a `reasoning` field. `logprobs`, `refusal` and `finish_reason` must be
/// present because the canonical form writes them as null when they are absent, as OpenAI's
/// own API does. Fields the canonical form keeps as extras pass with any value.
pub fn passthrough_usage(body: &[u8]) -> Option<Usage> {
    // Upstreams that leave out a field the canonical form adds are told apart by a scan, so
    // their answers do not pay for a check that fails at the end of the first choice.
    // Searchers built once: building one is most of the cost of a search this short.
    static SCAN: std::sync::LazyLock<[memchr::memmem::Finder<'static>; 3]> =
        std::sync::LazyLock::new(|| {
            [b"\"refusal\"".as_slice(), b"\"logprobs\"", b"\\u"].map(memchr::memmem::Finder::new)
        });
    let [refusal, logprobs, escape] = &*SCAN;
    if refusal.find(body).is_none() || logprobs.find(body).is_none() || escape.find(body).is_some()
    {
        return None;
    }
    let text = std::str::from_utf8(body).ok()?;
    let mut de = serde_json::Deserializer::from_str(text);
    let Plain(usage) = serde::Deserialize::deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(usage)
}

/// A completion that passed [`passthrough_usage`]'s checks, with its usage.
struct Plain(Usage);

/// The error that ends a check (its text is never shown).
fn refuse<E: serde::de::Error>() -> E {
    E::custom("not plain")
}

/// Marks `seen` for a key, refusing a second one.
fn once<E: serde::de::Error>(seen: &mut bool) -> Result<(), E> {
    if std::mem::replace(seen, true) {
        return Err(refuse());
    }
    Ok(())
}

impl<'de> serde::Deserialize<'de> for Plain {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Plain;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a chat completion")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Plain, A::Error> {
                let (mut id, mut object, mut created, mut model, mut choices) =
                    (false, false, false, false, false);
                let mut usage: Option<Usage> = None;
                while let Some(key) = m.next_key::<&str>()? {
                    match key {
                        "id" => {
                            once(&mut id)?;
                            if m.next_value::<&str>()?.is_empty() {
                                return Err(refuse());
                            }
                        }
                        "object" => {
                            once(&mut object)?;
                            if m.next_value::<&str>()? != "chat.completion" {
                                return Err(refuse());
                            }
                        }
                        "created" => {
                            once(&mut created)?;
                            if m.next_value::<u64>()? == 0 {
                                return Err(refuse());
                            }
                        }
                        "model" => {
                            once(&mut model)?;
                            m.next_value::<&str>()?;
                        }
                        "choices" => {
                            once(&mut choices)?;
                            m.next_value::<PlainChoices>()?;
                        }
                        "usage" => {
                            if usage.is_some() {
                                return Err(refuse());
                            }
                            usage = Some(m.next_value::<PlainUsage>()?.0);
                        }
                        // Kept by the canonical form as an extra, written back as it is.
                        _ => {
                            m.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                match usage {
                    Some(u) if id && object && created && model && choices => Ok(Plain(u)),
                    _ => Err(refuse()),
                }
            }
        }
        d.deserialize_map(V)
    }
}

/// A `usage` that the canonical form writes back as it is, read into the meters the bill
/// needs (the upstream's other usage fields stay in the body, not here): prompt, completion
/// and total tokens all present as integers, some tokens, a non-zero total, and details as
/// objects with their typed meters present (a null `prompt_tokens_details`, a missing
/// `cached_tokens` or a zero cache write would be written otherwise), and no DeepSeek cache
/// meter that [`Usage::adopt_provider_meters`] would move.
struct PlainUsage(Usage);

impl<'de> serde::Deserialize<'de> for PlainUsage {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = PlainUsage;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("usage")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<PlainUsage, A::Error> {
                let mut u = Usage::default();
                let (mut prompt, mut completion, mut total) = (false, false, false);
                let mut hit = 0;
                while let Some(key) = m.next_key::<&str>()? {
                    match key {
                        "prompt_tokens" => {
                            once(&mut prompt)?;
                            u.prompt_tokens = m.next_value()?;
                        }
                        "completion_tokens" => {
                            once(&mut completion)?;
                            u.completion_tokens = m.next_value()?;
                        }
                        "total_tokens" => {
                            once(&mut total)?;
                            u.total_tokens = m.next_value()?;
                        }
                        "prompt_tokens_details" => {
                            if u.prompt_tokens_details.is_some() {
                                return Err(refuse());
                            }
                            u.prompt_tokens_details = Some(m.next_value::<PlainPromptDetails>()?.0);
                        }
                        "completion_tokens_details" => {
                            if u.completion_tokens_details.is_some() {
                                return Err(refuse());
                            }
                            u.completion_tokens_details =
                                Some(crate::types::CompletionTokensDetails {
                                    reasoning_tokens: m.next_value::<PlainReasoning>()?.0,
                                    ..Default::default()
                                });
                        }
                        "prompt_cache_hit_tokens" => {
                            hit = m.next_value::<Value>()?.as_u64().unwrap_or(0);
                        }
                        // Kept by the canonical form as an extra, written back as it is.
                        _ => {
                            m.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                let some_tokens = u.prompt_tokens > 0 || u.completion_tokens > 0;
                if !(prompt && completion && total && some_tokens && u.total_tokens > 0)
                    || (hit > 0 && u.cached_tokens() == 0)
                {
                    return Err(refuse());
                }
                Ok(PlainUsage(u))
            }
        }
        d.deserialize_map(V)
    }
}

/// `prompt_tokens_details` with `cached_tokens`, and cache writes only when non-zero.
struct PlainPromptDetails(crate::types::PromptTokensDetails);

impl<'de> serde::Deserialize<'de> for PlainPromptDetails {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = PlainPromptDetails;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("prompt token details")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<PlainPromptDetails, A::Error> {
                let mut details = crate::types::PromptTokensDetails::default();
                let (mut cached, mut write, mut write_1h) = (false, false, false);
                while let Some(key) = m.next_key::<&str>()? {
                    match key {
                        "cached_tokens" => {
                            once(&mut cached)?;
                            details.cached_tokens = m.next_value()?;
                        }
                        "cache_write_tokens" => {
                            once(&mut write)?;
                            details.cache_write_tokens = m.next_value()?;
                            if details.cache_write_tokens == 0 {
                                return Err(refuse());
                            }
                        }
                        "cache_write_1h_tokens" => {
                            once(&mut write_1h)?;
                            details.cache_write_1h_tokens = m.next_value()?;
                            if details.cache_write_1h_tokens == 0 {
                                return Err(refuse());
                            }
                        }
                        _ => {
                            m.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                if cached {
                    Ok(PlainPromptDetails(details))
                } else {
                    Err(refuse())
                }
            }
        }
        d.deserialize_map(V)
    }
}

/// `completion_tokens_details` with `reasoning_tokens`: its value.
struct PlainReasoning(u64);

impl<'de> serde::Deserialize<'de> for PlainReasoning {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = PlainReasoning;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("completion token details")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<PlainReasoning, A::Error> {
                let mut reasoning = None;
                while let Some(key) = m.next_key::<&str>()? {
                    if key == "reasoning_tokens" {
                        if reasoning.is_some() {
                            return Err(refuse());
                        }
                        reasoning = Some(m.next_value()?);
                    } else {
                        m.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                reasoning.map(PlainReasoning).ok_or_else(refuse)
            }
        }
        d.deserialize_map(V)
    }
}

/// `choices`, each one checked.
struct PlainChoices;

impl<'de> serde::Deserialize<'de> for PlainChoices {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = PlainChoices;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("choices")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut s: A,
            ) -> Result<PlainChoices, A::Error> {
                while s.next_element::<PlainChoice>()?.is_some() {}
                Ok(PlainChoices)
            }
        }
        d.deserialize_seq(V)
    }
}

/// One choice.
struct PlainChoice;

impl<'de> serde::Deserialize<'de> for PlainChoice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = PlainChoice;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a choice")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<PlainChoice, A::Error> {
                let (mut index, mut message, mut logprobs, mut finish) =
                    (false, false, false, false);
                while let Some(key) = m.next_key::<&str>()? {
                    match key {
                        "index" => {
                            once(&mut index)?;
                            m.next_value::<u32>()?;
                        }
                        "message" => {
                            once(&mut message)?;
                            m.next_value::<PlainMessage>()?;
                        }
                        "logprobs" => {
                            once(&mut logprobs)?;
                            m.next_value::<serde::de::IgnoredAny>()?;
                        }
                        "finish_reason" => {
                            once(&mut finish)?;
                            if let Some(f) = m.next_value::<Option<&str>>()?
                                && normalise_finish(f) != f
                            {
                                return Err(refuse());
                            }
                        }
                        // The canonical choice has no extras: it would drop this field.
                        _ => return Err(refuse()),
                    }
                }
                if index && message && logprobs && finish {
                    Ok(PlainChoice)
                } else {
                    Err(refuse())
                }
            }
        }
        d.deserialize_map(V)
    }
}

/// A choice's message.
struct PlainMessage;

impl<'de> serde::Deserialize<'de> for PlainMessage {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = PlainMessage;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a message")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<PlainMessage, A::Error> {
                let (mut role, mut content, mut refusal, mut reasoning) =
                    (false, false, false, false);
                while let Some(key) = m.next_key::<&str>()? {
                    match key {
                        "role" => {
                            once(&mut role)?;
                            if m.next_value::<&str>()? != "assistant" {
                                return Err(refuse());
                            }
                        }
                        "content" => {
                            once(&mut content)?;
                            m.next_value::<Option<Text>>()?;
                        }
                        "refusal" => {
                            once(&mut refusal)?;
                            m.next_value::<Option<Text>>()?;
                        }
                        "reasoning_content" => {
                            once(&mut reasoning)?;
                            if m.next_value::<Option<Text>>()?.is_none() {
                                // Written back only when it holds text.
                                return Err(refuse());
                            }
                        }
                        // Tool calls and thinking blocks take the canonical path; a
                        // `reasoning` field is moved to `reasoning_content` there.
                        "tool_calls" | "thinking_blocks" | "reasoning" => return Err(refuse()),
                        _ => {
                            m.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                if role && content && refusal {
                    Ok(PlainMessage)
                } else {
                    Err(refuse())
                }
            }
        }
        d.deserialize_map(V)
    }
}

/// A JSON string, read without keeping it.
struct Text;

impl<'de> serde::Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Text;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Text, E> {
                Ok(Text)
            }
        }
        d.deserialize_str(V)
    }
}
