//! The gateway's `encrypted_content` of `reasoning` items: a provider's opaque reasoning state
//! (reasoning text, thinking blocks with their signatures, per-call state such as Gemini's
//! thought signatures) as `pg1.` followed by URL-safe base64 of a JSON object. The gateway reads
//! it back when a client sends the item again; content without the prefix is not the
//! gateway's and is ignored on translated requests.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::types::ThinkingBlock;

const PREFIX: &str = "pg1.";

/// The reasoning state of one assistant turn.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Opaque {
    /// The reasoning text (`reasoning_content`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// The provider's reasoning blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<Vec<ThinkingBlock>>,
    /// `extra_content` of each tool call, by call id.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub calls: HashMap<String, Value>,
}

impl Opaque {
    /// Whether there is nothing to carry.
    pub fn is_empty(&self) -> bool {
        self.reasoning.is_none() && self.blocks.is_none() && self.calls.is_empty()
    }

    /// The `encrypted_content` string.
    pub fn write(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(json))
    }

    /// Reads a string [`Opaque::write`] made; anything else is `None`.
    pub fn read(s: &str) -> Option<Self> {
        let raw = URL_SAFE_NO_PAD.decode(s.strip_prefix(PREFIX)?).ok()?;
        serde_json::from_slice(&raw).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_foreign_content_is_ignored() {
        let mut o = Opaque {
            reasoning: Some("think".into()),
            blocks: Some(vec![ThinkingBlock::thinking("think", Some("sig==".into()))]),
            calls: HashMap::new(),
        };
        o.calls.insert(
            "call_1".into(),
            serde_json::json!({"google": {"thought_signature": "ts"}}),
        );
        let s = o.write();
        assert!(s.starts_with("pg1."));
        assert_eq!(Opaque::read(&s), Some(o));
        assert_eq!(Opaque::read("gAAAAABo-openai-encrypted"), None);
        assert_eq!(Opaque::read("pg1.!!!"), None);
    }
}
