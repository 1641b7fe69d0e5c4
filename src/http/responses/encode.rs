//! The /v1/responses edge: the canonical answer -> OpenAI's `Response` object.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::opaque::Opaque;
use crate::types::responses::{
    ContentPart, CreateResponse, FunctionCallItem, IncompleteDetails, Item, ItemRole,
    MessageContent, MessageItem, ReasoningItem, ResponseError, ResponseObject, ResponseStatus,
    ResponseUsage, SummaryText,
};
use crate::types::{ChatResponse, Usage};

/// A random id with `prefix` (`resp`, `msg`, `fc`, `rs`).
pub fn new_id(prefix: &str) -> String {
    use rand::Rng;
    let n: u128 = rand::rng().random();
    format!("{prefix}_{n:032x}")
}

/// What every Response object of one request repeats from the request.
#[derive(Clone, Debug)]
pub struct Shape {
    /// `resp_...`.
    pub id: String,
    /// Unix seconds.
    pub created_at: u64,
    /// The model the client asked for.
    pub model: String,
    /// The request's instructions.
    pub instructions: Option<String>,
    /// The request's output cap.
    pub max_output_tokens: Option<u64>,
    /// As requested.
    pub parallel_tool_calls: bool,
    /// As requested.
    pub previous_response_id: Option<String>,
    /// As requested.
    pub reasoning: Option<crate::types::responses::ReasoningConfig>,
    /// As requested.
    pub store: bool,
    /// As requested.
    pub temperature: Option<f64>,
    /// As requested.
    pub text: Option<crate::types::responses::TextConfig>,
    /// As requested.
    pub tool_choice: Value,
    /// The function tools offered.
    pub tools: Vec<Value>,
    /// As requested.
    pub top_p: Option<f64>,
    /// As requested.
    pub user: Option<String>,
    /// As requested.
    pub metadata: Map<String, Value>,
    /// The namespace of each namespaced function.
    pub namespaces: HashMap<String, String>,
    /// `include` asks for `reasoning.encrypted_content`.
    pub encrypted: bool,
}

impl Shape {
    /// The shape of the answer to `req`.
    pub fn new(
        req: &CreateResponse,
        tools: Vec<Value>,
        namespaces: HashMap<String, String>,
    ) -> Self {
        Self {
            id: new_id("resp"),
            created_at: crate::types::unix_now(),
            model: req.model.clone(),
            instructions: req.instructions.clone(),
            max_output_tokens: req.max_output_tokens,
            parallel_tool_calls: req.parallel_tool_calls.unwrap_or(true),
            previous_response_id: req.previous_response_id.clone(),
            reasoning: req.reasoning.clone(),
            store: req.is_stored(),
            temperature: req.temperature,
            text: req.text.clone(),
            tool_choice: req
                .tool_choice
                .clone()
                .unwrap_or_else(|| Value::String("auto".into())),
            tools,
            top_p: req.top_p,
            user: req.user.clone(),
            metadata: req.metadata.clone().unwrap_or_default(),
            namespaces,
            encrypted: req.includes("reasoning.encrypted_content"),
        }
    }

    /// The Response object with `output`, `status`, `usage` and `error`.
    pub fn response(
        &self,
        output: Vec<Item>,
        status: ResponseStatus,
        usage: Option<&Usage>,
        error: Option<ResponseError>,
    ) -> ResponseObject {
        ResponseObject {
            id: self.id.clone(),
            object: "response".into(),
            created_at: self.created_at,
            status,
            error,
            incomplete_details: (status == ResponseStatus::Incomplete).then(|| IncompleteDetails {
                reason: "max_output_tokens".into(),
            }),
            instructions: self.instructions.clone(),
            max_output_tokens: self.max_output_tokens,
            model: self.model.clone(),
            output,
            parallel_tool_calls: self.parallel_tool_calls,
            previous_response_id: self.previous_response_id.clone(),
            reasoning: self.reasoning.clone(),
            store: self.store,
            temperature: self.temperature,
            text: self.text.clone(),
            tool_choice: self.tool_choice.clone(),
            tools: self.tools.clone(),
            top_p: self.top_p,
            truncation: Some("disabled".into()),
            usage: usage.map(ResponseUsage::from),
            user: self.user.clone(),
            metadata: self.metadata.clone(),
        }
    }

    /// A reasoning item for `text` and the opaque state; `None` when there is nothing to show.
    pub fn reasoning_item(&self, text: &str, opaque: &Opaque) -> Option<ReasoningItem> {
        let encrypted = (self.encrypted && !opaque.is_empty()).then(|| opaque.write());
        if text.is_empty() && encrypted.is_none() {
            return None;
        }
        Some(ReasoningItem {
            id: new_id("rs"),
            summary: if text.is_empty() {
                Vec::new()
            } else {
                vec![SummaryText::new(text)]
            },
            content: None,
            encrypted_content: encrypted,
            status: Some("completed".into()),
        })
    }

    /// A function call item.
    pub fn call_item(
        &self,
        id: String,
        call_id: &str,
        name: &str,
        arguments: String,
        status: &str,
    ) -> FunctionCallItem {
        FunctionCallItem {
            id: Some(id),
            call_id: call_id.to_owned(),
            name: name.to_owned(),
            arguments,
            namespace: self.namespaces.get(name).cloned(),
            status: Some(status.into()),
        }
    }
}

/// An assistant message item.
pub fn message_item(id: String, parts: Vec<ContentPart>, status: &str) -> Item {
    Item::Message(MessageItem {
        id: Some(id),
        role: ItemRole::Assistant,
        content: MessageContent::Parts(parts),
        status: Some(status.into()),
        extra: Map::new(),
    })
}

/// Whether a finish reason means the output cap cut the answer.
pub fn is_incomplete(finish: Option<&str>) -> bool {
    finish == Some("length")
}

/// The Response object of a complete canonical answer.
pub fn complete(shape: &Shape, resp: &ChatResponse) -> ResponseObject {
    let mut output = Vec::new();
    let choice = resp.choices.first();
    let finish = choice.and_then(|c| c.finish_reason.as_deref());
    if let Some(m) = choice.map(|c| &c.message) {
        // The typed field, or the same field among the extras where an adapter put it there.
        let reasoning = m.reasoning_content.clone().or_else(|| {
            m.extra
                .get("reasoning_content")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        let mut opaque = Opaque {
            reasoning: reasoning.clone(),
            blocks: m.thinking_blocks.clone(),
            calls: HashMap::new(),
        };
        for call in m.tool_calls.iter().flatten() {
            if let Some(extra) = &call.extra_content {
                opaque.calls.insert(call.id.clone(), extra.clone());
            }
        }
        let text = reasoning.as_deref().unwrap_or("");
        if let Some(r) = shape.reasoning_item(text, &opaque) {
            output.push(Item::Reasoning(r));
        }
        if let Some(content) = m.content.as_deref().filter(|c| !c.is_empty()) {
            output.push(message_item(
                new_id("msg"),
                vec![ContentPart::output_text(content)],
                "completed",
            ));
        }
        if let Some(refusal) = m.refusal.as_deref().filter(|r| !r.is_empty()) {
            output.push(message_item(
                new_id("msg"),
                vec![ContentPart::Refusal {
                    refusal: refusal.to_owned(),
                }],
                "completed",
            ));
        }
        for call in m.tool_calls.iter().flatten() {
            output.push(Item::FunctionCall(shape.call_item(
                new_id("fc"),
                &call.id,
                &call.function.name,
                call.function.arguments.clone(),
                "completed",
            )));
        }
    }
    let status = if is_incomplete(finish) {
        ResponseStatus::Incomplete
    } else {
        ResponseStatus::Completed
    };
    shape.response(output, status, resp.usage.as_ref(), None)
}
