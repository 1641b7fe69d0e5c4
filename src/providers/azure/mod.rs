//! Azure OpenAI: OpenAI's request, response and stream formats behind a different URL scheme
//! and auth header (Azure OpenAI REST API reference).
//!
//! Each configured pair of `AZURE_OPENAI_DEPLOYMENTS=<model>=<deployment>` serves
//! `azure/<model>` at `{AZURE_OPENAI_ENDPOINT}/openai/deployments/<deployment>/chat/completions
//! ?api-version={AZURE_OPENAI_API_VERSION}` with the key in `api-key`. The body is built and
//! the stream decoded by the OpenAI-compatible code; what is Azure's own is the URL, the auth,
//! the filter-only first chunk (`choices: []`, `id: ""`, which the shared decoder skips) and
//! `DeploymentNotFound`, which is the gateway's misconfiguration rather than the client's.

use std::collections::HashMap;
use std::sync::Arc;

use http::StatusCode;

use super::openai_compat::{OpenAiDecoder, normalise_response, openai_body, quirks_of};
use super::{
    ProviderAdapter, Translate, UpstreamRequest, json_post, openai_style_error, parse_json,
    with_json,
};
use super::{ProviderEndpoint, ProviderSettings};
use crate::GatewayError;
use crate::catalog::ProviderSpec;
use crate::catalog::models::azure::{ENV_AZURE_API_VERSION, ENV_AZURE_DEPLOYMENTS};
use crate::client::HttpClient;
use crate::types::setting::parse_list;
use crate::types::{BoxChat, Secret};
use crate::types::{ChatRequest, ChatResponse};

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
                Azure::new(
                    &settings.base_url,
                    &api_version,
                    deployments.clone(),
                    key.clone(),
                ),
                client.clone(),
                vec![key.clone()],
            )),
            extra_models: models.clone(),
        })
        .collect())
}

/// Parses `<model>=<deployment>[,<model>=<deployment>...]`.
fn parse_deployments(value: Option<&String>) -> Result<HashMap<String, String>, String> {
    let example = format!("{ENV_AZURE_DEPLOYMENTS}=gpt-4o-mini=my-mini");
    let Some(value) = value else {
        return Err(format!(
            "AZURE_OPENAI_API_KEY is set but {ENV_AZURE_DEPLOYMENTS} is not; list the deployments as <model>=<deployment>[,...], e.g. {example}"
        ));
    };
    let mut map = HashMap::new();
    for pair in parse_list(value) {
        let Some((model, deployment)) = pair.split_once('=') else {
            return Err(format!(
                "{ENV_AZURE_DEPLOYMENTS}: {pair:?} is not <model>=<deployment>, e.g. {example}"
            ));
        };
        let (model, deployment) = (model.trim(), deployment.trim());
        // Azure deployment names: letters, digits, `-`, `_`, `.`; they go into the URL path.
        let valid_name = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if model.is_empty() || model.contains('/') || !valid_name(deployment) {
            return Err(format!(
                "{ENV_AZURE_DEPLOYMENTS}: {pair:?} needs a model name and a deployment name of letters, digits, '-', '_' or '.', e.g. {example}"
            ));
        }
        map.insert(model.to_owned(), deployment.to_owned());
    }
    if map.is_empty() {
        return Err(format!(
            "{ENV_AZURE_DEPLOYMENTS} lists no deployment; use e.g. {example}"
        ));
    }
    Ok(map)
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

    /// The URL serving `model`: its configured deployment, or a deployment named directly.
    fn url(&self, model: &str) -> Result<String, GatewayError> {
        self.url_of(model, "chat/completions")
    }

    /// The deployment URL of `model` for the operation `path` (`chat/completions`, `embeddings`).
    fn url_of(&self, model: &str, path: &str) -> Result<String, GatewayError> {
        let deployment = match self.deployments.get(model) {
            Some(d) => d,
            None => self
                .deployments
                .values()
                .find(|d| d.as_str() == model)
                .ok_or_else(|| GatewayError::Connect {
                    provider: PROVIDER,
                    sent: false,
                    reason: format!(
                        "no Azure deployment is configured for `{model}`; add {model}=<deployment> to {ENV_AZURE_DEPLOYMENTS}"
                    ),
                })?,
        };
        Ok(format!(
            "{}/openai/deployments/{deployment}/{path}?api-version={}",
            self.endpoint, self.api_version
        ))
    }
}

impl ProviderAdapter for Azure {
    type Decoder = OpenAiDecoder;

    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn request(&self, req: &ChatRequest) -> Result<UpstreamRequest, GatewayError> {
        let url = self.url(&req.model)?;
        let body = openai_body(req, &quirks_of(PROVIDER))?;
        let mut builder = json_post(&url)?.header("api-key", self.key.header_value()?);
        if req.is_stream() {
            builder = builder.header(http::header::ACCEPT, "text/event-stream");
        }
        with_json(builder, &body)
    }

    fn response(&self, _req: &ChatRequest, body: &[u8]) -> Result<ChatResponse, GatewayError> {
        let mut resp: ChatResponse = parse_json(PROVIDER, body)?;
        normalise_response(&mut resp);
        Ok(resp)
    }

    fn decoder(&self, _req: &ChatRequest) -> OpenAiDecoder {
        OpenAiDecoder::new(PROVIDER)
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
        let err = openai_style_error(PROVIDER, status, headers, body);
        match err {
            // A deployment name that does not exist is the gateway's configuration, not the
            // client's request: another deployment of the model may well work.
            GatewayError::Upstream {
                message,
                code: Some(code),
                retry_after,
                ..
            } if status == StatusCode::NOT_FOUND && code == "DeploymentNotFound" => {
                GatewayError::Upstream {
                    provider: PROVIDER,
                    status: StatusCode::BAD_GATEWAY,
                    message: format!(
                        "Azure answered 404: {message} (check the deployment names in {ENV_AZURE_DEPLOYMENTS})"
                    ),
                    code: Some(code),
                    retry_after,
                }
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests;
