//! AI21 Jamba models.

use crate::catalog::{Enable, Format, ProviderSpec, Tier, chat};

/// The catalog line.
pub static AI21: ProviderSpec = ProviderSpec {
    name: "ai21",
    tier: Tier::FreeKey,
    format: Format::Ai21,
    key_env: &["AI21_API_KEY"],
    base_url_env: "AI21_BASE_URL",
    base_url: "https://api.ai21.com",
    extra_env: &[],
    enabled_by: Enable::Key,
    models: &[
        chat(
            "jamba-mini-1.7",
            &["jamba-mini", "jamba-1.5-mini"],
            256_000,
            0.20,
            0.40,
        ),
        chat(
            "jamba-large-1.7",
            &["jamba-large", "jamba-1.5-large"],
            256_000,
            2.00,
            8.00,
        ),
    ],
};
