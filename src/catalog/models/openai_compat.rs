//! The OpenAI-compatible providers: OpenAI, Groq, Together, Fireworks, Cerebras, SambaNova,
//! Mistral, OpenRouter, DeepSeek, xAI and Ollama.

use crate::catalog::{Enable, Format, ModelSpec, Params, ProviderSpec, Tier, chat, embed};

/// An OpenAI-format provider switched on by its key.
const fn spec(
    name: &'static str,
    tier: Tier,
    key_env: &'static [&'static str],
    base_url_env: &'static str,
    base_url: &'static str,
    models: &'static [ModelSpec],
) -> ProviderSpec {
    ProviderSpec {
        name,
        tier,
        format: Format::OpenAi,
        key_env,
        base_url_env,
        base_url,
        extra_env: &[],
        enabled_by: Enable::Key,
        models,
    }
}

/// OpenAI.
pub static OPENAI: ProviderSpec = spec(
    "openai",
    Tier::PaidKey,
    &["OPENAI_API_KEY"],
    "OPENAI_BASE_URL",
    "https://api.openai.com/v1",
    &[
        chat("gpt-4o", &[], 128_000, 2.50, 10.00)
            .cached(1.25)
            .max_output(16_384),
        chat("gpt-4o-mini", &[], 128_000, 0.15, 0.60)
            .cached(0.075)
            .max_output(16_384),
        chat("gpt-4.1", &[], 1_047_576, 2.00, 8.00)
            .cached(0.50)
            .max_output(32_768),
        chat("gpt-4.1-mini", &[], 1_047_576, 0.40, 1.60)
            .cached(0.10)
            .max_output(32_768),
        chat("gpt-4.1-nano", &[], 1_047_576, 0.10, 0.40).max_output(32_768),
        chat("o3-mini", &[], 200_000, 1.10, 4.40)
            .cached(0.55)
            .max_output(100_000)
            .params(Params::OpenAiReasoning),
        chat("o4-mini", &[], 200_000, 1.10, 4.40)
            .max_output(100_000)
            .params(Params::OpenAiReasoning),
        chat("gpt-5", &[], 400_000, 1.25, 10.00)
            .max_output(128_000)
            .params(Params::OpenAiReasoning),
        chat("gpt-5-mini", &[], 400_000, 0.25, 2.00)
            .max_output(128_000)
            .params(Params::OpenAiReasoning),
        embed("text-embedding-3-small", 8_191, 0.02),
    ],
);

/// Groq.
pub static GROQ: ProviderSpec = spec(
    "groq",
    Tier::FreeKey,
    &["GROQ_API_KEY"],
    "GROQ_BASE_URL",
    "https://api.groq.com/openai/v1",
    &[
        chat(
            "llama-3.1-8b-instant",
            &["llama-3.1-8b"],
            131_072,
            0.05,
            0.08,
        ),
        chat(
            "llama-3.3-70b-versatile",
            &["llama-3.3-70b", "llama-3.1-70b"],
            131_072,
            0.59,
            0.79,
        ),
        chat("mixtral-8x7b-32768", &["mixtral-8x7b"], 32_768, 0.24, 0.24),
        chat(
            "openai/gpt-oss-120b",
            &["gpt-oss-120b"],
            131_072,
            0.15,
            0.60,
        ),
    ],
);

/// Together AI.
pub static TOGETHER: ProviderSpec = spec(
    "together",
    Tier::FreeKey,
    &["TOGETHER_API_KEY"],
    "TOGETHER_BASE_URL",
    "https://api.together.xyz/v1",
    &[
        chat(
            "meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo",
            &["llama-3.1-8b"],
            131_072,
            0.18,
            0.18,
        ),
        chat(
            "meta-llama/Llama-3.3-70B-Instruct-Turbo",
            &["llama-3.3-70b", "llama-3.1-70b"],
            131_072,
            1.04,
            1.04,
        ),
        chat(
            "mistralai/Mixtral-8x7B-Instruct-v0.1",
            &["mixtral-8x7b"],
            32_768,
            0.60,
            0.60,
        ),
        chat(
            "deepseek-ai/DeepSeek-V3",
            &["deepseek-v3"],
            131_072,
            1.25,
            1.25,
        ),
    ],
);

/// Fireworks AI.
pub static FIREWORKS: ProviderSpec = spec(
    "fireworks",
    Tier::FreeKey,
    &["FIREWORKS_API_KEY"],
    "FIREWORKS_BASE_URL",
    "https://api.fireworks.ai/inference/v1",
    &[
        chat(
            "accounts/fireworks/models/llama-v3p1-8b-instruct",
            &["llama-3.1-8b"],
            131_072,
            0.10,
            0.10,
        ),
        chat(
            "accounts/fireworks/models/llama-v3p3-70b-instruct",
            &["llama-3.3-70b", "llama-3.1-70b"],
            131_072,
            0.90,
            0.90,
        ),
    ],
);

/// Cerebras.
pub static CEREBRAS: ProviderSpec = spec(
    "cerebras",
    Tier::FreeKey,
    &["CEREBRAS_API_KEY"],
    "CEREBRAS_BASE_URL",
    "https://api.cerebras.ai/v1",
    &[
        chat("llama3.1-8b", &["llama-3.1-8b"], 8_192, 0.10, 0.10),
        chat("llama-3.3-70b", &["llama-3.1-70b"], 8_192, 0.85, 1.20),
        chat("gpt-oss-120b", &[], 131_072, 0.35, 0.75),
    ],
);

/// SambaNova.
pub static SAMBANOVA: ProviderSpec = spec(
    "sambanova",
    Tier::FreeKey,
    &["SAMBANOVA_API_KEY"],
    "SAMBANOVA_BASE_URL",
    "https://api.sambanova.ai/v1",
    &[
        chat(
            "Meta-Llama-3.1-8B-Instruct",
            &["llama-3.1-8b"],
            16_384,
            0.10,
            0.20,
        ),
        chat(
            "Meta-Llama-3.3-70B-Instruct",
            &["llama-3.3-70b", "llama-3.1-70b"],
            131_072,
            0.60,
            1.20,
        ),
    ],
);

/// Mistral.
pub static MISTRAL: ProviderSpec = spec(
    "mistral",
    Tier::FreeKey,
    &["MISTRAL_API_KEY"],
    "MISTRAL_BASE_URL",
    "https://api.mistral.ai/v1",
    &[
        chat("mistral-small-latest", &[], 131_072, 0.15, 0.60),
        chat("mistral-large-latest", &[], 131_072, 0.50, 1.50),
        chat("mistral-medium-latest", &[], 131_072, 1.50, 7.50),
        chat("open-mixtral-8x7b", &["mixtral-8x7b"], 32_768, 0.70, 0.70),
    ],
);

/// OpenRouter.
pub static OPENROUTER: ProviderSpec = spec(
    "openrouter",
    Tier::PaidKey,
    &["OPENROUTER_API_KEY"],
    "OPENROUTER_BASE_URL",
    "https://openrouter.ai/api/v1",
    &[
        chat(
            "anthropic/claude-3.5-sonnet",
            &["claude-3.5-sonnet"],
            200_000,
            3.00,
            15.00,
        ),
        chat("openai/gpt-4o-mini", &["gpt-4o-mini"], 128_000, 0.15, 0.60),
        chat(
            "meta-llama/llama-3.3-70b-instruct",
            &["llama-3.3-70b"],
            131_072,
            0.59,
            0.79,
        ),
    ],
);

/// DeepSeek.
pub static DEEPSEEK: ProviderSpec = spec(
    "deepseek",
    Tier::PaidKey,
    &["DEEPSEEK_API_KEY"],
    "DEEPSEEK_BASE_URL",
    "https://api.deepseek.com",
    &[
        chat("deepseek-chat", &[], 131_072, 0.28, 0.42)
            .cached(0.028)
            .max_output(8_192),
        chat("deepseek-reasoner", &[], 131_072, 0.28, 0.42)
            .cached(0.028)
            .max_output(65_536)
            .params(Params::Reasoning),
    ],
);

/// xAI.
pub static XAI: ProviderSpec = spec(
    "xai",
    Tier::PaidKey,
    &["XAI_API_KEY"],
    "XAI_BASE_URL",
    "https://api.x.ai/v1",
    &[
        chat("grok-3", &[], 131_072, 3.00, 15.00),
        chat("grok-3-mini", &[], 131_072, 0.30, 0.50),
        chat("grok-4.20-0309-non-reasoning", &[], 2_000_000, 1.25, 2.50),
    ],
);

/// Ollama (local; enabled by `OLLAMA_BASE_URL`).
pub static OLLAMA: ProviderSpec = ProviderSpec {
    enabled_by: Enable::BaseUrl,
    ..spec(
        "ollama",
        Tier::Keyless,
        &[],
        "OLLAMA_BASE_URL",
        "http://localhost:11434/v1",
        &[
            chat("llama3.1:8b", &["llama-3.1-8b"], 131_072, 0.0, 0.0),
            chat("llama3.2", &[], 131_072, 0.0, 0.0),
            chat("qwen2.5:7b", &[], 32_768, 0.0, 0.0),
        ],
    )
};
