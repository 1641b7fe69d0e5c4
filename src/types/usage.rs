use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Token usage as OpenAI reports it.
///
/// The detail objects are typed because cost depends on them: cached prompt tokens and cache
/// writes are billed at their own rates, and reasoning tokens are completion tokens that some
/// providers report apart.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt, cached and cache-written ones included.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Tokens in the completion, reasoning tokens included.
    #[serde(default)]
    pub completion_tokens: u64,
    /// `prompt_tokens + completion_tokens`.
    #[serde(default)]
    pub total_tokens: u64,
    /// Cached and cache-written prompt tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    /// Reasoning tokens among the completion tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
    /// Provider extras.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// OpenAI's `usage.prompt_tokens_details`, with the cache writes some providers bill apart.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    /// Prompt tokens read from the provider's prompt cache.
    #[serde(default)]
    pub cached_tokens: u64,
    /// Prompt tokens written to the provider's cache (Anthropic's `cache_creation_input_tokens`),
    /// all lifetimes together.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_tokens: u64,
    /// The part of `cache_write_tokens` written for one hour (Anthropic bills it at a higher rate
    /// than the 5-minute default).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_1h_tokens: u64,
    /// Other details (`audio_tokens`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// OpenAI's `usage.completion_tokens_details`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CompletionTokensDetails {
    /// Completion tokens spent on reasoning.
    #[serde(default)]
    pub reasoning_tokens: u64,
    /// Other details (`audio_tokens`, `accepted_prediction_tokens`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Usage {
    /// Usage from the two counts, with the total filled in.
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
            ..Self::default()
        }
    }

    /// Fills `total_tokens` when the upstream left it out (or at 0).
    pub fn fill_total(&mut self) {
        if self.total_tokens == 0 {
            self.total_tokens = self.prompt_tokens.saturating_add(self.completion_tokens);
        }
    }

    /// Caps every typed meter at `max` (an upstream's report is not trusted to be sane).
    pub fn bound_meters(&mut self, max: u64) {
        for n in [
            &mut self.prompt_tokens,
            &mut self.completion_tokens,
            &mut self.total_tokens,
        ] {
            *n = (*n).min(max);
        }
        if let Some(d) = &mut self.prompt_tokens_details {
            d.cached_tokens = d.cached_tokens.min(max);
            d.cache_write_tokens = d.cache_write_tokens.min(max);
            d.cache_write_1h_tokens = d.cache_write_1h_tokens.min(max);
        }
        if let Some(d) = &mut self.completion_tokens_details {
            d.reasoning_tokens = d.reasoning_tokens.min(max);
        }
    }

    /// Moves meters that OpenAI-compatible providers report under their own names into the
    /// typed fields: DeepSeek's `prompt_cache_hit_tokens` (DeepSeek's context caching
    /// documentation) becomes `prompt_tokens_details.cached_tokens` when that is absent.
    pub fn adopt_provider_meters(&mut self) {
        if self.cached_tokens() == 0
            && let Some(hit) = self
                .extra
                .get("prompt_cache_hit_tokens")
                .and_then(Value::as_u64)
                .filter(|n| *n > 0)
        {
            self.prompt_tokens_details
                .get_or_insert_with(Default::default)
                .cached_tokens = hit.min(self.prompt_tokens);
        }
    }

    /// Prompt tokens read from the provider's cache.
    pub fn cached_tokens(&self) -> u64 {
        self.prompt_tokens_details
            .as_ref()
            .map_or(0, |d| d.cached_tokens)
    }

    /// Prompt tokens written to the provider's cache.
    pub fn cache_write_tokens(&self) -> u64 {
        self.prompt_tokens_details
            .as_ref()
            .map_or(0, |d| d.cache_write_tokens)
    }

    /// Completion tokens spent on reasoning.
    pub fn reasoning_tokens(&self) -> u64 {
        self.completion_tokens_details
            .as_ref()
            .map_or(0, |d| d.reasoning_tokens)
    }

    /// Sets the cache meters (`prompt_tokens_details`), keeping its other details.
    pub fn set_cache(&mut self, cached: u64, write: u64, write_1h: u64) {
        let d = self
            .prompt_tokens_details
            .get_or_insert_with(Default::default);
        d.cached_tokens = cached;
        d.cache_write_tokens = write;
        d.cache_write_1h_tokens = write_1h;
    }

    /// Sets the reasoning meter (`completion_tokens_details.reasoning_tokens`).
    pub fn set_reasoning(&mut self, reasoning: u64) {
        self.completion_tokens_details
            .get_or_insert_with(Default::default)
            .reasoning_tokens = reasoning;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn details_parse_from_openai_shape_and_serialize_back() {
        let v = json!({"prompt_tokens": 100, "completion_tokens": 40, "total_tokens": 140,
            "prompt_tokens_details": {"cached_tokens": 60, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 30}});
        let u: Usage = serde_json::from_value(v.clone()).expect("parses");
        assert_eq!(
            (
                u.cached_tokens(),
                u.reasoning_tokens(),
                u.cache_write_tokens()
            ),
            (60, 30, 0)
        );
        assert_eq!(serde_json::to_value(&u).expect("serializes"), v);
    }

    #[test]
    fn setters_fill_the_detail_objects() {
        let mut u = Usage::new(10, 5);
        assert_eq!(
            serde_json::to_value(&u).expect("ok")["prompt_tokens_details"],
            Value::Null
        );
        u.set_cache(4, 3, 1);
        u.set_reasoning(2);
        let v = serde_json::to_value(&u).expect("serializes");
        assert_eq!(
            v["prompt_tokens_details"],
            json!({"cached_tokens": 4, "cache_write_tokens": 3, "cache_write_1h_tokens": 1})
        );
        assert_eq!(
            v["completion_tokens_details"],
            json!({"reasoning_tokens": 2})
        );
    }
}
