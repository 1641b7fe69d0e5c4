//! Puter: models the Puter user pays for.

use crate::catalog::{Enable, Format, ProviderSpec, Tier, chat};

/// The catalog line: ten common model names (aliases) mapped to what Puter's model list
/// serves. Names Puter no longer carries directly go through its OpenRouter
/// passthrough; Gemini 1.5 is retired, so 2.5 Pro stands in. The Puter user pays, so the
/// gateway's price is 0.
pub static PUTER: ProviderSpec = ProviderSpec {
    name: "puter",
    tier: Tier::Keyless,
    format: Format::Puter,
    key_env: &["PUTER_AUTH_TOKEN"],
    base_url_env: "PUTER_BASE_URL",
    base_url: "https://api.puter.com",
    extra_env: &[],
    enabled_by: Enable::Key,
    models: &[
        chat("gpt-4o-mini", &[], 128_000, 0.0, 0.0),
        chat("gpt-4o", &[], 128_000, 0.0, 0.0),
        chat(
            "openrouter:anthropic/claude-3.5-sonnet",
            &["claude-3.5-sonnet"],
            200_000,
            0.0,
            0.0,
        ),
        chat(
            "openrouter:anthropic/claude-3-haiku",
            &["claude-3-haiku"],
            200_000,
            0.0,
            0.0,
        ),
        chat(
            "openrouter:google/gemini-2.0-flash-001",
            &["gemini-2.0-flash"],
            1_048_576,
            0.0,
            0.0,
        ),
        chat("gemini-2.5-pro", &["gemini-1.5-pro"], 1_048_576, 0.0, 0.0),
        chat(
            "openrouter:meta-llama/llama-3.1-70b-instruct",
            &["llama-3.1-70b"],
            131_072,
            0.0,
            0.0,
        ),
        chat("llama-3.1-8b-instant", &["llama-3.1-8b"], 131_072, 0.0, 0.0),
        chat(
            "openrouter:mistralai/mixtral-8x7b-instruct",
            &["mixtral-8x7b"],
            32_768,
            0.0,
            0.0,
        ),
        chat(
            "openrouter:cohere/command-r-plus-08-2024",
            &["command-r-plus"],
            128_000,
            0.0,
            0.0,
        ),
    ],
};
