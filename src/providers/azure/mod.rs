//! Azure OpenAI: OpenAI's request, response and stream formats behind a different URL scheme
//! and auth header (Azure OpenAI REST API reference).
//!
//! Each configured pair of `AZURE_OPENAI_DEPLOYMENTS=<model>=<deployment>` serves
//! `azure/<model>` at `{AZURE_OPENAI_ENDPOINT}/openai/deployments/<deployment>/chat/completions
//! ?api-version={AZURE_OPENAI_API_VERSION}` with the key in `api-key`. The body is built and
//! the stream decoded by the OpenAI-compatible code; what is Azure's own is the URL, the auth,
//! the filter-only first chunk (`choices: []`, `id: ""`, which the shared decoder skips) and
//! `DeploymentNotFound`, which is the gateway's misconfiguration rather than the client's.
//!
//! A request that came through `/v1/responses` is passed through to Azure OpenAI's Responses
//! API (Microsoft Learn, "Azure OpenAI Responses API"): `{AZURE_OPENAI_ENDPOINT}/openai/v1/responses`
//! with the client's body unchanged apart from `model`, which names the deployment; the reply
//! and events are relayed as they came and their usage read for cost.

use std::collections::HashMap;
use std::sync::Arc;

use http::StatusCode;

use super::openai_compat::{
    OpenAiDecoder, normalise_response, openai_body, quirks_of, responses_native_body,
    responses_passthrough_body, responses_response,
};
use super::{
    ProviderAdapter, Translate, UpstreamRequest, json_post, parse_json, with_bytes, with_json,
};
use super::{ProviderEndpoint, ProviderSettings};
use crate::GatewayError;
use crate::catalog::ProviderSpec;
use crate::catalog::models::azure::{ENV_AZURE_API_VERSION, ENV_AZURE_DEPLOYMENTS};
use crate::client::HttpClient;
use crate::types::{BoxChat, Secret};
use crate::types::{ChatRequest, ChatResponse};

mod error;
mod request;

use error::map_error;
use request::parse_deployments;

const PROVIDER: &str = "azure";
const ENV_ENDPOINT: &str = "AZURE_OPENAI_ENDPOINT";
/// The GA version commonly cited as current; it knows `stream_options`.
const DEFAULT_API_VERSION: &str = "2024-10-21";

/// Builds the endpoints of a configured provider: one per credential.
pub(crate) fn build(
    spec: &'static ProviderSpec,
    settings: &ProviderSettings,
    client: &HttpClient,
) -> Result<Vec<ProviderEndpoint>, String> {
    if settings.base_url == spec.base_url {
        return Err(format!(
            "AZURE_OPENAI_API_KEY is set but {ENV_ENDPOINT} is not; set {ENV_ENDPOINT}=https://<resource>.openai.azure.com"
        ));
    }
    let deployments = parse_deployments(settings.extra.get(ENV_AZURE_DEPLOYMENTS))?;
    let api_version = match settings.extra.get(ENV_AZURE_API_VERSION) {
        None => DEFAULT_API_VERSION.to_owned(),
        Some(v) => {
            let v = v.trim();
            if !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                return Err(format!(
                    "{ENV_AZURE_API_VERSION}={v:?} is not an api-version; use e.g. {ENV_AZURE_API_VERSION}={DEFAULT_API_VERSION}"
                ));
            }
            v.to_owned()
        }
    };
    let deployments = Arc::new(deployments);
    let mut models: Vec<String> = deployments.keys().cloned().collect();
    models.sort();
    Ok(settings
        .keys
        .iter()
        .map(|key| ProviderEndpoint {
            service: BoxChat::new(Translate::new(
                super::Named {
                    name: spec.name,
                    inner: Azure::new(
                        &settings.base_url,
                        &api_version,
                        deployments.clone(),
                        key.clone(),
                    ),
                },
                client.clone(),
                vec![key.clone()],
            )),
            extra_models: models.clone(),
        })
        .collect())
}

/// The Azure OpenAI adapter for one key and one set of deployments.
#[derive(Debug)]
pub struct Azure {
    endpoint: String,
    api_version: String,
    deployments: Arc<HashMap<String, String>>,
    key: Secret,
}

// === impl Azure ===

impl Azure {
    /// An adapter for `endpoint` (`https://<resource>.openai.azure.com`).
    pub fn new(
        endpoint: &str,
        api_version: &str,
        deployments: Arc<HashMap<String, String>>,
        key: Secret,
    ) -> Self {
        Self {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            api_version: api_version.to_owned(),
            deployments,
            key,
        }
    }
}

impl ProviderAdapter for Azure {
    type Decoder = OpenAiDecoder;

    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn request(&self, req: &ChatRequest) -> Result<UpstreamRequest, GatewayError> {
        if let Some(raw) = responses_native_body(req) {
            let body = responses_passthrough_body(raw, self.deployment(&req.model)?)?;
            let mut builder =
                json_post(&self.responses_url())?.header("api-key", self.key.header_value()?);
            if req.is_stream() {
                builder = builder.header(http::header::ACCEPT, "text/event-stream");
            }
            return with_bytes(builder, body);
        }
        let url = self.url(&req.model)?;
        let body = openai_body(req, &quirks_of(PROVIDER))?;
        let mut builder = json_post(&url)?.header("api-key", self.key.header_value()?);
        if req.is_stream() {
            builder = builder.header(http::header::ACCEPT, "text/event-stream");
        }
        with_json(builder, &body)
    }

    fn response(&self, req: &ChatRequest, body: &[u8]) -> Result<ChatResponse, GatewayError> {
        if responses_native_body(req).is_some() {
            return responses_response(PROVIDER, body);
        }
        let mut resp: ChatResponse = parse_json(PROVIDER, body)?;
        normalise_response(&mut resp);
        Ok(resp)
    }

    fn decoder(&self, req: &ChatRequest) -> OpenAiDecoder {
        let mut d = OpenAiDecoder::new(PROVIDER);
        d.responses = responses_native_body(req).is_some();
        d
    }

    fn embed_request(
        &self,
        req: &ChatRequest,
        emb: &crate::types::EmbeddingRequest,
    ) -> Result<UpstreamRequest, GatewayError> {
        let url = self.url_of(&req.model, "embeddings")?;
        let builder = json_post(&url)?.header("api-key", self.key.header_value()?);
        with_json(builder, &super::openai_compat::embedding_body(req, emb)?)
    }

    fn embed_response(
        &self,
        _req: &ChatRequest,
        _emb: &crate::types::EmbeddingRequest,
        body: &[u8],
    ) -> Result<crate::types::EmbeddingResponse, GatewayError> {
        super::openai_compat::embedding_response(PROVIDER, body)
    }

    fn error(&self, status: StatusCode, headers: &http::HeaderMap, body: &[u8]) -> GatewayError {
        map_error(status, headers, body)
    }
}

#[cfg(test)]
mod tests;
