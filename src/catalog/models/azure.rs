//! Azure OpenAI: the models its deployments may serve.

use crate::catalog::{Enable, Format, ProviderSpec, Tier, chat, embed};

/// Azure OpenAI `api-version` query value.
pub const ENV_AZURE_API_VERSION: &str = "AZURE_OPENAI_API_VERSION";
/// Azure OpenAI deployments: `<model>=<deployment>[,...]`.
pub const ENV_AZURE_DEPLOYMENTS: &str = "AZURE_OPENAI_DEPLOYMENTS";

/// The catalog line.
pub static AZURE: ProviderSpec = ProviderSpec {
    name: "azure",
    tier: Tier::PaidKey,
    format: Format::Azure,
    key_env: &["AZURE_OPENAI_API_KEY"],
    base_url_env: "AZURE_OPENAI_ENDPOINT",
    base_url: "https://your-resource.openai.azure.com",
    extra_env: &[ENV_AZURE_API_VERSION, ENV_AZURE_DEPLOYMENTS],
    enabled_by: Enable::Key,
    models: &[
        chat("gpt-4o", &[], 128_000, 2.50, 10.00).cached(1.25),
        chat("gpt-4o-mini", &[], 128_000, 0.15, 0.60).cached(0.075),
        embed("text-embedding-3-small", 8_191, 0.02),
    ],
};
