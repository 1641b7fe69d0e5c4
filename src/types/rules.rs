//! Parameter rules: request parameters a model or model group drops, and defaults it sets when
//! the client did not, applied to the canonical request before any adapter translates it.

use serde_json::{Map, Value};

use super::ChatRequest;

/// Parameters a rule may name that are not plain request fields.
const PROTECTED: &[&str] = &["model", "messages", "stream"];

/// `drop` and `defaults` of one model or group.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamRules {
    /// Parameters removed before sending (`temperature`, `logit_bias`, ...).
    pub drop: Vec<String>,
    /// Parameters set when the client did not send them (`max_tokens = 1024`).
    pub defaults: Map<String, Value>,
}

impl ParamRules {
    /// Whether the rules change nothing.
    pub fn is_empty(&self) -> bool {
        self.drop.is_empty() && self.defaults.is_empty()
    }

    /// Checks the rules once, when they are configured: a protected or empty name, or a default
    /// whose value the parameter cannot take, is an error naming it.
    pub fn check(&self) -> Result<(), String> {
        for name in self.drop.iter().chain(self.defaults.keys()) {
            if name.trim().is_empty() {
                return Err("a parameter name is empty".to_owned());
            }
            if PROTECTED.contains(&name.as_str()) {
                return Err(format!("`{name}` cannot be dropped or defaulted"));
            }
        }
        let mut probe = ChatRequest::default();
        for (name, value) in &self.defaults {
            set_default(&mut probe, name, value)
                .map_err(|e| format!("default `{name}` = {value}: {e}"))?;
        }
        Ok(())
    }

    /// Applies the rules to `req`: drops first, then defaults for what is still unset.
    pub fn apply(&self, req: &mut ChatRequest) {
        if !self.drop.is_empty() || !self.defaults.is_empty() {
            req.ctx.verbatim = None;
        }
        for name in &self.drop {
            drop_param(req, name);
        }
        for (name, value) in &self.defaults {
            // Checked when configured; a value that no longer fits is left out.
            let _ = set_default(req, name, value);
        }
    }
}

fn drop_param(req: &mut ChatRequest, name: &str) {
    match name {
        "max_tokens" => req.max_tokens = None,
        "max_completion_tokens" => req.max_completion_tokens = None,
        "temperature" => req.temperature = None,
        "top_p" => req.top_p = None,
        "stop" => req.stop = None,
        "n" => req.n = None,
        "tools" => req.tools = None,
        "tool_choice" => req.tool_choice = None,
        "response_format" => req.response_format = None,
        "reasoning_effort" => req.reasoning_effort = None,
        "stream_options" => req.stream_options = None,
        other => {
            req.extra.remove(other);
        }
    }
}

fn set_default(req: &mut ChatRequest, name: &str, value: &Value) -> Result<(), String> {
    fn fill<T: serde::de::DeserializeOwned>(slot: &mut Option<T>, v: &Value) -> Result<(), String> {
        if slot.is_none() {
            *slot = Some(serde_json::from_value(v.clone()).map_err(|e| e.to_string())?);
        }
        Ok(())
    }
    match name {
        "max_tokens" => fill(&mut req.max_tokens, value),
        "max_completion_tokens" => fill(&mut req.max_completion_tokens, value),
        "temperature" => fill(&mut req.temperature, value),
        "top_p" => fill(&mut req.top_p, value),
        "stop" => fill(&mut req.stop, value),
        "n" => fill(&mut req.n, value),
        "tools" => fill(&mut req.tools, value),
        "tool_choice" => fill(&mut req.tool_choice, value),
        "response_format" => fill(&mut req.response_format, value),
        "reasoning_effort" => fill(&mut req.reasoning_effort, value),
        "stream_options" => fill(&mut req.stream_options, value),
        other => {
            req.extra
                .entry(other.to_owned())
                .or_insert_with(|| value.clone());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(v: Value) -> ChatRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn drops_then_fills_only_what_the_client_left_unset() {
        let rules = ParamRules {
            drop: vec!["temperature".into(), "logit_bias".into()],
            defaults: json!({"max_tokens": 64, "top_p": 0.5, "seed": 7})
                .as_object()
                .cloned()
                .unwrap(),
        };
        rules.check().unwrap();
        let mut r = req(json!({"model": "m", "messages": [], "temperature": 0.3,
            "logit_bias": {"1": 2}, "top_p": 0.9}));
        rules.apply(&mut r);
        assert_eq!(r.temperature, None);
        assert!(!r.extra.contains_key("logit_bias"));
        assert_eq!(r.max_tokens, Some(64));
        assert_eq!(r.top_p, Some(0.9), "the client's own value stays");
        assert_eq!(r.extra["seed"], json!(7));
    }

    #[test]
    fn bad_rules_are_refused_by_name() {
        let bad = ParamRules {
            drop: vec![],
            defaults: json!({"max_tokens": "lots"}).as_object().cloned().unwrap(),
        };
        assert!(bad.check().unwrap_err().contains("max_tokens"));
        let bad = ParamRules {
            drop: vec!["messages".into()],
            defaults: Map::new(),
        };
        assert!(bad.check().unwrap_err().contains("messages"));
    }
}
