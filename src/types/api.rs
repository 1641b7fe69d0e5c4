use serde::{Deserialize, Serialize};

/// Which client API a request came through (the `endpoint` label and usage column).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// `POST /v1/chat/completions`.
    #[default]
    Chat,
    /// `POST /v1/messages`.
    Messages,
    /// `POST /v1/embeddings`.
    Embeddings,
    /// `POST /v1/responses`.
    Responses,
}

impl Api {
    /// The wire name and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Messages => "messages",
            Self::Embeddings => "embeddings",
            Self::Responses => "responses",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Self {
        match s {
            "messages" => Self::Messages,
            "embeddings" => Self::Embeddings,
            "responses" => Self::Responses,
            _ => Self::Chat,
        }
    }
}
