//! Puter: canonical request -> drivers-call body.

use serde_json::{Map, Value, json};

use super::Puter;
use crate::GatewayError;
use crate::types::{ChatRequest, Role};

impl Puter {
    /// The drivers-call body for `req`.
    pub fn body(&self, req: &ChatRequest) -> Result<Value, GatewayError> {
        let mut messages = Vec::with_capacity(req.messages.len());
        for m in &req.messages {
            let mut v = serde_json::to_value(m)
                .map_err(|e| GatewayError::Internal(format!("encoding request: {e}")))?;
            if m.role == Role::Developer {
                v["role"] = "system".into();
            }
            // Puter refuses a message without `content`; a tool-calling one may have it empty.
            if m.content.is_none() {
                v["content"] = "".into();
            }
            messages.push(v);
        }
        let mut args = Map::new();
        args.insert("messages".into(), Value::Array(messages));
        args.insert("model".into(), req.model.clone().into());
        args.insert("stream".into(), req.is_stream().into());
        if let Some(n) = req.output_cap() {
            args.insert("max_tokens".into(), n.into());
        }
        if let Some(t) = req.temperature {
            args.insert("temperature".into(), t.into());
        }
        if let Some(p) = req.top_p {
            args.insert("top_p".into(), p.into());
        }
        if let Some(tools) = &req.tools {
            let tools = serde_json::to_value(tools)
                .map_err(|e| GatewayError::Internal(format!("encoding tools: {e}")))?;
            args.insert("tools".into(), tools);
        }
        if let Some(tc) = &req.tool_choice {
            args.insert("tool_choice".into(), tc.clone());
        }
        for key in ["parallel_tool_calls", "reasoning_effort", "verbosity"] {
            if let Some(v) = req.extra.get(key) {
                args.insert(key.into(), v.clone());
            }
        }
        if !req.is_stream() {
            // One message shape for every upstream: text and tool_use blocks.
            args.insert("response".into(), json!({"normalize": true}));
        }
        Ok(json!({
            "interface": "puter-chat-completion",
            "driver": "ai-chat",
            "method": "complete",
            "args": args,
            "auth_token": self.token.expose(),
        }))
    }
}
