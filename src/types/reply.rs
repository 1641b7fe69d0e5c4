use std::pin::Pin;
use std::sync::Arc;

use futures_core::Stream;

use super::{ChatChunk, ChatResponse, EmbeddingResponse, Usage};
use crate::GatewayError;

/// A typed stream of canonical chunks. Errors after the first chunk travel inside it.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<ChatChunk, GatewayError>> + Send>>;

/// What the stack below the edge answers: the body plus where it came from.
pub struct ChatReply {
    /// Provenance, turned into `x-proxygate-*` headers by the edge.
    pub meta: ReplyMeta,
    /// A whole completion or a stream.
    pub body: ReplyBody,
}

impl std::fmt::Debug for ChatReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = match &self.body {
            ReplyBody::Complete(r) => format!("Complete({})", r.id),
            ReplyBody::Raw(r) => format!("Raw({} bytes)", r.body.len()),
            ReplyBody::Stream(_) => "Stream".to_owned(),
            ReplyBody::Embeddings(r) => format!("Embeddings({})", r.data.len()),
        };
        f.debug_struct("ChatReply")
            .field("meta", &self.meta)
            .field("body", &body)
            .finish()
    }
}

/// Where an answer came from.
#[derive(Clone, Debug, Default)]
pub struct ReplyMeta {
    /// Provider name (`groq`).
    pub provider: &'static str,
    /// Deployment id (`groq/llama-3.1-8b-instant`).
    pub deployment: Arc<str>,
    /// Attempts made, 1 when the first deployment served.
    pub attempts: u32,
    /// Cost in USD when already known (non-streaming).
    pub cost_usd: Option<f64>,
    /// Served from cache.
    pub cache_hit: bool,
}

/// The body of a reply.
#[allow(missing_debug_implementations)]
pub enum ReplyBody {
    /// `stream: false`.
    Complete(ChatResponse),
    /// `stream: false`, answered by an upstream that already wrote the chat completion an
    /// OpenAI chat client gets: its bytes go to the client unchanged.
    Raw(RawCompletion),
    /// `stream: true`; at least one chunk has already been received.
    Stream(ChatStream),
    /// The answer to an embeddings request.
    Embeddings(EmbeddingResponse),
}

/// A chat completion in OpenAI's format as the upstream wrote it, that the gateway would write
/// back with the same fields and values: its `id`, `object`, `created`, roles, finish reasons
/// and usage already what the canonical form holds. It is only made for a client of the chat
/// completions API, whose answer it is; what needs the fields reads them with
/// [`RawCompletion::decode`].
#[derive(Clone, Debug)]
pub struct RawCompletion {
    /// The upstream's body.
    pub body: bytes::Bytes,
    /// Its usage meters (tokens, cache reads and writes, reasoning tokens), what the bill
    /// reads; the upstream's other usage fields stay in `body`.
    pub usage: Usage,
}

impl RawCompletion {
    /// The answer as a canonical [`ChatResponse`] (for the response cache, trace attributes,
    /// or a client of another API).
    pub fn decode(&self, provider: &'static str) -> Result<ChatResponse, GatewayError> {
        super::json::parse_json(provider, &self.body)
    }
}

impl ReplyBody {
    /// The body with a [`ReplyBody::Raw`] answer decoded into [`ReplyBody::Complete`], for
    /// what reads an answer's fields.
    pub fn canonical(self, provider: &'static str) -> Result<Self, GatewayError> {
        match self {
            Self::Raw(raw) => raw.decode(provider).map(Self::Complete),
            other => Ok(other),
        }
    }
}

impl ChatReply {
    /// A complete reply.
    pub fn complete(meta: ReplyMeta, response: ChatResponse) -> Self {
        Self {
            meta,
            body: ReplyBody::Complete(response),
        }
    }

    /// A streamed reply.
    pub fn stream(meta: ReplyMeta, stream: ChatStream) -> Self {
        Self {
            meta,
            body: ReplyBody::Stream(stream),
        }
    }
}
