//! [`Translate`]: the per-deployment service that runs one adapter over the shared client.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_core::Stream;
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tower::Service;

use super::{EventParser, NATIVE_KEY, ProviderAdapter, SseEvent, StreamDecoder};
use crate::GatewayError;
use crate::client::HttpClient;
use crate::types::Secret;
use crate::types::{
    ChatChunk, ChatReply, ChatRequest, EmbeddingRequest, RawCompletion, ReplyBody, ReplyMeta,
};

/// Error bodies larger than this are cut before parsing.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Successful bodies larger than this are refused.
const MAX_RESPONSE_BODY: usize = 32 * 1024 * 1024;

/// Sends canonical requests to one upstream through adapter `A` and translates the answers.
///
/// For a stream it resolves only once the first chunk has arrived, so everything above it
/// (failover in particular) sees a failure before the first byte as an error, never as a
/// stream that dies at once.
pub struct Translate<A> {
    adapter: Arc<A>,
    client: HttpClient,
    secrets: Arc<[Secret]>,
    /// A searcher for the first four bytes of each key of four or more, built once.
    key_prefixes: Arc<[memchr::memmem::Finder<'static>]>,
}

impl<A> Clone for Translate<A> {
    fn clone(&self) -> Self {
        Self {
            adapter: self.adapter.clone(),
            client: self.client.clone(),
            secrets: self.secrets.clone(),
            key_prefixes: self.key_prefixes.clone(),
        }
    }
}

impl<A> std::fmt::Debug for Translate<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Translate").finish_non_exhaustive()
    }
}

// === impl Translate ===

impl<A: ProviderAdapter> Translate<A> {
    /// Wraps `adapter`. `secrets` are scrubbed from anything the upstream says back.
    pub fn new(adapter: A, client: HttpClient, secrets: Vec<Secret>) -> Self {
        let key_prefixes = secrets
            .iter()
            .map(|s| s.expose().as_bytes())
            .filter(|k| k.len() >= 4)
            .map(|k| memchr::memmem::Finder::new(&k[..4]).into_owned())
            .collect();
        Self {
            adapter: Arc::new(adapter),
            client,
            secrets: secrets.into(),
            key_prefixes,
        }
    }

    /// The adapter.
    pub fn get_ref(&self) -> &A {
        &self.adapter
    }
}

impl<A: ProviderAdapter> Service<ChatRequest> for Translate<A> {
    type Response = ChatReply;
    type Error = GatewayError;
    type Future = Pin<Box<dyn Future<Output = Result<ChatReply, GatewayError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The pooled client is always ready; limits live in explicit layers.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        let adapter = self.adapter.clone();
        let client = self.client.clone();
        let secrets = self.secrets.clone();
        let key_prefixes = self.key_prefixes.clone();
        Box::pin(async move {
            let provider = adapter.provider();
            let meta = ReplyMeta {
                provider,
                deployment: req
                    .ctx
                    .target
                    .as_ref()
                    .map(|d| d.id().clone())
                    .unwrap_or_else(|| provider.into()),
                attempts: 1,
                ..ReplyMeta::default()
            };
            if let Some(emb) = req.ctx.embedding.clone() {
                return embed(&*adapter, &client, &secrets, meta, &req, &emb).await;
            }
            let mut upstream = adapter.request(&req)?;
            crate::telemetry::trace_upstream(&mut upstream);
            let resp = client
                .request(upstream)
                .await
                .map_err(|e| connect_error(provider, &e))?;
            let (parts, body) = resp.into_parts();
            if !parts.status.is_success() {
                let bytes = read_capped(body, MAX_ERROR_BODY).await.unwrap_or_default();
                let err = adapter.error(parts.status, &parts.headers, &bytes);
                return Err(scrub(err, &secrets));
            }
            if !req.is_stream() {
                let bytes = read_capped(body, MAX_RESPONSE_BODY)
                    .await
                    .map_err(|reason| GatewayError::BadUpstreamResponse { provider, reason })?;
                if let Some(err) = adapter.success_is_error(&bytes) {
                    return Err(scrub(err, &secrets));
                }
                if let Some(usage) = adapter.passthrough(&req, &bytes)
                    && !names_a_key(&bytes, &key_prefixes)
                {
                    return Ok(ChatReply {
                        meta,
                        body: ReplyBody::Raw(RawCompletion { body: bytes, usage }),
                    });
                }
                let mut resp = adapter
                    .response(&req, &bytes)
                    .map_err(|e| scrub(e, &secrets))?;
                for c in &mut resp.choices {
                    if let Some(content) = c.message.content.as_mut() {
                        scrub_text(content, &secrets);
                    }
                }
                scrub_native(&mut resp.extra, &secrets);
                return Ok(ChatReply::complete(meta, resp));
            }
            let mut stream = UpstreamStream::new(
                body,
                provider,
                EventParser::new(adapter.stream_framing(&req)),
                adapter.decoder(&req),
                secrets,
            );
            // Wait for the first chunk: until then a failure may still fail over.
            let first = std::future::poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await;
            match first {
                Some(Ok(chunk)) => {
                    stream.queue.push_front(chunk);
                    Ok(ChatReply::stream(meta, Box::pin(stream)))
                }
                Some(Err(e)) => Err(e),
                None => Err(GatewayError::BadUpstreamResponse {
                    provider,
                    reason: "stream ended before any chunk".into(),
                }),
            }
        })
    }
}

/// One embeddings round trip through `adapter`.
async fn embed<A: ProviderAdapter>(
    adapter: &A,
    client: &HttpClient,
    secrets: &[Secret],
    meta: ReplyMeta,
    req: &ChatRequest,
    emb: &EmbeddingRequest,
) -> Result<ChatReply, GatewayError> {
    let provider = adapter.provider();
    let mut upstream = adapter.embed_request(req, emb)?;
    crate::telemetry::trace_upstream(&mut upstream);
    let resp = client
        .request(upstream)
        .await
        .map_err(|e| connect_error(provider, &e))?;
    let (parts, body) = resp.into_parts();
    if !parts.status.is_success() {
        let bytes = read_capped(body, MAX_ERROR_BODY).await.unwrap_or_default();
        return Err(scrub(
            adapter.error(parts.status, &parts.headers, &bytes),
            secrets,
        ));
    }
    let bytes = read_capped(body, MAX_RESPONSE_BODY)
        .await
        .map_err(|reason| GatewayError::BadUpstreamResponse { provider, reason })?;
    let resp = adapter
        .embed_response(req, emb, &bytes)
        .map_err(|e| scrub(e, secrets))?;
    if resp.data.len() != emb.input.len() {
        return Err(GatewayError::BadUpstreamResponse {
            provider,
            reason: format!("{} vectors for {} inputs", resp.data.len(), emb.input.len()),
        });
    }
    Ok(ChatReply {
        meta,
        body: ReplyBody::Embeddings(resp),
    })
}

/// Scrubs keys from a native message or event kept under [`NATIVE_KEY`].
fn scrub_native(extra: &mut serde_json::Map<String, serde_json::Value>, secrets: &[Secret]) {
    match extra.get_mut(NATIVE_KEY) {
        Some(serde_json::Value::String(s)) => scrub_text(s, secrets),
        Some(serde_json::Value::Object(o)) => {
            if let Some(serde_json::Value::String(s)) = o.get_mut("data") {
                scrub_text(s, secrets);
            }
        }
        _ => {}
    }
}

fn connect_error(provider: &'static str, err: &hyper_util::client::legacy::Error) -> GatewayError {
    use std::error::Error as _;
    let mut reason = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        reason = format!("{reason}: {s}");
        source = s.source();
    }
    // hyper reports a failure to connect apart from a connection that broke once the
    // request was on its way (reset, closed before the response): the latter may be billed.
    GatewayError::Connect {
        provider,
        reason,
        sent: !err.is_connect(),
    }
}

async fn read_capped(mut body: Incoming, cap: usize) -> Result<Bytes, String> {
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("body broke off: {e}"))?;
        if let Some(data) = frame.data_ref() {
            if buf.len() + data.len() > cap {
                return Err(format!("body larger than {cap} bytes"));
            }
            buf.extend_from_slice(data);
        }
    }
    Ok(Bytes::from(buf))
}

/// Whether `body` holds what [`scrub_text`] would remove: a key's first four characters
/// (`key_prefixes` searches for each).
fn names_a_key(body: &[u8], key_prefixes: &[memchr::memmem::Finder<'static>]) -> bool {
    key_prefixes.iter().any(|f| f.find(body).is_some())
}

/// Removes provider keys (whole or a recognisable prefix) from text an upstream sent back.
pub(crate) fn scrub_text(text: &mut String, secrets: &[Secret]) {
    for secret in secrets {
        let key = secret.expose();
        if key.len() < 4 {
            continue;
        }
        if text.contains(key) {
            *text = text.replace(key, "***");
        }
        // Upstreams echo masked keys (`sk-ab***yz`): drop any word sharing a 4+ char prefix.
        let prefix: String = key.chars().take(4).collect();
        if text.contains(&prefix) {
            *text = text
                .split(' ')
                .map(|w| if w.contains(&prefix) { "***" } else { w })
                .collect::<Vec<_>>()
                .join(" ");
        }
    }
}

fn scrub(err: GatewayError, secrets: &[Secret]) -> GatewayError {
    match err {
        GatewayError::Upstream {
            provider,
            status,
            mut message,
            code,
            retry_after,
        } => {
            scrub_text(&mut message, secrets);
            GatewayError::Upstream {
                provider,
                status,
                message,
                code,
                retry_after,
            }
        }
        GatewayError::BadUpstreamResponse {
            provider,
            mut reason,
        } => {
            scrub_text(&mut reason, secrets);
            GatewayError::BadUpstreamResponse { provider, reason }
        }
        other => other,
    }
}

pin_project! {
    /// An upstream body decoded into canonical chunks as bytes arrive: nothing is buffered
    /// beyond the current event.
    pub struct UpstreamStream<D> {
        #[pin]
        body: Incoming,
        provider: &'static str,
        parser: EventParser,
        decoder: D,
        queue: VecDeque<ChatChunk>,
        events: Vec<SseEvent>,
        secrets: Arc<[Secret]>,
        // An error to deliver once the chunks decoded before it are out.
        error: Option<GatewayError>,
        done: bool,
    }
}

impl<D: StreamDecoder> UpstreamStream<D> {
    fn new(
        body: Incoming,
        provider: &'static str,
        parser: EventParser,
        decoder: D,
        secrets: Arc<[Secret]>,
    ) -> Self {
        Self {
            body,
            provider,
            parser,
            decoder,
            queue: VecDeque::new(),
            events: Vec::new(),
            secrets,
            error: None,
            done: false,
        }
    }
}

impl<D> std::fmt::Debug for UpstreamStream<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamStream")
            .field("provider", &self.provider)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<D: StreamDecoder> Stream for UpstreamStream<D> {
    type Item = Result<ChatChunk, GatewayError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if let Some(mut chunk) = this.queue.pop_front() {
                for c in &mut chunk.choices {
                    if let Some(text) = c.delta.content.as_mut() {
                        scrub_text(text, this.secrets);
                    }
                }
                if !chunk.extra.is_empty() {
                    scrub_native(&mut chunk.extra, this.secrets);
                }
                return Poll::Ready(Some(Ok(chunk)));
            }
            if let Some(e) = this.error.take() {
                return Poll::Ready(Some(Err(scrub(e, this.secrets))));
            }
            if *this.done {
                return Poll::Ready(None);
            }
            let mut ended = false;
            match ready!(this.body.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        this.parser.feed(data, this.events);
                        if this.parser.pending() > MAX_RESPONSE_BODY {
                            *this.done = true;
                            this.events.clear();
                            *this.error = Some(GatewayError::BadUpstreamResponse {
                                provider: this.provider,
                                reason: format!(
                                    "a stream event larger than {MAX_RESPONSE_BODY} bytes"
                                ),
                            });
                            continue;
                        }
                    }
                }
                Some(Err(e)) => {
                    *this.done = true;
                    this.events.clear();
                    *this.error = Some(GatewayError::Connect {
                        provider: this.provider,
                        sent: true,
                        reason: format!("stream broke off: {e}"),
                    });
                    continue;
                }
                None => {
                    this.parser.finish(this.events);
                    ended = true;
                }
            }
            for ev in this.events.drain(..) {
                if this.error.is_none()
                    && let Err(e) = this.decoder.event(ev, this.queue)
                {
                    *this.error = Some(e);
                }
            }
            if this.error.is_some() {
                *this.done = true;
            } else if ended {
                *this.done = true;
                if let Err(e) = this.decoder.finish(this.queue) {
                    *this.error = Some(e);
                }
            }
        }
    }
}
