//! Anthropic Messages API wire types, written once: the adapter sends requests and reads
//! messages and stream events with them, and the `/v1/messages` edge reads requests and writes
//! messages and stream events with them (Anthropic's Messages API reference and its streaming
//! Messages documentation).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::types::{ThinkingBlock, ThinkingKind, Usage};

/// A `/v1/messages` response (and the `message` of `message_start`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WireMessage {
    /// `msg_…`.
    #[serde(default)]
    pub id: String,
    /// Always `message`.
    #[serde(rename = "type", default = "message_type")]
    pub kind: String,
    /// Always `assistant`.
    #[serde(default = "assistant_role")]
    pub role: String,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// The content blocks, in order.
    #[serde(default)]
    pub content: Vec<ContentBlock>,
    /// Why the model stopped; null in `message_start`.
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// The stop sequence that ended the answer.
    #[serde(default)]
    pub stop_sequence: Option<String>,
    /// Token counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<WireUsage>,
}

fn message_type() -> String {
    "message".to_owned()
}

fn assistant_role() -> String {
    "assistant".to_owned()
}

fn empty_object() -> Value {
    json!({})
}

/// One content block of a message.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    /// Text.
    Text {
        /// The text.
        #[serde(default)]
        text: String,
    },
    /// Readable reasoning with its signature (extended thinking).
    Thinking {
        /// The reasoning text.
        #[serde(default)]
        thinking: String,
        /// The signature the API wants back with the block; empty in `content_block_start`.
        #[serde(default)]
        signature: String,
    },
    /// Encrypted reasoning, sent back unchanged.
    RedactedThinking {
        /// The encrypted reasoning.
        #[serde(default)]
        data: String,
    },
    /// A client tool call.
    ToolUse {
        /// `toolu_…`.
        #[serde(default)]
        id: String,
        /// The tool's name.
        #[serde(default)]
        name: String,
        /// The arguments object.
        #[serde(default = "empty_object")]
        input: Value,
    },
    /// Server tool blocks, citations and block types added later.
    #[default]
    #[serde(other)]
    Other,
}

impl ContentBlock {
    /// The canonical reasoning block of a `thinking` or `redacted_thinking` block.
    pub fn to_thinking_block(&self) -> Option<ThinkingBlock> {
        match self {
            Self::Thinking {
                thinking,
                signature,
            } => Some(ThinkingBlock::thinking(
                thinking.clone(),
                (!signature.is_empty()).then(|| signature.clone()),
            )),
            Self::RedactedThinking { data } => Some(ThinkingBlock::redacted(data.clone())),
            _ => None,
        }
    }

    /// The wire block of a canonical reasoning block.
    pub fn from_thinking_block(b: &ThinkingBlock) -> Self {
        match b.kind {
            ThinkingKind::Thinking => Self::Thinking {
                thinking: b.thinking.clone().unwrap_or_default(),
                signature: b.signature.clone().unwrap_or_default(),
            },
            ThinkingKind::RedactedThinking => Self::RedactedThinking {
                data: b.data.clone().unwrap_or_default(),
            },
        }
    }
}

/// Anthropic's token counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireUsage {
    /// Uncached input tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Output tokens (reasoning included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// Input tokens written to the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    /// Input tokens read from the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    /// The cache writes by lifetime (Anthropic's prompt caching documentation:
    /// `usage.cache_creation.ephemeral_5m_input_tokens` / `ephemeral_1h_input_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation: Option<CacheCreation>,
}

/// `usage.cache_creation`: cache-write tokens per lifetime.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheCreation {
    /// Written for 5 minutes (the default lifetime).
    #[serde(default)]
    pub ephemeral_5m_input_tokens: u64,
    /// Written for one hour.
    #[serde(default)]
    pub ephemeral_1h_input_tokens: u64,
}

impl WireUsage {
    /// The counts a gateway answer reports: all prompt tokens as input.
    pub fn of(usage: &Usage) -> Self {
        Self {
            input_tokens: Some(usage.prompt_tokens),
            output_tokens: Some(usage.completion_tokens),
            cache_creation_input_tokens: None,
            cache_read_input_tokens: None,
            cache_creation: None,
        }
    }

    /// Takes the counts `later` reports, keeping ours where it says nothing.
    pub fn update(&mut self, later: &WireUsage) {
        self.input_tokens = later.input_tokens.or(self.input_tokens);
        self.output_tokens = later.output_tokens.or(self.output_tokens);
        self.cache_creation_input_tokens = later
            .cache_creation_input_tokens
            .or(self.cache_creation_input_tokens);
        self.cache_read_input_tokens = later
            .cache_read_input_tokens
            .or(self.cache_read_input_tokens);
        self.cache_creation = later.cache_creation.or(self.cache_creation);
    }

    /// OpenAI usage: the prompt counts cached and cache-writing tokens too.
    pub fn to_usage(self) -> Usage {
        let cached = self.cache_read_input_tokens.unwrap_or(0);
        let split = self.cache_creation.unwrap_or_default();
        let written = self
            .cache_creation_input_tokens
            .unwrap_or(split.ephemeral_5m_input_tokens + split.ephemeral_1h_input_tokens);
        let prompt = self.input_tokens.unwrap_or(0) + written + cached;
        let mut usage = Usage::new(prompt, self.output_tokens.unwrap_or(0));
        usage.set_cache(
            cached,
            written,
            split.ephemeral_1h_input_tokens.min(written),
        );
        usage
    }
}

/// One server-sent event of a streamed message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// The message, without content yet.
    MessageStart {
        /// Its id, model and first usage.
        #[serde(default)]
        message: WireMessage,
    },
    /// A content block opens (`thinking`, `text`, `tool_use`, ...).
    ContentBlockStart {
        /// The block's position in the message.
        #[serde(default)]
        index: u64,
        /// The block, with empty text or input.
        #[serde(default)]
        content_block: ContentBlock,
    },
    /// A fragment of the open block.
    ContentBlockDelta {
        /// The block's position.
        #[serde(default)]
        index: u64,
        /// The fragment.
        #[serde(default)]
        delta: BlockDelta,
    },
    /// The block is complete.
    ContentBlockStop {
        /// The block's position.
        #[serde(default)]
        index: u64,
    },
    /// The stop reason and the final usage.
    MessageDelta {
        /// `stop_reason` and `stop_sequence`.
        #[serde(default)]
        delta: MessageDeltaBody,
        /// Cumulative usage.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<WireUsage>,
    },
    /// The end of the stream.
    MessageStop,
    /// A keep-alive.
    Ping,
    /// An error mid-stream: `{"type","message"}`.
    Error {
        /// The error object.
        #[serde(default)]
        error: Value,
    },
    /// Event types added later.
    #[serde(other)]
    Unknown,
}

impl StreamEvent {
    /// The event's name, equal to its `type`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::MessageStart { .. } => "message_start",
            Self::ContentBlockStart { .. } => "content_block_start",
            Self::ContentBlockDelta { .. } => "content_block_delta",
            Self::ContentBlockStop { .. } => "content_block_stop",
            Self::MessageDelta { .. } => "message_delta",
            Self::MessageStop => "message_stop",
            Self::Ping => "ping",
            Self::Error { .. } => "error",
            Self::Unknown => "unknown",
        }
    }

    /// Appends the event as SSE: `event:` equal to the data's `type`.
    pub fn write_sse(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(b"event: ");
        buf.extend_from_slice(self.name().as_bytes());
        buf.extend_from_slice(b"\ndata: ");
        if serde_json::to_writer(&mut *buf, self).is_err() {
            buf.extend_from_slice(b"{}");
        }
        buf.extend_from_slice(b"\n\n");
    }
}

/// A fragment of a content block.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockDelta {
    /// Text.
    TextDelta {
        /// The fragment.
        #[serde(default)]
        text: String,
    },
    /// A piece of a tool call's JSON input.
    InputJsonDelta {
        /// The fragment.
        #[serde(default)]
        partial_json: String,
    },
    /// Reasoning text.
    ThinkingDelta {
        /// The fragment.
        #[serde(default)]
        thinking: String,
    },
    /// The signature of the open thinking block, sent just before it stops.
    SignatureDelta {
        /// The signature.
        #[serde(default)]
        signature: String,
    },
    /// Citations and delta types added later.
    #[default]
    #[serde(other)]
    Other,
}

/// The `delta` of `message_delta`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageDeltaBody {
    /// Why the model stopped.
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// The stop sequence that ended the answer.
    #[serde(default)]
    pub stop_sequence: Option<String>,
}

/// Anthropic's `stop_reason` as an OpenAI `finish_reason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn and anything new.
        _ => "stop",
    }
}

/// Anthropic's `stop_reason` for an OpenAI `finish_reason`; `has_tools` when the answer calls
/// a tool (some upstreams end a tool call with `stop`).
pub fn stop_reason(finish: Option<&str>, has_tools: bool) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls") | Some("function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ if has_tools => "tool_use",
        _ => "end_turn",
    }
}

/// `msg_…` from any id: an Anthropic id as it is, another provider's id by its tail.
pub fn message_id(id: &str) -> String {
    if id.starts_with("msg_") {
        return id.to_owned();
    }
    let tail: String = id
        .rsplit('-')
        .next()
        .unwrap_or(id)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    if tail.is_empty() {
        format!("msg_{:024x}", rand::random::<u128>())
    } else {
        format!("msg_{tail}")
    }
}

/// A tool id the API accepts (`^[a-zA-Z0-9_-]+$`): other characters become `_`, so the same id
/// maps the same way on the `tool_use` and its `tool_result`; an empty id gets a fresh
/// `toolu_…`.
pub fn tool_id(id: &str) -> String {
    let id: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if id.is_empty() {
        format!("toolu_{:024x}", rand::random::<u128>())
    } else {
        id
    }
}

/// Marks the part of a tool id that carries another provider's opaque state (a Gemini thought
/// signature) through a Messages client, which sends tool ids back unchanged.
const STATE_MARK: &str = "__ts_";

/// A tool id carrying `signature` (base64, written with the URL-safe alphabet and no padding so
/// the id stays within `^[a-zA-Z0-9_-]+$`).
pub fn tool_id_with_state(id: &str, signature: &str) -> String {
    let packed: String = signature
        .chars()
        .filter(|c| *c != '=')
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    let id = tool_id(id);
    if packed.is_empty()
        || packed
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    {
        return id;
    }
    format!("{id}{STATE_MARK}{packed}")
}

/// The id and the signature of a tool id made by [`tool_id_with_state`]; other ids come back
/// as they are, without a signature.
pub fn split_tool_id(id: &str) -> (&str, Option<String>) {
    let Some((base, packed)) = id.split_once(STATE_MARK) else {
        return (id, None);
    };
    if base.is_empty() || packed.is_empty() {
        return (id, None);
    }
    let mut sig: String = packed
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !sig.len().is_multiple_of(4) {
        sig.push('=');
    }
    (base, Some(sig))
}

/// The input object of a tool call's arguments string (`{}` when empty or not an object).
pub fn tool_input(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_and_name_themselves() {
        let raw = json!({"type": "content_block_delta", "index": 2,
            "delta": {"type": "signature_delta", "signature": "EqQB"}});
        let e: StreamEvent = serde_json::from_value(raw.clone()).expect("parses");
        assert_eq!(
            e,
            StreamEvent::ContentBlockDelta {
                index: 2,
                delta: BlockDelta::SignatureDelta {
                    signature: "EqQB".into()
                }
            }
        );
        assert_eq!(serde_json::to_value(&e).expect("serializes"), raw);
        let mut buf = Vec::new();
        StreamEvent::MessageStop.write_sse(&mut buf);
        assert_eq!(
            buf,
            b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
        );
        let later: StreamEvent =
            serde_json::from_value(json!({"type": "brand_new", "x": 1})).expect("parses");
        assert_eq!(later, StreamEvent::Unknown);
    }

    #[test]
    fn unknown_blocks_are_other_and_thinking_converts_both_ways() {
        let b: ContentBlock =
            serde_json::from_value(json!({"type": "server_tool_use", "id": "srvtoolu_1"}))
                .expect("parses");
        assert_eq!(b, ContentBlock::Other);
        let t: ContentBlock = serde_json::from_value(
            json!({"type": "thinking", "thinking": "hmm", "signature": "sig"}),
        )
        .expect("parses");
        let canonical = t.to_thinking_block().expect("a thinking block");
        assert_eq!(canonical.signature.as_deref(), Some("sig"));
        assert_eq!(ContentBlock::from_thinking_block(&canonical), t);
        let r = ContentBlock::from_thinking_block(&ThinkingBlock::redacted("enc"));
        assert_eq!(
            serde_json::to_value(&r).expect("serializes"),
            json!({"type": "redacted_thinking", "data": "enc"})
        );
    }

    #[test]
    fn reasons_and_ids() {
        for (finish, stop) in [
            ("length", "max_tokens"),
            ("tool_calls", "tool_use"),
            ("content_filter", "refusal"),
            ("stop", "end_turn"),
        ] {
            assert_eq!(stop_reason(Some(finish), false), stop);
            assert_eq!(finish_reason(stop), finish);
        }
        assert_eq!(stop_reason(Some("stop"), true), "tool_use");
        assert_eq!(message_id("msg_1"), "msg_1");
        assert_eq!(message_id("chatcmpl-abc"), "msg_abc");
        assert_eq!(tool_id("call:1.a"), "call_1_a");
        assert_eq!(tool_id("toolu_01"), "toolu_01");
        assert!(tool_id("").starts_with("toolu_"));
        assert_eq!(tool_input("[1]"), json!({}));
        let id = tool_id_with_state("call_1", "Ab+/cd==");
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        );
        assert_eq!(split_tool_id(&id), ("call_1", Some("Ab+/cd==".to_owned())));
        assert_eq!(split_tool_id("toolu_01"), ("toolu_01", None));
    }
}
