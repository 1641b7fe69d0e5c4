//! The model catalog as data: one line per provider (name, tier, credentials, base URL, wire
//! format, models with context window and prices), the rate type, and the lookups the router
//! needs. Nothing here builds a connection; `providers` turns a line into adapters.
//!
//! Prices are USD per 1M tokens from the LiteLLM price snapshots of [`RATES_DATE`]; they can
//! be overridden in config.

pub mod custom;
pub mod models;
mod rate;

pub use rate::{RATES_DATE, Rate};

/// Who pays: failover stays within one tier unless `FAILOVER_CROSS_TIER=true`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Tier {
    /// No key needed (mock, ollama, puter with the user's own token).
    #[serde(rename = "keyless")]
    Keyless,
    /// A free API key.
    #[serde(rename = "free-key")]
    FreeKey,
    /// A paid API key.
    #[serde(rename = "paid-key")]
    PaidKey,
}

impl Tier {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Keyless => "keyless",
            Tier::FreeKey => "free-key",
            Tier::PaidKey => "paid-key",
        }
    }
}

/// What a model does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Chat completions.
    Chat,
    /// Embeddings.
    Embedding,
}

/// One model a provider serves.
#[derive(Clone, Copy, Debug)]
pub struct ModelSpec {
    /// The provider's model id.
    pub id: &'static str,
    /// Bare names that also resolve to it (`llama-3.1-8b` for `llama-3.1-8b-instant`).
    pub aliases: &'static [&'static str],
    /// Context window in tokens.
    pub context: u32,
    /// USD per 1M input tokens.
    pub input: f64,
    /// USD per 1M output tokens.
    pub output: f64,
    /// Chat or embedding.
    pub mode: Mode,
    /// USD per 1M prompt tokens read from the provider's prompt cache, where it prices them.
    pub cached_input: Option<f64>,
    /// USD per 1M prompt tokens written to the provider's cache (5-minute lifetime), where it
    /// prices them apart.
    pub cache_write: Option<f64>,
    /// USD per 1M prompt tokens written to the cache for one hour.
    pub cache_write_1h: Option<f64>,
    /// The most completion tokens one answer may have, when known.
    pub max_output: Option<u32>,
    /// Which sampling parameters the model takes.
    pub params: Params,
}

/// The request parameters a chat model takes, as its provider documents them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Params {
    /// Sampling parameters and `max_tokens`; no `reasoning_effort`.
    Sampling,
    /// A reasoning model on OpenAI's API (o-series, gpt-5): `reasoning_effort`, and
    /// `max_completion_tokens` rather than `max_tokens`; `temperature` and `top_p` other than
    /// the default are refused.
    OpenAiReasoning,
    /// A model that reasons on its own and takes the sampling parameters (DeepSeek's reasoner,
    /// Anthropic and Gemini thinking models): the adapter maps `reasoning_effort` if it can.
    Reasoning,
}

impl ModelSpec {
    /// The same line with a cached-input price.
    pub const fn cached(mut self, per_1m: f64) -> Self {
        self.cached_input = Some(per_1m);
        self
    }

    /// Anthropic's prompt-caching prices, from the input rate: reads at 0.1x, 5-minute
    /// writes at 1.25x, 1-hour writes at 2x (Anthropic's prompt caching documentation).
    pub const fn anthropic_cache(mut self) -> Self {
        self.cached_input = Some(self.input * 0.1);
        self.cache_write = Some(self.input * 1.25);
        self.cache_write_1h = Some(self.input * 2.0);
        self
    }

    /// The same line with its output limit.
    pub const fn max_output(mut self, tokens: u32) -> Self {
        self.max_output = Some(tokens);
        self
    }

    /// The same line with its parameter policy.
    pub const fn params(mut self, params: Params) -> Self {
        self.params = params;
        self
    }
}

/// How a provider is switched on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enable {
    /// When one of `key_env` is set.
    Key,
    /// When its base URL env is set (local servers).
    BaseUrl,
    /// Always (the in-process mock).
    Always,
}

/// A wire format: which adapter speaks to a provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// OpenAI chat completions (OpenAI and the OpenAI-compatible providers).
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Google Gemini `generateContent`.
    Gemini,
    /// Cohere v2 chat.
    Cohere,
    /// AI21 Jamba chat.
    Ai21,
    /// Azure OpenAI deployments.
    Azure,
    /// Puter's drivers API.
    Puter,
    /// The in-process mock.
    Mock,
}

impl Format {
    /// The name shown for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::OpenAi => "openai",
            Format::Anthropic => "anthropic",
            Format::Gemini => "gemini",
            Format::Cohere => "cohere-v2",
            Format::Ai21 => "ai21",
            Format::Azure => "azure-openai",
            Format::Puter => "puter-drivers",
            Format::Mock => "in-process",
        }
    }
}

/// A provider: one catalog line.
#[derive(Debug)]
pub struct ProviderSpec {
    /// Name, also the `provider/` prefix of model ids.
    pub name: &'static str,
    /// Who pays.
    pub tier: Tier,
    /// Wire format: which adapter speaks to it.
    pub format: Format,
    /// Credential env vars, first is canonical (several keys may be comma-separated).
    pub key_env: &'static [&'static str],
    /// Env var overriding the base URL.
    pub base_url_env: &'static str,
    /// Default base URL.
    pub base_url: &'static str,
    /// Further settings the adapter reads (`AZURE_OPENAI_API_VERSION`).
    pub extra_env: &'static [&'static str],
    /// What switches it on.
    pub enabled_by: Enable,
    /// The models it serves.
    pub models: &'static [ModelSpec],
}

impl ProviderSpec {
    /// The env var a user should set to enable it.
    pub fn enable_hint(&self) -> String {
        match self.enabled_by {
            Enable::Key => self.key_env.join(" or "),
            Enable::BaseUrl => self.base_url_env.to_owned(),
            Enable::Always => "nothing".to_owned(),
        }
    }

    /// The catalog entry for `model`, by id or alias.
    pub fn model(&self, model: &str) -> Option<&'static ModelSpec> {
        // `models` is 'static through the 'static ProviderSpec the catalog holds.
        self.models
            .iter()
            .find(|m| m.id == model || m.aliases.contains(&model))
    }
}

/// The list of every provider the gateway knows.
#[derive(Clone, Copy, Debug)]
pub struct Catalog {
    providers: &'static [&'static ProviderSpec],
}

impl Default for Catalog {
    fn default() -> Self {
        Self {
            providers: PROVIDERS,
        }
    }
}

impl Catalog {
    /// A catalog of other providers (tests).
    pub fn new(providers: &'static [&'static ProviderSpec]) -> Self {
        Self { providers }
    }

    /// Every provider.
    pub fn providers(&self) -> &'static [&'static ProviderSpec] {
        self.providers
    }

    /// A provider by name.
    pub fn provider(&self, name: &str) -> Option<&'static ProviderSpec> {
        self.providers.iter().copied().find(|p| p.name == name)
    }

    /// Every (provider, model) serving a bare name.
    pub fn serving(&self, model: &str) -> Vec<(&'static ProviderSpec, &'static ModelSpec)> {
        self.providers
            .iter()
            .filter_map(|p| {
                p.models
                    .iter()
                    .find(|m| m.id == model || m.aliases.contains(&model))
                    .map(|m| (*p, m))
            })
            .collect()
    }

    /// Rate for `provider/model`, if known.
    pub fn rate(&self, provider: &str, model: &str) -> Option<(f64, f64)> {
        let m = self.provider(provider)?.model(model)?;
        Some((m.input, m.output))
    }
}

/// A chat model line.
pub const fn chat(
    id: &'static str,
    aliases: &'static [&'static str],
    context: u32,
    input: f64,
    output: f64,
) -> ModelSpec {
    ModelSpec {
        id,
        aliases,
        context,
        input,
        output,
        mode: Mode::Chat,
        cached_input: None,
        cache_write: None,
        cache_write_1h: None,
        max_output: None,
        params: Params::Sampling,
    }
}

/// An embedding model line.
pub const fn embed(id: &'static str, context: u32, input: f64) -> ModelSpec {
    ModelSpec {
        id,
        aliases: &[],
        context,
        input,
        output: 0.0,
        mode: Mode::Embedding,
        cached_input: None,
        cache_write: None,
        cache_write_1h: None,
        max_output: None,
        params: Params::Sampling,
    }
}

/// Every provider, in default priority order (keyless first, then free keys, then paid).
pub static PROVIDERS: &[&ProviderSpec] = {
    use models::openai_compat as oai;
    &[
        &models::mock::MOCK,
        &oai::OLLAMA,
        &models::puter::PUTER,
        &oai::GROQ,
        &oai::TOGETHER,
        &oai::FIREWORKS,
        &oai::CEREBRAS,
        &oai::SAMBANOVA,
        &oai::MISTRAL,
        &models::cohere::COHERE,
        &models::ai21::AI21,
        &oai::OPENAI,
        &oai::OPENROUTER,
        &oai::DEEPSEEK,
        &oai::XAI,
        &models::anthropic::ANTHROPIC,
        &models::gemini::GEMINI,
        &models::azure::AZURE,
    ]
};
