//! The in-process mock provider.

use crate::catalog::{Enable, Format, ProviderSpec, Tier, chat, embed};

/// Delay before the mock's answer (or first chunk), in milliseconds.
pub const ENV_MOCK_LATENCY_MS: &str = "MOCK_LATENCY_MS";
/// Share of mock requests that fail with a 503, 0..=1.
pub const ENV_MOCK_FAILURE_RATE: &str = "MOCK_FAILURE_RATE";
/// Delay between the mock's stream chunks, in milliseconds.
pub const ENV_MOCK_CHUNK_DELAY_MS: &str = "MOCK_CHUNK_DELAY_MS";

/// The catalog line.
pub static MOCK: ProviderSpec = ProviderSpec {
    name: "mock",
    tier: Tier::Keyless,
    format: Format::Mock,
    key_env: &[],
    base_url_env: "MOCK_BASE_URL",
    base_url: "http://mock.invalid",
    extra_env: &[
        ENV_MOCK_LATENCY_MS,
        ENV_MOCK_FAILURE_RATE,
        ENV_MOCK_CHUNK_DELAY_MS,
    ],
    enabled_by: Enable::Always,
    models: &[
        chat("echo", &[], 1_000_000, 0.0, 0.0),
        chat("lorem", &[], 1_000_000, 0.0, 0.0),
        embed("embed", 1_000_000, 0.0),
    ],
};
