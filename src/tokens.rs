//! Token counts the gateway makes itself when a provider reports none, with a real BPE
//! tokenizer (tiktoken's `cl100k_base`, loaded on first use only).

use tiktoken_rs::CoreBPE;

use crate::types::{ChatRequest, ContentPart, EmbeddingInput, EmbeddingRequest};

fn bpe() -> &'static CoreBPE {
    tiktoken_rs::cl100k_base_singleton()
}

/// Tokens in `text`.
pub fn count(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    bpe().encode_ordinary(text).len() as u64
}

/// What the prompt of a request is made of, kept cheaply until it is needed.
#[derive(Clone, Debug, Default)]
pub struct PromptText {
    text: String,
    messages: u64,
    images: u64,
    // Tokens known without the tokenizer (embedding inputs sent as token ids).
    counted: u64,
    // Tokens that prime the answer: 3 for chat, none for embeddings.
    priming: u64,
}

impl PromptText {
    /// The text parts of `req`: messages, tool calls and tool definitions; for an embeddings
    /// request, its inputs.
    pub fn of(req: &ChatRequest) -> Self {
        if let Some(emb) = &req.ctx.embedding {
            return Self::of_embedding(emb);
        }
        let mut text = String::new();
        let mut images = 0;
        for m in &req.messages {
            match &m.content {
                Some(crate::types::Content::Text(s)) => text.push_str(s),
                Some(crate::types::Content::Parts(parts)) => {
                    for p in parts {
                        push_part(&mut text, &mut images, p);
                    }
                }
                None => {}
            }
            text.push('\n');
            if let Some(calls) = &m.tool_calls {
                for c in calls {
                    text.push_str(&c.function.name);
                    text.push_str(&c.function.arguments);
                }
            }
        }
        if let Some(tools) = &req.tools
            && let Ok(s) = serde_json::to_string(tools)
        {
            text.push_str(&s);
        }
        Self {
            text,
            messages: req.messages.len() as u64,
            images,
            counted: 0,
            priming: 3,
        }
    }

    fn of_embedding(emb: &EmbeddingRequest) -> Self {
        let (text, counted) = match &emb.input {
            EmbeddingInput::Text(s) => (s.clone(), 0),
            EmbeddingInput::Texts(v) => (v.join("\n"), 0),
            EmbeddingInput::Tokens(t) => (String::new(), t.len() as u64),
            EmbeddingInput::TokenLists(l) => {
                (String::new(), l.iter().map(Vec::len).sum::<usize>() as u64)
            }
        };
        Self {
            text,
            counted,
            ..Self::default()
        }
    }

    /// Prompt tokens the way OpenAI counts chat: the text, 3 per message, 3 to prime the
    /// answer, and a flat 85 per image (the low-detail price). Embedding inputs are their
    /// text's tokens alone.
    pub fn tokens(&self) -> u64 {
        count(&self.text) + 3 * self.messages + self.priming + 85 * self.images + self.counted
    }
}

fn push_part(text: &mut String, images: &mut u64, p: &ContentPart) {
    if let Some(t) = &p.text {
        text.push_str(t);
    } else if p.kind == "image_url" {
        *images += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_like_cl100k() {
        // "hello world" is two tokens in cl100k_base.
        assert_eq!(count("hello world"), 2);
        assert_eq!(count(""), 0);
        assert!(count("The quick brown fox jumps over the lazy dog.") >= 9);
    }

    #[test]
    fn prompt_counts_messages_and_priming() {
        let req: ChatRequest = serde_json::from_value(serde_json::json!({
            "model": "m", "messages": [
                {"role": "system", "content": "hello world"},
                {"role": "user", "content": "hello world"}
            ]
        }))
        .unwrap();
        // The texts joined by newlines (hello, world, \n twice: 6 tokens), 3 per message, 3 to
        // prime the answer.
        assert_eq!(count("hello world\nhello world\n"), 6);
        assert_eq!(PromptText::of(&req).tokens(), 6 + 2 * 3 + 3);
    }
}
