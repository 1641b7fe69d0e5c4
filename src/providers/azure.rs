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
mod tests {

    use crate::catalog::models::azure::AZURE;
    use serde_json::{Value, json};

    use super::*;
    use crate::providers::Framing;
    use crate::types::Usage;

    fn adapter() -> Azure {
        let deployments =
            parse_deployments(Some(&"gpt-4o-mini=my-mini, gpt-4o = big-4o".into())).unwrap();
        Azure::new(
            "https://res.openai.azure.com/",
            "2024-10-21",
            Arc::new(deployments),
            Secret::new("az-test-key"),
        )
    }

    fn req(v: Value) -> ChatRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn deployment_url_api_version_and_api_key() {
        let r = req(
            json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": true, "seed": 3}),
        );
        let up = adapter().request(&r).unwrap();
        assert_eq!(
            up.uri(),
            "https://res.openai.azure.com/openai/deployments/my-mini/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(up.headers()["api-key"], "az-test-key");
        assert!(up.headers().get("authorization").is_none());
        let body = openai_body(&r, &quirks_of(PROVIDER)).unwrap();
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["seed"], 3);
        // The deployment name itself also works; an unknown model fails over with a hint.
        let r = req(json!({"model": "big-4o", "messages": [{"role": "user", "content": "hi"}]}));
        assert!(
            adapter()
                .request(&r)
                .unwrap()
                .uri()
                .path()
                .contains("/big-4o/")
        );
        let r = req(json!({"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]}));
        let e = adapter().request(&r).unwrap_err();
        assert!(e.is_retryable());
        assert!(e.to_string().contains("AZURE_OPENAI_DEPLOYMENTS"), "{e}");
    }

    #[test]
    fn deployments_config_is_validated_naming_the_variable() {
        for bad in [
            None,
            Some(""),
            Some("gpt-4o"),
            Some("gpt-4o=my deployment"),
            Some("=x"),
        ] {
            let v = bad.map(str::to_owned);
            let e = parse_deployments(v.as_ref()).unwrap_err();
            assert!(e.contains("AZURE_OPENAI_DEPLOYMENTS"), "{e}");
        }
        let settings = ProviderSettings {
            keys: vec![Secret::new("k")],
            base_url: AZURE.base_url.to_owned(),
            extra: HashMap::from([(ENV_AZURE_DEPLOYMENTS.to_owned(), "gpt-4o=x".to_owned())]),
        };
        let client = crate::client::build_client();
        let e = build(&AZURE, &settings, &client).unwrap_err();
        assert!(e.contains("AZURE_OPENAI_ENDPOINT"), "{e}");
        let settings = ProviderSettings {
            base_url: "https://res.openai.azure.com".into(),
            ..settings
        };
        let eps = build(&AZURE, &settings, &client).unwrap();
        assert_eq!(eps[0].extra_models, ["gpt-4o"]);
    }

    #[test]
    fn documented_errors() {
        let a = adapter();
        let h = http::HeaderMap::new();
        let e = a.error(StatusCode::NOT_FOUND, &h, br#"{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again."}}"#);
        assert!(e.is_retryable());
        assert!(
            e.to_string().contains("does not exist")
                && e.to_string().contains("AZURE_OPENAI_DEPLOYMENTS")
        );
        let e = a.error(StatusCode::BAD_REQUEST, &h, br#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":true,"severity":"high"}}}}}"#);
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(!e.is_retryable());
        assert_eq!(e.envelope()["error"]["code"], "content_filter");
        let e = a.error(StatusCode::UNAUTHORIZED, &h, br#"{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}"#);
        assert!(e.is_retryable());
        let mut h = http::HeaderMap::new();
        h.insert("retry-after", "21".parse().unwrap());
        h.insert("retry-after-ms", "20500".parse().unwrap());
        let e = a.error(StatusCode::TOO_MANY_REQUESTS, &h, br#"{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 21 seconds."}}"#);
        assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            e.retry_after(),
            Some(std::time::Duration::from_millis(20_500))
        );
    }

    #[test]
    fn filter_only_first_chunk_is_skipped_and_ids_come_from_real_chunks() {
        let events = [
            json!({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                   "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {"hate": {"filtered": false, "severity": "safe"}}}]}),
            json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null,
                                "content_filter_results": {}}],
                   "created": 1730000000, "id": "chatcmpl-az", "model": "gpt-4o-mini-2024-07-18", "object": "chat.completion.chunk"}),
            json!({"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": null}],
                   "created": 1730000000, "id": "chatcmpl-az", "model": "gpt-4o-mini-2024-07-18", "object": "chat.completion.chunk"}),
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                   "created": 1730000000, "id": "chatcmpl-az", "model": "gpt-4o-mini-2024-07-18", "object": "chat.completion.chunk"}),
            json!({"choices": [], "created": 1730000000, "id": "chatcmpl-az", "model": "gpt-4o-mini-2024-07-18",
                   "object": "chat.completion.chunk", "usage": {"prompt_tokens": 8, "completion_tokens": 1, "total_tokens": 9}}),
        ];
        let mut raw: String = events
            .iter()
            .map(|e| format!("data: {e}\r\n\r\n"))
            .collect();
        raw.push_str("data: [DONE]\r\n\r\n");
        let mut d = adapter().decoder(&ChatRequest::default());
        let pieces: Vec<&[u8]> = raw.as_bytes().chunks(13).collect();
        let (out, end) = crate::providers::decode_pieces(Framing::Sse, &mut d, &pieces);
        end.unwrap();
        assert_eq!(out.len(), 4);
        assert!(out.iter().all(|c| c.id == "chatcmpl-az"));
        assert_eq!(out[3].usage, Some(Usage::new(8, 1)));
        assert!(out[3].is_usage_only());
    }

    #[test]
    fn response_keeps_filter_results_and_fills_the_schema() {
        let body = json!({"id": "chatcmpl-az", "object": "chat.completion", "created": 1730000000, "model": "gpt-4o-2024-11-20",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
            "choices": [{"index": 0, "finish_reason": "content_filter", "message": {"role": "assistant", "content": null},
                         "content_filter_results": {"violence": {"filtered": true, "severity": "medium"}}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 0, "total_tokens": 10}});
        let resp = adapter()
            .response(&ChatRequest::default(), body.to_string().as_bytes())
            .unwrap();
        assert_eq!(
            resp.choices[0].finish_reason.as_deref(),
            Some("content_filter")
        );
        assert_eq!(resp.model, "gpt-4o-2024-11-20");
        assert!(resp.extra.contains_key("prompt_filter_results"));
    }
}
