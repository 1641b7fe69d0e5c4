//! Azure OpenAI: deployment URLs and the `<model>=<deployment>` list they come from.

use std::collections::HashMap;

use super::{Azure, PROVIDER};
use crate::GatewayError;
use crate::catalog::models::azure::ENV_AZURE_DEPLOYMENTS;
use crate::types::setting::parse_list;

/// Parses `<model>=<deployment>[,<model>=<deployment>...]`.
pub(super) fn parse_deployments(value: Option<&String>) -> Result<HashMap<String, String>, String> {
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

impl Azure {
    /// The URL serving `model`: its configured deployment, or a deployment named directly.
    pub(super) fn url(&self, model: &str) -> Result<String, GatewayError> {
        self.url_of(model, "chat/completions")
    }

    /// The deployment URL of `model` for the operation `path` (`chat/completions`, `embeddings`).
    pub(super) fn url_of(&self, model: &str, path: &str) -> Result<String, GatewayError> {
        let deployment = self.deployment(model)?;
        Ok(format!(
            "{}/openai/deployments/{deployment}/{path}?api-version={}",
            self.endpoint, self.api_version
        ))
    }

    /// The URL of the resource's Responses API (the v1 API: the deployment goes in `model`).
    pub(super) fn responses_url(&self) -> String {
        format!("{}/openai/v1/responses", self.endpoint)
    }

    /// The deployment serving `model`: its configured deployment, or a deployment named directly.
    pub(super) fn deployment(&self, model: &str) -> Result<&str, GatewayError> {
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
        Ok(deployment)
    }
}
