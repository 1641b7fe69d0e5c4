//! The built-in `mock` provider: deterministic replies derived from the prompt, in process, no
//! network. Streamed and non-streamed answers are identical; latency, per-chunk delay and a
//! failure rate are configurable, so the whole stack can be exercised without any key.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Sleep;
use tower::Service;

use super::{ProviderEndpoint, ProviderSettings};
use crate::GatewayError;
use crate::catalog::ProviderSpec;
use crate::catalog::models::mock::{
    ENV_MOCK_CHUNK_DELAY_MS, ENV_MOCK_FAILURE_RATE, ENV_MOCK_LATENCY_MS,
};
use crate::client::HttpClient;
use crate::types::setting::{parse_ms, parse_rate};
use crate::types::{
    BoxChat, ChatReply, ChatRequest, ChatResponse, ReplyMeta, ResponseMessage, Usage,
};

mod stream;

use stream::{MockStream, Step};

/// Builds the endpoints of a configured provider: one per credential.
pub(crate) fn build(
    _spec: &'static ProviderSpec,
    settings: &ProviderSettings,
    _client: &HttpClient,
) -> Result<Vec<ProviderEndpoint>, String> {
    let ms = |key: &str, default: u64| -> Result<Duration, String> {
        match settings.extra.get(key) {
            None => Ok(Duration::from_millis(default)),
            Some(v) => parse_ms(key, v),
        }
    };
    let failure_rate = match settings.extra.get(ENV_MOCK_FAILURE_RATE) {
        None => 0.0,
        Some(v) => parse_rate(ENV_MOCK_FAILURE_RATE, v)?,
    };
    let mock = Mock {
        latency: ms(ENV_MOCK_LATENCY_MS, 0)?,
        chunk_delay: ms(ENV_MOCK_CHUNK_DELAY_MS, 10)?,
        failure_rate,
    };
    Ok(vec![ProviderEndpoint {
        service: BoxChat::new(mock),
        extra_models: Vec::new(),
    }])
}

/// The mock provider as a service.
#[derive(Clone, Debug, Default)]
pub struct Mock {
    /// Delay before the answer (or first chunk).
    pub latency: Duration,
    /// Delay between chunks of a stream.
    pub chunk_delay: Duration,
    /// Share of requests that fail with a 503, 0..=1.
    pub failure_rate: f64,
}

/// The reply the mock gives to a request: a function of the prompt only.
pub fn reply_text(req: &ChatRequest) -> String {
    let prompt = req
        .messages
        .iter()
        .rev()
        .find(|m| m.role == crate::types::Role::User)
        .map(|m| m.text_content())
        .unwrap_or_default();
    let prompt = prompt.split_whitespace().collect::<Vec<_>>().join(" ");
    let words = prompt.split_whitespace().count();
    let short: String = prompt.chars().take(80).collect();
    let ellipsis = if short.len() < prompt.len() {
        "…"
    } else {
        ""
    };
    format!(
        "Mock reply to \"{short}{ellipsis}\": {words} words, digest {:016x}.",
        fnv1a(prompt.as_bytes())
    )
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Splits text into pieces whose concatenation is the text: each word with its trailing space.
fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        cur.push(c);
        if c == ' ' {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

impl Service<ChatRequest> for Mock {
    type Response = ChatReply;
    type Error = GatewayError;
    type Future = MockFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        let fail = self.failure_rate > 0.0 && rand::random::<f64>() < self.failure_rate;
        MockFuture {
            sleep: (!self.latency.is_zero()).then(|| Box::pin(tokio::time::sleep(self.latency))),
            req: Some(req),
            fail,
            chunk_delay: self.chunk_delay,
        }
    }
}

/// Waits out the configured latency, then answers.
pub struct MockFuture {
    sleep: Option<Pin<Box<Sleep>>>,
    req: Option<ChatRequest>,
    fail: bool,
    chunk_delay: Duration,
}

impl std::fmt::Debug for MockFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockFuture")
            .field("fail", &self.fail)
            .finish_non_exhaustive()
    }
}

impl Future for MockFuture {
    type Output = Result<ChatReply, GatewayError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(sleep) = self.sleep.as_mut() {
            std::task::ready!(sleep.as_mut().poll(cx));
            self.sleep = None;
        }
        let Some(req) = self.req.take() else {
            return Poll::Ready(Err(GatewayError::Internal(
                "mock future polled after completion".into(),
            )));
        };
        if self.fail {
            return Poll::Ready(Err(GatewayError::Upstream {
                provider: "mock",
                status: http::StatusCode::SERVICE_UNAVAILABLE,
                message: "simulated failure (MOCK_FAILURE_RATE)".into(),
                code: None,
                retry_after: None,
            }));
        }
        if let Some(emb) = req.ctx.embedding.clone() {
            return Poll::Ready(Ok(mock_embeddings(&req, &emb)));
        }
        let text = reply_text(&req);
        let parts = pieces(&text);
        let usage = Usage::new(req.estimate_prompt_tokens(), parts.len() as u64);
        let (model, meta) = served_by(&req);
        if !req.is_stream() {
            let resp = ChatResponse::single(
                model,
                ResponseMessage::assistant(Some(text), None),
                "stop",
                Some(usage),
            );
            return Poll::Ready(Ok(ChatReply::complete(meta, resp)));
        }
        let stream = MockStream {
            id: crate::types::completion_id(),
            created: crate::types::unix_now(),
            model,
            parts: parts.into_iter(),
            step: Step::Role,
            usage: Some(usage),
            delay: self.chunk_delay,
            sleep: None,
        };
        Poll::Ready(Ok(ChatReply::stream(meta, Box::pin(stream))))
    }
}

/// The answer's `model` (`mock/<model>`) and provenance: the deployment the router chose, or
/// the request's own model when the mock is called directly.
fn served_by(req: &ChatRequest) -> (String, ReplyMeta) {
    let target = req.ctx.target.as_ref();
    let model = target.map_or(req.model.as_str(), |d| d.model());
    let meta = ReplyMeta {
        provider: "mock",
        deployment: target.map_or_else(|| "mock".into(), |d| d.id().clone()),
        attempts: 1,
        ..ReplyMeta::default()
    };
    (
        format!("mock/{}", model.strip_prefix("mock/").unwrap_or(model)),
        meta,
    )
}

/// Dimensions of the mock's vectors when the client names none.
pub const MOCK_DIMENSIONS: usize = 64;

/// The mock's vector for `text`: a deterministic function of the text (and the dimensions),
/// of unit length.
pub fn mock_vector(text: &str, dimensions: usize) -> Vec<f32> {
    let mut state = fnv1a(text.as_bytes()) | 1;
    let mut v: Vec<f32> = (0..dimensions)
        .map(|_| {
            // xorshift64*: a fixed sequence per text.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let x = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
            ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

fn mock_embeddings(req: &ChatRequest, emb: &crate::types::EmbeddingRequest) -> ChatReply {
    use crate::types::EmbeddingInput;
    // Bounded here too: a vector is allocated from this number.
    let dims = emb.dimensions.map_or(MOCK_DIMENSIONS, |d| {
        d.min(crate::types::MAX_DIMENSIONS) as usize
    });
    let texts: Vec<String> = match &emb.input {
        EmbeddingInput::Text(s) => vec![s.clone()],
        EmbeddingInput::Texts(v) => v.clone(),
        EmbeddingInput::Tokens(t) => vec![format!("{t:?}")],
        EmbeddingInput::TokenLists(l) => l.iter().map(|t| format!("{t:?}")).collect(),
    };
    let tokens: u64 = texts.iter().map(|t| crate::tokens::count(t)).sum();
    let vectors = texts.iter().map(|t| mock_vector(t, dims)).collect();
    let (model, meta) = served_by(req);
    let resp =
        crate::types::EmbeddingResponse::new(model, vectors, Some(Usage::new(tokens.max(1), 0)));
    ChatReply {
        meta,
        body: crate::types::ReplyBody::Embeddings(resp),
    }
}

#[cfg(test)]
mod tests;
