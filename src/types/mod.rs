//! The canonical types: OpenAI's chat schema as serde types.
//!
//! Every layer of the stack speaks these types and nothing else; provider adapters translate to
//! and from them at the bottom, the HTTP edge decodes and encodes them at the top. Each struct
//! keeps the fields it does not know in an `extra` map, so a new OpenAI parameter passes through
//! to OpenAI-format upstreams instead of being dropped.

mod api;
mod chunk;
mod context;
mod embedding;
pub(crate) mod json;
mod reasoning;
mod reply;
mod request;
mod response;
pub mod responses;
mod rules;
mod secret;
pub mod setting;
mod usage;

pub use api::Api;
pub use chunk::{ChatChunk, ChunkChoice, Delta, FunctionCallDelta, ToolCallDelta};
pub use context::{
    ANSWER_HEADERS, CacheControl, Caller, Carried, LastAttempt, RequestContext, Target,
};
pub use embedding::{
    Embedding, EmbeddingInput, EmbeddingRequest, EmbeddingResponse, MAX_DIMENSIONS,
};
pub use reasoning::{
    ReasoningEffort, ThinkingBlock, ThinkingKind, google_extra_content, google_thought_signature,
};
pub use reply::{ChatReply, ChatStream, RawCompletion, ReplyBody, ReplyMeta};
pub use request::{
    ChatRequest, Content, ContentPart, FunctionCall, FunctionDef, ImageUrl, Message, Role, Stop,
    StreamOptions, Tool, ToolCall,
};
pub use request::{MAX_CHOICES, MAX_MODEL_BYTES, check_model};
pub use response::{ChatResponse, Choice, ResponseMessage};
pub use rules::ParamRules;
pub use secret::Secret;

/// A type-erased chat service: one deployment's stack, or the whole gateway's.
pub type BoxChat =
    tower::util::BoxCloneSyncService<ChatRequest, ChatReply, crate::error::GatewayError>;
pub use usage::{CompletionTokensDetails, PromptTokensDetails, Usage};

/// Seconds since the Unix epoch, for `created` fields.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A fresh `chatcmpl-…` id.
pub fn completion_id() -> String {
    use rand::Rng;
    let n: u128 = rand::rng().random();
    format!("chatcmpl-{n:032x}")
}
