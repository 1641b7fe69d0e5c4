//! The in-process mock provider.

use crate::catalog::{Enable, Format, ProviderSpec, Tier, chat, embed};

/// The catalog line.
pub static MOCK: ProviderSpec = ProviderSpec {
    name: "mock",
    tier: Tier::Keyless,
    format: Format::Mock,
    key_env: &[],
    base_url_env: "MOCK_BASE_URL",
    base_url: "http://mock.invalid",
    extra_env: &[
        "MOCK_LATENCY_MS",
        "MOCK_FAILURE_RATE",
        "MOCK_CHUNK_DELAY_MS",
    ],
    enabled_by: Enable::Always,
    models: &[
        chat("echo", &[], 1_000_000, 0.0, 0.0),
        chat("lorem", &[], 1_000_000, 0.0, 0.0),
        embed("embed", 1_000_000, 0.0),
    ],
};
