//! Google Gemini models.

use crate::catalog::{Enable, Format, ProviderSpec, Tier, chat, embed};

/// Google Gemini (list prices: LiteLLM price snapshot; tiered long-prompt prices not modelled).
pub static GEMINI: ProviderSpec = ProviderSpec {
    name: "gemini",
    tier: Tier::PaidKey,
    format: Format::Gemini,
    key_env: &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
    base_url_env: "GEMINI_BASE_URL",
    base_url: "https://generativelanguage.googleapis.com",
    extra_env: &[],
    enabled_by: Enable::Key,
    models: &[
        chat(
            "gemini-2.0-flash",
            &["gemini-2.0-flash-001"],
            1_048_576,
            0.10,
            0.40,
        )
        .cached(0.025)
        .max_output(8_192),
        chat(
            "gemini-2.0-flash-lite",
            &["gemini-2.0-flash-lite-001"],
            1_048_576,
            0.075,
            0.30,
        ),
        chat(
            "gemini-1.5-pro",
            &["gemini-1.5-pro-latest"],
            2_097_152,
            3.50,
            10.50,
        ),
        chat(
            "gemini-1.5-flash",
            &["gemini-1.5-flash-latest"],
            1_048_576,
            0.075,
            0.30,
        ),
        chat(
            "gemini-2.5-flash",
            &["gemini-flash-latest"],
            1_048_576,
            0.30,
            2.50,
        )
        .cached(0.03)
        .max_output(65_536),
        chat(
            "gemini-2.5-flash-lite",
            &["gemini-flash-lite-latest"],
            1_048_576,
            0.10,
            0.40,
        )
        .cached(0.01)
        .max_output(65_536),
        chat(
            "gemini-2.5-pro",
            &["gemini-pro-latest"],
            1_048_576,
            1.25,
            10.00,
        )
        .cached(0.125)
        .max_output(65_536),
        chat(
            "gemini-3-pro-preview",
            &["gemini-3-pro"],
            1_048_576,
            2.00,
            12.00,
        )
        .cached(0.20)
        .max_output(65_536),
        chat(
            "gemini-3-flash-preview",
            &["gemini-3-flash"],
            1_048_576,
            0.50,
            3.00,
        )
        .cached(0.05)
        .max_output(65_536),
        embed("text-embedding-004", 2_048, 0.0),
        embed("gemini-embedding-001", 2_048, 0.15),
    ],
};
