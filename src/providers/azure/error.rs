//! Azure OpenAI: error bodies, with `DeploymentNotFound` as the gateway's misconfiguration.

use http::{HeaderMap, StatusCode};

use super::PROVIDER;
use crate::GatewayError;
use crate::catalog::models::azure::ENV_AZURE_DEPLOYMENTS;
use crate::providers::openai_style_error;

/// The error an Azure OpenAI failure answer stands for.
pub(super) fn map_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> GatewayError {
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
