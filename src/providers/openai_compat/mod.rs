//! The OpenAI-compatible family: openai, groq, together, fireworks, cerebras, sambanova,
//! mistral, openrouter, deepseek, xai and ollama, as one adapter parametrised by base URL, auth
//! and [`Quirks`].
//!
//! The body passes through (unknown fields included) apart from what a provider is known to
//! reject, per each provider's API reference: Mistral gets a whitelist, `max_completion_tokens` becomes
//! `max_tokens` where only that is known, `developer` becomes `system` where it is not.
//! Streams always ask for usage when the provider accepts `stream_options`, and usage is read
//! wherever it arrives (`usage` on any chunk, `x_groq.usage`).

use super::{
    ProviderAdapter, Translate, UpstreamRequest, json_post, json_post_to, parse_json, with_bytes,
    with_json,
};
use super::{ProviderEndpoint, ProviderSettings};
use crate::GatewayError;
use crate::catalog::ProviderSpec;
use crate::client::HttpClient;
use crate::types::BoxChat as DeploymentService;
use crate::types::Secret;
use crate::types::{ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse};
#[cfg(test)]
use serde_json::Value;

mod request;
mod response;
mod responses;
mod stream;
#[cfg(test)]
mod tests;

pub use request::embedding_body;
pub(crate) use request::openai_body;
pub use response::{embedding_response, normalise_finish, normalise_response, passthrough_usage};
pub(crate) use responses::{
    native_body as responses_native_body, passthrough_body as responses_passthrough_body,
    response as responses_response,
};
pub use stream::OpenAiDecoder;

/// What differs between OpenAI-compatible providers.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quirks {
    /// Send `max_tokens` instead of `max_completion_tokens`.
    pub max_tokens_only: bool,
    /// Map the `developer` role to `system`.
    pub no_developer_role: bool,
    /// The provider accepts `stream_options.include_usage`.
    pub stream_options: bool,
    /// Only these top-level fields may be sent (Mistral's strict schema); empty = all.
    pub whitelist: &'static [&'static str],
    /// Fields to drop before sending.
    pub drop: &'static [&'static str],
    /// Flatten array content of text-only messages into a string (SambaNova).
    pub flatten_text_content: bool,
    /// Map `tool_choice: "required"` / object form to `"any"` (Mistral, Fireworks).
    pub tool_choice_any: bool,
}

const OPENAI_QUIRKS: Quirks = Quirks {
    max_tokens_only: false,
    no_developer_role: false,
    stream_options: true,
    whitelist: &[],
    drop: &[],
    flatten_text_content: false,
    tool_choice_any: false,
};

const MISTRAL_FIELDS: &[&str] = &[
    "model",
    "messages",
    "temperature",
    "top_p",
    "max_tokens",
    "stream",
    "stop",
    "random_seed",
    "response_format",
    "tools",
    "tool_choice",
    "presence_penalty",
    "frequency_penalty",
    "safe_prompt",
    "parallel_tool_calls",
    "prediction",
    "n",
];

/// The adapter for one OpenAI-compatible provider and key.
#[derive(Debug)]
pub struct OpenAiCompat {
    provider: &'static str,
    url: String,
    embeddings_url: String,
    responses_url: String,
    key: Option<Secret>,
    // Made once instead of per request: the chat URL parsed, and the `Authorization` value
    // (`None` when the URL or key does not parse; the request then names the fault).
    chat_uri: Option<http::Uri>,
    bearer: Option<http::HeaderValue>,
    // The `Host` value of a plain-HTTP chat URL, which the pooled client would otherwise
    // format on every request.
    chat_host: Option<http::HeaderValue>,
    quirks: Quirks,
    // The provider's catalog lines, for each model's parameter policy.
    models: &'static [crate::catalog::ModelSpec],
}

impl OpenAiCompat {
    /// An adapter posting to `{base_url}/chat/completions`.
    pub fn new(
        provider: &'static str,
        base_url: &str,
        key: Option<Secret>,
        quirks: Quirks,
    ) -> Self {
        let url = format!("{}/chat/completions", base_url.trim_end_matches('/'));
        let chat_uri: Option<http::Uri> = url.parse().ok();
        Self {
            provider,
            chat_host: chat_uri.as_ref().and_then(super::plain_http_host),
            chat_uri,
            bearer: key.as_ref().and_then(|k| k.bearer().ok()),
            url,
            embeddings_url: format!("{}/embeddings", base_url.trim_end_matches('/')),
            responses_url: format!("{}/responses", base_url.trim_end_matches('/')),
            key,
            quirks,
            models: &[],
        }
    }

    /// The same adapter, applying the parameter policy of `models` (catalog lines).
    pub fn with_models(mut self, models: &'static [crate::catalog::ModelSpec]) -> Self {
        self.models = models;
        self
    }

    /// `req` as the model takes it ([`crate::catalog::Params`]): a reasoning model on OpenAI's
    /// API gets no `temperature`/`top_p` and its output cap as `max_completion_tokens`; a model
    /// the catalog knows not to reason gets no `reasoning_effort`. Models the catalog does not
    /// know get the request as the client sent it.
    pub fn adjusted<'a>(&self, req: &'a ChatRequest) -> std::borrow::Cow<'a, ChatRequest> {
        use crate::catalog::Params;
        use std::borrow::Cow;
        let Some(spec) = self
            .models
            .iter()
            .find(|m| m.id == req.model || m.aliases.contains(&req.model.as_str()))
        else {
            return Cow::Borrowed(req);
        };
        match spec.params {
            Params::OpenAiReasoning
                if req.temperature.is_some() || req.top_p.is_some() || req.max_tokens.is_some() =>
            {
                let mut r = req.clone();
                r.ctx.verbatim = None;
                r.temperature = None;
                r.top_p = None;
                r.max_completion_tokens = r.max_completion_tokens.or(r.max_tokens.take());
                r.max_tokens = None;
                Cow::Owned(r)
            }
            Params::Sampling if req.reasoning_effort.is_some() => {
                let mut r = req.clone();
                r.ctx.verbatim = None;
                r.reasoning_effort = None;
                Cow::Owned(r)
            }
            _ => Cow::Borrowed(req),
        }
    }

    /// The client's Responses body when this provider serves the Responses API itself
    /// (OpenAI), so it passes through.
    fn responses_native<'r>(&self, req: &'r ChatRequest) -> Option<&'r bytes::Bytes> {
        (self.provider == "openai")
            .then(|| responses::native_body(req))
            .flatten()
    }

    #[cfg(test)]
    fn body(&self, req: &ChatRequest) -> Result<Value, GatewayError> {
        serde_json::from_slice(&self.body_bytes(req)?)
            .map_err(|e| GatewayError::Internal(format!("re-reading request: {e}")))
    }
}

impl ProviderAdapter for OpenAiCompat {
    type Decoder = OpenAiDecoder;

    fn provider(&self) -> &'static str {
        self.provider
    }

    fn request(&self, req: &ChatRequest) -> Result<UpstreamRequest, GatewayError> {
        let (mut builder, body) = match self.responses_native(req) {
            Some(raw) => (
                json_post(&self.responses_url)?,
                responses::passthrough_body(raw, &req.model)?,
            ),
            None => (
                match (&self.chat_uri, &self.chat_host) {
                    (Some(uri), Some(host)) => {
                        json_post_to(uri.clone()).header(http::header::HOST, host.clone())
                    }
                    (Some(uri), None) => json_post_to(uri.clone()),
                    (None, _) => json_post(&self.url)?,
                },
                self.body_bytes(req)?,
            ),
        };
        if let Some(key) = &self.key {
            let value = match &self.bearer {
                Some(v) => v.clone(),
                None => key.bearer()?,
            };
            builder = builder.header(http::header::AUTHORIZATION, value);
        }
        if req.is_stream() {
            builder = builder.header(http::header::ACCEPT, "text/event-stream");
        }
        with_bytes(builder, body)
    }

    fn response(&self, req: &ChatRequest, body: &[u8]) -> Result<ChatResponse, GatewayError> {
        if self.responses_native(req).is_some() {
            return responses::response(self.provider, body);
        }
        let mut resp: ChatResponse = parse_json(self.provider, body)?;
        normalise_response(&mut resp);
        Ok(resp)
    }

    fn passthrough(&self, req: &ChatRequest, body: &[u8]) -> Option<crate::types::Usage> {
        // The answer is a chat completion only when the request went to the chat endpoint.
        if req.ctx.endpoint != crate::types::Api::Chat || self.responses_native(req).is_some() {
            return None;
        }
        response::passthrough_usage(body)
    }

    fn decoder(&self, req: &ChatRequest) -> OpenAiDecoder {
        let mut d = OpenAiDecoder::new(self.provider);
        d.responses = self.responses_native(req).is_some();
        d
    }

    fn embed_request(
        &self,
        req: &ChatRequest,
        emb: &EmbeddingRequest,
    ) -> Result<UpstreamRequest, GatewayError> {
        let mut builder = json_post(&self.embeddings_url)?;
        if let Some(key) = &self.key {
            builder = builder.header(http::header::AUTHORIZATION, key.bearer()?);
        }
        with_json(builder, &embedding_body(req, emb)?)
    }

    fn embed_response(
        &self,
        _req: &ChatRequest,
        _emb: &EmbeddingRequest,
        body: &[u8],
    ) -> Result<EmbeddingResponse, GatewayError> {
        embedding_response(self.provider, body)
    }
}

/// Builds the endpoints of a configured provider: one per credential.
pub(crate) fn build(
    spec: &'static ProviderSpec,
    settings: &ProviderSettings,
    client: &HttpClient,
) -> Result<Vec<ProviderEndpoint>, String> {
    let quirks = quirks_of(spec.name);
    let keys: Vec<Option<Secret>> = if settings.keys.is_empty() {
        vec![None]
    } else {
        settings.keys.iter().cloned().map(Some).collect()
    };
    Ok(keys
        .into_iter()
        .map(|key| {
            let secrets = key.iter().cloned().collect();
            let adapter = OpenAiCompat::new(spec.name, &settings.base_url, key, quirks)
                .with_models(spec.models);
            ProviderEndpoint {
                service: DeploymentService::new(Translate::new(adapter, client.clone(), secrets)),
                extra_models: Vec::new(),
            }
        })
        .collect())
}

/// The quirks of a named provider.
pub fn quirks_of(name: &str) -> Quirks {
    match name {
        "mistral" => Quirks {
            max_tokens_only: true,
            stream_options: false,
            whitelist: MISTRAL_FIELDS,
            tool_choice_any: true,
            ..OPENAI_QUIRKS
        },
        "cerebras" => Quirks {
            max_tokens_only: true,
            no_developer_role: true,
            drop: &[
                "frequency_penalty",
                "presence_penalty",
                "logit_bias",
                "n",
                "logprobs",
                "top_logprobs",
            ],
            ..OPENAI_QUIRKS
        },
        "sambanova" => Quirks {
            max_tokens_only: true,
            flatten_text_content: true,
            ..OPENAI_QUIRKS
        },
        "fireworks" => Quirks {
            max_tokens_only: true,
            tool_choice_any: true,
            ..OPENAI_QUIRKS
        },
        "groq" => Quirks {
            drop: &["logit_bias", "top_logprobs"],
            ..OPENAI_QUIRKS
        },
        _ => OPENAI_QUIRKS,
    }
}
