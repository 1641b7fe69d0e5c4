//! Anthropic Claude models.

use crate::catalog::{Enable, Format, ProviderSpec, Tier, chat};

/// Anthropic (list prices: LiteLLM price snapshot).
pub static ANTHROPIC: ProviderSpec = ProviderSpec {
    name: "anthropic",
    tier: Tier::PaidKey,
    format: Format::Anthropic,
    key_env: &["ANTHROPIC_API_KEY"],
    base_url_env: "ANTHROPIC_BASE_URL",
    base_url: "https://api.anthropic.com",
    extra_env: &[],
    enabled_by: Enable::Key,
    models: &[
        chat(
            "claude-3-5-sonnet-20241022",
            &[
                "claude-3.5-sonnet",
                "claude-3-5-sonnet",
                "claude-3-5-sonnet-latest",
            ],
            200_000,
            3.00,
            15.00,
        )
        .anthropic_cache()
        .max_output(8_192),
        chat(
            "claude-3-5-haiku-20241022",
            &[
                "claude-3.5-haiku",
                "claude-3-5-haiku",
                "claude-3-5-haiku-latest",
            ],
            200_000,
            0.80,
            4.00,
        )
        .anthropic_cache()
        .max_output(8_192),
        chat(
            "claude-3-haiku-20240307",
            &["claude-3-haiku"],
            200_000,
            0.25,
            1.25,
        )
        .anthropic_cache()
        .max_output(4_096),
        chat(
            "claude-3-7-sonnet-20250219",
            &[
                "claude-3.7-sonnet",
                "claude-3-7-sonnet",
                "claude-3-7-sonnet-latest",
            ],
            200_000,
            3.00,
            15.00,
        )
        .anthropic_cache()
        .max_output(64_000),
        chat(
            "claude-sonnet-4-20250514",
            &["claude-sonnet-4", "claude-4-sonnet"],
            200_000,
            3.00,
            15.00,
        )
        .anthropic_cache()
        .max_output(64_000),
        chat(
            "claude-opus-4-20250514",
            &["claude-opus-4", "claude-4-opus"],
            200_000,
            15.00,
            75.00,
        )
        .anthropic_cache()
        .max_output(32_000),
        chat(
            "claude-sonnet-4-5",
            &["claude-sonnet-4.5", "claude-4.5-sonnet"],
            200_000,
            3.00,
            15.00,
        )
        .anthropic_cache()
        .max_output(64_000),
        chat(
            "claude-haiku-4-5",
            &["claude-haiku-4.5", "claude-4.5-haiku"],
            200_000,
            1.00,
            5.00,
        )
        .anthropic_cache()
        .max_output(64_000),
    ],
};
