//! Cohere models.

use crate::catalog::{Enable, Format, ProviderSpec, Tier, chat, embed};

/// The catalog line. The undated names of the 2024 price tables are aliases of the dated
/// ids the API serves today.
pub static COHERE: ProviderSpec = ProviderSpec {
    name: "cohere",
    tier: Tier::FreeKey,
    format: Format::Cohere,
    key_env: &["COHERE_API_KEY"],
    base_url_env: "COHERE_BASE_URL",
    base_url: "https://api.cohere.com",
    extra_env: &[],
    enabled_by: Enable::Key,
    models: &[
        chat(
            "command-r-plus-08-2024",
            &["command-r-plus"],
            128_000,
            2.50,
            10.00,
        ),
        chat("command-r-08-2024", &["command-r"], 128_000, 0.15, 0.60),
        embed("embed-english-v3.0", 512, 0.10),
        embed("embed-multilingual-v3.0", 512, 0.10),
        embed("embed-v4.0", 128_000, 0.12),
        chat("command-a-03-2025", &[], 256_000, 2.50, 10.00),
        chat("command-r7b-12-2024", &[], 128_000, 0.0375, 0.15),
    ],
};
