use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Usage;

/// The most output dimensions a client may ask for.
pub const MAX_DIMENSIONS: u32 = 65_536;

/// An OpenAI embeddings request (`POST /v1/embeddings`).
///
/// It travels through the stack inside a [`ChatRequest`](super::ChatRequest)'s context
/// ([`RequestContext::embedding`](super::RequestContext::embedding)), so routing, failover,
/// breakers, cost and the cache treat it like any other request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingRequest {
    /// `provider/model` or a bare catalog name.
    pub model: String,
    /// One text, several texts, or token ids.
    pub input: EmbeddingInput,
    /// `float` (default) or `base64` (little-endian float32). The gateway always asks the
    /// upstream for floats and encodes at the edge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<String>,
    /// Output dimensions, for models that can shorten their vectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    /// End-user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Other parameters (Cohere's `input_type`, ...), passed through where they fit.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `input`: a string, strings, token ids, or lists of token ids.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    /// One text.
    Text(String),
    /// Several texts.
    Texts(Vec<String>),
    /// One list of token ids.
    Tokens(Vec<u32>),
    /// Several lists of token ids.
    TokenLists(Vec<Vec<u32>>),
}

impl EmbeddingInput {
    /// The inputs as texts, `None` for token ids (only OpenAI-format upstreams take those).
    pub fn texts(&self) -> Option<Vec<&str>> {
        match self {
            Self::Text(s) => Some(vec![s.as_str()]),
            Self::Texts(v) => Some(v.iter().map(String::as_str).collect()),
            Self::Tokens(_) | Self::TokenLists(_) => None,
        }
    }

    /// How many vectors the answer must hold.
    pub fn len(&self) -> usize {
        match self {
            Self::Text(_) | Self::Tokens(_) => 1,
            Self::Texts(v) => v.len(),
            Self::TokenLists(v) => v.len(),
        }
    }

    /// True when there is nothing to embed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl EmbeddingRequest {
    /// Whether the client wants base64 vectors.
    pub fn wants_base64(&self) -> bool {
        self.encoding_format.as_deref() == Some("base64")
    }

    /// Checks what serde cannot; the error names the field.
    pub fn validate(&self) -> Result<(), crate::GatewayError> {
        use crate::GatewayError;
        super::request::check_model(&self.model)?;
        if self.input.is_empty() {
            return Err(GatewayError::invalid("input", "must not be empty"));
        }
        let empty = match &self.input {
            EmbeddingInput::Text(s) => s.is_empty(),
            EmbeddingInput::Texts(v) => v.iter().any(String::is_empty),
            EmbeddingInput::Tokens(_) => false,
            EmbeddingInput::TokenLists(v) => v.iter().any(Vec::is_empty),
        };
        if empty {
            return Err(GatewayError::invalid(
                "input",
                "must not contain an empty string",
            ));
        }
        if self.input.len() > 2048 {
            return Err(GatewayError::invalid(
                "input",
                "may hold at most 2048 inputs",
            ));
        }
        match self.encoding_format.as_deref() {
            None | Some("float") | Some("base64") => {}
            Some(_) => {
                return Err(GatewayError::invalid(
                    "encoding_format",
                    "must be `float` or `base64`",
                ));
            }
        }
        if self.dimensions == Some(0) {
            return Err(GatewayError::invalid("dimensions", "must be at least 1"));
        }
        if self.dimensions.is_some_and(|d| d > MAX_DIMENSIONS) {
            return Err(GatewayError::invalid(
                "dimensions",
                format!("must be at most {MAX_DIMENSIONS}"),
            ));
        }
        Ok(())
    }
}

/// An embeddings answer (`object: "list"`), always with float vectors inside the stack.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingResponse {
    /// Always `list`.
    #[serde(default = "list_object")]
    pub object: String,
    /// One per input, in input order.
    pub data: Vec<Embedding>,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// `prompt_tokens` and `total_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

fn list_object() -> String {
    "list".to_owned()
}

/// One vector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    /// Always `embedding`.
    #[serde(default = "embedding_object")]
    pub object: String,
    /// Position of its input.
    #[serde(default)]
    pub index: u32,
    /// The vector.
    pub embedding: Vec<f32>,
}

fn embedding_object() -> String {
    "embedding".to_owned()
}

impl EmbeddingResponse {
    /// A response of `vectors` in input order.
    pub fn new(model: impl Into<String>, vectors: Vec<Vec<f32>>, usage: Option<Usage>) -> Self {
        Self {
            object: list_object(),
            data: vectors
                .into_iter()
                .enumerate()
                .map(|(i, embedding)| Embedding {
                    object: embedding_object(),
                    index: i as u32,
                    embedding,
                })
                .collect(),
            model: model.into(),
            usage,
        }
    }

    /// The OpenAI JSON the client asked for: float arrays, or base64 little-endian float32.
    pub fn to_client_json(&self, base64: bool) -> Value {
        use base64::Engine as _;
        let data: Vec<Value> = self
            .data
            .iter()
            .map(|e| {
                let embedding = if base64 {
                    let mut bytes = Vec::with_capacity(e.embedding.len() * 4);
                    for f in &e.embedding {
                        bytes.extend_from_slice(&f.to_le_bytes());
                    }
                    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
                } else {
                    serde_json::to_value(&e.embedding).unwrap_or(Value::Null)
                };
                serde_json::json!({"object": "embedding", "index": e.index, "embedding": embedding})
            })
            .collect();
        let usage = self.usage.as_ref().map(|u| {
            let mut m = Map::new();
            m.insert("prompt_tokens".into(), u.prompt_tokens.into());
            m.insert("total_tokens".into(), u.prompt_tokens.into());
            if let Some(c) = u.extra.get("cost_usd") {
                m.insert("cost_usd".into(), c.clone());
            }
            Value::Object(m)
        });
        serde_json::json!({
            "object": "list",
            "data": data,
            "model": self.model,
            "usage": usage.unwrap_or_else(|| serde_json::json!({"prompt_tokens": 0, "total_tokens": 0})),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_little_endian_f32() {
        use base64::Engine as _;
        let r = EmbeddingResponse::new("m", vec![vec![1.0, -0.5]], Some(Usage::new(3, 0)));
        let v = r.to_client_json(true);
        let b = base64::engine::general_purpose::STANDARD
            .decode(v["data"][0]["embedding"].as_str().unwrap())
            .unwrap();
        assert_eq!(b, [0, 0, 0x80, 0x3f, 0, 0, 0, 0xbf]);
        assert_eq!(v["usage"]["total_tokens"], 3);
        let f = r.to_client_json(false);
        assert_eq!(f["data"][0]["embedding"], serde_json::json!([1.0, -0.5]));
    }

    #[test]
    fn inputs_of_every_shape() {
        let parse = |v: Value| serde_json::from_value::<EmbeddingRequest>(v).unwrap();
        let r = parse(serde_json::json!({"model": "m", "input": "a"}));
        assert_eq!(r.input.texts(), Some(vec!["a"]));
        let r = parse(serde_json::json!({"model": "m", "input": ["a", "b"]}));
        assert_eq!(r.input.len(), 2);
        let r = parse(serde_json::json!({"model": "m", "input": [1, 2]}));
        assert_eq!(r.input, EmbeddingInput::Tokens(vec![1, 2]));
        let r = parse(serde_json::json!({"model": "m", "input": [], "encoding_format": "hex"}));
        assert!(r.validate().is_err());
    }
}
