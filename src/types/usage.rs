use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Token usage as OpenAI reports it; detail objects are kept in `extra`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Tokens in the completion.
    #[serde(default)]
    pub completion_tokens: u64,
    /// `prompt_tokens + completion_tokens`.
    #[serde(default)]
    pub total_tokens: u64,
    /// Details (`prompt_tokens_details`, `completion_tokens_details`, provider extras).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Usage {
    /// Usage from the two counts, with the total filled in.
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            extra: Map::new(),
        }
    }

    /// Fills `total_tokens` when the upstream left it out (or at 0).
    pub fn fill_total(&mut self) {
        if self.total_tokens == 0 {
            self.total_tokens = self.prompt_tokens + self.completion_tokens;
        }
    }
}
