//! Provider adapters: the translation between the canonical OpenAI types and each upstream's
//! wire format, and the one generic [`Translate`] service that runs any adapter over the shared
//! hyper client.
//!
//! An adapter only translates: a [`ChatRequest`] into an `http::Request`, an upstream body into
//! a [`ChatResponse`], upstream stream events into [`ChatChunk`]s and an upstream error into a
//! [`GatewayError`]. Routing, breaking, failover and cost never see a provider's wire shapes.
//! A new provider of a known wire format is one line in [`crate::catalog`]; a new wire format is
//! one folder here, one [`Format`] and one arm of [`build`].

pub mod ai21;
pub mod anthropic;
pub mod azure;
pub mod cohere;
#[cfg(test)]
pub(crate) mod fuzz;
pub mod gemini;
pub mod mock;
pub mod openai_compat;
pub mod puter;
pub mod sse;
mod translate;

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::Full;

pub use sse::{EventParser, Framing, RAW_JSON_EVENT, SseEvent};
pub use translate::{Translate, UpstreamStream};

use crate::GatewayError;
use crate::catalog::{Format, ProviderSpec};
use crate::client::HttpClient;
use crate::types::BoxChat;
use crate::types::Secret;
use crate::types::{ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse};

/// Key, in a [`ChatResponse`]'s or [`ChatChunk`]'s `extra`, of the upstream's own message or
/// stream event, kept by an adapter passing a client's native request through (Anthropic on
/// `/v1/messages`) so the edge can hand it back unchanged. Never serialized to OpenAI clients.
pub const NATIVE_KEY: &str = "proxygate_native";

/// The upstream request an adapter builds.
pub type UpstreamRequest = http::Request<Full<Bytes>>;

/// Translation between the canonical types and one provider's wire format.
pub trait ProviderAdapter: Send + Sync + 'static {
    /// Turns the upstream's stream events into canonical chunks.
    type Decoder: StreamDecoder;

    /// The provider name (`groq`), for errors and metrics.
    fn provider(&self) -> &'static str;

    /// How the upstream frames its stream.
    fn framing(&self) -> Framing {
        Framing::Sse
    }

    /// How the upstream frames its answer to this streaming request. Defaults to
    /// [`ProviderAdapter::framing`]; an adapter that asks for a complete answer and replays it
    /// as a stream returns [`Framing::Whole`].
    fn stream_framing(&self, _req: &ChatRequest) -> Framing {
        self.framing()
    }

    /// Builds the upstream request. `req.model` is already the upstream model id. For a stream
    /// the adapter asks the upstream for usage when it can, whatever the client asked.
    fn request(&self, req: &ChatRequest) -> Result<UpstreamRequest, GatewayError>;

    /// Parses a successful non-streaming body.
    fn response(&self, req: &ChatRequest, body: &[u8]) -> Result<ChatResponse, GatewayError>;

    /// The usage of a successful non-streaming body that the client may get as the upstream
    /// wrote it ([`crate::types::RawCompletion`]): only for a client of the same format, and
    /// only when the canonical path would write the same fields and values. The default: never.
    fn passthrough(&self, _req: &ChatRequest, _body: &[u8]) -> Option<crate::types::Usage> {
        None
    }

    /// A decoder for one stream.
    fn decoder(&self, req: &ChatRequest) -> Self::Decoder;

    /// Maps an error response. The default reads OpenAI-style bodies.
    fn error(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> GatewayError {
        openai_style_error(self.provider(), status, headers, body)
    }

    /// Some upstreams (Puter v1) answer 200 with an error body; the adapter may spot it here.
    fn success_is_error(&self, _body: &[u8]) -> Option<GatewayError> {
        None
    }

    /// Builds the upstream request for an embeddings request (`req.model` is already the
    /// upstream id). The default: this provider serves no embeddings.
    fn embed_request(
        &self,
        req: &ChatRequest,
        _emb: &EmbeddingRequest,
    ) -> Result<UpstreamRequest, GatewayError> {
        Err(no_embeddings(self.provider(), &req.model))
    }

    /// Parses a successful embeddings body into float vectors in input order.
    fn embed_response(
        &self,
        req: &ChatRequest,
        _emb: &EmbeddingRequest,
        _body: &[u8],
    ) -> Result<EmbeddingResponse, GatewayError> {
        Err(no_embeddings(self.provider(), &req.model))
    }
}

/// The error of a provider without embeddings.
pub fn no_embeddings(provider: &str, model: &str) -> GatewayError {
    GatewayError::invalid(
        "model",
        format!(
            "`{provider}/{model}` does not serve embeddings; pick an embedding model from GET /v1/models (mode `embedding`)"
        ),
    )
}

/// The inputs of an embeddings request as texts, or a 400 for token ids, which only
/// OpenAI-format upstreams take.
pub fn embedding_texts<'a>(
    provider: &str,
    emb: &'a EmbeddingRequest,
) -> Result<Vec<&'a str>, GatewayError> {
    emb.input.texts().ok_or_else(|| {
        GatewayError::invalid(
            "input",
            format!("token ids are not accepted by {provider}; send text"),
        )
    })
}

/// Turns one upstream's stream events into canonical chunks.
///
/// The decoder normalises usage: wherever the upstream puts it, it comes out as one final
/// usage-only chunk (`choices: []`), and no other chunk carries usage.
pub trait StreamDecoder: Send + 'static {
    /// One event. Chunks go to `out`; an in-band upstream error is an `Err`.
    fn event(&mut self, event: SseEvent, out: &mut VecDeque<ChatChunk>)
    -> Result<(), GatewayError>;

    /// The upstream closed the stream. An `Err` reports a truncated stream.
    fn finish(&mut self, out: &mut VecDeque<ChatChunk>) -> Result<(), GatewayError>;
}

/// Test support: feeds `pieces` to a parser of `framing` and decodes every event; returns the
/// chunks decoded and how the stream ended (the first error, or the decoder's `finish`).
#[cfg(test)]
pub(crate) fn decode_pieces<D: StreamDecoder>(
    framing: Framing,
    decoder: &mut D,
    pieces: &[&[u8]],
) -> (Vec<ChatChunk>, Result<(), GatewayError>) {
    let mut parser = EventParser::new(framing);
    let mut out = VecDeque::new();
    let mut events = Vec::new();
    let last = pieces.len();
    for (i, p) in pieces.iter().enumerate() {
        parser.feed(p, &mut events);
        if i + 1 == last {
            parser.finish(&mut events);
        }
        for ev in events.drain(..) {
            if let Err(e) = decoder.event(ev, &mut out) {
                return (out.into(), Err(e));
            }
        }
    }
    if pieces.is_empty() {
        parser.finish(&mut events);
    }
    let end = decoder.finish(&mut out);
    (out.into(), end)
}

/// Test support: `raw` cut at the given byte offsets (any offsets: UTF-8 may be split).
#[cfg(test)]
pub(crate) fn cut<'a>(raw: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut last = 0;
    for &c in cuts.iter().chain(std::iter::once(&raw.len())) {
        let c = c.clamp(last, raw.len());
        out.push(&raw[last..c]);
        last = c;
    }
    out
}

/// What config resolved for one provider.
#[derive(Clone, Debug, Default)]
pub struct ProviderSettings {
    /// Credentials; empty for keyless providers.
    pub keys: Vec<Secret>,
    /// Base URL (override or default), without a trailing slash.
    pub base_url: String,
    /// The `extra_env` values that were set.
    pub extra: std::collections::HashMap<String, String>,
}

/// One configured way to reach a provider: the translation stack for one credential.
#[derive(Clone)]
pub struct ProviderEndpoint {
    /// The translation stack for this credential.
    pub service: BoxChat,
    /// Models this endpoint serves beyond the catalog (Azure's configured deployments).
    pub extra_models: Vec<String>,
}

impl std::fmt::Debug for ProviderEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderEndpoint")
            .field("extra_models", &self.extra_models)
            .finish_non_exhaustive()
    }
}

/// The adapters: builds a configured provider's endpoints, one per credential, with the
/// adapter of its wire format.
pub fn build(
    spec: &'static ProviderSpec,
    settings: &ProviderSettings,
    client: &HttpClient,
) -> Result<Vec<ProviderEndpoint>, String> {
    match spec.format {
        Format::OpenAi => openai_compat::build(spec, settings, client),
        Format::Anthropic => anthropic::build(spec, settings, client),
        Format::Gemini => gemini::build(spec, settings, client),
        Format::Cohere => cohere::build(spec, settings, client),
        Format::Ai21 => ai21::build(spec, settings, client),
        Format::Azure => azure::build(spec, settings, client),
        Format::Puter => puter::build(spec, settings, client),
        Format::Mock => mock::build(spec, settings, client),
    }
}

/// One endpoint per configured key, each a [`Translate`] over the adapter `make` builds from
/// the base URL and that key (which [`Translate`] then scrubs from upstream replies). The
/// adapter answers as `spec`'s provider (a configured deployment's own name).
pub fn endpoint_per_key<A: ProviderAdapter>(
    spec: &'static ProviderSpec,
    settings: &ProviderSettings,
    client: &HttpClient,
    make: impl Fn(&str, Secret) -> A,
) -> Vec<ProviderEndpoint> {
    settings
        .keys
        .iter()
        .map(|key| ProviderEndpoint {
            service: BoxChat::new(Translate::new(
                Named {
                    name: spec.name,
                    inner: make(&settings.base_url, key.clone()),
                },
                client.clone(),
                vec![key.clone()],
            )),
            extra_models: Vec::new(),
        })
        .collect()
}

/// An adapter answering under another provider name: a configured deployment that speaks a
/// built-in provider's wire format is its own provider in replies, metrics and usage.
#[derive(Debug)]
pub struct Named<A> {
    /// The provider name.
    pub name: &'static str,
    /// The adapter of the wire format.
    pub inner: A,
}

impl<A: ProviderAdapter> ProviderAdapter for Named<A> {
    type Decoder = A::Decoder;

    fn provider(&self) -> &'static str {
        self.name
    }

    fn framing(&self) -> Framing {
        self.inner.framing()
    }

    fn stream_framing(&self, req: &ChatRequest) -> Framing {
        self.inner.stream_framing(req)
    }

    fn request(&self, req: &ChatRequest) -> Result<UpstreamRequest, GatewayError> {
        self.inner.request(req)
    }

    fn response(&self, req: &ChatRequest, body: &[u8]) -> Result<ChatResponse, GatewayError> {
        self.inner.response(req, body)
    }

    fn passthrough(&self, req: &ChatRequest, body: &[u8]) -> Option<crate::types::Usage> {
        self.inner.passthrough(req, body)
    }

    fn decoder(&self, req: &ChatRequest) -> Self::Decoder {
        self.inner.decoder(req)
    }

    fn error(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> GatewayError {
        self.inner.error(status, headers, body)
    }

    fn success_is_error(&self, body: &[u8]) -> Option<GatewayError> {
        self.inner.success_is_error(body)
    }

    fn embed_request(
        &self,
        req: &ChatRequest,
        emb: &EmbeddingRequest,
    ) -> Result<UpstreamRequest, GatewayError> {
        self.inner.embed_request(req, emb)
    }

    fn embed_response(
        &self,
        req: &ChatRequest,
        emb: &EmbeddingRequest,
        body: &[u8],
    ) -> Result<EmbeddingResponse, GatewayError> {
        self.inner.embed_response(req, emb, body)
    }
}

/// Reads `retry-after-ms`, then `retry-after` (seconds or an HTTP date).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_millis(ms as u64));
    }
    let v = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Parses Go-style durations (`1s`, `6m0s`, `12ms`, `2m59.56s`) as in `x-ratelimit-reset-*`.
pub fn go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let value: f64 = num.parse().ok()?;
        num.clear();
        let unit = match c {
            'h' => 3600.0,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                0.001
            }
            'm' => 60.0,
            's' => 1.0,
            _ => return None,
        };
        total += value * unit;
    }
    if !num.is_empty() {
        total += num.parse::<f64>().ok()?;
    }
    Some(Duration::from_secs_f64(total))
}

/// The most the gateway keeps of an upstream message.
const MAX_MESSAGE: usize = 300;

/// Shortens an upstream message for the client.
pub fn summarise(message: &str) -> String {
    let m = message.trim();
    if m.chars().count() <= MAX_MESSAGE {
        return m.to_owned();
    }
    let mut s: String = m.chars().take(MAX_MESSAGE).collect();
    s.push('…');
    s
}

/// Maps an OpenAI-style error body (and the variants OpenAI-compatible providers use:
/// Mistral's object `message`, xAI's `{"code","error"}`, a bare `{"message"}`) to a
/// [`GatewayError::Upstream`]. Non-JSON bodies (an HTML page from a proxy) are summarised by
/// status alone.
pub fn openai_style_error(
    provider: &'static str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> GatewayError {
    let json: Option<serde_json::Value> = serde_json::from_slice(body.trim_ascii_start()).ok();
    let mut message = None;
    let mut code = None;
    if let Some(v) = &json {
        let err = v.get("error");
        let msg = match err {
            Some(e @ serde_json::Value::Object(_)) => e.get("message"),
            Some(s @ serde_json::Value::String(_)) => Some(s),
            _ => v.get("message"),
        };
        message = msg.map(|m| match m {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        let c = err
            .and_then(|e| e.get("code"))
            .or_else(|| err.and_then(|e| e.get("type")));
        code = c.and_then(|c| match c {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
    }
    let message = message.map(|m| summarise(&m)).unwrap_or_else(|| {
        format!(
            "HTTP {} with a {} body",
            status.as_u16(),
            if json.is_some() { "JSON" } else { "non-JSON" }
        )
    });
    let mut retry_after = retry_after(headers);
    if retry_after.is_none() && status == StatusCode::TOO_MANY_REQUESTS {
        retry_after = ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"]
            .iter()
            .filter_map(|h| {
                headers
                    .get(*h)
                    .and_then(|v| v.to_str().ok())
                    .and_then(go_duration)
            })
            .max();
    }
    // xAI answers a bad key with 400: it is the provider's credentials, not the client's request.
    let lower = message.to_ascii_lowercase();
    let status = if status == StatusCode::BAD_REQUEST
        && (lower.contains("api key") || lower.contains("api_key"))
    {
        StatusCode::UNAUTHORIZED
    } else {
        status
    };
    GatewayError::Upstream {
        provider,
        status,
        message,
        code,
        retry_after,
    }
}

pub use crate::types::json::parse_json;

/// Parses an OpenAI tool call's `arguments` string into the JSON object that providers with
/// structured tool calls (Anthropic `input`, Gemini `args`) want. An empty string is `{}`;
/// anything but a JSON object is a 400 naming `field`.
pub fn tool_arguments(
    arguments: &str,
    field: impl FnOnce() -> String,
) -> Result<serde_json::Map<String, serde_json::Value>, GatewayError> {
    if arguments.trim().is_empty() {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_str(arguments) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        _ => Err(GatewayError::invalid(
            field(),
            "must be a JSON object encoded as a string",
        )),
    }
}

/// Starts a JSON POST request to `url`.
pub fn json_post(url: &str) -> Result<http::request::Builder, GatewayError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| GatewayError::Internal(format!("bad upstream URL: {e}")))?;
    Ok(json_post_to(uri))
}

/// The `Host` header the pooled client writes for an `http://` URI (its host, and its port
/// unless 80), made ahead of time. `None` for any other scheme: over TLS the connection may be
/// HTTP/2, where the authority travels in the URI and the client leaves `Host` out.
pub fn plain_http_host(uri: &http::Uri) -> Option<http::HeaderValue> {
    if uri.scheme_str() != Some("http") {
        return None;
    }
    let host = uri.host()?;
    let value = match uri.port_u16() {
        Some(port) if port != 80 => http::HeaderValue::from_str(&format!("{host}:{port}")),
        _ => http::HeaderValue::from_str(host),
    };
    value.ok()
}

/// A JSON `POST` to an already parsed `uri`.
pub fn json_post_to(uri: http::Uri) -> http::request::Builder {
    http::Request::post(uri).header(http::header::CONTENT_TYPE, "application/json")
}

/// Finishes a JSON request body.
pub fn with_json(
    builder: http::request::Builder,
    body: &serde_json::Value,
) -> Result<UpstreamRequest, GatewayError> {
    let bytes = serde_json::to_vec(body)
        .map_err(|e| GatewayError::Internal(format!("encoding request: {e}")))?;
    with_bytes(builder, bytes)
}

/// Finishes a request whose JSON body is already encoded.
pub fn with_bytes(
    builder: http::request::Builder,
    body: Vec<u8>,
) -> Result<UpstreamRequest, GatewayError> {
    builder
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| GatewayError::Internal(format!("building upstream request: {e}")))
}

/// Replays a complete answer as the chunks of a stream: per choice, its text, its tool calls
/// and its finish reason, then one usage-only chunk. For upstreams that cannot stream
/// something (AI21 tool calls) and are asked for a complete answer instead.
pub fn replay(resp: &ChatResponse, out: &mut VecDeque<ChatChunk>) {
    use crate::types::{Delta, FunctionCallDelta, ToolCallDelta};
    let chunk = |index: u32, delta: Delta, finish: Option<String>| ChatChunk {
        choices: vec![crate::types::ChunkChoice {
            index,
            delta,
            logprobs: None,
            finish_reason: finish,
        }],
        ..ChatChunk::delta(&resp.id, resp.created, &resp.model, Delta::default(), None)
    };
    for c in &resp.choices {
        let mut first = Delta::role();
        if let Some(text) = &c.message.content {
            first.content = Some(text.clone());
        }
        out.push_back(chunk(c.index, first, None));
        if let Some(calls) = &c.message.tool_calls
            && !calls.is_empty()
        {
            let deltas = calls
                .iter()
                .enumerate()
                .map(|(i, call)| ToolCallDelta {
                    extra_content: None,
                    index: i as u32,
                    id: Some(call.id.clone()),
                    kind: Some(call.kind.clone()),
                    function: Some(FunctionCallDelta {
                        name: Some(call.function.name.clone()),
                        arguments: Some(call.function.arguments.clone()),
                    }),
                })
                .collect();
            let delta = Delta {
                tool_calls: Some(deltas),
                ..Delta::default()
            };
            out.push_back(chunk(c.index, delta, None));
        }
        let finish = c.finish_reason.clone().unwrap_or_else(|| "stop".to_owned());
        out.push_back(chunk(c.index, Delta::default(), Some(finish)));
    }
    if let Some(u) = &resp.usage {
        out.push_back(ChatChunk::usage_only(
            &resp.id,
            resp.created,
            &resp.model,
            u.clone(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(go_duration("12ms"), Some(Duration::from_millis(12)));
        assert_eq!(go_duration("2m59.5s"), Some(Duration::from_millis(179_500)));
        assert_eq!(go_duration("x"), None);
    }

    #[test]
    fn retry_after_seconds_ms_and_date() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert("retry-after-ms", "1500".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        let mut h = HeaderMap::new();
        let later = std::time::SystemTime::now() + Duration::from_secs(120);
        h.insert(
            "retry-after",
            httpdate::fmt_http_date(later).parse().unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(d > Duration::from_secs(100) && d <= Duration::from_secs(120));
    }

    #[test]
    fn error_body_variants() {
        let h = HeaderMap::new();
        let e = openai_style_error("mistral", StatusCode::UNPROCESSABLE_ENTITY, &h,
            br#"{"object":"error","message":{"detail":[{"type":"extra_forbidden"}]},"type":"invalid_request_error"}"#);
        assert!(e.to_string().contains("extra_forbidden"));
        let e = openai_style_error("xai", StatusCode::BAD_REQUEST, &h,
            br#"{"code":"Client specified an invalid argument","error":"Incorrect API key provided: xa***"}"#);
        assert!(
            matches!(e, GatewayError::Upstream { status, .. } if status == StatusCode::UNAUTHORIZED)
        );
        assert!(e.is_retryable());
        let e = openai_style_error(
            "groq",
            StatusCode::BAD_GATEWAY,
            &h,
            b"<html>bad gateway</html>",
        );
        assert!(e.to_string().contains("non-JSON"));
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-reset-requests", "6m0s".parse().unwrap());
        let e = openai_style_error(
            "openai",
            StatusCode::TOO_MANY_REQUESTS,
            &h,
            br#"{"error":{"message":"slow down","code":"rate_limit_exceeded"}}"#,
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(360)));
    }
}
